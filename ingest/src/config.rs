//! The service configuration: one serde tree, a TOML file plus `GEOWARD_` environment
//! overrides.
//!
//! Every struct denies unknown fields so that a typo fails start-up with the key named
//! instead of silently falling back to a default. Units are part of the field names.
//! [`DEFAULT_CONFIG_TOML`] is the documented default that `geoward generate-config` prints;
//! a test keeps it equal to [`Config::default`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The documented default configuration, printed by `geoward generate-config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default_config.toml");

/// Prefix of environment variables that override configuration keys.
///
/// `GEOWARD_STORAGE__DATABASE_URL=postgres://...` sets `storage.database_url`: sections
/// and keys are separated by a double underscore. Variables without a double underscore
/// (such as `GEOWARD_LOG` or `GEOWARD_TEST_PG_URL`) are not configuration keys.
pub const ENV_PREFIX: &str = "GEOWARD_";

/// The whole configuration of one `geoward` process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The embedded MQTT broker devices connect to.
    pub mqtt: MqttConfig,
    /// The ingest pipeline between the broker and storage.
    pub pipeline: PipelineConfig,
    /// Where fixes, evidence and the registry are stored.
    pub storage: StorageConfig,
    /// The HTTP admin API and metrics endpoint.
    pub http: HttpConfig,
    /// Device identity and authenticated payloads.
    pub security: SecurityConfig,
    /// Zone judging, incidents, escalation and notification delivery.
    pub alerting: AlertingConfig,
}

/// Zone judging, incidents, escalation and delivery.
///
/// `policy` (escalation, lost contact, abscondment; `geoward-alerting`'s documented
/// defaults), `thresholds` (breach confirmation per supervision level;
/// `geoward-geofence`'s defaults) and `retry` (outbox backoff) are optional tables:
/// any key left out keeps its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Clock tick of the decision engines (lost contact, curfew deadlines,
    /// escalation), in milliseconds.
    pub tick_ms: u64,
    /// Subjects, rules, zones and offices are reloaded from the database this often
    /// (orders start and end by time), in seconds; API changes reload at once.
    pub reload_interval_seconds: u64,
    /// How often the outbox is polled for due notifications, in milliseconds.
    pub delivery_poll_ms: u64,
    /// Webhook request timeout, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// Escalation and incident policy.
    pub policy: geoward_alerting::Policy,
    /// Breach confirmation thresholds.
    pub thresholds: geoward_geofence::Thresholds,
    /// Outbox retry policy.
    pub retry: geoward_alerting::outbox::RetryPolicy,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            tick_ms: 1000,
            reload_interval_seconds: 60,
            delivery_poll_ms: 500,
            webhook_timeout_ms: 5000,
            policy: geoward_alerting::Policy::default(),
            thresholds: geoward_geofence::Thresholds::default(),
            retry: geoward_alerting::outbox::RetryPolicy::default(),
        }
    }
}

/// Embedded broker settings (rumqttd).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Plain TCP listener address; devices authenticate with username/password and
    /// authenticated payloads.
    pub tcp_listen: SocketAddr,
    /// TLS listener (rustls, client certificates required); absent disables it.
    pub tls: Option<TlsListenerConfig>,
    /// Maximum concurrent connections the broker accepts (all listeners together).
    pub max_connections: usize,
    /// Largest MQTT publish payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Time a new TCP connection has to send its CONNECT packet, in milliseconds.
    pub connection_timeout_ms: u16,
    /// Unacknowledged QoS 1 publishes in flight per connection.
    pub max_inflight_count: usize,
    /// Pause between two accepted connections on one listener, in milliseconds.
    ///
    /// 0 by default: a reconnect storm of 100k devices must not take 100k × delay to
    /// admit (1 ms would already be 100 s). Devices add their own jittered back-off, and
    /// the connection limit and auth cache protect the process. See `deploy/NOTES.md`.
    pub next_connection_delay_ms: u64,
    /// Size of one segment of the broker's in-memory log of uplinks not yet read by
    /// the pipeline, in bytes (per uplink filter; what was read is dropped).
    pub segment_size_bytes: usize,
    /// Number of those segments kept per uplink filter; when full, the oldest is
    /// dropped (the pipeline detects and counts that, the ack protocol recovers it).
    pub segment_count: usize,
}

/// The TLS listener: server certificate plus the CA that signs device certificates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerConfig {
    /// Listen address of the TLS listener.
    pub listen: SocketAddr,
    /// PEM file with the server certificate chain.
    pub cert_path: PathBuf,
    /// PEM file with the server private key.
    pub key_path: PathBuf,
    /// PEM file with the CA that issued device certificates (`geoward pki`).
    pub client_ca_path: PathBuf,
}

/// Pipeline settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Capacity of the queues between decoding and the storage batchers, in messages,
    /// split evenly among the commit workers. When a device's queue is full the
    /// pipeline stops reading from the broker (backpressure).
    pub queue_capacity: usize,
    /// Highest sequence numbers remembered above the ack watermark per device for
    /// duplicate detection; beyond it, a device's gap is treated as lost and acked over.
    pub max_pending_sequences_per_device: usize,
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Database URL: `postgres://...` for production; empty for the embedded SQLite
    /// database in `data_dir`.
    pub database_url: String,
    /// Directory for the embedded SQLite database and generated key material.
    pub data_dir: PathBuf,
    /// A batch is committed when it has this many fixes...
    pub batch_max_rows: usize,
    /// ...or when its oldest message has waited this long, in milliseconds.
    pub batch_max_delay_ms: u64,
    /// Batches committing at the same time on PostgreSQL, each on its own
    /// connection; every device always commits through the same one. SQLite has
    /// one writer and always uses one.
    pub commit_workers: usize,
    /// Connections in the database pool.
    pub pool_max_connections: u32,
    /// Embedded SQLite: the heap all its connections share (page caches,
    /// statements) is held near this bound, in MiB (SQLite's soft heap limit);
    /// 0 leaves SQLite's own default, up to 2 MB of page cache per connection.
    pub sqlite_memory_limit_mib: u32,
    /// Raw fixes and evidence older than this are dropped by maintenance, in days.
    pub retention_days: u32,
    /// Width of one PostgreSQL time partition of fixes, in days (native partitioning).
    pub partition_interval_days: u32,
}

/// HTTP admin API settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address of the admin API, `/metrics` and health endpoints.
    pub listen: SocketAddr,
}

/// Device identity settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Reject plain-TCP payloads that carry no per-device authentication tag. Only
    /// turn off for a lab; without it a device can publish as another on TCP.
    pub require_authenticated_payloads: bool,
    /// How long a successful device password check is cached, in seconds, so that a
    /// reconnect storm does not hash every password again.
    pub auth_cache_ttl_seconds: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            tcp_listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            tls: None,
            max_connections: 110_000,
            max_payload_bytes: 65_536,
            connection_timeout_ms: 10_000,
            max_inflight_count: 100,
            next_connection_delay_ms: 0,
            segment_size_bytes: 1_048_576,
            segment_count: 1000,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            max_pending_sequences_per_device: 4_096,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: String::new(),
            data_dir: PathBuf::from("geoward-data"),
            batch_max_rows: 5_000,
            batch_max_delay_ms: 10,
            commit_workers: 2,
            pool_max_connections: 8,
            sqlite_memory_limit_mib: 4,
            retention_days: 365,
            partition_interval_days: 7,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            require_authenticated_payloads: true,
            auth_cache_ttl_seconds: 300,
        }
    }
}

impl Config {
    /// Parses a TOML document and applies environment overrides on top of it.
    ///
    /// `env` is passed in (not read here) so tests control it; `main` passes
    /// `std::env::vars()`.
    pub fn load(
        toml_text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut doc: toml::Table = toml::from_str(toml_text).context("config is not valid toml")?;
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if !rest.contains("__") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            set_path(&mut doc, &path, parse_env_value(&raw))
                .with_context(|| format!("environment variable {name}"))?;
        }
        let text = toml::to_string(&doc).context("re-serialising config")?;
        let config: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config: {}", e.message()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a config file (or the defaults when `path` is `None`) plus the process
    /// environment.
    pub fn from_file_and_env(path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading config {}", p.display()))?,
            None => String::new(),
        };
        Self::load(&text, std::env::vars())
    }

    /// Cross-field checks that serde cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.storage.batch_max_rows == 0 {
            bail!("storage.batch_max_rows must be at least 1");
        }
        if self.storage.commit_workers == 0
            || self.storage.commit_workers as u64 >= u64::from(self.storage.pool_max_connections)
        {
            bail!(
                "storage.commit_workers must be at least 1 and below storage.pool_max_connections ({}): the API and the alerting engine need connections too",
                self.storage.pool_max_connections
            );
        }
        if self.pipeline.queue_capacity == 0 {
            bail!("pipeline.queue_capacity must be at least 1");
        }
        if self.mqtt.segment_size_bytes < 1024 {
            bail!("mqtt.segment_size_bytes must be at least 1024");
        }
        if self.mqtt.segment_count == 0 {
            bail!("mqtt.segment_count must be at least 1");
        }
        if self.storage.partition_interval_days == 0 {
            bail!("storage.partition_interval_days must be at least 1");
        }
        if !(self.storage.database_url.is_empty()
            || self.storage.database_url.starts_with("postgres://")
            || self.storage.database_url.starts_with("postgresql://")
            || self.storage.database_url.starts_with("sqlite:"))
        {
            bail!("storage.database_url must be empty, postgres://... or sqlite:...");
        }
        Ok(())
    }
}

/// Environment values are TOML values when they parse as one (`8`, `true`,
/// `"x"`), else plain strings (`postgres://...`).
fn parse_env_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(doc: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    let (last, parents) = path.split_last().context("empty key")?;
    let mut table = doc;
    for p in parents {
        let entry = table
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("{p} is not a section"),
        };
    }
    table.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn generated_default_parses_and_equals_default() {
        let parsed = Config::load(DEFAULT_CONFIG_TOML, no_env()).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn commit_workers_must_leave_pool_connections_for_the_rest() {
        for (workers, ok) in [(0, false), (1, true), (7, true), (8, false), (9, false)] {
            let text = format!("[storage]\ncommit_workers = {workers}\npool_max_connections = 8\n");
            let got = Config::load(&text, no_env());
            assert_eq!(got.is_ok(), ok, "{workers} workers: {got:?}");
            if let Err(e) = got {
                assert!(format!("{e:#}").contains("storage.commit_workers"), "{e:#}");
            }
        }
    }

    #[test]
    fn unknown_key_is_rejected_and_named() {
        let err = Config::load("[storage]\nbatch_max_rowz = 5\n", no_env()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("batch_max_rowz"), "{msg}");
        let err = Config::load("[mqttt]\n", no_env()).unwrap_err();
        assert!(format!("{err:#}").contains("mqttt"), "{err:#}");
    }

    #[test]
    fn env_overrides_file_and_unknown_env_key_is_named() {
        let env = vec![
            (
                "GEOWARD_STORAGE__BATCH_MAX_ROWS".to_owned(),
                "17".to_owned(),
            ),
            (
                "GEOWARD_STORAGE__DATABASE_URL".to_owned(),
                "postgres://u@h/db".to_owned(),
            ),
            ("GEOWARD_TEST_PG_URL".to_owned(), "ignored".to_owned()),
        ];
        let c = Config::load("[storage]\nbatch_max_rows = 5\n", env).unwrap();
        assert_eq!(c.storage.batch_max_rows, 17);
        assert_eq!(c.storage.database_url, "postgres://u@h/db");

        let env = vec![("GEOWARD_HTTP__LISTN".to_owned(), "\"1.2.3.4:5\"".to_owned())];
        let err = Config::load("", env).unwrap_err();
        assert!(format!("{err:#}").contains("listn"), "{err:#}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(Config::load("[storage]\nbatch_max_rows = 0\n", no_env()).is_err());
        assert!(Config::load("[storage]\ndatabase_url = \"mysql://x\"\n", no_env()).is_err());
        assert!(Config::load("[http]\nlisten = \"nope\"\n", no_env()).is_err());
    }
}
