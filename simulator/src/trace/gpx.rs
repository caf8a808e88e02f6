//! GPX 1.0 and 1.1 tracks.
//!
//! Every `<trkpt>` with a `<time>` becomes a point, all tracks and segments of
//! the file concatenated into one device's trace (a receiver's "ACTIVE LOG",
//! "ACTIVE LOG #2", ... are consecutive recordings). Tracks in which no point
//! has a time (receivers save such simplified copies) carry no dynamics and
//! are skipped; a track that mixes timed and untimed points is damaged and is
//! an error. Waypoints and routes are not movement and are ignored. Accuracy
//! is `hdop × 5 m` when `<hdop>` is present (a typical user range error),
//! else [`DEFAULT_GNSS_ACCURACY_M`].

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::time::{format_time_ms, parse_time_ms};
use super::{
    DEFAULT_GNSS_ACCURACY_M, PositionSource, Trace, TraceError, TraceErrorKind, TracePoint,
    check_position, parse_f64, truncate,
};

/// Metres of horizontal error per unit of HDOP.
const UERE_M: f64 = 5.0;

/// Maps byte offsets to 1-based line and column.
pub(super) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub(super) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    pub(super) fn locate(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line.saturating_sub(1)];
        (line.max(1), offset - start + 1)
    }
}

/// A `<trkpt>` being read.
struct OpenPoint {
    offset: usize,
    lat: f64,
    lon: f64,
    time_ms: Option<i64>,
    hdop: Option<f64>,
}

/// Which child of `<trkpt>` the next text belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Field {
    None,
    Time,
    Hdop,
}

pub(super) fn parse(text: &str, file: &str, device: &str) -> Result<Trace, TraceError> {
    let lines = Lines::new(text);
    let err = |offset: usize, kind: TraceErrorKind| {
        let (line, column) = lines.locate(offset);
        TraceError::new(file, line, Some(column), kind)
    };

    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);

    let mut depth = 0usize;
    let mut open_names: Vec<String> = Vec::new();
    let mut seen_root = false;
    let mut point: Option<OpenPoint> = None;
    let mut field = Field::None;
    // Points of the current <trk>: (offset, point); decided at </trk>.
    let mut track: Vec<(usize, TracePoint, bool)> = Vec::new();
    let mut points: Vec<TracePoint> = Vec::new();
    let mut last: Option<TracePoint> = None;

    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(0);
        let event = reader.read_event().map_err(|e| {
            let at = usize::try_from(reader.error_position()).unwrap_or(before);
            err(at, TraceErrorKind::Xml(e.to_string()))
        })?;
        let pos = event_start(text, before, &event, reader.buffer_position());
        match event {
            Event::Start(e) => {
                let name = local(&e);
                if !seen_root {
                    check_root(&e, &name).map_err(|k| err(pos, k))?;
                    seen_root = true;
                }
                depth += 1;
                match name.as_str() {
                    "trkpt" => point = Some(open_point(&e, pos).map_err(|k| err(pos, k))?),
                    "time" if point.is_some() => field = Field::Time,
                    "hdop" if point.is_some() => field = Field::Hdop,
                    _ => {}
                }
                open_names.push(name);
            }
            Event::Empty(e) => {
                let name = local(&e);
                if !seen_root {
                    check_root(&e, &name).map_err(|k| err(pos, k))?;
                    seen_root = true;
                }
                if name == "trkpt" {
                    let p = open_point(&e, pos).map_err(|k| err(pos, k))?;
                    track.push((p.offset, finish(&p), false));
                }
            }
            Event::Text(t) if field != Field::None => {
                let value = t
                    .decode()
                    .map_err(|e| err(pos, TraceErrorKind::Xml(e.to_string())))?;
                if let Some(p) = point.as_mut() {
                    match field {
                        Field::Time => {
                            p.time_ms = Some(parse_time_ms(&value).map_err(|k| err(pos, k))?)
                        }
                        Field::Hdop => {
                            let h = parse_f64("hdop", &value).map_err(|k| err(pos, k))?;
                            if h < 0.0 {
                                return Err(err(
                                    pos,
                                    TraceErrorKind::OutOfRange {
                                        field: "hdop",
                                        value: truncate(&value),
                                    },
                                ));
                            }
                            p.hdop = Some(h);
                        }
                        Field::None => {}
                    }
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                let name = open_names.pop().unwrap_or_default();
                match name.as_str() {
                    "time" | "hdop" => field = Field::None,
                    "trkpt" => {
                        if let Some(p) = point.take() {
                            track.push((p.offset, finish(&p), p.time_ms.is_some()));
                        }
                    }
                    "trk" => close_track(&mut track, &mut points, &mut last)
                        .map_err(|(o, k)| err(o, k))?,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(TraceError::new(
            file,
            1,
            None,
            TraceErrorKind::NotGpx("no root element".into()),
        ));
    }
    if depth > 0 {
        let (line, column) = lines.locate(text.len());
        let unclosed = open_names.last().cloned().unwrap_or_default();
        return Err(TraceError::new(
            file,
            line,
            Some(column),
            TraceErrorKind::Xml(format!("unexpected end of file inside <{unclosed}>")),
        ));
    }
    if points.is_empty() {
        return Err(TraceError::new(file, 0, None, TraceErrorKind::Empty));
    }
    Ok(Trace {
        device: device.to_string(),
        points,
    })
}

/// Byte offset where `event` starts in `text`, for error positions: the
/// `<` of a tag (attribute values cannot contain `<`), the first
/// non-blank byte of a text node.
fn event_start(text: &str, before: usize, event: &Event<'_>, after: u64) -> usize {
    let end = usize::try_from(after).unwrap_or(text.len()).min(text.len());
    let start = match event {
        Event::Start(_) | Event::Empty(_) | Event::End(_) => {
            text.get(..end).and_then(|t| t.rfind('<')).unwrap_or(before)
        }
        _ => before,
    };
    let skip = text
        .get(start..end)
        .map_or(0, |t| t.len() - t.trim_start().len());
    start + skip
}

/// Element name without namespace prefix.
fn local(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

fn check_root(e: &BytesStart<'_>, name: &str) -> Result<(), TraceErrorKind> {
    if name != "gpx" {
        return Err(TraceErrorKind::NotGpx(format!("root element is <{name}>")));
    }
    if let Some(v) = attr(e, "version")?
        && v != "1.0"
        && v != "1.1"
    {
        return Err(TraceErrorKind::NotGpx(format!(
            "version {} (want 1.0 or 1.1)",
            truncate(&v)
        )));
    }
    Ok(())
}

fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, TraceErrorKind> {
    match e.try_get_attribute(name) {
        Ok(Some(a)) => a
            .unescape_value()
            .map(|v| Some(v.into_owned()))
            .map_err(|e| TraceErrorKind::Xml(e.to_string())),
        Ok(None) => Ok(None),
        Err(e) => Err(TraceErrorKind::Xml(e.to_string())),
    }
}

fn open_point(e: &BytesStart<'_>, offset: usize) -> Result<OpenPoint, TraceErrorKind> {
    let lat = attr(e, "lat")?.ok_or(TraceErrorKind::Missing("lat attribute"))?;
    let lon = attr(e, "lon")?.ok_or(TraceErrorKind::Missing("lon attribute"))?;
    let lat = parse_f64("lat", &lat)?;
    let lon = parse_f64("lon", &lon)?;
    check_position(lat, lon)?;
    Ok(OpenPoint {
        offset,
        lat,
        lon,
        time_ms: None,
        hdop: None,
    })
}

fn finish(p: &OpenPoint) -> TracePoint {
    TracePoint {
        time_ms: p.time_ms.unwrap_or(0),
        lat: p.lat,
        lon: p.lon,
        accuracy_m: p.hdop.map_or(DEFAULT_GNSS_ACCURACY_M, |h| h * UERE_M),
        source: PositionSource::Gnss,
    }
}

/// Appends a finished `<trk>` to the file's points: skipped if untimed,
/// an error if partly timed or if time goes backwards.
fn close_track(
    track: &mut Vec<(usize, TracePoint, bool)>,
    points: &mut Vec<TracePoint>,
    last: &mut Option<TracePoint>,
) -> Result<(), (usize, TraceErrorKind)> {
    let timed = track.iter().filter(|(_, _, t)| *t).count();
    if timed == 0 {
        track.clear();
        return Ok(());
    }
    for (offset, p, has_time) in track.drain(..) {
        if !has_time {
            return Err((offset, TraceErrorKind::MissingTime));
        }
        if let Some(prev) = last.as_ref()
            && p.time_ms < prev.time_ms
        {
            return Err((
                offset,
                TraceErrorKind::TimeGoesBackwards {
                    time: format_time_ms(p.time_ms),
                    previous: format_time_ms(prev.time_ms),
                },
            ));
        }
        *last = Some(p);
        points.push(p);
    }
    Ok(())
}
