//! Recorded traces: the common shape every input format is read into.
//!
//! A trace file is untrusted input from the field or from another tool, so
//! every parser returns a [`TraceError`] that names the file and line (and the
//! column where the format has one) instead of panicking or guessing.

mod csv;
mod error;
mod gpx;
mod ndjson;
pub mod time;

use std::path::Path;

pub use error::{TraceError, TraceErrorKind};
pub use time::parse_time_ms;

/// Accuracy assumed for a GNSS fix when the file carries none (GPX without
/// `<hdop>`): the open-sky figure from DOMAIN.md.
pub const DEFAULT_GNSS_ACCURACY_M: f64 = 10.0;

pub use geoward_proto::PositionSource;

/// Parses a source name from CSV: the wire names `gnss`, `cell`, `wifi`,
/// `fused`, and the field aliases `gps` and `lbs`.
pub fn parse_source(name: &str) -> Option<PositionSource> {
    match name {
        "gnss" | "gps" => Some(PositionSource::Gnss),
        "cell" | "lbs" => Some(PositionSource::Cell),
        "wifi" => Some(PositionSource::Wifi),
        "fused" => Some(PositionSource::Fused),
        _ => None,
    }
}

/// The wire name of a source.
pub fn source_name(s: PositionSource) -> &'static str {
    match s {
        PositionSource::Gnss => "gnss",
        PositionSource::Cell => "cell",
        PositionSource::Wifi => "wifi",
        PositionSource::Fused => "fused",
    }
}

/// One recorded position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePoint {
    /// Device time of the fix, milliseconds since the Unix epoch (UTC).
    pub time_ms: i64,
    /// Latitude in degrees (WGS84).
    pub lat: f64,
    /// Longitude in degrees (WGS84).
    pub lon: f64,
    /// Horizontal accuracy radius in metres as the device reports it.
    pub accuracy_m: f64,
    /// How the position was obtained.
    pub source: PositionSource,
}

/// The points of one device, ordered by device time (non-decreasing).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Device id the points are replayed as.
    pub device: String,
    /// Points ordered by `time_ms`.
    pub points: Vec<TracePoint>,
}

/// Input formats `geoward-sim replay` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// GPX 1.0 or 1.1: every timed `<trkpt>` of the file, one device.
    Gpx,
    /// CSV with the header `device,time,lat,lon,accuracy` (optional 6th
    /// column `source`).
    Csv,
    /// NDJSON, one location message in the device JSON wire format a line.
    Ndjson,
    /// Geoward's own track-query export, one stored fix a line (see
    /// `simulator/FORMATS.md`).
    TrackExport,
}

impl Format {
    /// Guesses the format from a file name: `.gpx`, `.csv`, `.ndjson`/`.jsonl`,
    /// `.track.ndjson`/`.track.jsonl`/`.json` (track export).
    pub fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".track.ndjson") || name.ends_with(".track.jsonl") {
            return Some(Self::TrackExport);
        }
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "gpx" => Some(Self::Gpx),
            "csv" => Some(Self::Csv),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "json" => Some(Self::TrackExport),
            _ => None,
        }
    }
}

/// Parses `text` in `format`. `file` names the input in errors;
/// `default_device` is the device id for formats without one (GPX).
///
/// Every returned trace has at least one point and its points are ordered by
/// time. CSV and NDJSON rows of one device may come in any order (exports are
/// often in arrival order); they are sorted by device time, stably.
pub fn parse(
    text: &str,
    format: Format,
    file: &str,
    default_device: &str,
) -> Result<Vec<Trace>, TraceError> {
    match format {
        Format::Gpx => gpx::parse(text, file, default_device).map(|t| vec![t]),
        Format::Csv => csv::parse(text, file),
        Format::Ndjson => ndjson::parse_wire(text, file, default_device),
        Format::TrackExport => ndjson::parse_export(text, file),
    }
}

/// Reads and parses a trace file, guessing the format from its extension
/// unless `format` is given. The default device id is the file stem.
pub fn load(path: &Path, format: Option<Format>) -> Result<Vec<Trace>, TraceError> {
    let file = path.display().to_string();
    let format = format
        .or_else(|| Format::from_path(path))
        .ok_or_else(|| TraceError::new(&file, 0, None, TraceErrorKind::UnknownFormat))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| TraceError::new(&file, 0, None, TraceErrorKind::Io(e.to_string())))?;
    let device = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("device");
    parse(&text, format, &file, device)
}

/// Checks a coordinate pair; shared by all parsers so they agree on what a
/// valid position is.
pub(crate) fn check_position(lat: f64, lon: f64) -> Result<(), TraceErrorKind> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(TraceErrorKind::OutOfRange {
            field: "lat",
            value: lat.to_string(),
        });
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(TraceErrorKind::OutOfRange {
            field: "lon",
            value: lon.to_string(),
        });
    }
    Ok(())
}

/// Parses a finite float or names the field.
pub(crate) fn parse_f64(field: &'static str, value: &str) -> Result<f64, TraceErrorKind> {
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(TraceErrorKind::BadNumber {
            field,
            value: truncate(value),
        }),
    }
}

/// Keeps offending values in messages short.
pub(crate) fn truncate(value: &str) -> String {
    const MAX: usize = 40;
    match value.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}
