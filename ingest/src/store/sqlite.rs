//! SQLite backend: WAL journal, `synchronous = FULL` (an acked batch survives a
//! power cut, not only a process kill), one transaction of multi-row inserts per batch.
//!
//! Times are stored as fixed-width RFC 3339 UTC text with microseconds (see [`ts`]),
//! so text order is time order and range queries use the indexes.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{DeviceCredentials, DeviceState, NewDevice, WriteBatch, hash_from};
use crate::config::StorageConfig;
use crate::evidence::{ChainBreak, StoredEvidence, Verifier};

/// The one text form of a time in SQLite.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(super) async fn connect(path: &Path, cfg: &StorageConfig) -> anyhow::Result<SqlitePool> {
    let mut opts = SqliteConnectOptions::from_str("sqlite://")
        .context("sqlite options")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    if cfg.sqlite_memory_limit_mib > 0 {
        // Process-wide, so every connection setting it sets the same value.
        // Without it each connection's page cache grows to 2 MB in the C
        // library's malloc arenas (27-33 MB of a 2,500-device service's RSS,
        // 10 MB with the limit: RESULTS, "SQLite's heap bounded"); the fixes and evidence are
        // written once and read back rarely, and a page read again comes from
        // the OS's file cache.
        let bytes = u64::from(cfg.sqlite_memory_limit_mib) << 20;
        opts = opts.pragma("soft_heap_limit", bytes.to_string());
    }
    SqlitePoolOptions::new()
        .max_connections(cfg.pool_max_connections.max(1))
        .connect_with(opts)
        .await
        .with_context(|| format!("opening sqlite database {}", path.display()))
}

pub(super) async fn maintain(
    pool: &SqlitePool,
    retention_days: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let cutoff = ts(now - chrono::Duration::days(i64::from(retention_days)));
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM fixes WHERE fix_time < ?")
        .bind(&cutoff)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM device_events WHERE event_time < ?")
        .bind(&cutoff)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM evidence WHERE received_at < ?")
        .bind(&cutoff)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Rows per multi-row INSERT. sqlx runs SQLite on a worker thread and every
/// statement is a round trip to it (tens of microseconds), so one statement
/// per row capped a batch at a few thousand rows per second; 9 columns × 400
/// rows stays far below SQLite's 32,766 bound parameters. Not kept prepared
/// (`persistent(false)`): each row count is another statement text, and
/// sqlx's cache kept up to 100 compiled ones per connection (19 MB of the
/// service's heap after 8 h of a 1,000-device day; RESULTS, "Memory per
/// device").
const ROWS_PER_STATEMENT: usize = 400;

pub(super) async fn write_batch(pool: &SqlitePool, b: &WriteBatch) -> anyhow::Result<()> {
    let mut tx = pool.begin().await.context("begin")?;
    for chunk in b.fixes.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO fixes (device_id, seq, fix_time, received_at, lat, lon, accuracy_m, source) ",
        );
        q.push_values(chunk, |mut r, f| {
            r.push_bind(&f.device_id)
                .push_bind(f.seq)
                .push_bind(ts(f.fix_time))
                .push_bind(ts(f.received_at))
                .push_bind(f.lat)
                .push_bind(f.lon)
                .push_bind(f.accuracy_m)
                .push_bind(f.source);
        });
        q.build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .context("insert fixes")?;
    }
    for chunk in b.events.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO device_events (device_id, seq, event_time, received_at, kind, detail) ",
        );
        q.push_values(chunk, |mut r, e| {
            r.push_bind(&e.device_id)
                .push_bind(e.seq)
                .push_bind(ts(e.event_time))
                .push_bind(ts(e.received_at))
                .push_bind(e.kind)
                .push_bind(&e.detail);
        });
        q.build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .context("insert events")?;
    }
    for chunk in b.evidence.chunks(ROWS_PER_STATEMENT) {
        let received = chunk
            .iter()
            .map(|e| {
                DateTime::from_timestamp_micros(e.received_at_micros)
                    .map(ts)
                    .context("receive time out of range")
            })
            .collect::<anyhow::Result<Vec<String>>>()?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO evidence (device_id, idx, seq_min, seq_max, received_at, topic, payload, prev_hash, hash) ",
        );
        q.push_values(chunk.iter().zip(&received), |mut r, (e, received)| {
            r.push_bind(&e.device_id)
                .push_bind(e.idx)
                .push_bind(e.seq_min)
                .push_bind(e.seq_max)
                .push_bind(received)
                .push_bind(&e.topic)
                .push_bind(e.payload.as_ref())
                .push_bind(&e.prev_hash[..])
                .push_bind(&e.hash[..]);
        });
        q.build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .context("insert evidence")?;
    }
    let heads = b.heads();
    for chunk in heads.chunks(ROWS_PER_STATEMENT) {
        let mut q =
            QueryBuilder::<Sqlite>::new("INSERT INTO evidence_heads (device_id, idx, hash) ");
        q.push_values(chunk, |mut r, (device, idx, hash)| {
            r.push_bind(*device).push_bind(*idx).push_bind(&hash[..]);
        });
        q.push(" ON CONFLICT (device_id) DO UPDATE SET idx = excluded.idx, hash = excluded.hash");
        q.build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .context("update evidence heads")?;
    }
    let now = ts(Utc::now());
    for chunk in b.progress.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO device_progress (device_id, acked_seq, updated_at) ",
        );
        q.push_values(chunk, |mut r, (device, acked)| {
            r.push_bind(device).push_bind(acked).push_bind(&now);
        });
        q.push(
            " ON CONFLICT (device_id) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq), \
             updated_at = excluded.updated_at",
        );
        q.build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .context("update progress")?;
    }
    tx.commit().await.context("commit")?;
    Ok(())
}

pub(super) async fn load_device_states(
    pool: &SqlitePool,
    devices: &[String],
) -> anyhow::Result<HashMap<String, DeviceState>> {
    let mut out = HashMap::with_capacity(devices.len());
    let mut conn = pool.acquire().await?;
    for d in devices {
        let acked: i64 = sqlx::query("SELECT acked_seq FROM device_progress WHERE device_id = ?")
            .bind(d)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.get(0))
            .unwrap_or(0);
        let stored_above: Vec<i64> = sqlx::query(
            "SELECT seq FROM fixes WHERE device_id = ?1 AND seq > ?2 \
             UNION SELECT seq FROM device_events WHERE device_id = ?1 AND seq > ?2 ORDER BY 1",
        )
        .bind(d)
        .bind(acked)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
        let head = sqlx::query("SELECT idx, hash FROM evidence_heads WHERE device_id = ?")
            .bind(d)
            .fetch_optional(&mut *conn)
            .await?;
        let evidence_head = match head {
            Some(r) => Some((r.get::<i64, _>(0), hash_from(&r.get::<Vec<u8>, _>(1))?)),
            None => None,
        };
        out.insert(
            d.clone(),
            DeviceState {
                acked_seq: acked,
                stored_above,
                evidence_head,
            },
        );
    }
    Ok(out)
}

pub(super) async fn verify_evidence(
    pool: &SqlitePool,
    device: &str,
) -> anyhow::Result<Result<u64, ChainBreak>> {
    let mut v = Verifier::new(device);
    let mut last_idx = 0i64;
    // Paged by index so a long chain never sits in memory at once.
    loop {
        let rows = sqlx::query(
            "SELECT idx, seq_min, seq_max, received_at, topic, payload, prev_hash, hash FROM evidence \
             WHERE device_id = ? AND idx > ? ORDER BY idx LIMIT 1000",
        )
        .bind(device)
        .bind(last_idx)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            let received: DateTime<Utc> = r.try_get(3)?;
            let row = StoredEvidence {
                idx: r.try_get(0)?,
                seq_min: r.try_get(1)?,
                seq_max: r.try_get(2)?,
                received_at_micros: received.timestamp_micros(),
                topic: r.try_get(4)?,
                payload: r.try_get(5)?,
                prev_hash: r.try_get(6)?,
                hash: r.try_get(7)?,
            };
            last_idx = row.idx;
            if let Err(e) = v.push(&row) {
                return Ok(Err(e));
            }
        }
    }
    let head = sqlx::query("SELECT idx, hash FROM evidence_heads WHERE device_id = ?")
        .bind(device)
        .fetch_optional(pool)
        .await?
        .map(|r| (r.get::<i64, _>(0), r.get::<Vec<u8>, _>(1)));
    Ok(v.finish(head))
}

pub(super) async fn device_credentials(
    pool: &SqlitePool,
    device: &str,
) -> anyhow::Result<Option<DeviceCredentials>> {
    let row = sqlx::query("SELECT password_hash, payload_key, enabled FROM devices WHERE id = ?")
        .bind(device)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| DeviceCredentials {
        password_hash: r.get(0),
        payload_key: r.get(1),
        enabled: r.get::<i64, _>(2) != 0,
    }))
}

pub(super) async fn upsert_device(
    pool: &SqlitePool,
    d: &NewDevice<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO devices (id, kind, subject_id, password_hash, payload_key, enabled, created_at) \
         VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, \
         subject_id = excluded.subject_id, password_hash = excluded.password_hash, payload_key = excluded.payload_key",
    )
    .bind(d.id)
    .bind(d.kind)
    .bind(d.subject_id)
    .bind(d.password_hash)
    .bind(d.payload_key)
    .bind(ts(now))
    .execute(pool)
    .await
    .context("upsert device")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound reaches SQLite on every connection the pool opens. (The
    /// limit is process-wide, so the test uses the default every other store
    /// of a test process sets too.)
    #[tokio::test]
    async fn every_connection_has_the_memory_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StorageConfig::default();
        assert!(cfg.sqlite_memory_limit_mib > 0);
        let pool = connect(&dir.path().join("limit.db"), &cfg).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..cfg.pool_max_connections {
            held.push(pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            let limit: i64 = sqlx::query_scalar("PRAGMA soft_heap_limit")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(limit, i64::from(cfg.sqlite_memory_limit_mib) << 20);
        }
    }
}
