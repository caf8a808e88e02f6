//! `kill -9` of the real `geoward` process under load: after a restart, every fix
//! that was acknowledged before the kill is in the database, and the device's
//! resend of everything above its last ack completes the sequence with no gaps and
//! no duplicates.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{
    Device, GeowardProcess, assert_stored_once, free_port, fresh_pg_database, stored_seqs, wait_for,
};
use geoward_ingest::store::Store;

/// Fixes the device has in its store-and-forward buffer over the whole test.
const TOTAL: u64 = 4000;
/// The kill comes once this many are acked (and more are in flight).
const KILL_AFTER_ACKED: u64 = 800;

async fn kill_9_under_load_loses_no_acked_fix(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mqtt = free_port();
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let data = dir.path().join("data");
    let db_line = database_url
        .map(|u| format!("database_url = \"{u}\"\n"))
        .unwrap_or_default();
    let config_text = format!(
        "[mqtt]\ntcp_listen = \"127.0.0.1:{mqtt}\"\nsegment_size_bytes = 1048576\nsegment_count = 4\n\
         [storage]\ndata_dir = \"{}\"\n{db_line}batch_max_delay_ms = 5\n[http]\nlisten = \"{http}\"\n",
        data.display()
    );
    let config_path = dir.path().join("geoward.toml");
    std::fs::write(&config_path, &config_text).unwrap();
    let config = geoward_ingest::Config::load(&config_text, Vec::new()).unwrap();
    let store = Store::connect(&config.storage).await.unwrap();
    store.migrate().await.unwrap();
    let creds = geoward_ingest::cli::add_device(&store, "crash1", "bracelet", None)
        .await
        .unwrap();

    let mut child = GeowardProcess::serve(&config_path);
    child.wait_ready(http).await;
    let mut dev = Device::connect(mqtt, &creds).await;
    dev.wait_connected().await;

    // A publisher that never waits for acks, like a device emptying its buffer,
    // paced at about 2000 fixes/s so the stream is still running at the kill.
    let sent = Arc::new(AtomicU64::new(0));
    let base_ms = common::paced_base_ms();
    let publisher = {
        let client = dev.client.clone();
        let id = dev.id.clone();
        let key = dev.key.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            for seq in 1..=TOTAL {
                if seq.is_multiple_of(100) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
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
    dev.wait_ack(KILL_AFTER_ACKED, Duration::from_secs(30))
        .await;
    child.kill_9();
    let acked = dev.acked();
    let sent_at_kill = sent.load(Ordering::Acquire);
    publisher.abort();
    // The kill comes before everything is acknowledged: some of the stream is
    // queued in the client or in flight, and the device resends it after the ack.
    assert!(
        acked < TOTAL,
        "the kill must come before the stream ends (sent {sent_at_kill}, acked {acked})"
    );

    let stored = stored_seqs(&store, "crash1").await;
    let missing: Vec<u64> = (1..=acked)
        .filter(|s| stored.binary_search(&(*s as i64)).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "acked up to {acked} but missing {} of them, first {:?}",
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );

    // Restart; the device reconnects and resends everything above its ack.
    let mut child = GeowardProcess::serve(&config_path);
    child.wait_ready(http).await;
    let mut dev = Device::connect(mqtt, &creds).await;
    dev.wait_connected().await;
    for seq in acked + 1..=TOTAL {
        dev.send_paced_fix(seq, base_ms).await;
    }
    dev.wait_ack(TOTAL, Duration::from_secs(40)).await;
    wait_for(
        "no ack above the resend",
        Duration::from_secs(1),
        || async { dev.acked() == TOTAL },
    )
    .await;
    assert_stored_once(&store, "crash1", TOTAL, "after a kill -9 and a resend").await;
    assert_eq!(
        store.verify_evidence("crash1").await.unwrap().map(|_| ()),
        Ok(()),
        "the evidence chain survives the crash"
    );
    child.kill_9();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_under_load_loses_no_acked_fix() {
    kill_9_under_load_loses_no_acked_fix(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_9_under_load_loses_no_acked_fix() {
    kill_9_under_load_loses_no_acked_fix(Some(fresh_pg_database().await)).await;
}
