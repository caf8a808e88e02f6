//! Zones: what they are, independent of any index.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Stable identifier of a zone, shared by all its versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ZoneId(String);

impl ZoneId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ZoneId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// What a zone means for a subject whose rules reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// The subject must stay inside (county of residence, leave destination).
    #[default]
    Permitted,
    /// The subject must stay outside (a court's exclusion order).
    Exclusion,
    /// The subject must be inside during curfew windows.
    Home,
}

impl ZoneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permitted => "permitted",
            Self::Exclusion => "exclusion",
            Self::Home => "home",
        }
    }
}

/// Geometry of a zone in WGS 84 degrees (`x` = longitude, `y` = latitude).
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// One or more polygons with holes; the zone is their union.
    Polygons(geo::MultiPolygon<f64>),
    /// A circle on the ground around a centre point.
    Circle {
        center: geo::Point<f64>,
        radius_m: f64,
    },
}

/// One version of a zone.
///
/// A zone id may have several versions with different validity intervals;
/// a fix is judged against the version valid at the fix's time.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub id: ZoneId,
    pub kind: ZoneKind,
    /// Version number; when two versions are valid at once the higher wins.
    pub version: u32,
    /// Inclusive start of validity; `None` means since forever.
    pub valid_from: Option<DateTime<Utc>>,
    /// Exclusive end of validity; `None` means until further notice.
    pub valid_until: Option<DateTime<Utc>>,
    /// The order (court order, leave approval) that created the zone.
    pub order_id: Option<String>,
    /// Human-readable name, e.g. the county name.
    pub name: Option<String>,
    pub shape: Shape,
}

impl Zone {
    /// A zone valid forever, version 1, without order or name.
    pub fn new(id: impl Into<String>, kind: ZoneKind, shape: Shape) -> Self {
        Self {
            id: ZoneId::new(id),
            kind,
            version: 1,
            valid_from: None,
            valid_until: None,
            order_id: None,
            name: None,
            shape,
        }
    }

    /// A circle zone of `radius_m` metres around (`lon`, `lat`).
    pub fn circle(
        id: impl Into<String>,
        kind: ZoneKind,
        lon: f64,
        lat: f64,
        radius_m: f64,
    ) -> Self {
        Self::new(
            id,
            kind,
            Shape::Circle {
                center: geo::Point::new(lon, lat),
                radius_m,
            },
        )
    }

    /// Whether this version is valid at `t`.
    pub fn is_valid_at(&self, t: DateTime<Utc>) -> bool {
        self.valid_from.is_none_or(|from| t >= from)
            && self.valid_until.is_none_or(|until| t < until)
    }
}
