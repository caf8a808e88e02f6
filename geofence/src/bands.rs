//! Fast point-in-polygon and near-boundary queries on one polygon part.
//!
//! Plain ray casting over a 25k-vertex ring costs tens of microseconds. The
//! part's bounding box is cut into horizontal bands of equal height and
//! every edge is listed in each band its latitude range touches. A horizontal
//! ray at latitude `y` can only cross edges whose range contains `y`, so the
//! crossing-number test reads one band: the answer is exactly that of ray
//! casting over the whole ring, at the cost of a few dozen edges.
//! Queries with a radius (boundary distance, segment crossing) read the
//! bands that the query box spans.

use crate::geodesy::{LocalFrame, point_segment_distance, segments_intersect};
use crate::grid::{CellClass, CellGrid};

/// How one part lies relative to an accuracy circle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartRelation {
    /// Some edge lies within the radius.
    Near,
    /// No edge within the radius; the centre is inside.
    Inside,
    /// No edge within the radius; the centre is outside.
    Outside,
}

/// One polygon edge in degrees (`x` = longitude, `y` = latitude).
#[derive(Debug, Clone, Copy)]
struct Edge {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Edge {
    fn x_range(&self) -> (f64, f64) {
        (self.x0.min(self.x1), self.x0.max(self.x1))
    }
}

/// Band index over all rings (shell and holes) of one polygon part.
#[derive(Debug, Clone)]
pub(crate) struct BandIndex {
    min_x: f64,
    min_y: f64,
    max_x: f64,
    max_y: f64,
    /// Bands per degree of latitude.
    scale: f64,
    /// `offsets[b]..offsets[b + 1]` are band `b`'s edges.
    offsets: Vec<u32>,
    edges: Vec<Edge>,
    /// Cells answered without edges (see [`crate::grid`]).
    grid: CellGrid,
}

/// Average number of ring edges per band.
const EDGES_PER_BAND: usize = 3;
const MAX_BANDS: usize = 1 << 16;

impl BandIndex {
    /// Builds the index from closed rings (first vertex equals last).
    pub(crate) fn new(rings: &[&[geo::Coord<f64>]]) -> Self {
        let mut all = Vec::new();
        for ring in rings {
            for w in ring.windows(2) {
                all.push(Edge {
                    x0: w[0].x,
                    y0: w[0].y,
                    x1: w[1].x,
                    y1: w[1].y,
                });
            }
        }
        let (mut min_x, mut min_y, mut max_x, mut max_y) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for e in &all {
            min_x = min_x.min(e.x0.min(e.x1));
            max_x = max_x.max(e.x0.max(e.x1));
            min_y = min_y.min(e.y0.min(e.y1));
            max_y = max_y.max(e.y0.max(e.y1));
        }
        if all.is_empty() {
            (min_x, min_y, max_x, max_y) = (0.0, 0.0, 0.0, 0.0);
        }
        let bands = (all.len() / EDGES_PER_BAND).clamp(1, MAX_BANDS);
        let height = max_y - min_y;
        let scale = if height > 0.0 {
            bands as f64 / height
        } else {
            0.0
        };
        let mut index = Self {
            min_x,
            min_y,
            max_x,
            max_y,
            scale,
            offsets: vec![0; bands + 1],
            edges: Vec::new(),
            grid: CellGrid::new([0.0; 4], &[], |_, _| {}),
        };
        // Two passes: count per band, then place (compressed sparse rows).
        for e in &all {
            let (b0, b1) = index.band_span(e.y0.min(e.y1), e.y0.max(e.y1));
            for b in b0..=b1 {
                index.offsets[b + 1] += 1;
            }
        }
        for b in 0..bands {
            index.offsets[b + 1] += index.offsets[b];
        }
        let mut cursor: Vec<u32> = index.offsets[..bands].to_vec();
        let placeholder = Edge {
            x0: 0.0,
            y0: 0.0,
            x1: 0.0,
            y1: 0.0,
        };
        index.edges = vec![placeholder; index.offsets[bands] as usize];
        for e in &all {
            let (b0, b1) = index.band_span(e.y0.min(e.y1), e.y0.max(e.y1));
            for slot in &mut cursor[b0..=b1] {
                index.edges[*slot as usize] = *e;
                *slot += 1;
            }
        }
        let segments: Vec<_> = all.iter().map(|e| ((e.x0, e.y0), (e.x1, e.y1))).collect();
        index.grid = CellGrid::new(index.bbox(), &segments, |y, out| index.crossings(y, out));
        index
    }

    /// The x of every crossing that the ray test at latitude `y` counts.
    fn crossings(&self, y: f64, out: &mut Vec<f64>) {
        for e in self.band(self.band_of(y)) {
            if (e.y0 > y) != (e.y1 > y) {
                out.push(e.x0 + (y - e.y0) * (e.x1 - e.x0) / (e.y1 - e.y0));
            }
        }
    }

    fn bands(&self) -> usize {
        self.offsets.len() - 1
    }

    fn band_of(&self, y: f64) -> usize {
        // A saturating cast is floor for every input that matters here:
        // negative and NaN give 0, as the clamp below would (and it avoids
        // a libm call on targets without a rounding instruction).
        (((y - self.min_y) * self.scale) as usize).min(self.bands() - 1)
    }

    fn band_span(&self, y0: f64, y1: f64) -> (usize, usize) {
        (self.band_of(y0), self.band_of(y1))
    }

    fn band(&self, b: usize) -> &[Edge] {
        &self.edges[self.offsets[b] as usize..self.offsets[b + 1] as usize]
    }

    /// Bounding box `[min_x, min_y, max_x, max_y]` in degrees.
    pub(crate) fn bbox(&self) -> [f64; 4] {
        [self.min_x, self.min_y, self.max_x, self.max_y]
    }

    /// Even-odd point-in-polygon (holes are rings like any other).
    pub(crate) fn contains(&self, x: f64, y: f64) -> bool {
        match self.grid.class(x, y) {
            CellClass::OutsideBox => false,
            CellClass::Free { inside, .. } => inside,
            CellClass::Boundary => self.contains_by_edges(x, y),
        }
    }

    /// [`BandIndex::contains`] from the edges alone (no grid).
    pub(crate) fn contains_by_edges(&self, x: f64, y: f64) -> bool {
        if x < self.min_x || x > self.max_x || y < self.min_y || y > self.max_y {
            return false;
        }
        let mut inside = false;
        for e in self.band(self.band_of(y)) {
            if (e.y0 > y) != (e.y1 > y) {
                let xi = e.x0 + (y - e.y0) * (e.x1 - e.x0) / (e.y1 - e.y0);
                if x < xi {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// Calls `f` with every edge whose box meets the query box.
    fn edges_near(&self, qx: (f64, f64), qy: (f64, f64), mut f: impl FnMut(&Edge) -> bool) {
        if qx.1 < self.min_x || qx.0 > self.max_x || qy.1 < self.min_y || qy.0 > self.max_y {
            return;
        }
        let (b0, b1) = self.band_span(qy.0, qy.1);
        for b in b0..=b1 {
            for e in self.band(b) {
                let (ex0, ex1) = e.x_range();
                let (ey0, ey1) = (e.y0.min(e.y1), e.y0.max(e.y1));
                if ex1 >= qx.0 && ex0 <= qx.1 && ey1 >= qy.0 && ey0 <= qy.1 && f(e) {
                    return;
                }
            }
        }
    }

    /// Distance in metres from the point to the nearest boundary edge, if
    /// that distance is at most `max_m`.
    /// `frame` must be centred on (`x`, `y`); callers share one per query.
    pub(crate) fn boundary_distance_m(
        &self,
        frame: &LocalFrame,
        x: f64,
        y: f64,
        max_m: f64,
    ) -> Option<f64> {
        if self.grid.distance_lower_bound_m(frame.kx(), x, y) > max_m {
            return None;
        }
        let (dx, dy) = (frame.lon_degrees(max_m), frame.lat_degrees(max_m));
        let mut best = f64::INFINITY;
        self.edges_near((x - dx, x + dx), (y - dy, y + dy), |e| {
            let d = point_segment_distance(
                (0.0, 0.0),
                frame.project(e.x0, e.y0),
                frame.project(e.x1, e.y1),
            );
            best = best.min(d);
            false
        });
        (best <= max_m).then_some(best)
    }

    /// [`BandIndex::contains`] for every point of a rectangle, when the
    /// cell grid alone tells (see [`CellGrid::summarize`]).
    pub(crate) fn contains_all_or_none(&self, rect: [f64; 4]) -> Option<bool> {
        self.grid.summarize(rect)
    }

    /// From the cell grid alone: whether the point is inside and a lower
    /// bound of its distance in metres to every edge (`frame` centred on
    /// the point), when its cell is free of edges or it is outside the box.
    pub(crate) fn free_bound(&self, frame: &LocalFrame, x: f64, y: f64) -> Option<(bool, f64)> {
        match self.grid.class(x, y) {
            CellClass::Boundary => None,
            CellClass::Free { inside, free_cells } => {
                Some((inside, self.grid.free_cells_m(frame.kx(), free_cells)))
            }
            CellClass::OutsideBox => {
                Some((false, self.grid.distance_lower_bound_m(frame.kx(), x, y)))
            }
        }
    }

    /// Whether some edge lies within `max_m` metres of the point (`None`,
    /// stopping at the first such edge), and otherwise a lower bound of
    /// the distance to every edge: the distance to the nearest edge when
    /// one lies within `search_m` (≥ `max_m`), else `search_m`. A caller
    /// keeps the bound as a disc the next queries can be answered from, so
    /// one scan of a wider box spares the scans of the fixes that follow.
    /// `frame` must be centred on (`x`, `y`).
    pub(crate) fn clearance_m(
        &self,
        frame: &LocalFrame,
        x: f64,
        y: f64,
        max_m: f64,
        search_m: f64,
    ) -> Option<f64> {
        let search_m = search_m.max(max_m);
        let (dx, dy) = (frame.lon_degrees(search_m), frame.lat_degrees(search_m));
        // Every edge outside the box is farther than `search_m` (the frame
        // is linear); the factor covers rounding of the box's corners.
        let mut best = search_m * (1.0 - 1e-9);
        let mut near = false;
        self.edges_near((x - dx, x + dx), (y - dy, y + dy), |e| {
            let d = point_segment_distance(
                (0.0, 0.0),
                frame.project(e.x0, e.y0),
                frame.project(e.x1, e.y1),
            );
            near = d <= max_m;
            best = best.min(d);
            near
        });
        // NaN compares false: no bound, so nothing is remembered.
        (!near).then_some(if best.is_nan() { 0.0 } else { best })
    }

    /// Whether the segment `a`–`b` (degrees) touches the boundary.
    pub(crate) fn segment_meets_boundary(&self, a: (f64, f64), b: (f64, f64)) -> bool {
        let mut hit = false;
        self.edges_near(
            (a.0.min(b.0), a.0.max(b.0)),
            (a.1.min(b.1), a.1.max(b.1)),
            |e| {
                hit = segments_intersect(a, b, (e.x0, e.y0), (e.x1, e.y1));
                hit
            },
        );
        hit
    }

    /// Heap bytes owned by the index.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * size_of::<u32>()
            + self.edges.capacity() * size_of::<Edge>()
            + self.grid.heap_bytes()
    }

    /// The part's cell grid (for tests).
    #[cfg(test)]
    pub(crate) fn grid(&self) -> &CellGrid {
        &self.grid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::coord;

    fn square_with_hole() -> BandIndex {
        let shell = [
            coord! {x: 0.0, y: 0.0},
            coord! {x: 1.0, y: 0.0},
            coord! {x: 1.0, y: 1.0},
            coord! {x: 0.0, y: 1.0},
            coord! {x: 0.0, y: 0.0},
        ];
        let hole = [
            coord! {x: 0.4, y: 0.4},
            coord! {x: 0.6, y: 0.4},
            coord! {x: 0.6, y: 0.6},
            coord! {x: 0.4, y: 0.6},
            coord! {x: 0.4, y: 0.4},
        ];
        BandIndex::new(&[&shell, &hole])
    }

    #[test]
    fn contains_respects_holes() {
        let idx = square_with_hole();
        assert!(idx.contains(0.2, 0.2));
        assert!(!idx.contains(0.5, 0.5));
        assert!(!idx.contains(1.5, 0.5));
    }

    #[test]
    fn boundary_distance_is_bounded_by_max() {
        let idx = square_with_hole();
        // 0.001° of latitude is about 111 m.
        let d = idx
            .boundary_distance_m(&LocalFrame::new(0.5, 0.999), 0.5, 0.999, 500.0)
            .expect("near the top edge");
        assert!((d - 111.2).abs() < 1.0, "{d}");
        assert_eq!(
            idx.boundary_distance_m(&LocalFrame::new(0.2, 0.2), 0.2, 0.2, 500.0),
            None
        );
    }
}
