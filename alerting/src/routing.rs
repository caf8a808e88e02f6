//! The office tree and where notifications go.
//!
//! Offices form a tree (justice office → county bureau → city bureau).
//! Escalation walks up the chain; superior bureaus see their whole subtree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{OfficeId, TargetId};

/// Level of an office in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfficeKind {
    /// 司法所, one per township or street.
    JusticeOffice,
    /// 县(区)司法局.
    CountyBureau,
    /// 市司法局.
    CityBureau,
}

/// How a target is reached; secrets (webhook keys, broker credentials) stay
/// with the service and are looked up by target id. The officers' live feed
/// is not a target: every office has one, fed from every incident change
/// (see [`crate::sse`]), not from notifications.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TargetKind {
    /// HTTP POST of JSON, HMAC-signed.
    Webhook {
        /// Where to post.
        url: String,
    },
    /// The office's MQTT alert topic (the service publishes on the topic
    /// `geoward-proto` defines for it: `geoward/v1/office/{office}/alerts`).
    Mqtt,
}

/// Who a target serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetRole {
    /// The office's duty officers: every incident of the office.
    Duty,
    /// The police liaison: abscondment only, with search details.
    PoliceLiaison,
}

/// One place notifications go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeliveryTarget {
    /// Unique across the tree.
    pub id: TargetId,
    /// Transport.
    pub kind: TargetKind,
    /// Audience.
    pub role: TargetRole,
}

/// A justice office or bureau.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Office {
    /// Unique id; letters, digits, `-`, `_` and `.` only (it becomes an MQTT
    /// topic level).
    pub id: OfficeId,
    /// The superior office; `None` for the root.
    pub parent: Option<OfficeId>,
    /// Level in the hierarchy.
    pub kind: OfficeKind,
    /// Human name.
    pub name: String,
    /// Where its notifications go.
    pub targets: Vec<DeliveryTarget>,
}

/// A validated forest of offices (one tree per city).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OfficeTree {
    offices: BTreeMap<OfficeId, Office>,
}

/// Why an office list is not a valid tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// Two offices share an id.
    #[error("duplicate office id {0}")]
    DuplicateOffice(OfficeId),
    /// Two targets share an id.
    #[error("duplicate target id {0}")]
    DuplicateTarget(TargetId),
    /// A parent that is not in the list.
    #[error("office {office} has unknown parent {parent}")]
    UnknownParent {
        /// The child.
        office: OfficeId,
        /// The missing parent.
        parent: OfficeId,
    },
    /// Following parents comes back to the start.
    #[error("office {0} is part of a parent cycle")]
    Cycle(OfficeId),
    /// An id that cannot be an MQTT topic level.
    #[error("office id {0:?} must be non-empty letters, digits, '-', '_' or '.'")]
    InvalidOfficeId(String),
}

impl RoutingError {
    /// Stable reason code for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::DuplicateOffice(_) => "duplicate_office",
            Self::DuplicateTarget(_) => "duplicate_target",
            Self::UnknownParent { .. } => "unknown_parent",
            Self::Cycle(_) => "cycle",
            Self::InvalidOfficeId(_) => "invalid_office_id",
        }
    }
}

fn valid_office_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl OfficeTree {
    /// Validates and builds the tree.
    pub fn new(offices: Vec<Office>) -> Result<Self, RoutingError> {
        let mut map = BTreeMap::new();
        let mut targets = std::collections::BTreeSet::new();
        for office in offices {
            if !valid_office_id(office.id.as_str()) {
                return Err(RoutingError::InvalidOfficeId(office.id.0));
            }
            for t in &office.targets {
                if !targets.insert(t.id.clone()) {
                    return Err(RoutingError::DuplicateTarget(t.id.clone()));
                }
            }
            if map.contains_key(&office.id) {
                return Err(RoutingError::DuplicateOffice(office.id));
            }
            map.insert(office.id.clone(), office);
        }
        for office in map.values() {
            if let Some(parent) = &office.parent
                && !map.contains_key(parent)
            {
                return Err(RoutingError::UnknownParent {
                    office: office.id.clone(),
                    parent: parent.clone(),
                });
            }
        }
        let tree = Self { offices: map };
        for id in tree.offices.keys() {
            let mut cur = tree.offices[id].parent.as_ref();
            let mut steps = 0usize;
            while let Some(p) = cur {
                steps += 1;
                if p == id || steps > tree.offices.len() {
                    return Err(RoutingError::Cycle(id.clone()));
                }
                cur = tree.offices[p].parent.as_ref();
            }
        }
        Ok(tree)
    }

    /// The office with `id`.
    pub fn office(&self, id: &OfficeId) -> Option<&Office> {
        self.offices.get(id)
    }

    /// True when `id` is a known office.
    pub fn contains(&self, id: &OfficeId) -> bool {
        self.offices.contains_key(id)
    }

    /// All offices, ordered by id.
    pub fn offices(&self) -> impl Iterator<Item = &Office> {
        self.offices.values()
    }

    /// The escalation chain: `office` itself, its parent, … up to the root.
    /// Empty for an unknown office.
    pub fn chain(&self, office: &OfficeId) -> Vec<OfficeId> {
        let mut out = Vec::new();
        let mut cur = self.offices.get(office);
        while let Some(o) = cur {
            out.push(o.id.clone());
            cur = o.parent.as_ref().and_then(|p| self.offices.get(p));
        }
        out
    }

    /// True when `office` is `root` or lies below it: the scope check for an
    /// office token.
    pub fn is_in_subtree(&self, office: &OfficeId, root: &OfficeId) -> bool {
        self.chain(office).iter().any(|o| o == root)
    }

    /// Targets of `office` with `role`.
    pub fn targets(&self, office: &OfficeId, role: TargetRole) -> Vec<&DeliveryTarget> {
        self.offices
            .get(office)
            .map(|o| o.targets.iter().filter(|t| t.role == role).collect())
            .unwrap_or_default()
    }

    /// The police liaison targets nearest to `office` going up the chain
    /// (a justice office usually has none; its county bureau does).
    pub fn police_liaison_targets(&self, office: &OfficeId) -> Vec<&DeliveryTarget> {
        for o in self.chain(office) {
            let t = self.targets(&o, TargetRole::PoliceLiaison);
            if !t.is_empty() {
                return t;
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office(id: &str, parent: Option<&str>, kind: OfficeKind) -> Office {
        Office {
            id: id.into(),
            parent: parent.map(OfficeId::from),
            kind,
            name: id.to_owned(),
            targets: vec![],
        }
    }

    #[test]
    fn chain_walks_to_the_root() {
        let tree = OfficeTree::new(vec![
            office("city", None, OfficeKind::CityBureau),
            office("county", Some("city"), OfficeKind::CountyBureau),
            office("jo", Some("county"), OfficeKind::JusticeOffice),
        ])
        .unwrap();
        let chain: Vec<_> = tree.chain(&"jo".into()).into_iter().map(|o| o.0).collect();
        assert_eq!(chain, ["jo", "county", "city"]);
        assert!(tree.is_in_subtree(&"jo".into(), &"city".into()));
        assert!(!tree.is_in_subtree(&"city".into(), &"jo".into()));
    }

    #[test]
    fn bad_trees_are_rejected_with_reasons() {
        let cycle = OfficeTree::new(vec![
            office("a", Some("b"), OfficeKind::JusticeOffice),
            office("b", Some("a"), OfficeKind::CountyBureau),
        ]);
        assert_eq!(cycle.unwrap_err().reason(), "cycle");
        let orphan = OfficeTree::new(vec![office("a", Some("x"), OfficeKind::JusticeOffice)]);
        assert_eq!(orphan.unwrap_err().reason(), "unknown_parent");
        let bad = OfficeTree::new(vec![office("a/#", None, OfficeKind::CityBureau)]);
        assert_eq!(bad.unwrap_err().reason(), "invalid_office_id");
        let dup = OfficeTree::new(vec![
            office("a", None, OfficeKind::CityBureau),
            office("a", None, OfficeKind::CityBureau),
        ]);
        assert_eq!(dup.unwrap_err().reason(), "duplicate_office");
    }
}
