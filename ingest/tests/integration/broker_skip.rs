//! The broker's log overflowing while the pipeline is held up: rumqttd drops
//! the oldest messages the pipeline has not read yet. The pipeline notices
//! the jump in the log's offsets and counts it; it acks only what it stored,
//! so a device that resends everything after its ack (as devices do, a few
//! at a time) loses nothing, and what arrives twice is stored once.

use std::time::Duration;

use sqlx::Connection;

use crate::common::*;

/// Fixes sent while storage is blocked: about 90 KB, against a 2 KiB log.
const FIXES: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_overflow_is_counted_and_resent_fixes_are_all_stored_once() {
    let svc = Service::start_with(Db::Sqlite, |c| {
        // Two 1 KiB segments of uplink log; a pipeline that commits each fix on
        // its own and stops reading the broker once four wait behind a commit.
        c.mqtt.segment_size_bytes = 1024;
        c.mqtt.segment_count = 2;
        c.pipeline.queue_capacity = 4;
        c.storage.batch_max_rows = 1;
    })
    .await;
    let creds = svc.add_device("skip1").await;
    let mut dev = Device::connect(svc.mqtt_port, &creds).await;
    dev.wait_connected().await;
    dev.send_fix(1).await;
    dev.wait_ack(1, Duration::from_secs(10)).await;

    // Hold SQLite's write lock: the next commit waits for it (the service's busy
    // timeout is 10 s), the pipeline's queue fills and it stops reading.
    let db = svc.config.storage.data_dir.join("geoward.db");
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    for seq in 2..=FIXES {
        dev.send_fix(seq).await;
    }
    // Every fix is in the broker (PUBACKed), far more than its log holds. (The
    // pipeline may already have seen a skip: a burst outruns it even unblocked.)
    dev.wait_pubacks(FIXES, Duration::from_secs(10)).await;
    assert_eq!(dev.acked(), 1, "nothing acked while storage is blocked");
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();

    wait_for(
        "the pipeline to count the messages the broker skipped",
        Duration::from_secs(10),
        || async { svc.metric("geoward_skipped_broker_messages_total").await > 0.0 },
    )
    .await;
    let skipped = svc.metric("geoward_skipped_broker_messages_total").await;
    assert!(skipped < FIXES as f64, "skipped {skipped}");

    // The device resends everything after its ack, four at a time (what the
    // log holds), some of it perhaps still being stored: duplicates are absorbed.
    let mut rounds = 0;
    while dev.acked() < FIXES {
        let from = dev.acked() + 1;
        let to = (from + 3).min(FIXES);
        for seq in from..=to {
            dev.send_fix(seq).await;
        }
        dev.wait_ack(to, Duration::from_secs(10)).await;
        rounds += 1;
    }
    assert!(rounds >= 2, "the skipped fixes were resent");
    let context = format!("{skipped} skipped by the broker");
    assert_stored_once(&svc.store, "skip1", FIXES, &context).await;
    svc.stop().await;
}
