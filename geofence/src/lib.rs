//! Geoward zone engine.
//!
//! A pure library: no IO, no clock, no async. Time is always passed in.
//!
//! * **Zones**: [`import_geojson`] parses GeoJSON text (Polygon,
//!   MultiPolygon with holes, Point + `radius_m` circles), repairs what is
//!   safe (repeated vertices, spikes, unclosed rings, zero-area parts,
//!   ECharts-encoded rings decoded from `encodeOffsets`) and
//!   rejects the rest with a [`Defect`] naming the feature; the
//!   [`ImportReport`] lists both. Properties are documented in the import
//!   module (`id`/`adcode`/`name`, `kind`, `version`, `valid_from`,
//!   `valid_until`, `order_id`). Zones are versioned: rules name a
//!   [`ZoneId`], and a fix is judged against the version valid at the fix's
//!   time.
//! * **Index**: [`ZoneSet`] holds an R-tree over polygon-part envelopes, a
//!   coarse grid over all pieces in front of `locate`, and per part a cell
//!   grid (inside / outside / boundary cells with a lower bound of the
//!   distance to the boundary) backed by a band index (edges bucketed by
//!   latitude band) for boundary cells: point-in-polygon is exact and
//!   mostly one byte read even for 25k-vertex rings, and bounded
//!   boundary-distance queries in metres (local equirectangular frame) skip
//!   the edges when the bound settles them. [`ZoneSet::locate`],
//!   [`ZoneSet::relate`] (accuracy circle vs zone: inside / outside /
//!   boundary), [`ZoneSet::boundary_distance_m`].
//! * **Rules and tracking**: [`SubjectRules`] (permitted, exclusion, home +
//!   [`Curfew`]s in a time zone, [`LeavePermit`]s, [`SupervisionLevel`]),
//!   [`Thresholds`] (documented defaults, serde-overridable). A [`Tracker`]
//!   per subject (or an [`Engine`] holding many) turns fixes into
//!   [`Transition`]s with `observe(fix, now)` and `tick(now)`: breach
//!   started / confirmed / ended and possible crossings, with evidence,
//!   event time and processing time, late data placed in event-time order.
//!   [`Engine::handle`] gives a [`SubjectHandle`] for
//!   [`Engine::observe_handle`], which skips the id lookup per fix.
//!
//! Wire types live in `geoward-proto`; this crate defines its own [`Fix`]
//! and the service converts.

// Re-exported because they appear in the public API (times, time zones).
pub use chrono;
pub use chrono_tz;

mod bands;
mod coarse;
mod engine;
mod fix;
pub mod geodesy;
mod grid;
mod hysteresis;
mod import;
mod judge;
mod repair;
mod report;
mod rules;
#[cfg(test)]
mod test_rng;
mod thresholds;
mod tracker;
#[cfg(test)]
mod tracker_model_tests;
#[cfg(test)]
mod tracker_ref;
mod transition;
mod window;
mod zone;
mod zone_set;

pub use engine::{Engine, ObserveError, SubjectHandle};
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
