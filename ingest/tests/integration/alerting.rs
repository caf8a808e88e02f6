//! End to end through the real service: a subject wearing a bracelet walks out of
//! a real county (Zhengzhou's Zhongyuan district), over MQTT; exactly one incident
//! reaches the justice office's live feed, escalates to the county bureau when
//! nobody acknowledges it, is delivered to the office's webhook, and the officer
//! actions land on the incident and in the hash-chained audit log.

use crate::common;

use std::time::Duration;

use common::{Db, Device, FeedReader, Service, api, fix_at, fresh_pg_database};
use geoward_ingest::api::{Role, create_token};
use geoward_proto::Uplink;
use serde_json::{Value, json};

const ZONES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/zones/he2_nan2_zheng4_zhou1.geojson"
);

/// The Zhongyuan district feature, and a walk out of it: one point well inside,
/// then points 300 m, 600 m, 900 m and 1200 m beyond its eastern boundary.
fn county_and_walk() -> (Value, Vec<(f64, f64)>) {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(ZONES).unwrap()).unwrap();
    let feature = doc["features"][0].clone();
    assert_eq!(feature["properties"]["name"], "中原区");
    let (set, report) = geoward_geofence::import_value(
        &json!({ "type": "FeatureCollection", "features": [feature.clone()] }),
    )
    .unwrap();
    assert!(report.is_clean());
    let hint = &feature["properties"]["centroid_hint"];
    let (lon0, lat0) = (hint[0].as_f64().unwrap(), hint[1].as_f64().unwrap());
    let inside = |lon: f64| !set.locate(lon, lat0).is_empty();
    assert!(inside(lon0), "the centroid hint is inside the district");
    let step = 100.0 / (111_320.0 * lat0.to_radians().cos());
    let mut lon = lon0;
    while inside(lon + step) {
        lon += step;
    }
    // `lon` is the last 100 m step inside; the boundary lies within 100 m east.
    let mut walk = vec![(lat0, lon - 5.0 * step)];
    for k in [4.0, 7.0, 10.0, 13.0] {
        walk.push((lat0, lon + k * step));
    }
    for &(lat, lon) in &walk[1..] {
        assert!(set.locate(lon, lat).is_empty());
    }
    (feature, walk)
}

struct Setup {
    svc: Service,
    admin: String,
    officer: String,
    bracelet: Device,
    walk: Vec<(f64, f64)>,
}

/// Offices city → county → justice office, one subject under an active order who
/// must stay inside the district, one bracelet, a webhook target.
async fn setup(db: Db, webhook: Option<String>) -> Setup {
    let svc = Service::start_with(db, |c| {
        c.alerting.tick_ms = 50;
        c.alerting.delivery_poll_ms = 50;
        // Nobody acknowledges within a second: escalate one office up.
        let one_second = geoward_alerting::policy::PerLevel {
            strict: Some(1000),
            normal: Some(1000),
            lenient: Some(1000),
        };
        c.alerting.policy.ack_timeout.high_ms = one_second;
    })
    .await;
    let admin = create_token(&svc.store, "root", Role::Admin, None)
        .await
        .unwrap();
    let (county, walk) = county_and_walk();
    let now = chrono::Utc::now();
    let posts: Vec<(&str, Value)> = vec![
        (
            "/api/offices",
            json!({"id":"zz","parent_id":null,"name":"Zhengzhou city bureau","kind":"city_bureau"}),
        ),
        (
            "/api/offices",
            json!({"id":"zy","parent_id":"zz","name":"Zhongyuan county bureau","kind":"county_bureau"}),
        ),
        (
            "/api/offices",
            json!({"id":"zy-office","parent_id":"zy","name":"Linshanzhai justice office","kind":"justice_office"}),
        ),
        (
            "/api/subjects",
            json!({"id":"s1","office_id":"zy-office","name":"Subject One","supervision_level":"normal","expected_interval_s":3600}),
        ),
        (
            "/api/subjects/s1/orders",
            json!({"id":"o1","legal_basis":"warned_leaving_area","approver":"judge wang",
            "starts_at": now - chrono::Duration::days(1), "ends_at": now + chrono::Duration::days(60), "renews_order_id": null}),
        ),
        (
            "/api/zones",
            json!({"id":"zhongyuan","office_id":"zz","name":"Zhongyuan district","kind":"permitted","geojson": county.to_string()}),
        ),
        (
            "/api/subjects/s1/rules",
            json!({"id":"r1","kind":"stay_inside","zone_id":"zhongyuan","params":"{}"}),
        ),
    ];
    for (path, body) in posts {
        let (status, text) = api(&svc, "POST", path, &admin, Some(&body.to_string())).await;
        assert_eq!(status, 201, "{path}: {text}");
    }
    let officer = create_token(&svc.store, "li", Role::Officer, Some("zy-office"))
        .await
        .unwrap();
    let body = json!({"id":"zy-office-mqtt","kind":"mqtt","role":"duty"});
    let (status, text) = api(
        &svc,
        "POST",
        "/api/offices/zy-office/targets",
        &admin,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    if let Some(url) = webhook {
        let body = json!({"id":"zy-office-hook","kind":"webhook","role":"duty","url":url,"secret":"0123456789abcdef0123"});
        let (status, text) = api(
            &svc,
            "POST",
            "/api/offices/zy-office/targets",
            &admin,
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(status, 201, "{text}");
    }
    let (status, text) = api(
        &svc,
        "POST",
        "/api/subjects/s1/devices",
        &admin,
        Some(r#"{"id":"b1","kind":"bracelet"}"#),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let creds: Value = serde_json::from_str(&text).unwrap();
    let creds = geoward_ingest::cli::IssuedCredentials {
        device_id: "b1".into(),
        password: creds["mqtt_password"].as_str().unwrap().into(),
        payload_key: creds["payload_key_hex"].as_str().unwrap().into(),
    };
    let mut bracelet = Device::connect(svc.mqtt_port, &creds).await;
    bracelet.wait_connected().await;
    Setup {
        svc,
        admin,
        officer,
        bracelet,
        walk,
    }
}

/// Walks the subject out: one fix inside, four outside, a minute apart, ending now.
async fn walk_out(s: &mut Setup) {
    let now = chrono::Utc::now().timestamp_millis();
    let n = s.walk.len() as i64;
    for (i, &(lat, lon)) in s.walk.iter().enumerate() {
        let time = now - (n - 1 - i as i64) * 60_000;
        s.bracelet
            .send(&Uplink::Fix(fix_at(i as u64 + 1, time, lat, lon)))
            .await;
    }
    s.bracelet.wait_ack(n as u64, Duration::from_secs(10)).await;
}

async fn next_change(feed: &mut FeedReader) -> (u64, String, Value) {
    let f = feed
        .next(Duration::from_secs(10))
        .await
        .expect("a feed event in time");
    assert_eq!(f.event, "incident");
    (f.id, f.data["change"].as_str().unwrap().to_owned(), f.data)
}

async fn leaving_the_county_opens_one_incident_that_escalates(db: Db) {
    let hook = WebhookServer::start().await;
    let mut s = setup(db, Some(hook.url())).await;
    let mut alerts = AlertSubscriber::start(&s.svc, "zy-office", &s.officer).await;
    let mut office_feed = FeedReader::open(&s.svc, &s.officer, "", None).await;
    assert_eq!(office_feed.status, 200);
    let mut county_feed = FeedReader::open(&s.svc, &s.admin, "office=zy", None).await;
    assert_eq!(county_feed.status, 200);

    walk_out(&mut s).await;

    let (id1, change, data) = next_change(&mut office_feed).await;
    assert_eq!(change, "opened", "{data}");
    assert_eq!(data["incident"]["kind"], "zone_exit");
    assert_eq!(data["incident"]["subject"], "s1");
    assert_eq!(data["incident"]["office"], "zy-office");
    let incident = data["incident"]["id"].as_str().unwrap().to_owned();
    // The superior's feed shows the same change.
    let (_, change, data) = next_change(&mut county_feed).await;
    assert_eq!(
        (change.as_str(), data["incident"]["id"].as_str()),
        ("opened", Some(incident.as_str()))
    );

    // Not acknowledged within a second: escalated to the county bureau.
    let (id2, change, data) = next_change(&mut office_feed).await;
    assert_eq!(change, "escalated", "{data}");
    assert!(id2 > id1);
    assert_eq!(data["incident"]["escalated_to"], "zy");
    assert_eq!(data["incident"]["escalation_level"], 1);

    // More fixes outside attach to the same incident; nothing new opens.
    let now = chrono::Utc::now().timestamp_millis();
    let (lat, lon) = *s.walk.last().unwrap();
    s.bracelet
        .send(&Uplink::Fix(fix_at(6, now, lat, lon)))
        .await;
    s.bracelet.wait_ack(6, Duration::from_secs(10)).await;

    // The officer acknowledges and resolves; both are on the feed and audited.
    let path = format!("/api/incidents/{incident}/acknowledge");
    let (status, text) = api(&s.svc, "POST", &path, &s.officer, None).await;
    assert_eq!(status, 200, "{text}");
    let path = format!("/api/incidents/{incident}/resolve");
    let (status, text) = api(
        &s.svc,
        "POST",
        &path,
        &s.officer,
        Some(r#"{"note":"called the subject; returning home"}"#),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("resolved") {
        let (_, change, data) = next_change(&mut office_feed).await;
        assert_eq!(
            data["incident"]["id"],
            incident.as_str(),
            "one incident only: {data}"
        );
        seen.push(change);
    }
    assert!(seen.contains(&"acknowledged".to_owned()), "{seen:?}");

    let (status, text) = api(
        &s.svc,
        "GET",
        "/api/incidents?kind=zone_exit",
        &s.officer,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(list.len(), 1, "exactly one incident: {text}");
    let (status, text) = api(
        &s.svc,
        "GET",
        &format!("/api/incidents/{incident}"),
        &s.officer,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_str(&text).unwrap();
    let events: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(events[0], "opened");
    assert!(
        events.contains(&"escalated") && events.contains(&"resolved"),
        "{events:?}"
    );
    assert!(
        !detail["timeline"][0]["event"]["evidence"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the opening entry carries the fixes that proved it"
    );

    // The webhook got the opening, signed, with an idempotency key.
    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    let first = &got[0];
    assert!(geoward_alerting::signature::verify(
        b"0123456789abcdef0123",
        first.body.as_bytes(),
        &first.signature
    ));
    assert!(first.idempotency_key.starts_with(&incident));
    // And the office's MQTT alert topic carried the same notification.
    loop {
        let alert = alerts.next(Duration::from_secs(10)).await;
        assert_eq!(alert["incident"]["id"], incident.as_str(), "{alert}");
        if alert["event"] == "opened" {
            break;
        }
    }

    // An officer of another office sees none of it.
    let stranger = {
        let (status, _) = api(&s.svc, "POST", "/api/offices", &s.admin,
            Some(r#"{"id":"elsewhere","parent_id":"zz","name":"Another county","kind":"county_bureau"}"#)).await;
        assert_eq!(status, 201);
        create_token(&s.svc.store, "qian", Role::Officer, Some("elsewhere"))
            .await
            .unwrap()
    };
    let (status, _) = api(
        &s.svc,
        "GET",
        &format!("/api/incidents/{incident}"),
        &stranger,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, text) = api(&s.svc, "GET", "/api/incidents", &stranger, None).await;
    assert_eq!((status, text.as_str()), (200, "[]"));
    let (status, _) = api(
        &s.svc,
        "POST",
        &format!("/api/incidents/{incident}/notes"),
        &stranger,
        Some(r#"{"text":"x"}"#),
    )
    .await;
    assert_eq!(status, 404);

    // The audit chain holds the escalation and both officer actions, and verifies.
    let entries = geoward_ingest::store::alerts::audit_entries(&s.svc.store)
        .await
        .unwrap();
    geoward_alerting::audit::verify_chain(&entries).unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    for a in ["escalated", "acknowledged", "resolved"] {
        assert!(actions.contains(&a), "{a} missing in {actions:?}");
    }
    assert!(
        s.svc
            .metric("geoward_incidents_opened_total{kind=\"zone_exit\"}")
            .await
            >= 1.0
    );
    s.svc.stop().await;
}

async fn a_reconnecting_officer_misses_nothing(db: Db) {
    let mut s = setup(db, None).await;
    let mut feed = FeedReader::open(&s.svc, &s.officer, "", None).await;
    walk_out(&mut s).await;
    let (first, change, _) = next_change(&mut feed).await;
    assert_eq!(change, "opened");
    drop(feed);
    // While the officer is away the incident escalates.
    common::wait_for(
        "escalation while disconnected",
        Duration::from_secs(10),
        || async {
            s.svc
                .metric("geoward_incident_changes_total{event=\"escalated\"}")
                .await
                >= 1.0
        },
    )
    .await;
    let mut feed = FeedReader::open(&s.svc, &s.officer, "", Some(first)).await;
    let (id, change, _) = next_change(&mut feed).await;
    assert_eq!((id, change.as_str()), (first + 1, "escalated"));
    // Resuming from zero replays everything from the start.
    let mut all = FeedReader::open(&s.svc, &s.officer, "", Some(0)).await;
    assert_eq!(next_change(&mut all).await.0, first);
    // A malformed Last-Event-ID is a clear client error.
    let bad = FeedReader::open(&s.svc, &s.officer, "last_event_id=abc", None).await;
    assert_eq!(bad.status, 400);
    s.svc.stop().await;
}

async fn incidents_and_outbox_survive_a_restart(db: Db) {
    let mut s = setup(db, Some("http://127.0.0.1:9/unreachable".to_owned())).await;
    let mut feed = FeedReader::open(&s.svc, &s.officer, "", None).await;
    walk_out(&mut s).await;
    let (id, change, data) = next_change(&mut feed).await;
    assert_eq!(change, "opened");
    let incident = data["incident"]["id"].as_str().unwrap().to_owned();
    drop(feed);
    let config = s.svc.config.clone();
    let dir = s.svc.stop_keep_dir().await;
    let svc = Service::restart(dir, config).await;
    // The feed continues its numbering and the incident is still actionable.
    let (status, text) = api(
        &svc,
        "POST",
        &format!("/api/incidents/{incident}/acknowledge"),
        &s.officer,
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let mut feed = FeedReader::open(&svc, &s.officer, "", Some(id)).await;
    let mut changes = Vec::new();
    while let Some(f) = feed.next(Duration::from_secs(5)).await {
        assert!(f.id > id);
        changes.push(f.data["change"].as_str().unwrap().to_owned());
        if changes.last().map(String::as_str) == Some("acknowledged") {
            break;
        }
    }
    assert_eq!(
        changes.last().map(String::as_str),
        Some("acknowledged"),
        "{changes:?}"
    );
    // The unreachable webhook's notification is still in the outbox, retrying
    // (pending between attempts; in flight for a moment during each).
    common::wait_for(
        "the notification pending in the outbox",
        Duration::from_secs(10),
        || {
            let (svc, admin, incident) = (&svc, &s.admin, &incident);
            async move {
                let (status, text) =
                    api(svc, "GET", "/api/outbox?state=pending", admin, None).await;
                status == 200 && text.contains(incident.as_str())
            }
        },
    )
    .await;
    svc.stop().await;
}

/// A strap cut dated before the subject's order began (a late upload from
/// before the court's decision) is stored and acked but never judged: no
/// incident, counted as `outside_order`. The same event inside the order
/// opens the tamper incident. A fix from before the order is left out of
/// the subject's track.
async fn data_outside_the_order_is_never_judged(db: Db) {
    let mut s = setup(db, None).await;
    let now = chrono::Utc::now().timestamp_millis();
    let strap_cut = |seq: u64, time: i64| {
        Uplink::Event(geoward_proto::DeviceEvent {
            seq,
            time: geoward_proto::Timestamp(time),
            kind: geoward_proto::EventKind::StrapOpened,
        })
    };
    // The order began a day ago.
    s.bracelet.send(&strap_cut(1, now - 2 * 86_400_000)).await;
    s.bracelet.wait_ack(1, Duration::from_secs(10)).await;
    common::wait_for(
        "the early event counted",
        Duration::from_secs(10),
        || async {
            s.svc
                .metric("geoward_unjudged_items_total{reason=\"outside_order\"}")
                .await
                >= 1.0
        },
    )
    .await;
    let (status, text) = api(&s.svc, "GET", "/api/incidents", &s.admin, None).await;
    assert_eq!((status, text.as_str()), (200, "[]"));

    s.bracelet.send(&strap_cut(2, now)).await;
    s.bracelet.wait_ack(2, Duration::from_secs(10)).await;
    common::wait_for("the tamper incident", Duration::from_secs(10), || async {
        let (_, text) = api(&s.svc, "GET", "/api/incidents", &s.admin, None).await;
        text.contains("\"tamper\"")
    })
    .await;
    let (_, text) = api(&s.svc, "GET", "/api/incidents", &s.admin, None).await;
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(list.len(), 1, "{text}");

    // Nor is a fix from before the order shown as the subject's track.
    let (lat, lon) = s.walk[0];
    s.bracelet
        .send(&Uplink::Fix(fix_at(3, now - 2 * 86_400_000, lat, lon)))
        .await;
    s.bracelet
        .send(&Uplink::Fix(fix_at(4, now, lat, lon)))
        .await;
    s.bracelet.wait_ack(4, Duration::from_secs(10)).await;
    let (status, text) = api(
        &s.svc,
        "GET",
        "/api/subjects/s1/track?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        &s.admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let track: Value = serde_json::from_str(&text).unwrap();
    let seqs: Vec<i64> = track["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [4], "{text}");
    s.svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_data_outside_the_order_is_never_judged() {
    data_outside_the_order_is_never_judged(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_data_outside_the_order_is_never_judged() {
    data_outside_the_order_is_never_judged(Db::Postgres(fresh_pg_database().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_leaving_the_county_opens_one_incident_that_escalates() {
    leaving_the_county_opens_one_incident_that_escalates(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leaving_the_county_opens_one_incident_that_escalates() {
    leaving_the_county_opens_one_incident_that_escalates(Db::Postgres(fresh_pg_database().await))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_reconnecting_officer_misses_nothing() {
    a_reconnecting_officer_misses_nothing(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_incidents_and_outbox_survive_a_restart() {
    incidents_and_outbox_survive_a_restart(Db::Postgres(fresh_pg_database().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_incidents_and_outbox_survive_a_restart() {
    incidents_and_outbox_survive_a_restart(Db::Sqlite).await;
}

/// The office's own MQTT consumer (client `office:<id>`, password an API token
/// of the office) subscribed to the office's alert topic.
struct AlertSubscriber {
    rx: tokio::sync::mpsc::Receiver<Value>,
    _client: rumqttc::AsyncClient,
}

impl AlertSubscriber {
    async fn start(svc: &Service, office: &str, token: &str) -> AlertSubscriber {
        let client_id = format!("office:{office}");
        let topic = format!("geoward/v1/office/{office}/alerts");
        let mut opts = rumqttc::MqttOptions::new(&client_id, "127.0.0.1", svc.mqtt_port);
        opts.set_credentials(&client_id, token);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 16);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                match event {
                    rumqttc::Event::Incoming(rumqttc::Packet::SubAck(a)) => {
                        if let Some(t) = subscribed_tx.take() {
                            let _ = t.send(a.return_codes);
                        }
                    }
                    rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                        if let Ok(v) = serde_json::from_slice(&p.payload) {
                            let _ = tx.send(v).await;
                        }
                    }
                    _ => {}
                }
            }
        });
        client
            .subscribe(topic, rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        let codes = tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("subscribed in time")
            .unwrap();
        assert_eq!(
            codes,
            [rumqttc::SubscribeReasonCode::Success(
                rumqttc::QoS::AtLeastOnce
            )]
        );
        AlertSubscriber {
            rx,
            _client: client,
        }
    }

    async fn next(&mut self, timeout: Duration) -> Value {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .expect("an alert on the office topic in time")
            .expect("subscriber running")
    }
}

/// A local webhook receiver that records what it gets.
struct WebhookServer {
    addr: std::net::SocketAddr,
    got: std::sync::Arc<tokio::sync::Mutex<Vec<Received>>>,
    notify: std::sync::Arc<tokio::sync::Notify>,
}

#[derive(Debug, Clone)]
struct Received {
    body: String,
    signature: String,
    idempotency_key: String,
}

impl WebhookServer {
    async fn start() -> WebhookServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        let (g, n) = (got.clone(), notify.clone());
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (g, n) = (g.clone(), n.clone());
                tokio::spawn(async move {
                    if let Some(r) = read_request(sock).await {
                        g.lock().await.push(r);
                        n.notify_waiters();
                    }
                });
            }
        });
        WebhookServer { addr, got, notify }
    }

    fn url(&self) -> String {
        format!("http://{}/alerts", self.addr)
    }

    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        tokio::time::timeout(timeout, async {
            loop {
                let wait = self.notify.notified();
                {
                    let got = self.got.lock().await;
                    if got.len() >= n {
                        return got.clone();
                    }
                }
                wait.await;
            }
        })
        .await
        .expect("webhook deliveries in time")
    }
}

async fn read_request(sock: tokio::net::TcpStream) -> Option<Received> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut r = tokio::io::BufReader::new(sock);
    let mut headers = std::collections::HashMap::new();
    let mut line = String::new();
    r.read_line(&mut line).await.ok()?;
    loop {
        line.clear();
        r.read_line(&mut line).await.ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.ok()?;
    r.get_mut()
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    Some(Received {
        body: String::from_utf8(body).ok()?,
        signature: headers
            .get(&geoward_alerting::signature::SIGNATURE_HEADER.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default(),
        idempotency_key: headers
            .get(&geoward_alerting::signature::IDEMPOTENCY_HEADER.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default(),
    })
}
