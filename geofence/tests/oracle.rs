//! Property tests against brute force on real county polygons: `locate`
//! must agree with `geo::Contains` over every zone, and the bounded
//! boundary distance and `relate` with a scan over every edge.

mod common;

use common::{Rng, load_zones};
use geo::{BoundingRect, Contains, Point};
use geoward_geofence::{Relation, Shape, ZoneRef, ZoneSet};

fn brute_locate(set: &ZoneSet, lon: f64, lat: f64) -> Vec<ZoneRef> {
    let p = Point::new(lon, lat);
    (0..set.len())
        .filter(|i| match &set.zones()[*i].shape {
            Shape::Polygons(mp) => mp.contains(&p),
            Shape::Circle { .. } => false,
        })
        .map(|i| zone_ref(set, i))
        .collect()
}

fn zone_ref(set: &ZoneSet, i: usize) -> ZoneRef {
    let id = &set.zones()[i].id;
    *set.versions(id)
        .iter()
        .find(|r| r.index() == i)
        .expect("every zone is a version of its id")
}

fn bbox_of(set: &ZoneSet) -> [f64; 4] {
    let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for z in set.zones() {
        if let Shape::Polygons(mp) = &z.shape
            && let Some(r) = mp.bounding_rect()
        {
            b = [
                b[0].min(r.min().x),
                b[1].min(r.min().y),
                b[2].max(r.max().x),
                b[3].max(r.max().y),
            ];
        }
    }
    b
}

fn check_locate(file: &str, points: usize, seed: u64) {
    let (set, report) = load_zones(file);
    assert!(report.accepted > 0, "{file}: nothing imported");
    let b = bbox_of(&set);
    let mut rng = Rng(seed);
    let mut inside = 0;
    for _ in 0..points {
        let (lon, lat) = (rng.range(b[0], b[2]), rng.range(b[1], b[3]));
        let got = set.locate(lon, lat);
        let want = brute_locate(&set, lon, lat);
        assert_eq!(got, want, "{file}: point ({lon}, {lat})");
        inside += usize::from(!got.is_empty());
    }
    // The test must exercise both answers.
    assert!(
        inside > points / 10 && inside < points,
        "{file}: {inside} of {points} inside"
    );
}

#[test]
fn locate_matches_brute_force_zhengzhou() {
    check_locate("he2_nan2_zheng4_zhou1.geojson", 3000, 1);
}

#[test]
fn locate_matches_brute_force_yinchuan() {
    check_locate("ning2_xia4_yin2_chuan1.geojson", 3000, 2);
}

#[test]
fn locate_matches_brute_force_ziyang() {
    check_locate("si4_chuan1_zi1_yang2.geojson", 3000, 3);
}

/// Points near real boundaries: the bounded distance must equal a scan over
/// every edge in a local frame, and `None` exactly when farther than max.
#[test]
fn boundary_distance_matches_edge_scan() {
    let (set, _) = load_zones("he2_nan2_zheng4_zhou1.geojson");
    let mut rng = Rng(7);
    let mut near = 0;
    for i in 0..set.len() {
        let Shape::Polygons(mp) = &set.zones()[i].shape else {
            continue;
        };
        let r = zone_ref(&set, i);
        let ring = &mp.0[0].exterior().0;
        for _ in 0..40 {
            let v = ring[(rng.next_u64() % ring.len() as u64) as usize];
            // Within about ±300 m of a vertex.
            let (lon, lat) = (
                v.x + rng.range(-0.003, 0.003),
                v.y + rng.range(-0.003, 0.003),
            );
            let kx = 6_371_008.8_f64.to_radians() * lat.to_radians().cos();
            let ky = 6_371_008.8_f64.to_radians();
            let mut best = f64::INFINITY;
            for poly in &mp.0 {
                for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                    for w in ring.0.windows(2) {
                        let a = ((w[0].x - lon) * kx, (w[0].y - lat) * ky);
                        let b = ((w[1].x - lon) * kx, (w[1].y - lat) * ky);
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
            let max = 150.0;
            match set.boundary_distance_m(r, lon, lat, max) {
                Some(d) => {
                    near += 1;
                    assert!(
                        (d - best).abs() < 1e-6,
                        "zone {i} ({lon}, {lat}): {d} vs {best}"
                    );
                }
                None => assert!(best > max, "zone {i} ({lon}, {lat}): missed {best}"),
            }
            // `relate` (which stops at the first edge within the radius)
            // against the same scan and `geo::Contains`.
            let want = if best <= max {
                Relation::Boundary
            } else if mp.contains(&Point::new(lon, lat)) {
                Relation::Inside
            } else {
                Relation::Outside
            };
            assert_eq!(
                set.relate(r, lon, lat, max),
                want,
                "zone {i} ({lon}, {lat})"
            );
        }
    }
    assert!(near > 50, "too few near-boundary samples: {near}");
}

/// The whole national file: import copes with its defects, and `locate`
/// agrees with `geo::Contains` over every zone whose bounding box holds the
/// point (the box test only skips zones that cannot contain it).
#[test]
fn national_file_imports_and_locates_like_brute_force() {
    let (set, report) = load_zones("china-counties.geojson.gz");
    assert_eq!(report.features, 3253);
    assert_eq!(report.accepted + report.defects.len(), report.features);
    // The one rejected feature has no rings at all; the 54 Chongqing and
    // Shanghai districts whose 80 rings are ECharts-encoded strings are
    // decoded from their `encodeOffsets`.
    for d in &report.defects {
        assert_eq!(d.kind.reason(), "empty_geometry", "{d}");
    }
    assert_eq!(report.defects.len(), 1);
    assert_eq!(
        report.repair_count(geoward_geofence::RepairKind::DecodedEchartsRing),
        80
    );
    let decoded_features = report
        .repairs
        .iter()
        .filter(|r| r.kind == geoward_geofence::RepairKind::DecodedEchartsRing)
        .count();
    assert_eq!(decoded_features, 54);
    for (lon, lat, prefix, name) in [
        (121.47, 31.23, "shanghai/", "黄浦区"),
        (106.55, 29.56, "chongqing/", "渝中区"),
    ] {
        let found: Vec<&str> = set
            .locate(lon, lat)
            .into_iter()
            .map(|r| set.zone(r).id.as_str())
            .collect();
        assert_eq!(found.len(), 1, "({lon}, {lat}): {found:?}");
        assert!(found[0].starts_with(prefix), "({lon}, {lat}): {found:?}");
        let zone = set.zone(set.locate(lon, lat)[0]);
        assert_eq!(zone.name.as_deref(), Some(name));
    }
    assert!(report.repair_count(geoward_geofence::RepairKind::RepeatedVertex) > 0);
    let boxes: Vec<Option<geo::Rect<f64>>> = set
        .zones()
        .iter()
        .map(|z| match &z.shape {
            Shape::Polygons(mp) => mp.bounding_rect(),
            Shape::Circle { .. } => None,
        })
        .collect();
    let mut rng = Rng(42);
    let mut inside = 0;
    let points = 3000;
    for _ in 0..points {
        let (lon, lat) = (rng.range(73.5, 135.0), rng.range(18.0, 53.5));
        let p = Point::new(lon, lat);
        let want: Vec<ZoneRef> = (0..set.len())
            .filter(|i| {
                boxes[*i].is_some_and(|b| b.contains(&p))
                    && matches!(&set.zones()[*i].shape, Shape::Polygons(mp) if mp.contains(&p))
            })
            .map(|i| zone_ref(&set, i))
            .collect();
        let got = set.locate(lon, lat);
        assert_eq!(got, want, "({lon}, {lat})");
        inside += usize::from(!got.is_empty());
    }
    assert!(inside > points / 4, "{inside} of {points} inside");
}
