//! The command line as an engineer uses it, without a broker (`--dry-run`),
//! and the line-delimited formats it writes and reads.

use std::path::{Path, PathBuf};

use clap::Parser;
use geoward_simulator::cli::{self, Cli, Command};
use geoward_simulator::plan::Plan;
use geoward_simulator::trace::{self, Format, PositionSource};

fn gpx(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/traces")
        .join(name)
        .display()
        .to_string()
}

fn replay_plan(args: &[&str]) -> anyhow::Result<Plan> {
    let mut argv = vec!["geoward-sim", "replay"];
    argv.extend(args);
    match Cli::try_parse_from(argv)?.command {
        Command::Replay(a) => cli::replay_plan(&a, 1_800_000_000_000),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn replay_builds_copies_gaps_and_shift_from_arguments() {
    let file = gpx("around-visnjan-with-car.gpx");
    let plan = replay_plan(&[
        &file,
        "--device",
        "car",
        "--copies",
        "2",
        "--stagger-s",
        "30",
        "--gap",
        "60:120",
        "--shift-to-now",
        "--dry-run",
    ])
    .unwrap();
    assert_eq!(plan.devices(), ["car-001", "car-002"]);
    assert_eq!(plan.fix_count(), 208, "gaps batch fixes, never lose them");
    assert!(
        plan.sends.len() < 208,
        "the 2-minute gap turned fixes into batches"
    );
    assert_eq!(plan.start_ms(), Some(1_800_000_000_000));
}

#[test]
fn replay_placed_inside_or_across_a_real_county() {
    let zones = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/zones/ning2_xia4_yin2_chuan1.geojson")
        .display()
        .to_string();
    let areas = geoward_simulator::zones::load(Path::new(&zones)).unwrap();
    let county = geoward_simulator::zones::find(&areas, "贺兰县", "z").unwrap();
    let first_last = |plan: &Plan| {
        let pos = |s: &geoward_simulator::plan::Send| match &s.message {
            geoward_proto::Uplink::Fix(f) => geoward_simulator::geo::LatLon::new(f.lat, f.lon),
            m => panic!("{m:?}"),
        };
        (pos(&plan.sends[0]), pos(plan.sends.last().unwrap()))
    };
    let inside = replay_plan(&[
        &gpx("around-visnjan-with-car.gpx"),
        "--in-zone",
        &format!("{zones}:贺兰县"),
    ])
    .unwrap();
    let (a, _) = first_last(&inside);
    assert!(county.contains(a));
    let across = replay_plan(&[
        &gpx("korita-zbevnica.gpx"),
        "--cross",
        &format!("{zones}:贺兰县:exit"),
    ])
    .unwrap();
    let (a, b) = first_last(&across);
    assert!(county.contains(a) && !county.contains(b));
    let e = replay_plan(&[
        &gpx("korita-zbevnica.gpx"),
        "--in-zone",
        &format!("{zones}:nowhere"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("no zone \"nowhere\""), "{e}");
}

#[test]
fn written_plan_reads_back_as_an_ndjson_trace() {
    let plan = replay_plan(&[&gpx("cerknicko-jezero.gpx"), "--copies", "3"]).unwrap();
    let mut out = Vec::new();
    cli::write_plan(&plan, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), plan.sends.len());
    let traces = trace::parse(&text, Format::Ndjson, "plan.ndjson", "unused").unwrap();
    assert_eq!(traces.len(), 3);
    let original = trace::load(Path::new(&gpx("cerknicko-jezero.gpx")), None).unwrap();
    for t in &traces {
        assert_eq!(t.points.len(), 296);
        for (a, b) in t.points.iter().zip(&original[0].points) {
            assert_eq!(a.time_ms, b.time_ms);
        }
    }
    assert!((traces[0].points[0].lat - original[0].points[0].lat).abs() < 1e-9);
}

#[test]
fn ndjson_wire_lines_decode_through_proto_and_name_bad_lines() {
    let good = r#"{"type":"fix","seq":1,"time_ms":1767571200000,"lat":38.47,"lon":106.28,"accuracy_m":8.5,"source":"wifi"}
{"type":"fix","device_id":"other","seq":1,"time_ms":1767571260000,"lat":38.48,"lon":106.29,"accuracy_m":5,"source":"gnss"}

{"type":"fix","seq":2,"time_ms":1767571230000,"lat":38.47,"lon":106.28,"accuracy_m":8.5,"source":"gnss"}
"#;
    let t = trace::parse(good, Format::Ndjson, "x.ndjson", "dev").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].device.as_str(), t[0].points.len()), ("dev", 2));
    assert_eq!(t[0].points[0].source, PositionSource::Wifi);
    assert_eq!(t[1].device, "other");

    let bad_json = "{\"type\":\"fix\"}\n{\"type\":\n";
    let e = trace::parse(bad_json, Format::Ndjson, "x.ndjson", "dev").unwrap_err();
    // Line 1 parses as JSON but the wire decoder rejects it first.
    assert_eq!((e.reason(), e.line), ("wire_rejected", 1), "{e}");
    let e = trace::parse("\n\n{\"type\":\n", Format::Ndjson, "x.ndjson", "dev").unwrap_err();
    assert_eq!((e.reason(), e.line), ("bad_json", 3), "{e}");
    let out_of_range = "{\"type\":\"fix\",\"seq\":1,\"time_ms\":1767571200000,\"lat\":95,\"lon\":1,\"accuracy_m\":5,\"source\":\"gnss\"}\n";
    let e = trace::parse(out_of_range, Format::Ndjson, "x.ndjson", "dev").unwrap_err();
    assert_eq!((e.reason(), e.line), ("wire_rejected", 1), "{e}");
    assert!(e.to_string().starts_with("x.ndjson:1:"), "{e}");
}

#[test]
fn track_export_lines_parse_and_name_bad_lines() {
    let good = r#"{"device_id":"S0001-b","seq":2,"time":"2026-01-05T00:02:00Z","lat":38.47,"lon":106.28,"accuracy_m":8.5,"source":"gnss","received_ms":1}
{"device_id":"S0001-b","seq":1,"time_ms":1767571260000,"lat":38.46,"lon":106.27,"accuracy_m":300,"source":"cell"}
"#;
    let t = trace::parse(good, Format::TrackExport, "t.json", "unused").unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].points.len(), 2);
    assert!(t[0].points[0].time_ms < t[0].points[1].time_ms);
    assert_eq!(t[0].points[0].source, PositionSource::Cell);
    assert_eq!(
        Format::from_path(Path::new("day.track.ndjson")),
        Some(Format::TrackExport)
    );

    let cases = [
        (
            "{\"device_id\":\"d\",\"lat\":1,\"lon\":2,\"accuracy_m\":3}\n",
            "missing_field",
        ),
        (
            "{\"device_id\":\"d\",\"time_ms\":0,\"lat\":1,\"lon\":200,\"accuracy_m\":3}\n",
            "out_of_range",
        ),
        (
            "{\"device_id\":\"d\",\"time_ms\":0,\"lon\":2}\n",
            "bad_json",
        ),
        (
            "{\"device_id\":\"d\",\"time\":\"soon\",\"lat\":1,\"lon\":2,\"accuracy_m\":3}\n",
            "bad_time",
        ),
        (
            "{\"device_id\":\"d\",\"time_ms\":0,\"lat\":1,\"lon\":2,\"accuracy_m\":3,\"source\":\"x\"}\n",
            "bad_source",
        ),
    ];
    for (line, reason) in cases {
        let text = format!("{}{line}", good.lines().next().unwrap().to_owned() + "\n");
        let e = trace::parse(&text, Format::TrackExport, "t.json", "u").unwrap_err();
        assert_eq!((e.reason(), e.line), (reason, 2), "{line}: {e}");
    }
}

#[test]
fn track_query_pages_as_the_service_returns_them() {
    // Two pages of `GET /api/subjects/{id}/track`, concatenated; the second
    // pretty-printed, with a fix whose accuracy is unknown.
    let pages = r#"{"subject_id":"S0001","points":[{"device_id":"S0001-b","seq":1,"time":"2026-01-05T00:00:00Z","lat":38.47,"lon":106.28,"accuracy_m":8.5,"source":"gnss"},{"device_id":"S0001-p","seq":1,"time":"2026-01-05T00:00:30Z","lat":38.47,"lon":106.28,"accuracy_m":20,"source":"fused"}],"next":"x"}
{
  "subject_id": "S0001",
  "points": [
    {"device_id":"S0001-b","seq":2,"time":"2026-01-05T00:01:00Z","lat":38.471,"lon":106.281,"accuracy_m":null,"source":"gnss"}
  ],
  "next": null
}
"#;
    let t = trace::parse(pages, Format::TrackExport, "track.json", "u").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].device.as_str(), t[0].points.len()), ("S0001-b", 2));
    assert_eq!(t[0].points[1].accuracy_m, trace::DEFAULT_GNSS_ACCURACY_M);
    assert_eq!(t[1].points[0].source, PositionSource::Fused);

    let bad = pages.replace("\"lat\":38.471", "\"lat\":138.471");
    let e = trace::parse(&bad, Format::TrackExport, "track.json", "u").unwrap_err();
    assert_eq!((e.reason(), e.line), ("out_of_range", 2), "{e}");
    assert!(e.to_string().contains("point 0: lat out of range"), "{e}");
    let cut = &pages[..pages.len() - 20];
    let e = trace::parse(cut, Format::TrackExport, "track.json", "u").unwrap_err();
    assert_eq!(e.reason(), "bad_json", "{e}");
}

#[test]
fn malformed_trace_file_fails_the_command_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("day.csv");
    std::fs::write(
        &path,
        "device,time,lat,lon,accuracy\nd,2026-01-05T00:00:00Z,38.4,106.2,5\nd,2026-01-05T00:01:00Z,38.4,east,5\n",
    )
    .unwrap();
    let e = replay_plan(&[path.to_str().unwrap()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}:3:29: bad number in lon: \"east\"", path.display())
    );
}

#[test]
fn check_command_exits_non_zero_on_any_difference() {
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expect.json");
    std::fs::write(
        &expect,
        r#"{"version":1,"incidents":[{"subject":"S1","device":"S1-b","kind":"tamper","not_before":1000,"not_after":5000}]}"#,
    )
    .unwrap();
    let run = |observed: &str| {
        let obs = dir.path().join("observed.ndjson");
        std::fs::write(&obs, observed).unwrap();
        let cli = Cli::try_parse_from([
            "geoward-sim",
            "check",
            "--expect",
            expect.to_str().unwrap(),
            "--observed",
            obs.to_str().unwrap(),
        ])
        .unwrap();
        format!("{:?}", cli::main(cli).unwrap())
    };
    let ok = format!("{:?}", std::process::ExitCode::SUCCESS);
    let fail = format!("{:?}", std::process::ExitCode::FAILURE);
    assert_eq!(
        run("{\"subject\":\"S1\",\"kind\":\"tamper\",\"at_ms\":2000}\n"),
        ok
    );
    assert_eq!(run(""), fail);
    assert_eq!(
        run(
            "{\"subject\":\"S1\",\"kind\":\"tamper\",\"at_ms\":2000}\n{\"subject\":\"S2\",\"kind\":\"zone_exit\",\"at_ms\":2000}\n"
        ),
        fail
    );
}

#[test]
fn fleet_arguments_make_a_config_with_scenarios() {
    let cli = Cli::try_parse_from([
        "geoward-sim",
        "fleet",
        "--zones",
        "z.geojson",
        "--zone",
        "兴庆区",
        "--subjects",
        "3",
        "--all-scenarios",
        "--scenario",
        "strap_cut@1",
        "--days",
        "2",
        "--shift-to-now",
    ])
    .unwrap();
    let Command::Fleet(a) = cli.command else {
        panic!("not fleet")
    };
    // 2026-01-05T03:00:00Z is 11:00 in UTC+8; the day starts at local midnight.
    let cfg = cli::fleet_config(&a, 1_767_582_000_000).unwrap();
    assert_eq!(cfg.start_ms, 1_767_542_400_000);
    assert_eq!(cfg.scenarios.len(), 9);
    assert_eq!(cfg.subjects, 9, "at least one subject per scenario");
    assert_eq!(cfg.scenarios[8].day, 1);
    assert_eq!(cfg.duration_ms, 2 * 86_400_000);
    let mut fast = a;
    fast.wire.speed = "max".into();
    let cfg = cli::fleet_config(&fast, 1_767_582_000_000).unwrap();
    assert_eq!(
        cfg.start_ms,
        1_767_542_400_000 - 2 * 86_400_000,
        "ends at midnight"
    );
    let bad = Cli::try_parse_from([
        "geoward-sim",
        "fleet",
        "--zones",
        "z",
        "--zone",
        "z",
        "--scenario",
        "nap",
    ])
    .unwrap();
    let Command::Fleet(b) = bad.command else {
        panic!("not fleet")
    };
    assert!(cli::fleet_config(&b, 0).is_err());
}

/// A fake service feed: chunked SSE, one frame split across chunks, a
/// change that is not an opening, then the end of the stream.
#[tokio::test]
async fn feed_follower_reads_chunked_sse() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut req = vec![0u8; 1024];
        let n = s.read(&mut req).await.unwrap();
        let frame = |change: &str| {
            format!(
                "id: 1\nevent: incident\ndata: {{\"schema\":1,\"change\":\"{change}\",\"incident\":{{\"subject\":\"S0007\",\"kind\":\"tamper\",\"episode_kind\":\"tamper\",\"opened_at\":1767589200000}}}}\n\n"
            )
        };
        let opened = frame("opened");
        let (a, b) = opened.split_at(40);
        let acked = frame("acknowledged");
        let mut out = String::from(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        for part in [": keep-alive\n\n", a, b, &acked] {
            out += &format!("{:x}\r\n{part}\r\n", part.len());
        }
        out += "0\r\n\r\n";
        s.write_all(out.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&req[..n]).to_string()
    });
    let url = format!("http://127.0.0.1:{port}/api/feed");
    let seen = geoward_simulator::feed::follow(&url, Some("tok"), std::future::pending())
        .await
        .unwrap();
    let req = server.await.unwrap();
    assert!(req.contains("Authorization: Bearer tok"), "{req}");
    assert!(req.starts_with("GET /api/feed HTTP/1.1"), "{req}");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (
            seen[0].incident.subject.as_str(),
            seen[0].incident.kind.as_str()
        ),
        ("S0007", "tamper")
    );
    assert_eq!(seen[0].incident.at_ms, 1_767_589_200_000);

    let refused = geoward_simulator::feed::follow(
        &format!("http://127.0.0.1:{port}/x"),
        None,
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.reason(), "io");
}
