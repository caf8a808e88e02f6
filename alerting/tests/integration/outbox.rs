//! The outbox record state machine: backoff, dead letters, restart safety.

use crate::support::*;
use geoward_alerting::Timestamp;
use geoward_alerting::outbox::{
    DeliveryOutcome, DeliveryState, OutboxError, OutboxRecord, RetryPolicy, outcome_for_http_status,
};
use geoward_alerting::signal::{BreachPhase, RuleKind};
use proptest::prelude::*;

fn record() -> OutboxRecord {
    let mut e = engine();
    let fx = e
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
    let n = notifications(&fx)[0].clone();
    OutboxRecord::new(n, Timestamp(T0))
}

fn retry() -> DeliveryOutcome {
    DeliveryOutcome::Retryable {
        reason: "http_5xx".into(),
        detail: "http status 500".into(),
    }
}

#[test]
fn retries_back_off_exponentially_then_die() {
    let p = RetryPolicy {
        base_delay_ms: 1_000,
        max_delay_ms: 8_000,
        max_attempts: 6,
        lease_ms: 30_000,
    };
    let mut r = record();
    let mut now = Timestamp(T0);
    let mut delays = Vec::new();
    for attempt in 1..=6u32 {
        r.claim(now, &p).unwrap();
        assert_eq!(r.attempts, attempt);
        r.record(retry(), now, &p).unwrap();
        match r.state {
            DeliveryState::Pending { due_at } => {
                delays.push(due_at.since(now));
                assert!(!r.is_due(Timestamp(due_at.0 - 1)));
                assert_eq!(
                    r.claim(Timestamp(due_at.0 - 1), &p),
                    Err(OutboxError::NotDue)
                );
                now = due_at;
            }
            DeliveryState::Dead { ref reason, .. } => {
                assert_eq!(attempt, 6);
                assert_eq!(reason, "http_5xx");
            }
            ref s => panic!("unexpected state {s:?}"),
        }
    }
    assert_eq!(r.state.code(), "dead");
    // Equal jitter: each delay within [d/2, d] of 1, 2, 4, 8, 8 s.
    for (d, cap) in delays.iter().zip([1_000, 2_000, 4_000, 8_000, 8_000]) {
        assert!(
            (cap / 2..=cap).contains(d),
            "{d} not in [{}, {cap}]",
            cap / 2
        );
    }
    assert_eq!(r.last_error.as_deref(), Some("http status 500"));
    r.requeue(Timestamp(T0 + 99)).unwrap();
    assert_eq!(r.attempts, 0);
    assert!(r.is_due(Timestamp(T0 + 99)));
}

#[test]
fn permanent_failure_dies_at_once_and_delivery_is_final() {
    let p = RetryPolicy::default();
    let mut r = record();
    r.claim(Timestamp(T0), &p).unwrap();
    r.record(outcome_for_http_status(404), Timestamp(T0), &p)
        .unwrap();
    assert_eq!(r.state.code(), "dead");

    let mut r = record();
    r.claim(Timestamp(T0), &p).unwrap();
    r.record(DeliveryOutcome::Delivered, Timestamp(T0 + 5), &p)
        .unwrap();
    assert_eq!(
        r.state,
        DeliveryState::Delivered {
            at: Timestamp(T0 + 5)
        }
    );
    assert_eq!(
        r.claim(Timestamp(T0 + 10_000_000), &p),
        Err(OutboxError::NotDue)
    );
    assert_eq!(
        r.record(DeliveryOutcome::Delivered, Timestamp(T0), &p),
        Err(OutboxError::NotInFlight)
    );
}

#[test]
fn a_claim_lost_in_a_crash_is_due_again_after_its_lease() {
    let p = RetryPolicy {
        lease_ms: 10_000,
        ..RetryPolicy::default()
    };
    let mut r = record();
    r.claim(Timestamp(T0), &p).unwrap();
    // The process dies here; the stored record says in flight.
    let stored = serde_json::to_string(&r).unwrap();
    let mut back: OutboxRecord = serde_json::from_str(&stored).unwrap();
    assert!(!back.is_due(Timestamp(T0 + 9_999)));
    assert!(back.is_due(Timestamp(T0 + 10_000)));
    back.claim(Timestamp(T0 + 10_000), &p).unwrap();
    assert_eq!(back.attempts, 2);
    assert_eq!(back.key(), r.key());
}

#[test]
fn http_status_classification() {
    let code = |s| match outcome_for_http_status(s) {
        DeliveryOutcome::Delivered => "delivered".to_owned(),
        DeliveryOutcome::Retryable { reason, .. } => format!("retry:{reason}"),
        DeliveryOutcome::Permanent { reason, .. } => format!("dead:{reason}"),
    };
    assert_eq!(code(200), "delivered");
    assert_eq!(code(204), "delivered");
    assert_eq!(code(408), "retry:http_408");
    assert_eq!(code(429), "retry:http_429");
    assert_eq!(code(503), "retry:http_5xx");
    assert_eq!(code(400), "dead:http_4xx");
    assert_eq!(code(301), "dead:http_3xx");
}

proptest! {
    #[test]
    fn backoff_stays_within_bounds(attempt in 1u32..100, base in 1i64..10_000, cap in 1i64..1_000_000) {
        let p = RetryPolicy { base_delay_ms: base, max_delay_ms: cap, ..RetryPolicy::default() };
        let d = p.backoff_ms(attempt, "k");
        let full = base.saturating_mul(1i64 << (attempt - 1).min(40)).min(cap);
        prop_assert!(d >= full / 2 && d <= full, "{} not within [{}, {}]", d, full / 2, full);
    }
}
