//! What the engine emits: state changes of breach episodes, never per-fix
//! alerts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fix::Fix;
use crate::thresholds::RuleKind;
use crate::zone::ZoneId;

/// Identifies an engine subject.
pub type SubjectId = String;

/// Which rule of the subject a transition concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleRef {
    /// Outside all permitted zones.
    Permitted,
    /// Inside this exclusion zone.
    Exclusion(ZoneId),
    /// Not home during curfew.
    Curfew,
}

impl RuleRef {
    pub fn kind(&self) -> RuleKind {
        match self {
            Self::Permitted => RuleKind::Permitted,
            Self::Exclusion(_) => RuleKind::Exclusion,
            Self::Curfew => RuleKind::Curfew,
        }
    }
}

/// The kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// A first confident violating fix: a breach may be starting (pending).
    BreachStarted,
    /// Enough evidence: the breach is real.
    BreachConfirmed,
    /// The episode is over (sustained return, rule no longer active, or
    /// revised by late data). `was_confirmed` says whether it had been
    /// confirmed.
    BreachEnded { was_confirmed: bool },
    /// Two sparse fixes outside an exclusion zone whose straight segment
    /// meets it: the subject may have crossed it. Not a confirmed entry.
    PossibleCrossing,
}

impl TransitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BreachStarted => "breach_started",
            Self::BreachConfirmed => "breach_confirmed",
            Self::BreachEnded { .. } => "breach_ended",
            Self::PossibleCrossing => "possible_crossing",
        }
    }
}

/// One transition of one subject's breach episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub subject: SubjectId,
    /// Episode number, unique per subject: all transitions of one breach
    /// share it (one incident per episode).
    pub episode: u64,
    pub rule: RuleRef,
    pub kind: TransitionKind,
    /// When it happened, in fix time.
    pub event_time: DateTime<Utc>,
    /// The `now` of the call that produced it.
    pub processed_at: DateTime<Utc>,
    /// Event time is older than processing time by more than
    /// `Thresholds::late_after_seconds` (revealed by late data).
    pub late: bool,
    /// The fixes that prove it (violating fixes for a confirmation, returns
    /// for an end, the two segment ends for a possible crossing).
    pub evidence: Vec<Fix>,
}
