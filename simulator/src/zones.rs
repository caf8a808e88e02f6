//! Reads zone files (GeoJSON FeatureCollections of Polygon / MultiPolygon,
//! optionally gzipped) into [`Area`]s for placing subjects and traces.
//!
//! A minimal reader of our own rather than the `geofence` importer: the
//! simulator needs only rings to sample from and test against, and must not
//! share the engine's repairs (see [`crate::geo`]).

use std::io::Read;
use std::path::Path;

use serde_json::Value;
use thiserror::Error;

use crate::geo::{Area, LatLon, Polygon};

/// A zone file could not be used.
#[derive(Debug, Error)]
pub enum ZoneError {
    /// The file could not be read.
    #[error("cannot read zone file {file}: {message}")]
    Io {
        /// File name.
        file: String,
        /// OS or gzip error.
        message: String,
    },
    /// Not JSON, or not GeoJSON of the expected shape.
    #[error("bad zone file {file}: {message}")]
    Invalid {
        /// File name.
        file: String,
        /// What is wrong, naming the feature.
        message: String,
    },
    /// No feature with this id or name.
    #[error("no zone {wanted:?} in {file}")]
    NotFound {
        /// File name.
        file: String,
        /// The id or name asked for.
        wanted: String,
    },
}

impl ZoneError {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Invalid { .. } => "invalid_zone_file",
            Self::NotFound { .. } => "zone_not_found",
        }
    }
}

/// Reads a zone file; `.gz` files are decompressed.
pub fn load(path: &Path) -> Result<Vec<Area>, ZoneError> {
    let file = path.display().to_string();
    let io = |e: std::io::Error| ZoneError::Io {
        file: file.clone(),
        message: e.to_string(),
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut s)
            .map_err(io)?;
        s
    } else {
        String::from_utf8(bytes).map_err(|e| ZoneError::Invalid {
            file: file.clone(),
            message: e.to_string(),
        })?
    };
    parse(&text, &file)
}

/// Parses GeoJSON text. Features that are not (multi)polygons are skipped.
pub fn parse(text: &str, file: &str) -> Result<Vec<Area>, ZoneError> {
    let invalid = |message: String| ZoneError::Invalid {
        file: file.to_string(),
        message,
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let features = match doc.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => doc
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("features is not an array".into()))?
            .iter()
            .collect::<Vec<_>>(),
        Some("Feature") => vec![&doc],
        other => return Err(invalid(format!("unexpected type {other:?}"))),
    };
    let mut areas = Vec::new();
    for (i, f) in features.iter().enumerate() {
        let name = f
            .pointer("/properties/name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let id = match f.get("id") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let label = id
            .clone()
            .or_else(|| name.clone())
            .unwrap_or(format!("#{i}"));
        let Some(geometry) = f.get("geometry") else {
            continue;
        };
        let coords = geometry.get("coordinates");
        let polygons = match geometry.get("type").and_then(Value::as_str) {
            Some("Polygon") => vec![polygon(coords).map_err(|m| invalid(format!("{label}: {m}")))?],
            Some("MultiPolygon") => coords
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(format!("{label}: coordinates is not an array")))?
                .iter()
                .map(|p| polygon(Some(p)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| invalid(format!("{label}: {m}")))?,
            _ => continue,
        };
        areas.push(Area {
            id: label.clone(),
            name: name.unwrap_or(label),
            polygons,
        });
    }
    Ok(areas)
}

/// The area whose id or name is `wanted`.
pub fn find<'a>(areas: &'a [Area], wanted: &str, file: &str) -> Result<&'a Area, ZoneError> {
    areas
        .iter()
        .find(|a| a.id == wanted || a.name == wanted)
        .ok_or_else(|| ZoneError::NotFound {
            file: file.to_string(),
            wanted: wanted.to_string(),
        })
}

fn polygon(coords: Option<&Value>) -> Result<Polygon, String> {
    let rings = coords
        .and_then(Value::as_array)
        .ok_or("polygon coordinates is not an array")?;
    let rings = rings
        .iter()
        .map(|ring| {
            ring.as_array()
                .ok_or("ring is not an array")?
                .iter()
                .map(|pos| match pos.as_array().map(Vec::as_slice) {
                    Some([lon, lat, ..]) => match (lon.as_f64(), lat.as_f64()) {
                        (Some(lon), Some(lat)) if lat.abs() <= 90.0 && lon.abs() <= 180.0 => {
                            Ok(LatLon::new(lat, lon))
                        }
                        _ => Err("position out of range or not numbers"),
                    },
                    _ => Err("position is not [lon, lat]"),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon { rings })
}
