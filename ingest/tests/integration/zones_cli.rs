//! `geoward zones validate` and `geoward zones locate` on real zone files.

use std::io::Write as _;
use std::path::PathBuf;

use geoward_ingest::zones_cmd;

fn zones_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/zones")
}

fn temp_file(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(content.as_bytes()).expect("write temp file");
    f
}

#[test]
fn locate_on_the_national_gzipped_file() {
    let points = temp_file(
        "id,lon,lat\n\
         tiananmen,116.397,39.909\n\
         chengdu,104.06,30.67\n\
         gulf-of-guinea,0,0\n\
         \"zheng,zhou\",113.68,34.76\n",
    );
    let mut out = Vec::new();
    zones_cmd::locate(
        &zones_dir().join("china-counties.geojson.gz"),
        points.path(),
        &mut out,
    )
    .expect("locate");
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        "id,zones\n\
         tiananmen,beijing/0\n\
         chengdu,si4_chuan1_cheng2_du1/1\n\
         gulf-of-guinea,\n\
         \"zheng,zhou\",he2_nan2_zheng4_zhou1/3\n"
    );
}

#[test]
fn locate_rejects_a_points_file_without_the_header() {
    let points = temp_file("id,lat,lon\na,34.76,113.68\n");
    let mut out = Vec::new();
    let err = zones_cmd::locate(
        &zones_dir().join("he2_nan2_zheng4_zhou1.geojson"),
        points.path(),
        &mut out,
    )
    .expect_err("bad header");
    assert!(err.to_string().contains("id,lon,lat"), "{err}");
}

#[test]
fn validate_reports_defects_and_repairs() {
    let mut out = Vec::new();
    let clean = zones_cmd::validate(&zones_dir().join("he2_nan2_zheng4_zhou1.geojson"), &mut out)
        .expect("validate");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(clean, "{text}");
    assert!(text.contains("repaired repeated_vertex"), "{text}");
    assert!(
        text.ends_with("12 features, 12 zones accepted, 0 rejected, 4392 repairs\n"),
        "{text}"
    );

    let bad = temp_file(
        r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","id":"a","properties":{},"geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]}},
            {"type":"Feature","id":"b","properties":{"radius_m":50},"geometry":{"type":"Point","coordinates":[1,1]}}]}"#,
    );
    let mut out = Vec::new();
    let clean = zones_cmd::validate(bad.path(), &mut out).expect("validate");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(!clean);
    assert!(
        text.contains(r#"defect feature 0 (id "a"): unsupported geometry type "LineString""#)
            && text.contains("(unsupported_geometry)"),
        "{text}"
    );
    assert!(
        text.ends_with("2 features, 1 zones accepted, 1 rejected, 0 repairs\n"),
        "{text}"
    );
}

/// The commands as an operator runs them: the real binary, exit codes and stdout.
#[test]
fn the_binary_runs_zones_locate_and_validate() {
    let points = temp_file("id,lon,lat\nzz,113.68,34.76\nsea,0,0\n");
    let zones = zones_dir().join("he2_nan2_zheng4_zhou1.geojson");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_geoward"))
        .args(["zones", "locate", "--zones"])
        .arg(&zones)
        .arg("--points")
        .arg(points.path())
        .output()
        .expect("run geoward");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "id,zones\nzz,he2_nan2_zheng4_zhou1/3\nsea,\n"
    );

    let bad = temp_file(
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","id":"a","properties":{},"geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]}}]}"#,
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_geoward"))
        .args(["zones", "validate"])
        .arg(bad.path())
        .output()
        .expect("run geoward");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("unsupported_geometry"));

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_geoward"))
        .args(["zones", "validate", "/nonexistent/zones.geojson"])
        .output()
        .expect("run geoward");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/zones.geojson"));
}
