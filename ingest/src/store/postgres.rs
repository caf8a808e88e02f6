//! PostgreSQL backend: one `INSERT ... SELECT FROM UNNEST(...)` per table and batch,
//! so a batch of thousands of rows is a handful of statements and round trips.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use super::{DeviceCredentials, DeviceState, NewDevice, WriteBatch, hash_from};
use crate::evidence::{ChainBreak, StoredEvidence, Verifier};

pub(super) async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await
        .context("connecting to postgresql")
}

pub(super) async fn maintain(
    pool: &PgPool,
    retention_days: u32,
    interval_days: u32,
) -> anyhow::Result<()> {
    sqlx::query("SELECT geoward_maintain($1, $2)")
        .bind(retention_days as i32)
        .bind(interval_days as i32)
        .execute(pool)
        .await
        .context("geoward_maintain")?;
    Ok(())
}

pub(super) async fn write_batch(pool: &PgPool, b: &WriteBatch) -> anyhow::Result<()> {
    let mut tx = pool.begin().await.context("begin")?;
    if !b.fixes.is_empty() {
        let n = b.fixes.len();
        let (mut dev, mut seq, mut ft, mut rt) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut lat, mut lon, mut acc, mut src) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for f in &b.fixes {
            dev.push(f.device_id.as_str());
            seq.push(f.seq);
            ft.push(f.fix_time);
            rt.push(f.received_at);
            lat.push(f.lat);
            lon.push(f.lon);
            acc.push(f.accuracy_m);
            src.push(f.source);
        }
        sqlx::query(
            "INSERT INTO fixes (device_id, seq, fix_time, received_at, lat, lon, accuracy_m, source) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[], $4::timestamptz[], \
             $5::float8[], $6::float8[], $7::float4[], $8::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(&dev)
        .bind(&seq)
        .bind(&ft)
        .bind(&rt)
        .bind(&lat)
        .bind(&lon)
        .bind(&acc)
        .bind(&src)
        .execute(&mut *tx)
        .await
        .context("insert fixes")?;
    }
    if !b.events.is_empty() {
        let dev: Vec<&str> = b.events.iter().map(|e| e.device_id.as_str()).collect();
        let seq: Vec<i64> = b.events.iter().map(|e| e.seq).collect();
        let et: Vec<DateTime<Utc>> = b.events.iter().map(|e| e.event_time).collect();
        let rt: Vec<DateTime<Utc>> = b.events.iter().map(|e| e.received_at).collect();
        let kind: Vec<&str> = b.events.iter().map(|e| e.kind).collect();
        let detail: Vec<&str> = b.events.iter().map(|e| e.detail.as_str()).collect();
        sqlx::query(
            "INSERT INTO device_events (device_id, seq, event_time, received_at, kind, detail) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&dev)
        .bind(&seq)
        .bind(&et)
        .bind(&rt)
        .bind(&kind)
        .bind(&detail)
        .execute(&mut *tx)
        .await
        .context("insert events")?;
    }
    if !b.evidence.is_empty() {
        let dev: Vec<&str> = b.evidence.iter().map(|e| e.device_id.as_str()).collect();
        let idx: Vec<i64> = b.evidence.iter().map(|e| e.idx).collect();
        let smin: Vec<i64> = b.evidence.iter().map(|e| e.seq_min).collect();
        let smax: Vec<i64> = b.evidence.iter().map(|e| e.seq_max).collect();
        let rt = b
            .evidence
            .iter()
            .map(|e| {
                DateTime::from_timestamp_micros(e.received_at_micros)
                    .context("receive time out of range")
            })
            .collect::<anyhow::Result<Vec<DateTime<Utc>>>>()?;
        let topic: Vec<&str> = b.evidence.iter().map(|e| e.topic.as_str()).collect();
        let payload: Vec<&[u8]> = b.evidence.iter().map(|e| e.payload.as_ref()).collect();
        let prev: Vec<&[u8]> = b.evidence.iter().map(|e| &e.prev_hash[..]).collect();
        let hash: Vec<&[u8]> = b.evidence.iter().map(|e| &e.hash[..]).collect();
        sqlx::query(
            "INSERT INTO evidence (device_id, idx, seq_min, seq_max, received_at, topic, payload, prev_hash, hash) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::timestamptz[], $6::text[], \
             $7::bytea[], $8::bytea[], $9::bytea[])",
        )
        .bind(&dev)
        .bind(&idx)
        .bind(&smin)
        .bind(&smax)
        .bind(&rt)
        .bind(&topic)
        .bind(&payload)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .context("insert evidence")?;
        let heads = b.heads();
        let hd: Vec<&str> = heads.iter().map(|h| h.0).collect();
        let hi: Vec<i64> = heads.iter().map(|h| h.1).collect();
        let hh: Vec<&[u8]> = heads.iter().map(|h| &h.2[..]).collect();
        sqlx::query(
            "INSERT INTO evidence_heads (device_id, idx, hash) SELECT * FROM UNNEST($1::text[], $2::int8[], $3::bytea[]) \
             ON CONFLICT (device_id) DO UPDATE SET idx = excluded.idx, hash = excluded.hash",
        )
        .bind(&hd)
        .bind(&hi)
        .bind(&hh)
        .execute(&mut *tx)
        .await
        .context("update evidence heads")?;
    }
    if !b.progress.is_empty() {
        let dev: Vec<&str> = b.progress.iter().map(|p| p.0.as_str()).collect();
        let acked: Vec<i64> = b.progress.iter().map(|p| p.1).collect();
        sqlx::query(
            "INSERT INTO device_progress (device_id, acked_seq, updated_at) \
             SELECT d, a, now() FROM UNNEST($1::text[], $2::int8[]) AS u(d, a) \
             ON CONFLICT (device_id) DO UPDATE SET acked_seq = GREATEST(device_progress.acked_seq, excluded.acked_seq), \
             updated_at = excluded.updated_at",
        )
        .bind(&dev)
        .bind(&acked)
        .execute(&mut *tx)
        .await
        .context("update progress")?;
    }
    tx.commit().await.context("commit")?;
    Ok(())
}

pub(super) async fn load_device_states(
    pool: &PgPool,
    devices: &[String],
) -> anyhow::Result<HashMap<String, DeviceState>> {
    let mut out: HashMap<String, DeviceState> = devices
        .iter()
        .map(|d| (d.clone(), DeviceState::default()))
        .collect();
    for r in
        sqlx::query("SELECT device_id, acked_seq FROM device_progress WHERE device_id = ANY($1)")
            .bind(devices)
            .fetch_all(pool)
            .await?
    {
        if let Some(s) = out.get_mut(r.get::<&str, _>(0)) {
            s.acked_seq = r.get(1);
        }
    }
    for r in sqlx::query(
        "WITH w AS (SELECT d AS device_id, COALESCE(p.acked_seq, 0) AS acked FROM UNNEST($1::text[]) AS u(d) \
                    LEFT JOIN device_progress p ON p.device_id = u.d) \
         SELECT f.device_id, f.seq FROM fixes f JOIN w ON f.device_id = w.device_id AND f.seq > w.acked \
         UNION SELECT e.device_id, e.seq FROM device_events e JOIN w ON e.device_id = w.device_id AND e.seq > w.acked \
         ORDER BY 1, 2",
    )
    .bind(devices)
    .fetch_all(pool)
    .await?
    {
        if let Some(s) = out.get_mut(r.get::<&str, _>(0)) {
            s.stored_above.push(r.get(1));
        }
    }
    for r in
        sqlx::query("SELECT device_id, idx, hash FROM evidence_heads WHERE device_id = ANY($1)")
            .bind(devices)
            .fetch_all(pool)
            .await?
    {
        if let Some(s) = out.get_mut(r.get::<&str, _>(0)) {
            s.evidence_head = Some((r.get(1), hash_from(&r.get::<Vec<u8>, _>(2))?));
        }
    }
    Ok(out)
}

pub(super) async fn verify_evidence(
    pool: &PgPool,
    device: &str,
) -> anyhow::Result<Result<u64, ChainBreak>> {
    let mut v = Verifier::new(device);
    let mut last_idx = 0i64;
    loop {
        let rows = sqlx::query(
            "SELECT idx, seq_min, seq_max, received_at, topic, payload, prev_hash, hash FROM evidence \
             WHERE device_id = $1 AND idx > $2 ORDER BY idx LIMIT 1000",
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
    let head = sqlx::query("SELECT idx, hash FROM evidence_heads WHERE device_id = $1")
        .bind(device)
        .fetch_optional(pool)
        .await?
        .map(|r| (r.get::<i64, _>(0), r.get::<Vec<u8>, _>(1)));
    Ok(v.finish(head))
}

pub(super) async fn device_credentials(
    pool: &PgPool,
    device: &str,
) -> anyhow::Result<Option<DeviceCredentials>> {
    let row = sqlx::query("SELECT password_hash, payload_key, enabled FROM devices WHERE id = $1")
        .bind(device)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| DeviceCredentials {
        password_hash: r.get(0),
        payload_key: r.get(1),
        enabled: r.get(2),
    }))
}

pub(super) async fn upsert_device(
    pool: &PgPool,
    d: &NewDevice<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO devices (id, kind, subject_id, password_hash, payload_key, enabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, TRUE, $6) ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, \
         subject_id = excluded.subject_id, password_hash = excluded.password_hash, payload_key = excluded.payload_key",
    )
    .bind(d.id)
    .bind(d.kind)
    .bind(d.subject_id)
    .bind(d.password_hash)
    .bind(d.payload_key)
    .bind(now)
    .execute(pool)
    .await
    .context("upsert device")?;
    Ok(())
}
