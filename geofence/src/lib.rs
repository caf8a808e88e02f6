//! Geoward zone engine.
//!
//! A pure library: no IO, no clock, no async. It imports zones from GeoJSON
//! text ([`import_geojson`]), indexes them ([`ZoneSet`]: an R-tree over
//! polygon parts plus a band index per part for exact point-in-polygon and
//! bounded boundary distance), and turns each subject's stream of fixes into
//! confirmed transitions ([`Engine`], [`Tracker`]).
//!
//! Wire types live in `geoward-proto`; this crate defines its own [`Fix`]
//! and the service converts.

mod bands;
mod engine;
mod fix;
pub mod geodesy;
mod hysteresis;
mod import;
mod judge;
mod repair;
mod report;
mod rules;
mod thresholds;
mod tracker;
mod transition;
mod zone;
mod zone_set;

pub use engine::{Engine, ObserveError};
pub use fix::{Fix, FixError, Source};
pub use import::{ImportError, import_geojson, import_geojson_slice, import_value};
pub use report::{Defect, DefectKind, FeatureRef, ImportReport, Repair, RepairKind};
pub use rules::{Curfew, LeaveGrant, LeavePermit, MAX_EXCLUSIONS, RulesError, SubjectRules};
pub use thresholds::{
    LevelThresholds, MinAccuracy, RuleKind, RuleThresholds, SupervisionLevel, Thresholds,
};
pub use tracker::{Tracker, TrackerStats};
pub use transition::{RuleRef, SubjectId, Transition, TransitionKind};
pub use zone::{Shape, Zone, ZoneId, ZoneKind};
pub use zone_set::{Relation, ZoneRef, ZoneSet};
