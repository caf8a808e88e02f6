//! What an incident is: kind, severity, handling state and timeline.
//!
//! The engine decides; this module only holds the record and its rules of
//! consistency (what "handled" means, what a state summary is).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{IncidentId, OfficeId, OfficerId, SubjectId};
use crate::signal::{EvidenceFix, Position};
use crate::time::Timestamp;

/// Kind of incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// 越界: left the permitted area.
    ZoneExit,
    /// 禁区: entered an exclusion zone.
    ExclusionEntry,
    /// Outside home during curfew hours.
    CurfewBreach,
    /// 失联: no message for longer than allowed.
    LostContact,
    /// Heartbeats arrive but no GNSS fix.
    NoFix,
    /// 拆卸/断带: strap or case opened.
    Tamper,
    /// 低电.
    LowBattery,
    /// 关机.
    PowerOff,
    /// 人机分离: bracelet and phone apart.
    Separation,
    /// 脱管: a zone exit or lost contact that persisted; the most severe kind.
    Abscondment,
}

impl IncidentKind {
    /// All kinds, for metrics and tests.
    pub const ALL: [IncidentKind; 10] = [
        Self::ZoneExit,
        Self::ExclusionEntry,
        Self::CurfewBreach,
        Self::LostContact,
        Self::NoFix,
        Self::Tamper,
        Self::LowBattery,
        Self::PowerOff,
        Self::Separation,
        Self::Abscondment,
    ];

    /// Stable code (metric label, id component, API filter value).
    pub fn code(self) -> &'static str {
        match self {
            Self::ZoneExit => "zone_exit",
            Self::ExclusionEntry => "exclusion_entry",
            Self::CurfewBreach => "curfew_breach",
            Self::LostContact => "lost_contact",
            Self::NoFix => "no_fix",
            Self::Tamper => "tamper",
            Self::LowBattery => "low_battery",
            Self::PowerOff => "power_off",
            Self::Separation => "separation",
            Self::Abscondment => "abscondment",
        }
    }

    /// Parses [`IncidentKind::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Default severity of the kind.
    pub fn severity(self) -> Severity {
        match self {
            Self::Abscondment => Severity::Critical,
            Self::ZoneExit | Self::ExclusionEntry | Self::LostContact | Self::Tamper => {
                Severity::High
            }
            Self::CurfewBreach | Self::NoFix | Self::PowerOff | Self::Separation => {
                Severity::Medium
            }
            Self::LowBattery => Severity::Low,
        }
    }
}

/// How urgent an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Equipment care, no escalation.
    Low,
    /// Needs attention during the shift.
    Medium,
    /// Needs an officer's acknowledgement and resolution note.
    High,
    /// Abscondment: police are told.
    Critical,
}

impl Severity {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// High and critical incidents count as handled only after an
    /// acknowledgement and a resolution note, even when they cleared.
    pub fn needs_resolution(self) -> bool {
        self >= Severity::High
    }
}

/// Whether the underlying condition still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Condition {
    /// Still going on: later evidence attaches here.
    Active,
    /// Cleared by itself (back inside, device online again).
    Cleared {
        /// When the condition ended (event time).
        at: Timestamp,
    },
}

/// What officers did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Handling {
    /// Nobody has acknowledged it yet: escalation timers run.
    Unacknowledged,
    /// An officer took it.
    Acknowledged {
        /// Who.
        by: OfficerId,
        /// When.
        at: Timestamp,
    },
    /// An officer closed it with a note; terminal.
    Resolved {
        /// Who acknowledged it (the resolver when low severity skipped ack).
        acknowledged_by: Option<OfficerId>,
        /// Who resolved it.
        by: OfficerId,
        /// When.
        at: Timestamp,
        /// Resolution note.
        note: String,
    },
}

/// One-word summary for lists and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Active and unacknowledged.
    Open,
    /// Acknowledged, not resolved, condition active.
    Acknowledged,
    /// Condition cleared by itself, not resolved.
    Cleared,
    /// Resolved by an officer.
    Resolved,
}

impl IncidentState {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Cleared => "cleared",
            Self::Resolved => "resolved",
        }
    }
}

/// Everything about an incident except its timeline: what the service
/// stores in its incidents table and lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentHeader {
    /// Deterministic id: `{subject}:{kind}:{opened_at}`.
    pub id: IncidentId,
    /// Whom it concerns.
    pub subject: SubjectId,
    /// The responsible office (changes on reassignment only).
    pub office: OfficeId,
    /// Current kind (becomes [`IncidentKind::Abscondment`] on promotion).
    pub kind: IncidentKind,
    /// The kind the episode started as; the engine keys episodes by it.
    pub episode_kind: IncidentKind,
    /// Current severity.
    pub severity: Severity,
    /// Condition: active or cleared.
    pub condition: Condition,
    /// Officers' handling.
    pub handling: Handling,
    /// When the condition started (event time; may lie in the past).
    pub opened_at: Timestamp,
    /// When the engine learnt of it.
    pub detected_at: Timestamp,
    /// Opened from late (store-and-forward) data.
    pub late: bool,
    /// 0 = the responsible office; n = n offices up the chain.
    pub escalation_level: u32,
    /// The office currently notified (the responsible one or a superior).
    pub escalated_to: OfficeId,
    /// When the current escalation step began (detection, last escalation,
    /// promotion or reassignment).
    pub escalation_since: Timestamp,
    /// What keeps the condition active: rule ids for zone kinds, `strap` /
    /// `case` for tamper, device ids for power kinds.
    pub causes: BTreeSet<String>,
    /// Last known position when opened or promoted.
    pub last_position: Option<Position>,
    /// Number of timeline entries so far.
    pub timeline_len: u32,
}

impl IncidentHeader {
    /// One-word state.
    pub fn state(&self) -> IncidentState {
        match (&self.handling, self.condition) {
            (Handling::Resolved { .. }, _) => IncidentState::Resolved,
            (_, Condition::Cleared { .. }) => IncidentState::Cleared,
            (Handling::Acknowledged { .. }, Condition::Active) => IncidentState::Acknowledged,
            (Handling::Unacknowledged, Condition::Active) => IncidentState::Open,
        }
    }

    /// True when nobody has to do anything more: resolved, or (for low and
    /// medium severity) cleared by itself.
    pub fn handled(&self) -> bool {
        match self.handling {
            Handling::Resolved { .. } => true,
            _ => {
                !self.severity.needs_resolution()
                    && matches!(self.condition, Condition::Cleared { .. })
            }
        }
    }

    /// True while the condition holds.
    pub fn is_active(&self) -> bool {
        self.condition == Condition::Active
    }

    /// True once an officer acknowledged or resolved it.
    pub fn is_acknowledged(&self) -> bool {
        !matches!(self.handling, Handling::Unacknowledged)
    }
}

/// What a timeline entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimelineEvent {
    /// The incident opened.
    Opened {
        /// What opened it (rule id, device id, …).
        cause: String,
        /// Supporting fixes.
        evidence: Vec<EvidenceFix>,
    },
    /// More evidence for the same episode.
    Evidence {
        /// Rule or device it came from.
        cause: String,
        /// Supporting fixes.
        evidence: Vec<EvidenceFix>,
        /// True when it arrived late.
        late: bool,
    },
    /// The condition cleared by itself.
    Cleared {
        /// Why (`rule_ended`, `contact_restored`, …).
        reason: String,
    },
    /// Escalated one office up.
    Escalated {
        /// New level.
        level: u32,
        /// Office now notified.
        office: OfficeId,
    },
    /// Became abscondment.
    Promoted {
        /// The kind it was.
        from: IncidentKind,
    },
    /// The police liaison was told.
    PoliceNotified {
        /// Last known position.
        last_position: Option<Position>,
        /// When it was taken.
        last_seen_at: Option<Timestamp>,
        /// Search radius in metres.
        search_radius_m: f64,
    },
    /// An officer acknowledged.
    Acknowledged {
        /// Who.
        officer: OfficerId,
    },
    /// An officer added a note.
    Note {
        /// Who.
        officer: OfficerId,
        /// Text.
        text: String,
    },
    /// An officer resolved it.
    Resolved {
        /// Who.
        officer: OfficerId,
        /// Resolution note.
        note: String,
    },
    /// An officer moved it to another office.
    Reassigned {
        /// Who.
        officer: OfficerId,
        /// Previous office.
        from: OfficeId,
        /// New office.
        to: OfficeId,
        /// Why.
        note: String,
    },
}

impl TimelineEvent {
    /// Stable code (audit action, SSE event name).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "opened",
            Self::Evidence { .. } => "evidence",
            Self::Cleared { .. } => "cleared",
            Self::Escalated { .. } => "escalated",
            Self::Promoted { .. } => "promoted",
            Self::PoliceNotified { .. } => "police_notified",
            Self::Acknowledged { .. } => "acknowledged",
            Self::Note { .. } => "note",
            Self::Resolved { .. } => "resolved",
            Self::Reassigned { .. } => "reassigned",
        }
    }
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Position in the timeline, from 0.
    pub seq: u32,
    /// When it was recorded (engine `now`).
    pub at: Timestamp,
    /// What happened.
    pub event: TimelineEvent,
}

/// An incident with its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Current state.
    pub header: IncidentHeader,
    /// Everything that happened, in order.
    pub timeline: Vec<TimelineEntry>,
}

impl Incident {
    /// Appends an entry and returns a copy of it.
    pub(crate) fn push(&mut self, at: Timestamp, event: TimelineEvent) -> TimelineEntry {
        let entry = TimelineEntry {
            seq: self.header.timeline_len,
            at,
            event,
        };
        self.header.timeline_len = self.header.timeline_len.saturating_add(1);
        self.timeline.push(entry.clone());
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_round_trip() {
        for k in IncidentKind::ALL {
            assert_eq!(IncidentKind::from_code(k.code()), Some(k));
        }
        assert_eq!(IncidentKind::from_code("nope"), None);
    }
}
