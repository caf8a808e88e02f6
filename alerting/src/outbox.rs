//! The outbox record's state machine: at-least-once delivery with
//! exponential backoff and a dead-letter state.
//!
//! Pure: the service stores [`OutboxRecord`]s in its table (serde), claims
//! due ones, hands them to a sink and records the [`DeliveryOutcome`]. A
//! record claimed by a process that then died stays `InFlight` until its lease
//! expires, after which it is due again, so a restart loses nothing; the
//! receiver drops the possible duplicate by its idempotency key.
//!
//! ```text
//! Pending{due_at} --claim--> InFlight{lease_until} --Delivered--> Delivered
//!      ^                          |  \--Permanent or attempts exhausted--> Dead
//!      +------Retryable-----------+
//!      (also: lease expired)
//! Dead --requeue (operator)--> Pending
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::notify::Notification;
use crate::time::Timestamp;

/// Retry policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Delay before the second attempt, ms.
    pub base_delay_ms: i64,
    /// Longest delay between attempts, ms.
    pub max_delay_ms: i64,
    /// Attempts before the record is dead.
    pub max_attempts: u32,
    /// How long a claimed record belongs to its claimer, ms; must exceed
    /// the sink's timeout.
    pub lease_ms: i64,
}

impl Default for RetryPolicy {
    /// 1 s doubling to at most 5 min, 12 attempts (about 25 min in all),
    /// 60 s lease.
    fn default() -> Self {
        Self {
            base_delay_ms: 1_000,
            max_delay_ms: 300_000,
            max_attempts: 12,
            lease_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// Delay after the `attempt`-th failed attempt (1-based): base × 2^(n-1),
    /// capped, with deterministic "equal jitter" from the key so many records
    /// failing together do not retry in lockstep: the delay lies in
    /// [d/2, d].
    pub fn backoff_ms(&self, attempt: u32, key: &str) -> i64 {
        let shift = attempt.saturating_sub(1).min(40);
        let d = self
            .base_delay_ms
            .max(1)
            .saturating_mul(1i64 << shift)
            .min(self.max_delay_ms.max(1));
        let half = d / 2;
        let mut h = Sha256::new();
        h.update(key.as_bytes());
        h.update(attempt.to_be_bytes());
        let digest = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[..8]);
        let r = u64::from_be_bytes(b);
        let span = u64::try_from(d - half).unwrap_or(0) + 1;
        half + i64::try_from(r % span).unwrap_or(0)
    }
}

/// Where a record is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting; due at `due_at`.
    Pending {
        /// Earliest next attempt.
        due_at: Timestamp,
    },
    /// Claimed by a sender until `lease_until`.
    InFlight {
        /// After this the claim is void and the record is due again.
        lease_until: Timestamp,
    },
    /// The sink accepted it.
    Delivered {
        /// When.
        at: Timestamp,
    },
    /// Gave up: permanent failure or attempts exhausted.
    Dead {
        /// When.
        at: Timestamp,
        /// Reason code of the last failure.
        reason: String,
    },
}

impl DeliveryState {
    /// Stable code (metric label, API filter).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Pending { .. } => "pending",
            Self::InFlight { .. } => "in_flight",
            Self::Delivered { .. } => "delivered",
            Self::Dead { .. } => "dead",
        }
    }
}

/// What a sink reports about one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Accepted.
    Delivered,
    /// Try again later (5xx, 408, 429, timeout, connection refused).
    Retryable {
        /// Stable reason code.
        reason: String,
        /// Human detail for the API (never shown as a metric label).
        detail: String,
    },
    /// Retrying cannot help (4xx other than 408/429, bad URL).
    Permanent {
        /// Stable reason code.
        reason: String,
        /// Human detail.
        detail: String,
    },
}

/// Classifies an HTTP response status: 2xx delivered; 408, 429 and 5xx
/// retryable; any other status permanent (the receiver rejects the request
/// and will keep rejecting it).
pub fn outcome_for_http_status(status: u16) -> DeliveryOutcome {
    match status {
        200..=299 => DeliveryOutcome::Delivered,
        408 | 429 | 500..=599 => DeliveryOutcome::Retryable {
            reason: format!("http_{}", status_class(status)),
            detail: format!("http status {status}"),
        },
        _ => DeliveryOutcome::Permanent {
            reason: format!("http_{}", status_class(status)),
            detail: format!("http status {status}"),
        },
    }
}

/// Low-cardinality status label: the status itself for 408 and 429, else
/// its class (`4xx`, `5xx`, …).
fn status_class(status: u16) -> String {
    match status {
        408 | 429 => status.to_string(),
        s => format!("{}xx", s / 100),
    }
}

/// One notification in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// What to deliver (its idempotency key is the record's key).
    pub notification: Notification,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// Detail of the last failure.
    pub last_error: Option<String>,
}

/// A transition that is not allowed from the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// Claiming a record that is not due (pending in the future, leased,
    /// delivered or dead).
    #[error("record is not due")]
    NotDue,
    /// Recording an outcome for a record that is not in flight.
    #[error("record is not in flight")]
    NotInFlight,
    /// Requeueing a record that is not dead.
    #[error("record is not dead")]
    NotDead,
}

impl OutboxError {
    /// Stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotDue => "not_due",
            Self::NotInFlight => "not_in_flight",
            Self::NotDead => "not_dead",
        }
    }
}

impl OutboxRecord {
    /// A new record, due at once.
    pub fn new(notification: Notification, now: Timestamp) -> Self {
        Self {
            notification,
            state: DeliveryState::Pending { due_at: now },
            attempts: 0,
            created_at: now,
            last_error: None,
        }
    }

    /// The idempotency key (the record's primary key).
    pub fn key(&self) -> &str {
        &self.notification.idempotency_key
    }

    /// When the record should next be looked at (for `ORDER BY`/indexes):
    /// the due time, the lease end, or `None` when final.
    pub fn next_attempt_at(&self) -> Option<Timestamp> {
        match self.state {
            DeliveryState::Pending { due_at } => Some(due_at),
            DeliveryState::InFlight { lease_until } => Some(lease_until),
            DeliveryState::Delivered { .. } | DeliveryState::Dead { .. } => None,
        }
    }

    /// True when a sender may claim it at `now`.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.next_attempt_at().is_some_and(|t| t <= now)
    }

    /// Claims the record for one attempt.
    pub fn claim(&mut self, now: Timestamp, policy: &RetryPolicy) -> Result<(), OutboxError> {
        if !self.is_due(now) {
            return Err(OutboxError::NotDue);
        }
        self.attempts = self.attempts.saturating_add(1);
        self.state = DeliveryState::InFlight {
            lease_until: now.plus_ms(policy.lease_ms.max(1)),
        };
        Ok(())
    }

    /// Records the outcome of the attempt in flight.
    pub fn record(
        &mut self,
        outcome: DeliveryOutcome,
        now: Timestamp,
        policy: &RetryPolicy,
    ) -> Result<(), OutboxError> {
        if !matches!(self.state, DeliveryState::InFlight { .. }) {
            return Err(OutboxError::NotInFlight);
        }
        self.state = match outcome {
            DeliveryOutcome::Delivered => {
                self.last_error = None;
                DeliveryState::Delivered { at: now }
            }
            DeliveryOutcome::Permanent { reason, detail } => {
                self.last_error = Some(detail);
                DeliveryState::Dead { at: now, reason }
            }
            DeliveryOutcome::Retryable { reason, detail } => {
                self.last_error = Some(detail);
                if self.attempts >= policy.max_attempts {
                    DeliveryState::Dead { at: now, reason }
                } else {
                    let delay =
                        policy.backoff_ms(self.attempts, &self.notification.idempotency_key);
                    DeliveryState::Pending {
                        due_at: now.plus_ms(delay),
                    }
                }
            }
        };
        Ok(())
    }

    /// An operator puts a dead record back in line with fresh attempts.
    pub fn requeue(&mut self, now: Timestamp) -> Result<(), OutboxError> {
        if !matches!(self.state, DeliveryState::Dead { .. }) {
            return Err(OutboxError::NotDead);
        }
        self.attempts = 0;
        self.state = DeliveryState::Pending { due_at: now };
        Ok(())
    }
}
