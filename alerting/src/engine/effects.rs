//! What the engine asks the service to do.

use serde::{Deserialize, Serialize};

use crate::audit::AuditEvent;
use crate::incident::{IncidentHeader, TimelineEntry};
use crate::notify::Notification;

/// One thing the service must carry out, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// An incident changed: upsert the header, append the entry to its
    /// timeline, publish it on the live feeds of the header's office chain.
    Incident(Box<IncidentChange>),
    /// Enqueue in the outbox (keyed by its idempotency key).
    Notify(Box<Notification>),
    /// Append to the audit chain.
    Audit(AuditEvent),
}

/// An incident after a change, and the timeline entry describing the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentChange {
    /// The incident as it is now.
    pub header: IncidentHeader,
    /// The new timeline entry (`entry.event.code()` names the change).
    pub entry: TimelineEntry,
}
