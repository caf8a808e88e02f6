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
//! Rings may also be ECharts-encoded strings (as in some published Chinese
//! county files) when the geometry carries `encodeOffsets` (one `[x, y]`
//! per ring, nested like the rings); they are decoded and reported as the
//! repair `decoded_echarts_ring`. An encoded ring without its offset, or of
//! odd length, is a defect.
//!
//! So a plain county file imports as permitted zones valid forever.
//! A feature that cannot be used is reported with its defect and skipped;
//! the rest still import. Only a document that is not GeoJSON at all fails.
//!
//! Ring topology is not checked: a ring that touches or crosses itself, or
//! a hole that crosses its shell, is accepted and judged by the even-odd
//! rule (a point is inside when a ray from it crosses the rings an odd
//! number of times), which the cell grids and the edge scan both apply.
//! Rejecting such zones is not an option with real data: `geo`'s
//! `Validation` flags 1,468 of the 3,252 national county features and 11
//! of Zhengzhou's 12 districts (the eight looked at: "exterior ring has a
//! self-intersection"), and those counties must still be usable.

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
    // geo closes rings on construction, so unclosed rings are counted here,
    // and so are decoded rings (repair only sees vertices).
    let mut unclosed = Vec::new();
    for (index, feature) in features.into_iter().enumerate() {
        let id = feature_id(feature);
        let fref = FeatureRef {
            index,
            id: id.as_ref().map(ToString::to_string),
        };
        let mut decoded = Decoded::default();
        match parse_feature(feature, id, &mut decoded) {
            Ok(zone) => {
                if decoded.rings > 0 {
                    unclosed.push(Repair {
                        feature: fref.clone(),
                        kind: RepairKind::DecodedEchartsRing,
                        count: decoded.rings,
                    });
                }
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

fn parse_feature(
    feature: &Value,
    id: Option<ZoneId>,
    decoded: &mut Decoded,
) -> Result<Zone, DefectKind> {
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
    let shape = parse_geometry(geometry, props, decoded)?;
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

fn parse_geometry(
    g: &Value,
    props: &Map<String, Value>,
    decoded: &mut Decoded,
) -> Result<Shape, DefectKind> {
    let ty = g.get("type").and_then(Value::as_str).unwrap_or("");
    let coords = g.get("coordinates");
    let offsets = g.get("encodeOffsets");
    let bad = |what: &str| DefectKind::InvalidCoordinates(format!("{ty} coordinates: {what}"));
    match ty {
        "Polygon" => {
            let poly = parse_polygon(coords.ok_or_else(|| bad("missing"))?, offsets, decoded)
                .map_err(|e| bad(&e))?;
            Ok(Shape::Polygons(MultiPolygon(vec![poly])))
        }
        "MultiPolygon" => {
            let offsets = offsets.and_then(Value::as_array);
            let parts = coords
                .and_then(Value::as_array)
                .ok_or_else(|| bad("not an array"))?
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    parse_polygon(p, offsets.and_then(|o| o.get(i)), decoded)
                        .map_err(|e| bad(&format!("polygon {i}: {e}")))
                })
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

/// Where a ring's vertices came from: positions, or an ECharts string.
#[derive(Default)]
struct Decoded {
    /// ECharts-encoded rings decoded in this geometry.
    rings: usize,
}

/// Parses a ring: an array of positions, or an ECharts-encoded string whose
/// start offset is `offset` (the matching `encodeOffsets` entry).
fn parse_ring(
    v: &Value,
    offset: Option<&Value>,
    decoded: &mut Decoded,
) -> Result<LineString<f64>, String> {
    if let Some(s) = v.as_str() {
        let offset = offset.ok_or("ring is an encoded string without an encodeOffsets entry")?;
        let start = match offset.as_array().map(Vec::as_slice) {
            Some([x, y]) => match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) => (x, y),
                _ => return Err(format!("encode offset {offset} is not two integers")),
            },
            _ => return Err(format!("encode offset {offset} is not a pair")),
        };
        let ring = decode_echarts_ring(s, start)?;
        decoded.rings += 1;
        return Ok(ring);
    }
    let a = v.as_array().ok_or("ring is not an array")?;
    a.iter()
        .enumerate()
        .map(|(i, p)| parse_position(p).map_err(|e| format!("vertex {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()
        .map(LineString)
}

/// Scale of ECharts' encoded coordinates: units of 1/1024 degree.
const ECHARTS_SCALE: f64 = 1024.0;

/// Decodes one ring compressed by ECharts' map tools (`decodePolygon` in
/// Apache ECharts): pairs of UTF-16 code units, each minus 64, zigzag
/// encoded, deltas from the previous vertex starting at `start`, in 1/1024
/// degree. Some published county files (Chongqing, Shanghai, Tianjin) store
/// rings this way with the offsets in `geometry.encodeOffsets`.
fn decode_echarts_ring(s: &str, start: (i64, i64)) -> Result<LineString<f64>, String> {
    let units: Vec<u16> = s.encode_utf16().collect();
    if !units.len().is_multiple_of(2) {
        return Err(format!(
            "encoded ring has an odd number of code units ({})",
            units.len()
        ));
    }
    let (mut x, mut y) = start;
    let mut out = Vec::with_capacity(units.len() / 2);
    for pair in units.chunks_exact(2) {
        let zigzag = |u: u16| {
            let v = i64::from(u) - 64;
            (v >> 1) ^ -(v & 1)
        };
        x += zigzag(pair[0]);
        y += zigzag(pair[1]);
        out.push(Coord {
            x: x as f64 / ECHARTS_SCALE,
            y: y as f64 / ECHARTS_SCALE,
        });
    }
    Ok(LineString(out))
}

/// Parses a polygon; `offsets` is its `encodeOffsets` list (one pair per
/// ring) when the geometry has one.
fn parse_polygon(
    v: &Value,
    offsets: Option<&Value>,
    decoded: &mut Decoded,
) -> Result<Polygon<f64>, String> {
    let rings = v.as_array().ok_or("polygon is not an array of rings")?;
    let offsets = offsets.and_then(Value::as_array);
    let mut rings = rings.iter().enumerate().map(|(i, r)| {
        let offset = offsets.and_then(|o| o.get(i));
        parse_ring(r, offset, decoded).map_err(|e| format!("ring {i}: {e}"))
    });
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

    fn feature(geometry: Value) -> String {
        serde_json::json!({"type": "Feature", "id": "z", "geometry": geometry}).to_string()
    }

    #[test]
    fn echarts_rings_are_decoded_from_their_offsets() {
        // Hand-encoded: deltas (0,0) (10,0) (0,10) (-10,0) (100,-10) from
        // (10, 20) degrees; zigzag(10) = 20 → 'T', zigzag(-10) = 19 → 'S',
        // zigzag(100) = 200 → U+0108 (a code unit above 127).
        let ring = decode_echarts_ring("@@T@@TS@\u{108}S", (10 * 1024, 20 * 1024)).unwrap();
        let at = |x: i64, y: i64| Coord {
            x: (10 * 1024 + x) as f64 / 1024.0,
            y: (20 * 1024 + y) as f64 / 1024.0,
        };
        assert_eq!(
            ring.0,
            vec![at(0, 0), at(10, 0), at(10, 10), at(0, 10), at(100, 0)]
        );
        let (set, report) = import_geojson(&feature(serde_json::json!({
            "type": "MultiPolygon",
            "coordinates": [["@@T@@TS@"], ["@@T@@TS@"]],
            "encodeOffsets": [[[10240, 20480]], [[11264, 20480]]],
        })))
        .unwrap();
        assert_eq!(set.len(), 1, "{report:?}");
        assert_eq!(report.repair_count(RepairKind::DecodedEchartsRing), 2);
        let inside = set.locate(10.005, 20.005);
        assert_eq!(inside.len(), 1);
        assert_eq!(set.locate(11.005, 20.005).len(), 1);
        assert!(set.locate(10.5, 20.005).is_empty());
    }

    #[test]
    fn malformed_echarts_rings_are_defects() {
        let cases = [
            (
                serde_json::json!({"type": "Polygon", "coordinates": ["@@T@@TS"], "encodeOffsets": [[0, 0]]}),
                "odd number of code units",
            ),
            (
                serde_json::json!({"type": "Polygon", "coordinates": ["@@T@@TS@"]}),
                "without an encodeOffsets entry",
            ),
            (
                serde_json::json!({"type": "Polygon", "coordinates": ["@@T@@TS@"], "encodeOffsets": [[0.5, 0]]}),
                "not two integers",
            ),
            (
                serde_json::json!({"type": "Polygon", "coordinates": ["@@T@@TS@"], "encodeOffsets": [7]}),
                "not a pair",
            ),
        ];
        for (geometry, want) in cases {
            let (set, report) = import_geojson(&feature(geometry)).unwrap();
            assert_eq!(set.len(), 0);
            let d = &report.defects[0];
            assert_eq!(d.kind.reason(), "invalid_coordinates");
            assert!(d.to_string().contains(want), "{d}");
        }
    }

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
