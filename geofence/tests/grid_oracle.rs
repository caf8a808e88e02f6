//! The cell grids behind `locate` and `relate` against brute force on a
//! generated zone set that mixes multipolygons with holes and circles, at
//! random points and at points on vertices and edges.

mod common;

use common::Rng;
use geo::{Contains, Coord, LineString, MultiPolygon, Point, Polygon};
use geoward_geofence::geodesy::METRES_PER_DEGREE;
use geoward_geofence::{Relation, Shape, Zone, ZoneKind, ZoneRef, ZoneSet};

/// A star-shaped ring of `n` vertices around (`cx`, `cy`), `r` degrees.
fn star(rng: &mut Rng, cx: f64, cy: f64, r: f64, n: usize) -> LineString<f64> {
    let mut pts: Vec<Coord<f64>> = (0..n)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / n as f64;
            let rr = r * rng.range(0.4, 1.0);
            Coord {
                x: cx + rr * a.cos(),
                y: cy + rr * a.sin(),
            }
        })
        .collect();
    pts.push(pts[0]);
    LineString::from(pts)
}

fn zones(seed: u64) -> Vec<Zone> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for i in 0..40 {
        let (cx, cy) = (rng.range(100.0, 101.0), rng.range(30.0, 31.0));
        if i % 3 == 0 {
            out.push(Zone::circle(
                format!("c{i}"),
                ZoneKind::Exclusion,
                cx,
                cy,
                rng.range(50.0, 5_000.0),
            ));
            continue;
        }
        // One to three parts, the first with a hole.
        let r = rng.range(0.02, 0.2);
        let mut parts = Vec::new();
        for p in 0..1 + (i % 3) {
            let (px, py) = (cx + 3.0 * r * p as f64, cy);
            let n = 3 + (rng.next_u64() % 200) as usize;
            let shell = star(&mut rng, px, py, r, n);
            let holes = if p == 0 {
                vec![star(&mut rng, px, py, 0.3 * r, 8)]
            } else {
                Vec::new()
            };
            parts.push(Polygon::new(shell, holes));
        }
        out.push(Zone::new(
            format!("p{i}"),
            ZoneKind::Permitted,
            Shape::Polygons(MultiPolygon::new(parts)),
        ));
    }
    out
}

fn kx(lat: f64) -> f64 {
    (METRES_PER_DEGREE * lat.to_radians().cos()).max(1.0)
}

/// Distance in metres from the point to the zone's boundary, in the local
/// frame the engine uses, and whether the zone contains the point
/// (`None` when the point is too close to a circle's rim to tell).
fn brute(z: &Zone, lon: f64, lat: f64) -> (f64, Option<bool>) {
    match &z.shape {
        Shape::Circle { center, radius_m } => {
            let k = kx(center.y());
            let (x, y) = (
                (lon - center.x()) * k,
                (lat - center.y()) * METRES_PER_DEGREE,
            );
            let d = x.hypot(y);
            let inside = ((d - radius_m).abs() > 1e-6).then_some(d < *radius_m);
            // The distance query projects at the point, not the centre:
            // only compare far from the rim.
            (
                if (d - radius_m).abs() < 1.0 {
                    0.0
                } else {
                    (d - radius_m).abs()
                },
                inside,
            )
        }
        Shape::Polygons(mp) => {
            let (kq, ky) = (kx(lat), METRES_PER_DEGREE);
            let mut best = f64::INFINITY;
            for poly in &mp.0 {
                for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                    for w in ring.0.windows(2) {
                        let a = ((w[0].x - lon) * kq, (w[0].y - lat) * ky);
                        let b = ((w[1].x - lon) * kq, (w[1].y - lat) * ky);
                        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
                        let len2 = dx * dx + dy * dy;
                        let t = if len2 > 0.0 {
                            (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0)
                        } else {
                            0.0
                        };
                        best = best.min((a.0 + t * dx).hypot(a.1 + t * dy));
                    }
                }
            }
            let inside = (best > 1e-3).then(|| mp.contains(&Point::new(lon, lat)));
            (best, inside)
        }
    }
}

#[test]
fn locate_and_relate_match_brute_force_on_mixed_zones() {
    let (set, report) = ZoneSet::build(zones(5));
    assert!(report.defects.is_empty(), "{:?}", report.defects);
    let refs: Vec<ZoneRef> = (0..set.len())
        .map(|i| set.zone_ref(i).expect("zone"))
        .collect();
    let mut rng = Rng(9);
    let mut points: Vec<(f64, f64)> = (0..3000)
        .map(|_| (rng.range(99.7, 101.9), rng.range(29.7, 31.3)))
        .collect();
    // Vertices and points on edges of every polygon.
    for z in set.zones() {
        if let Shape::Polygons(mp) = &z.shape {
            for poly in &mp.0 {
                for w in poly.exterior().0.windows(2).step_by(7) {
                    points.push((w[0].x, w[0].y));
                    points.push((0.5 * (w[0].x + w[1].x), 0.5 * (w[0].y + w[1].y)));
                }
            }
        }
    }
    let (mut hits, mut inside_rel) = (0, 0);
    for (lon, lat) in points {
        let mut want = Vec::new();
        let got = set.locate(lon, lat);
        for (i, z) in set.zones().iter().enumerate() {
            let (dist, inside) = brute(z, lon, lat);
            match inside {
                Some(true) => want.push(refs[i]),
                Some(false) => {}
                // Too close to tell by brute force: take the engine's word.
                None => {
                    if got.contains(&refs[i]) {
                        want.push(refs[i]);
                    }
                }
            }
            for r in [5.0, 300.0] {
                let rel = set.relate(refs[i], lon, lat, r);
                if dist <= r - 1e-6 {
                    assert_eq!(rel, Relation::Boundary, "{} ({lon}, {lat}) r {r}", z.id);
                } else if let Some(inside) = inside
                    && dist > r + 1e-6
                {
                    let w = if inside {
                        Relation::Inside
                    } else {
                        Relation::Outside
                    };
                    assert_eq!(rel, w, "{} ({lon}, {lat}) r {r}", z.id);
                    inside_rel += usize::from(inside);
                }
            }
        }
        want.sort_unstable();
        assert_eq!(got, want, "({lon}, {lat})");
        hits += usize::from(!got.is_empty());
    }
    assert!(hits > 300, "{hits} points in some zone");
    assert!(inside_rel > 300, "{inside_rel} inside relations");
}
