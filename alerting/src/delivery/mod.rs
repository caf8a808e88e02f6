//! Delivery adapters: the only IO in this crate (feature `delivery`).
//!
//! The service owns the outbox table and the loop; it claims due
//! [`OutboxRecord`]s, hands each to an [`AlertSink`] through [`attempt`] and
//! stores the record again. Sinks never retry by themselves: retrying is the
//! outbox state machine's job, so a restart cannot lose or double a retry
//! schedule.

mod webhook;

use std::future::Future;

pub use self::webhook::{WebhookConfig, WebhookError, WebhookSender, WebhookSink};
use crate::notify::Notification;
use crate::outbox::{DeliveryOutcome, OutboxError, OutboxRecord, RetryPolicy};
use crate::time::Timestamp;

/// Something that can deliver a notification once: a webhook, the MQTT
/// alert topic of an office (implemented by the service with its broker
/// link, publishing [`Notification::body`] on
/// the office's alert topic of `geoward-proto`), or the live feed.
pub trait AlertSink {
    /// One attempt; never panics, never retries.
    fn deliver(&self, notification: &Notification) -> impl Future<Output = DeliveryOutcome> + Send;
}

/// The wall clock, for the edge only (the core takes time as an argument).
pub fn system_now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp(ms)
}

/// Claims `record` at `clock()`, delivers it through `sink` and records the
/// outcome at `clock()` again. The caller persists the record before (the
/// claim) and after (the outcome) as its durability needs.
pub async fn attempt<S: AlertSink>(
    sink: &S,
    record: &mut OutboxRecord,
    policy: &RetryPolicy,
    clock: impl Fn() -> Timestamp,
) -> Result<DeliveryOutcome, OutboxError> {
    record.claim(clock(), policy)?;
    let outcome = sink.deliver(&record.notification).await;
    record.record(outcome.clone(), clock(), policy)?;
    Ok(outcome)
}
