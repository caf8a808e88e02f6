//! A subject's true movement: piecewise-linear in time between waypoints.

use crate::geo::LatLon;

/// Waypoints ordered by time; the subject stands still at the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    points: Vec<(i64, LatLon)>,
}

impl Path {
    /// Starts at `pos` at `t_ms`.
    pub fn new(t_ms: i64, pos: LatLon) -> Self {
        Self {
            points: vec![(t_ms, pos)],
        }
    }

    /// Last waypoint.
    pub fn last(&self) -> (i64, LatLon) {
        // Invariant: `points` is never empty (constructor and truncate keep one).
        *self.points.last().expect("path has a waypoint")
    }

    /// Stays at the current place until `t_ms` (no-op if already later).
    pub fn stay_until(&mut self, t_ms: i64) {
        let (t, p) = self.last();
        if t_ms > t {
            self.points.push((t_ms, p));
        }
    }

    /// Travels in a straight line to `to` at `speed_mps`; returns arrival.
    pub fn go(&mut self, to: LatLon, speed_mps: f64) -> i64 {
        let (t, p) = self.last();
        let dt = (p.distance_m(to) / speed_mps.max(0.1) * 1000.0).round() as i64;
        self.points.push((t + dt.max(1), to));
        t + dt.max(1)
    }

    /// Cuts the path at `t_ms` (the subject is where the old path had them).
    pub fn truncate_at(&mut self, t_ms: i64) {
        let here = self.at(t_ms);
        self.points.retain(|(t, _)| *t < t_ms);
        self.points.push((t_ms, here));
    }

    /// True position at `t_ms`.
    pub fn at(&self, t_ms: i64) -> LatLon {
        let i = self.points.partition_point(|(t, _)| *t <= t_ms);
        if i == 0 {
            return self.points[0].1;
        }
        if i == self.points.len() {
            return self.last().1;
        }
        let (t0, a) = self.points[i - 1];
        let (t1, b) = self.points[i];
        let f = (t_ms - t0) as f64 / (t1 - t0).max(1) as f64;
        LatLon::new(a.lat + (b.lat - a.lat) * f, a.lon + (b.lon - a.lon) * f)
    }

    /// Waypoints, for checks along the route.
    pub fn waypoints(&self) -> &[(i64, LatLon)] {
        &self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_stays_and_truncates() {
        let a = LatLon::new(38.0, 106.0);
        let b = a.moved(800.0, 0.0);
        let mut p = Path::new(0, a);
        p.stay_until(1000);
        let arrive = p.go(b, 8.0);
        assert_eq!(arrive, 101_000);
        assert_eq!(p.at(500), a);
        let mid = p.at(51_000);
        assert!((mid.distance_m(a) - 400.0).abs() < 1.0);
        assert_eq!(p.at(1_000_000), b);
        p.truncate_at(51_000);
        assert_eq!(p.last().0, 51_000);
        assert!((p.at(99_999).distance_m(mid)) < 1e-6);
    }
}
