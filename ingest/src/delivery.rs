//! The outbox delivery loop: claims due notifications, sends them through their
//! sink (webhook, or the office's MQTT alert topic on the embedded broker) and
//! stores each record's new state. At-least-once: a record is claimed (leased)
//! in the database before the attempt and recorded after it, so a crash between
//! the two only means the lease runs out and the notification is sent again with
//! the same idempotency key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use geoward_alerting::TargetId;
use geoward_alerting::delivery::{
    AlertSink, WebhookConfig, WebhookSender, WebhookSink, system_now,
};
use geoward_alerting::notify::Notification;
use geoward_alerting::outbox::{DeliveryOutcome, DeliveryState, OutboxRecord, RetryPolicy};
use geoward_alerting::routing::TargetKind;
use rumqttd::local::LinkTx;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::AlertingConfig;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::alerts;
use crate::with_pool;

/// Records claimed per poll.
const CLAIM_LIMIT: i64 = 256;

/// Publishes on the offices' alert topics through a broker local link.
#[derive(Clone)]
struct MqttSink {
    link: Arc<Mutex<LinkTx>>,
}

impl AlertSink for MqttSink {
    async fn deliver(&self, n: &Notification) -> DeliveryOutcome {
        let office = match geoward_proto::OfficeId::new(n.office.as_str()) {
            Ok(o) => o,
            Err(e) => {
                return DeliveryOutcome::Permanent {
                    reason: "bad_office_id".to_owned(),
                    detail: e.to_string(),
                };
            }
        };
        let topic = geoward_proto::Topic::office_alerts(office).to_string();
        let published = match self.link.lock() {
            Ok(mut link) => link
                .publish(topic, n.body())
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(_) => Err("alert link poisoned".to_owned()),
        };
        match published {
            Ok(()) => DeliveryOutcome::Delivered,
            Err(detail) => DeliveryOutcome::Retryable {
                reason: "broker".to_owned(),
                detail,
            },
        }
    }
}

/// Runs until `stop` fires.
pub async fn run(
    store: Store,
    metrics: Metrics,
    cfg: AlertingConfig,
    alert_link: LinkTx,
    stop: CancellationToken,
) {
    let sender = match WebhookSender::new(&WebhookConfig {
        timeout_ms: cfg.webhook_timeout_ms,
        connect_timeout_ms: cfg.webhook_timeout_ms.min(3000),
    }) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; notifications stay in the outbox");
            return;
        }
    };
    let mqtt = MqttSink {
        link: Arc::new(Mutex::new(alert_link)),
    };
    let mut every = tokio::time::interval(Duration::from_millis(cfg.delivery_poll_ms.max(10)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(e) = poll(&store, &metrics, &cfg.retry, &sender, &mqtt).await {
            tracing::warn!(error = %format!("{e:#}"), "outbox poll failed");
        }
    }
}

async fn secrets(store: &Store) -> anyhow::Result<HashMap<TargetId, Vec<u8>>> {
    let rows: Vec<(String, String)> = with_pool!(store, p => sqlx::query_as(
        "SELECT id, secret FROM delivery_targets WHERE secret IS NOT NULL"
    ).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|(id, s)| (TargetId(id), s.into_bytes()))
        .collect())
}

async fn poll(
    store: &Store,
    metrics: &Metrics,
    retry: &RetryPolicy,
    sender: &WebhookSender,
    mqtt: &MqttSink,
) -> anyhow::Result<()> {
    let due = alerts::due_outbox(store, system_now().millis(), CLAIM_LIMIT).await?;
    if !due.is_empty() {
        let webhook = WebhookSink::new(sender.clone(), secrets(store).await?);
        let mut attempts = JoinSet::new();
        for mut record in due {
            if record.claim(system_now(), retry).is_err() {
                continue;
            }
            alerts::save_outbox(store, &record).await?;
            let (webhook, mqtt, retry) = (webhook.clone(), mqtt.clone(), retry.clone());
            attempts.spawn(async move {
                let outcome = match record.notification.target_kind {
                    TargetKind::Webhook { .. } => webhook.deliver(&record.notification).await,
                    TargetKind::Mqtt => mqtt.deliver(&record.notification).await,
                };
                let label = outcome_label(&outcome);
                // Recording cannot fail: the record was claimed just above.
                let _ = record.record(outcome, system_now(), &retry);
                (record, label)
            });
        }
        while let Some(done) = attempts.join_next().await {
            let Ok((record, label)) = done else { continue };
            let label = if matches!(record.state, DeliveryState::Dead { .. }) {
                "dead".to_owned()
            } else {
                label
            };
            metrics.deliveries.with_label_values(&[&label]).inc();
            if let DeliveryState::Dead { reason, .. } = &record.state {
                tracing::warn!(key = record.key(), reason = %reason, "notification dead-lettered");
            }
            alerts::save_outbox(store, &record).await?;
        }
    }
    refresh_gauge(store, metrics).await
}

fn outcome_label(o: &DeliveryOutcome) -> String {
    match o {
        DeliveryOutcome::Delivered => "delivered".to_owned(),
        DeliveryOutcome::Retryable { reason, .. } | DeliveryOutcome::Permanent { reason, .. } => {
            reason.clone()
        }
    }
}

async fn refresh_gauge(store: &Store, metrics: &Metrics) -> anyhow::Result<()> {
    for state in ["pending", "in_flight", "delivered", "dead"] {
        metrics.outbox_records.with_label_values(&[state]).set(0);
    }
    for (state, n) in alerts::outbox_counts(store).await? {
        metrics.outbox_records.with_label_values(&[&state]).set(n);
    }
    Ok(())
}

/// Puts a dead notification back in line (operator action from the API).
pub async fn requeue(store: &Store, key: &str) -> anyhow::Result<bool> {
    let record: Option<String> = with_pool!(store, p => sqlx::query_scalar(
        "SELECT record FROM outbox WHERE key = $1"
    ).bind(key).fetch_optional(p).await)?;
    let Some(record) = record else {
        return Ok(false);
    };
    let mut r: OutboxRecord = serde_json::from_str(&record)?;
    if r.requeue(system_now()).is_err() {
        return Ok(false);
    }
    alerts::save_outbox(store, &r).await?;
    Ok(true)
}
