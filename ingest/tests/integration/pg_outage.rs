//! PostgreSQL stopped for 30 s under load: the service stays up (healthz 200,
//! readyz 503 while the database is down), acks stop, no acked fix is lost, and the
//! backlog drains and is acked after the database returns.
//!
//! The test runs a cluster of its own: stopping the shared one would break every
//! other PostgreSQL test running at the same time.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Db, Device, OwnPgCluster, Service, assert_stored_once, http_get, wait_for};

/// How long the database is away (the issue names 30 s).
const OUTAGE: Duration = Duration::from_secs(30);
/// The device's publishing pace: the load, not a wait.
const PACE: Duration = Duration::from_millis(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_of_30_s_under_load_loses_no_acked_fix_and_drains_after() {
    let pg = OwnPgCluster::start();
    let svc = Service::start(Db::Postgres(pg.url.clone())).await;
    let creds = svc.add_device("out1").await;
    let mut dev = Device::connect(svc.mqtt_port, &creds).await;
    dev.wait_connected().await;

    // A device publishing about 200 fixes/s for the whole test, never waiting.
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let base_ms = common::paced_base_ms();
    let publisher = {
        let client = dev.client.clone();
        let id = dev.id.clone();
        let key = dev.key.clone();
        let (sent, done) = (sent.clone(), done.clone());
        tokio::spawn(async move {
            let topic = format!("geoward/v1/dev/{id}/up/json");
            let mut seq = 0;
            while !done.load(Ordering::Acquire) {
                seq += 1;
                let payload = common::sealed_paced_fix(&id, &key, seq, base_ms);
                client
                    .publish(&topic, rumqttc::QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
                sent.store(seq, Ordering::Release);
                tokio::time::sleep(PACE).await;
            }
        })
    };
    dev.wait_ack(200, Duration::from_secs(20)).await;

    pg.stop();
    let (status, _) = http_get(svc.http, "/healthz").await.unwrap();
    assert_eq!(status, 200, "alive while the database is down");
    wait_for(
        "readyz 503 while the database is down",
        Duration::from_secs(15),
        || async {
            http_get(svc.http, "/readyz")
                .await
                .map(|(s, _)| s == 503)
                .unwrap_or(false)
        },
    )
    .await;
    // Nothing can commit from here on: whatever is acked now is all that will be
    // acked until the database returns.
    let acked_in_outage = dev.acked();
    let sent_in_outage = sent.load(Ordering::Acquire);
    tokio::time::sleep(OUTAGE).await;
    assert_eq!(
        dev.acked(),
        acked_in_outage,
        "no ack while the database is down"
    );
    assert!(
        sent.load(Ordering::Acquire) > sent_in_outage + 1000,
        "the device kept publishing during the outage"
    );
    let (status, _) = http_get(svc.http, "/healthz").await.unwrap();
    assert_eq!(status, 200, "still alive after 30 s without a database");
    assert!(svc.metric("geoward_commit_failures_total").await >= 1.0);

    pg.start_again();
    wait_for(
        "readyz 200 after the database returns",
        Duration::from_secs(15),
        || async {
            http_get(svc.http, "/readyz")
                .await
                .map(|(s, _)| s == 200)
                .unwrap_or(false)
        },
    )
    .await;
    done.store(true, Ordering::Release);
    publisher.await.unwrap();
    let total = sent.load(Ordering::Acquire);
    dev.wait_ack(total, Duration::from_secs(20)).await;

    let context = format!("acked {acked_in_outage} before the outage");
    assert_stored_once(&svc.store, "out1", total, &context).await;
    assert_eq!(
        svc.store.verify_evidence("out1").await.unwrap().map(|_| ()),
        Ok(())
    );
    svc.stop().await;
}
