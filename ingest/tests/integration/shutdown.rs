//! Graceful shutdown under load: the service's shutdown future fires while a device
//! publishes as fast as it can; `run` returns within 10 s, every acked fix is
//! stored, and what was committed during the drain is acked (final acks).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Db, Device, Service, fresh_pg_database, stored_seqs, wait_for};
use geoward_ingest::store::Store;

const TOTAL: u64 = 20_000;
/// Unacked fixes the device keeps in flight.
const WINDOW: u64 = 3000;

async fn graceful_shutdown_under_load(db: Db) {
    let svc = Service::start(db).await;
    let creds = svc.add_device("stop1").await;
    let mut dev = Device::connect(svc.mqtt_port, &creds).await;
    dev.wait_connected().await;

    let sent = Arc::new(AtomicU64::new(0));
    let base_ms = common::paced_base_ms();
    let publisher = {
        let client = dev.client.clone();
        let id = dev.id.clone();
        let key = dev.key.clone();
        let sent = sent.clone();
        let mut acks = dev.ack_watch();
        tokio::spawn(async move {
            for seq in 1..=TOTAL {
                // At most WINDOW unacked fixes out: the broker's in-memory log
                // (4 MiB in the harness) never overflows, so nothing needs a resend.
                if acks.wait_for(|a| seq <= a + WINDOW).await.is_err() {
                    return;
                }
                let payload = common::sealed_paced_fix(&id, &key, seq, base_ms);
                let topic = format!("geoward/v1/dev/{id}/up/json");
                if client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    return;
                }
                sent.store(seq, Ordering::Release);
            }
        })
    };
    dev.wait_ack(500, Duration::from_secs(30)).await;
    wait_for("fixes in flight", Duration::from_secs(10), || async {
        sent.load(Ordering::Acquire) > dev.acked() + 100
    })
    .await;

    let config = svc.config.clone();
    let acked_at_stop = dev.acked();
    let sent_at_stop = sent.load(Ordering::Acquire);
    let started = Instant::now();
    let dir = svc.stop_keep_dir().await;
    let took = started.elapsed();
    publisher.abort();
    assert!(
        took < Duration::from_secs(10),
        "shutdown took {took:?}, the limit is 10 s"
    );
    assert!(
        acked_at_stop < sent_at_stop,
        "the stop must come with a backlog (sent {sent_at_stop}, acked {acked_at_stop})"
    );

    let store = Store::connect(&config.storage).await.unwrap();
    let stored = stored_seqs(&store, "stop1").await;
    let mut dedup = stored.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), stored.len(), "no fix is stored twice");
    // Highest contiguous sequence stored from 1.
    let contiguous = stored
        .iter()
        .zip(1..)
        .take_while(|(s, want)| **s == *want)
        .count() as u64;
    let acked = dev.acked();
    assert!(
        contiguous >= acked,
        "acked {acked} but only 1..={contiguous} is stored"
    );
    // The drain commits what was queued and acks it: the device learns about it.
    wait_for(
        "final acks after the drain",
        Duration::from_secs(5),
        || async { dev.acked() == contiguous },
    )
    .await;
    store.close().await;
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_graceful_shutdown_under_load_returns_in_time_and_keeps_acked_fixes() {
    graceful_shutdown_under_load(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_graceful_shutdown_under_load_returns_in_time_and_keeps_acked_fixes() {
    graceful_shutdown_under_load(Db::Postgres(fresh_pg_database().await)).await;
}
