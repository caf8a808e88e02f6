//! Webhook delivery against a real HTTP server on 127.0.0.1 that fails,
//! hangs past the timeout, processes but answers 500, then recovers. The
//! outbox state machine drives the retries (on a virtual clock for the
//! backoff; the HTTP timeout is real and short). Every notification arrives,
//! signed, and the only duplicates share an idempotency key.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::support::*;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use geoward_alerting::delivery::{WebhookConfig, WebhookSender, WebhookSink, attempt};
use geoward_alerting::notify::Notification;
use geoward_alerting::outbox::{DeliveryOutcome, DeliveryState, OutboxRecord, RetryPolicy};
use geoward_alerting::routing::TargetKind;
use geoward_alerting::signal::{BreachPhase, RuleKind};
use geoward_alerting::signature::verify;
use geoward_alerting::{TargetId, Timestamp};

const SECRET: &[u8] = b"office-webhook-secret";

#[derive(Debug, Clone, Copy)]
enum Behave {
    Fail500,
    Hang,
    ProcessThen500,
    Reject400,
    Ok,
}

#[derive(Debug, Default)]
struct Server {
    script: Vec<Behave>,
    requests: usize,
    /// Processed bodies per idempotency key, in arrival order.
    processed: BTreeMap<String, Vec<Bytes>>,
    bad_signatures: usize,
}

type Shared = Arc<Mutex<Server>>;

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let behave = {
        let mut s = s.lock().unwrap();
        let sig = headers
            .get("x-geoward-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !verify(SECRET, &body, sig) || key.is_empty() {
            s.bad_signatures += 1;
            return StatusCode::UNAUTHORIZED;
        }
        let behave = s.script.get(s.requests).copied().unwrap_or(Behave::Ok);
        s.requests += 1;
        if matches!(behave, Behave::ProcessThen500 | Behave::Ok) {
            s.processed.entry(key).or_default().push(body);
        }
        behave
    };
    match behave {
        Behave::Fail500 | Behave::ProcessThen500 => StatusCode::INTERNAL_SERVER_ERROR,
        Behave::Hang => std::future::pending().await,
        Behave::Reject400 => StatusCode::BAD_REQUEST,
        Behave::Ok => StatusCode::OK,
    }
}

async fn start(script: Vec<Behave>) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Server {
        script,
        ..Server::default()
    }));
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), state)
}

/// Webhook notifications of a subject leaving and going silent, the exit
/// escalating twice.
fn notifications_to(url: &str) -> Vec<Notification> {
    let mut e = engine();
    let mut fx = e
        .apply(
            &breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Confirmed,
                T0,
                false,
            ),
            Timestamp(T0),
        )
        .unwrap();
    fx.extend(e.tick(Timestamp(T0 + 31 * MIN)));
    notifications(&fx)
        .into_iter()
        .filter(|n| matches!(n.target_kind, TargetKind::Webhook { .. }))
        .map(|n| {
            let mut n = n.clone();
            n.target_kind = TargetKind::Webhook {
                url: url.to_owned(),
            };
            n
        })
        .collect()
}

fn sink(timeout_ms: u64, targets: &[Notification]) -> WebhookSink {
    let sender = WebhookSender::new(&WebhookConfig {
        timeout_ms,
        connect_timeout_ms: 1_000,
    })
    .unwrap();
    let secrets: HashMap<TargetId, Vec<u8>> = targets
        .iter()
        .map(|n| (n.target.clone(), SECRET.to_vec()))
        .collect();
    WebhookSink::new(sender, secrets)
}

/// Runs the outbox to completion on a virtual clock; returns outcomes seen.
async fn drain(
    sink: &WebhookSink,
    records: &mut [OutboxRecord],
    policy: &RetryPolicy,
) -> Vec<DeliveryOutcome> {
    let now = Cell::new(Timestamp(T0));
    let mut outcomes = Vec::new();
    for _ in 0..200 {
        let due: Vec<usize> = (0..records.len())
            .filter(|&i| records[i].is_due(now.get()))
            .collect();
        if due.is_empty() {
            match records
                .iter()
                .filter_map(OutboxRecord::next_attempt_at)
                .min()
            {
                Some(t) => now.set(t),
                None => return outcomes,
            }
            continue;
        }
        for i in due {
            outcomes.push(
                attempt(sink, &mut records[i], policy, || now.get())
                    .await
                    .unwrap(),
            );
        }
    }
    panic!("outbox did not settle within 200 rounds");
}

#[tokio::test]
async fn failures_timeouts_and_recovery_deliver_everything_once_per_key() {
    let (url, server) = start(vec![Behave::Fail500, Behave::Hang, Behave::ProcessThen500]).await;
    let notes = notifications_to(&url);
    // exit opened → jo1, lost contact opened → jo1, exit escalated →
    // county, then → city.
    assert_eq!(notes.len(), 4, "{notes:?}");
    let sink = sink(300, &notes);
    let mut records: Vec<_> = notes
        .iter()
        .cloned()
        .map(|n| OutboxRecord::new(n, Timestamp(T0)))
        .collect();
    let policy = RetryPolicy::default();
    let outcomes = drain(&sink, &mut records, &policy).await;

    let reasons: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            DeliveryOutcome::Delivered => "delivered".to_owned(),
            DeliveryOutcome::Retryable { reason, .. } => reason.clone(),
            DeliveryOutcome::Permanent { reason, .. } => format!("permanent:{reason}"),
        })
        .collect();
    assert!(reasons.contains(&"http_5xx".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"timeout".to_owned()), "{reasons:?}");
    for r in &records {
        assert!(
            matches!(r.state, DeliveryState::Delivered { .. }),
            "{:?}",
            r.state
        );
    }

    let s = server.lock().unwrap();
    assert_eq!(s.bad_signatures, 0);
    let keys: BTreeSet<_> = notes.iter().map(|n| n.idempotency_key.clone()).collect();
    assert_eq!(
        s.processed.keys().cloned().collect::<BTreeSet<_>>(),
        keys,
        "no loss"
    );
    let duplicates: usize = s.processed.values().map(|v| v.len() - 1).sum();
    assert_eq!(duplicates, 1, "only the processed-then-500 request repeats");
    for bodies in s.processed.values() {
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "a retry resends the same body"
        );
    }
}

#[tokio::test]
async fn a_rejected_notification_goes_dead_without_retries() {
    let (url, server) = start(vec![Behave::Reject400]).await;
    let notes: Vec<_> = notifications_to(&url).into_iter().take(1).collect();
    let sink = sink(2_000, &notes);
    let mut records = vec![OutboxRecord::new(notes[0].clone(), Timestamp(T0))];
    drain(&sink, &mut records, &RetryPolicy::default()).await;
    assert!(
        matches!(&records[0].state, DeliveryState::Dead { reason, .. } if reason == "http_4xx")
    );
    assert_eq!(records[0].attempts, 1);
    assert_eq!(server.lock().unwrap().requests, 1);
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_until_dead() {
    // A port nobody listens on: bind, read it, close.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let notes: Vec<_> = notifications_to(&format!("http://127.0.0.1:{port}/hook"))
        .into_iter()
        .take(1)
        .collect();
    let sink = sink(1_000, &notes);
    let policy = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    let mut records = vec![OutboxRecord::new(notes[0].clone(), Timestamp(T0))];
    let outcomes = drain(&sink, &mut records, &policy).await;
    assert_eq!(outcomes.len(), 3);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, DeliveryOutcome::Retryable { reason, .. } if reason == "connect"))
    );
    assert_eq!(records[0].state.code(), "dead");
}

#[tokio::test]
async fn a_target_without_a_secret_is_a_permanent_failure() {
    let notes = notifications_to("http://127.0.0.1:9/hook");
    let sink = WebhookSink::new(
        WebhookSender::new(&WebhookConfig::default()).unwrap(),
        HashMap::new(),
    );
    let mut records = vec![OutboxRecord::new(notes[0].clone(), Timestamp(T0))];
    drain(&sink, &mut records, &RetryPolicy::default()).await;
    assert!(
        matches!(&records[0].state, DeliveryState::Dead { reason, .. } if reason == "no_secret")
    );
}
