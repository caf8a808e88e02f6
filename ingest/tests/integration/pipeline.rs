//! Black-box pipeline tests: the real service, real MQTT clients over TCP, real
//! SQLite and PostgreSQL.

use crate::common;

use std::time::Duration;

use common::{Db, Device, Service, count_rows, fresh_pg_database, sealed_fix};

const T: Duration = Duration::from_secs(15);

async fn fixes_in_rows_and_acks_out(db: Db) {
    let svc = Service::start(db).await;
    let creds = svc.add_device("dev1").await;
    let mut dev = Device::connect(svc.mqtt_port, &creds).await;
    dev.wait_connected().await;

    // Out of order, with a gap that is filled later and a duplicate.
    for seq in [1, 2, 3, 5, 6] {
        dev.send_fix(seq).await;
    }
    dev.wait_ack(3, T).await;
    assert_eq!(dev.acked(), 3, "the ack stops below the gap at 4");
    for seq in [4, 5, 7, 8, 9, 10] {
        dev.send_fix(seq).await;
    }
    dev.wait_ack(10, T).await;

    assert_eq!(count_rows(&svc.store, "fixes", "dev1").await, 10);
    assert_eq!(count_rows(&svc.store, "device_progress", "dev1").await, 1);
    assert!(svc.metric("geoward_duplicates_total").await >= 1.0);
    assert!(svc.metric("geoward_acks_sent_total").await >= 2.0);
    assert_eq!(svc.store.verify_evidence("dev1").await.unwrap(), Ok(10));
    // The allocator's figures: a running service holds megabytes, in pages that
    // hold at least that much.
    let allocated = svc
        .metric("geoward_allocator_bytes{kind=\"allocated\"}")
        .await;
    let resident = svc
        .metric("geoward_allocator_bytes{kind=\"resident\"}")
        .await;
    assert!(allocated > 1e6, "allocated {allocated} bytes");
    assert!(
        resident >= allocated,
        "resident {resident} < allocated {allocated}"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fixes_in_rows_and_acks_out() {
    fixes_in_rows_and_acks_out(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fixes_in_rows_and_acks_out() {
    fixes_in_rows_and_acks_out(Db::Postgres(fresh_pg_database().await)).await;
}

/// Devices spread over four commit workers: every fix stored once, every device
/// acked in its own order (a gap holds back only that device's ack), every evidence
/// chain whole.
async fn devices_on_parallel_commit_workers_keep_their_own_order(db: Db) {
    const DEVICES: usize = 12;
    let svc = Service::start_with(db, |c| c.storage.commit_workers = 4).await;
    let ids: Vec<String> = (0..DEVICES).map(|i| format!("par{i:02}")).collect();
    let workers: std::collections::BTreeSet<usize> = ids
        .iter()
        .map(|id| geoward_ingest::pipeline::worker_of(id, 4))
        .collect();
    assert!(
        workers.len() >= 3,
        "the devices must spread over the workers: {workers:?}"
    );
    let mut devs = Vec::new();
    for id in &ids {
        let creds = svc.add_device(id).await;
        let mut dev = Device::connect(svc.mqtt_port, &creds).await;
        dev.wait_connected().await;
        devs.push(dev);
    }
    // Interleaved across devices; every device skips its 20th fix for now.
    for seq in 1..=40 {
        for dev in &devs {
            if seq != 20 {
                dev.send_fix(seq).await;
            }
        }
    }
    for dev in &mut devs {
        dev.wait_ack(19, T).await;
    }
    // Everything above the gap committed: the ack is still held back by it.
    for id in &ids {
        let store = &svc.store;
        common::wait_for("the fixes above the gap stored", T, || async move {
            count_rows(store, "fixes", id).await == 39
        })
        .await;
    }
    for dev in &devs {
        assert_eq!(dev.acked(), 19, "{}: the ack stops below the gap", dev.id);
    }
    for dev in &devs {
        dev.send_fix(20).await;
    }
    for dev in &mut devs {
        dev.wait_ack(40, T).await;
    }
    for id in &ids {
        assert_eq!(count_rows(&svc.store, "fixes", id).await, 40, "{id}");
        assert_eq!(svc.store.verify_evidence(id).await.unwrap(), Ok(40), "{id}");
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_devices_on_parallel_commit_workers_keep_their_own_order() {
    devices_on_parallel_commit_workers_keep_their_own_order(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_devices_on_parallel_commit_workers_keep_their_own_order() {
    devices_on_parallel_commit_workers_keep_their_own_order(Db::Postgres(
        fresh_pg_database().await,
    ))
    .await;
}

async fn malformed_payloads_are_rejected_and_counted(db: Db) {
    let svc = Service::start(db).await;
    let bad = svc.add_device("bad1").await;
    let good = svc.add_device("good1").await;
    let mut bad = Device::connect(svc.mqtt_port, &bad).await;
    let mut good = Device::connect(svc.mqtt_port, &good).await;
    bad.wait_connected().await;
    good.wait_connected().await;

    let id = bad.id.to_string();
    let unsealed = geoward_proto::encode_uplink(
        &bad.id,
        &geoward_proto::Uplink::Fix(common::fix(1)),
        geoward_proto::Encoding::Json,
        geoward_proto::Protection::None,
    )
    .unwrap();
    let mut tampered = sealed_fix(&bad.id, &bad.key, 2);
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    let cases: Vec<(String, Vec<u8>)> = vec![
        (
            format!("geoward/v1/dev/{id}/up/json"),
            b"{not json".to_vec(),
        ),
        (format!("geoward/v1/dev/{id}/up/json"), b"{}".to_vec()),
        (
            format!("geoward/v1/dev/{id}/up/json"),
            vec![0xff, 0xfe, 0x00],
        ),
        (format!("geoward/v1/dev/{id}/up/bin"), vec![]),
        (
            format!("geoward/v1/dev/{id}/up/bin"),
            vec![0x47, 0x57, 0x01, 0x99, 0x00],
        ),
        (format!("geoward/v1/dev/{id}/up/bin"), vec![0u8; 300]),
        (
            format!("owntracks/user/{id}"),
            b"{\"_type\":\"location\",\"lat\":999}".to_vec(),
        ),
        (format!("geoward/v1/dev/{id}/up/json"), unsealed),
        (format!("geoward/v1/dev/{id}/up/json"), tampered),
        (format!("geoward/v1/dev/{id}/up/xml"), b"<fix/>".to_vec()),
    ];
    let n = cases.len() as f64;
    for (seq, (topic, payload)) in (1..).zip(cases) {
        bad.publish_raw(&topic, payload).await;
        good.send_fix(seq).await;
    }
    // Messages on topics outside the uplink scheme never reach the pipeline.
    common::wait_for("every malformed message counted", T, || async {
        svc.metric("geoward_messages_received_total").await >= n - 1.0 + 10.0
    })
    .await;
    good.wait_ack(10, T).await;
    let mut rejected = 0.0;
    let (_, body) = common::http_get(svc.http, "/metrics").await.unwrap();
    for line in body
        .lines()
        .filter(|l| l.starts_with("geoward_messages_rejected_total{"))
    {
        rejected += line.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    }
    assert!(rejected >= n - 1.0, "rejected {rejected}\n{body}");
    assert!(
        svc.metric("geoward_messages_rejected_total{reason=\"bad_json\"}")
            .await
            >= 1.0,
        "{body}"
    );
    assert!(
        svc.metric("geoward_messages_rejected_total{reason=\"unauthenticated\"}")
            .await
            >= 1.0,
        "{body}"
    );
    assert!(
        svc.metric("geoward_messages_rejected_total{reason=\"bad_mac\"}")
            .await
            >= 1.0,
        "{body}"
    );
    assert_eq!(count_rows(&svc.store, "fixes", "bad1").await, 0);
    assert_eq!(count_rows(&svc.store, "evidence", "bad1").await, 0);
    assert_eq!(count_rows(&svc.store, "fixes", "good1").await, 10);
    assert_eq!(common::http_get(svc.http, "/healthz").await.unwrap().0, 200);
    assert_eq!(common::http_get(svc.http, "/readyz").await.unwrap().0, 200);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_malformed_payloads_are_rejected_and_counted() {
    malformed_payloads_are_rejected_and_counted(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_malformed_payloads_are_rejected_and_counted() {
    malformed_payloads_are_rejected_and_counted(Db::Postgres(fresh_pg_database().await)).await;
}

async fn no_device_can_publish_as_another(db: Db) {
    let svc = Service::start(db).await;
    let a = svc.add_device("devA").await;
    let b = svc.add_device("devB").await;
    let a_key = hex::decode(&a.payload_key).unwrap();
    let b_id = geoward_proto::DeviceId::new("devB").unwrap();
    let topic_b = "geoward/v1/dev/devB/up/json";
    let unsigned = geoward_proto::encode_uplink(
        &b_id,
        &geoward_proto::Uplink::Fix(common::fix(2)),
        geoward_proto::Encoding::Json,
        geoward_proto::Protection::None,
    )
    .unwrap();
    let attempts = [
        // Signed with A's own key on B's topic.
        (topic_b, sealed_fix(&b_id, &a_key, 1)),
        // Unsigned on B's topic.
        (topic_b, unsigned),
        // Claiming B's tenant prefix without B's certificate.
        (
            "/tenants/devB/geoward/v1/dev/devB/up/json",
            sealed_fix(&b_id, &a_key, 3),
        ),
        // B's downlink: a forged ack would make B drop unstored fixes.
        (
            "geoward/v1/dev/devB/down",
            br#"{"type":"ack","seq":99}"#.to_vec(),
        ),
        // A fake alert on an office topic.
        (
            "geoward/v1/office/zz/alerts",
            br#"{"kind":"fake"}"#.to_vec(),
        ),
    ];
    // The broker refuses each publish and closes the connection.
    for (n, (topic, payload)) in attempts.into_iter().enumerate() {
        let mut attacker = Device::connect(svc.mqtt_port, &a).await;
        attacker.wait_connected().await;
        attacker.publish_raw(topic, payload).await;
        common::wait_for("the attacker disconnected", T, || async {
            !attacker.is_connected()
        })
        .await;
        let denied = (n + 1) as f64;
        common::wait_for("publish counted as denied", T, || async {
            svc.metric("geoward_security_events_total{kind=\"publish_denied\"}")
                .await
                >= denied
        })
        .await;
    }
    // A last will on B's topic would be published later on A's behalf: the
    // connection is refused.
    let mut opts = rumqttc::MqttOptions::new("devA", "127.0.0.1", svc.mqtt_port);
    opts.set_credentials("devA", &a.password);
    opts.set_last_will(rumqttc::LastWill::new(
        topic_b,
        sealed_fix(&b_id, &a_key, 4),
        rumqttc::QoS::AtLeastOnce,
        false,
    ));
    let (_will_client, mut will_loop) = rumqttc::AsyncClient::new(opts, 4);
    let refused = tokio::time::timeout(T, async {
        loop {
            match will_loop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return false,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
    })
    .await
    .expect("connection with a foreign will settled in time");
    assert!(refused, "a will on another device's topic is refused");
    common::wait_for("will counted as denied", T, || async {
        svc.metric("geoward_security_events_total{kind=\"publish_denied\"}")
            .await
            >= 6.0
    })
    .await;
    // A's credentials with B's client id: refused at connect.
    let hijack =
        Device::connect_as(svc.mqtt_port, "devB", "devA", &a.password, &a.payload_key).await;
    // A's own fixes still go through.
    let mut a_dev = Device::connect(svc.mqtt_port, &a).await;
    a_dev.wait_connected().await;
    a_dev.send_fix(1).await;
    a_dev.wait_ack(1, T).await;
    common::wait_for("hijack refused", T, || async {
        svc.metric("geoward_auth_failures_total{reason=\"client_id_mismatch\"}")
            .await
            >= 1.0
    })
    .await;
    assert!(!hijack.is_connected());
    assert_eq!(count_rows(&svc.store, "fixes", "devB").await, 0);
    assert_eq!(count_rows(&svc.store, "evidence", "devB").await, 0);
    assert_eq!(count_rows(&svc.store, "fixes", "devA").await, 1);
    drop(b);
    svc.stop().await;
}

/// On plain TCP a device may subscribe to its own downlink only: every other
/// filter (another device's uplink or downlink, wildcards, office alerts) gets
/// a failure return code, is counted, and delivers nothing, while the
/// connection stays up.
async fn no_device_can_read_another_devices_traffic(db: Db) {
    let svc = Service::start(db).await;
    let a = svc.add_device("devA").await;
    let b = svc.add_device("devB").await;
    let mut b_dev = Device::connect(svc.mqtt_port, &b).await;
    b_dev.wait_connected().await;

    let mut opts = rumqttc::MqttOptions::new("devA", "127.0.0.1", svc.mqtt_port);
    opts.set_credentials("devA", &a.password);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 16);
    let (subacks_tx, mut subacks) = tokio::sync::mpsc::unbounded_channel();
    let (topics_tx, mut topics) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(s))) => {
                    let _ = subacks_tx.send(s.return_codes);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let _ = topics_tx.send(p.topic);
                }
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    });
    let filters = [
        "geoward/v1/dev/devA/down",
        "geoward/v1/dev/devB/up/json",
        "geoward/v1/dev/+/up/+",
        "geoward/v1/dev/devB/down",
        "geoward/v1/office/+/alerts",
        "owntracks/+/+",
        "#",
    ];
    client
        .subscribe_many(
            filters
                .iter()
                .map(|f| rumqttc::SubscribeFilter::new((*f).to_owned(), rumqttc::QoS::AtLeastOnce)),
        )
        .await
        .unwrap();
    let codes = tokio::time::timeout(T, subacks.recv())
        .await
        .expect("suback in time")
        .expect("watcher running");
    let mut want = vec![rumqttc::SubscribeReasonCode::Success(
        rumqttc::QoS::AtLeastOnce,
    )];
    want.extend([rumqttc::SubscribeReasonCode::Failure; 6]);
    assert_eq!(codes, want);
    common::wait_for("subscriptions counted as denied", T, || async {
        svc.metric("geoward_security_events_total{kind=\"subscribe_denied\"}")
            .await
            >= 6.0
    })
    .await;

    // B's fix and its ack pass through the broker; A sees neither.
    b_dev.send_fix(1).await;
    b_dev.wait_ack(1, T).await;
    assert_eq!(count_rows(&svc.store, "fixes", "devB").await, 1);
    let late = tokio::time::timeout(Duration::from_millis(500), topics.recv()).await;
    assert!(late.is_err(), "devA received {late:?}");
    assert!(!watcher.is_finished(), "devA stays connected");
    watcher.abort();
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_device_can_read_another_devices_traffic() {
    no_device_can_read_another_devices_traffic(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_no_device_can_read_another_devices_traffic() {
    no_device_can_read_another_devices_traffic(Db::Postgres(fresh_pg_database().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_device_can_publish_as_another() {
    no_device_can_publish_as_another(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_no_device_can_publish_as_another() {
    no_device_can_publish_as_another(Db::Postgres(fresh_pg_database().await)).await;
}
