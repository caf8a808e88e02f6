//! What import did: repairs applied and defects that rejected a feature.

use std::fmt;

/// Which input feature a repair or defect concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRef {
    /// Position in the input (`features[index]`, or the zone's position for
    /// [`crate::ZoneSet::build`]).
    pub index: usize,
    /// The zone id, when it could be determined.
    pub id: Option<String>,
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "feature {} (id {id:?})", self.index),
            None => write!(f, "feature {}", self.index),
        }
    }
}

/// A safe repair applied during import; the zone was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepairKind {
    /// Consecutive identical vertices collapsed to one.
    RepeatedVertex,
    /// A ring whose last vertex differed from its first was closed.
    UnclosedRing,
    /// A vertex where the ring doubles back on itself (A→B→A) was removed.
    Spike,
    /// A hole without area was dropped.
    ZeroAreaHole,
    /// A polygon part without area was dropped (the zone kept other parts).
    ZeroAreaPart,
    /// A ring stored as an ECharts-encoded string (with `encodeOffsets`)
    /// was decoded to positions.
    DecodedEchartsRing,
}

impl RepairKind {
    /// Stable code for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::RepeatedVertex => "repeated_vertex",
            Self::UnclosedRing => "unclosed_ring",
            Self::Spike => "spike",
            Self::ZeroAreaHole => "zero_area_hole",
            Self::ZeroAreaPart => "zero_area_part",
            Self::DecodedEchartsRing => "decoded_echarts_ring",
        }
    }
}

/// One kind of repair applied `count` times to one feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub feature: FeatureRef,
    pub kind: RepairKind,
    pub count: usize,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: repaired {} x{}",
            self.feature,
            self.kind.reason(),
            self.count
        )
    }
}

/// A defect that cannot be repaired safely; the feature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefectKind {
    #[error("not a geojson feature")]
    NotAFeature,
    #[error("feature has no geometry")]
    MissingGeometry,
    #[error("unsupported geometry type {0:?} (want Polygon, MultiPolygon or Point with radius_m)")]
    UnsupportedGeometry(String),
    #[error("invalid coordinates: {0}")]
    InvalidCoordinates(String),
    #[error("no zone id (feature id, or property id, zone_id, adcode or name)")]
    MissingId,
    #[error("invalid property {name}: {detail}")]
    InvalidProperty { name: &'static str, detail: String },
    #[error("invalid circle radius: {0}")]
    InvalidRadius(String),
    #[error("geometry has no area left after repair")]
    EmptyGeometry,
    #[error("duplicate zone id and version {0}")]
    DuplicateId(u32),
}

impl DefectKind {
    /// Stable code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotAFeature => "not_a_feature",
            Self::MissingGeometry => "missing_geometry",
            Self::UnsupportedGeometry(_) => "unsupported_geometry",
            Self::InvalidCoordinates(_) => "invalid_coordinates",
            Self::MissingId => "missing_id",
            Self::InvalidProperty { .. } => "invalid_property",
            Self::InvalidRadius(_) => "invalid_radius",
            Self::EmptyGeometry => "empty_geometry",
            Self::DuplicateId(_) => "duplicate_id",
        }
    }
}

/// A rejected feature and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defect {
    pub feature: FeatureRef,
    pub kind: DefectKind,
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.feature,
            self.kind,
            self.kind.reason()
        )
    }
}

/// Summary of an import or build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Features (or zones) seen.
    pub features: usize,
    /// Zones accepted into the set.
    pub accepted: usize,
    pub repairs: Vec<Repair>,
    pub defects: Vec<Defect>,
}

impl ImportReport {
    /// True when nothing was rejected (repairs are fine).
    pub fn is_clean(&self) -> bool {
        self.defects.is_empty()
    }

    /// Total count of repairs of one kind.
    pub fn repair_count(&self, kind: RepairKind) -> usize {
        self.repairs
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.count)
            .sum()
    }
}
