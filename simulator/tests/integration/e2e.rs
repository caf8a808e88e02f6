//! End to end against the real service: geoward-ingest runs in-process (its
//! broker, pipeline, SQLite store, engines and HTTP API on free ports), is
//! seeded through `geoward_ingest::import::apply`, and `geoward-sim` runs
//! through its command line with the credentials the service issued
//! (`--credentials`, the saved output format of `geoward import`).
//!
//! Waits are conditions with deadlines; the only fixed waits are the
//! simulator's own `--settle-s` windows, which are what "nothing else came"
//! means on a live feed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use geoward_ingest::Config;
use geoward_ingest::api::{Role, create_token};
use geoward_ingest::import::{
    DeviceEntry, ImportFile, OfficeEntry, OrderEntry, RuleEntry, SubjectEntry, ZoneEntry,
};
use geoward_ingest::store::Store;
use geoward_simulator::cli::Cli;
use geoward_simulator::geo::LatLon;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ZHENGZHOU: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/zones/he2_nan2_zheng4_zhou1.geojson"
);
const TRACES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/traces");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real service on free ports with a fresh SQLite database.
struct Service {
    dir: tempfile::TempDir,
    http: SocketAddr,
    mqtt_port: u16,
    admin: String,
    /// The issued device credentials, as `geoward import` prints them.
    credentials: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Service {
    /// Seeds the registry with `doc` (before the monitor loads it: direct
    /// store writes do not poke the running monitor's reload) and starts.
    async fn start(doc: &ImportFile, adjust: impl FnOnce(&mut Config)) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().join("data");
        config.storage.batch_max_delay_ms = 20;
        config.mqtt.tcp_listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        config.mqtt.segment_size_bytes = 1 << 20;
        config.mqtt.segment_count = 4;
        config.alerting.tick_ms = 50;
        adjust(&mut config);
        let store = Store::connect(&config.storage).await.unwrap();
        store.migrate().await.unwrap();
        let admin = create_token(&store, "root", Role::Admin, None)
            .await
            .unwrap();
        let credentials = import(&store, doc, dir.path()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let cfg = config.clone();
        let task = tokio::spawn(async move {
            geoward_ingest::run(cfg, listener, async move {
                let _ = stopped.await;
            })
            .await
        });
        let s = Service {
            dir,
            http,
            mqtt_port: config.mqtt.tcp_listen.port(),
            admin,
            credentials,
            stop: Some(stop),
            task: Some(task),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while s.get("/readyz").await.0 != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "service not ready in time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s
    }

    /// GET with the admin token: (status, body).
    async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(self.http).await else {
            return (0, String::new());
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
            self.admin
        );
        if s.write_all(req.as_bytes()).await.is_err() {
            return (0, String::new());
        }
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).await.is_err() {
            return (0, String::new());
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn broker(&self) -> String {
        format!("127.0.0.1:{}", self.mqtt_port)
    }

    fn feed_url(&self, office: &str) -> String {
        format!("http://{}/api/feed?office={office}", self.http)
    }

    /// Every stored fix of a subject, read back through the track API and
    /// parsed with the simulator's own track-export reader.
    async fn stored_fixes(&self, subject: &str) -> Vec<(String, i64)> {
        let mut pages = String::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!(
                "/api/subjects/{subject}/track?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=1000"
            );
            if let Some(a) = &after {
                path.push_str(&format!("&after={a}"));
            }
            let (status, body) = self.get(&path).await;
            assert_eq!(status, 200, "{body}");
            let page: Value = serde_json::from_str(&body).unwrap();
            pages.push_str(&body);
            pages.push('\n');
            match page["next"].as_str() {
                Some(n) => after = Some(n.to_owned()),
                None => break,
            }
        }
        let traces = geoward_simulator::trace::parse(
            &pages,
            geoward_simulator::trace::Format::TrackExport,
            "track.json",
            subject,
        )
        .unwrap();
        traces
            .iter()
            .flat_map(|t| t.points.iter().map(|p| (t.device.clone(), p.time_ms)))
            .collect()
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(12), t)
                .await
                .expect("service stops within the shutdown deadline")
                .unwrap()
                .unwrap();
        }
    }
}

/// Applies an import document and writes the issued device credentials the
/// way `geoward import` prints them; returns that file.
async fn import(store: &Store, doc: &ImportFile, dir: &Path) -> PathBuf {
    let report = geoward_ingest::import::apply(store, doc, dir)
        .await
        .unwrap();
    let mut text = String::new();
    for c in &report.new_devices {
        text.push_str(&format!(
            "new device {}: mqtt_password = {} payload_key_hex = {} (shown once)\n",
            c.device_id, c.password, c.payload_key
        ));
    }
    let path = dir.join("credentials.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `geoward-sim ARGS` (on its own runtime, as the binary does); the
/// exit code and the JSON report.
async fn sim(args: Vec<String>, report: &Path) -> (ExitCode, Value) {
    let mut argv = vec!["geoward-sim".to_owned()];
    argv.extend(args);
    argv.extend([
        "--quiet".to_owned(),
        "--report".to_owned(),
        report.display().to_string(),
    ]);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let code = tokio::task::spawn_blocking(move || geoward_simulator::cli::main(cli))
        .await
        .unwrap()
        .unwrap();
    // A dry run writes no report.
    let report = std::fs::read_to_string(report)
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap_or(Value::Null);
    (code, report)
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// A city bureau with one justice office.
fn offices() -> Vec<OfficeEntry> {
    vec![
        OfficeEntry {
            id: s("zz"),
            parent_id: None,
            name: s("Zhengzhou city bureau"),
            kind: s("city_bureau"),
        },
        OfficeEntry {
            id: s("zyoffice"),
            parent_id: Some(s("zz")),
            name: s("Linshanzhai justice office"),
            kind: s("justice_office"),
        },
    ]
}

fn subject(id: &str, interval_s: i64) -> SubjectEntry {
    SubjectEntry {
        id: s(id),
        office_id: s("zyoffice"),
        name: format!("Subject {id}"),
        supervision_level: s("normal"),
        expected_interval_s: interval_s,
    }
}

fn order(subject: &str, now: DateTime<Utc>) -> OrderEntry {
    OrderEntry {
        id: format!("o{subject}"),
        subject_id: s(subject),
        legal_basis: s("warned_leaving_area"),
        approver: s("judge wang"),
        starts_at: now - chrono::Duration::days(5),
        ends_at: now + chrono::Duration::days(60),
    }
}

/// One feature of the Zhengzhou file as a standalone GeoJSON document.
fn district(name: &str) -> String {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(ZHENGZHOU).unwrap()).unwrap();
    let feature = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} is in the file"))
        .clone();
    serde_json::json!({"type": "FeatureCollection", "features": [feature]}).to_string()
}

/// The incidents a `--report` says were compared with the feed.
fn incidents(report: &Value) -> (u64, u64, u64, u64) {
    let i = &report["incidents"];
    let n = |k: &str| i[k].as_u64().unwrap_or_else(|| panic!("{k} in {report}"));
    (n("expected"), n("matched"), n("missing"), n("unexpected"))
}

/// A real GPX track placed so it starts inside Zhengzhou's Zhongyuan
/// district and ends outside, replayed as fast as the wire allows with the
/// bracelet's issued credentials: every fix acked and stored, and exactly
/// one zone exit on the office's live feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpx_track_korita_zbevnica_leaving_a_real_district_gives_one_zone_exit() {
    replay_real_track_across_a_district("korita-zbevnica.gpx", "exit").await;
}

/// The same with the GPX 1.0 walk around Cerknica lake (track points
/// beside waypoints, which the replay ignores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpx_track_cerknicko_jezero_leaving_a_real_district_gives_one_zone_exit() {
    replay_real_track_across_a_district("cerknicko-jezero.gpx", "exit").await;
}

/// The GPX 1.1 car drive around Višnjan (10 s fixes at driving speed) is a
/// loop: placed as an excursion out of the district and back, it gives one
/// zone exit (that clears when the car is back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpx_track_around_visnjan_driving_out_and_back_gives_one_zone_exit() {
    replay_real_track_across_a_district("around-visnjan-with-car.gpx", "excursion").await;
}

async fn replay_real_track_across_a_district(track: &str, crossing: &str) {
    let now = Utc::now();
    let gpx = format!("{TRACES}/{track}");
    let cross = format!("{ZHENGZHOU}:中原区:{crossing}");
    let doc = ImportFile {
        offices: offices(),
        subjects: vec![subject("s1", 60)],
        devices: vec![DeviceEntry {
            id: s("gpx1"),
            kind: s("bracelet"),
            subject_id: Some(s("s1")),
        }],
        zones: vec![ZoneEntry {
            id: s("zhongyuan"),
            office_id: s("zz"),
            name: s("Zhongyuan district"),
            kind: s("permitted"),
            geojson: Some(district("中原区")),
            geojson_file: None,
        }],
        rules: vec![RuleEntry {
            id: s("r1"),
            subject_id: s("s1"),
            kind: s("stay_inside"),
            zone_id: s("zhongyuan"),
            params: s("{}"),
        }],
        orders: vec![order("s1", now)],
        ..ImportFile::default()
    };
    let svc = Service::start(&doc, |_| {}).await;
    let creds = svc.credentials.clone();

    // The plan the replay will publish, to know when it leaves the district.
    let replay_args = |extra: &[String]| {
        let mut a = vec![
            s("replay"),
            gpx.clone(),
            s("--device"),
            s("gpx1"),
            s("--cross"),
            cross.clone(),
            s("--speed"),
            s("max"),
            s("--shift-to-now"),
        ];
        a.extend_from_slice(extra);
        a
    };
    let Cli {
        command: geoward_simulator::cli::Command::Replay(parsed),
    } = Cli::try_parse_from(std::iter::once(s("geoward-sim")).chain(replay_args(&[]))).unwrap()
    else {
        unreachable!("parsed a replay")
    };
    let plan = geoward_simulator::cli::replay_plan(&parsed, now.timestamp_millis()).unwrap();
    let areas = geoward_simulator::zones::load(Path::new(ZHENGZHOU)).unwrap();
    let area = geoward_simulator::zones::find(&areas, "中原区", ZHENGZHOU).unwrap();
    let fixes: Vec<(i64, LatLon)> = plan
        .sends
        .iter()
        .filter_map(|x| match &x.message {
            geoward_proto::Uplink::Fix(f) => Some((f.time.0, LatLon::new(f.lat, f.lon))),
            _ => None,
        })
        .collect();
    assert!(fixes.len() > 50, "a real track: {} fixes", fixes.len());
    assert!(area.contains(fixes[0].1), "starts inside");
    let first_out = fixes.iter().find(|(_, p)| !area.contains(*p)).unwrap().0;
    assert_eq!(
        !area.contains(fixes.last().unwrap().1),
        crossing == "exit",
        "ends outside after an exit, inside after an excursion"
    );
    let expect = svc.dir.path().join("expect.json");
    let window = serde_json::json!({
        "version": 1,
        "incidents": [{"subject": "s1", "device": "gpx1", "kind": "zone_exit",
            "not_before": first_out - 60_000, "not_after": first_out + 15 * 60_000,
            "trigger_at": first_out}],
    });
    std::fs::write(&expect, window.to_string()).unwrap();

    let report_path = svc.dir.path().join("replay.json");
    let (code, report) = sim(
        replay_args(&[
            s("--broker"),
            svc.broker(),
            s("--credentials"),
            creds.display().to_string(),
            s("--mac"),
            s("--expect"),
            expect.display().to_string(),
            s("--feed"),
            svc.feed_url("zyoffice"),
            s("--feed-token"),
            svc.admin.clone(),
            s("--settle-s"),
            s("3"),
        ]),
        &report_path,
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS, "{report}");
    assert_eq!(
        report["fixes"].as_u64(),
        Some(fixes.len() as u64),
        "{report}"
    );
    assert_eq!(report["acked"], report["published"], "{report}");
    assert_eq!(report["unacked_at_end"], 0, "{report}");
    assert_eq!(report["connect_errors"], 0, "{report}");
    assert_eq!(incidents(&report), (1, 1, 0, 0), "{report}");

    // Every fix is in the database, once, with its device time.
    let mut stored: Vec<i64> = svc
        .stored_fixes("s1")
        .await
        .into_iter()
        .map(|(d, t)| {
            assert_eq!(d, "gpx1");
            t
        })
        .collect();
    stored.sort_unstable();
    let mut sent: Vec<i64> = fixes.iter().map(|(t, _)| *t).collect();
    sent.sort_unstable();
    // The run shifted the track to its own "now", a moment after the plan
    // above was built: same fixes, one small offset.
    assert_eq!(stored.len(), sent.len());
    let offset = stored[0] - sent[0];
    assert!((0..60_000).contains(&offset), "shifted by {offset} ms");
    let stored: Vec<i64> = stored.iter().map(|t| t - offset).collect();
    assert_eq!(stored, sent);
    svc.stop().await;
}

/// The load mode holds a modest rate against the real service for a few
/// seconds, every message acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_holds_its_rate_against_the_service() {
    let devices = 20;
    let doc = ImportFile {
        offices: offices(),
        devices: (1..=devices)
            .map(|i| DeviceEntry {
                id: format!("load{i:06}"),
                kind: s("bracelet"),
                subject_id: None,
            })
            .collect(),
        ..ImportFile::default()
    };
    let svc = Service::start(&doc, |_| {}).await;
    let creds = svc.credentials.clone();
    let report_path = svc.dir.path().join("load.json");
    let (code, report) = sim(
        vec![
            s("load"),
            s("--devices"),
            devices.to_string(),
            s("--rate"),
            s("200"),
            s("--ramp-up"),
            s("1"),
            s("--duration"),
            s("3"),
            s("--ramp-down"),
            s("1"),
            s("--at"),
            s("34.75,113.62"),
            s("--broker"),
            svc.broker(),
            s("--credentials"),
            creds.display().to_string(),
            s("--mac"),
        ],
        &report_path,
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS, "{report}");
    assert_eq!(report["devices"], devices, "{report}");
    assert_eq!(report["connect_errors"], 0, "{report}");
    assert_eq!(report["acked"], report["published"], "{report}");
    assert_eq!(report["unacked_at_end"], 0, "{report}");
    let hold = report["hold_rate_per_s"].as_f64().unwrap();
    assert!(
        (180.0..=220.0).contains(&hold),
        "held {hold} fixes/s against a target of 200: {report}"
    );
    let published = report["fixes"].as_u64().unwrap();
    assert!(published >= 700, "{published} fixes: {report}");
    svc.stop().await;
}

/// Yesterday's local midnight in Zhengzhou (UTC+8), RFC 3339: a fleet day
/// that lies wholly in the past, with local times (curfew) aligned.
fn yesterday_midnight_local() -> String {
    let local = Utc::now() + chrono::Duration::hours(8);
    let day = local.date_naive() - chrono::Duration::days(1);
    format!("{}T00:00:00+08:00", day.format("%Y-%m-%d"))
}

/// Every scripted scenario against the real service, a day compressed into
/// seconds: the registry comes from `fleet --write-import` (applied like
/// `geoward import`), the run from `fleet --expect --feed` with the issued
/// credentials; exit code 0 only when exactly the expected incidents came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_produces_exactly_its_incident_through_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let import_path = dir.path().join("fleet.toml");
    let expect = dir.path().join("expect.json");
    let start = yesterday_midnight_local();
    let fleet_args = |extra: &[String]| {
        let mut a = vec![
            s("fleet"),
            s("--zones"),
            s(ZHENGZHOU),
            s("--zone"),
            s("中原区"),
            s("--subjects"),
            s("8"),
            s("--all-scenarios"),
            s("--seed"),
            s("7"),
            s("--start"),
            start.clone(),
            // Two hours of device time a second: a day in 12 s, and a
            // subject's bracelet and phone stay in step (the service
            // pairs their positions only within 2 min of device time).
            s("--speed"),
            s("7200"),
            s("--expect"),
            expect.display().to_string(),
        ];
        a.extend_from_slice(extra);
        a
    };
    // The registry the fleet needs, written without connecting.
    let (code, _) = sim(
        fleet_args(&[
            s("--dry-run"),
            s("--write-import"),
            import_path.display().to_string(),
            s("--office"),
            s("zyoffice"),
            s("--expected-interval-s"),
            s("1"),
        ]),
        &dir.path().join("dry.json"),
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let mut doc: ImportFile =
        toml::from_str(&std::fs::read_to_string(&import_path).unwrap()).unwrap();
    doc.offices = offices();

    // Silence counts in wall-clock time: one second expected between
    // messages, lost contact after four silent seconds. The silent subject
    // stops at 13:00, 5.5 s before the end of the run; everyone else sends
    // until the end, followed by about a second of drain and settling.
    let svc = Service::start(&doc, |c| {
        c.alerting.policy.lost_contact_factor.normal = 4;
    })
    .await;
    let report_path = svc.dir.path().join("fleet.json");
    let (code, report) = sim(
        fleet_args(&[
            s("--broker"),
            svc.broker(),
            s("--credentials"),
            svc.credentials.display().to_string(),
            s("--mac"),
            s("--feed"),
            svc.feed_url("zyoffice"),
            s("--feed-token"),
            svc.admin.clone(),
            s("--settle-s"),
            s("1"),
        ]),
        &report_path,
    )
    .await;
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(&expect).unwrap()).unwrap();
    let kinds: Vec<&str> = exp["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "zone_exit",
            "curfew_breach",
            "curfew_breach",
            "exclusion_entry",
            "tamper",
            "power_off",
            "lost_contact",
            "separation"
        ]
    );
    assert_eq!(report["unacked_at_end"], 0, "{report}");
    assert_eq!(report["acked"], report["published"], "{report}");

    // What the service opened, from its incident list.
    let (status, body) = svc.get("/api/incidents").await;
    assert_eq!(status, 200, "{body}");
    let mut opened: Vec<(String, String)> = serde_json::from_str::<Vec<Value>>(&body)
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["subject"].as_str().unwrap().to_owned(),
                i["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    opened.sort();
    let mut wanted: Vec<(String, String)> = exp["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["subject"].as_str().unwrap().to_owned(),
                i["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // The power-off subject also stays silent past the lost-contact
    // deadline: that silence is on the power-off incident's timeline, not a
    // second incident (one incident per episode).
    wanted.sort();
    assert_eq!(opened, wanted, "{report}");
    assert_eq!(incidents(&report), (8, 8, 0, 0), "{report}");
    assert_eq!(code, ExitCode::SUCCESS, "{report}");
    svc.stop().await;
}
