//! Small-scale geodesy: a local equirectangular frame around a point.
//!
//! Accuracy circles are tens to hundreds of metres, so projecting around the
//! fix with `x = Δlon·cos(lat)·R`, `y = Δlat·R` is accurate to well under a
//! metre at that scale, and much cheaper than a geodesic solver.

/// Mean earth radius in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Metres per degree of latitude on the mean sphere.
pub const METRES_PER_DEGREE: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

/// An equirectangular projection centred on one point, in metres.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalFrame {
    lon0: f64,
    lat0: f64,
    /// Metres per degree of longitude at `lat0`.
    kx: f64,
}

impl LocalFrame {
    pub(crate) fn new(lon0: f64, lat0: f64) -> Self {
        // Clamp near the poles so the frame never degenerates.
        let kx = (METRES_PER_DEGREE * lat0.to_radians().cos()).max(1.0);
        Self { lon0, lat0, kx }
    }

    /// A frame at `lat0` reusing a known `kx` (metres per degree of
    /// longitude), to avoid a cosine per query.
    pub(crate) fn with_kx(lon0: f64, lat0: f64, kx: f64) -> Self {
        Self { lon0, lat0, kx }
    }

    pub(crate) fn kx(&self) -> f64 {
        self.kx
    }

    pub(crate) fn project(&self, lon: f64, lat: f64) -> (f64, f64) {
        (
            (lon - self.lon0) * self.kx,
            (lat - self.lat0) * METRES_PER_DEGREE,
        )
    }

    /// Degrees of longitude spanned by `m` metres at the frame's latitude.
    pub(crate) fn lon_degrees(&self, m: f64) -> f64 {
        m / self.kx
    }

    /// Degrees of latitude spanned by `m` metres.
    pub(crate) fn lat_degrees(&self, m: f64) -> f64 {
        m / METRES_PER_DEGREE
    }
}

/// Distance in metres between two points (haversine on the mean sphere).
pub fn distance_m(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Euclidean distance from `p` to the segment `a`–`b` (planar coordinates).
pub(crate) fn point_segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    (cx * cx + cy * cy).sqrt()
}

fn orient(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> f64 {
    (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)
}

fn on_segment(a: (f64, f64), b: (f64, f64), p: (f64, f64)) -> bool {
    p.0 >= a.0.min(b.0) && p.0 <= a.0.max(b.0) && p.1 >= a.1.min(b.1) && p.1 <= a.1.max(b.1)
}

/// Whether segments `a`–`b` and `c`–`d` intersect (touching counts).
///
/// Intersection is invariant under the affine map from degrees to a local
/// frame, so this works directly on longitude/latitude.
pub(crate) fn segments_intersect(
    a: (f64, f64),
    b: (f64, f64),
    c: (f64, f64),
    d: (f64, f64),
) -> bool {
    let (o1, o2) = (orient(a, b, c), orient(a, b, d));
    let (o3, o4) = (orient(c, d, a), orient(c, d, b));
    if ((o1 > 0.0 && o2 < 0.0) || (o1 < 0.0 && o2 > 0.0))
        && ((o3 > 0.0 && o4 < 0.0) || (o3 < 0.0 && o4 > 0.0))
    {
        return true;
    }
    (o1 == 0.0 && on_segment(a, b, c))
        || (o2 == 0.0 && on_segment(a, b, d))
        || (o3 == 0.0 && on_segment(c, d, a))
        || (o4 == 0.0 && on_segment(c, d, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_frame_agrees_with_haversine_at_100m_scale() {
        let f = LocalFrame::new(104.06, 30.67);
        let (lon, lat) = (104.061, 30.6708);
        let (x, y) = f.project(lon, lat);
        let planar = (x * x + y * y).sqrt();
        let sphere = distance_m(104.06, 30.67, lon, lat);
        assert!((planar - sphere).abs() < 0.05, "{planar} vs {sphere}");
    }

    #[test]
    fn segment_intersection_cases() {
        assert!(segments_intersect(
            (0.0, 0.0),
            (2.0, 2.0),
            (0.0, 2.0),
            (2.0, 0.0)
        ));
        assert!(!segments_intersect(
            (0.0, 0.0),
            (1.0, 0.0),
            (0.0, 1.0),
            (1.0, 1.0)
        ));
        assert!(segments_intersect(
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 0.0),
            (1.0, 1.0)
        ));
    }
}
