//! SQLite backend: WAL journal, `synchronous = FULL` (an acked batch survives a
//! power cut, not only a process kill), one transaction of prepared inserts per batch.
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
use sqlx::{Row, SqlitePool};

use super::{DeviceCredentials, DeviceState, NewDevice, WriteBatch, hash_from};
use crate::evidence::{ChainBreak, StoredEvidence, Verifier};

/// The one text form of a time in SQLite.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(super) async fn connect(path: &Path, max_connections: u32) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str("sqlite://")
        .context("sqlite options")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(max_connections.max(1))
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

pub(super) async fn write_batch(pool: &SqlitePool, b: &WriteBatch) -> anyhow::Result<()> {
    let mut tx = pool.begin().await.context("begin")?;
    for f in &b.fixes {
        sqlx::query(
            "INSERT OR IGNORE INTO fixes (device_id, seq, fix_time, received_at, lat, lon, accuracy_m, source) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&f.device_id)
        .bind(f.seq)
        .bind(ts(f.fix_time))
        .bind(ts(f.received_at))
        .bind(f.lat)
        .bind(f.lon)
        .bind(f.accuracy_m)
        .bind(f.source)
        .execute(&mut *tx)
        .await
        .context("insert fix")?;
    }
    for e in &b.events {
        sqlx::query(
            "INSERT OR IGNORE INTO device_events (device_id, seq, event_time, received_at, kind, detail) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.device_id)
        .bind(e.seq)
        .bind(ts(e.event_time))
        .bind(ts(e.received_at))
        .bind(e.kind)
        .bind(&e.detail)
        .execute(&mut *tx)
        .await
        .context("insert event")?;
    }
    for e in &b.evidence {
        let received = DateTime::from_timestamp_micros(e.received_at_micros)
            .context("receive time out of range")?;
        sqlx::query(
            "INSERT INTO evidence (device_id, idx, seq_min, seq_max, received_at, topic, payload, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.device_id)
        .bind(e.idx)
        .bind(e.seq_min)
        .bind(e.seq_max)
        .bind(ts(received))
        .bind(&e.topic)
        .bind(&e.payload)
        .bind(&e.prev_hash[..])
        .bind(&e.hash[..])
        .execute(&mut *tx)
        .await
        .context("insert evidence")?;
    }
    for (device, idx, hash) in b.heads() {
        sqlx::query(
            "INSERT INTO evidence_heads (device_id, idx, hash) VALUES (?, ?, ?) \
             ON CONFLICT (device_id) DO UPDATE SET idx = excluded.idx, hash = excluded.hash",
        )
        .bind(device)
        .bind(idx)
        .bind(&hash[..])
        .execute(&mut *tx)
        .await
        .context("update evidence head")?;
    }
    let now = ts(Utc::now());
    for (device, acked) in &b.progress {
        sqlx::query(
            "INSERT INTO device_progress (device_id, acked_seq, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (device_id) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq), updated_at = excluded.updated_at",
        )
        .bind(device)
        .bind(acked)
        .bind(&now)
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
