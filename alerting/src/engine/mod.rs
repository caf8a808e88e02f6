//! The incident engine: signals, ticks and officer actions in, effects out.
//!
//! Pure: no IO, no clock, no tokio. The service calls [`IncidentEngine::apply`]
//! for every signal, [`IncidentEngine::tick`] on a clock tick (every second
//! is plenty: lost contact is then detected within a second of its deadline)
//! and the officer actions from its HTTP API, then carries out the returned
//! [`Effect`]s: persist incident changes, enqueue notifications in the
//! outbox, chain audit events, push feed events.
//!
//! One incident per episode: each subject has at most one active incident
//! per episode kind (the kind it opened as); later evidence attaches to it.

mod actions;
mod device;
mod effects;
mod pairing;
mod timers;
mod zone;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use self::effects::{Effect, IncidentChange};
use crate::audit::AuditEvent;
use crate::ids::{IncidentId, OfficeId, RuleId, SubjectId};
use crate::incident::{
    Condition, Handling, Incident, IncidentHeader, IncidentKind, TimelineEntry, TimelineEvent,
};
use crate::notify::{Notification, PoliceBrief};
use crate::policy::{Policy, SupervisionLevel};
use crate::routing::{OfficeTree, TargetRole};
use crate::signal::{EvidenceFix, Position, Signal, SignalBody};
use crate::time::Timestamp;

/// What the engine needs to know about a subject under an active
/// monitoring order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectConfig {
    /// The subject.
    pub id: SubjectId,
    /// Responsible justice office.
    pub office: OfficeId,
    /// Supervision level.
    pub level: SupervisionLevel,
    /// How often the subject's devices report when all is well, ms.
    pub expected_interval_ms: i64,
}

/// Per-rule memory used to order late transitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RuleTrack {
    last_confirmed: Option<Timestamp>,
    last_ended: Option<Timestamp>,
}

/// A subject's rule tracks by incident kind and cause.
///
/// A plain list searched in order: a subject has a handful (its zone rules
/// and the device causes it ever raised), and every subject has some, so
/// two levels of `BTreeMap` cost two B-tree leaves (about 700 bytes) a
/// subject for what this keeps in one small allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RuleTracks(Vec<(IncidentKind, RuleId, RuleTrack)>);

impl RuleTracks {
    fn find(&self, kind: IncidentKind, cause: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|(k, r, _)| *k == kind && r.as_str() == cause)
    }

    /// The track of `cause` under `kind`, created empty on first use.
    fn track(&mut self, kind: IncidentKind, cause: &str) -> &mut RuleTrack {
        let i = self.find(kind, cause).unwrap_or_else(|| {
            self.0
                .push((kind, RuleId::new(cause), RuleTrack::default()));
            self.0.len() - 1
        });
        &mut self.0[i].2
    }

    /// True when `cause` under `kind` was ever tracked.
    fn contains(&self, kind: IncidentKind, cause: &str) -> bool {
        self.find(kind, cause).is_some()
    }
}

/// Everything the engine remembers about one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SubjectState {
    config: SubjectConfig,
    /// Arrival time of the latest message from any device.
    last_contact: Timestamp,
    /// Arrival time of the latest GNSS fix (registration time at first).
    last_fix: Timestamp,
    /// Latest position by device time.
    last_position: Option<(Timestamp, Position)>,
    /// Bracelet and phone positions paired for separation.
    pairing: pairing::Pairing,
    rules: RuleTracks,
    /// Active episode per episode kind.
    episodes: BTreeMap<IncidentKind, IncidentId>,
    /// All of the subject's incidents still held in memory.
    incidents: BTreeSet<IncidentId>,
}

/// The engine's whole state, serialisable so a service can snapshot it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    subjects: BTreeMap<SubjectId, SubjectState>,
    incidents: BTreeMap<IncidentId, Incident>,
}

/// The incident engine.
#[derive(Debug, Clone)]
pub struct IncidentEngine {
    policy: Policy,
    tree: OfficeTree,
    state: EngineState,
}

/// A signal or subject the engine cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The subject has no active monitoring order here.
    #[error("unknown subject {0}")]
    UnknownSubject(SubjectId),
    /// The subject's office is not in the tree.
    #[error("unknown office {0}")]
    UnknownOffice(OfficeId),
    /// Coordinates out of range or accuracy negative or not finite.
    #[error("invalid position")]
    InvalidPosition,
    /// Expected interval zero or negative.
    #[error("expected interval must be positive")]
    InvalidInterval,
}

impl ApplyError {
    /// Stable reason code for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownSubject(_) => "unknown_subject",
            Self::UnknownOffice(_) => "unknown_office",
            Self::InvalidPosition => "invalid_position",
            Self::InvalidInterval => "invalid_interval",
        }
    }
}

/// An officer action the engine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No such incident in memory (the service may restore it first).
    #[error("unknown incident {0}")]
    UnknownIncident(IncidentId),
    /// Acknowledged before.
    #[error("incident already acknowledged")]
    AlreadyAcknowledged,
    /// Resolved before; resolution is final.
    #[error("incident already resolved")]
    AlreadyResolved,
    /// High severity needs an acknowledgement before resolution.
    #[error("incident must be acknowledged before it is resolved")]
    NotAcknowledged,
    /// Notes and resolution notes must say something.
    #[error("note is empty")]
    EmptyNote,
    /// Notes are limited to [`MAX_NOTE_CHARS`] characters.
    #[error("note is longer than {MAX_NOTE_CHARS} characters")]
    NoteTooLong,
    /// Reassignment to an office not in the tree.
    #[error("unknown office {0}")]
    UnknownOffice(OfficeId),
    /// Reassignment to the office that already has it.
    #[error("incident already belongs to office {0}")]
    SameOffice(OfficeId),
}

impl ActionError {
    /// Stable reason code for metrics and HTTP error bodies.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownIncident(_) => "unknown_incident",
            Self::AlreadyAcknowledged => "already_acknowledged",
            Self::AlreadyResolved => "already_resolved",
            Self::NotAcknowledged => "not_acknowledged",
            Self::EmptyNote => "empty_note",
            Self::NoteTooLong => "note_too_long",
            Self::UnknownOffice(_) => "unknown_office",
            Self::SameOffice(_) => "same_office",
        }
    }
}

/// Longest note an officer may write, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

impl IncidentEngine {
    /// An engine with no subjects.
    pub fn new(policy: Policy, tree: OfficeTree) -> Self {
        Self::with_state(policy, tree, EngineState::default())
    }

    /// An engine resuming from a snapshot taken with [`IncidentEngine::state`].
    pub fn with_state(policy: Policy, tree: OfficeTree, state: EngineState) -> Self {
        Self {
            policy,
            tree,
            state,
        }
    }

    /// The state, for snapshots.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The office tree in force.
    pub fn tree(&self) -> &OfficeTree {
        &self.tree
    }

    /// Replaces the office tree (offices edited). Incidents of offices that
    /// vanished keep their office id; their notifications find no targets.
    pub fn set_tree(&mut self, tree: OfficeTree) {
        self.tree = tree;
    }

    /// Adds or updates a subject. A new subject counts as in contact at
    /// `now`, so lost contact runs from registration.
    pub fn upsert_subject(
        &mut self,
        config: SubjectConfig,
        now: Timestamp,
    ) -> Result<(), ApplyError> {
        if config.expected_interval_ms <= 0 {
            return Err(ApplyError::InvalidInterval);
        }
        if !self.tree.contains(&config.office) {
            return Err(ApplyError::UnknownOffice(config.office));
        }
        match self.state.subjects.get_mut(&config.id) {
            Some(s) => s.config = config,
            None => {
                self.state.subjects.insert(
                    config.id.clone(),
                    SubjectState {
                        config,
                        last_contact: now,
                        last_fix: now,
                        last_position: None,
                        pairing: pairing::Pairing::default(),
                        rules: RuleTracks::default(),
                        episodes: BTreeMap::new(),
                        incidents: BTreeSet::new(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Ends monitoring of a subject: active incidents clear with reason
    /// `monitoring_ended` and the subject's timers stop.
    pub fn remove_subject(&mut self, subject: &SubjectId, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(s) = self.state.subjects.get(subject) else {
            return fx;
        };
        let episodes: Vec<IncidentId> = s.episodes.values().cloned().collect();
        for id in episodes {
            self.clear(&id, now, now, "monitoring_ended", &mut fx);
        }
        self.state.subjects.remove(subject);
        fx
    }

    /// The subject's configuration.
    pub fn subject(&self, subject: &SubjectId) -> Option<&SubjectConfig> {
        self.state.subjects.get(subject).map(|s| &s.config)
    }

    /// An incident held in memory.
    pub fn incident(&self, id: &IncidentId) -> Option<&Incident> {
        self.state.incidents.get(id)
    }

    /// All incidents held in memory, by id.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.state.incidents.values()
    }

    /// The active incident of `subject` for the episode kind `kind`.
    pub fn active_incident(&self, subject: &SubjectId, kind: IncidentKind) -> Option<&Incident> {
        let id = self.state.subjects.get(subject)?.episodes.get(&kind)?;
        self.state.incidents.get(id)
    }

    /// Puts back an incident loaded from the database (after a restart, or
    /// before acting on one evicted from memory). An active one becomes its
    /// subject's episode again when the subject is known.
    pub fn restore_incident(&mut self, incident: Incident) {
        let h = &incident.header;
        if let Some(s) = self.state.subjects.get_mut(&h.subject) {
            s.incidents.insert(h.id.clone());
            if h.is_active() {
                s.episodes.insert(h.episode_kind, h.id.clone());
            }
        }
        self.state.incidents.insert(h.id.clone(), incident);
    }

    /// Applies one signal received at `now`. Timers of the subject that are
    /// due by `now` fire first, so the result does not depend on whether a
    /// tick happened in between.
    pub fn apply(&mut self, signal: &Signal, now: Timestamp) -> Result<Vec<Effect>, ApplyError> {
        if !self.state.subjects.contains_key(&signal.subject) {
            return Err(ApplyError::UnknownSubject(signal.subject.clone()));
        }
        validate(&signal.body)?;
        let mut fx = Vec::new();
        self.run_timers(&signal.subject, now, &mut fx);
        match &signal.body {
            SignalBody::ZoneBreach { .. } => {
                self.on_zone(&signal.subject, &signal.body, now, &mut fx)
            }
            SignalBody::DeviceSeen { .. } | SignalBody::DeviceEvent { .. } => {
                self.on_device(&signal.subject, &signal.body, now, &mut fx)
            }
        }
        Ok(fx)
    }

    /// Fires every timer due by `now` (lost contact, no fix, abscondment,
    /// escalation) and forgets handled incidents past retention.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        // A read-only pass first: most subjects have nothing due, and
        // cloning every id every second would dominate the tick.
        let due: Vec<SubjectId> = self
            .state
            .subjects
            .iter()
            .filter(|(_, s)| self.timers_may_be_due(s, now))
            .map(|(id, _)| id.clone())
            .collect();
        for s in due {
            self.run_timers(&s, now, &mut fx);
        }
        self.evict(now);
        fx
    }

    // ---- shared helpers used by the submodules ----

    fn subject_state(&self, subject: &SubjectId) -> &SubjectState {
        self.state
            .subjects
            .get(subject)
            .expect("caller checked the subject exists")
    }

    fn subject_state_mut(&mut self, subject: &SubjectId) -> &mut SubjectState {
        self.state
            .subjects
            .get_mut(subject)
            .expect("caller checked the subject exists")
    }

    fn inc_mut(&mut self, id: &IncidentId) -> &mut Incident {
        self.state
            .incidents
            .get_mut(id)
            .expect("episode ids always point at held incidents")
    }

    /// Opens a new incident for `subject`'s episode `kind`; it becomes the
    /// subject's active episode of that kind.
    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        subject: &SubjectId,
        kind: IncidentKind,
        cause: String,
        opened_at: Timestamp,
        late: bool,
        evidence: Vec<EvidenceFix>,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) -> IncidentId {
        self.open_inner(
            subject, kind, cause, opened_at, late, evidence, now, true, fx,
        )
    }

    /// Opens an incident for an episode that already ended (late, out of
    /// order data): it never displaces the subject's active episode.
    #[allow(clippy::too_many_arguments)]
    fn open_past(
        &mut self,
        subject: &SubjectId,
        kind: IncidentKind,
        cause: String,
        opened_at: Timestamp,
        evidence: Vec<EvidenceFix>,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) -> IncidentId {
        self.open_inner(
            subject, kind, cause, opened_at, true, evidence, now, false, fx,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn open_inner(
        &mut self,
        subject: &SubjectId,
        kind: IncidentKind,
        cause: String,
        opened_at: Timestamp,
        late: bool,
        evidence: Vec<EvidenceFix>,
        now: Timestamp,
        as_episode: bool,
        fx: &mut Vec<Effect>,
    ) -> IncidentId {
        let s = self.subject_state(subject);
        let office = s.config.office.clone();
        let last_position = evidence
            .iter()
            .max_by_key(|f| f.at)
            .map(|f| f.position)
            .or(s.last_position.map(|(_, p)| p));
        let base = format!("{subject}:{}:{}", kind.code(), opened_at);
        let mut id = IncidentId(base.clone());
        let mut n = 2;
        while self.state.incidents.contains_key(&id) {
            id = IncidentId(format!("{base}-{n}"));
            n += 1;
        }
        let header = IncidentHeader {
            id: id.clone(),
            subject: subject.clone(),
            office: office.clone(),
            kind,
            episode_kind: kind,
            severity: kind.severity(),
            condition: Condition::Active,
            handling: Handling::Unacknowledged,
            opened_at,
            detected_at: now,
            late,
            escalation_level: 0,
            escalated_to: office.clone(),
            escalation_since: now,
            causes: BTreeSet::from([cause.clone()]),
            last_position,
            timeline_len: 0,
        };
        let mut inc = Incident {
            header,
            timeline: Vec::new(),
        };
        let entry = inc.push(now, TimelineEvent::Opened { cause, evidence });
        self.state.incidents.insert(id.clone(), inc);
        let s = self.subject_state_mut(subject);
        if as_episode {
            s.episodes.insert(kind, id.clone());
        }
        s.incidents.insert(id.clone());
        self.emit(&id, entry.clone(), fx);
        self.notify_duty(&id, &office, &entry, fx);
        self.audit_system(&id, "incident_opened", &entry, fx);
        id
    }

    /// Appends a timeline entry and emits the change.
    fn record(
        &mut self,
        id: &IncidentId,
        at: Timestamp,
        event: TimelineEvent,
        fx: &mut Vec<Effect>,
    ) -> TimelineEntry {
        let entry = self.inc_mut(id).push(at, event);
        self.emit(id, entry.clone(), fx);
        entry
    }

    /// Ends the episode: condition cleared at `at` (event time).
    fn clear(
        &mut self,
        id: &IncidentId,
        at: Timestamp,
        now: Timestamp,
        reason: &str,
        fx: &mut Vec<Effect>,
    ) {
        let inc = self.inc_mut(id);
        if !inc.header.is_active() {
            return;
        }
        inc.header.condition = Condition::Cleared { at };
        inc.header.causes.clear();
        let subject = inc.header.subject.clone();
        let (office, escalated_to) = (inc.header.office.clone(), inc.header.escalated_to.clone());
        // An incident can stand for more than one episode kind (silence
        // folded into a power-off): it ends all of them.
        if let Some(s) = self.state.subjects.get_mut(&subject) {
            s.episodes.retain(|_, e| e != id);
        }
        let entry = self.record(
            id,
            now,
            TimelineEvent::Cleared {
                reason: reason.to_owned(),
            },
            fx,
        );
        self.notify_duty(id, &office, &entry, fx);
        if escalated_to != office {
            self.notify_duty(id, &escalated_to, &entry, fx);
        }
        self.audit_system(id, "incident_cleared", &entry, fx);
    }

    fn emit(&self, id: &IncidentId, entry: TimelineEntry, fx: &mut Vec<Effect>) {
        let header = self.state.incidents[id].header.clone();
        fx.push(Effect::Incident(Box::new(IncidentChange { header, entry })));
    }

    fn notify_duty(
        &self,
        id: &IncidentId,
        office: &OfficeId,
        entry: &TimelineEntry,
        fx: &mut Vec<Effect>,
    ) {
        let header = &self.state.incidents[id].header;
        for t in self.tree.targets(office, TargetRole::Duty) {
            fx.push(Effect::Notify(Box::new(Notification::new(
                office, t, header, entry, None,
            ))));
        }
    }

    fn notify_police(
        &self,
        id: &IncidentId,
        entry: &TimelineEntry,
        brief: &PoliceBrief,
        fx: &mut Vec<Effect>,
    ) {
        let header = &self.state.incidents[id].header;
        for o in self.tree.chain(&header.office) {
            let targets = self.tree.targets(&o, TargetRole::PoliceLiaison);
            if targets.is_empty() {
                continue;
            }
            for t in targets {
                fx.push(Effect::Notify(Box::new(Notification::new(
                    &o,
                    t,
                    header,
                    entry,
                    Some(brief.clone()),
                ))));
            }
            break;
        }
    }

    fn audit_system(
        &self,
        id: &IncidentId,
        action: &str,
        entry: &TimelineEntry,
        fx: &mut Vec<Effect>,
    ) {
        fx.push(Effect::Audit(audit_event(
            id,
            "system".to_owned(),
            action,
            entry,
        )));
    }

    /// Forgets incidents that need nothing more and cleared longer ago than
    /// the retention; the database keeps them.
    fn evict(&mut self, now: Timestamp) {
        let keep_after = now.plus_ms(-self.policy.closed_retention_ms);
        let gone: Vec<IncidentId> = self
            .state
            .incidents
            .values()
            .filter(|i| {
                i.header.handled()
                    && matches!(i.header.condition, Condition::Cleared { .. })
                    && i.timeline.last().is_none_or(|e| e.at < keep_after)
            })
            .map(|i| i.header.id.clone())
            .collect();
        for id in gone {
            if let Some(inc) = self.state.incidents.remove(&id)
                && let Some(s) = self.state.subjects.get_mut(&inc.header.subject)
            {
                s.incidents.remove(&id);
            }
        }
    }
}

fn audit_event(id: &IncidentId, actor: String, action: &str, entry: &TimelineEntry) -> AuditEvent {
    AuditEvent {
        at: entry.at,
        actor,
        action: action.to_owned(),
        incident: Some(id.clone()),
        detail: serde_json::to_string(&entry.event).unwrap_or_else(|_| "{}".to_owned()),
    }
}

fn validate(body: &SignalBody) -> Result<(), ApplyError> {
    match body {
        SignalBody::ZoneBreach { evidence, .. } => {
            if evidence.iter().all(|f| f.position.is_valid()) {
                Ok(())
            } else {
                Err(ApplyError::InvalidPosition)
            }
        }
        SignalBody::DeviceSeen { position, .. } => match position {
            Some(p) if !p.is_valid() => Err(ApplyError::InvalidPosition),
            _ => Ok(()),
        },
        SignalBody::DeviceEvent { .. } => Ok(()),
    }
}
