//! What a run measured: counters and latency histograms, mergeable across
//! device tasks so no lock sits on the publish path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

/// Microsecond histogram up to one hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Invariant: fixed, valid bounds.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Counters and latencies of one device or a whole run.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Messages the devices produced (each published once connected).
    pub published: u64,
    /// Fixes carried by them.
    pub fixes: u64,
    /// Publications repeated because no ack came before a reconnect.
    pub resent: u64,
    /// Messages released by an ack.
    pub acked: u64,
    /// Messages never acknowledged when the run ended.
    pub unacked_at_end: u64,
    /// Messages the encoding cannot carry (OwnTracks heartbeats/events).
    pub skipped: u64,
    /// Publish or encode failures.
    pub errors: u64,
    /// Connections re-established after a loss.
    pub reconnects: u64,
    /// Failed connection attempts (refused, bad credentials, timeouts).
    pub connect_errors: u64,
    /// The same by reason ([`CONNECT_ERROR_REASONS`]); only reasons seen.
    pub connect_errors_by_reason: BTreeMap<&'static str, u64>,
    /// Source-address relay: why it could not reach the broker for a
    /// device (the device itself then sees `closed`); only reasons seen.
    pub relay_errors_by_reason: BTreeMap<&'static str, u64>,
    /// Downlinks that did not decode.
    pub bad_downlinks: u64,
    /// Produce → ack latency, microseconds: from the moment the device had
    /// the message (published at once when connected) to the ack covering it.
    pub ack_latency_us: Histogram<u64>,
    /// First publication of the watched messages (see
    /// [`super::WireConfig::marks`]), for publish → incident latency.
    pub marks: Vec<Mark>,
    /// Fixes first published in each second of the run (index 0: the first
    /// second after the run started): the achieved rate over time, ramps
    /// included.
    pub fixes_per_s: Vec<u64>,
    /// When the last first publication happened, since the run started.
    pub last_publish: std::time::Duration,
}

/// When a watched message (one that by the scenario triggers an incident)
/// was first published.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Device that published it.
    pub device: String,
    /// Device time of the watched message (a batch: of the watched fix).
    pub time_ms: i64,
    /// Wall time of its first publication.
    pub published: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            published: 0,
            fixes: 0,
            resent: 0,
            acked: 0,
            unacked_at_end: 0,
            skipped: 0,
            errors: 0,
            reconnects: 0,
            connect_errors: 0,
            connect_errors_by_reason: BTreeMap::new(),
            relay_errors_by_reason: BTreeMap::new(),
            bad_downlinks: 0,
            ack_latency_us: new_histogram(),
            marks: Vec::new(),
            fixes_per_s: Vec::new(),
            last_publish: std::time::Duration::ZERO,
        }
    }
}

impl Stats {
    /// Adds another device's stats.
    pub fn merge(&mut self, o: &Stats) {
        self.published += o.published;
        self.fixes += o.fixes;
        self.resent += o.resent;
        self.acked += o.acked;
        self.unacked_at_end += o.unacked_at_end;
        self.skipped += o.skipped;
        self.errors += o.errors;
        self.reconnects += o.reconnects;
        self.connect_errors += o.connect_errors;
        for (k, v) in &o.connect_errors_by_reason {
            *self.connect_errors_by_reason.entry(k).or_default() += v;
        }
        for (k, v) in &o.relay_errors_by_reason {
            *self.relay_errors_by_reason.entry(k).or_default() += v;
        }
        self.bad_downlinks += o.bad_downlinks;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.ack_latency_us.add(&o.ack_latency_us);
        self.marks.extend(o.marks.iter().cloned());
        if self.fixes_per_s.len() < o.fixes_per_s.len() {
            self.fixes_per_s.resize(o.fixes_per_s.len(), 0);
        }
        for (a, b) in self.fixes_per_s.iter_mut().zip(&o.fixes_per_s) {
            *a += b;
        }
        self.last_publish = self.last_publish.max(o.last_publish);
    }

    /// Counts `fixes` published `since_start` into the run.
    pub(crate) fn count_published(&mut self, since_start: std::time::Duration, fixes: u64) {
        let s = since_start.as_secs() as usize;
        if self.fixes_per_s.len() <= s {
            self.fixes_per_s.resize(s + 1, 0);
        }
        self.fixes_per_s[s] += fixes;
        self.last_publish = self.last_publish.max(since_start);
    }
}

/// Percentiles of a latency histogram, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Summarises a microsecond histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// Counters the device tasks bump as they go, for progress bars: relaxed
/// atomics, read while the run is under way (the final numbers come from
/// [`Stats`]).
#[derive(Debug, Default)]
pub struct Live {
    /// Sends handed to device tasks.
    pub dispatched: AtomicU64,
    /// Messages produced (published once connected).
    pub published: AtomicU64,
    /// Fixes actually published (first publications).
    pub fixes: AtomicU64,
    /// Messages released by acks.
    pub acked: AtomicU64,
    /// Publish and encode errors.
    pub errors: AtomicU64,
    /// Reconnections.
    pub reconnects: AtomicU64,
    /// Failed connection attempts.
    pub connect_errors: AtomicU64,
}

/// A reading of [`Live`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiveSnapshot {
    /// Sends handed to device tasks.
    pub dispatched: u64,
    /// Messages produced.
    pub published: u64,
    /// Fixes actually published (first publications).
    pub fixes: u64,
    /// Messages released by acks.
    pub acked: u64,
    /// Publish and encode errors.
    pub errors: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
}

impl Live {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Current values.
    pub fn snapshot(&self) -> LiveSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LiveSnapshot {
            dispatched: r(&self.dispatched),
            published: r(&self.published),
            fixes: r(&self.fixes),
            acked: r(&self.acked),
            errors: r(&self.errors),
            reconnects: r(&self.reconnects),
            connect_errors: r(&self.connect_errors),
        }
    }
}

/// Why connection attempts fail, as stable low-cardinality codes:
/// `not_authorized` (a CONNACK refusing the user name or password;
/// rumqttd, Geoward's broker, just closes the connection instead: `closed`),
/// `refused` (another CONNACK refusal), `timeout` (no CONNACK in time),
/// `tls` (handshake or certificate), `connection_refused` (nothing listens),
/// `closed` (the peer hung up, e.g. a broker refusing a TLS client without
/// certificate), `no_local_port` (ephemeral ports exhausted: add source
/// addresses), `too_many_open_files` (raise `ulimit -n`),
/// `bad_source_address` (the relay cannot bind a `--source-addrs` address:
/// not local), `io` (other
/// socket errors), `protocol` (unexpected packet), `other`.
pub const CONNECT_ERROR_REASONS: [&str; 12] = [
    "not_authorized",
    "refused",
    "timeout",
    "tls",
    "connection_refused",
    "closed",
    "no_local_port",
    "too_many_open_files",
    "bad_source_address",
    "io",
    "protocol",
    "other",
];

/// The reason code of a failed connection attempt.
pub fn connect_error_reason(e: &rumqttc::ConnectionError) -> &'static str {
    use rumqttc::{ConnectReturnCode, ConnectionError as E, StateError};
    match e {
        E::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => "not_authorized",
        E::ConnectionRefused(_) => "refused",
        E::NetworkTimeout | E::FlushTimeout => "timeout",
        E::Tls(_) => "tls",
        E::Io(io)
        | E::MqttState(StateError::Io(io))
        | E::MqttState(StateError::Deserialization(rumqttc::mqttbytes::Error::Io(io))) => {
            io_reason(io)
        }
        E::MqttState(StateError::ConnectionAborted) => "closed",
        E::MqttState(_) | E::NotConnAck(_) => "protocol",
        _ => "other",
    }
}

/// The reason code of a failed socket operation (see
/// [`CONNECT_ERROR_REASONS`]).
pub fn io_reason(io: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    // A TLS alert (e.g. the broker wants a client certificate) surfaces as
    // an I/O error wrapping the rustls error.
    let tls = io
        .get_ref()
        .is_some_and(|e| e.is::<tokio_rustls::rustls::Error>());
    if tls {
        return "tls";
    }
    match io.kind() {
        ErrorKind::ConnectionRefused => "connection_refused",
        ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe => "closed",
        ErrorKind::AddrNotAvailable | ErrorKind::AddrInUse => "no_local_port",
        _ if io.raw_os_error() == Some(24) => "too_many_open_files",
        _ => "io",
    }
}
