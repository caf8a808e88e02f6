//! The HTTP side: health, readiness, `/metrics` and the admin API (`api.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::store::Store;

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Metrics to render.
    pub metrics: Metrics,
    /// Set once the broker listens and the pipeline runs.
    pub ready: Arc<AtomicBool>,
    /// The decision engines (officer actions, live feed, reloads).
    pub monitor: crate::monitor::MonitorHandle,
    /// The hash-chained audit log.
    pub audit: crate::store::alerts::AuditLog,
    /// Fires at shutdown: long-lived responses (live feeds) end so the server can.
    pub stop: tokio_util::sync::CancellationToken,
}

/// The router of every HTTP endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::api::routes())
        .merge(crate::incidents_api::routes())
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if !s.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting");
    }
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "readiness: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
