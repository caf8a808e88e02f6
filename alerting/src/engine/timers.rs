//! Everything that happens because time passed: lost contact, no GNSS fix,
//! abscondment promotion and escalation.
//!
//! Deadlines are computed from stored times, never from when the tick
//! happened, so a late tick yields the same incidents (opened at the
//! deadline) and the same escalation levels as a punctual one.

use super::{Effect, IncidentEngine};
use crate::ids::{IncidentId, SubjectId};
use crate::incident::{Handling, IncidentKind, Severity, TimelineEvent};
use crate::notify::PoliceBrief;
use crate::time::Timestamp;

/// Cause of a lost-contact episode (and of silence folded into power-off).
const SILENCE: &str = "silence";

impl IncidentEngine {
    /// Cheap over-approximation of "some timer of `s` fires at `now`":
    /// false only when [`IncidentEngine::run_timers`] would do nothing.
    pub(super) fn timers_may_be_due(&self, s: &super::SubjectState, now: Timestamp) -> bool {
        let level = s.config.level;
        let lost_after = self
            .policy
            .lost_contact_after_ms(s.config.expected_interval_ms, level);
        let lost_due = now >= s.last_contact.plus_ms(lost_after)
            && !s.episodes.contains_key(&IncidentKind::LostContact);
        let no_fix_due = now >= s.last_fix.plus_ms(self.policy.no_fix_after_ms.get(level))
            && s.last_contact > s.last_fix;
        // Escalation and promotion concern held incidents, which are rare.
        lost_due || no_fix_due || !s.incidents.is_empty()
    }

    pub(super) fn run_timers(&mut self, subject: &SubjectId, now: Timestamp, fx: &mut Vec<Effect>) {
        let s = self.subject_state(subject);
        let level = s.config.level;
        let lost_after = self
            .policy
            .lost_contact_after_ms(s.config.expected_interval_ms, level);
        let deadline = s.last_contact.plus_ms(lost_after);
        if now >= deadline && !s.episodes.contains_key(&IncidentKind::LostContact) {
            match s.episodes.get(&IncidentKind::PowerOff).cloned() {
                // Silence after an announced power-off is that episode going
                // on, not a second one: one incident per episode.
                Some(power_off) => self.fold_silence(subject, &power_off, now, fx),
                None => {
                    self.open(
                        subject,
                        IncidentKind::LostContact,
                        SILENCE.to_owned(),
                        deadline,
                        false,
                        Vec::new(),
                        now,
                        fx,
                    );
                }
            }
        }

        let s = self.subject_state(subject);
        let no_fix_deadline = s.last_fix.plus_ms(self.policy.no_fix_after_ms.get(level));
        if now >= no_fix_deadline
            && s.last_contact > s.last_fix
            && !s.episodes.contains_key(&IncidentKind::LostContact)
            && !s.episodes.contains_key(&IncidentKind::NoFix)
        {
            self.open(
                subject,
                IncidentKind::NoFix,
                "no_gnss_fix".to_owned(),
                no_fix_deadline,
                false,
                Vec::new(),
                now,
                fx,
            );
        }

        for source in [IncidentKind::ZoneExit, IncidentKind::LostContact] {
            let s = self.subject_state(subject);
            let Some(id) = s.episodes.get(&source).cloned() else {
                continue;
            };
            let absconded = s.episodes.values().any(|e| {
                self.state
                    .incidents
                    .get(e)
                    .is_some_and(|i| i.header.kind == IncidentKind::Abscondment)
            });
            let h = &self.state.incidents[&id].header;
            let blocked = match &h.handling {
                Handling::Resolved { .. } => true,
                Handling::Acknowledged { .. } => source == IncidentKind::ZoneExit,
                Handling::Unacknowledged => false,
            };
            let threshold = match source {
                IncidentKind::ZoneExit => self.policy.abscond_after_exit_ms.get(level),
                _ => self.policy.abscond_after_lost_contact_ms.get(level),
            };
            // An exit counts from when we learnt of it (late uploads of an
            // old exit usually bring its end in the same batch); lost
            // contact from its deadline, whenever the tick came (a power-off
            // that went silent has its own earlier opening time, so the
            // deadline is computed from the last contact instead).
            let since = match source {
                IncidentKind::ZoneExit => h.detected_at,
                _ if h.episode_kind == IncidentKind::LostContact => h.opened_at,
                _ => s.last_contact.plus_ms(
                    self.policy
                        .lost_contact_after_ms(s.config.expected_interval_ms, level),
                ),
            };
            if !absconded && !blocked && now.since(since) >= threshold {
                self.promote(subject, &id, now, fx);
            }
        }

        let ids: Vec<IncidentId> = self
            .subject_state(subject)
            .incidents
            .iter()
            .cloned()
            .collect();
        for id in ids {
            self.escalate_due(&id, level, now, fx);
        }
    }

    /// Records that the subject stayed silent past the lost-contact deadline
    /// on its open power-off incident, which from now on also stands for the
    /// lost contact: contact clears it, and it becomes abscondment when the
    /// silence lasts as long as a lost contact would need.
    fn fold_silence(
        &mut self,
        subject: &SubjectId,
        power_off: &IncidentId,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        self.subject_state_mut(subject)
            .episodes
            .insert(IncidentKind::LostContact, power_off.clone());
        if self
            .inc_mut(power_off)
            .header
            .causes
            .insert(SILENCE.to_owned())
        {
            let ev = TimelineEvent::Evidence {
                cause: SILENCE.to_owned(),
                evidence: Vec::new(),
                late: false,
            };
            self.record(power_off, now, ev, fx);
        }
    }

    /// Turns a zone exit or lost contact into abscondment and tells the
    /// police liaison where and since when to search.
    fn promote(
        &mut self,
        subject: &SubjectId,
        id: &IncidentId,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        let last = self.subject_state(subject).last_position;
        let inc = self.inc_mut(id);
        let from = inc.header.kind;
        inc.header.kind = IncidentKind::Abscondment;
        inc.header.severity = Severity::Critical;
        inc.header.escalation_since = now;
        if let Some((_, p)) = last {
            inc.header.last_position = Some(p);
        }
        let (office, escalated_to) = (inc.header.office.clone(), inc.header.escalated_to.clone());
        let entry = self.record(id, now, TimelineEvent::Promoted { from }, fx);
        self.notify_duty(id, &office, &entry, fx);
        if escalated_to != office {
            self.notify_duty(id, &escalated_to, &entry, fx);
        }
        self.audit_system(id, "promoted", &entry, fx);

        let (last_position, last_seen_at, elapsed_ms) = match last {
            Some((at, p)) => (Some(p), Some(at), now.since(at).max(0)),
            None => (
                None,
                None,
                now.since(self.state.incidents[id].header.opened_at).max(0),
            ),
        };
        let search_radius_m = match last_position {
            Some(p) => self.policy.search_radius_m(elapsed_ms, p.accuracy_m),
            None => self.policy.search_radius_max_m,
        };
        let entry = self.record(
            id,
            now,
            TimelineEvent::PoliceNotified {
                last_position,
                last_seen_at,
                search_radius_m,
            },
            fx,
        );
        let brief = PoliceBrief {
            subject: subject.clone(),
            incident: id.clone(),
            last_position,
            last_seen_at,
            elapsed_ms,
            search_radius_m,
        };
        self.notify_police(id, &entry, &brief, fx);
        self.audit_system(id, "police_notified", &entry, fx);
    }

    /// Escalates one office up per elapsed acknowledgement timeout while
    /// nobody acknowledged, up to the root of the chain.
    fn escalate_due(
        &mut self,
        id: &IncidentId,
        level: crate::policy::SupervisionLevel,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        loop {
            let Some(inc) = self.state.incidents.get(id) else {
                return;
            };
            let h = &inc.header;
            if h.is_acknowledged() || !(h.is_active() || h.severity.needs_resolution()) {
                return;
            }
            let Some(timeout) = self.policy.ack_timeout_ms(h.severity, level) else {
                return;
            };
            let due = h.escalation_since.plus_ms(timeout);
            if now < due {
                return;
            }
            let next = h.escalation_level.saturating_add(1);
            let chain = self.tree.chain(&h.office);
            let Some(office) = usize::try_from(next)
                .ok()
                .and_then(|n| chain.get(n))
                .cloned()
            else {
                return;
            };
            let inc = self.inc_mut(id);
            inc.header.escalation_level = next;
            inc.header.escalated_to = office.clone();
            inc.header.escalation_since = due;
            let entry = self.record(
                id,
                now,
                TimelineEvent::Escalated {
                    level: next,
                    office: office.clone(),
                },
                fx,
            );
            self.notify_duty(id, &office, &entry, fx);
            self.audit_system(id, "escalated", &entry, fx);
        }
    }
}
