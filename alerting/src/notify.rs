//! Notifications: what the engine asks the delivery side to send, and the
//! payload every sink receives.
//!
//! The idempotency key is derived from the incident id, the timeline entry
//! and the target, so replaying the same signals produces the same keys and a
//! receiver can drop duplicates of at-least-once delivery.

use serde::{Deserialize, Serialize};

use crate::ids::{IncidentId, OfficeId, SubjectId, TargetId};
use crate::incident::{IncidentHeader, TimelineEntry};
use crate::routing::{DeliveryTarget, TargetKind, TargetRole};
use crate::signal::Position;
use crate::time::Timestamp;

/// Version of [`AlertPayload`]'s JSON shape.
pub const PAYLOAD_SCHEMA: u32 = 1;

/// One message for one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// `{incident}/{timeline seq}/{target}`; the same for every retry.
    pub idempotency_key: String,
    /// Where it goes.
    pub target: TargetId,
    /// How it goes.
    pub target_kind: TargetKind,
    /// Audience of the target.
    pub role: TargetRole,
    /// The office owning the target.
    pub office: OfficeId,
    /// What it says.
    pub payload: AlertPayload,
}

/// The JSON body every sink receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertPayload {
    /// [`PAYLOAD_SCHEMA`].
    pub schema: u32,
    /// The timeline event code that caused it (`opened`, `escalated`, …).
    pub event: String,
    /// The incident as it is after the event.
    pub incident: IncidentHeader,
    /// The timeline entry.
    pub entry: TimelineEntry,
    /// Search details, only for the police liaison.
    pub police: Option<PoliceBrief>,
}

/// What the police need to start searching (art. 30).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoliceBrief {
    /// Whom to search.
    pub subject: SubjectId,
    /// The incident.
    pub incident: IncidentId,
    /// Last known position.
    pub last_position: Option<Position>,
    /// When it was taken (device time).
    pub last_seen_at: Option<Timestamp>,
    /// Time since then, milliseconds.
    pub elapsed_ms: i64,
    /// Radius around the last position to search, metres.
    pub search_radius_m: f64,
}

impl Notification {
    /// Builds the notification of `entry` for `target` of `office`.
    pub fn new(
        office: &OfficeId,
        target: &DeliveryTarget,
        header: &IncidentHeader,
        entry: &TimelineEntry,
        police: Option<PoliceBrief>,
    ) -> Self {
        Self {
            idempotency_key: idempotency_key(&header.id, entry.seq, &target.id),
            target: target.id.clone(),
            target_kind: target.kind.clone(),
            role: target.role,
            office: office.clone(),
            payload: AlertPayload {
                schema: PAYLOAD_SCHEMA,
                event: entry.event.code().to_owned(),
                incident: header.clone(),
                entry: entry.clone(),
                police,
            },
        }
    }

    /// The payload as JSON bytes (what webhooks post and MQTT publishes).
    pub fn body(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail; fall back to an
        // empty object rather than panic should serde ever disagree.
        serde_json::to_vec(&self.payload).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// The idempotency key of the notification of timeline entry `seq` of
/// `incident` for `target`.
pub fn idempotency_key(incident: &IncidentId, seq: u32, target: &TargetId) -> String {
    format!("{incident}/{seq}/{target}")
}
