//! The wire runner against an embedded rumqttd broker and a tiny fake
//! "acker" standing in for the service: credentials, acks and latency, and
//! store-and-forward across a cut connection. The real service comes later.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use geoward_proto::{
    Ack, DecodeOptions, Downlink, Encoding, Timestamp, Topic, decode_uplink, encode_downlink,
};
use geoward_simulator::plan::Plan;
use geoward_simulator::schedule::{Pacing, fan_out};
use geoward_simulator::trace;
use geoward_simulator::wire::{self, RunStats, WireConfig};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts rumqttd on a free port with password auth for `users`.
async fn broker(users: &[(&str, &str)]) -> SocketAddr {
    broker_with_tls(users, None).await.0
}

/// Server certificate, key and client CA (PEM files) for a TLS listener.
struct ServerTls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    ca: std::path::PathBuf,
}

/// Starts rumqttd with a plain listener and, given `tls`, a TLS listener
/// that requires client certificates (the workspace's rumqttd features:
/// verify-client-cert, validate-tenant-prefix). Returns both addresses.
async fn broker_with_tls(
    users: &[(&str, &str)],
    tls: Option<&ServerTls>,
) -> (SocketAddr, Option<SocketAddr>) {
    let port = free_port();
    let auth: HashMap<String, String> = users
        .iter()
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .collect();
    let connections = serde_json::json!({
        "connection_timeout_ms": 5000,
        "max_payload_size": 262_144,
        "max_inflight_count": 200,
        "auth": auth,
        "dynamic_filters": true
    });
    let mut v4 = serde_json::json!({ "1": {
        "name": "v4-1",
        "listen": format!("127.0.0.1:{port}"),
        "next_connection_delay_ms": 1,
        "connections": connections.clone()
    }});
    let tls_port = tls.map(|t| {
        let tls_port = free_port();
        v4["2"] = serde_json::json!({
            "name": "v4-tls",
            "listen": format!("127.0.0.1:{tls_port}"),
            "next_connection_delay_ms": 1,
            "tls": {
                "certpath": t.cert.display().to_string(),
                "keypath": t.key.display().to_string(),
                "capath": t.ca.display().to_string()
            },
            "connections": connections
        });
        tls_port
    });
    let config: rumqttd::Config = serde_json::from_value(serde_json::json!({
        "id": 0,
        "router": {
            "max_connections": 1000,
            "max_outgoing_packet_count": 200,
            "max_segment_size": 10_485_760,
            "max_segment_count": 10
        },
        "v4": v4
    }))
    .expect("broker config");
    std::thread::spawn(move || {
        let mut b = rumqttd::Broker::new(config);
        let _ = b.start();
    });
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let tls_addr = tls_port.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let until = Instant::now() + DEADLINE;
    for a in std::iter::once(addr).chain(tls_addr) {
        while TcpStream::connect(a).await.is_err() {
            assert!(Instant::now() < until, "broker did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (addr, tls_addr)
}

/// A TCP proxy whose live connections can be cut, to force reconnects.
struct Proxy {
    port: u16,
    cut: watch::Sender<u64>,
    /// Source addresses of accepted connections.
    peers: Arc<Mutex<Vec<SocketAddr>>>,
}

async fn proxy(upstream: SocketAddr) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
    let port = listener.local_addr().expect("proxy addr").port();
    let (cut, rx) = watch::channel(0u64);
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, peer)) = listener.accept().await {
            seen.lock().expect("peers").push(peer);
            let mut rx = rx.clone();
            rx.borrow_and_update();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = rx.changed() => {}
                }
            });
        }
    });
    Proxy { port, cut, peers }
}

/// The fake service: decodes every uplink with geoward-proto and acks the
/// highest contiguous seq per device, unless told to hold acks.
#[derive(Default)]
struct AckerState {
    seen: HashMap<String, Vec<u64>>,
    hold: bool,
    /// Messages whose payload proved the device's secret.
    authenticated: usize,
    /// Decode rejections, by reason.
    rejected: Vec<&'static str>,
    /// Gets every decoded uplink, before its ack (a fake service's alerting).
    tap: Option<tokio::sync::mpsc::UnboundedSender<(String, geoward_proto::Uplink)>>,
    /// Tenant prefixes the uplinks came under.
    tenants: BTreeSet<String>,
}

/// Device secrets for payload authentication.
struct Keys(HashMap<String, String>);

impl geoward_proto::KeyLookup for Keys {
    fn device_secret(
        &self,
        device: &geoward_proto::DeviceId,
    ) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.0
            .get(device.as_str())
            .map(|s| std::borrow::Cow::Borrowed(s.as_bytes()))
    }
}

async fn acker(addr: SocketAddr) -> Arc<Mutex<AckerState>> {
    acker_with(addr, Keys(HashMap::new()), false).await
}

async fn acker_with(addr: SocketAddr, keys: Keys, require_auth: bool) -> Arc<Mutex<AckerState>> {
    let state = Arc::new(Mutex::new(AckerState::default()));
    let mut opts = MqttOptions::new("acker", addr.ip().to_string(), addr.port());
    opts.set_credentials("acker", "acker-secret");
    opts.set_max_packet_size(512 * 1024, 512 * 1024);
    let (client, mut events) = AsyncClient::new(opts, 4096);
    client
        .subscribe("geoward/v1/dev/+/up/+", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    client
        .subscribe("owntracks/+/+", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    client
        .subscribe("/tenants/+/geoward/v1/dev/+/up/+", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let opts = DecodeOptions {
        require_authenticated: require_auth,
        ..DecodeOptions::default()
    };
    let (ready_tx, mut ready) = watch::channel(false);
    let s = state.clone();
    tokio::spawn(async move {
        let mut received: HashMap<String, BTreeSet<u64>> = HashMap::new();
        let mut subscribed = 0;
        loop {
            let p = match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    // Ready once all three subscriptions hold.
                    subscribed += 1;
                    let _ = ready_tx.send(subscribed == 3);
                    continue;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => p,
                Ok(_) => continue,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let Ok(topic) = Topic::parse(&p.topic) else {
                s.lock().expect("acker state").rejected.push("bad_topic");
                continue;
            };
            let decoded =
                match decode_uplink(&topic, &p.payload, &opts, Timestamp(i64::MAX / 4), &keys) {
                    Ok(d) => d,
                    Err(e) => {
                        s.lock().expect("acker state").rejected.push(e.reason());
                        continue;
                    }
                };
            let device = decoded.device_id.as_str().to_string();
            let seqs: Vec<u64> = match &decoded.message {
                geoward_proto::Uplink::Batch(b) => b.fixes.iter().map(|f| f.seq).collect(),
                m => m.max_seq().into_iter().collect(),
            };
            let got = received.entry(device.clone()).or_default();
            got.extend(&seqs);
            let contiguous = (1..).take_while(|n| got.contains(n)).last().unwrap_or(0);
            let hold = {
                let mut st = s.lock().expect("acker state");
                if let Some(t) = &decoded.tenant {
                    st.tenants.insert(t.as_str().to_string());
                }
                if let Some(tap) = &st.tap {
                    let _ = tap.send((device.clone(), decoded.message.clone()));
                }
                st.seen.entry(device.clone()).or_default().extend(seqs);
                st.authenticated += usize::from(decoded.authenticated);
                st.hold
            };
            // OwnTracks has no downlink, so nothing to ack.
            let Some(down) = topic.reply_topic() else {
                continue;
            };
            if !hold && contiguous > 0 {
                let ack = encode_downlink(&Downlink::Ack(Ack { seq: contiguous }));
                let down = down.to_string();
                client
                    .try_publish(down, QoS::AtLeastOnce, false, ack)
                    .expect("ack queue has room");
            }
        }
    });
    let until = Instant::now() + DEADLINE;
    while !*ready.borrow_and_update() {
        tokio::time::timeout_at(until, ready.changed())
            .await
            .expect("acker subscribed in time")
            .expect("acker alive");
    }
    state
}

fn real_plan(copies: usize) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/traces/around-visnjan-with-car.gpx");
    let t = trace::load(&path, None).expect("trace").remove(0);
    let mut t = t;
    t.device = "visnjan".into();
    Plan::from_traces(&fan_out(&t, copies, 20.0, 0))
}

fn config(port: u16, secrets: &[(&str, &str)]) -> WireConfig {
    WireConfig {
        port,
        pacing: Pacing::AsFastAsPossible,
        secrets: secrets
            .iter()
            .map(|(d, s)| (d.to_string(), s.to_string()))
            .collect(),
        drain_timeout: Duration::from_secs(15),
        reconnect_backoff: Duration::from_millis(50),
        ..WireConfig::default()
    }
}

async fn run(plan: &Plan, cfg: &WireConfig) -> RunStats {
    tokio::time::timeout(
        DEADLINE * 2,
        wire::run(plan, cfg, std::future::pending(), |_| {}),
    )
    .await
    .expect("run finished in time")
    .expect("run started")
}

const DEVICES: [(&str, &str); 3] = [
    ("visnjan-001", "s1"),
    ("visnjan-002", "s2"),
    ("visnjan-003", "s3"),
];

fn users(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut u = vec![("acker", "acker-secret")];
    u.extend(DEVICES);
    u.extend(extra);
    u
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_acked_with_latency_measured() {
    let addr = broker(&users(&[])).await;
    let state = acker(addr).await;
    let plan = real_plan(3);
    let cfg = config(addr.port(), &DEVICES);
    let stats = run(&plan, &cfg).await;
    let t = &stats.total;
    assert_eq!(stats.devices, 3);
    // The progress bar's live counters end where the totals do.
    let live = cfg.live.snapshot();
    assert_eq!(
        (live.dispatched, live.published, live.fixes, live.acked),
        (312, 312, 312, 312)
    );
    assert_eq!((live.errors, live.connect_errors), (0, 0));
    assert_eq!(t.fixes_per_s.iter().sum::<u64>(), 312);
    assert_eq!((t.published, t.fixes), (312, 312));
    assert_eq!((t.acked, t.unacked_at_end, t.errors), (312, 0, 0));
    assert_eq!(t.ack_latency_us.len(), 312);
    assert!(t.ack_latency_us.min() >= 1 && t.ack_latency_us.max() < 20_000_000);
    let st = state.lock().unwrap();
    for (d, _) in DEVICES {
        let mut seen = st.seen[d].clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (1..=104).collect::<Vec<u64>>(), "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_and_reported() {
    let addr = broker(&users(&[])).await;
    let _state = acker(addr).await;
    let plan = real_plan(1);
    let mut cfg = config(addr.port(), &[("visnjan-001", "not-the-secret")]);
    cfg.drain_timeout = Duration::from_millis(500);
    let stats = run(&plan, &cfg).await;
    let t = &stats.total;
    assert!(t.connect_errors >= 1, "{t:?}");
    // rumqttd hangs up on bad credentials rather than refusing in a CONNACK.
    assert_eq!(
        t.connect_errors_by_reason.get("closed"),
        Some(&t.connect_errors),
        "{:?}",
        t.connect_errors_by_reason
    );
    assert_eq!(t.acked, 0);
    assert_eq!(t.unacked_at_end, 104);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_are_resent_after_a_reconnect() {
    let addr = broker(&users(&[])).await;
    let state = acker(addr).await;
    state.lock().unwrap().hold = true;
    let proxy = proxy(addr).await;
    let plan = real_plan(1);
    let cfg = config(proxy.port, &DEVICES[..1]);
    let runner = tokio::spawn(async move { run(&plan, &cfg).await });

    // All 104 fixes reached the "service", none acknowledged yet.
    let until = Instant::now() + DEADLINE;
    loop {
        let n = state
            .lock()
            .unwrap()
            .seen
            .get("visnjan-001")
            .map_or(0, Vec::len);
        if n >= 104 {
            break;
        }
        assert!(Instant::now() < until, "only {n} messages arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The service starts acking, but the connection drops first.
    state.lock().unwrap().hold = false;
    proxy.cut.send_modify(|g| *g += 1);

    let stats = runner.await.expect("runner task");
    let t = &stats.total;
    assert!(t.reconnects >= 1, "{t:?}");
    assert!(t.resent >= 104, "{t:?}");
    assert_eq!((t.acked, t.unacked_at_end), (104, 0), "{t:?}");
    // Latency counts from the first publication, so it spans the outage.
    assert_eq!(t.ack_latency_us.len(), 104);
    // The service saw the buffer again, the oldest message included (rumqttc
    // may also replay its own in-flight publications first); the ack this
    // redelivery triggered released the rest.
    let seen = state.lock().unwrap().seen["visnjan-001"].clone();
    assert!(seen[104..].contains(&1), "oldest message not redelivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_run_holds_its_rate_through_a_reconnect_storm() {
    use geoward_simulator::geo::LatLon;
    use geoward_simulator::load::{LoadProfile, Report};

    let profile = LoadProfile {
        devices: 20,
        rate_per_s: 200.0,
        ramp_up_s: 0,
        hold_s: 2,
        ramp_down_s: 0,
        centre: LatLon::new(38.47, 106.28),
        radius_m: 5_000.0,
        seed: 1,
        prefix: "load".into(),
        batch: 1,
    };
    let mut users = vec![("acker".to_string(), "acker-secret".to_string())];
    users.extend((0..20).map(|i| (profile.device_id(i), "load-secret".to_string())));
    let users: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let addr = broker(&users).await;
    let _state = acker(addr).await;
    let start = chrono::Utc::now().timestamp_millis();
    let plan = profile.plan(start);
    let cfg = WireConfig {
        pacing: Pacing::REAL_TIME,
        default_secret: "load-secret".into(),
        // A reconnect storm half-way: every connection drops at once.
        storms_at_ms: vec![start + 1000],
        ..config(addr.port(), &[])
    };
    let stats = run(&plan, &cfg).await;
    let report = Report::new("load", Some(200.0), &stats);
    assert_eq!(
        (report.fixes, report.acked, report.unacked_at_end),
        (400, 400, 0)
    );
    // Every device was connected at the storm and came back.
    assert!(report.reconnects >= 20, "{}", report.summary());
    assert!(
        (170.0..=230.0).contains(&report.achieved_rate_per_s),
        "{}",
        report.summary()
    );
    let l = report.ack_latency;
    assert_eq!(l.count, 400);
    assert!(l.p50_ms <= l.p95_ms && l.p95_ms <= l.p99_ms && l.p99_ms <= l.max_ms);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["ack_latency"]["count"], 400);
    assert!(report.summary().contains("p99"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_encoding_with_payload_authentication_reaches_the_service() {
    let addr = broker(&users(&[])).await;
    let keys = DEVICES
        .iter()
        .map(|(d, s)| (d.to_string(), s.to_string()))
        .collect();
    let state = acker_with(addr, Keys(keys), true).await;
    let mut plan = real_plan(3);
    let mut total_seen = 0;
    for encoding in [Encoding::Binary, Encoding::Json, Encoding::OwnTracks] {
        let cfg = WireConfig {
            encoding,
            protect_payloads: true,
            expect_acks: encoding != Encoding::OwnTracks,
            ..config(addr.port(), &DEVICES)
        };
        let stats = run(&plan, &cfg).await;
        let t = &stats.total;
        assert_eq!(
            (t.published, t.errors, t.unacked_at_end),
            (312, 0, 0),
            "{encoding:?}"
        );
        if encoding == Encoding::OwnTracks {
            assert_eq!(t.acked, 0, "OwnTracks has no acks");
        } else {
            assert_eq!(t.acked, 312, "{encoding:?}");
        }
        total_seen += 312;
        // OwnTracks is fire-and-forget: wait until the service has all of it.
        let until = Instant::now() + DEADLINE;
        loop {
            let seen: usize = state.lock().unwrap().seen.values().map(Vec::len).sum();
            if seen >= total_seen {
                break;
            }
            assert!(
                Instant::now() < until,
                "{encoding:?}: {seen} of {total_seen} arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The same devices again next round, so their sequences go on: a
        // restarted one would be acked in full by its first message.
        let sent = plan.sends.iter().map(|s| s.max_seq()).max().unwrap_or(0);
        plan.assign_seqs_from(sent + 1);
    }
    let st = state.lock().unwrap();
    assert!(st.rejected.is_empty(), "{:?}", st.rejected);
    // Every message the service decoded proved its device's secret
    // (redeliveries under load may add some beyond the 936 sent).
    let decoded: usize = st.seen.values().map(Vec::len).sum();
    assert!(decoded >= 3 * 312);
    assert_eq!(st.authenticated, decoded);
}

/// `geoward-sim fleet` end to end through the embedded broker: per-device
/// generated secrets, fixes, heartbeats and events in the binary encoding
/// with MACs, all acknowledged, expectation file written.
#[test]
fn fleet_command_publishes_a_day_with_device_credentials() {
    use clap::Parser;
    use geoward_simulator::cli::{self, Cli};

    let zones = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/zones/ning2_xia4_yin2_chuan1.geojson")
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expect.json");
    let report = dir.path().join("report.json");
    let args = |port: u16| {
        vec![
            "geoward-sim".to_string(),
            "fleet".into(),
            "--zones".into(),
            zones.clone(),
            "--zone".into(),
            "兴庆区".into(),
            "--subjects".into(),
            "3".into(),
            "--scenario".into(),
            "strap_cut".into(),
            "--seed".into(),
            "5".into(),
            "--expect".into(),
            expect.display().to_string(),
            "--report".into(),
            report.display().to_string(),
            "--broker".into(),
            format!("127.0.0.1:{port}"),
            "--encoding".into(),
            "bin".into(),
            "--mac".into(),
            "--speed".into(),
            "max".into(),
        ]
    };
    // The same arguments give the same fleet: learn its device secrets first
    // (as an operator would from the set-up file) to configure the broker.
    let Cli {
        command: cli::Command::Fleet(a),
    } = Cli::try_parse_from(args(1)).unwrap()
    else {
        panic!("not fleet")
    };
    let cfg = cli::fleet_config(&a, 0).unwrap();
    let files = geoward_simulator::zones::load(Path::new(&zones)).unwrap();
    let area = geoward_simulator::zones::find(&files, "兴庆区", "z").unwrap();
    let fleet = geoward_simulator::fleet::generate(&cfg, area).unwrap();
    let secrets: Vec<(String, String)> = fleet
        .subjects
        .iter()
        .flat_map(|s| s.devices.iter().map(|d| (d.id.clone(), d.secret.clone())))
        .collect();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, state) = rt.block_on(async {
        let mut users: Vec<(&str, &str)> = vec![("acker", "acker-secret")];
        users.extend(secrets.iter().map(|(d, s)| (d.as_str(), s.as_str())));
        let addr = broker(&users).await;
        let keys = Keys(secrets.iter().cloned().collect());
        (addr, acker_with(addr, keys, true).await)
    });
    let code = cli::main(Cli::try_parse_from(args(addr.port())).unwrap()).unwrap();
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let sends = fleet.plan.sends.len() as u64;
    assert_eq!(r["published"], sends);
    assert_eq!(r["acked"], sends);
    assert_eq!(r["unacked_at_end"], 0);
    let exp = geoward_simulator::expect::Expectations::load(&expect).unwrap();
    assert_eq!(exp.incidents.len(), 1);
    assert_eq!(exp.incidents[0].kind.name(), "tamper");
    let st = state.lock().unwrap();
    assert!(st.rejected.is_empty(), "{:?}", st.rejected);
    let decoded: usize = st.seen.values().map(Vec::len).sum();
    assert!(decoded as u64 >= sends);
    assert_eq!(st.authenticated, decoded);
    drop(st);
    drop(rt);
}

/// A fake alert feed: one SSE client; for every tamper event the fake
/// service (the acker's tap) decodes, it sends an `opened` frame, before the
/// ack, and it ends the stream once `frames` were sent.
async fn fake_feed(
    mut tap: tokio::sync::mpsc::UnboundedReceiver<(String, geoward_proto::Uplink)>,
    frames: usize,
) -> (u16, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("feed bind");
    let port = listener.local_addr().expect("feed addr").port();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("feed client");
        let mut req = vec![0u8; 2048];
        let n = s.read(&mut req).await.expect("request");
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n: hello\n\n")
            .await
            .expect("headers");
        let mut sent = 0;
        while sent < frames {
            let Some((device, message)) = tap.recv().await else {
                break;
            };
            let geoward_proto::Uplink::Event(e) = message else {
                continue;
            };
            if e.kind != geoward_proto::EventKind::StrapOpened {
                continue;
            }
            let subject = device.trim_end_matches('b');
            let frame = format!(
                "id: {sent}\nevent: incident\ndata: {{\"schema\":1,\"change\":\"opened\",\"incident\":{{\"subject\":\"{subject}\",\"kind\":\"tamper\",\"episode_kind\":\"tamper\",\"opened_at\":{}}}}}\n\n",
                e.time.0
            );
            s.write_all(frame.as_bytes()).await.expect("frame");
            sent += 1;
        }
        String::from_utf8_lossy(&req[..n]).to_string()
    });
    (port, server)
}

/// `fleet --feed` end to end against the embedded broker, a fake service
/// and a fake alert feed: the scripted strap cut's incident arrives, matches
/// its expectation, and its publish -> incident latency (from the
/// publication of the strap_opened event to the SSE frame's arrival) is in
/// the JSON report, the summary's numbers and the SVG plot.
#[test]
fn fleet_run_reports_publish_to_incident_latency_from_the_alert_feed() {
    use clap::Parser;
    use geoward_simulator::cli::{self, Cli};

    let zones = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/zones/ning2_xia4_yin2_chuan1.geojson")
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let plot = dir.path().join("latency.svg");
    let args = |port: u16, feed: u16| {
        [
            "geoward-sim",
            "fleet",
            "--zones",
            &zones,
            "--zone",
            "兴庆区",
            "--subjects",
            "2",
            "--scenario",
            "strap_cut",
            "--seed",
            "9",
            "--speed",
            "max",
            "--quiet",
            "--broker",
            &format!("127.0.0.1:{port}"),
            "--feed",
            &format!("http://127.0.0.1:{feed}/api/feed"),
            "--feed-token",
            "officer",
            // The feed ends by itself once the incident is sent.
            "--settle-s",
            "60",
            "--report",
            &report.display().to_string(),
            "--plot",
            &plot.display().to_string(),
        ]
        .map(String::from)
        .to_vec()
    };
    let Cli {
        command: cli::Command::Fleet(a),
    } = Cli::try_parse_from(args(1, 1)).unwrap()
    else {
        panic!("not fleet")
    };
    let cfg = cli::fleet_config(&a, 0).unwrap();
    let files = geoward_simulator::zones::load(Path::new(&zones)).unwrap();
    let area = geoward_simulator::zones::find(&files, "兴庆区", "z").unwrap();
    let fleet = geoward_simulator::fleet::generate(&cfg, area).unwrap();
    let exp = &fleet.expectations.incidents;
    assert_eq!(exp.len(), 1);
    assert_eq!(exp[0].trigger_at, Some(exp[0].not_before), "the event");
    let secrets: Vec<(String, String)> = fleet
        .subjects
        .iter()
        .flat_map(|s| s.devices.iter().map(|d| (d.id.clone(), d.secret.clone())))
        .collect();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, feed, server) = rt.block_on(async {
        let mut users: Vec<(&str, &str)> = vec![("acker", "acker-secret")];
        users.extend(secrets.iter().map(|(d, s)| (d.as_str(), s.as_str())));
        let addr = broker(&users).await;
        let state = acker(addr).await;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        state.lock().unwrap().tap = Some(tx);
        let (feed, server) = fake_feed(rx, 1).await;
        (addr, feed, server)
    });
    let code = cli::main(Cli::try_parse_from(args(addr.port(), feed)).unwrap()).unwrap();
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    let request = rt.block_on(server).unwrap();
    assert!(
        request.contains("Authorization: Bearer officer"),
        "{request}"
    );

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["mode"], "fleet");
    assert_eq!(r["acked"], fleet.plan.sends.len() as u64);
    assert_eq!(
        r["incidents"],
        serde_json::json!({"expected": 1, "matched": 1, "missing": 0, "unexpected": 0})
    );
    let l = &r["incident_latency"];
    assert_eq!(l["count"], 1, "{r}");
    let max = l["max_ms"].as_f64().unwrap();
    // One sample: every percentile is it; it spans broker, service and feed
    // but not the whole run.
    assert!(
        max > 0.0 && max <= r["elapsed_s"].as_f64().unwrap() * 1000.0,
        "{r}"
    );
    assert_eq!(l["p50_ms"], l["max_ms"]);
    // Ack latency samples are one per message.
    assert_eq!(r["ack_latency"]["count"], r["acked"]);

    let svg = std::fs::read_to_string(&plot).unwrap();
    let mut reader = quick_xml::Reader::from_str(&svg);
    let mut bars = Vec::new();
    loop {
        match reader.read_event().expect("well-formed SVG") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"rect" => {
                if let Some(c) = e.try_get_attribute("data-count").unwrap() {
                    bars.push(c.unescape_value().unwrap().parse::<u64>().unwrap());
                }
            }
            _ => {}
        }
    }
    // Both panels: every ack sample and the one incident sample are bars.
    assert_eq!(
        bars.iter().sum::<u64>(),
        r["acked"].as_u64().unwrap() + 1,
        "{bars:?}"
    );
    drop(rt);
}

/// A CA, a server certificate for 127.0.0.1/localhost and client
/// certificates whose Organization is the device id (as `geoward pki`
/// issues them), written in both per-device layouts the simulator reads:
/// the first device as `<id>.pem` + `<id>.key`, the others as
/// `<id>/cert.pem` + `<id>/key.pem`.
fn certificates(dir: &Path, devices: &[String]) -> ServerTls {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    for (i, d) in devices.iter().enumerate() {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, d.as_str());
        p.distinguished_name
            .push(DnType::OrganizationName, d.as_str());
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        if i == 0 {
            write(&format!("devices/{d}.pem"), cert.pem());
            write(&format!("devices/{d}.key"), key.serialize_pem());
        } else {
            write(&format!("devices/{d}/cert.pem"), cert.pem());
            write(&format!("devices/{d}/key.pem"), key.serialize_pem());
        }
    }
    ServerTls {
        cert: write("server.pem", server_cert.pem()),
        key: write("server.key", server_key.serialize_pem()),
        ca: write("ca.pem", ca_cert.pem()),
    }
}

/// A short load plan of `devices` TLS devices (`tls000001`, ...) and the
/// broker users for them.
fn tls_plan(devices: usize) -> (Plan, Vec<String>) {
    use geoward_simulator::geo::LatLon;
    use geoward_simulator::load::LoadProfile;
    let profile = LoadProfile {
        devices,
        rate_per_s: 30.0,
        ramp_up_s: 0,
        hold_s: 1,
        ramp_down_s: 0,
        centre: LatLon::new(38.47, 106.28),
        radius_m: 1_000.0,
        seed: 4,
        prefix: "tls".into(),
        batch: 1,
    };
    let ids = (0..devices).map(|i| profile.device_id(i)).collect();
    (profile.plan(chrono::Utc::now().timestamp_millis()), ids)
}

fn tls_users(ids: &[String]) -> Vec<(&str, &str)> {
    let mut users = vec![("acker", "acker-secret")];
    users.extend(ids.iter().map(|d| (d.as_str(), "tls-secret")));
    users
}

/// Devices connect over TLS with their own client certificates (both
/// directory layouts), publish under their tenant prefix and get every
/// message acked; a device without a certificate file stops the run with a
/// typed error; without client certificates the broker refuses the devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_devices_with_their_own_client_certificates() {
    use geoward_simulator::wire::{ClientIdentity, TlsSettings};

    let dir = tempfile::tempdir().unwrap();
    let (plan, ids) = tls_plan(3);
    let certs = certificates(dir.path(), &ids);
    let (plain, tls) = broker_with_tls(&tls_users(&ids), Some(&certs)).await;
    let state = acker(plain).await;
    let settings = TlsSettings::new(
        &certs.ca,
        ClientIdentity::PerDevice(dir.path().join("devices")),
    )
    .unwrap();
    let cfg = WireConfig {
        default_secret: "tls-secret".into(),
        tls: Some(Arc::new(settings.clone())),
        ..config(tls.unwrap().port(), &[])
    };
    let stats = run(&plan, &cfg).await;
    let t = &stats.total;
    assert_eq!(
        (t.published, t.errors, t.connect_errors),
        (30, 0, 0),
        "{t:?}"
    );
    assert_eq!((t.acked, t.unacked_at_end), (30, 0), "{t:?}");
    {
        let st = state.lock().unwrap();
        assert!(st.rejected.is_empty(), "{:?}", st.rejected);
        assert_eq!(st.tenants, ids.iter().cloned().collect::<BTreeSet<_>>());
    }

    // One device more than there are certificates: refused before sending.
    let (bigger, _) = tls_plan(4);
    let err = wire::run(&bigger, &cfg, std::future::pending(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "tls", "{err}");
    assert!(err.to_string().contains("tls000004"), "{err}");

    // Server authentication only: the broker wants a client certificate.
    let cfg = WireConfig {
        tls: Some(Arc::new(
            TlsSettings::new(&certs.ca, ClientIdentity::None).unwrap(),
        )),
        drain_timeout: Duration::from_millis(300),
        ..cfg
    };
    let (one, _) = tls_plan(1);
    let stats = run(&one, &cfg).await;
    let t = &stats.total;
    assert!(t.connect_errors >= 1, "{:?}", t.connect_errors_by_reason);
    let reasons: Vec<&str> = t.connect_errors_by_reason.keys().copied().collect();
    // The broker's "certificate required" alert.
    assert_eq!(reasons, ["tls"]);
    assert_eq!(t.acked, 0);
}

/// Devices connect from the source addresses they are given, 127.0.0.2 and
/// 127.0.0.3 (seen by a proxy in front of the broker), through the relay,
/// here with TLS and client certificates on top; every message is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_connect_from_the_given_source_addresses() {
    use geoward_simulator::wire::{ClientIdentity, TlsSettings};

    let dir = tempfile::tempdir().unwrap();
    let (plan, ids) = tls_plan(4);
    let certs = certificates(dir.path(), &ids);
    let (plain, tls) = broker_with_tls(&tls_users(&ids), Some(&certs)).await;
    let state = acker(plain).await;
    let proxy = proxy(tls.unwrap()).await;
    let sources: Vec<std::net::IpAddr> = vec![[127, 0, 0, 2].into(), [127, 0, 0, 3].into()];
    let cfg = WireConfig {
        default_secret: "tls-secret".into(),
        tls: Some(Arc::new(
            TlsSettings::new(
                &certs.ca,
                ClientIdentity::PerDevice(dir.path().join("devices")),
            )
            .unwrap(),
        )),
        source_addrs: sources.clone(),
        ..config(proxy.port, &[])
    };
    let stats = run(&plan, &cfg).await;
    let t = &stats.total;
    assert_eq!(
        (t.published, t.acked, t.unacked_at_end),
        (30, 30, 0),
        "{t:?}"
    );
    assert_eq!((t.errors, t.connect_errors), (0, 0), "{t:?}");
    let peers = proxy.peers.lock().unwrap().clone();
    assert_eq!(peers.len(), 4, "one connection per device: {peers:?}");
    for s in &sources {
        assert_eq!(
            peers.iter().filter(|p| p.ip() == *s).count(),
            2,
            "{peers:?}"
        );
    }
    assert_eq!(state.lock().unwrap().tenants.len(), 4);
    assert!(t.relay_errors_by_reason.is_empty());

    // An address that is not local: the relay says why, devices see the
    // connection closed.
    let cfg = WireConfig {
        source_addrs: vec![[192, 0, 2, 1].into()],
        drain_timeout: Duration::from_millis(300),
        ..cfg
    };
    let (one, _) = tls_plan(1);
    let t = run(&one, &cfg).await.total;
    assert_eq!(t.acked, 0);
    assert!(t.connect_errors >= 1);
    assert_eq!(
        t.relay_errors_by_reason.keys().copied().collect::<Vec<_>>(),
        ["bad_source_address"]
    );
    assert_eq!(
        t.connect_errors_by_reason
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        ["closed"]
    );
}

/// `geoward-sim load` end to end: ramp up, hold, ramp down with a reconnect
/// storm in the middle; the JSON report has every field the load check
/// needs (rate, acks, latency percentiles, errors, reconnects).
#[test]
fn load_command_ramps_storms_and_reports() {
    use clap::Parser;
    use geoward_simulator::cli::{self, Cli};

    let ids: Vec<String> = (1..=10).map(|i| format!("ld{i:06}")).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = rt.block_on(async {
        let mut users: Vec<(&str, &str)> = vec![("acker", "acker-secret")];
        users.extend(ids.iter().map(|d| (d.as_str(), "load-secret")));
        let addr = broker(&users).await;
        let _state = acker(addr).await;
        addr
    });
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("load.json");
    let plot = dir.path().join("load.svg");
    let args = [
        "geoward-sim",
        "load",
        "--devices",
        "10",
        "--rate",
        "100",
        "--ramp-up",
        "1",
        "--duration",
        "1",
        "--ramp-down",
        "1",
        "--storm-at",
        "1",
        "--prefix",
        "ld",
        "--secret",
        "load-secret",
        "--broker",
        &format!("127.0.0.1:{}", addr.port()),
        "--quiet",
        "--report",
        &report.display().to_string(),
        "--plot",
        &plot.display().to_string(),
    ]
    .map(String::from);
    let code = cli::main(Cli::try_parse_from(args).unwrap()).unwrap();
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    // Ramp 50/s, hold 100/s, ramp 50/s: 200 fixes over three seconds.
    assert_eq!(r["mode"], "load");
    assert_eq!(r["target_rate_per_s"], 100.0);
    assert_eq!(r["devices"], 10);
    assert_eq!(
        (&r["fixes"], &r["acked"], &r["unacked_at_end"]),
        (&200.into(), &200.into(), &0.into())
    );
    assert_eq!((&r["errors"], &r["connect_errors"]), (&0.into(), &0.into()));
    assert!(r["reconnects"].as_u64().unwrap() >= 10, "the storm: {r}");
    let rate = r["achieved_rate_per_s"].as_f64().unwrap();
    assert!((55.0..=80.0).contains(&rate), "{r}");
    // Second by second: 50, 100, 50 (a few fixes may cross a second's edge).
    let per_s: Vec<u64> = serde_json::from_value(r["fixes_per_s"].clone()).unwrap();
    assert_eq!(per_s.iter().sum::<u64>(), 200, "{per_s:?}");
    assert!(per_s.len() <= 4, "{per_s:?}");
    let hold = r["hold_rate_per_s"].as_f64().unwrap();
    assert!((85.0..=115.0).contains(&hold), "{r}");
    assert!(per_s[0] < per_s[1] && per_s[2] < per_s[1], "{per_s:?}");
    let l = &r["ack_latency"];
    assert_eq!(l["count"], 200);
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(p("p50_ms") <= p("p95_ms") && p("p95_ms") <= p("p99_ms") && p("p99_ms") <= p("max_ms"));
    assert!(r["incident_latency"].is_null() && r["incidents"].is_null());
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("publish -&gt; ack") && !svg.contains("incident"));
    drop(rt);
}
