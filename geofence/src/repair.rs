//! Safe geometry repair: what can be fixed without changing the zone's area.

use geo::{Coord, LineString, MultiPolygon, Polygon};

use crate::report::{DefectKind, RepairKind};
use crate::zone::Shape;

/// Rings with less area than this (in square degrees, ≈ 1 cm²) have none.
const ZERO_AREA_DEG2: f64 = 1e-12;
/// Largest accepted circle radius; larger "circles" are almost certainly a
/// unit mistake (kilometres given as metres).
pub(crate) const MAX_RADIUS_M: f64 = 100_000.0;

/// Counts of repairs applied to one shape.
#[derive(Debug, Default)]
pub(crate) struct Repairs {
    counts: [usize; 6],
}

impl Repairs {
    fn add(&mut self, kind: RepairKind, n: usize) {
        self.counts[kind as usize] += n;
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (RepairKind, usize)> + '_ {
        const KINDS: [RepairKind; 5] = [
            RepairKind::RepeatedVertex,
            RepairKind::UnclosedRing,
            RepairKind::Spike,
            RepairKind::ZeroAreaHole,
            RepairKind::ZeroAreaPart,
        ];
        KINDS
            .into_iter()
            .map(|k| (k, self.counts[k as usize]))
            .filter(|(_, n)| *n > 0)
    }
}

fn check_coord(c: Coord<f64>) -> Result<(), DefectKind> {
    if !c.x.is_finite()
        || !c.y.is_finite()
        || !(-180.0..=180.0).contains(&c.x)
        || !(-90.0..=90.0).contains(&c.y)
    {
        return Err(DefectKind::InvalidCoordinates(format!(
            "position ({}, {}) is not a longitude/latitude",
            c.x, c.y
        )));
    }
    Ok(())
}

fn signed_area(ring: &[Coord<f64>]) -> f64 {
    ring.windows(2)
        .map(|w| w[0].x * w[1].y - w[1].x * w[0].y)
        .sum::<f64>()
        / 2.0
}

/// Repairs one ring; returns `None` when it has no area left.
fn repair_ring(
    ring: &LineString<f64>,
    repairs: &mut Repairs,
) -> Result<Option<LineString<f64>>, DefectKind> {
    let coords = &ring.0;
    for c in coords {
        check_coord(*c)?;
    }
    let mut open: &[Coord<f64>] = coords;
    if open.len() >= 2 && open.first() == open.last() {
        open = &open[..open.len() - 1];
    } else if !open.is_empty() {
        repairs.add(RepairKind::UnclosedRing, 1);
    }
    // A stack pass removes repeats and spikes (A→B→A collapses to A).
    let mut out: Vec<Coord<f64>> = Vec::with_capacity(open.len() + 1);
    for &c in open {
        if out.last() == Some(&c) {
            repairs.add(RepairKind::RepeatedVertex, 1);
            continue;
        }
        if out.len() >= 2 && out[out.len() - 2] == c {
            out.pop();
            repairs.add(RepairKind::Spike, 1);
            continue;
        }
        out.push(c);
    }
    // The same around the closing point.
    loop {
        let n = out.len();
        if n >= 2 && out[0] == out[n - 1] {
            out.pop();
            repairs.add(RepairKind::RepeatedVertex, 1);
        } else if n >= 3 && out[1] == out[n - 1] {
            out.remove(0);
            out.pop();
            repairs.add(RepairKind::Spike, 1);
        } else if n >= 3 && out[0] == out[n - 2] {
            out.pop();
            out.pop();
            repairs.add(RepairKind::Spike, 1);
        } else {
            break;
        }
    }
    if out.len() < 3 {
        return Ok(None);
    }
    out.push(out[0]);
    if signed_area(&out).abs() <= ZERO_AREA_DEG2 {
        return Ok(None);
    }
    Ok(Some(LineString(out)))
}

/// Repairs a shape or says why it cannot be used.
pub(crate) fn repair(shape: &Shape, repairs: &mut Repairs) -> Result<Shape, DefectKind> {
    match shape {
        Shape::Circle { center, radius_m } => {
            check_coord(center.0)?;
            if !radius_m.is_finite() || *radius_m <= 0.0 || *radius_m > MAX_RADIUS_M {
                return Err(DefectKind::InvalidRadius(format!(
                    "{radius_m} m is not in (0, {MAX_RADIUS_M}]"
                )));
            }
            Ok(shape.clone())
        }
        Shape::Polygons(mp) => {
            let mut parts = Vec::with_capacity(mp.0.len());
            for poly in &mp.0 {
                let Some(shell) = repair_ring(poly.exterior(), repairs)? else {
                    repairs.add(RepairKind::ZeroAreaPart, 1);
                    continue;
                };
                let mut holes = Vec::with_capacity(poly.interiors().len());
                for hole in poly.interiors() {
                    match repair_ring(hole, repairs)? {
                        Some(h) => holes.push(h),
                        None => repairs.add(RepairKind::ZeroAreaHole, 1),
                    }
                }
                parts.push(Polygon::new(shell, holes));
            }
            if parts.is_empty() {
                return Err(DefectKind::EmptyGeometry);
            }
            Ok(Shape::Polygons(MultiPolygon(parts)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{coord, polygon};

    fn run(shape: Shape) -> (Result<Shape, DefectKind>, Vec<(RepairKind, usize)>) {
        let mut r = Repairs::default();
        let out = repair(&shape, &mut r);
        (out, r.iter().collect())
    }

    #[test]
    fn repeats_spikes_and_open_rings_are_repaired() {
        let ring = LineString(vec![
            coord! {x: 0.0, y: 0.0},
            coord! {x: 1.0, y: 0.0},
            coord! {x: 1.0, y: 0.0},
            coord! {x: 2.0, y: 0.0},
            coord! {x: 1.0, y: 0.0},
            coord! {x: 1.0, y: 1.0},
            coord! {x: 0.0, y: 1.0},
        ]);
        let (out, repairs) = run(Shape::Polygons(MultiPolygon(vec![Polygon::new(
            ring,
            vec![],
        )])));
        let Ok(Shape::Polygons(mp)) = out else {
            panic!("rejected: {out:?}")
        };
        assert_eq!(mp.0[0].exterior().0.len(), 5);
        assert_eq!(
            repairs,
            vec![
                // geo closes rings itself; import counts unclosed input rings.
                (RepairKind::RepeatedVertex, 1),
                (RepairKind::Spike, 1)
            ]
        );
    }

    #[test]
    fn zero_area_parts_are_dropped_and_empty_rejected() {
        let good = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0)];
        let flat = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 2.0, y: 0.0)];
        let (out, repairs) = run(Shape::Polygons(MultiPolygon(vec![good, flat.clone()])));
        assert!(out.is_ok());
        assert_eq!(repairs, vec![(RepairKind::ZeroAreaPart, 1)]);
        let (out, _) = run(Shape::Polygons(MultiPolygon(vec![flat])));
        assert_eq!(out, Err(DefectKind::EmptyGeometry));
    }
}
