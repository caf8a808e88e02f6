//! CSV traces: `device,time,lat,lon,accuracy` with a required header line and
//! an optional sixth column `source` (`gnss`, `cell`, `wifi`, `fused`;
//! default `gnss`).
//!
//! Deliberately plain: comma separated, no quoting (device ids, numbers and
//! timestamps never need it), blank lines skipped, `\r\n` accepted. Errors name
//! the line and the 1-based column where the offending field starts.

use std::collections::BTreeMap;

use super::time::parse_time_ms;
use super::{
    PositionSource, Trace, TraceError, TraceErrorKind, TracePoint, check_position, parse_f64,
    truncate,
};

/// The header every CSV trace must start with.
pub const HEADER: &str = "device,time,lat,lon,accuracy";

pub(super) fn parse(text: &str, file: &str) -> Result<Vec<Trace>, TraceError> {
    let mut lines = text.lines().enumerate();
    let (header_no, header) = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty())
        .ok_or_else(|| TraceError::new(file, 0, None, TraceErrorKind::Empty))?;
    let columns: Vec<String> = header
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let with_source = match columns.as_slice() {
        [a, b, c, d, e] if [a, b, c, d, e].map(String::as_str) == HEADER_COLUMNS => false,
        [a, b, c, d, e, f]
            if [a, b, c, d, e].map(String::as_str) == HEADER_COLUMNS && f == "source" =>
        {
            true
        }
        _ => {
            return Err(TraceError::new(
                file,
                header_no + 1,
                Some(1),
                TraceErrorKind::MissingHeader {
                    expected: HEADER,
                    found: truncate(header),
                },
            ));
        }
    };
    let expected = if with_source { 6 } else { 5 };

    let mut by_device: BTreeMap<String, Vec<TracePoint>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut fields: Vec<(usize, &str)> = Vec::with_capacity(expected);
        let mut start = 0;
        for part in line.split(',') {
            fields.push((start + 1, part.trim()));
            start += part.chars().count() + 1;
        }
        if fields.len() != expected {
            return Err(TraceError::new(
                file,
                line_no,
                None,
                TraceErrorKind::WrongColumnCount {
                    expected,
                    found: fields.len(),
                },
            ));
        }
        let at = |col: usize, kind| TraceError::new(file, line_no, Some(col), kind);
        let (dcol, device) = fields[0];
        if device.is_empty() {
            return Err(at(dcol, TraceErrorKind::Missing("device")));
        }
        let (tcol, time) = fields[1];
        let time_ms = parse_time_ms(time).map_err(|k| at(tcol, k))?;
        let (latcol, lat) = fields[2];
        let lat = parse_f64("lat", lat).map_err(|k| at(latcol, k))?;
        let (loncol, lon) = fields[3];
        let lon = parse_f64("lon", lon).map_err(|k| at(loncol, k))?;
        check_position(lat, lon).map_err(|k| at(latcol, k))?;
        let (acol, accuracy) = fields[4];
        let accuracy_m = parse_f64("accuracy", accuracy).map_err(|k| at(acol, k))?;
        if accuracy_m < 0.0 {
            return Err(at(
                acol,
                TraceErrorKind::OutOfRange {
                    field: "accuracy",
                    value: accuracy_m.to_string(),
                },
            ));
        }
        let source = if with_source {
            let (scol, s) = fields[5];
            super::parse_source(&s.to_ascii_lowercase())
                .ok_or_else(|| at(scol, TraceErrorKind::BadSource(truncate(s))))?
        } else {
            PositionSource::Gnss
        };
        if !by_device.contains_key(device) {
            order.push(device.to_string());
        }
        by_device
            .entry(device.to_string())
            .or_default()
            .push(TracePoint {
                time_ms,
                lat,
                lon,
                accuracy_m,
                source,
            });
    }
    if order.is_empty() {
        return Err(TraceError::new(file, 0, None, TraceErrorKind::Empty));
    }
    Ok(order
        .into_iter()
        .map(|device| {
            let mut points = by_device.remove(&device).unwrap_or_default();
            points.sort_by_key(|p| p.time_ms);
            Trace { device, points }
        })
        .collect())
}

const HEADER_COLUMNS: [&str; 5] = ["device", "time", "lat", "lon", "accuracy"];
