//! The little planar geometry the simulator needs: local metre offsets,
//! point-in-polygon and sampling inside a polygon.
//!
//! Deliberately not the `geofence` engine: the simulator must stay an
//! independent witness of where a device is, so a bug in the engine cannot
//! hide itself by also placing the test subjects.

use rand::Rng;

/// Mean Earth radius in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A position, degrees WGS84.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

impl LatLon {
    /// Makes a position.
    pub const fn new(lat: f64, lon: f64) -> Self {
        Self { lat, lon }
    }

    /// Offset from `origin` in metres (east, north), equirectangular around
    /// `origin`: accurate to well under 1 % over tens of kilometres.
    pub fn offset_from(self, origin: LatLon) -> (f64, f64) {
        let m_per_deg = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        let east = (self.lon - origin.lon) * m_per_deg * origin.lat.to_radians().cos();
        let north = (self.lat - origin.lat) * m_per_deg;
        (east, north)
    }

    /// The position `east`/`north` metres from `self`.
    pub fn moved(self, east_m: f64, north_m: f64) -> LatLon {
        let m_per_deg = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        let cos = self.lat.to_radians().cos().max(1e-6);
        LatLon {
            lat: (self.lat + north_m / m_per_deg).clamp(-90.0, 90.0),
            lon: self.lon + east_m / (m_per_deg * cos),
        }
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(self, other: LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

/// A polygon: outer ring then holes, each ring a list of positions (closing
/// vertex optional).
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    /// Outer ring first, then holes.
    pub rings: Vec<Vec<LatLon>>,
}

impl Polygon {
    /// Even-odd point-in-polygon over all rings (holes excluded).
    pub fn contains(&self, p: LatLon) -> bool {
        self.rings
            .iter()
            .fold(false, |inside, ring| inside ^ ring_contains(ring, p))
    }

    /// Bounding box (min, max) of the outer ring, `None` if it is empty.
    pub fn bbox(&self) -> Option<(LatLon, LatLon)> {
        let outer = self.rings.first()?;
        let first = *outer.first()?;
        Some(outer.iter().fold((first, first), |(lo, hi), p| {
            (
                LatLon::new(lo.lat.min(p.lat), lo.lon.min(p.lon)),
                LatLon::new(hi.lat.max(p.lat), hi.lon.max(p.lon)),
            )
        }))
    }

    /// Absolute area of the outer ring in square degrees (for choosing the
    /// main part of a multipolygon).
    pub fn outer_area_deg2(&self) -> f64 {
        let Some(ring) = self.rings.first() else {
            return 0.0;
        };
        let n = ring.len();
        let twice: f64 = (0..n)
            .map(|i| {
                let (a, b) = (ring[i], ring[(i + 1) % n]);
                a.lon * b.lat - b.lon * a.lat
            })
            .sum();
        twice.abs() / 2.0
    }
}

fn ring_contains(ring: &[LatLon], p: LatLon) -> bool {
    let n = ring.len();
    if n < 3 {
        return false;
    }
    let mut inside = false;
    let mut j = n - 1;
    for i in 0..n {
        let (a, b) = (ring[i], ring[j]);
        if (a.lat > p.lat) != (b.lat > p.lat) {
            let x = (b.lon - a.lon) * (p.lat - a.lat) / (b.lat - a.lat) + a.lon;
            if p.lon < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// A zone as the simulator sees it: a name and its polygons.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    /// Feature id from the zone file (`name` when the feature has none).
    pub id: String,
    /// `properties.name` from the zone file.
    pub name: String,
    /// Parts of a (multi)polygon.
    pub polygons: Vec<Polygon>,
}

impl Area {
    /// Whether any part contains `p`.
    pub fn contains(&self, p: LatLon) -> bool {
        self.polygons.iter().any(|poly| poly.contains(p))
    }

    /// The largest part, by outer-ring area.
    pub fn main_part(&self) -> Option<&Polygon> {
        self.polygons
            .iter()
            .max_by(|a, b| a.outer_area_deg2().total_cmp(&b.outer_area_deg2()))
    }

    /// A uniformly random point inside the main part, by rejection on its
    /// bounding box; `None` after `max_tries` misses (degenerate polygon).
    pub fn sample_inside<R: Rng>(&self, rng: &mut R, max_tries: usize) -> Option<LatLon> {
        let poly = self.main_part()?;
        let (lo, hi) = poly.bbox()?;
        (0..max_tries).find_map(|_| {
            let p = LatLon::new(
                rng.random_range(lo.lat..=hi.lat),
                rng.random_range(lo.lon..=hi.lon),
            );
            poly.contains(p).then_some(p)
        })
    }

    /// A deterministic point well inside the main part: the bounding-box
    /// centre if the part contains it, else the seeded sample farthest from
    /// the boundary vertices out of 64.
    pub fn interior_point(&self, seed: u64) -> Option<LatLon> {
        let poly = self.main_part()?;
        let (lo, hi) = poly.bbox()?;
        let centre = LatLon::new((lo.lat + hi.lat) / 2.0, (lo.lon + hi.lon) / 2.0);
        if poly.contains(centre) {
            return Some(centre);
        }
        let ring = poly.rings.first()?;
        let clearance = |p: LatLon| {
            ring.iter()
                .map(|v| v.distance_m(p))
                .fold(f64::INFINITY, f64::min)
        };
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        (0..64)
            .filter_map(|_| self.sample_inside(&mut rng, 256))
            .max_by(|a, b| clearance(*a).total_cmp(&clearance(*b)))
    }

    /// A random point inside the main part at least `margin_m` from every
    /// vertex of its outer ring (so GPS noise does not cross the boundary).
    pub fn sample_deep_inside<R: Rng>(
        &self,
        rng: &mut R,
        margin_m: f64,
        max_tries: usize,
    ) -> Option<LatLon> {
        let outer = self.main_part()?.rings.first()?.clone();
        (0..max_tries).find_map(|_| {
            let p = self.sample_inside(rng, 64)?;
            outer
                .iter()
                .all(|v| v.distance_m(p) >= margin_m)
                .then_some(p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn square() -> Area {
        let ring = vec![
            LatLon::new(0.0, 0.0),
            LatLon::new(0.0, 1.0),
            LatLon::new(1.0, 1.0),
            LatLon::new(1.0, 0.0),
        ];
        let hole = vec![
            LatLon::new(0.4, 0.4),
            LatLon::new(0.4, 0.6),
            LatLon::new(0.6, 0.6),
            LatLon::new(0.6, 0.4),
        ];
        Area {
            id: "sq".into(),
            name: "sq".into(),
            polygons: vec![Polygon {
                rings: vec![ring, hole],
            }],
        }
    }

    #[test]
    fn contains_respects_holes() {
        let a = square();
        assert!(a.contains(LatLon::new(0.2, 0.2)));
        assert!(!a.contains(LatLon::new(0.5, 0.5)));
        assert!(!a.contains(LatLon::new(1.5, 0.5)));
    }

    #[test]
    fn offsets_round_trip_and_match_haversine() {
        let o = LatLon::new(38.47, 106.28);
        let p = o.moved(1200.0, -800.0);
        let (e, n) = p.offset_from(o);
        assert!(
            (e - 1200.0).abs() < 0.01 && (n + 800.0).abs() < 0.01,
            "{e} {n}"
        );
        let d = o.distance_m(p);
        assert!((d - (1200f64.hypot(800.0))).abs() < 2.0, "{d}");
    }

    #[test]
    fn samples_fall_inside_and_are_seeded() {
        let a = square();
        let mut r1 = ChaCha8Rng::seed_from_u64(7);
        let mut r2 = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let p = a.sample_inside(&mut r1, 100).unwrap();
            assert!(a.contains(p));
            assert_eq!(Some(p), a.sample_inside(&mut r2, 100));
        }
    }
}
