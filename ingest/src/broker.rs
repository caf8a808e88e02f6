//! The embedded rumqttd broker: listeners from the configuration, device
//! authentication through the external auth hook, and the pipeline's local link.
//!
//! rumqttd runs its router and each listener on threads of its own with their own
//! runtimes, and has no shutdown: the threads end with the process. Graceful shutdown
//! therefore happens in the pipeline (stop reading, flush, final acks); devices whose
//! connections outlive that simply get no further acks and resend after restart.
//!
//! Topic isolation: on the TLS listener the device id is the client certificate's
//! Organization and `validate-tenant-prefix` confines the connection to
//! `/tenants/<device id>/...`. On plain TCP the vendored rumqttd's topic ACL hook
//! asks [`crate::topic_acl`]: a device publishes only its own uplinks and reads only
//! its own downlink, an office's consumer reads only that office's alerts. Every
//! payload still carries the device's authentication tag (see `pipeline::decode`),
//! which another device cannot forge.
//!
//! Broker log: rumqttd keeps every message in an in-memory log per subscribed filter
//! until its segment is dropped for space. The uplink filters' only reader is the
//! pipeline and a device downlink's only reader is that device, and nothing in either
//! is needed once read (the ack protocol recovers anything lost), so those logs drop
//! what their reader has read (vendored rumqttd, `SegmentConfig::drop_read`) and hold
//! only a backlog. The configured segments bound the pipeline's backlog; a device's
//! downlink backlog is a few KiB of acks; other filters (office alerts, which any
//! number of consumers may read) keep [`OTHER_SEGMENT_BYTES`] × [`OTHER_SEGMENT_COUNT`].
//!
//! Connected devices: rumqttd tells nobody about connects and disconnects, but its
//! router keeps a live connection count and reports it through its meters. The
//! router only reports when something was published since its last report, so a
//! local link publishes a one-byte tick on a `$` topic (no client can subscribe to
//! `$` filters and wildcards never match them, so the tick is never stored or
//! delivered). Every MQTT connection passed the device auth hook, so the count minus
//! our own local links is the number of connected devices.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use geoward_proto::topic::{DOWNLINK_FILTERS, UPLINK_FILTERS};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{
    AclAction, Broker, Config as RumqttdConfig, ConnectionSettings, Meter, MetricSettings,
    MetricType, RouterConfig, SegmentConfig, ServerSettings, TlsConfig, TopicAcl,
};

use crate::auth::DeviceAuth;
use crate::config::MqttConfig;

/// The local links the service opens (pipeline, alerts, meter tick): the router
/// counts them among its connections.
const LOCAL_LINKS: usize = 3;
/// How often the router reports its meters, in seconds (its smallest unit).
const METER_INTERVAL_SECONDS: u64 = 1;
/// Topic of the tick that makes the router report; `$` keeps it from every client.
const METER_TICK_TOPIC: &str = "$geoward/meter-tick";

/// A device's downlink log: acks (each well under 256 bytes) waiting for the device
/// to read them; the oldest go first if it stops reading, and since acks are
/// cumulative the next one covers them.
const DOWNLINK_SEGMENT_BYTES: usize = 1024;
const DOWNLINK_SEGMENT_COUNT: usize = 4;
/// The log of every other filter (office alerts): 16 MiB.
const OTHER_SEGMENT_BYTES: usize = 1 << 20;
const OTHER_SEGMENT_COUNT: usize = 16;

/// The running broker's handles the service keeps.
pub struct BrokerHandles {
    /// Sends acks (and subscribed before being handed out).
    pub link_tx: LinkTx,
    /// Receives uplinks.
    pub link_rx: LinkRx,
    /// Publishes on office alert topics (the outbox's MQTT sink).
    pub alerts_tx: LinkTx,
}

impl std::fmt::Debug for BrokerHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerHandles").finish_non_exhaustive()
    }
}

/// The rumqttd configuration for our settings.
pub fn rumqttd_config(
    cfg: &MqttConfig,
    auth: DeviceAuth,
    runtime: tokio::runtime::Handle,
) -> RumqttdConfig {
    let connections = |auth: DeviceAuth, runtime: tokio::runtime::Handle| {
        let mut c = ConnectionSettings {
            connection_timeout_ms: cfg.connection_timeout_ms,
            max_payload_size: cfg.max_payload_bytes,
            max_inflight_count: cfg.max_inflight_count,
            auth: None,
            external_auth: None,
            dynamic_filters: false,
            topic_acl: None,
        };
        c.set_auth_handler(move |client_id: String, user: String, pass: String| {
            let auth = auth.clone();
            // The hook runs on a listener thread's runtime; the database pool lives
            // on the service runtime, so the check runs there.
            let job = runtime.spawn(async move { auth.check(&client_id, &user, &pass).await });
            async move { job.await.unwrap_or(false) }
        });
        c
    };
    let mut v4 = HashMap::new();
    v4.insert(
        "tcp".to_owned(),
        ServerSettings {
            name: "tcp".to_owned(),
            listen: cfg.tcp_listen,
            tls: None,
            next_connection_delay_ms: cfg.next_connection_delay_ms,
            connections: ConnectionSettings {
                topic_acl: Some(topic_acl(auth.metrics().clone())),
                ..connections(auth.clone(), runtime.clone())
            },
        },
    );
    if let Some(tls) = &cfg.tls {
        v4.insert(
            "tls".to_owned(),
            ServerSettings {
                name: "tls".to_owned(),
                listen: tls.listen,
                tls: Some(TlsConfig::Rustls {
                    capath: Some(tls.client_ca_path.display().to_string()),
                    certpath: tls.cert_path.display().to_string(),
                    keypath: tls.key_path.display().to_string(),
                }),
                next_connection_delay_ms: cfg.next_connection_delay_ms,
                connections: connections(auth, runtime),
            },
        );
    }
    RumqttdConfig {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections,
            max_outgoing_packet_count: 200,
            max_segment_size: OTHER_SEGMENT_BYTES,
            max_segment_count: OTHER_SEGMENT_COUNT,
            custom_segment: Some(segment_configs(cfg)),
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        metrics: Some(meter_settings()),
        ..Default::default()
    }
}

/// The logs of the filters read by one reader each: the pipeline's uplinks, with the
/// configured backlog, and each device's downlink (see the module doc).
fn segment_configs(cfg: &MqttConfig) -> HashMap<String, SegmentConfig> {
    let uplink = SegmentConfig {
        max_segment_size: cfg.segment_size_bytes,
        max_segment_count: cfg.segment_count,
        drop_read: true,
    };
    let downlink = SegmentConfig {
        max_segment_size: DOWNLINK_SEGMENT_BYTES,
        max_segment_count: DOWNLINK_SEGMENT_COUNT,
        drop_read: true,
    };
    let uplinks = UPLINK_FILTERS.map(|f| (f.to_owned(), uplink.clone()));
    let downlinks = DOWNLINK_FILTERS.map(|f| (f.to_owned(), downlink.clone()));
    uplinks.into_iter().chain(downlinks).collect()
}

/// The plain TCP listener's topic authorisation; refusals are security events
/// (`publish_denied` disconnects the client, `subscribe_denied` fails the filter).
fn topic_acl(metrics: crate::metrics::Metrics) -> TopicAcl {
    TopicAcl(std::sync::Arc::new(
        move |client_id: &str, action: AclAction, topic: &str| {
            let ok = crate::topic_acl::allows(client_id, action, topic);
            if !ok {
                let kind = match action {
                    AclAction::Publish => "publish_denied",
                    AclAction::Subscribe => "subscribe_denied",
                };
                metrics.security_events.with_label_values(&[kind]).inc();
                tracing::warn!(client_id, topic, kind, "topic not allowed");
            }
            ok
        },
    ))
}

/// Router meters every [`METER_INTERVAL_SECONDS`]. rumqttd's settings type has
/// private fields and is only built by deserialising. Alerts must be configured
/// too: rumqttd 0.20's timer unwraps both intervals whenever metrics are on (it
/// panics otherwise); with no alert link registered their push only empties the
/// router's alert log.
fn meter_settings() -> HashMap<MetricType, MetricSettings> {
    let settings = || -> MetricSettings {
        serde_json::from_value(serde_json::json!({
            "push_interval": METER_INTERVAL_SECONDS
        }))
        .expect("rumqttd metric settings are a struct with one u64 field")
    };
    HashMap::from([
        (MetricType::Meters, settings()),
        (MetricType::Alerts, settings()),
    ])
}

/// Keeps `geoward_connected_devices` at the router's connection count minus our own
/// local links, and publishes the tick that makes the router report.
fn track_connected_devices(
    broker: &Broker,
    gauge: prometheus::IntGauge,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let meters = broker
        .meters()
        .map_err(|e| anyhow::anyhow!("opening the broker's meter link: {e}"))?;
    let (mut tick_tx, tick_rx) = broker
        .link("geoward-meter")
        .context("opening the broker's meter tick link")?;
    runtime.spawn(async move {
        while let Ok(reports) = meters.next().await {
            for m in reports {
                if let Meter::Router(_, r) = m {
                    let devices = r.total_connections.saturating_sub(LOCAL_LINKS);
                    gauge.set(i64::try_from(devices).unwrap_or(i64::MAX));
                }
            }
        }
    });
    runtime.spawn(drain(tick_rx));
    runtime.spawn(async move {
        // Twice per report interval, so every interval sees at least one publish.
        let mut every = tokio::time::interval(Duration::from_millis(METER_INTERVAL_SECONDS * 500));
        loop {
            every.tick().await;
            if tick_tx.publish(METER_TICK_TOPIC, vec![0u8]).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Reads a local link that carries nothing we need, so the router never waits on it.
async fn drain(mut rx: LinkRx) {
    loop {
        match rx.next().await {
            Ok(Some(rumqttd::Notification::Unschedule)) => {
                if rx.wake().await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Starts the broker threads and opens the pipeline's local link, subscribed to the
/// uplink filters.
pub fn start(
    cfg: &MqttConfig,
    auth: DeviceAuth,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<BrokerHandles> {
    if let Some(tls) = &cfg.tls {
        for p in [&tls.cert_path, &tls.key_path, &tls.client_ca_path] {
            anyhow::ensure!(p.exists(), "mqtt.tls: file {} does not exist", p.display());
        }
    }
    let connected = auth.metrics().connected_devices.clone();
    let mut broker = Broker::new(rumqttd_config(cfg, auth, runtime.clone()));
    let (mut link_tx, link_rx) = broker
        .link("geoward-pipeline")
        .context("opening the broker's local link")?;
    for filter in UPLINK_FILTERS {
        link_tx
            .subscribe(filter)
            .with_context(|| format!("subscribing to {filter}"))?;
    }
    // A second link only publishes alerts; its receiving side carries nothing we
    // need but must be read so the router never waits on it.
    let (alerts_tx, alerts_rx) = broker
        .link("geoward-alerts")
        .context("opening the broker's alert link")?;
    runtime.spawn(drain(alerts_rx));
    track_connected_devices(&broker, connected, &runtime)?;
    std::thread::Builder::new()
        .name("rumqttd".to_owned())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "broker stopped");
            }
        })
        .context("spawning the broker thread")?;
    Ok(BrokerHandles {
        link_tx,
        link_rx,
        alerts_tx,
    })
}

/// Waits until something accepts TCP connections on `addr` (the broker binds on its
/// own threads), up to `timeout`.
pub async fn wait_listening(addr: std::net::SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let target = if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    loop {
        if tokio::net::TcpStream::connect(target).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "broker did not listen on {addr} in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
