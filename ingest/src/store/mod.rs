//! Storage over SQLite (embedded default) and PostgreSQL (production), one schema
//! semantics on both.
//!
//! [`Store`] is an enum rather than a trait object: the two backends differ in how a
//! batch is written (one UNNEST statement per table on PostgreSQL, a transaction of
//! prepared inserts on SQLite), and an enum keeps both paths visible and monomorphic.
//! Everything a batch contains is written in one transaction, and only after that
//! transaction commits may the pipeline acknowledge it.

pub mod alerts;
mod migrations;
mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::config::StorageConfig;
use crate::evidence::{ChainBreak, Hash};

/// One position fix row.
#[derive(Debug, Clone, PartialEq)]
pub struct FixRow {
    /// Device.
    pub device_id: String,
    /// Device sequence number.
    pub seq: i64,
    /// When the device measured it.
    pub fix_time: DateTime<Utc>,
    /// When the service received it.
    pub received_at: DateTime<Utc>,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Accuracy radius, metres.
    pub accuracy_m: Option<f32>,
    /// Position source (`gnss`, `wifi`, `cell`, `fused`).
    pub source: &'static str,
}

/// One device event or heartbeat row.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Device.
    pub device_id: String,
    /// Device sequence number.
    pub seq: i64,
    /// When it happened on the device.
    pub event_time: DateTime<Utc>,
    /// When the service received it.
    pub received_at: DateTime<Utc>,
    /// Kind (`heartbeat`, `strap_opened`, ...).
    pub kind: &'static str,
    /// Details as JSON.
    pub detail: String,
}

/// One evidence row (raw payload in the device's hash chain).
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceRow {
    /// Device.
    pub device_id: String,
    /// Position in the chain.
    pub idx: i64,
    /// Lowest sequence in the message.
    pub seq_min: i64,
    /// Highest sequence in the message.
    pub seq_max: i64,
    /// Receive time, unix microseconds (hashed as such).
    pub received_at_micros: i64,
    /// Topic.
    pub topic: String,
    /// Raw payload (shared with the message it came in, not copied).
    pub payload: bytes::Bytes,
    /// Previous row's hash.
    pub prev_hash: Hash,
    /// This row's hash.
    pub hash: Hash,
}

/// Everything one commit writes.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    /// Fixes.
    pub fixes: Vec<FixRow>,
    /// Events and heartbeats.
    pub events: Vec<EventRow>,
    /// Evidence rows, in chain order per device.
    pub evidence: Vec<EvidenceRow>,
    /// New ack watermark per device (highest contiguous stored sequence).
    pub progress: Vec<(String, i64)>,
}

impl WriteBatch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.fixes.is_empty()
            && self.events.is_empty()
            && self.evidence.is_empty()
            && self.progress.is_empty()
    }

    /// New evidence heads implied by the batch (last row per device).
    fn heads(&self) -> Vec<(&str, i64, &Hash)> {
        let mut last: HashMap<&str, (i64, &Hash)> = HashMap::new();
        for e in &self.evidence {
            last.insert(&e.device_id, (e.idx, &e.hash));
        }
        last.into_iter().map(|(d, (i, h))| (d, i, h)).collect()
    }
}

/// What the pipeline needs to know about a device it has not seen since start-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceState {
    /// Highest contiguous sequence stored (0 when none; sequences start at 1).
    pub acked_seq: i64,
    /// Sequences stored above the watermark (gaps before them still missing).
    pub stored_above: Vec<i64>,
    /// Head of the evidence chain: index and hash.
    pub evidence_head: Option<(i64, Hash)>,
}

/// Credentials of a registered device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCredentials {
    /// Argon2 PHC string of the MQTT password.
    pub password_hash: String,
    /// Hex key for authenticated payloads.
    pub payload_key: String,
    /// Disabled devices cannot connect.
    pub enabled: bool,
}

/// A new device for the registry.
#[derive(Debug, Clone)]
pub struct NewDevice<'a> {
    /// Device id.
    pub id: &'a str,
    /// `bracelet` or `phone`.
    pub kind: &'a str,
    /// Subject wearing it, if assigned.
    pub subject_id: Option<&'a str>,
    /// Argon2 PHC string.
    pub password_hash: &'a str,
    /// Hex payload key.
    pub payload_key: &'a str,
}

/// The database behind the service.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite (WAL).
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL, optionally with TimescaleDB.
    Postgres(sqlx::PgPool),
}

impl Store {
    /// Opens the configured database (creating the SQLite file and data directory).
    pub async fn connect(cfg: &StorageConfig) -> anyhow::Result<Store> {
        if cfg.database_url.starts_with("postgres") {
            Ok(Store::Postgres(
                postgres::connect(&cfg.database_url, cfg.pool_max_connections).await?,
            ))
        } else if let Some(path) = cfg.database_url.strip_prefix("sqlite:") {
            Ok(Store::Sqlite(
                sqlite::connect(Path::new(path.trim_start_matches("//")), cfg).await?,
            ))
        } else {
            std::fs::create_dir_all(&cfg.data_dir)
                .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
            Ok(Store::Sqlite(
                sqlite::connect(&cfg.data_dir.join("geoward.db"), cfg).await?,
            ))
        }
    }

    /// Runs the embedded migrations of the backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(p) => migrations::sqlite()
                .run(p)
                .await
                .context("sqlite migrations")?,
            Store::Postgres(p) => migrations::postgres()
                .run(p)
                .await
                .context("postgres migrations")?,
        }
        Ok(())
    }

    /// Retention and partition maintenance; run at start-up and daily.
    pub async fn maintain(
        &self,
        retention_days: u32,
        partition_interval_days: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(p) => sqlite::maintain(p, retention_days, now).await,
            Store::Postgres(p) => {
                postgres::maintain(p, retention_days, partition_interval_days).await
            }
        }
    }

    /// Writes a batch in one transaction.
    pub async fn write_batch(&self, batch: &WriteBatch) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(p) => sqlite::write_batch(p, batch).await,
            Store::Postgres(p) => postgres::write_batch(p, batch).await,
        }
    }

    /// Ack watermark, stored sequences above it and evidence head for each device.
    pub async fn load_device_states(
        &self,
        devices: &[String],
    ) -> anyhow::Result<HashMap<String, DeviceState>> {
        match self {
            Store::Sqlite(p) => sqlite::load_device_states(p, devices).await,
            Store::Postgres(p) => postgres::load_device_states(p, devices).await,
        }
    }

    /// Verifies one device's evidence chain; `Ok(Ok(rows))` when intact.
    pub async fn verify_evidence(
        &self,
        device_id: &str,
    ) -> anyhow::Result<Result<u64, ChainBreak>> {
        match self {
            Store::Sqlite(p) => sqlite::verify_evidence(p, device_id).await,
            Store::Postgres(p) => postgres::verify_evidence(p, device_id).await,
        }
    }

    /// Credentials of one device, `None` when unknown.
    pub async fn device_credentials(
        &self,
        device_id: &str,
    ) -> anyhow::Result<Option<DeviceCredentials>> {
        match self {
            Store::Sqlite(p) => sqlite::device_credentials(p, device_id).await,
            Store::Postgres(p) => postgres::device_credentials(p, device_id).await,
        }
    }

    /// Registers a device (or replaces its credentials when it exists).
    pub async fn upsert_device(&self, d: &NewDevice<'_>, now: DateTime<Utc>) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(p) => sqlite::upsert_device(p, d, now).await,
            Store::Postgres(p) => postgres::upsert_device(p, d, now).await,
        }
    }

    /// Cheap readiness probe.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(drop)?,
            Store::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(drop)?,
        }
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(p) => p.close().await,
            Store::Postgres(p) => p.close().await,
        }
    }
}

/// Truncates a time to microseconds, the precision both databases keep, so what is
/// hashed equals what is read back.
pub fn to_micros_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn hash_from(v: &[u8]) -> anyhow::Result<Hash> {
    v.try_into()
        .map_err(|_| anyhow::anyhow!("stored hash is not 32 bytes"))
}

/// Runs the same body against whichever pool the store holds. SQL in such bodies
/// uses `$1, $2, ...` placeholders in ascending order of first use, which both
/// PostgreSQL and sqlx's SQLite driver read positionally, and binds times as [`Ts`].
#[macro_export]
macro_rules! with_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($p) => $body,
            $crate::store::Store::Postgres($p) => $body,
        }
    };
}

/// Implements `sqlx::FromRow` for both backends' rows, reading each named field
/// from the column of the same name: what `#[derive(sqlx::FromRow)]` does,
/// without sqlx's `macros` feature (see `store/migrations.rs` for why).
#[macro_export]
macro_rules! from_row {
    ($ty:ident: $($field:ident),+ $(,)?) => {
        $crate::from_row!(@row sqlx::sqlite::SqliteRow, $ty: $($field),+);
        $crate::from_row!(@row sqlx::postgres::PgRow, $ty: $($field),+);
    };
    (@row $row:ty, $ty:ident: $($field:ident),+) => {
        impl<'r> sqlx::FromRow<'r, $row> for $ty {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Self { $($field: row.try_get(stringify!($field))?),+ })
            }
        }
    };
}

/// A time bound the same way on both backends: `timestamptz` on PostgreSQL, the
/// fixed-width text form on SQLite (so text comparison is time comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ts(pub DateTime<Utc>);

impl sqlx::Type<sqlx::Sqlite> for Ts {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Sqlite as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, sqlx::Sqlite>>::encode(sqlite::ts(self.0), buf)
    }
}

impl sqlx::Type<sqlx::Postgres> for Ts {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Postgres> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Postgres as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <DateTime<Utc> as sqlx::Encode<'q, sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}
