//! The `geoward` service: embedded MQTT broker, ingest pipeline, storage, HTTP API,
//! metrics and CLI. `main.rs` only parses arguments; everything else is here so that
//! tests start the real service with [`run`].

pub mod allocator;
pub mod api;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod evidence;
pub mod http;
pub mod import;
pub mod incidents_api;
pub mod metrics;
pub mod monitor;
pub mod pipeline;
pub mod pki;
pub mod store;
pub mod topic_acl;
pub mod zones_cmd;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
use metrics::Metrics;
use pipeline::PipelineSettings;
use store::Store;

/// How long shutdown may take before stragglers are abandoned (the issue asks for
/// an exit within 10 s of SIGTERM).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(9);

/// Runs the service until `shutdown` completes, then drains: stops reading from the
/// broker, commits what is queued, sends the final acks and closes the database.
///
/// `http` is the bound listener of the admin API (tests bind port 0). The MQTT
/// listeners bind the addresses in `config.mqtt` themselves (rumqttd binds its own
/// sockets); [`run`] returns only after they accept connections... or fails.
pub async fn run(
    config: Config,
    http: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let store = Store::connect(&config.storage).await?;
    store.migrate().await?;
    store
        .maintain(
            config.storage.retention_days,
            config.storage.partition_interval_days,
            chrono::Utc::now(),
        )
        .await
        .context("storage maintenance")?;

    let auth = auth::DeviceAuth::new(
        store.clone(),
        metrics.clone(),
        Duration::from_secs(config.security.auth_cache_ttl_seconds),
    );
    let handles = broker::start(&config.mqtt, auth, tokio::runtime::Handle::current())?;
    let decoder = Arc::new(pipeline::decode::Decoder::new(
        store.clone(),
        metrics.clone(),
        config.mqtt.max_payload_bytes,
        config.security.require_authenticated_payloads,
    ));

    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let tracker = TaskTracker::new();
    let audit = store::alerts::AuditLog::open(&store).await?;
    let (monitor, monitor_rx) = monitor::MonitorHandle::new(1024);
    let judges = monitor::start(
        store.clone(),
        audit.clone(),
        metrics.clone(),
        config.alerting.clone(),
        &monitor,
        abort.clone(),
    )
    .await?;
    let monitor_task = tokio::spawn(monitor::run(judges, monitor_rx));
    tracker.spawn(delivery::run(
        store.clone(),
        metrics.clone(),
        config.alerting.clone(),
        handles.alerts_tx,
        stop.clone(),
    ));
    // SQLite has one writer: parallel commits would only wait for each other.
    let workers = match store {
        Store::Sqlite(_) => 1,
        Store::Postgres(_) => config.storage.commit_workers,
    };
    let link_tx = Arc::new(std::sync::Mutex::new(handles.link_tx));
    let settings = PipelineSettings {
        batch_max_rows: config.storage.batch_max_rows,
        batch_max_delay: Duration::from_millis(config.storage.batch_max_delay_ms),
        max_pending_per_device: config.pipeline.max_pending_sequences_per_device,
    };
    let mut batchers = Vec::with_capacity(workers);
    for _ in 0..workers {
        // The configured capacity is the pipeline's, shared by its workers.
        let (tx, rx) = mpsc::channel((config.pipeline.queue_capacity / workers).max(1));
        batchers.push(tx);
        tracker.spawn(pipeline::run_batcher(
            rx,
            store.clone(),
            link_tx.clone(),
            metrics.clone(),
            settings.clone(),
            Some(monitor.tx.clone()),
            abort.clone(),
        ));
    }
    tracker.spawn(pipeline::run_reader(
        handles.link_rx,
        batchers,
        decoder,
        metrics.clone(),
        stop.clone(),
    ));
    tracker.spawn(maintenance(
        store.clone(),
        config.storage.clone(),
        stop.clone(),
    ));

    let ready = Arc::new(AtomicBool::new(false));
    let app = http::router(http::AppState {
        store: store.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        monitor: monitor.clone(),
        audit: audit.clone(),
        stop: stop.clone(),
    });
    let http_addr = http
        .local_addr()
        .context("reading the http listener address")?;
    let http_stop = stop.clone();
    tracker.spawn(async move {
        // No Nagle: a live-feed event is one small write, which would
        // otherwise wait for the browser's delayed ACK of the previous one.
        let http = http.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set on an HTTP connection");
            }
        });
        let served = axum::serve(http, app)
            .with_graceful_shutdown(async move { http_stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "http server failed");
        }
    });

    broker::wait_listening(config.mqtt.tcp_listen, Duration::from_secs(10)).await?;
    if let Some(tls) = &config.mqtt.tls {
        broker::wait_listening(tls.listen, Duration::from_secs(10)).await?;
    }
    ready.store(true, Ordering::Release);
    tracing::info!(
        mqtt = %config.mqtt.tcp_listen,
        http = %http_addr,
        "geoward is ready: devices connect over mqtt; admin API, /metrics and /healthz are on http"
    );

    shutdown.await;
    tracing::info!("shutting down: draining the pipeline");
    ready.store(false, Ordering::Release);
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown deadline passed; abandoning uncommitted batches (they were not acked)"
        );
        abort.cancel();
        let _ = tokio::time::timeout(Duration::from_millis(500), tracker.wait()).await;
    }
    // The pipeline is drained: let the monitor judge what it handed over, then stop.
    abort.cancel();
    match tokio::time::timeout(Duration::from_secs(1), monitor_task).await {
        Ok(Err(e)) => tracing::error!(error = %e, "monitor panicked"),
        Ok(Ok(())) => {}
        Err(_) => tracing::warn!("monitor did not finish in time"),
    }
    store.close().await;
    Ok(())
}

/// Daily retention and partition maintenance.
async fn maintenance(store: Store, cfg: config::StorageConfig, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(24 * 3600));
    every.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {
                if let Err(e) = store.maintain(cfg.retention_days, cfg.partition_interval_days, chrono::Utc::now()).await {
                    tracing::error!(error = %format!("{e:#}"), "storage maintenance failed");
                }
            }
        }
    }
}
