//! Placement: move a recorded track somewhere else while keeping its shape,
//! distances and timing, so a real movement pattern can be made to cross a
//! real county boundary.

use thiserror::Error;

use crate::geo::{Area, LatLon};
use crate::trace::Trace;

/// Which boundary behaviour a placed trace must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// Starts inside the area and ends outside (leaves and stays away).
    Exit,
    /// Starts and ends inside, with at least one point outside.
    Excursion,
}

/// A trace could not be placed as asked.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlacementError {
    /// The trace has no points.
    #[error("trace {0} has no points")]
    EmptyTrace(String),
    /// The area has no usable ring.
    #[error("zone {0} has no polygon ring")]
    EmptyArea(String),
    /// No anchor and rotation gives the wanted crossing.
    #[error("cannot place trace {device} to show {crossing:?} at zone {zone}")]
    NoCrossing {
        /// Device of the trace.
        device: String,
        /// Zone name.
        zone: String,
        /// What was asked for.
        crossing: Crossing,
    },
}

impl PlacementError {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::EmptyTrace(_) => "empty_trace",
            Self::EmptyArea(_) => "empty_zone",
            Self::NoCrossing { .. } => "no_crossing",
        }
    }
}

/// Translates `trace` so its first point lies at `target`, preserving
/// metric shape and distances (offsets in local metres, not degrees).
pub fn translate_to(trace: &Trace, target: LatLon) -> Trace {
    if trace.points.is_empty() {
        return trace.clone();
    }
    transform(trace, 0, target, 0.0)
}

/// Copies `trace` as `n` devices `<device>-001`, ... placed `spacing_m`
/// metres apart eastwards and started `stagger_ms` apart.
pub fn fan_out(trace: &Trace, n: usize, spacing_m: f64, stagger_ms: i64) -> Vec<Trace> {
    let Some(first) = trace.points.first() else {
        return Vec::new();
    };
    let origin = LatLon::new(first.lat, first.lon);
    (0..n)
        .map(|i| {
            let mut t = translate_to(trace, origin.moved(spacing_m * i as f64, 0.0));
            t.device = format!("{}-{:03}", trace.device, i + 1);
            let delay = stagger_ms * i as i64;
            t.points.iter_mut().for_each(|p| p.time_ms += delay);
            t
        })
        .collect()
}

/// Places `trace` at the boundary of `area` so it shows `crossing`: the
/// point halfway along the track is put on a boundary vertex and the track
/// rotated about it until it starts inside and crosses the boundary once
/// (ends outside) or twice (an excursion, back inside at the end; the
/// placement with the longest time outside is taken). Vertices are tried from
/// `vertex_hint` on, rotations in 10° steps, so the result is deterministic.
pub fn place_across(
    trace: &Trace,
    area: &Area,
    crossing: Crossing,
    vertex_hint: usize,
) -> Result<Trace, PlacementError> {
    if trace.points.is_empty() {
        return Err(PlacementError::EmptyTrace(trace.device.clone()));
    }
    let ring = area
        .main_part()
        .and_then(|p| p.rings.first())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| PlacementError::EmptyArea(area.name.clone()))?;
    let anchor = halfway_index(trace);
    let tries = ring.len().min(64);
    let step = (ring.len() / tries).max(1);
    let mut best: Option<(i64, Trace)> = None;
    for k in 0..tries {
        let vertex = ring[(vertex_hint + k * step) % ring.len()];
        for deg in (0..360).step_by(10) {
            let t = transform(trace, anchor, vertex, f64::from(deg).to_radians());
            let Some(outside_ms) = shows(&t, area, crossing) else {
                continue;
            };
            match crossing {
                Crossing::Exit => return Ok(t),
                // The longest excursion: a few seconds outside would be
                // (rightly) too brief to confirm anything.
                Crossing::Excursion => {
                    if best.as_ref().is_none_or(|(b, _)| outside_ms > *b) {
                        best = Some((outside_ms, t));
                    }
                }
            }
        }
    }
    best.map(|(_, t)| t)
        .ok_or_else(|| PlacementError::NoCrossing {
            device: trace.device.clone(),
            zone: area.name.clone(),
            crossing,
        })
}

/// When the track starts inside and crosses the boundary exactly once
/// (exit) or exactly twice (excursion), the time it spends outside; a
/// wiggle along the boundary would make several episodes where the caller
/// asked for one.
fn shows(t: &Trace, area: &Area, crossing: Crossing) -> Option<i64> {
    let inside: Vec<bool> = t
        .points
        .iter()
        .map(|p| area.contains(LatLon::new(p.lat, p.lon)))
        .collect();
    let crossings = inside.windows(2).filter(|w| w[0] != w[1]).count();
    let want = match crossing {
        Crossing::Exit => 1,
        Crossing::Excursion => 2,
    };
    if !inside[0] || crossings != want {
        return None;
    }
    let first_out = inside.iter().position(|i| !i)?;
    let last_out = inside.iter().rposition(|i| !i)?;
    Some(t.points[last_out].time_ms - t.points[first_out].time_ms)
}

/// Index of the point at half the track's length (by distance).
fn halfway_index(t: &Trace) -> usize {
    let pos = |i: usize| LatLon::new(t.points[i].lat, t.points[i].lon);
    let legs: Vec<f64> = (1..t.points.len())
        .map(|i| pos(i - 1).distance_m(pos(i)))
        .collect();
    let half = legs.iter().sum::<f64>() / 2.0;
    let mut run = 0.0;
    for (i, leg) in legs.iter().enumerate() {
        run += leg;
        if run >= half {
            return i + 1;
        }
    }
    0
}

/// Moves point `anchor` to `target` and rotates the track about it by
/// `angle` radians (counter-clockwise), in local metres.
fn transform(trace: &Trace, anchor: usize, target: LatLon, angle: f64) -> Trace {
    let a = trace.points[anchor];
    let origin = LatLon::new(a.lat, a.lon);
    let (sin, cos) = angle.sin_cos();
    let points = trace
        .points
        .iter()
        .map(|p| {
            let (e, n) = LatLon::new(p.lat, p.lon).offset_from(origin);
            let moved = target.moved(e * cos - n * sin, e * sin + n * cos);
            let mut q = *p;
            q.lat = moved.lat;
            q.lon = moved.lon;
            q
        })
        .collect();
    Trace {
        device: trace.device.clone(),
        points,
    }
}
