//! The ingest pipeline: broker local link → decode and verify → bounded queue →
//! batcher (dedupe, evidence chain, one transaction) → durable acks.
//!
//! Several batchers may commit in parallel (`storage.commit_workers`): each device
//! always goes to the same one, so its dedupe state, evidence chain and acks stay in
//! one place and in order, while batches of different devices overlap their
//! commits.
//!
//! Backpressure, not loss: the queue between the reader and the batcher is bounded.
//! When storage is slow the batcher stops draining it, the reader stops reading from
//! the broker, and no acks go out. The broker keeps what it has in its in-memory log;
//! if the log overflows it skips the oldest entries for our reader, which we detect
//! from the cursor and count in `geoward_skipped_broker_messages_total`. Nothing
//! skipped was acked, so the devices still hold it and resend it.

pub mod decode;
pub mod plan;

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::Store;
use decode::Decoder;
use plan::{Accepted, DeviceTrack};

/// Pipeline tuning, from the configuration.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Rows that close a batch.
    pub batch_max_rows: usize,
    /// Age of the oldest message that closes a batch.
    pub batch_max_delay: Duration,
    /// Items remembered above a gap per device.
    pub max_pending_per_device: usize,
}

/// The batcher of `device` among `workers`: the same for every message of a device
/// while the service runs. (Across restarts it need not be: a batcher loads the
/// state of a device it has not seen from storage.)
pub fn worker_of(device: &str, workers: usize) -> usize {
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(device);
    (hash % workers.max(1) as u64) as usize
}

/// Reads uplinks from the broker's local link until `stop` fires, decodes them and
/// queues each for its device's batcher ([`worker_of`]). Returns when stopped or
/// when the broker is gone; dropping the senders on return lets the batchers drain
/// and finish.
pub async fn run_reader(
    mut link_rx: LinkRx,
    batchers: Vec<mpsc::Sender<Accepted>>,
    decoder: Arc<Decoder>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    // Last log offset seen per subscription filter (offsets count per filter).
    let mut last_offset: HashMap<(bool, bool), u64> = HashMap::new();
    let depth = metrics.queue_depth.with_label_values(&["decoded"]);
    loop {
        let notification = tokio::select! {
            _ = stop.cancelled() => break,
            n = link_rx.next() => n,
        };
        let forward = match notification {
            Ok(Some(Notification::Forward(f))) => f,
            Ok(Some(Notification::Unschedule)) => {
                if link_rx.wake().await.is_err() {
                    break;
                }
                continue;
            }
            Ok(Some(_)) | Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "broker local link closed");
                break;
            }
        };
        let topic = &forward.publish.topic;
        let tenant = topic.starts_with(b"/tenants/");
        let owntracks = topic.windows(10).any(|w| w == b"owntracks/");
        let filter = (tenant, owntracks);
        if let Some((_, offset)) = forward.cursor {
            if let Some(last) = last_offset.get(&filter)
                && offset > last + 1
            {
                metrics.skipped_broker_messages.inc_by(offset - last - 1);
                tracing::warn!(
                    skipped = offset - last - 1,
                    "broker skipped log entries of the pipeline"
                );
            }
            last_offset.insert(filter, offset);
        }
        metrics.messages_received.inc();
        let received_at = crate::store::to_micros_precision(chrono::Utc::now());
        // The payload is a slice of the connection's read buffer, which it
        // would keep whole (about a kilobyte, with the packets read beside
        // it) until the batch commits: an exact copy lets that go with
        // `forward`, once decoded. The evidence row shares the copy.
        let payload = bytes::Bytes::copy_from_slice(&forward.publish.payload);
        match decoder
            .decode(&forward.publish.topic, payload, received_at)
            .await
        {
            Ok(accepted) => {
                metrics
                    .messages_accepted
                    .with_label_values(&[accepted.1])
                    .inc();
                depth.inc();
                let tx = &batchers[worker_of(&accepted.0.device_id, batchers.len())];
                if tx.send(accepted.0).await.is_err() {
                    break;
                }
            }
            Err(reason) => {
                metrics.messages_rejected.with_label_values(&[reason]).inc();
            }
        }
    }
}

/// Batches queued messages, commits them and publishes acks, until the queue closes
/// (the reader stopped) and everything in it is committed, or `abort` fires. The
/// broker link is shared with the other batchers; each holds it only to publish one
/// batch's acks.
pub async fn run_batcher(
    mut rx: mpsc::Receiver<Accepted>,
    store: Store,
    link_tx: Arc<Mutex<LinkTx>>,
    metrics: Metrics,
    settings: PipelineSettings,
    monitor: Option<mpsc::Sender<crate::monitor::Input>>,
    abort: CancellationToken,
) {
    let mut tracks: HashMap<String, DeviceTrack> = HashMap::new();
    let depth = metrics.queue_depth.with_label_values(&["decoded"]);
    let backend = match store {
        Store::Sqlite(_) => "sqlite",
        Store::Postgres(_) => "postgres",
    };
    loop {
        let Some(first) = rx.recv().await else { break };
        let deadline = tokio::time::Instant::now() + settings.batch_max_delay;
        let mut rows = first.items.len();
        let mut msgs = vec![first];
        while rows < settings.batch_max_rows {
            // Queued messages first: what waited during the last commit joins
            // this batch even once the deadline has passed.
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => { rows += m.items.len(); msgs.push(m); }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        depth.sub(msgs.len() as i64);
        let oldest = msgs.iter().map(|m| m.received_at).min();

        let mut unknown: Vec<String> = msgs
            .iter()
            .filter(|m| !tracks.contains_key(&m.device_id))
            .map(|m| m.device_id.clone())
            .collect();
        unknown.sort();
        unknown.dedup();
        if !unknown.is_empty() {
            let loaded = loop {
                match store.load_device_states(&unknown).await {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "loading device state failed, retrying");
                        if wait_or_abort(&abort, Duration::from_millis(500)).await {
                            return;
                        }
                    }
                }
            };
            for (d, s) in loaded {
                tracks.insert(d, s.into());
            }
        }

        let plan = plan::plan(msgs, &tracks, settings.max_pending_per_device);
        metrics.duplicates.inc_by(plan.duplicates);
        metrics.late_fixes.inc_by(plan.late_fixes);
        if plan.refused > 0 {
            metrics
                .messages_rejected
                .with_label_values(&["gap_backlog_full"])
                .inc_by(plan.refused);
        }
        if !plan.write.is_empty() {
            let mut backoff = Duration::from_millis(100);
            loop {
                let started = Instant::now();
                match store.write_batch(&plan.write).await {
                    Ok(()) => {
                        metrics
                            .commit_seconds
                            .with_label_values(&[backend])
                            .observe(started.elapsed().as_secs_f64());
                        break;
                    }
                    Err(e) => {
                        // Nothing of this batch is acked until it commits; devices keep it.
                        metrics.commit_failures.inc();
                        tracing::warn!(error = %format!("{e:#}"), "batch commit failed, retrying");
                        if wait_or_abort(&abort, backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            metrics
                .batch_rows
                .observe((plan.write.fixes.len() + plan.write.events.len()) as f64);
        }
        if let Some(oldest) = oldest {
            metrics
                .commit_lag_ms
                .set((chrono::Utc::now() - oldest).num_milliseconds().max(0));
        }
        tracks.extend(plan.tracks);
        if !plan.acks.is_empty() {
            // A batcher that panicked while holding the link left nothing half
            // published (one publish is one call): the link is still usable.
            let mut link = link_tx.lock().unwrap_or_else(|p| p.into_inner());
            for (topic, seq) in plan.acks {
                let payload = decode::encode_ack(seq);
                match link.publish(topic, payload) {
                    Ok(_) => metrics.acks_sent.inc(),
                    Err(e) => tracing::warn!(error = %e, "publishing ack failed"),
                }
            }
        }
        // Only what is durable is judged: every incident's evidence is stored.
        if let Some(monitor) = &monitor {
            let committed_at = chrono::Utc::now();
            let items = stored_items(plan.write);
            if !items.is_empty()
                && monitor
                    .send(crate::monitor::Input::Stored {
                        items,
                        committed_at,
                    })
                    .await
                    .is_err()
            {
                tracing::debug!("monitor stopped; stored items are not judged");
            }
        }
    }
}

/// The committed rows of a batch as per-device item lists, in commit order.
fn stored_items(write: crate::store::WriteBatch) -> Vec<crate::monitor::Stored> {
    let mut out: Vec<crate::monitor::Stored> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut push = |device: String, received_at, item| {
        let i = *index.entry(device.clone()).or_insert_with(|| {
            out.push(crate::monitor::Stored {
                device_id: device,
                items: Vec::new(),
            });
            out.len() - 1
        });
        out[i].items.push((item, received_at));
    };
    for f in write.fixes {
        push(
            f.device_id,
            f.received_at,
            plan::Item::Fix {
                seq: f.seq,
                time: f.fix_time,
                lat: f.lat,
                lon: f.lon,
                accuracy_m: f.accuracy_m,
                source: f.source,
            },
        );
    }
    for e in write.events {
        push(
            e.device_id,
            e.received_at,
            plan::Item::Event {
                seq: e.seq,
                time: e.event_time,
                kind: e.kind,
                detail: e.detail,
            },
        );
    }
    out
}

/// Sleeps `d` unless `abort` fires first; true when aborted.
async fn wait_or_abort(abort: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = abort.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::worker_of;

    #[test]
    fn a_device_always_has_the_same_worker_and_devices_spread() {
        let mut per_worker = [0usize; 4];
        for i in 0..4000 {
            let id = format!("dev{i}");
            let w = worker_of(&id, 4);
            assert_eq!(w, worker_of(&id, 4), "{id}");
            per_worker[w] += 1;
        }
        // 1000 expected each; a broken hash piles them up.
        assert!(
            per_worker.iter().all(|n| (800..1200).contains(n)),
            "{per_worker:?}"
        );
        assert_eq!(worker_of("dev1", 1), 0);
        assert_eq!(worker_of("dev1", 0), 0, "no workers is treated as one");
    }
}
