//! One simulated device on the wire: connection, publication, and the
//! store-and-forward buffer a real bracelet keeps.
//!
//! Like a device, it publishes only while connected; what it produces
//! offline waits in the buffer. Every message stays buffered until an ack
//! covers its seq, and the whole buffer is published again on every
//! (re)connect, oldest first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use geoward_proto::{
    DecodeOptions, DeviceId, Downlink, Encoding, Protection, TenantId, Topic, Uplink, encode_uplink,
};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::relay::{Relay, Upstream};
use super::stats::{CONNECT_ERROR_REASONS, Live, Mark, Stats, connect_error_reason};
use super::{Input, WireConfig, WireError};
use crate::plan::{Send, fix_count, message_time_ms};

/// Connection state as the poll task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conn {
    /// Incremented on every ConnAck.
    generation: u64,
    /// Whether the session is up.
    up: bool,
}

/// What the poll task reports to the device task. Never a queue that can
/// fill: the poll task must keep polling (or rumqttc stops reconnecting and
/// draining its request channel), so the connection state and the
/// cumulative ack travel in one-slot watch channels and the rest are counters.
struct Link {
    conn: watch::Receiver<Conn>,
    /// Highest ack seen (acks are cumulative, so the latest max is enough).
    acked: watch::Receiver<u64>,
    /// Broker PUBACKs received: the only acknowledgement OwnTracks has.
    pubacks: watch::Receiver<u64>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    connect_errors: AtomicU64,
    /// By index into [`CONNECT_ERROR_REASONS`].
    connect_reasons: [AtomicU64; CONNECT_ERROR_REASONS.len()],
    bad_downlinks: AtomicU64,
}

/// A buffered message.
struct Pending {
    payload: Vec<u8>,
    /// When the device produced it; latency is measured from here.
    produced: Instant,
    /// Whether it went out at least once (a later publication is a resend).
    sent: bool,
    /// Watched device times it carries (usually none).
    marks: Vec<i64>,
    /// Fixes in it.
    fixes: u64,
}

/// What all devices of a run share.
pub(super) struct Shared {
    /// When the run started (for the per-second rate).
    pub started: Instant,
    /// Connection attempts in flight at once: a broker's accept backlog
    /// (often 1024) overflows when thousands of devices connect together,
    /// and dropped SYNs turn into multi-second timeouts.
    pub connecting: Arc<tokio::sync::Semaphore>,
}

/// Starts device number `index` (which picks its source address).
pub(super) fn spawn(
    device: &str,
    index: usize,
    shared: &Shared,
    host: String,
    cfg: &WireConfig,
    relay: Option<&Relay>,
    rx: mpsc::Receiver<Input>,
) -> Result<JoinHandle<Stats>, WireError> {
    let bad = |message: String| WireError::BadDevice {
        device: device.to_string(),
        message,
    };
    let id = DeviceId::new(device).map_err(|e| bad(e.to_string()))?;
    let tls = match &cfg.tls {
        Some(t) => Some(t.client_config(device).map_err(|source| WireError::Tls {
            device: device.to_string(),
            source,
        })?),
        None => None,
    };
    // With a client certificate the broker confines the device to its
    // tenant prefix, the device id.
    let tenant = match &cfg.tls {
        Some(t) if t.has_client_identity() => Some(
            TenantId::new(device).map_err(|e| bad(format!("not usable as a TLS tenant: {e}")))?,
        ),
        _ => None,
    };
    let secret = cfg
        .secrets
        .get(device)
        .cloned()
        .unwrap_or_else(|| cfg.default_secret.clone());
    let key = cfg
        .payload_keys
        .get(device)
        .cloned()
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut relay_task = None;
    let mut opts = match (relay, cfg.source_addrs.is_empty()) {
        (Some(relay), false) => {
            let up = Upstream {
                source: cfg.source_addrs[index % cfg.source_addrs.len()],
                host,
                port: cfg.port,
                tls,
            };
            let (path, task) = relay
                .listen(index, up)
                .map_err(|e| WireError::Relay(e.to_string()))?;
            relay_task = Some(task);
            let mut o = MqttOptions::new(device, path.display().to_string(), 0);
            o.set_transport(Transport::Unix);
            o
        }
        _ => {
            let mut o = MqttOptions::new(device, host, cfg.port);
            if let Some(tls) = tls {
                o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
            }
            o
        }
    };
    opts.set_credentials(device, secret.clone());
    opts.set_keep_alive(cfg.keep_alive);
    opts.set_clean_session(true);
    opts.set_max_packet_size(512 * 1024, 512 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let mut net = eventloop.network_options();
    // Small QoS 1 publications: no Nagle delay in the latency measured.
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(cfg.connect_timeout.as_secs().max(1));
    eventloop.set_network_options(net);
    let (conn_tx, conn) = watch::channel(Conn {
        generation: 0,
        up: false,
    });
    let (ack_tx, acked) = watch::channel(0u64);
    let (puback_tx, pubacks) = watch::channel(0u64);
    let counters = Arc::new(Counters::default());
    let link = Link {
        conn,
        acked,
        pubacks,
        counters: counters.clone(),
    };
    let poller = tokio::spawn(poll(
        eventloop,
        Senders {
            conn: conn_tx,
            acked: ack_tx,
            pubacks: puback_tx,
        },
        counters,
        cfg.live.clone(),
        shared.connecting.clone(),
        cfg.reconnect_backoff,
    ));
    let task = Device {
        id,
        key,
        encoding: cfg.encoding,
        protect: cfg.protect_payloads,
        expect_acks: cfg.expect_acks && cfg.encoding != Encoding::OwnTracks,
        drain_timeout: cfg.drain_timeout,
        client,
        buffer: BTreeMap::new(),
        next_key: 0,
        stats: Stats::default(),
        generation: 0,
        mqtt_sent: 0,
        nonce: 0,
        tenant,
        started: shared.started,
        watch: cfg.marks.get(device).cloned().unwrap_or_default(),
        live: cfg.live.clone(),
    };
    Ok(tokio::spawn(async move {
        let stats = task.run(rx, link).await;
        poller.abort();
        if let Some(t) = relay_task {
            t.abort();
        }
        stats
    }))
}

/// The poll task's ends of the watch channels.
struct Senders {
    conn: watch::Sender<Conn>,
    acked: watch::Sender<u64>,
    pubacks: watch::Sender<u64>,
}

/// Drives the event loop; rumqttc reconnects when polled after an error.
async fn poll(
    mut eventloop: EventLoop,
    tx: Senders,
    counters: Arc<Counters>,
    live: Arc<Live>,
    connecting: Arc<tokio::sync::Semaphore>,
    backoff: Duration,
) {
    let Senders {
        conn,
        acked,
        pubacks,
    } = tx;
    let opts = DecodeOptions::default();
    loop {
        // While down, the next poll connects: take a slot for it.
        let slot = if conn.borrow().up {
            None
        } else {
            connecting.acquire().await.ok()
        };
        let event = eventloop.poll().await;
        drop(slot);
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => pubacks.send_modify(|n| *n += 1),
            Ok(Event::Incoming(Packet::ConnAck(_))) => conn.send_modify(|c| {
                c.generation += 1;
                c.up = true;
            }),
            Ok(Event::Incoming(Packet::Publish(p))) => {
                match geoward_proto::decode_downlink(&p.payload, &opts) {
                    Ok(Downlink::Ack(a)) => {
                        acked.send_if_modified(|max| {
                            let newer = a.seq > *max;
                            *max = (*max).max(a.seq);
                            newer
                        });
                    }
                    Ok(_) => {}
                    Err(_) => {
                        counters.bad_downlinks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let was_up = conn.borrow().up;
                if was_up {
                    conn.send_modify(|c| c.up = false);
                } else {
                    counters.connect_errors.fetch_add(1, Ordering::Relaxed);
                    let reason = connect_error_reason(&e);
                    if let Some(i) = CONNECT_ERROR_REASONS.iter().position(|r| *r == reason) {
                        counters.connect_reasons[i].fetch_add(1, Ordering::Relaxed);
                    }
                    Live::add(&live.connect_errors, 1);
                }
                if conn.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

struct Device {
    id: DeviceId,
    /// Payload key (seal, MAC, encryption).
    key: Vec<u8>,
    encoding: Encoding,
    protect: bool,
    expect_acks: bool,
    drain_timeout: Duration,
    client: AsyncClient,
    /// Buffered messages by (highest seq, arrival) so acks release a prefix
    /// and duplicates of one seq are kept apart.
    buffer: BTreeMap<(u64, u64), Pending>,
    next_key: u64,
    stats: Stats,
    /// Connection generation last handled (0 = never connected).
    generation: u64,
    /// QoS 1 publications handed to the client (each earns a PUBACK).
    mqtt_sent: u64,
    nonce: u64,
    /// Tenant prefix of the topics (TLS with a client certificate).
    tenant: Option<TenantId>,
    /// When the run started (for the per-second rate).
    started: Instant,
    /// Device times whose first publication is recorded.
    watch: BTreeSet<i64>,
    live: Arc<Live>,
}

impl Device {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>, mut link: Link) -> Stats {
        let with_tenant = |t: Topic| match &self.tenant {
            Some(tenant) => t.with_tenant(tenant.clone()),
            None => t,
        };
        let topic = with_tenant(Topic::uplink(self.id.clone(), self.encoding)).to_string();
        let down = with_tenant(Topic::downlink(self.id.clone())).to_string();
        let mut inputs_open = true;
        let mut drain_deadline: Option<Instant> = None;
        loop {
            // Without service acks, done means the broker has everything.
            let flushed = self.expect_acks || *link.pubacks.borrow() >= self.mqtt_sent;
            if !inputs_open && self.buffer.is_empty() && flushed {
                break;
            }
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                msg = rx.recv(), if inputs_open => match msg {
                    Some(Input::Send(send)) => {
                        let up = link.conn.borrow().up;
                        self.produce(&topic, &send, up).await;
                    }
                    Some(Input::Drop) => {
                        if self.client.disconnect().await.is_err() {
                            self.error();
                        }
                    }
                    None => {
                        inputs_open = false;
                        drain_deadline = Some(Instant::now() + self.drain_timeout);
                    }
                },
                r = link.conn.changed() => {
                    if r.is_err() {
                        break;
                    }
                    let c = *link.conn.borrow_and_update();
                    if c.up && c.generation != self.generation {
                        if self.generation != 0 {
                            self.stats.reconnects += 1;
                            Live::add(&self.live.reconnects, 1);
                        }
                        self.generation = c.generation;
                        // A clean session forgets subscriptions; subscribing
                        // before the flush means no ack can be missed.
                        if self.expect_acks {
                            let _ = self.client.subscribe(down.clone(), QoS::AtLeastOnce).await;
                        }
                        self.flush(&topic).await;
                    }
                }
                r = link.pubacks.changed() => {
                    if r.is_err() {
                        break;
                    }
                    link.pubacks.borrow_and_update();
                }
                r = link.acked.changed() => {
                    if r.is_err() {
                        break;
                    }
                    let seq = *link.acked.borrow_and_update();
                    self.release(seq);
                }
                () = tokio::time::sleep_until(drain_deadline.unwrap_or(far)), if drain_deadline.is_some() => break,
            }
        }
        self.stats.connect_errors = link.counters.connect_errors.load(Ordering::Relaxed);
        for (reason, n) in CONNECT_ERROR_REASONS
            .iter()
            .zip(&link.counters.connect_reasons)
        {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                self.stats.connect_errors_by_reason.insert(reason, n);
            }
        }
        self.stats.bad_downlinks = link.counters.bad_downlinks.load(Ordering::Relaxed);
        // Without service acks, what the broker has not confirmed counts too.
        let unconfirmed = if self.expect_acks {
            0
        } else {
            self.mqtt_sent.saturating_sub(*link.pubacks.borrow())
        };
        self.stats.unacked_at_end = self.buffer.len() as u64 + unconfirmed;
        let _ = self.client.try_disconnect();
        self.stats
    }

    fn error(&mut self) {
        self.stats.errors += 1;
        Live::add(&self.live.errors, 1);
    }

    /// Watched device times `message` carries.
    fn watched(&self, message: &Uplink) -> Vec<i64> {
        if self.watch.is_empty() {
            return Vec::new();
        }
        match message {
            Uplink::Batch(b) => b
                .fixes
                .iter()
                .map(|f| f.time.0)
                .filter(|t| self.watch.contains(t))
                .collect(),
            m => Some(message_time_ms(m))
                .filter(|t| self.watch.contains(t))
                .into_iter()
                .collect(),
        }
    }

    fn encode(&mut self, message: &Uplink) -> Option<Vec<u8>> {
        let secret = self.key.as_slice();
        let protection = match (self.protect, self.encoding) {
            (false, _) => Protection::None,
            (true, Encoding::OwnTracks) => {
                self.nonce += 1;
                let mut nonce = [0u8; geoward_proto::owntracks::NONCE_LEN];
                nonce[..8].copy_from_slice(&self.nonce.to_be_bytes());
                Protection::Encrypt { secret, nonce }
            }
            (true, _) => Protection::Mac { secret },
        };
        encode_uplink(&self.id, message, self.encoding, protection).ok()
    }

    /// A new message from the plan: buffer it and publish if connected.
    async fn produce(&mut self, topic: &str, send: &Send, up: bool) {
        if self.encoding == Encoding::OwnTracks && !matches!(send.message, Uplink::Fix(_)) {
            self.stats.skipped += 1;
            return;
        }
        let Some(payload) = self.encode(&send.message) else {
            self.error();
            return;
        };
        let fixes = fix_count(&send.message) as u64;
        self.stats.published += 1;
        self.stats.fixes += fixes;
        Live::add(&self.live.published, 1);
        let marks = self.watched(&send.message);
        let key = (send.max_seq(), self.next_key);
        self.next_key += 1;
        self.buffer.insert(
            key,
            Pending {
                payload,
                produced: Instant::now(),
                sent: false,
                marks,
                fixes,
            },
        );
        if up {
            self.publish(topic, key).await;
        }
    }

    async fn publish(&mut self, topic: &str, key: (u64, u64)) {
        let Some(p) = self.buffer.get_mut(&key) else {
            return;
        };
        let payload = p.payload.clone();
        if std::mem::replace(&mut p.sent, true) {
            self.stats.resent += 1;
        } else {
            let now = Instant::now();
            self.stats
                .count_published(now.duration_since(self.started), p.fixes);
            Live::add(&self.live.fixes, p.fixes);
            let device = self.id.as_str();
            self.stats.marks.extend(p.marks.iter().map(|&time_ms| Mark {
                device: device.to_string(),
                time_ms,
                published: now,
            }));
        }
        if !self.expect_acks {
            // No acks will come (OwnTracks): sent is done.
            self.buffer.remove(&key);
        }
        match self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            Ok(()) => self.mqtt_sent += 1,
            Err(_) => self.error(),
        }
    }

    /// Publishes the whole buffer, oldest first.
    async fn flush(&mut self, topic: &str) {
        let keys: Vec<(u64, u64)> = self.buffer.keys().copied().collect();
        for k in keys {
            self.publish(topic, k).await;
        }
    }

    /// Drops everything up to `seq` from the buffer, recording latencies.
    fn release(&mut self, seq: u64) {
        let keep = self.buffer.split_off(&(seq.saturating_add(1), 0));
        let now = Instant::now();
        for (_, p) in std::mem::replace(&mut self.buffer, keep) {
            let us = now.duration_since(p.produced).as_micros().max(1) as u64;
            let _ = self.stats.ack_latency_us.record(us.min(3_600_000_000));
            self.stats.acked += 1;
            Live::add(&self.live.acked, 1);
        }
    }
}
