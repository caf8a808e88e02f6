//! Line-delimited JSON traces: the device JSON wire format (one uplink a
//! line, decoded by `geoward-proto` itself) and the service's track-query
//! export (one stored fix a line).

use std::collections::BTreeMap;

use geoward_proto::{DecodeOptions, DeviceId, Encoding, NoKeys, Timestamp, Topic, Uplink};
use serde::Deserialize;
use serde_json::Value;

use super::time::parse_time_ms;
use super::{
    Trace, TraceError, TraceErrorKind, TracePoint, check_position, parse_source, truncate,
};

/// Collects points per device in first-seen order, sorted by time at the end.
#[derive(Default)]
struct Collector {
    order: Vec<String>,
    points: BTreeMap<String, Vec<TracePoint>>,
}

impl Collector {
    fn push(&mut self, device: &str, p: TracePoint) {
        if !self.points.contains_key(device) {
            self.order.push(device.to_string());
        }
        self.points.entry(device.to_string()).or_default().push(p);
    }

    fn finish(mut self, file: &str) -> Result<Vec<Trace>, TraceError> {
        if self.order.is_empty() {
            return Err(TraceError::new(file, 0, None, TraceErrorKind::Empty));
        }
        Ok(self
            .order
            .into_iter()
            .map(|device| {
                let mut points = self.points.remove(&device).unwrap_or_default();
                points.sort_by_key(|p| p.time_ms);
                Trace { device, points }
            })
            .collect())
    }
}

fn json_error(file: &str, line: usize, e: &serde_json::Error) -> TraceError {
    TraceError::new(
        file,
        line,
        Some(e.column()),
        TraceErrorKind::Json(e.to_string()),
    )
}

/// Device JSON wire format: each line is what a device publishes on
/// `geoward/v1/dev/{device}/up/json`. The device is the line's `device_id`
/// or, when absent, `default_device`. Fixes and batches become points;
/// heartbeats and events carry no position and are skipped. Every line goes
/// through the protocol's own decoder and validation, so a file that loads
/// here is one the service would accept.
pub(super) fn parse_wire(
    text: &str,
    file: &str,
    default_device: &str,
) -> Result<Vec<Trace>, TraceError> {
    // Trace files are history: accept any past time, still reject
    // nonsense (pre-2000 clocks, impossible speeds) as the service would.
    let opts = DecodeOptions::default();
    let now = Timestamp(i64::MAX / 4);
    let mut out = Collector::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let at = |kind| TraceError::new(file, line_no, None, kind);
        let v: Value = serde_json::from_str(line).map_err(|e| json_error(file, line_no, &e))?;
        let device = v
            .get("device_id")
            .and_then(Value::as_str)
            .unwrap_or(default_device);
        let id = DeviceId::new(device)
            .map_err(|e| at(TraceErrorKind::Json(format!("device_id: {e}"))))?;
        let topic = Topic::uplink(id, Encoding::Json);
        let decoded = geoward_proto::decode_uplink(&topic, line.as_bytes(), &opts, now, &NoKeys)
            .map_err(|e| at(TraceErrorKind::Wire(e.reason(), e.to_string())))?;
        let fixes = match decoded.message {
            Uplink::Fix(f) => vec![f],
            Uplink::Batch(b) => b.fixes,
            Uplink::Heartbeat(_) | Uplink::Event(_) => Vec::new(),
        };
        for f in fixes {
            out.push(
                device,
                TracePoint {
                    time_ms: f.time.0,
                    lat: f.lat,
                    lon: f.lon,
                    accuracy_m: f64::from(f.accuracy_m),
                    source: f.source,
                },
            );
        }
    }
    out.finish(file)
}

/// One fix of the track-query export (`GET /api/subjects/{id}/track`). Fields
/// the service adds beyond these are ignored so the simulator survives API
/// growth.
#[derive(Deserialize)]
struct ExportFix {
    device_id: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    time_ms: Option<i64>,
    lat: f64,
    lon: f64,
    /// The service stores fixes without accuracy as `null`.
    #[serde(default)]
    accuracy_m: Option<f64>,
    #[serde(default)]
    source: Option<String>,
}

/// The service's track-query export: a sequence of JSON values, each either
/// a response page `{"subject_id", "points": [fix, ...], "next"}` (pages may
/// simply be concatenated, pretty or not) or a single fix a line. Errors name
/// the line where the offending value starts (and the point's index within
/// a page).
pub(super) fn parse_export(text: &str, file: &str) -> Result<Vec<Trace>, TraceError> {
    let lines = super::gpx::Lines::new(text);
    let mut out = Collector::default();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let before = stream.byte_offset();
        let Some(next) = stream.next() else { break };
        let v = next.map_err(|e| json_error(file, e.line(), &e))?;
        let start = before + (text[before..].len() - text[before..].trim_start().len());
        let (line_no, _) = lines.locate(start);
        match v.get("points") {
            Some(Value::Array(points)) => {
                for (i, p) in points.iter().enumerate() {
                    export_fix(p, &mut out).map_err(|k| {
                        TraceError::new(file, line_no, None, TraceErrorKind::InPage(i, Box::new(k)))
                    })?;
                }
            }
            Some(_) => {
                return Err(TraceError::new(
                    file,
                    line_no,
                    None,
                    TraceErrorKind::Json("points is not an array".into()),
                ));
            }
            None => {
                export_fix(&v, &mut out).map_err(|k| TraceError::new(file, line_no, None, k))?
            }
        }
    }
    out.finish(file)
}

fn export_fix(v: &Value, out: &mut Collector) -> Result<(), TraceErrorKind> {
    let f: ExportFix =
        serde_json::from_value(v.clone()).map_err(|e| TraceErrorKind::Json(e.to_string()))?;
    let time_ms = match (f.time_ms, f.time.as_deref()) {
        (Some(ms), _) => ms,
        (None, Some(t)) => parse_time_ms(t)?,
        (None, None) => return Err(TraceErrorKind::Missing("time or time_ms")),
    };
    check_position(f.lat, f.lon)?;
    let accuracy_m = f.accuracy_m.unwrap_or(super::DEFAULT_GNSS_ACCURACY_M);
    if !(accuracy_m.is_finite() && accuracy_m >= 0.0) {
        return Err(TraceErrorKind::OutOfRange {
            field: "accuracy_m",
            value: accuracy_m.to_string(),
        });
    }
    let source = match f.source.as_deref() {
        None => geoward_proto::PositionSource::Gnss,
        Some(s) => parse_source(s).ok_or_else(|| TraceErrorKind::BadSource(truncate(s)))?,
    };
    if f.device_id.is_empty() {
        return Err(TraceErrorKind::Missing("device_id"));
    }
    out.push(
        &f.device_id,
        TracePoint {
            time_ms,
            lat: f.lat,
            lon: f.lon,
            accuracy_m,
            source,
        },
    );
    Ok(())
}
