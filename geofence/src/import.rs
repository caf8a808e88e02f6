//! GeoJSON (RFC 7946) import.
//!
//! Accepted: a `FeatureCollection`, or a single `Feature`, whose geometries
//! are `Polygon`, `MultiPolygon`, or `Point` with a `radius_m` property.
//! Feature properties (all optional):
//!
//! | property       | meaning                                    | default |
//! |----------------|--------------------------------------------|---------|
//! | feature `id`   | zone id (string or number)                 | property `id`, `zone_id`, `adcode`, then `name` |
//! | `kind`         | `permitted`, `exclusion` or `home`         | `permitted` |
//! | `version`      | integer ≥ 0                                 | `1` |
//! | `valid_from`   | RFC 3339 time, inclusive                    | forever |
//! | `valid_until`  | RFC 3339 time, exclusive                    | forever |
//! | `order_id`     | id of the order that created the zone       | none |
//! | `name`         | display name                                | none |
//! | `radius_m`     | circle radius in metres (Point only)        | required for Point |
//!
//! So a plain county file imports as permitted zones valid forever.
//! A feature that cannot be used is reported with its defect and skipped;
//! the rest still import. Only a document that is not GeoJSON at all fails.

use chrono::{DateTime, Utc};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::{Map, Value};

use crate::report::{Defect, DefectKind, FeatureRef, ImportReport, Repair, RepairKind};
use crate::zone::{Shape, Zone, ZoneId, ZoneKind};
use crate::zone_set::ZoneSet;

/// The document as a whole could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not geojson: {0}")]
    NotGeoJson(&'static str),
}

impl ImportError {
    /// Stable code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Json(_) => "invalid_json",
            Self::NotGeoJson(_) => "not_geojson",
        }
    }
}

/// Parses, repairs and indexes a GeoJSON document.
pub fn import_geojson(text: &str) -> Result<(ZoneSet, ImportReport), ImportError> {
    let value: Value = serde_json::from_str(text)?;
    import_value(&value)
}

/// Like [`import_geojson`] from bytes (UTF-8 JSON).
pub fn import_geojson_slice(bytes: &[u8]) -> Result<(ZoneSet, ImportReport), ImportError> {
    let value: Value = serde_json::from_slice(bytes)?;
    import_value(&value)
}

/// Imports an already parsed document.
pub fn import_value(value: &Value) -> Result<(ZoneSet, ImportReport), ImportError> {
    let features: Vec<&Value> = match value.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => value
            .get("features")
            .and_then(Value::as_array)
            .ok_or(ImportError::NotGeoJson(
                "feature collection without a features array",
            ))?
            .iter()
            .collect(),
        Some("Feature") => vec![value],
        _ => {
            return Err(ImportError::NotGeoJson(
                "top level is neither FeatureCollection nor Feature",
            ));
        }
    };
    let mut report = ImportReport::default();
    let mut zones = Vec::with_capacity(features.len());
    // geo closes rings on construction, so unclosed rings are counted here.
    let mut unclosed = Vec::new();
    for (index, feature) in features.into_iter().enumerate() {
        let id = feature_id(feature);
        let fref = FeatureRef {
            index,
            id: id.as_ref().map(ToString::to_string),
        };
        match parse_feature(feature, id) {
            Ok(zone) => {
                let n = feature.get("geometry").map_or(0, count_unclosed);
                if n > 0 {
                    unclosed.push(Repair {
                        feature: fref.clone(),
                        kind: RepairKind::UnclosedRing,
                        count: n,
                    });
                }
                zones.push((fref, zone));
            }
            Err(kind) => {
                report.features += 1;
                report.defects.push(Defect {
                    feature: fref,
                    kind,
                });
            }
        }
    }
    let set = ZoneSet::build_with_refs(zones, &mut report);
    unclosed.retain(|r| {
        !report
            .defects
            .iter()
            .any(|d| d.feature.index == r.feature.index)
    });
    report.repairs.extend(unclosed);
    report.repairs.sort_by_key(|r| (r.feature.index, r.kind));
    report.defects.sort_by_key(|d| d.feature.index);
    Ok((set, report))
}

/// Rings whose last position differs from the first.
fn count_unclosed(geometry: &Value) -> usize {
    let rings: Vec<&Value> = match geometry.get("type").and_then(Value::as_str) {
        Some("Polygon") => geometry
            .get("coordinates")
            .and_then(Value::as_array)
            .map(|r| r.iter().collect())
            .unwrap_or_default(),
        Some("MultiPolygon") => geometry
            .get("coordinates")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().filter_map(Value::as_array).flatten().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    rings
        .into_iter()
        .filter_map(Value::as_array)
        .filter(|r| r.len() >= 2 && r.first() != r.last())
        .count()
}

fn id_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn feature_id(feature: &Value) -> Option<ZoneId> {
    if let Some(id) = feature.get("id").and_then(id_value) {
        return Some(ZoneId::new(id));
    }
    let props = feature.get("properties")?.as_object()?;
    ["id", "zone_id", "adcode", "name"]
        .iter()
        .find_map(|k| props.get(*k).and_then(id_value))
        .map(ZoneId::new)
}

fn parse_feature(feature: &Value, id: Option<ZoneId>) -> Result<Zone, DefectKind> {
    if feature.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err(DefectKind::NotAFeature);
    }
    let empty = Map::new();
    let props = match feature.get("properties") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(DefectKind::InvalidProperty {
                name: "properties",
                detail: "not an object".into(),
            });
        }
    };
    let id = id.ok_or(DefectKind::MissingId)?;
    let kind = match props.get("kind") {
        None | Some(Value::Null) => ZoneKind::Permitted,
        Some(v) => match v.as_str() {
            Some("permitted") => ZoneKind::Permitted,
            Some("exclusion") => ZoneKind::Exclusion,
            Some("home") => ZoneKind::Home,
            _ => {
                return Err(DefectKind::InvalidProperty {
                    name: "kind",
                    detail: format!("{v} is not permitted, exclusion or home"),
                });
            }
        },
    };
    let version = match props.get("version") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| DefectKind::InvalidProperty {
                name: "version",
                detail: format!("{v} is not a non-negative integer"),
            })?,
    };
    let valid_from = time_prop(props, "valid_from")?;
    let valid_until = time_prop(props, "valid_until")?;
    if let (Some(f), Some(u)) = (valid_from, valid_until)
        && u <= f
    {
        return Err(DefectKind::InvalidProperty {
            name: "valid_until",
            detail: "not after valid_from".into(),
        });
    }
    let order_id = props.get("order_id").and_then(id_value);
    let name = props.get("name").and_then(Value::as_str).map(str::to_owned);
    let geometry = match feature.get("geometry") {
        None | Some(Value::Null) => return Err(DefectKind::MissingGeometry),
        Some(g) => g,
    };
    let shape = parse_geometry(geometry, props)?;
    Ok(Zone {
        id,
        kind,
        version,
        valid_from,
        valid_until,
        order_id,
        name,
        shape,
    })
}

fn time_prop(
    props: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<DateTime<Utc>>, DefectKind> {
    match props.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| Some(t.with_timezone(&Utc)))
            .ok_or_else(|| DefectKind::InvalidProperty {
                name,
                detail: format!("{v} is not an rfc 3339 time"),
            }),
    }
}

fn parse_geometry(g: &Value, props: &Map<String, Value>) -> Result<Shape, DefectKind> {
    let ty = g.get("type").and_then(Value::as_str).unwrap_or("");
    let coords = g.get("coordinates");
    let bad = |what: &str| DefectKind::InvalidCoordinates(format!("{ty} coordinates: {what}"));
    match ty {
        "Polygon" => {
            let poly = parse_polygon(coords.ok_or_else(|| bad("missing"))?).map_err(|e| bad(&e))?;
            Ok(Shape::Polygons(MultiPolygon(vec![poly])))
        }
        "MultiPolygon" => {
            let parts = coords
                .and_then(Value::as_array)
                .ok_or_else(|| bad("not an array"))?
                .iter()
                .enumerate()
                .map(|(i, p)| parse_polygon(p).map_err(|e| bad(&format!("polygon {i}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Shape::Polygons(MultiPolygon(parts)))
        }
        "Point" => {
            let center =
                parse_position(coords.ok_or_else(|| bad("missing"))?).map_err(|e| bad(&e))?;
            let radius_m = props
                .get("radius_m")
                .and_then(Value::as_f64)
                .ok_or_else(|| {
                    DefectKind::InvalidRadius("point without numeric radius_m property".into())
                })?;
            Ok(Shape::Circle {
                center: center.into(),
                radius_m,
            })
        }
        other => Err(DefectKind::UnsupportedGeometry(other.to_owned())),
    }
}

fn parse_position(v: &Value) -> Result<Coord<f64>, String> {
    let a = v.as_array().ok_or("position is not an array")?;
    match (
        a.first().and_then(Value::as_f64),
        a.get(1).and_then(Value::as_f64),
    ) {
        (Some(x), Some(y)) => Ok(Coord { x, y }),
        _ => Err(format!("position {v} lacks two numbers")),
    }
}

fn parse_ring(v: &Value) -> Result<LineString<f64>, String> {
    if v.is_string() {
        // e.g. ECharts' compressed rings, which need offsets we do not have.
        return Err("ring is an encoded string, not an array of positions".into());
    }
    let a = v.as_array().ok_or("ring is not an array")?;
    a.iter()
        .enumerate()
        .map(|(i, p)| parse_position(p).map_err(|e| format!("vertex {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()
        .map(LineString)
}

fn parse_polygon(v: &Value) -> Result<Polygon<f64>, String> {
    let rings = v.as_array().ok_or("polygon is not an array of rings")?;
    let mut rings = rings
        .iter()
        .enumerate()
        .map(|(i, r)| parse_ring(r).map_err(|e| format!("ring {i}: {e}")));
    // A polygon without rings has no area: repair rejects it as empty.
    let shell = rings
        .next()
        .transpose()?
        .unwrap_or_else(|| LineString(Vec::new()));
    let holes = rings.collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(shell, holes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_geojson_is_an_error_with_a_reason() {
        assert_eq!(
            import_geojson("[").map(|_| ()).unwrap_err().reason(),
            "invalid_json"
        );
        assert_eq!(
            import_geojson("{}").map(|_| ()).unwrap_err().reason(),
            "not_geojson"
        );
    }
}
