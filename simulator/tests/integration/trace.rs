//! Trace parsing against the real GPX files and against damaged inputs.

use std::path::{Path, PathBuf};

use geoward_simulator::trace::{self, Format, PositionSource, TraceError};

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/traces")
}

fn parse_err(text: &str, format: Format) -> TraceError {
    match trace::parse(text, format, "bad.file", "dev") {
        Ok(t) => panic!("expected an error, parsed {} traces", t.len()),
        Err(e) => e,
    }
}

/// Every real GPX file parses to the timed points a Python XML reading of the
/// same files counts (untimed tracks skipped), with non-decreasing times.
#[test]
fn real_gpx_files_parse_with_expected_counts_and_monotone_time() {
    // (file, timed trkpts, first time, last time)
    let expected = [
        (
            "around-visnjan-with-car.gpx",
            104,
            "2020-12-18T06:15:50Z",
            "2020-12-18T06:24:24Z",
        ),
        (
            "cerknicko-jezero.gpx",
            296,
            "2010-08-05T14:23:59Z",
            "2010-08-05T16:23:49Z",
        ),
        (
            "korita-zbevnica.gpx",
            513,
            "2010-10-03T09:36:30Z",
            "2010-10-03T13:19:31Z",
        ),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(traces_dir()).expect("traces dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("gpx") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let (_, count, first, last) = expected
            .iter()
            .find(|(f, ..)| *f == name)
            .unwrap_or_else(|| panic!("unexpected gpx file {name}: add it to this test"));
        let traces = trace::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(traces.len(), 1, "{name}");
        let t = &traces[0];
        assert_eq!(t.device, name.trim_end_matches(".gpx"));
        assert_eq!(t.points.len(), *count, "{name}");
        assert!(
            t.points.windows(2).all(|w| w[0].time_ms <= w[1].time_ms),
            "{name} not monotone"
        );
        assert_eq!(t.points[0].time_ms, trace::parse_time_ms(first).unwrap());
        assert_eq!(
            t.points.last().map(|p| p.time_ms),
            Some(trace::parse_time_ms(last).unwrap())
        );
        assert!(t.points.iter().all(|p| p.source == PositionSource::Gnss
            && (44.0..47.0).contains(&p.lat)
            && (13.0..15.0).contains(&p.lon)));
        seen += 1;
    }
    assert_eq!(seen, expected.len());
}

#[test]
fn gpx_reads_hdop_as_accuracy_and_namespaced_elements() {
    let gpx = r#"<?xml version="1.0"?>
<g:gpx xmlns:g="http://www.topografix.com/GPX/1/1" version="1.1">
 <g:trk><g:trkseg>
  <g:trkpt lat="38.5" lon="106.2"><g:time>2026-01-01T00:00:00Z</g:time><g:hdop>2.0</g:hdop></g:trkpt>
  <g:trkpt lat="38.6" lon="106.3"><g:time>2026-01-01T00:01:00Z</g:time></g:trkpt>
 </g:trkseg></g:trk>
</g:gpx>"#;
    let t = trace::parse(gpx, Format::Gpx, "x.gpx", "dev-9").unwrap();
    assert_eq!(t[0].device, "dev-9");
    assert_eq!(t[0].points.len(), 2);
    assert_eq!(t[0].points[0].accuracy_m, 10.0);
    assert_eq!(t[0].points[1].accuracy_m, trace::DEFAULT_GNSS_ACCURACY_M);
    assert_eq!(t[0].points[1].time_ms - t[0].points[0].time_ms, 60_000);
}

#[test]
fn truncated_gpx_names_the_last_line() {
    let text = std::fs::read_to_string(traces_dir().join("cerknicko-jezero.gpx")).unwrap();
    // Cut in the middle of the file, inside a track.
    let cut = &text[..text.len() / 2];
    let lines = cut.lines().count();
    let e = parse_err(cut, Format::Gpx);
    assert_eq!(e.reason(), "malformed_xml", "{e}");
    assert_eq!(e.line, lines, "{e}");
    assert!(
        e.to_string().starts_with(&format!("bad.file:{lines}:")),
        "{e}"
    );
}

#[test]
fn gpx_errors_name_line_and_column() {
    let bad_number = "<gpx version=\"1.1\"><trk><trkseg>\n\n  <trkpt lat=\"45.x\" lon=\"13\"><time>2020-01-01T00:00:00Z</time></trkpt>\n</trkseg></trk></gpx>";
    let e = parse_err(bad_number, Format::Gpx);
    assert_eq!(
        (e.reason(), e.line, e.column),
        ("bad_number", 3, Some(3)),
        "{e}"
    );
    assert!(e.to_string().contains("45.x"), "{e}");

    let bad_time = "<gpx version=\"1.0\"><trk><trkseg>\n<trkpt lat=\"45\" lon=\"13\"><time>noon</time></trkpt>\n</trkseg></trk></gpx>";
    let e = parse_err(bad_time, Format::Gpx);
    assert_eq!((e.reason(), e.line), ("bad_time", 2), "{e}");

    let missing_lon = "<gpx>\n<trk><trkseg><trkpt lat=\"45\"><time>2020-01-01T00:00:00Z</time></trkpt></trkseg></trk></gpx>";
    assert_eq!(
        parse_err(missing_lon, Format::Gpx).reason(),
        "missing_field"
    );

    let out_of_range = "<gpx>\n<trk><trkseg><trkpt lat=\"95\" lon=\"13\"><time>2020-01-01T00:00:00Z</time></trkpt></trkseg></trk></gpx>";
    assert_eq!(
        parse_err(out_of_range, Format::Gpx).reason(),
        "out_of_range"
    );

    let backwards = "<gpx><trk><trkseg>\n<trkpt lat=\"45\" lon=\"13\"><time>2020-01-01T00:01:00Z</time></trkpt>\n<trkpt lat=\"45\" lon=\"13\"><time>2020-01-01T00:00:00Z</time></trkpt>\n</trkseg></trk></gpx>";
    let e = parse_err(backwards, Format::Gpx);
    assert_eq!((e.reason(), e.line), ("time_goes_backwards", 3), "{e}");

    let partly_timed = "<gpx><trk><trkseg>\n<trkpt lat=\"45\" lon=\"13\"><time>2020-01-01T00:01:00Z</time></trkpt>\n<trkpt lat=\"45\" lon=\"13\"></trkpt>\n</trkseg></trk></gpx>";
    let e = parse_err(partly_timed, Format::Gpx);
    assert_eq!((e.reason(), e.line), ("missing_time", 3), "{e}");

    let mismatched = "<gpx><trk><trkseg>\n</trk></trkseg></gpx>";
    let e = parse_err(mismatched, Format::Gpx);
    assert_eq!((e.reason(), e.line), ("malformed_xml", 2), "{e}");

    assert_eq!(parse_err("<kml></kml>", Format::Gpx).reason(), "not_gpx");
    assert_eq!(
        parse_err("<gpx version=\"2.0\"/>", Format::Gpx).reason(),
        "not_gpx"
    );
    assert_eq!(parse_err("", Format::Gpx).reason(), "not_gpx");
    assert_eq!(parse_err("<gpx></gpx>", Format::Gpx).reason(), "empty");
}

#[test]
fn csv_groups_devices_sorts_by_time_and_reads_source() {
    let csv = "device,time,lat,lon,accuracy,source\r\n\
               b,2026-01-01T00:01:00Z,38.5,106.2,12,gnss\r\n\
               a,60000,38.5,106.2,250,cell\r\n\
               \r\n\
               b,2026-01-01T00:00:00Z,38.4,106.1,8.5,wifi\r\n";
    let t = trace::parse(csv, Format::Csv, "x.csv", "unused").unwrap();
    assert_eq!(
        t.iter().map(|t| t.device.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(t[0].points.len(), 2);
    assert!(t[0].points[0].time_ms < t[0].points[1].time_ms);
    assert_eq!(t[0].points[0].source, PositionSource::Wifi);
    assert_eq!(t[0].points[0].accuracy_m, 8.5);
    assert_eq!(t[1].points[0].time_ms, 60_000);
    assert_eq!(t[1].points[0].source, PositionSource::Cell);

    let plain = "device,time,lat,lon,accuracy\nd,0,1,2,3\n";
    let t = trace::parse(plain, Format::Csv, "x.csv", "unused").unwrap();
    assert_eq!(t[0].points[0].source, PositionSource::Gnss);
}

#[test]
fn csv_errors_name_line_and_column() {
    let e = parse_err("d,0,1,2,3\n", Format::Csv);
    assert_eq!((e.reason(), e.line), ("missing_header", 1), "{e}");
    assert!(
        e.to_string().contains("device,time,lat,lon,accuracy"),
        "{e}"
    );

    let e = parse_err(
        "device,time,lat,lon,accuracy\nd,0,1,2,3\nd,0,1,2\n",
        Format::Csv,
    );
    assert_eq!((e.reason(), e.line), ("wrong_column_count", 3), "{e}");
    assert!(e.to_string().contains("expected 5 columns, found 4"), "{e}");

    let e = parse_err(
        "device,time,lat,lon,accuracy\nd,0,1,2,3\nd,0,1,2x,3\n",
        Format::Csv,
    );
    assert_eq!(
        (e.reason(), e.line, e.column),
        ("bad_number", 3, Some(7)),
        "{e}"
    );
    assert_eq!(e.to_string(), "bad.file:3:7: bad number in lon: \"2x\"");

    let e = parse_err("device,time,lat,lon,accuracy\nd,then,1,2,3\n", Format::Csv);
    assert_eq!(
        (e.reason(), e.line, e.column),
        ("bad_time", 2, Some(3)),
        "{e}"
    );

    let e = parse_err("device,time,lat,lon,accuracy\nd,0,1,2,-3\n", Format::Csv);
    assert_eq!(e.reason(), "out_of_range");
    let e = parse_err(
        "device,time,lat,lon,accuracy,source\nd,0,1,2,3,gps2\n",
        Format::Csv,
    );
    assert_eq!(e.reason(), "bad_source");
    let e = parse_err("device,time,lat,lon,accuracy\n,0,1,2,3\n", Format::Csv);
    assert_eq!(e.reason(), "missing_field");
    let e = parse_err("device,time,lat,lon,accuracy\nd,0,NaN,2,3\n", Format::Csv);
    assert_eq!(e.reason(), "bad_number");
    assert_eq!(
        parse_err("device,time,lat,lon,accuracy\n", Format::Csv).reason(),
        "empty"
    );
    assert_eq!(parse_err("", Format::Csv).reason(), "empty");
}

#[test]
fn load_names_unknown_extension_and_missing_file() {
    let e = trace::load(Path::new("/nonexistent/x.kml"), None).unwrap_err();
    assert_eq!(e.reason(), "unknown_format");
    let e = trace::load(Path::new("/nonexistent/x.gpx"), None).unwrap_err();
    assert_eq!(e.reason(), "io");
}
