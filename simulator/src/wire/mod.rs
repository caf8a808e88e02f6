//! Publishes a [`Plan`] over MQTT exactly as devices do: one connection per
//! device with its credentials, the `geoward-proto` encodings, QoS 1, and the
//! store-and-forward contract: every message is kept until a downlink ack
//! covers its seq, and everything unacknowledged is published again after a
//! reconnect.
//!
//! Per device, a poll task drives rumqttc's event loop (reconnecting with a
//! short backoff) and forwards connection events and acks; a device task
//! publishes what the dispatcher hands it and keeps the unacked store. The
//! dispatcher paces the plan and waits when a device's queue is full
//! (backpressure, never a drop).

mod device;
mod relay;
pub mod stats;
pub mod tls;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use geoward_proto::Encoding;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::plan::Plan;
use crate::schedule::Pacing;

pub use stats::{Live, LiveSnapshot, Mark, Percentiles, Stats};
pub use tls::{ClientIdentity, TlsError, TlsSettings};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct WireConfig {
    /// Broker hosts; devices are spread over them round-robin. Several
    /// loopback addresses (127.0.0.1, 127.0.0.2, ...) lift the ephemeral-port
    /// limit per destination for runs with tens of thousands of connections
    /// (when the broker listens on all of them; otherwise see
    /// `source_addrs`).
    pub hosts: Vec<String>,
    /// Local addresses to connect from, round-robin over devices (through
    /// the relay, see `relay.rs`); empty: the system's choice, directly.
    pub source_addrs: Vec<IpAddr>,
    /// TLS towards the broker; `None`: plain TCP.
    pub tls: Option<Arc<TlsSettings>>,
    /// Broker port.
    pub port: u16,
    /// Payload encoding.
    pub encoding: Encoding,
    /// Authenticate payloads with the device secret (JSON seal, binary MAC,
    /// OwnTracks encryption) besides the MQTT password.
    pub protect_payloads: bool,
    /// MQTT password per device; devices not listed use `default_secret`.
    pub secrets: HashMap<String, String>,
    /// Password of devices without an entry in `secrets`.
    pub default_secret: String,
    /// Payload keys (seal, MAC, encryption) per device, when they differ from
    /// the MQTT password (the service issues both, see
    /// [`crate::credentials`]); devices not listed use their password's bytes.
    pub payload_keys: HashMap<String, Vec<u8>>,
    /// Plan time to wall time.
    pub pacing: Pacing,
    /// After the last send, how long to wait for outstanding acks.
    pub drain_timeout: Duration,
    /// Whether the service acks (false for OwnTracks, which has no downlink).
    pub expect_acks: bool,
    /// Wait between reconnection attempts.
    pub reconnect_backoff: Duration,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// How long a connection attempt (TCP, TLS and CONNACK) may take; a
    /// broker taking thousands of connections at once needs more than
    /// rumqttc's 5 s default.
    pub connect_timeout: Duration,
    /// Connection attempts in flight at once (at least 1).
    pub max_connecting: usize,
    /// Per-device queue between dispatcher and device task.
    pub device_queue: usize,
    /// Reconnect storms: at these plan times every connected device drops
    /// its connection at once (MQTT DISCONNECT) and reconnects.
    pub storms_at_ms: Vec<i64>,
    /// Messages whose first publication time is recorded in
    /// [`Stats::marks`]: device → device times (of a fix, event or
    /// heartbeat; for a batch, of a fix in it).
    pub marks: Arc<HashMap<String, BTreeSet<i64>>>,
    /// Counters for progress display while the run goes on.
    pub live: Arc<Live>,
}

impl Default for WireConfig {
    fn default() -> Self {
        Self {
            hosts: vec!["127.0.0.1".into()],
            port: 1883,
            encoding: Encoding::Json,
            protect_payloads: false,
            secrets: HashMap::new(),
            default_secret: String::new(),
            payload_keys: HashMap::new(),
            pacing: Pacing::REAL_TIME,
            drain_timeout: Duration::from_secs(10),
            expect_acks: true,
            reconnect_backoff: Duration::from_millis(200),
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_connecting: 256,
            device_queue: 256,
            storms_at_ms: Vec::new(),
            marks: Arc::default(),
            live: Arc::default(),
            source_addrs: Vec::new(),
            tls: None,
        }
    }
}

/// A run could not start.
#[derive(Debug, Error)]
pub enum WireError {
    /// A device id is not valid on the wire.
    #[error("device id {device:?} is not valid: {message}")]
    BadDevice {
        /// The id.
        device: String,
        /// Why.
        message: String,
    },
    /// No broker host configured.
    #[error("no broker host given")]
    NoHost,
    /// A device's TLS configuration could not be built.
    #[error("tls for device {device:?}: {source}")]
    Tls {
        /// The device.
        device: String,
        /// What failed.
        #[source]
        source: TlsError,
    },
    /// The source-address relay could not start.
    #[error("source address relay: {0}")]
    Relay(String),
}

impl WireError {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadDevice { .. } => "bad_device",
            Self::NoHost => "no_host",
            Self::Tls { .. } => "tls",
            Self::Relay(_) => "relay",
        }
    }
}

/// What the dispatcher hands a device task.
#[derive(Debug)]
enum Input {
    /// Produce and publish this.
    Send(crate::plan::Send),
    /// Drop the connection now (reconnect storm).
    Drop,
}

/// Result of publishing a plan.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// Totals over all devices.
    pub total: Stats,
    /// Devices connected.
    pub devices: usize,
    /// Wall time from first to last publication (dispatch phase).
    pub dispatch_elapsed: Duration,
    /// Wall time including the drain.
    pub elapsed: Duration,
    /// Whether the run was cut short by the shutdown signal.
    pub interrupted: bool,
}

/// Publishes `plan` and returns what was measured. Stops early, cleanly,
/// when `shutdown` completes. `progress` is called with the number of sends
/// dispatched so far (for progress bars), at most every few hundred sends.
pub async fn run(
    plan: &Plan,
    cfg: &WireConfig,
    shutdown: impl Future<Output = ()>,
    mut progress: impl FnMut(usize),
) -> Result<RunStats, WireError> {
    if cfg.hosts.is_empty() {
        return Err(WireError::NoHost);
    }
    let mut devices: HashMap<String, mpsc::Sender<Input>> = HashMap::new();
    let mut storms = cfg.storms_at_ms.clone();
    storms.sort_unstable();
    let mut storms = storms.into_iter().peekable();
    let mut tasks = Vec::new();
    let started = Instant::now();
    let start_ms = plan.start_ms().unwrap_or(0);
    let mut interrupted = false;
    let relay = if cfg.source_addrs.is_empty() {
        None
    } else {
        Some(relay::Relay::new().map_err(|e| WireError::Relay(e.to_string()))?)
    };
    let shared = device::Shared {
        started,
        connecting: Arc::new(tokio::sync::Semaphore::new(cfg.max_connecting.max(1))),
    };
    tokio::pin!(shutdown);
    for (i, send) in plan.sends.iter().enumerate() {
        if let Some(after) = cfg.pacing.due_after(start_ms, send.at_ms) {
            tokio::select! {
                () = tokio::time::sleep_until(started + after) => {}
                () = &mut shutdown => { interrupted = true; break; }
            }
        }
        while storms.next_if(|&t| t <= send.at_ms).is_some() {
            for tx in devices.values() {
                let _ = tx.send(Input::Drop).await;
            }
        }
        let tx = match devices.get(&send.device) {
            Some(tx) => tx.clone(),
            None => {
                let n = devices.len();
                let host = cfg.hosts[n % cfg.hosts.len()].clone();
                let (tx, rx) = mpsc::channel(cfg.device_queue.max(1));
                let task = device::spawn(&send.device, n, &shared, host, cfg, relay.as_ref(), rx)?;
                tasks.push(task);
                devices.insert(send.device.clone(), tx.clone());
                tx
            }
        };
        tokio::select! {
            r = tx.send(Input::Send(send.clone())) => { let _ = r; }
            () = &mut shutdown => { interrupted = true; break; }
        }
        Live::add(&cfg.live.dispatched, 1);
        if i % 256 == 255 {
            progress(i + 1);
        }
    }
    progress(plan.sends.len());
    let dispatch_elapsed = started.elapsed();
    // Closing the queues tells device tasks to drain and finish.
    let count = devices.len();
    drop(devices);
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.merge(&s);
        }
    }
    if let Some(r) = &relay {
        total.relay_errors_by_reason = r.failures();
    }
    drop(relay);
    Ok(RunStats {
        total,
        devices: count,
        dispatch_elapsed,
        elapsed: started.elapsed(),
        interrupted,
    })
}
