//! The JSON admin API under `/api`, scoped by office.
//!
//! Every request carries `Authorization: Bearer <token>`. Tokens are stored as
//! SHA-256 digests and belong to an office: an `officer` sees the subjects of that
//! office, a `bureau` its subtree, an `admin` everything. Anything outside the
//! caller's scope answers 404, exactly as if it did not exist, so the API does not
//! reveal which ids other offices use. Every read of a subject's locations by a
//! person is written to the audit log first (Community Corrections Law art. 61):
//! no audit row, no data.

use std::collections::HashSet;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::http::AppState;
use crate::store::{Store, Ts};
use crate::with_pool;

/// The one error type of the API; database details are logged, never sent.
#[derive(Debug)]
pub enum ApiError {
    /// No or unknown token.
    Unauthorized,
    /// Authenticated but not allowed.
    Forbidden,
    /// Absent or outside the caller's scope.
    NotFound,
    /// Invalid input; the message names the field.
    BadRequest(String),
    /// Conflicts with existing data (duplicate id, referenced row).
    Conflict,
    /// Something broke on our side.
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "missing or unknown api token".to_owned(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "not allowed for this token".to_owned(),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Conflict => (
                StatusCode::CONFLICT,
                "conflicts with existing data".to_owned(),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            ),
        };
        (status, Json(json!({ "error": msg }))).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(d) = &e
            && (d.is_unique_violation() || d.is_foreign_key_violation() || d.is_check_violation())
        {
            return ApiError::Conflict;
        }
        tracing::error!(error = %e, "database error in api");
        ApiError::Internal
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{e:#}"), "error in api");
        ApiError::Internal
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Roles of API tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees one office.
    Officer,
    /// Sees an office subtree.
    Bureau,
    /// Sees everything.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Bureau => "bureau",
            Role::Admin => "admin",
        }
    }

    /// The role of a stored name, `None` for anything else.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "officer" => Some(Role::Officer),
            "bureau" => Some(Role::Bureau),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token name (a person or system), written to the audit log.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Office the token belongs to (none for admins).
    pub office_id: Option<String>,
    /// Offices visible to the caller; `None` = all.
    pub scope: Option<HashSet<String>>,
}

impl Principal {
    /// `role:name`, how the caller appears in the audit log and on timelines.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.name)
    }

    /// True when the caller may see `office`.
    pub fn sees(&self, office: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(office))
    }
}

fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates an API token and returns it (shown once; only its digest is stored).
pub async fn create_token(
    store: &Store,
    name: &str,
    role: Role,
    office_id: Option<&str>,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        role == Role::Admin || office_id.is_some(),
        "officer and bureau tokens need an office"
    );
    let token = format!(
        "gw_{}{}",
        crate::auth::generate_secret(),
        crate::auth::generate_secret()
    );
    let digest = token_digest(&token);
    let now = Ts(Utc::now());
    with_pool!(store, p => sqlx::query(
        "INSERT INTO api_tokens (token_hash, name, role, office_id, created_at) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(&digest).bind(name).bind(role.as_str()).bind(office_id).bind(now)
    .execute(p).await.map(drop))?;
    Ok(token)
}

/// The name, role and office of an API token; `None` when no such token
/// exists (or its stored role is unknown).
pub(crate) async fn lookup_token(
    store: &Store,
    token: &str,
) -> Result<Option<(String, Role, Option<String>)>, sqlx::Error> {
    let digest = token_digest(token.trim());
    let row: Option<(String, String, Option<String>)> = with_pool!(store, p => sqlx::query_as(
        "SELECT name, role, office_id FROM api_tokens WHERE token_hash = $1"
    ).bind(&digest).fetch_optional(p).await)?;
    Ok(row.and_then(|(name, role, office)| Some((name, Role::parse(&role)?, office))))
}

pub(crate) async fn subtree(store: &Store, root: &str) -> Result<HashSet<String>, sqlx::Error> {
    let sql = "WITH RECURSIVE sub(id) AS (SELECT id FROM offices WHERE id = $1 \
               UNION SELECT o.id FROM offices o JOIN sub ON o.parent_id = sub.id) SELECT id FROM sub";
    let rows: Vec<String> =
        with_pool!(store, p => sqlx::query_scalar(sql).bind(root).fetch_all(p).await)?;
    Ok(rows.into_iter().collect())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let (name, role, office_id) = lookup_token(&state.store, token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let scope = match (role, &office_id) {
            (Role::Admin, _) => None,
            (Role::Officer, Some(o)) => Some(HashSet::from([o.clone()])),
            (Role::Bureau, Some(o)) => Some(subtree(&state.store, o).await?),
            (_, None) => Some(HashSet::new()),
        };
        Ok(Principal {
            name,
            role,
            office_id,
            scope,
        })
    }
}

/// The `/api` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/offices", get(list_offices).post(create_office))
        .route("/api/subjects", get(list_subjects).post(create_subject))
        .route(
            "/api/subjects/{id}",
            get(get_subject).put(update_subject).delete(delete_subject),
        )
        .route("/api/subjects/{id}/track", get(track))
        .route(
            "/api/subjects/{id}/orders",
            get(list_orders).post(create_order),
        )
        .route(
            "/api/subjects/{id}/rules",
            get(list_rules).post(create_rule),
        )
        .route(
            "/api/subjects/{id}/leave-permits",
            get(list_leaves).post(create_leave),
        )
        .route(
            "/api/subjects/{id}/devices",
            get(list_devices).post(create_device),
        )
        .route("/api/zones", get(list_zones).post(create_zone))
}

async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

pub(crate) fn bad(field: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!("{field}: {why}"))
}

fn check_id(field: &str, id: &str) -> ApiResult<()> {
    geoward_proto::ids::validate_id(id).map_err(|e| bad(field, &e.to_string()))
}

/// The office of a subject, if the subject exists and the caller sees it.
async fn visible_subject_office(
    store: &Store,
    who: &Principal,
    subject: &str,
) -> ApiResult<String> {
    let office: Option<String> = with_pool!(store, p => sqlx::query_scalar(
        "SELECT office_id FROM subjects WHERE id = $1"
    ).bind(subject).fetch_optional(p).await)?;
    match office {
        Some(o) if who.sees(&o) => Ok(o),
        _ => Err(ApiError::NotFound),
    }
}

pub(crate) fn audit_now() -> Ts {
    Ts(Utc::now())
}

/// Writes an audit entry for a person's action, before the data is returned or
/// after the change is stored, into the hash-chained audit log. Changes to the
/// registry also make the decision engines reload.
pub(crate) async fn audit(
    s: &AppState,
    who: &Principal,
    action: &str,
    subject: Option<&str>,
    mut detail: Value,
) -> ApiResult<()> {
    if let (Some(subject), Some(map)) = (subject, detail.as_object_mut()) {
        map.insert("subject".into(), json!(subject));
    }
    let actor = who.actor();
    s.audit
        .append(
            &s.store,
            crate::monitor::api_audit_event(&actor, action, detail),
        )
        .await?;
    if !action.ends_with(".read") {
        s.monitor.reload.notify_one();
    }
    Ok(())
}

// ---- offices ----

#[derive(Debug, Serialize, Deserialize)]
struct Office {
    id: String,
    parent_id: Option<String>,
    name: String,
    kind: String,
}
crate::from_row!(Office: id, parent_id, name, kind);

async fn list_offices(State(s): State<AppState>, who: Principal) -> ApiResult<Json<Vec<Office>>> {
    let all: Vec<Office> = with_pool!(&s.store, p => sqlx::query_as(
        "SELECT id, parent_id, name, kind FROM offices ORDER BY id"
    ).fetch_all(p).await)?;
    Ok(Json(all.into_iter().filter(|o| who.sees(&o.id)).collect()))
}

async fn create_office(
    State(s): State<AppState>,
    who: Principal,
    Json(o): Json<Office>,
) -> ApiResult<StatusCode> {
    check_id("id", &o.id)?;
    if !matches!(
        o.kind.as_str(),
        "city_bureau" | "county_bureau" | "justice_office"
    ) {
        return Err(bad(
            "kind",
            "must be city_bureau, county_bureau or justice_office",
        ));
    }
    match (&o.parent_id, who.role) {
        (_, Role::Admin) => {}
        (Some(parent), Role::Bureau) if who.sees(parent) => {}
        _ => return Err(ApiError::Forbidden),
    }
    with_pool!(&s.store, p => sqlx::query(
        "INSERT INTO offices (id, parent_id, name, kind, created_at) VALUES ($1, $2, $3, $4, $5)"
    ).bind(&o.id).bind(&o.parent_id).bind(&o.name).bind(&o.kind).bind(audit_now()).execute(p).await.map(drop))?;
    audit(&s, &who, "office.create", None, json!({ "office": o.id })).await?;
    Ok(StatusCode::CREATED)
}

// ---- subjects ----

#[derive(Debug, Serialize, Deserialize)]
struct Subject {
    id: String,
    office_id: String,
    name: String,
    supervision_level: String,
    /// How often the subject's devices report when all is well, seconds (lost
    /// contact is judged against it).
    #[serde(default = "default_interval_s")]
    expected_interval_s: i64,
}
crate::from_row!(Subject: id, office_id, name, supervision_level, expected_interval_s);

fn default_interval_s() -> i64 {
    60
}

fn check_level(level: &str) -> ApiResult<()> {
    if matches!(level, "strict" | "normal" | "lenient") {
        Ok(())
    } else {
        Err(bad(
            "supervision_level",
            "must be strict, normal or lenient",
        ))
    }
}

async fn list_subjects(State(s): State<AppState>, who: Principal) -> ApiResult<Json<Vec<Subject>>> {
    let all: Vec<Subject> = with_pool!(&s.store, p => sqlx::query_as(
        "SELECT id, office_id, name, supervision_level, expected_interval_s FROM subjects ORDER BY id"
    ).fetch_all(p).await)?;
    Ok(Json(
        all.into_iter().filter(|x| who.sees(&x.office_id)).collect(),
    ))
}

async fn create_subject(
    State(s): State<AppState>,
    who: Principal,
    Json(x): Json<Subject>,
) -> ApiResult<StatusCode> {
    check_id("id", &x.id)?;
    check_level(&x.supervision_level)?;
    if !(1..=86_400).contains(&x.expected_interval_s) {
        return Err(bad("expected_interval_s", "must be 1..=86400 seconds"));
    }
    if !who.sees(&x.office_id) {
        return Err(ApiError::Forbidden);
    }
    with_pool!(&s.store, p => sqlx::query(
        "INSERT INTO subjects (id, office_id, name, supervision_level, expected_interval_s, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
    ).bind(&x.id).bind(&x.office_id).bind(&x.name).bind(&x.supervision_level).bind(x.expected_interval_s).bind(audit_now())
    .execute(p).await.map(drop))?;
    audit(&s, &who, "subject.create", Some(&x.id), json!({})).await?;
    Ok(StatusCode::CREATED)
}

async fn get_subject(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Subject>> {
    visible_subject_office(&s.store, &who, &id).await?;
    let x: Subject = with_pool!(&s.store, p => sqlx::query_as(
        "SELECT id, office_id, name, supervision_level, expected_interval_s FROM subjects WHERE id = $1"
    ).bind(&id).fetch_one(p).await)?;
    Ok(Json(x))
}

#[derive(Debug, Deserialize)]
struct SubjectUpdate {
    office_id: Option<String>,
    name: Option<String>,
    supervision_level: Option<String>,
}

async fn update_subject(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(u): Json<SubjectUpdate>,
) -> ApiResult<StatusCode> {
    visible_subject_office(&s.store, &who, &id).await?;
    if let Some(o) = &u.office_id
        && !who.sees(o)
    {
        return Err(ApiError::Forbidden);
    }
    if let Some(l) = &u.supervision_level {
        check_level(l)?;
    }
    with_pool!(&s.store, p => sqlx::query(
        "UPDATE subjects SET office_id = COALESCE($1, office_id), name = COALESCE($2, name), \
         supervision_level = COALESCE($3, supervision_level) WHERE id = $4"
    ).bind(&u.office_id).bind(&u.name).bind(&u.supervision_level).bind(&id).execute(p).await.map(drop))?;
    audit(&s, &who, "subject.update", Some(&id), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_subject(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    visible_subject_office(&s.store, &who, &id).await?;
    with_pool!(&s.store, p => sqlx::query("DELETE FROM subjects WHERE id = $1").bind(&id).execute(p).await.map(drop))?;
    audit(&s, &who, "subject.delete", Some(&id), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- track ----

#[derive(Debug, Deserialize)]
struct TrackQuery {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: Option<u32>,
    /// Opaque cursor from the previous page's `next`.
    after: Option<String>,
}

#[derive(Debug, Serialize)]
struct TrackPoint {
    device_id: String,
    seq: i64,
    time: DateTime<Utc>,
    lat: f64,
    lon: f64,
    accuracy_m: Option<f32>,
    source: String,
}

fn parse_cursor(c: &str) -> ApiResult<(DateTime<Utc>, String, i64)> {
    let mut it = c.splitn(3, '_');
    let (Some(t), Some(s), Some(d)) = (it.next(), it.next(), it.next()) else {
        return Err(bad("after", "malformed cursor"));
    };
    let micros: i64 = t.parse().map_err(|_| bad("after", "malformed cursor"))?;
    let seq: i64 = s.parse().map_err(|_| bad("after", "malformed cursor"))?;
    let time =
        DateTime::from_timestamp_micros(micros).ok_or_else(|| bad("after", "malformed cursor"))?;
    Ok((time, d.to_owned(), seq))
}

async fn track(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Query(q): Query<TrackQuery>,
) -> ApiResult<Json<Value>> {
    visible_subject_office(&s.store, &who, &id).await?;
    if q.to <= q.from {
        return Err(bad("to", "must be after from"));
    }
    let limit = i64::from(q.limit.unwrap_or(1000).clamp(1, 10_000));
    let (after_t, after_d, after_s) = match &q.after {
        Some(c) => parse_cursor(c)?,
        None => (
            q.from - chrono::Duration::microseconds(1),
            String::new(),
            i64::MIN,
        ),
    };
    // Art. 61: the read is logged before any location leaves the service.
    audit(
        &s,
        &who,
        "track.read",
        Some(&id),
        json!({ "from": q.from, "to": q.to, "after": q.after }),
    )
    .await?;
    // Only fixes taken under one of the subject's orders: anything else has
    // no legal basis and is not shown as the subject's whereabouts.
    let sql = "SELECT f.device_id, f.seq, f.fix_time, f.lat, f.lon, f.accuracy_m, f.source FROM fixes f \
               JOIN devices d ON d.id = f.device_id WHERE d.subject_id = $1 AND f.fix_time >= $2 AND f.fix_time < $3 \
               AND EXISTS (SELECT 1 FROM monitoring_orders o WHERE o.subject_id = d.subject_id \
                           AND o.starts_at <= f.fix_time AND f.fix_time < o.ends_at) \
               AND (f.fix_time > $4 OR (f.fix_time = $4 AND (f.device_id > $5 OR (f.device_id = $5 AND f.seq > $6)))) \
               ORDER BY f.fix_time, f.device_id, f.seq LIMIT $7";
    let points: Vec<TrackPoint> = with_pool!(&s.store, p => {
        let rows = sqlx::query(sql)
            .bind(&id).bind(Ts(q.from)).bind(Ts(q.to)).bind(Ts(after_t)).bind(&after_d).bind(after_s).bind(limit)
            .fetch_all(p).await?;
        rows.into_iter().map(|r| Ok(TrackPoint {
            device_id: r.try_get(0)?,
            seq: r.try_get(1)?,
            time: r.try_get(2)?,
            lat: r.try_get(3)?,
            lon: r.try_get(4)?,
            accuracy_m: r.try_get(5)?,
            source: r.try_get(6)?,
        })).collect::<Result<Vec<_>, sqlx::Error>>()
    })?;
    let next = if points.len() as i64 == limit {
        points
            .last()
            .map(|l| format!("{}_{}_{}", l.time.timestamp_micros(), l.seq, l.device_id))
    } else {
        None
    };
    Ok(Json(
        json!({ "subject_id": id, "points": points, "next": next }),
    ))
}

// ---- orders, rules, leave permits, devices, zones ----

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: String,
    legal_basis: String,
    approver: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    renews_order_id: Option<String>,
}
crate::from_row!(Order: id, legal_basis, approver, starts_at, ends_at, renews_order_id);

async fn list_orders(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Order>>> {
    visible_subject_office(&s.store, &who, &id).await?;
    let v: Vec<Order> = with_pool!(&s.store, p => sqlx::query_as(
        "SELECT id, legal_basis, approver, starts_at, ends_at, renews_order_id FROM monitoring_orders \
         WHERE subject_id = $1 ORDER BY starts_at"
    ).bind(&id).fetch_all(p).await)?;
    Ok(Json(v))
}

async fn create_order(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(o): Json<Order>,
) -> ApiResult<StatusCode> {
    visible_subject_office(&s.store, &who, &id).await?;
    check_id("id", &o.id)?;
    if o.ends_at <= o.starts_at {
        return Err(bad("ends_at", "must be after starts_at"));
    }
    if o.ends_at - o.starts_at > chrono::Duration::days(92) {
        return Err(bad(
            "ends_at",
            "an order lasts at most 3 months (art. 29); renew it with a new order",
        ));
    }
    if !matches!(
        o.legal_basis.as_str(),
        "prohibition_order"
            | "absconding"
            | "warned_leaving_area"
            | "warned_violation"
            | "own_request"
    ) {
        return Err(bad(
            "legal_basis",
            "must be one of the five reasons of art. 29",
        ));
    }
    with_pool!(&s.store, p => sqlx::query(
        "INSERT INTO monitoring_orders (id, subject_id, legal_basis, approver, starts_at, ends_at, renews_order_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ).bind(&o.id).bind(&id).bind(&o.legal_basis).bind(&o.approver).bind(Ts(o.starts_at)).bind(Ts(o.ends_at))
    .bind(&o.renews_order_id).bind(audit_now()).execute(p).await.map(drop))?;
    audit(
        &s,
        &who,
        "order.create",
        Some(&id),
        json!({ "order": o.id }),
    )
    .await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Serialize, Deserialize)]
struct Rule {
    id: String,
    kind: String,
    zone_id: String,
    params: String,
}
crate::from_row!(Rule: id, kind, zone_id, params);

async fn list_rules(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Rule>>> {
    visible_subject_office(&s.store, &who, &id).await?;
    let v: Vec<Rule> = with_pool!(&s.store, p => sqlx::query_as(
        "SELECT id, kind, zone_id, params FROM subject_rules WHERE subject_id = $1 ORDER BY id"
    ).bind(&id).fetch_all(p).await)?;
    Ok(Json(v))
}

async fn create_rule(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(r): Json<Rule>,
) -> ApiResult<StatusCode> {
    visible_subject_office(&s.store, &who, &id).await?;
    check_id("id", &r.id)?;
    if !matches!(r.kind.as_str(), "stay_inside" | "keep_out" | "curfew") {
        return Err(bad("kind", "must be stay_inside, keep_out or curfew"));
    }
    serde_json::from_str::<Value>(&r.params)
        .map_err(|_| bad("params", "must be a json document"))?;
    crate::monitor::world::check_rule_params(&r.kind, &r.params).map_err(|e| bad("params", &e))?;
    with_pool!(&s.store, p => sqlx::query(
        "INSERT INTO subject_rules (id, subject_id, kind, zone_id, params, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
    ).bind(&r.id).bind(&id).bind(&r.kind).bind(&r.zone_id).bind(&r.params).bind(audit_now()).execute(p).await.map(drop))?;
    audit(&s, &who, "rule.create", Some(&id), json!({ "rule": r.id })).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Serialize, Deserialize)]
struct Leave {
    id: String,
    destination_zone_id: Option<String>,
    suspends_rule_id: Option<String>,
    approver: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}
crate::from_row!(Leave: id, destination_zone_id, suspends_rule_id, approver, starts_at, ends_at);

async fn list_leaves(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Leave>>> {
    visible_subject_office(&s.store, &who, &id).await?;
    let v: Vec<Leave> = with_pool!(&s.store, p => sqlx::query_as(
        "SELECT id, destination_zone_id, suspends_rule_id, approver, starts_at, ends_at FROM leave_permits \
         WHERE subject_id = $1 ORDER BY starts_at"
    ).bind(&id).fetch_all(p).await)?;
    Ok(Json(v))
}

async fn create_leave(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(l): Json<Leave>,
) -> ApiResult<StatusCode> {
    visible_subject_office(&s.store, &who, &id).await?;
    check_id("id", &l.id)?;
    if l.ends_at <= l.starts_at {
        return Err(bad("ends_at", "must be after starts_at"));
    }
    with_pool!(&s.store, p => sqlx::query(
        "INSERT INTO leave_permits (id, subject_id, destination_zone_id, suspends_rule_id, approver, starts_at, ends_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ).bind(&l.id).bind(&id).bind(&l.destination_zone_id).bind(&l.suspends_rule_id).bind(&l.approver)
    .bind(Ts(l.starts_at)).bind(Ts(l.ends_at)).bind(audit_now()).execute(p).await.map(drop))?;
    audit(
        &s,
        &who,
        "leave.create",
        Some(&id),
        json!({ "leave": l.id }),
    )
    .await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Serialize)]
struct DeviceInfo {
    id: String,
    kind: String,
}
crate::from_row!(DeviceInfo: id, kind);

async fn list_devices(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DeviceInfo>>> {
    visible_subject_office(&s.store, &who, &id).await?;
    let v: Vec<DeviceInfo> = with_pool!(&s.store, p => sqlx::query_as(
        "SELECT id, kind FROM devices WHERE subject_id = $1 ORDER BY id"
    ).bind(&id).fetch_all(p).await)?;
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
struct NewDeviceBody {
    id: String,
    kind: String,
}

async fn create_device(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(d): Json<NewDeviceBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    visible_subject_office(&s.store, &who, &id).await?;
    geoward_proto::TenantId::new(&d.id).map_err(|e| bad("id", &e.to_string()))?;
    if !matches!(d.kind.as_str(), "bracelet" | "phone") {
        return Err(bad("kind", "must be bracelet or phone"));
    }
    let exists: Option<String> = with_pool!(&s.store, p => sqlx::query_scalar("SELECT id FROM devices WHERE id = $1")
        .bind(&d.id).fetch_optional(p).await)?;
    if exists.is_some() {
        return Err(ApiError::Conflict);
    }
    let c = crate::cli::add_device(&s.store, &d.id, &d.kind, Some(&id)).await?;
    audit(
        &s,
        &who,
        "device.create",
        Some(&id),
        json!({ "device": d.id }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "device_id": c.device_id, "mqtt_password": c.password, "payload_key_hex": c.payload_key }),
        ),
    ))
}

#[derive(Debug, Serialize, Deserialize)]
struct Zone {
    id: String,
    office_id: String,
    name: String,
    kind: String,
    geojson: String,
}
crate::from_row!(Zone: id, office_id, name, kind, geojson);

async fn list_zones(State(s): State<AppState>, who: Principal) -> ApiResult<Json<Vec<Zone>>> {
    let all: Vec<Zone> = with_pool!(&s.store, p => sqlx::query_as(
        "SELECT id, office_id, name, kind, geojson FROM zones ORDER BY id"
    ).fetch_all(p).await)?;
    Ok(Json(
        all.into_iter().filter(|z| who.sees(&z.office_id)).collect(),
    ))
}

async fn create_zone(
    State(s): State<AppState>,
    who: Principal,
    Json(z): Json<Zone>,
) -> ApiResult<StatusCode> {
    check_id("id", &z.id)?;
    if !who.sees(&z.office_id) {
        return Err(ApiError::Forbidden);
    }
    if !matches!(
        z.kind.as_str(),
        "permitted" | "exclusion" | "home" | "leave"
    ) {
        return Err(bad("kind", "must be permitted, exclusion, home or leave"));
    }
    check_zone_geometry(&z)?;
    with_pool!(&s.store, p => sqlx::query(
        "INSERT INTO zones (id, office_id, name, kind, geojson, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
    ).bind(&z.id).bind(&z.office_id).bind(&z.name).bind(&z.kind).bind(&z.geojson).bind(audit_now())
    .execute(p).await.map(drop))?;
    audit(&s, &who, "zone.create", None, json!({ "zone": z.id })).await?;
    Ok(StatusCode::CREATED)
}

/// Imports the zone alone through the zone engine: what the engine would reject
/// is refused here, with the defect named, instead of being stored and ignored.
fn check_zone_geometry(z: &Zone) -> ApiResult<()> {
    let row = crate::monitor::world::ZoneRow {
        id: z.id.clone(),
        kind: z.kind.clone(),
        geojson: z.geojson.clone(),
    };
    let feature = crate::monitor::world::zone_feature(&row).map_err(|e| bad("geojson", &e))?;
    let doc = json!({ "type": "FeatureCollection", "features": [feature] });
    let (_, report) =
        geoward_geofence::import_value(&doc).map_err(|e| bad("geojson", &e.to_string()))?;
    if let Some(d) = report.defects.first() {
        return Err(bad("geojson", &d.to_string()));
    }
    Ok(())
}
