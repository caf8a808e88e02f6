//! Officer actions: acknowledge, note, resolve, reassign.
//!
//! Each one is checked, recorded on the timeline and audited. Scoping (may
//! this officer touch this office's incident) is the service's job, done
//! with [`crate::routing::OfficeTree::is_in_subtree`].

use super::{ActionError, Effect, IncidentEngine, MAX_NOTE_CHARS, audit_event};
use crate::ids::{IncidentId, OfficeId, OfficerId};
use crate::incident::{Handling, TimelineEvent};
use crate::time::Timestamp;

fn check_note(note: &str) -> Result<String, ActionError> {
    let note = note.trim();
    if note.is_empty() {
        return Err(ActionError::EmptyNote);
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ActionError::NoteTooLong);
    }
    Ok(note.to_owned())
}

impl IncidentEngine {
    fn officer_record(
        &mut self,
        id: &IncidentId,
        officer: &OfficerId,
        action: &str,
        event: TimelineEvent,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) -> crate::incident::TimelineEntry {
        let entry = self.record(id, now, event, fx);
        fx.push(Effect::Audit(audit_event(
            id,
            format!("officer:{officer}"),
            action,
            &entry,
        )));
        entry
    }

    /// Fires the subject's due timers first, so an action at `now` sees
    /// (and the audit log records) every escalation due before it.
    fn timers_before_action(&mut self, id: &IncidentId, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        let subject = self.state.incidents[id].header.subject.clone();
        if self.state.subjects.contains_key(&subject) {
            self.run_timers(&subject, now, &mut fx);
        }
        fx
    }

    fn existing(&self, id: &IncidentId) -> Result<&crate::incident::Incident, ActionError> {
        self.state
            .incidents
            .get(id)
            .ok_or_else(|| ActionError::UnknownIncident(id.clone()))
    }

    /// An officer takes the incident: escalation and exit promotion stop.
    pub fn acknowledge(
        &mut self,
        id: &IncidentId,
        officer: &OfficerId,
        now: Timestamp,
    ) -> Result<Vec<Effect>, ActionError> {
        match self.existing(id)?.header.handling {
            Handling::Unacknowledged => {}
            Handling::Acknowledged { .. } => return Err(ActionError::AlreadyAcknowledged),
            Handling::Resolved { .. } => return Err(ActionError::AlreadyResolved),
        }
        let mut fx = self.timers_before_action(id, now);
        self.inc_mut(id).header.handling = Handling::Acknowledged {
            by: officer.clone(),
            at: now,
        };
        let ev = TimelineEvent::Acknowledged {
            officer: officer.clone(),
        };
        self.officer_record(id, officer, "acknowledged", ev, now, &mut fx);
        Ok(fx)
    }

    /// Adds a note to the timeline, in any state.
    pub fn add_note(
        &mut self,
        id: &IncidentId,
        officer: &OfficerId,
        note: &str,
        now: Timestamp,
    ) -> Result<Vec<Effect>, ActionError> {
        self.existing(id)?;
        let text = check_note(note)?;
        let mut fx = self.timers_before_action(id, now);
        let ev = TimelineEvent::Note {
            officer: officer.clone(),
            text,
        };
        self.officer_record(id, officer, "note", ev, now, &mut fx);
        Ok(fx)
    }

    /// Resolves with a note. High and critical incidents must have been
    /// acknowledged first. The episode stays the subject's active one until
    /// its condition clears, so later evidence still attaches to it.
    pub fn resolve(
        &mut self,
        id: &IncidentId,
        officer: &OfficerId,
        note: &str,
        now: Timestamp,
    ) -> Result<Vec<Effect>, ActionError> {
        let inc = self.existing(id)?;
        let acknowledged_by = match &inc.header.handling {
            Handling::Resolved { .. } => return Err(ActionError::AlreadyResolved),
            Handling::Acknowledged { by, .. } => Some(by.clone()),
            Handling::Unacknowledged if inc.header.severity.needs_resolution() => {
                return Err(ActionError::NotAcknowledged);
            }
            Handling::Unacknowledged => None,
        };
        let note = check_note(note)?;
        let mut fx = self.timers_before_action(id, now);
        self.inc_mut(id).header.handling = Handling::Resolved {
            acknowledged_by,
            by: officer.clone(),
            at: now,
            note: note.clone(),
        };
        let ev = TimelineEvent::Resolved {
            officer: officer.clone(),
            note,
        };
        self.officer_record(id, officer, "resolved", ev, now, &mut fx);
        Ok(fx)
    }

    /// Moves the incident to another office; escalation starts over there.
    pub fn reassign(
        &mut self,
        id: &IncidentId,
        officer: &OfficerId,
        to: &OfficeId,
        note: &str,
        now: Timestamp,
    ) -> Result<Vec<Effect>, ActionError> {
        let inc = self.existing(id)?;
        if matches!(inc.header.handling, Handling::Resolved { .. }) {
            return Err(ActionError::AlreadyResolved);
        }
        if &inc.header.office == to {
            return Err(ActionError::SameOffice(to.clone()));
        }
        if !self.tree.contains(to) {
            return Err(ActionError::UnknownOffice(to.clone()));
        }
        let note = check_note(note)?;
        let mut fx = self.timers_before_action(id, now);
        let h = &mut self.inc_mut(id).header;
        let from = std::mem::replace(&mut h.office, to.clone());
        h.escalated_to = to.clone();
        h.escalation_level = 0;
        h.escalation_since = now;
        let ev = TimelineEvent::Reassigned {
            officer: officer.clone(),
            from,
            to: to.clone(),
            note,
        };
        let entry = self.officer_record(id, officer, "reassigned", ev, now, &mut fx);
        self.notify_duty(id, to, &entry, &mut fx);
        Ok(fx)
    }
}
