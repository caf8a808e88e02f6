//! Prometheus metrics of the service, all named `geoward_*`.
//!
//! Labels come from small fixed sets (reject reasons, message kinds, listeners);
//! never a device or subject id. Hot loops count per batch, not per message.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Every metric the service exports, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Uplink messages read from the broker.
    pub messages_received: IntCounter,
    /// Messages accepted after decoding and verification, by kind.
    pub messages_accepted: IntCounterVec,
    /// Messages rejected, by reason code.
    pub messages_rejected: IntCounterVec,
    /// Items (fixes, heartbeats, events) dropped as already stored.
    pub duplicates: IntCounter,
    /// Fixes whose fix time is older than the newest fix already seen for the device.
    pub late_fixes: IntCounter,
    /// Rows per committed batch.
    pub batch_rows: Histogram,
    /// Commit latency, seconds, by backend.
    pub commit_seconds: HistogramVec,
    /// Commits that failed (they are retried, nothing is acked meanwhile).
    pub commit_failures: IntCounter,
    /// Messages waiting in a pipeline queue, by queue.
    pub queue_depth: IntGaugeVec,
    /// Receive-to-commit lag of the last batch, milliseconds.
    pub commit_lag_ms: IntGauge,
    /// Acks published on downlink topics.
    pub acks_sent: IntCounter,
    /// Devices currently connected to the broker.
    pub connected_devices: IntGauge,
    /// Failed device authentications, by reason.
    pub auth_failures: IntCounterVec,
    /// Attempts to act as another device, by kind.
    pub security_events: IntCounterVec,
    /// Broker log entries the pipeline never saw (the broker skipped a slow reader).
    pub skipped_broker_messages: IntCounter,
    /// Incident changes, by timeline event (`opened`, `escalated`, `cleared`, ...).
    pub incident_changes: IntCounterVec,
    /// Incidents opened, by kind.
    pub incidents_opened: IntCounterVec,
    /// Stored items the engines did not judge, by reason (`no_active_order`, ...).
    pub unjudged_items: IntCounterVec,
    /// Possible crossings of exclusion zones between sparse fixes (not incidents).
    pub possible_crossings: IntCounter,
    /// Subjects or zones the engines could not take, by reason.
    pub registry_errors: IntCounterVec,
    /// Notification delivery attempts, by outcome (`delivered`, a retry reason, `dead`).
    pub deliveries: IntCounterVec,
    /// Outbox records by state (`pending`, `in_flight`, `delivered`, `dead`).
    pub outbox_records: IntGaugeVec,
    /// Officers connected to live feeds.
    pub feed_clients: IntGauge,
    /// Receipt of the fix (or event) that caused a live-feed event to the event's
    /// publication, seconds.
    pub fix_to_feed_seconds: Histogram,
    /// The same path up to its stages (`fix_committed`: the batch holding the
    /// fix is stored and acked; `judged`: the monitor has the effects, which it then
    /// stores and publishes), seconds since receipt.
    pub fix_to_feed_stage_seconds: HistogramVec,
    /// The allocator's own figures, bytes, by kind (`allocated`, `resident`, ...;
    /// see [`crate::allocator::stats`]), refreshed at each render.
    pub allocator_bytes: IntGaugeVec,
}

/// Buckets of the fix-to-feed histograms: fine around the 50 ms goal.
const FEED_LATENCY_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Panics
    /// Only if two metrics share a name, a programming error caught by any test.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let batch_rows = Histogram::with_opts(
            HistogramOpts::new("geoward_batch_rows", "rows per committed batch").buckets(vec![
                1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
            ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(batch_rows.clone()))
            .expect("unique metric");
        let commit_seconds = HistogramVec::new(
            HistogramOpts::new("geoward_commit_duration_seconds", "batch commit latency").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            &["backend"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(commit_seconds.clone()))
            .expect("unique metric");
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "geoward_queue_depth",
                "messages waiting in a pipeline queue",
            ),
            &["queue"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(queue_depth.clone()))
            .expect("unique metric");
        let outbox_records = IntGaugeVec::new(
            Opts::new(
                "geoward_outbox_records",
                "notification outbox records by state",
            ),
            &["state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(outbox_records.clone()))
            .expect("unique metric");
        let allocator_bytes = IntGaugeVec::new(
            Opts::new(
                "geoward_allocator_bytes",
                "memory the allocator reports, by kind (allocated, active, resident, mapped, retained, metadata)",
            ),
            &["kind"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(allocator_bytes.clone()))
            .expect("unique metric");
        let fix_to_feed_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "geoward_fix_to_feed_seconds",
                "receive time of a fix to the live-feed event it caused",
            )
            .buckets(FEED_LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(fix_to_feed_seconds.clone()))
            .expect("unique metric");
        let fix_to_feed_stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "geoward_fix_to_feed_stage_seconds",
                "receive time of a fix that caused a live-feed event to each stage of its path",
            )
            .buckets(FEED_LATENCY_BUCKETS.to_vec()),
            &["stage"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(fix_to_feed_stage_seconds.clone()))
            .expect("unique metric");
        Metrics {
            incident_changes: counter_vec(
                "geoward_incident_changes_total",
                "incident timeline entries, by event",
                &["event"],
            ),
            incidents_opened: counter_vec(
                "geoward_incidents_opened_total",
                "incidents opened, by kind",
                &["kind"],
            ),
            unjudged_items: counter_vec(
                "geoward_unjudged_items_total",
                "stored fixes and events no engine judged, by reason",
                &["reason"],
            ),
            possible_crossings: counter(
                "geoward_possible_crossings_total",
                "straight segments between sparse fixes that cross an exclusion zone",
            ),
            registry_errors: counter_vec(
                "geoward_registry_errors_total",
                "subjects or zones the engines could not take, by reason",
                &["reason"],
            ),
            deliveries: counter_vec(
                "geoward_deliveries_total",
                "notification delivery attempts, by outcome",
                &["outcome"],
            ),
            outbox_records,
            feed_clients: gauge("geoward_feed_clients", "officers connected to live feeds"),
            fix_to_feed_seconds,
            fix_to_feed_stage_seconds,
            allocator_bytes,
            messages_received: counter(
                "geoward_messages_received_total",
                "uplink messages read from the broker",
            ),
            messages_accepted: counter_vec(
                "geoward_messages_accepted_total",
                "uplink messages accepted",
                &["kind"],
            ),
            messages_rejected: counter_vec(
                "geoward_messages_rejected_total",
                "uplink messages rejected, by reason",
                &["reason"],
            ),
            duplicates: counter(
                "geoward_duplicates_total",
                "items dropped as already stored",
            ),
            late_fixes: counter(
                "geoward_late_fixes_total",
                "fixes older than the newest fix already seen for their device",
            ),
            batch_rows,
            commit_seconds,
            commit_failures: counter(
                "geoward_commit_failures_total",
                "failed batch commits (retried)",
            ),
            queue_depth,
            commit_lag_ms: gauge(
                "geoward_commit_lag_milliseconds",
                "receive-to-commit lag of the last batch",
            ),
            acks_sent: counter("geoward_acks_sent_total", "acks published to devices"),
            connected_devices: gauge(
                "geoward_connected_devices",
                "devices connected to the broker",
            ),
            auth_failures: counter_vec(
                "geoward_auth_failures_total",
                "failed device authentications",
                &["reason"],
            ),
            security_events: counter_vec(
                "geoward_security_events_total",
                "attempts to publish as another device or with a forged tag",
                &["kind"],
            ),
            skipped_broker_messages: counter(
                "geoward_skipped_broker_messages_total",
                "broker log entries skipped before the pipeline read them (recovered by resend)",
            ),
            registry,
        }
    }

    /// The text exposition format of every metric.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        for figure in crate::allocator::stats() {
            self.allocator_bytes
                .with_label_values(&[figure.kind])
                .set(i64::try_from(figure.bytes).unwrap_or(i64::MAX));
        }
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
