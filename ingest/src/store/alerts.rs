//! Storage of the alerting side: incidents and their timelines, the notification
//! outbox, the officers' live feed and the hash-chained audit log.
//!
//! One SQL text serves both backends (see [`crate::with_pool`]); alerting times are
//! unix milliseconds, the alerting core's unit, so nothing here depends on how a
//! backend stores timestamps.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use geoward_alerting::audit::{AuditEntry, AuditEvent};
use geoward_alerting::incident::TimelineEntry;
use geoward_alerting::outbox::OutboxRecord;
use geoward_alerting::{Incident, IncidentChange, IncidentHeader, OfficeId};

use super::Store;
use crate::with_pool;

/// One event of one office's live feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// The office whose feed it is on.
    pub office: String,
    /// Its id in that feed (`Last-Event-ID`), increasing from 1.
    pub id: u64,
    /// When it was produced, unix ms.
    pub at_ms: i64,
    /// The JSON of the SSE `data:` line.
    pub data: String,
}

/// Everything one decision step asks to be stored, in one transaction.
#[derive(Debug, Default)]
pub struct EffectBatch {
    /// Incident headers to upsert and timeline entries to append, in order.
    pub changes: Vec<IncidentChange>,
    /// Notifications to enqueue (a duplicate idempotency key is ignored).
    pub outbox: Vec<OutboxRecord>,
    /// Audit events to chain.
    pub audit: Vec<AuditEvent>,
    /// Feed events to keep for `Last-Event-ID` resumption.
    pub feed: Vec<FeedEvent>,
}

impl EffectBatch {
    /// True when there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.outbox.is_empty()
            && self.audit.is_empty()
            && self.feed.is_empty()
    }
}

/// The head of the audit chain, shared by every writer of the process so that
/// entries are numbered and chained without gaps. Appends hold the lock for the
/// whole transaction; the head moves only after the commit.
#[derive(Debug, Clone)]
pub struct AuditLog {
    head: Arc<tokio::sync::Mutex<Option<AuditEntry>>>,
}

impl AuditLog {
    /// Loads the newest entry of the chain.
    pub async fn open(store: &Store) -> anyhow::Result<AuditLog> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_chain ORDER BY seq DESC LIMIT 1");
        let head: Option<AuditRow> =
            with_pool!(store, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_optional(p).await)
            .context("loading the audit head")?;
        let head = head.map(entry_from_row).transpose()?;
        Ok(AuditLog {
            head: Arc::new(tokio::sync::Mutex::new(head)),
        })
    }

    /// Appends one event in its own transaction.
    pub async fn append(&self, store: &Store, event: AuditEvent) -> anyhow::Result<()> {
        commit_effects(
            store,
            self,
            &EffectBatch {
                audit: vec![event],
                ..EffectBatch::default()
            },
        )
        .await
    }

    /// `(seq, hash)` of the newest entry, for logs and the operator.
    pub async fn head(&self) -> Option<(u64, String)> {
        self.head
            .lock()
            .await
            .as_ref()
            .map(|e| (e.seq, e.hash.clone()))
    }
}

/// An audit row as selected by [`AUDIT_COLUMNS`].
type AuditRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
);

const AUDIT_COLUMNS: &str = "seq, at_ms, actor, action, incident_id, detail, prev_hash, hash";

fn entry_from_row(r: AuditRow) -> anyhow::Result<AuditEntry> {
    let (seq, at_ms, actor, action, incident, detail, prev_hash, hash) = r;
    Ok(AuditEntry {
        seq: u64::try_from(seq).context("negative audit seq")?,
        at: geoward_alerting::Timestamp(at_ms),
        actor,
        action,
        incident: incident.map(geoward_alerting::IncidentId),
        detail,
        prev_hash,
        hash,
    })
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    serde_json::to_string(v).context("serialising for storage")
}

/// Rows per multi-row statement: well under either backend's limit on bound
/// parameters (PostgreSQL 65,535; SQLite 32,766) at 11 columns.
///
/// These statements are not kept prepared (`persistent(false)`): every row
/// count is another statement text, so a cache would hold up to one
/// compiled statement per count, table and connection, for statements that
/// rarely repeat (see `sqlite::ROWS_PER_STATEMENT`).
const ROWS_PER_STATEMENT: usize = 500;

/// Stores a decision step's effects in one transaction: incident headers and
/// timeline entries, outbox records, feed events and chained audit entries.
///
/// One multi-row statement per table (per [`ROWS_PER_STATEMENT`] rows), not one
/// per row: a burst of incidents, say a district's subjects all leaving at a
/// curfew's start, commits in a handful of round trips, and the monitor, which
/// waits for this commit before judging more fixes, is not held up row by row.
pub async fn commit_effects(
    store: &Store,
    audit: &AuditLog,
    batch: &EffectBatch,
) -> anyhow::Result<()> {
    let mut head = audit.head.lock().await;
    let mut entries = Vec::with_capacity(batch.audit.len());
    let mut prev = head.clone();
    for event in &batch.audit {
        let e = AuditEntry::next(prev.as_ref(), event.clone());
        prev = Some(e.clone());
        entries.push(e);
    }
    let headers = newest_headers(&batch.changes)?;
    let timeline = batch
        .changes
        .iter()
        .map(|c| Ok((c.header.id.as_str(), &c.entry, json(&c.entry)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let outbox = batch
        .outbox
        .iter()
        .map(|r| Ok((r, json(r)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    with_pool!(store, p => {
        let mut tx = p.begin().await.context("begin")?;
        for chunk in headers.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO incidents (id, subject_id, office_id, escalated_to, kind, state, severity, handled, \
                 opened_at_ms, updated_at_ms, header) ",
            );
            q.push_values(chunk, |mut r, (h, updated_at_ms, text)| {
                r.push_bind(h.id.as_str())
                    .push_bind(h.subject.as_str())
                    .push_bind(h.office.as_str())
                    .push_bind(h.escalated_to.as_str())
                    .push_bind(h.kind.code())
                    .push_bind(h.state().code())
                    .push_bind(h.severity.code())
                    .push_bind(h.handled())
                    .push_bind(h.opened_at.millis())
                    .push_bind(*updated_at_ms)
                    .push_bind(text.as_str());
            });
            q.push(
                " ON CONFLICT (id) DO UPDATE SET office_id = excluded.office_id, escalated_to = excluded.escalated_to, \
                 kind = excluded.kind, state = excluded.state, severity = excluded.severity, handled = excluded.handled, \
                 updated_at_ms = excluded.updated_at_ms, header = excluded.header",
            );
            q.build().persistent(false).execute(&mut *tx).await.context("upsert incidents")?;
        }
        for chunk in timeline.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO incident_timeline (incident_id, seq, at_ms, entry) ",
            );
            q.push_values(chunk, |mut r, (id, entry, text)| {
                r.push_bind(*id)
                    .push_bind(i64::from(entry.seq))
                    .push_bind(entry.at.millis())
                    .push_bind(text.as_str());
            });
            q.push(" ON CONFLICT (incident_id, seq) DO NOTHING");
            q.build().persistent(false).execute(&mut *tx).await.context("append timeline")?;
        }
        for chunk in outbox.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO outbox (key, office_id, target_id, state, next_attempt_ms, created_at_ms, record) ",
            );
            q.push_values(chunk, |mut b, (r, text)| {
                b.push_bind(r.key())
                    .push_bind(r.notification.office.as_str())
                    .push_bind(r.notification.target.as_str())
                    .push_bind(r.state.code())
                    .push_bind(r.next_attempt_at().map(|t| t.millis()))
                    .push_bind(r.created_at.millis())
                    .push_bind(text.as_str());
            });
            q.push(" ON CONFLICT (key) DO NOTHING");
            q.build().persistent(false).execute(&mut *tx).await.context("enqueue notifications")?;
        }
        for chunk in batch.feed.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO feed_events (office_id, id, at_ms, data) ",
            );
            q.push_values(chunk, |mut r, f| {
                r.push_bind(f.office.as_str())
                    .push_bind(i64_of(f.id))
                    .push_bind(f.at_ms)
                    .push_bind(f.data.as_str());
            });
            q.push(" ON CONFLICT (office_id, id) DO NOTHING");
            q.build().persistent(false).execute(&mut *tx).await.context("store feed events")?;
        }
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO audit_chain (seq, at_ms, actor, action, incident_id, detail, prev_hash, hash) ",
            );
            q.push_values(chunk, |mut r, e| {
                r.push_bind(i64_of(e.seq))
                    .push_bind(e.at.millis())
                    .push_bind(e.actor.as_str())
                    .push_bind(e.action.as_str())
                    .push_bind(e.incident.as_ref().map(|i| i.as_str()))
                    .push_bind(e.detail.as_str())
                    .push_bind(e.prev_hash.as_str())
                    .push_bind(e.hash.as_str());
            });
            q.build().persistent(false).execute(&mut *tx).await.context("append audit entries")?;
        }
        tx.commit().await.context("commit")?;
    });
    if let Some(last) = entries.pop() {
        *head = Some(last);
    }
    Ok(())
}

/// The newest header of each incident the changes touch, with the time of its
/// last change and its JSON: a statement may not upsert one row twice, and
/// upserting only the last of an incident's changes leaves the row as upserting
/// each in turn would (every column but `opened_at_ms`, which never changes,
/// takes the newest value).
fn newest_headers(
    changes: &[IncidentChange],
) -> anyhow::Result<Vec<(&IncidentHeader, i64, String)>> {
    // Later changes replace earlier ones of the same incident.
    let newest: BTreeMap<&str, &IncidentChange> =
        changes.iter().map(|c| (c.header.id.as_str(), c)).collect();
    newest
        .into_values()
        .map(|c| Ok((&c.header, c.entry.at.millis(), json(&c.header)?)))
        .collect()
}

/// The whole audit chain in order (for `geoward audit verify`).
pub async fn audit_entries(store: &Store) -> anyhow::Result<Vec<AuditEntry>> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_chain ORDER BY seq");
    let rows: Vec<AuditRow> =
        with_pool!(store, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_all(p).await)
        .context("reading the audit chain")?;
    rows.into_iter().map(entry_from_row).collect()
}

/// Last feed event id per office (to continue numbering after a restart).
pub async fn feed_heads(store: &Store) -> anyhow::Result<BTreeMap<OfficeId, u64>> {
    let rows: Vec<(String, i64)> = with_pool!(store, p => sqlx::query_as(
        "SELECT office_id, MAX(id) FROM feed_events GROUP BY office_id"
    ).fetch_all(p).await)
    .context("reading feed heads")?;
    Ok(rows
        .into_iter()
        .map(|(o, id)| (OfficeId(o), u64::try_from(id).unwrap_or(0)))
        .collect())
}

/// Feed events of `office` after `after`, oldest first, at most `limit`.
pub async fn feed_after(
    store: &Store,
    office: &str,
    after: u64,
    limit: i64,
) -> anyhow::Result<Vec<FeedEvent>> {
    let rows: Vec<(i64, i64, String)> = with_pool!(store, p => sqlx::query_as(
        "SELECT id, at_ms, data FROM feed_events WHERE office_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ).bind(office).bind(i64_of(after)).bind(limit).fetch_all(p).await)
    .context("reading the feed")?;
    Ok(rows
        .into_iter()
        .map(|(id, at_ms, data)| FeedEvent {
            office: office.to_owned(),
            id: u64::try_from(id).unwrap_or(0),
            at_ms,
            data,
        })
        .collect())
}

fn parse_header(text: &str) -> anyhow::Result<IncidentHeader> {
    serde_json::from_str(text).context("stored incident header is not valid")
}

/// Incidents someone still has to act on or whose condition still holds, with
/// their timelines: what the engine needs back after a restart.
pub async fn open_incidents(store: &Store) -> anyhow::Result<Vec<Incident>> {
    let headers: Vec<String> = with_pool!(store, p => sqlx::query_scalar(
        "SELECT header FROM incidents WHERE NOT handled OR state IN ('open', 'acknowledged') ORDER BY id"
    ).fetch_all(p).await)
    .context("reading open incidents")?;
    let mut out = Vec::with_capacity(headers.len());
    for h in headers {
        let header = parse_header(&h)?;
        let timeline = timeline(store, header.id.as_str()).await?;
        out.push(Incident { header, timeline });
    }
    Ok(out)
}

/// One incident with its timeline.
pub async fn incident(store: &Store, id: &str) -> anyhow::Result<Option<Incident>> {
    let header: Option<String> = with_pool!(store, p => sqlx::query_scalar(
        "SELECT header FROM incidents WHERE id = $1"
    ).bind(id).fetch_optional(p).await)
    .context("reading incident")?;
    let Some(h) = header else { return Ok(None) };
    Ok(Some(Incident {
        header: parse_header(&h)?,
        timeline: timeline(store, id).await?,
    }))
}

async fn timeline(store: &Store, id: &str) -> anyhow::Result<Vec<TimelineEntry>> {
    let entries: Vec<String> = with_pool!(store, p => sqlx::query_scalar(
        "SELECT entry FROM incident_timeline WHERE incident_id = $1 ORDER BY seq"
    ).bind(id).fetch_all(p).await)
    .context("reading timeline")?;
    entries
        .iter()
        .map(|e| serde_json::from_str(e).context("stored timeline entry is not valid"))
        .collect()
}

/// Filters of the incident list; `None` = any.
#[derive(Debug, Default, Clone)]
pub struct IncidentQuery {
    /// Responsible offices (the caller's scope, intersected with a subtree).
    pub offices: Option<Vec<String>>,
    /// Kind codes.
    pub kinds: Option<Vec<String>>,
    /// State codes.
    pub states: Option<Vec<String>>,
    /// Opened at or after, unix ms.
    pub from_ms: Option<i64>,
    /// Opened before, unix ms.
    pub to_ms: Option<i64>,
    /// Newest first; at most this many.
    pub limit: i64,
}

/// Incident headers matching `q`, newest first.
pub async fn list_incidents(
    store: &Store,
    q: &IncidentQuery,
) -> anyhow::Result<Vec<IncidentHeader>> {
    // Office, kind and state lists are short; filtering them in SQL would need
    // backend-specific array binding, so the time range narrows in SQL and the
    // rest is checked here.
    let rows: Vec<(String, String, String, String)> = with_pool!(store, p => sqlx::query_as(
        "SELECT office_id, kind, state, header FROM incidents WHERE opened_at_ms >= $1 AND opened_at_ms < $2 \
         ORDER BY opened_at_ms DESC, id"
    ).bind(q.from_ms.unwrap_or(i64::MIN)).bind(q.to_ms.unwrap_or(i64::MAX)).fetch_all(p).await)
    .context("listing incidents")?;
    let keep = |list: &Option<Vec<String>>, v: &str| {
        list.as_ref().is_none_or(|l| l.iter().any(|x| x == v))
    };
    let mut out = Vec::new();
    for (office, kind, state, header) in rows {
        if keep(&q.offices, &office) && keep(&q.kinds, &kind) && keep(&q.states, &state) {
            out.push(parse_header(&header)?);
            if out.len() as i64 >= q.limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Outbox records due at `now_ms`, oldest due first.
pub async fn due_outbox(
    store: &Store,
    now_ms: i64,
    limit: i64,
) -> anyhow::Result<Vec<OutboxRecord>> {
    let rows: Vec<String> = with_pool!(store, p => sqlx::query_scalar(
        "SELECT record FROM outbox WHERE next_attempt_ms IS NOT NULL AND next_attempt_ms <= $1 \
         ORDER BY next_attempt_ms LIMIT $2"
    ).bind(now_ms).bind(limit).fetch_all(p).await)
    .context("reading due notifications")?;
    rows.iter()
        .map(|r| serde_json::from_str(r).context("stored outbox record is not valid"))
        .collect()
}

/// Stores an outbox record's new state.
pub async fn save_outbox(store: &Store, r: &OutboxRecord) -> anyhow::Result<()> {
    let record = json(r)?;
    with_pool!(store, p => sqlx::query(
        "UPDATE outbox SET state = $1, next_attempt_ms = $2, record = $3 WHERE key = $4"
    ).bind(r.state.code()).bind(r.next_attempt_at().map(|t| t.millis())).bind(&record).bind(r.key())
    .execute(p).await.map(drop))
    .context("updating notification")?;
    Ok(())
}

/// Outbox records by state code, newest first (`dead` for the dead-letter view).
pub async fn outbox_by_state(
    store: &Store,
    state: &str,
    offices: Option<&[String]>,
    limit: i64,
) -> anyhow::Result<Vec<OutboxRecord>> {
    let rows: Vec<(String, String)> = with_pool!(store, p => sqlx::query_as(
        "SELECT office_id, record FROM outbox WHERE state = $1 ORDER BY created_at_ms DESC"
    ).bind(state).fetch_all(p).await)
    .context("reading outbox")?;
    let mut out = Vec::new();
    for (office, r) in rows {
        if offices.is_none_or(|o| o.contains(&office)) {
            out.push(serde_json::from_str(&r).context("stored outbox record is not valid")?);
            if out.len() as i64 >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Count of outbox records per state (for the metrics gauge).
pub async fn outbox_counts(store: &Store) -> anyhow::Result<Vec<(String, i64)>> {
    with_pool!(store, p => sqlx::query_as(
        "SELECT state, COUNT(*) FROM outbox GROUP BY state"
    ).fetch_all(p).await)
    .context("counting outbox")
}
