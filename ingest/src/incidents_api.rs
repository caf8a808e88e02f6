//! The duty officers' side of the API: incidents (list, detail, acknowledge, note,
//! resolve, reassign), the live feed per office (Server-Sent Events, resumable
//! with `Last-Event-ID`), delivery targets per office and the dead-letter view of
//! the outbox. Scoped like the rest of the API: an incident is visible to whoever
//! sees its responsible office.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use geoward_alerting::incident::{Incident, IncidentHeader};
use geoward_alerting::{IncidentId, OfficerId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::api::{ApiError, ApiResult, Principal, Role, audit, bad, subtree};
use crate::http::AppState;
use crate::monitor::{Action, ActionFailure};
use crate::store::alerts::{self, FeedEvent, IncidentQuery};
use crate::with_pool;

/// The incident, feed, target and outbox routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/incidents", get(list))
        .route("/api/incidents/{id}", get(detail))
        .route("/api/incidents/{id}/acknowledge", post(acknowledge))
        .route("/api/incidents/{id}/notes", post(note))
        .route("/api/incidents/{id}/resolve", post(resolve))
        .route("/api/incidents/{id}/reassign", post(reassign))
        .route("/api/feed", get(feed))
        .route(
            "/api/offices/{id}/targets",
            get(list_targets).post(create_target),
        )
        .route("/api/outbox", get(list_outbox))
        .route("/api/outbox/requeue", post(requeue))
}

fn officer(who: &Principal) -> OfficerId {
    OfficerId(who.actor())
}

fn csv(v: &Option<String>) -> Option<Vec<String>> {
    v.as_ref().map(|s| {
        s.split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect()
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// Root of the office subtree to list (default: everything the caller sees).
    office: Option<String>,
    /// Comma-separated kind codes.
    kind: Option<String>,
    /// Comma-separated state codes (`open`, `acknowledged`, `cleared`, `resolved`).
    state: Option<String>,
    /// Opened at or after (RFC 3339).
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Opened before (RFC 3339).
    to: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

async fn list(
    State(s): State<AppState>,
    who: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<IncidentHeader>>> {
    if let Some(k) = &q.kind {
        geoward_alerting::query::parse_kinds(k).map_err(|e| bad("kind", &e.to_string()))?;
    }
    if let Some(st) = &q.state {
        geoward_alerting::query::parse_states(st).map_err(|e| bad("state", &e.to_string()))?;
    }
    let mut offices: Option<Vec<String>> = who.scope.as_ref().map(|s| s.iter().cloned().collect());
    if let Some(root) = &q.office {
        if !who.sees(root) {
            return Err(ApiError::NotFound);
        }
        let sub = subtree(&s.store, root).await?;
        offices = Some(match offices {
            Some(o) => o.into_iter().filter(|x| sub.contains(x)).collect(),
            None => sub.into_iter().collect(),
        });
    }
    let query = IncidentQuery {
        offices,
        kinds: csv(&q.kind),
        states: csv(&q.state),
        from_ms: q.from.map(|t| t.timestamp_millis()),
        to_ms: q.to.map(|t| t.timestamp_millis()),
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(Json(alerts::list_incidents(&s.store, &query).await?))
}

/// The incident if the caller sees its responsible office.
async fn visible(s: &AppState, who: &Principal, id: &str) -> ApiResult<Incident> {
    match alerts::incident(&s.store, id).await? {
        Some(i) if who.sees(i.header.office.as_str()) => Ok(i),
        _ => Err(ApiError::NotFound),
    }
}

async fn detail(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Incident>> {
    let incident = visible(&s, &who, &id).await?;
    // The timeline carries positions: reading it is a read of location data.
    audit(
        &s,
        &who,
        "incident.read",
        Some(incident.header.subject.as_str()),
        json!({ "incident": id }),
    )
    .await?;
    Ok(Json(incident))
}

fn action_error(e: ActionFailure) -> ApiError {
    match e {
        ActionFailure::Refused(r) => ApiError::BadRequest(format!("{}: {r}", r.reason())),
        ActionFailure::Unknown => ApiError::NotFound,
        ActionFailure::Unavailable(why) => {
            tracing::warn!(why, "incident action failed");
            ApiError::Internal
        }
    }
}

async fn act(
    s: &AppState,
    who: &Principal,
    id: &str,
    action: Action,
) -> ApiResult<Json<IncidentHeader>> {
    visible(s, who, id).await?;
    s.monitor
        .act(IncidentId(id.to_owned()), officer(who), action)
        .await
        .map(Json)
        .map_err(action_error)
}

async fn acknowledge(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentHeader>> {
    act(&s, &who, &id, Action::Acknowledge).await
}

#[derive(Debug, Deserialize)]
struct NoteBody {
    text: String,
}

async fn note(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(b): Json<NoteBody>,
) -> ApiResult<Json<IncidentHeader>> {
    act(&s, &who, &id, Action::Note(b.text)).await
}

#[derive(Debug, Deserialize)]
struct ResolveBody {
    note: String,
}

async fn resolve(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(b): Json<ResolveBody>,
) -> ApiResult<Json<IncidentHeader>> {
    act(&s, &who, &id, Action::Resolve(b.note)).await
}

#[derive(Debug, Deserialize)]
struct ReassignBody {
    office_id: String,
    note: String,
}

async fn reassign(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(b): Json<ReassignBody>,
) -> ApiResult<Json<IncidentHeader>> {
    if !who.sees(&b.office_id) {
        return Err(ApiError::Forbidden);
    }
    let action = Action::Reassign {
        to: b.office_id,
        note: b.note,
    };
    act(&s, &who, &id, action).await
}

// ---- live feed ----

#[derive(Debug, Deserialize)]
struct FeedQuery {
    /// The office whose feed to follow (default: the token's office).
    office: Option<String>,
    /// Resume after this event id (browsers send the `Last-Event-ID` header instead).
    last_event_id: Option<String>,
}

/// Events fetched from the database per step of a resuming reader.
const REPLAY_PAGE: i64 = 500;

struct FeedState {
    s: AppState,
    office: String,
    last: u64,
    backlog: VecDeque<FeedEvent>,
    /// True when the database may hold events after `last` not yet in `backlog`.
    behind: bool,
    live: broadcast::Receiver<FeedEvent>,
    _client: ClientGauge,
}

/// Counts a connected feed client for as long as its stream lives.
struct ClientGauge(prometheus::IntGauge);

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn feed(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Query(q): Query<FeedQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let office = q
        .office
        .or_else(|| who.office_id.clone())
        .ok_or_else(|| bad("office", "required for tokens without an office"))?;
    if !who.sees(&office) {
        return Err(ApiError::NotFound);
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id);
    let last = match resume {
        Some(v) => geoward_alerting::sse::parse_last_event_id(&v)
            .map_err(|e| bad("last-event-id", &e.to_string()))?,
        None => 0,
    };
    // Subscribe before reading the backlog so nothing falls between the two.
    let live = s.monitor.feed.subscribe();
    s.metrics.feed_clients.inc();
    let state = FeedState {
        _client: ClientGauge(s.metrics.feed_clients.clone()),
        s,
        office,
        last,
        backlog: VecDeque::new(),
        behind: true,
        live,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(ev) = st.backlog.pop_front() {
                st.last = ev.id;
                let frame = Event::default()
                    .id(ev.id.to_string())
                    .event(geoward_alerting::sse::INCIDENT_EVENT)
                    .data(ev.data);
                return Some((Ok(frame), st));
            }
            if st.behind {
                match alerts::feed_after(&st.s.store, &st.office, st.last, REPLAY_PAGE).await {
                    Ok(page) => {
                        st.behind = page.len() as i64 == REPLAY_PAGE;
                        st.backlog.extend(page);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "feed replay failed; closing the stream");
                        return None;
                    }
                }
            }
            let stop = st.s.stop.clone();
            let received = tokio::select! {
                _ = stop.cancelled() => return None,
                r = st.live.recv() => r,
            };
            match received {
                Ok(ev) if ev.office == st.office && ev.id > st.last => {
                    if ev.id == st.last + 1 {
                        st.backlog.push_back(ev);
                    } else {
                        // A gap: read the missing events from the database.
                        st.behind = true;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => st.behind = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

// ---- delivery targets ----

#[derive(Debug, Serialize, Deserialize)]
struct Target {
    id: String,
    /// `webhook` or `mqtt`.
    kind: String,
    /// `duty` or `police_liaison`.
    role: String,
    /// Webhook URL.
    url: Option<String>,
    /// Webhook signing secret; write-only (never returned).
    #[serde(default, skip_serializing)]
    secret: Option<String>,
}
crate::from_row!(Target: id, kind, role, url, secret);

async fn list_targets(
    State(s): State<AppState>,
    who: Principal,
    Path(office): Path<String>,
) -> ApiResult<Json<Vec<Target>>> {
    if !who.sees(&office) {
        return Err(ApiError::NotFound);
    }
    let v: Vec<Target> = with_pool!(&s.store, p => sqlx::query_as(
        "SELECT id, kind, role, url, NULL AS secret FROM delivery_targets WHERE office_id = $1 ORDER BY id"
    ).bind(&office).fetch_all(p).await)?;
    Ok(Json(v))
}

async fn create_target(
    State(s): State<AppState>,
    who: Principal,
    Path(office): Path<String>,
    Json(t): Json<Target>,
) -> ApiResult<StatusCode> {
    if !who.sees(&office) {
        return Err(ApiError::NotFound);
    }
    if who.role == Role::Officer {
        return Err(ApiError::Forbidden);
    }
    geoward_proto::ids::validate_id(&t.id).map_err(|e| bad("id", &e.to_string()))?;
    match t.kind.as_str() {
        "webhook" => {
            let url = t.url.as_deref().unwrap_or("");
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(bad("url", "a webhook needs an http(s) url"));
            }
            if t.secret.as_deref().is_none_or(|x| x.len() < 16) {
                return Err(bad(
                    "secret",
                    "a webhook needs a signing secret of at least 16 characters",
                ));
            }
        }
        "mqtt" => {}
        _ => return Err(bad("kind", "must be webhook or mqtt")),
    }
    if !matches!(t.role.as_str(), "duty" | "police_liaison") {
        return Err(bad("role", "must be duty or police_liaison"));
    }
    with_pool!(&s.store, p => sqlx::query(
        "INSERT INTO delivery_targets (id, office_id, kind, role, url, secret) VALUES ($1, $2, $3, $4, $5, $6)"
    ).bind(&t.id).bind(&office).bind(&t.kind).bind(&t.role).bind(&t.url).bind(&t.secret)
    .execute(p).await.map(drop))?;
    audit(
        &s,
        &who,
        "target.create",
        None,
        json!({ "office": office, "target": t.id }),
    )
    .await?;
    Ok(StatusCode::CREATED)
}

// ---- outbox ----

#[derive(Debug, Deserialize)]
struct OutboxQuery {
    /// `pending`, `in_flight`, `delivered` or `dead` (default `dead`).
    state: Option<String>,
    limit: Option<i64>,
}

async fn list_outbox(
    State(s): State<AppState>,
    who: Principal,
    Query(q): Query<OutboxQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let state = q.state.unwrap_or_else(|| "dead".to_owned());
    if !matches!(
        state.as_str(),
        "pending" | "in_flight" | "delivered" | "dead"
    ) {
        return Err(bad(
            "state",
            "must be pending, in_flight, delivered or dead",
        ));
    }
    let offices: Option<Vec<String>> = who.scope.as_ref().map(|s| s.iter().cloned().collect());
    let records = alerts::outbox_by_state(
        &s.store,
        &state,
        offices.as_deref(),
        q.limit.unwrap_or(100).clamp(1, 1000),
    )
    .await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| {
                json!({
                    "key": r.key(),
                    "office": r.notification.office,
                    "target": r.notification.target,
                    "state": r.state,
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                    "incident": r.notification.payload.incident.id,
                })
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
struct RequeueQuery {
    key: String,
}

async fn requeue(
    State(s): State<AppState>,
    who: Principal,
    Query(q): Query<RequeueQuery>,
) -> ApiResult<StatusCode> {
    if who.role == Role::Officer {
        return Err(ApiError::Forbidden);
    }
    let office: Option<String> = with_pool!(&s.store, p => sqlx::query_scalar(
        "SELECT office_id FROM outbox WHERE key = $1"
    ).bind(&q.key).fetch_optional(p).await)?;
    match office {
        Some(o) if who.sees(&o) => {}
        _ => return Err(ApiError::NotFound),
    }
    if !crate::delivery::requeue(&s.store, &q.key).await? {
        return Err(bad("key", "only dead notifications can be requeued"));
    }
    audit(&s, &who, "outbox.requeue", None, json!({ "key": q.key })).await?;
    Ok(StatusCode::NO_CONTENT)
}
