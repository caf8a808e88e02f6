//! What one subject must do: permitted zones, exclusion zones, home and
//! curfew, leave permits, supervision level.

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::thresholds::{RuleKind, SupervisionLevel};
use crate::zone::ZoneId;

/// Most exclusion zones per subject (keeps per-fix verdicts in one word).
pub const MAX_EXCLUSIONS: usize = 14;

/// A weekly window during which the subject must be inside the home zone.
///
/// `days` are the days the window *starts* on (local time); an `end` not
/// after `start` means the window runs past midnight into the next day.
/// An empty `days` list means every day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Curfew {
    #[serde(default)]
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// What an approved leave grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveGrant {
    /// An extra permitted zone (destination, route) for the leave's duration.
    ExtraZone(ZoneId),
    /// Rules of this kind are suspended for the leave's duration.
    Suspend(RuleKind),
}

/// A time-boxed leave; it ends by itself at `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeavePermit {
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub until: DateTime<Utc>,
    pub grant: LeaveGrant,
}

impl LeavePermit {
    pub fn is_active_at(&self, t: DateTime<Utc>) -> bool {
        t >= self.from && t < self.until
    }
}

/// A subject's rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRules {
    /// The subject must be inside one of these (empty: no such rule).
    #[serde(default)]
    pub permitted: Vec<ZoneId>,
    /// The subject must be outside each of these.
    #[serde(default)]
    pub exclusions: Vec<ZoneId>,
    /// Home zone, needed when there are curfews.
    #[serde(default)]
    pub home: Option<ZoneId>,
    #[serde(default)]
    pub curfews: Vec<Curfew>,
    #[serde(default)]
    pub leaves: Vec<LeavePermit>,
    #[serde(default)]
    pub level: SupervisionLevel,
    /// Time zone of curfew windows.
    #[serde(default = "default_tz")]
    pub time_zone: Tz,
}

fn default_tz() -> Tz {
    chrono_tz::Asia::Shanghai
}

impl Default for SubjectRules {
    fn default() -> Self {
        Self {
            permitted: Vec::new(),
            exclusions: Vec::new(),
            home: None,
            curfews: Vec::new(),
            leaves: Vec::new(),
            level: SupervisionLevel::Normal,
            time_zone: default_tz(),
        }
    }
}

/// Rules that cannot be enforced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("unknown zone {0}")]
    UnknownZone(ZoneId),
    #[error("curfew without a home zone")]
    CurfewWithoutHome,
    #[error("more than {MAX_EXCLUSIONS} exclusion zones")]
    TooManyExclusions,
    #[error("leave permit ends before it starts")]
    EmptyLeave,
}

impl RulesError {
    /// Stable code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownZone(_) => "unknown_zone",
            Self::CurfewWithoutHome => "curfew_without_home",
            Self::TooManyExclusions => "too_many_exclusions",
            Self::EmptyLeave => "empty_leave",
        }
    }
}
