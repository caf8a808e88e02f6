//! `geoward demo`: the whole system on one machine in one command.
//!
//! Seeds a fresh embedded database with the twelve real districts and counties of
//! Zhengzhou (bundled GeoJSON), a city bureau with a county bureau and a justice
//! office per district, and a few hundred subjects under active monitoring orders,
//! each wearing a simulated bracelet that must stay inside its district. The
//! bracelets are real MQTT clients speaking the device protocol (MAC-sealed JSON,
//! acks); most of them wander around home, and one after another a subject walks
//! out of its district, goes silent or cuts the strap. Incident changes are read
//! from the city bureau's live feed over HTTP, exactly as an officer's browser
//! would, and printed as they happen.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use geoward_geofence::{Relation, ZoneSet};
use geoward_proto::{
    DeviceId, Encoding, Fix, GnssState, Heartbeat, PositionSource, Protection, StrapState,
    Timestamp, Uplink,
};
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::import::{ImportFile, OfficeEntry, OrderEntry, RuleEntry, SubjectEntry, ZoneEntry};
use crate::store::Store;

/// The bundled sample: Zhengzhou's districts and counties (ECharts map data).
const ZHENGZHOU: &str = include_str!("../demo/zhengzhou.geojson");

/// Reporting interval of the simulated bracelets, seconds.
const REPORT_EVERY_S: u64 = 10;

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated subjects (one bracelet each).
    pub subjects: usize,
    /// Data directory; wiped at start.
    pub data_dir: PathBuf,
    /// Seed of the simulated fleet.
    pub seed: u64,
}

/// One district of the sample.
struct District {
    id: String,
    name: String,
    feature: Value,
    zones: ZoneSet,
    centre: (f64, f64),
}

fn districts() -> anyhow::Result<Vec<District>> {
    let doc: Value = serde_json::from_str(ZHENGZHOU).context("bundled sample is not json")?;
    let features = doc["features"]
        .as_array()
        .context("bundled sample has no features")?;
    let mut out = Vec::new();
    for (i, f) in features.iter().enumerate() {
        let (zones, _) = geoward_geofence::import_value(
            &json!({ "type": "FeatureCollection", "features": [f] }),
        )
        .context("bundled district does not import")?;
        let hint = &f["properties"]["centroid_hint"];
        out.push(District {
            id: format!("d{:02}", i + 1),
            name: f["properties"]["name"].as_str().unwrap_or("?").to_owned(),
            feature: f.clone(),
            zones,
            centre: (
                hint[0].as_f64().unwrap_or(113.6),
                hint[1].as_f64().unwrap_or(34.7),
            ),
        });
    }
    Ok(out)
}

/// A random point at least 1.5 km inside the district (rejection sampling around
/// its centre).
fn home_in(d: &District, rng: &mut impl Rng) -> (f64, f64) {
    for _ in 0..10_000 {
        let lon = d.centre.0 + rng.random_range(-0.12..0.12);
        let lat = d.centre.1 + rng.random_range(-0.1..0.1);
        if let Some(z) = d.zones.locate(lon, lat).first()
            && d.zones.relate(*z, lon, lat, 1500.0) == Relation::Inside
        {
            return (lon, lat);
        }
    }
    d.centre
}

/// Metres east of a longitude, at a latitude, in degrees.
fn east(lat: f64, metres: f64) -> f64 {
    metres / (111_320.0 * lat.to_radians().cos())
}

/// The first point walking east from `from` that is 1 km outside the district.
fn outside_east(d: &District, from: (f64, f64)) -> (f64, f64) {
    let step = east(from.1, 100.0);
    let mut lon = from.0;
    for _ in 0..2000 {
        lon += step;
        if d.zones.locate(lon, from.1).is_empty() {
            return (lon + 10.0 * step, from.1);
        }
    }
    (lon, from.1)
}

/// What a simulated subject is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Script {
    /// Wandering around home.
    Home,
    /// Walking east out of the district, then staying away.
    LeavingTo((f64, f64)),
    /// Not reporting until the given report count.
    SilentUntil(u64),
}

struct Bracelet {
    id: DeviceId,
    key: Vec<u8>,
    client: AsyncClient,
    home: (f64, f64),
    at: (f64, f64),
    seq: u64,
    script: Script,
}

impl Bracelet {
    async fn send(&mut self, message: Uplink) {
        if let Ok(payload) = geoward_proto::encode_uplink(
            &self.id,
            &message,
            Encoding::Json,
            Protection::Mac { secret: &self.key },
        ) {
            let topic = format!("geoward/v1/dev/{}/up/json", self.id);
            let _ = self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, payload);
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// Runs the demo until `shutdown` completes.
pub async fn run(
    mut config: Config,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if opts.data_dir.exists() {
        std::fs::remove_dir_all(&opts.data_dir)
            .with_context(|| format!("wiping the demo directory {}", opts.data_dir.display()))?;
    }
    config.storage.database_url = String::new();
    config.storage.data_dir = opts.data_dir.clone();
    // Escalation after a minute, so it shows within the demo.
    let minute = geoward_alerting::policy::PerLevel {
        strict: Some(60_000),
        normal: Some(60_000),
        lenient: Some(60_000),
    };
    config.alerting.policy.ack_timeout.high_ms = minute;
    config.alerting.policy.ack_timeout.critical_ms = minute;
    // Demo pacing: a breach confirms after 3 fixes over 20 s (not 2 min), and a
    // bracelet is lost after 3 missed reports (not 10).
    config.alerting.thresholds.normal.permitted = geoward_geofence::RuleThresholds {
        confirm_fixes: 3,
        confirm_seconds: 20,
        return_fixes: 3,
        return_seconds: 20,
    };
    config.alerting.policy.lost_contact_factor.normal = 3;

    std::fs::create_dir_all(&opts.data_dir)?;
    let store = Store::connect(&config.storage).await?;
    store.migrate().await?;
    let districts = districts()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let (doc, homes) = sample(&districts, opts.subjects, &mut rng)?;
    let report = crate::import::apply(&store, &doc, &opts.data_dir).await?;
    let admin =
        crate::api::create_token(&store, "demo-admin", crate::api::Role::Admin, None).await?;
    let bureau =
        crate::api::create_token(&store, "demo-duty", crate::api::Role::Bureau, Some("zz")).await?;
    store.close().await;

    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding http listener {}", config.http.listen))?;
    let http_addr = http.local_addr()?;
    let mqtt_addr = config.mqtt.tcp_listen;
    let stop = CancellationToken::new();
    let service_stop = stop.clone();
    let service = tokio::spawn(crate::run(config, http, async move {
        service_stop.cancelled().await;
    }));
    wait_ready(http_addr).await?;

    println!();
    println!(
        "Geoward demo: {} subjects in the {} districts of Zhengzhou.",
        opts.subjects,
        districts.len()
    );
    println!(
        "  data       {} (wiped at every start)",
        opts.data_dir.display()
    );
    println!(
        "  devices    {} simulated bracelets over MQTT at {mqtt_addr}, reporting every {REPORT_EVERY_S} s",
        report.new_devices.len()
    );
    println!(
        "  incidents  curl -s -H 'Authorization: Bearer {bureau}' http://{http_addr}/api/incidents"
    );
    println!(
        "  live feed  curl -sN -H 'Authorization: Bearer {bureau}' http://{http_addr}/api/feed"
    );
    println!("  admin      token {admin}");
    println!("  metrics    http://{http_addr}/metrics");
    println!("Every 30 s a subject walks out of its district, goes silent or cuts the strap;");
    println!("incidents open, escalate after a minute without acknowledgement, and appear below.");
    println!(
        "Demo pacing: breaches confirm after 20 s and contact is lost after 30 s (production: minutes)."
    );
    println!("Ctrl-C stops.");
    println!();

    let fleet_stop = stop.clone();
    let fleet = tokio::spawn(fleet(
        report.new_devices,
        homes,
        districts,
        mqtt_addr,
        opts.seed,
        fleet_stop,
    ));
    let feed = tokio::spawn(print_feed(http_addr, bureau, stop.clone()));

    shutdown.await;
    println!("stopping the demo");
    stop.cancel();
    let _ = fleet.await;
    let _ = feed.await;
    service.await.context("service task")?
}

/// A device id and where its wearer lives (lon, lat).
type Home = (String, (f64, f64));

/// The import document of the sample, and each subject's home.
fn sample(
    districts: &[District],
    subjects: usize,
    rng: &mut impl Rng,
) -> anyhow::Result<(ImportFile, Vec<Home>)> {
    let now = Utc::now();
    let mut doc = ImportFile::default();
    doc.offices.push(OfficeEntry {
        id: "zz".into(),
        parent_id: None,
        name: "郑州市司法局".into(),
        kind: "city_bureau".into(),
    });
    for d in districts {
        doc.offices.push(OfficeEntry {
            id: d.id.clone(),
            parent_id: Some("zz".into()),
            name: format!("{}司法局", d.name),
            kind: "county_bureau".into(),
        });
        doc.offices.push(OfficeEntry {
            id: format!("{}-so", d.id),
            parent_id: Some(d.id.clone()),
            name: format!("{}司法所", d.name),
            kind: "justice_office".into(),
        });
        doc.zones.push(ZoneEntry {
            id: format!("{}-area", d.id),
            office_id: d.id.clone(),
            name: d.name.clone(),
            kind: "permitted".into(),
            geojson: Some(d.feature.to_string()),
            geojson_file: None,
        });
    }
    let mut homes = Vec::with_capacity(subjects);
    for i in 0..subjects {
        let d = &districts[i % districts.len()];
        let subject = format!("s{:04}", i + 1);
        let device = format!("b{:04}", i + 1);
        doc.subjects.push(SubjectEntry {
            id: subject.clone(),
            office_id: format!("{}-so", d.id),
            name: format!("Subject {}", i + 1),
            supervision_level: "normal".into(),
            expected_interval_s: REPORT_EVERY_S as i64,
        });
        doc.devices.push(crate::import::DeviceEntry {
            id: device.clone(),
            kind: "bracelet".into(),
            subject_id: Some(subject.clone()),
        });
        doc.rules.push(RuleEntry {
            id: format!("{subject}-stay"),
            subject_id: subject.clone(),
            kind: "stay_inside".into(),
            zone_id: format!("{}-area", d.id),
            params: "{}".into(),
        });
        doc.orders.push(OrderEntry {
            id: format!("{subject}-order"),
            subject_id: subject,
            legal_basis: "warned_leaving_area".into(),
            approver: "demo court".into(),
            starts_at: now - chrono::Duration::days(1),
            ends_at: now + chrono::Duration::days(80),
        });
        homes.push((device, home_in(d, rng)));
    }
    Ok((doc, homes))
}

async fn wait_ready(http: std::net::SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..600 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(http).await {
            let _ = s
                .write_all(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            if buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200") {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the service did not become ready")
}

/// Drives the simulated bracelets until `stop`.
async fn fleet(
    creds: Vec<crate::cli::IssuedCredentials>,
    homes: Vec<Home>,
    districts: Vec<District>,
    mqtt: std::net::SocketAddr,
    seed: u64,
    stop: CancellationToken,
) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut bracelets = Vec::with_capacity(creds.len());
    for (c, (device, home)) in creds.iter().zip(homes) {
        debug_assert_eq!(c.device_id, device);
        let Ok(id) = DeviceId::new(&c.device_id) else {
            continue;
        };
        let Ok(key) = hex::decode(&c.payload_key) else {
            continue;
        };
        let mut opts = MqttOptions::new(&c.device_id, mqtt.ip().to_string(), mqtt.port());
        opts.set_credentials(&c.device_id, &c.password);
        opts.set_keep_alive(Duration::from_secs(60));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = s.cancelled() => return,
                    e = eventloop.poll() => if e.is_err() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    },
                }
            }
        });
        bracelets.push(Bracelet {
            id,
            key,
            client,
            home,
            at: home,
            seq: 0,
            script: Script::Home,
        });
    }
    let mut every = tokio::time::interval(Duration::from_secs(REPORT_EVERY_S));
    let mut round: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        round += 1;
        // One scripted breach of each kind right away, then one every third
        // round (30 s).
        if (round <= 3 || round.is_multiple_of(3)) && !bracelets.is_empty() {
            let kind = if round <= 3 { round } else { round / 3 };
            let mut i = rng.random_range(0..bracelets.len());
            if kind % 3 == 1 {
                // The leaver: of a few subjects at home, the one living nearest
                // the district's eastern line, so the walk out takes a minute.
                let exit_distance = |j: usize| {
                    let b = &bracelets[j];
                    outside_east(&districts[j % districts.len()], b.home).0 - b.home.0
                };
                for _ in 0..20 {
                    let j = rng.random_range(0..bracelets.len());
                    if bracelets[j].script == Script::Home && exit_distance(j) < exit_distance(i) {
                        i = j;
                    }
                }
            }
            let d = &districts[i % districts.len()];
            let b = &mut bracelets[i];
            if b.script == Script::Home {
                match kind % 3 {
                    1 => b.script = Script::LeavingTo(outside_east(d, b.home)),
                    2 => b.script = Script::SilentUntil(round + 12),
                    _ => {
                        let seq = b.next_seq();
                        b.send(Uplink::Heartbeat(Heartbeat {
                            seq,
                            time: Timestamp(Utc::now().timestamp_millis()),
                            battery_pct: 70,
                            charging: false,
                            strap: StrapState::Cut,
                            case_tamper: false,
                            signal_dbm: Some(-80),
                            gnss: GnssState::Fixed,
                        }))
                        .await;
                    }
                }
            }
        }
        for b in &mut bracelets {
            match b.script {
                Script::SilentUntil(until) if round < until => continue,
                Script::SilentUntil(_) => b.script = Script::Home,
                Script::LeavingTo(target) => {
                    // 300 m per report (a bicycle) towards the target, then stay.
                    let step = east(b.at.1, 300.0);
                    b.at.0 = (b.at.0 + step).min(target.0);
                }
                Script::Home => {
                    b.at = (
                        b.home.0 + rng.random_range(-0.002..0.002),
                        b.home.1 + rng.random_range(-0.002..0.002),
                    );
                }
            }
            let seq = b.next_seq();
            let fix = Fix {
                seq,
                time: Timestamp(Utc::now().timestamp_millis()),
                lat: b.at.1,
                lon: b.at.0,
                accuracy_m: rng.random_range(4.0..15.0),
                altitude_m: None,
                speed_mps: None,
                heading_deg: None,
                satellites: Some(rng.random_range(6..14)),
                source: PositionSource::Gnss,
            };
            b.send(Uplink::Fix(fix)).await;
        }
    }
}

/// Follows the city bureau's live feed and prints each incident change.
async fn print_feed(http: std::net::SocketAddr, token: String, stop: CancellationToken) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(http).await else {
        return;
    };
    let req = format!(
        "GET /api/feed HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return;
    }
    let mut lines = tokio::io::BufReader::new(s).lines();
    loop {
        let line = tokio::select! {
            _ = stop.cancelled() => return,
            l = lines.next_line() => match l {
                Ok(Some(l)) => l,
                _ => return,
            },
        };
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
            continue;
        };
        let h = &v["incident"];
        let at = Utc::now().format("%H:%M:%SZ");
        println!(
            "{at}  {:<13} {:<12} {:<8} subject {}  office {}{}",
            v["change"].as_str().unwrap_or("?"),
            h["kind"].as_str().unwrap_or("?"),
            h["severity"].as_str().unwrap_or("?"),
            h["subject"].as_str().unwrap_or("?"),
            h["office"].as_str().unwrap_or("?"),
            match h["escalation_level"].as_u64() {
                Some(n) if n > 0 => format!(
                    "  escalated to {}",
                    h["escalated_to"].as_str().unwrap_or("?")
                ),
                _ => String::new(),
            }
        );
    }
}
