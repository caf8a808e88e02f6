//! Geofence transitions: zone exit, exclusion entry, curfew breach.
//!
//! Transitions can arrive late and out of order (store-and-forward). Per rule
//! the engine remembers the latest confirmed and ended times, so a stale
//! confirmation attaches to the episode it belongs to (or opens a past,
//! already-cleared one) and a stale end never clears a newer episode.

use super::IncidentEngine;
use crate::ids::{IncidentId, SubjectId};
use crate::incident::{Condition, IncidentKind, TimelineEvent};
use crate::signal::{BreachPhase, RuleKind, SignalBody};
use crate::time::Timestamp;

use super::Effect;

/// The incident kind a rule kind produces.
pub(crate) fn kind_of(rule_kind: RuleKind) -> IncidentKind {
    match rule_kind {
        RuleKind::PermittedArea => IncidentKind::ZoneExit,
        RuleKind::ExclusionZone => IncidentKind::ExclusionEntry,
        RuleKind::Curfew => IncidentKind::CurfewBreach,
    }
}

impl IncidentEngine {
    pub(super) fn on_zone(
        &mut self,
        subject: &SubjectId,
        body: &SignalBody,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        let SignalBody::ZoneBreach {
            rule,
            rule_kind,
            phase,
            late,
            event_time,
            evidence,
        } = body
        else {
            return;
        };
        let kind = kind_of(*rule_kind);
        let late = *late || now.since(*event_time) > self.policy.late_after_ms;
        let t = *event_time;
        let cause = rule.0.clone();
        let episode = self.subject_state(subject).episodes.get(&kind).cloned();
        let track = self.subject_state_mut(subject).rules.track(kind, &rule.0);
        match phase {
            BreachPhase::Started => {
                if let Some(id) = episode {
                    let ev = TimelineEvent::Evidence {
                        cause,
                        evidence: evidence.clone(),
                        late,
                    };
                    self.record(&id, now, ev, fx);
                }
            }
            BreachPhase::Confirmed => {
                let stale_end = track.last_ended.filter(|e| *e > t);
                track.last_confirmed = Some(track.last_confirmed.map_or(t, |c| c.max(t)));
                let ev = TimelineEvent::Evidence {
                    cause: cause.clone(),
                    evidence: evidence.clone(),
                    late,
                };
                if let Some(ended) = stale_end {
                    // The episode this belongs to is already over.
                    match self.past_episode(subject, kind, t, Some(ended)) {
                        Some(id) => {
                            self.record(&id, now, ev, fx);
                        }
                        None => {
                            let id =
                                self.open_past(subject, kind, cause, t, evidence.clone(), now, fx);
                            self.clear(&id, ended, now, "rule_ended", fx);
                        }
                    }
                } else if let Some(id) = episode {
                    self.inc_mut(&id).header.causes.insert(cause);
                    self.record(&id, now, ev, fx);
                } else if let Some(id) = self.past_episode(subject, kind, t, None) {
                    self.record(&id, now, ev, fx);
                } else {
                    self.open(subject, kind, cause, t, late, evidence.clone(), now, fx);
                }
            }
            BreachPhase::Ended => {
                let stale = track.last_confirmed.is_some_and(|c| c > t);
                track.last_ended = Some(track.last_ended.map_or(t, |e| e.max(t)));
                if stale {
                    return;
                }
                if let Some(id) = episode {
                    let inc = self.inc_mut(&id);
                    if inc.header.causes.remove(&cause) && inc.header.causes.is_empty() {
                        let at = t.max(inc.header.opened_at);
                        self.clear(&id, at, now, "rule_ended", fx);
                    }
                }
            }
        }
    }

    /// A cleared incident of `subject`'s episode kind `kind` that covers
    /// event time `t`: opened at or before `t` and cleared at or after it
    /// (or at `ended` when given).
    fn past_episode(
        &self,
        subject: &SubjectId,
        kind: IncidentKind,
        t: Timestamp,
        ended: Option<Timestamp>,
    ) -> Option<IncidentId> {
        let s = self.subject_state(subject);
        s.incidents
            .iter()
            .filter_map(|id| self.state.incidents.get(id))
            .filter(|i| i.header.episode_kind == kind)
            .filter(|i| match i.header.condition {
                Condition::Cleared { at } => match ended {
                    Some(e) => i.header.opened_at <= e && at >= t,
                    None => i.header.opened_at <= t && at >= t,
                },
                Condition::Active => false,
            })
            .max_by_key(|i| i.header.opened_at)
            .map(|i| i.header.id.clone())
    }
}
