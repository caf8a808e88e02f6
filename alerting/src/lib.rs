//! Geoward incidents: turns geofence transitions and device signals into
//! incidents a duty officer can act on, routes and escalates them, and
//! provides the pure pieces of durable delivery and auditing.
//!
//! **Invariant:** everything outside [`delivery`] is pure: no IO, no tokio,
//! no clock reads. Time is always an argument ([`Timestamp`]). The crate
//! builds with `--no-default-features`, which leaves out [`delivery`] and
//! with it tokio and the HTTP client; that build is the proof.
//!
//! Code map:
//! - [`signal`]: input vocabulary (geofence transitions, device messages).
//! - [`incident`]: incident record, kinds, severities, timeline.
//! - [`engine`]: the state machine: `apply`, `tick`, officer actions → effects.
//! - [`routing`]: office tree, targets, escalation chain.
//! - [`policy`]: thresholds and the escalation table.
//! - [`notify`]: notifications and their payload and idempotency keys.
//! - [`outbox`]: outbox record state machine with backoff and dead letters.
//! - [`audit`]: append-only SHA-256 hash chain and its verification.
//! - [`query`]: incident list filters (office subtree, kind, state, time).
//! - [`sse`]: live-feed frames, `Last-Event-ID`, an in-memory resumable feed.
//! - [`signature`]: webhook HMAC signatures.
//! - [`delivery`] (feature `delivery`): webhook sender and the sink trait.

//!
//! # Wiring it into a service
//!
//! 1. Build an [`OfficeTree`] and an [`IncidentEngine`] with a [`Policy`];
//!    register each subject under an active monitoring order with
//!    [`IncidentEngine::upsert_subject`].
//! 2. Map geofence transitions and decoded device messages to [`Signal`]s
//!    and call [`IncidentEngine::apply`]; call [`IncidentEngine::tick`]
//!    about once a second; expose the officer actions
//!    ([`IncidentEngine::acknowledge`], `add_note`, `resolve`, `reassign`)
//!    after checking the caller's office scope with
//!    [`OfficeTree::is_in_subtree`].
//! 3. Carry out the returned [`Effect`]s in order, in one transaction:
//!    `Effect::Incident` → upsert the header, append the timeline entry,
//!    publish on the feeds of [`sse::feed_offices`] (ids from
//!    [`sse::FeedSequencer`], frames from [`sse::incident_frame`]);
//!    `Effect::Notify` → insert an [`outbox::OutboxRecord`] keyed by its
//!    idempotency key (ignore a duplicate key); `Effect::Audit` → append
//!    [`audit::AuditEntry::next`] after the stored head.
//! 4. A delivery loop claims due outbox records, sends them through a
//!    [`delivery::AlertSink`] (the webhook sink here; MQTT publishes
//!    [`notify::Notification::body`] on the office alert topic that
//!    `geoward-proto` defines) with
//!    [`delivery::attempt`], and stores the record after each step.
//! 5. On restart: either restore a snapshot of [`IncidentEngine::state`]
//!    (serde) with [`IncidentEngine::with_state`], or register subjects
//!    again (their lost-contact clocks restart at the restart time) and
//!    [`IncidentEngine::restore_incident`] every unhandled or active
//!    incident from the database.

pub mod audit;
#[cfg(feature = "delivery")]
pub mod delivery;
pub mod engine;
mod geo;
pub mod ids;
pub mod incident;
pub mod notify;
pub mod outbox;
pub mod policy;
pub mod query;
pub mod routing;
pub mod signal;
pub mod signature;
pub mod sse;
mod time;

pub use engine::{
    ActionError, ApplyError, Effect, EngineState, IncidentChange, IncidentEngine, SubjectConfig,
};
pub use geo::haversine_m;
pub use ids::{DeviceId, IncidentId, OfficeId, OfficerId, RuleId, SubjectId, TargetId};
pub use incident::{Incident, IncidentHeader, IncidentKind, IncidentState, Severity};
pub use policy::{Policy, SupervisionLevel};
pub use routing::OfficeTree;
pub use signal::{Signal, SignalBody};
pub use time::Timestamp;
