//! Incident list filters, shared by the HTTP API and its tests so that
//! "office subtree, kind, state, time" mean the same everywhere.
//!
//! The service may translate a filter to SQL; [`IncidentFilter::matches`]
//! is the reference semantics.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::OfficeId;
use crate::incident::{IncidentHeader, IncidentKind, IncidentState};
use crate::routing::OfficeTree;
use crate::time::Timestamp;

/// Which incidents to list. Empty sets mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentFilter {
    /// Only incidents whose responsible office lies in this subtree (the
    /// caller's token scope, or a narrower office inside it).
    pub office_subtree: Option<OfficeId>,
    /// Only these current kinds.
    pub kinds: BTreeSet<IncidentKind>,
    /// Only these states.
    pub states: BTreeSet<IncidentState>,
    /// Only incidents opened at or after this time.
    pub opened_from: Option<Timestamp>,
    /// Only incidents opened before this time.
    pub opened_before: Option<Timestamp>,
}

/// A filter value that is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not an incident kind code.
    #[error("unknown incident kind {0:?}")]
    UnknownKind(String),
    /// Not an incident state code.
    #[error("unknown incident state {0:?}")]
    UnknownState(String),
}

impl FilterError {
    /// Stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownKind(_) => "unknown_kind",
            Self::UnknownState(_) => "unknown_state",
        }
    }
}

/// Parses a comma-separated list of kind codes (`zone_exit,abscondment`).
pub fn parse_kinds(csv: &str) -> Result<BTreeSet<IncidentKind>, FilterError> {
    csv.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| IncidentKind::from_code(s).ok_or_else(|| FilterError::UnknownKind(s.to_owned())))
        .collect()
}

/// Parses a comma-separated list of state codes (`open,acknowledged`).
pub fn parse_states(csv: &str) -> Result<BTreeSet<IncidentState>, FilterError> {
    const ALL: [IncidentState; 4] = [
        IncidentState::Open,
        IncidentState::Acknowledged,
        IncidentState::Cleared,
        IncidentState::Resolved,
    ];
    csv.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            ALL.into_iter()
                .find(|st| st.code() == s)
                .ok_or_else(|| FilterError::UnknownState(s.to_owned()))
        })
        .collect()
}

impl IncidentFilter {
    /// True when `h` passes every part of the filter.
    pub fn matches(&self, tree: &OfficeTree, h: &IncidentHeader) -> bool {
        self.office_subtree
            .as_ref()
            .is_none_or(|root| tree.is_in_subtree(&h.office, root))
            && (self.kinds.is_empty() || self.kinds.contains(&h.kind))
            && (self.states.is_empty() || self.states.contains(&h.state()))
            && self.opened_from.is_none_or(|t| h.opened_at >= t)
            && self.opened_before.is_none_or(|t| h.opened_at < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_and_rejects_unknown_ones() {
        assert_eq!(
            parse_kinds("zone_exit, abscondment,").unwrap(),
            BTreeSet::from([IncidentKind::ZoneExit, IncidentKind::Abscondment])
        );
        assert_eq!(
            parse_kinds("zone_exit,x").unwrap_err().reason(),
            "unknown_kind"
        );
        assert_eq!(
            parse_states("open,resolved").unwrap(),
            BTreeSet::from([IncidentState::Open, IncidentState::Resolved])
        );
        assert_eq!(
            parse_states("closed").unwrap_err().reason(),
            "unknown_state"
        );
    }
}
