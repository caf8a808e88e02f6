//! A uniform cell grid over one polygon part: most queries answer from one
//! byte instead of reading edges.
//!
//! The part's bounding box is cut into cells of roughly equal size on the
//! ground. A cell that some edge touches (or comes within a small margin of)
//! is a *boundary* cell; every other cell lies wholly inside or wholly
//! outside the part, and that is decided once at build time by the same
//! crossing-number test that [`crate::bands::BandIndex::contains`] runs (on
//! the cell's centre), so a grid answer is always the answer the edge test
//! would give. Each non-boundary cell also stores its Chebyshev distance in
//! cells to the nearest boundary cell, `k`: every edge lies in boundary
//! cells, so every edge is at least `k - 1` whole cells away in longitude or
//! in latitude, a lower bound of the distance to the boundary that lets an
//! accuracy circle smaller than it skip the edge scan.
//!
//! One byte per cell: `0` is a boundary cell, otherwise bit 7 says inside
//! and bits 0–6 hold `k` (saturated at 127).

use crate::geodesy::METRES_PER_DEGREE;

/// Target cells per ring edge: enough that most cells are not boundary
/// cells, few enough that the grid stays a small fraction of the edges'
/// memory (one byte per cell against ≥ 32 bytes per edge).
const CELLS_PER_EDGE: usize = 8;
/// Fewest cells per part (small parts still get a useful grid).
const MIN_CELLS: usize = 64;
/// Most cells along one axis.
const MAX_SIDE: usize = 4096;
/// Cells are widened by this fraction of a cell on each side when deciding
/// which cells an edge touches, so that rounding in the cell lookup of a
/// point on a cell's border can never move it into a cell wrongly marked
/// free of edges.
const MARGIN: f64 = 1.0 / 64.0;

/// Smallest cell side in degrees (≈ 0.1 mm) for which the margin still
/// exceeds rounding in the cell lookup by orders of magnitude.
const MIN_CELL_DEGREES: f64 = 1e-9;

const INSIDE: u8 = 0x80;
const DIST_MASK: u8 = 0x7f;

/// What one cell lookup says about a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CellClass {
    /// The point is outside the grid's box (so outside the part).
    OutsideBox,
    /// An edge touches the cell: ask the edges.
    Boundary,
    /// Every point of the cell is inside (or outside, `inside: false`) the
    /// part, and every edge is at least `free_cells` whole cells away in
    /// longitude or in latitude.
    Free { inside: bool, free_cells: u8 },
}

/// The grid of one part (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct CellGrid {
    min_x: f64,
    min_y: f64,
    max_x: f64,
    max_y: f64,
    /// Cells per degree of longitude and latitude.
    sx: f64,
    sy: f64,
    /// Cell size in degrees.
    cw: f64,
    ch: f64,
    nx: usize,
    ny: usize,
    cells: Vec<u8>,
}

/// An edge as the grid sees it, in degrees.
pub(crate) type Segment = ((f64, f64), (f64, f64));

impl CellGrid {
    /// Builds the grid of a part with bounding box `bbox` (`[min_x, min_y,
    /// max_x, max_y]`) from its edges.
    /// `crossings(y, out)` must push the x of every crossing of the
    /// horizontal line at `y` that the part's exact point-in-polygon test
    /// counts (it decides the cells' inside/outside from their centres).
    pub(crate) fn new(
        bbox: [f64; 4],
        edges: &[Segment],
        crossings: impl Fn(f64, &mut Vec<f64>),
    ) -> Self {
        let [min_x, min_y, max_x, max_y] = bbox;
        let (w, h) = (max_x - min_x, max_y - min_y);
        let target = (edges.len() * CELLS_PER_EDGE).max(MIN_CELLS) as f64;
        // Square cells on the ground: scale longitude by cos(latitude).
        let mid = 0.5 * (min_y + max_y);
        let cos = mid.to_radians().cos().max(0.01);
        let (wg, hg) = (w * cos, h);
        let (nx, ny) = if wg > 0.0 && hg > 0.0 {
            let side = (wg * hg / target).sqrt();
            (
                ((wg / side).ceil() as usize).clamp(1, MAX_SIDE),
                ((hg / side).ceil() as usize).clamp(1, MAX_SIDE),
            )
        } else {
            (1, 1)
        };
        let (sx, sy) = (
            if w > 0.0 { nx as f64 / w } else { 0.0 },
            if h > 0.0 { ny as f64 / h } else { 0.0 },
        );
        let mut grid = Self {
            min_x,
            min_y,
            max_x,
            max_y,
            sx,
            sy,
            cw: if nx > 0 && w > 0.0 {
                w / nx as f64
            } else {
                0.0
            },
            ch: if ny > 0 && h > 0.0 {
                h / ny as f64
            } else {
                0.0
            },
            nx,
            ny,
            cells: vec![1; nx * ny],
        };
        if grid.cw < MIN_CELL_DEGREES || grid.ch < MIN_CELL_DEGREES {
            // Degenerate or microscopic box: cells would be too small for
            // the margin to cover rounding; every cell is boundary (the
            // edges decide).
            grid.cells.fill(0);
            return grid;
        }
        for &(a, b) in edges {
            grid.mark_segment(a, b);
        }
        if !grid.cells.contains(&0) {
            // Cannot happen for real rings (edges reach the box); without a
            // boundary cell the distances would mean nothing.
            grid.cells.fill(0);
            return grid;
        }
        grid.classify(crossings);
        grid.distance_transform();
        grid
    }

    fn col(&self, x: f64) -> usize {
        // A saturating cast is floor for every input that matters here:
        // negative and NaN give 0, as the clamp below would (and it avoids
        // a libm call on targets without a rounding instruction).
        (((x - self.min_x) * self.sx) as usize).min(self.nx - 1)
    }

    fn row(&self, y: f64) -> usize {
        // A saturating cast is floor for every input that matters here:
        // negative and NaN give 0, as the clamp below would (and it avoids
        // a libm call on targets without a rounding instruction).
        (((y - self.min_y) * self.sy) as usize).min(self.ny - 1)
    }

    /// Marks every cell the segment touches (cells widened by [`MARGIN`]).
    fn mark_segment(&mut self, a: (f64, f64), b: (f64, f64)) {
        let (mx, my) = (self.cw * MARGIN, self.ch * MARGIN);
        let (ylo, yhi) = (a.1.min(b.1), a.1.max(b.1));
        let (r0, r1) = (self.row(ylo - my), self.row(yhi + my));
        for r in r0..=r1 {
            // The row's latitude range, widened.
            let yb = self.min_y + r as f64 * self.ch - my;
            let yt = self.min_y + (r + 1) as f64 * self.ch + my;
            let (xa, xb) = if a.1 == b.1 {
                (a.0.min(b.0), a.0.max(b.0))
            } else {
                let t0 = ((yb - a.1) / (b.1 - a.1)).clamp(0.0, 1.0);
                let t1 = ((yt - a.1) / (b.1 - a.1)).clamp(0.0, 1.0);
                let x0 = a.0 + t0 * (b.0 - a.0);
                let x1 = a.0 + t1 * (b.0 - a.0);
                (x0.min(x1), x0.max(x1))
            };
            let (c0, c1) = (self.col(xa - mx), self.col(xb + mx));
            self.cells[r * self.nx + c0..=r * self.nx + c1].fill(0);
        }
    }

    /// Decides inside/outside of every non-boundary cell from its centre.
    fn classify(&mut self, crossings: impl Fn(f64, &mut Vec<f64>)) {
        let mut xs = Vec::new();
        for r in 0..self.ny {
            let row = &mut self.cells[r * self.nx..(r + 1) * self.nx];
            if row.iter().all(|c| *c == 0) {
                continue;
            }
            let yc = self.min_y + (r as f64 + 0.5) * self.ch;
            xs.clear();
            crossings(yc, &mut xs);
            xs.sort_unstable_by(f64::total_cmp);
            // Centres grow left to right: `left` counts crossings at or
            // left of the centre, so the ray test's count (`x < xi`) is
            // the rest.
            let mut left = 0;
            for (c, cell) in row.iter_mut().enumerate() {
                if *cell == 0 {
                    continue;
                }
                let xc = self.min_x + (c as f64 + 0.5) * self.cw;
                while left < xs.len() && xs[left] <= xc {
                    left += 1;
                }
                let right = xs.len() - left;
                *cell = if right % 2 == 1 { INSIDE | 1 } else { 1 };
            }
        }
    }

    /// Chebyshev distance (in cells, saturated) from every non-boundary
    /// cell to the nearest boundary cell: two chamfer passes.
    fn distance_transform(&mut self) {
        let (nx, ny) = (self.nx, self.ny);
        // In place on the low bits; boundary cells (0) stay 0.
        for c in &mut self.cells {
            if *c != 0 {
                *c |= DIST_MASK;
            }
        }
        let d = &mut self.cells;
        let dist = |v: u8| v & DIST_MASK;
        let step = |v: u8| (dist(v) + 1).min(DIST_MASK);
        let lower = |cell: &mut u8, best: u8| {
            if best < dist(*cell) {
                *cell = (*cell & INSIDE) | best;
            }
        };
        for r in 0..ny {
            for c in 0..nx {
                let i = r * nx + c;
                if d[i] == 0 {
                    continue;
                }
                let mut best = DIST_MASK;
                if c > 0 {
                    best = best.min(step(d[i - 1]));
                }
                if r > 0 {
                    best = best.min(step(d[i - nx]));
                    if c > 0 {
                        best = best.min(step(d[i - nx - 1]));
                    }
                    if c + 1 < nx {
                        best = best.min(step(d[i - nx + 1]));
                    }
                }
                lower(&mut d[i], best);
            }
        }
        for r in (0..ny).rev() {
            for c in (0..nx).rev() {
                let i = r * nx + c;
                if d[i] == 0 {
                    continue;
                }
                let mut best = DIST_MASK;
                if c + 1 < nx {
                    best = best.min(step(d[i + 1]));
                }
                if r + 1 < ny {
                    best = best.min(step(d[i + nx]));
                    if c + 1 < nx {
                        best = best.min(step(d[i + nx + 1]));
                    }
                    if c > 0 {
                        best = best.min(step(d[i + nx - 1]));
                    }
                }
                lower(&mut d[i], best);
            }
        }
    }

    /// What every point of the rectangle `[min_x, min_y, max_x, max_y]`
    /// gets from [`CellGrid::class`]: `Some(inside)` when all of them get
    /// the same free answer (or lie outside the box), `None` otherwise.
    pub(crate) fn summarize(&self, r: [f64; 4]) -> Option<bool> {
        if r[2] < self.min_x || r[0] > self.max_x || r[3] < self.min_y || r[1] > self.max_y {
            return Some(false);
        }
        let within =
            r[0] >= self.min_x && r[2] <= self.max_x && r[1] >= self.min_y && r[3] <= self.max_y;
        // `col` and `row` are monotone: every point of the rectangle looks
        // up a cell in these ranges.
        let (c0, c1, r0, r1) = (
            self.col(r[0]),
            self.col(r[2]),
            self.row(r[1]),
            self.row(r[3]),
        );
        let first = self.cells[r0 * self.nx + c0];
        if first == 0 {
            return None;
        }
        let inside = first & INSIDE != 0;
        if inside && !within {
            // Points outside the box are outside.
            return None;
        }
        for row in r0..=r1 {
            let cells = &self.cells[row * self.nx + c0..=row * self.nx + c1];
            if cells
                .iter()
                .any(|c| *c == 0 || (*c & INSIDE != 0) != inside)
            {
                return None;
            }
        }
        Some(inside)
    }

    /// Looks up the cell of a point.
    pub(crate) fn class(&self, x: f64, y: f64) -> CellClass {
        if !(x >= self.min_x && x <= self.max_x && y >= self.min_y && y <= self.max_y) {
            return CellClass::OutsideBox;
        }
        let cell = self.cells[self.row(y) * self.nx + self.col(x)];
        if cell == 0 {
            CellClass::Boundary
        } else {
            CellClass::Free {
                inside: cell & INSIDE != 0,
                free_cells: (cell & DIST_MASK) - 1,
            }
        }
    }

    /// A lower bound of the distance in metres from the point to every
    /// edge, in a local frame with `kx` metres per degree of longitude (the
    /// frame of the distance queries). Zero when nothing can be said.
    pub(crate) fn distance_lower_bound_m(&self, kx: f64, x: f64, y: f64) -> f64 {
        match self.class(x, y) {
            CellClass::OutsideBox => {
                // Every edge lies in the box.
                let dx = (self.min_x - x).max(x - self.max_x).max(0.0) * kx;
                let dy = (self.min_y - y).max(y - self.max_y).max(0.0) * METRES_PER_DEGREE;
                // NaN coordinates compare false: treat as no bound.
                let d = dx.hypot(dy);
                if d.is_nan() { 0.0 } else { d * (1.0 - 1e-9) }
            }
            CellClass::Boundary => 0.0,
            CellClass::Free { free_cells, .. } => self.free_cells_m(kx, free_cells),
        }
    }

    /// Metres spanned by `n` whole cells in the narrower direction.
    pub(crate) fn free_cells_m(&self, kx: f64, n: u8) -> f64 {
        f64::from(n) * (self.cw * kx).min(self.ch * METRES_PER_DEGREE) * (1.0 - 1e-9)
    }

    /// Heap bytes owned by the grid.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.cells.capacity()
    }
}

#[cfg(test)]
impl CellGrid {
    /// Every cell corner of the grid (points exactly on cell borders).
    pub(crate) fn corners(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        (0..=self.ny).flat_map(move |r| {
            (0..=self.nx).map(move |c| {
                (
                    self.min_x + c as f64 * self.cw,
                    self.min_y + r as f64 * self.ch,
                )
            })
        })
    }

    /// Cell centres of every cell.
    pub(crate) fn centres(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        (0..self.ny).flat_map(move |r| {
            (0..self.nx).map(move |c| {
                (
                    self.min_x + (c as f64 + 0.5) * self.cw,
                    self.min_y + (r as f64 + 0.5) * self.ch,
                )
            })
        })
    }
}

/// Grid answers against brute force on generated polygons (holes, several
/// parts via separate grids), at random points, cell corners and centres,
/// vertices and points on edges.
#[cfg(test)]
mod tests {
    use geo::{Contains, Coord, Intersects, LineString, Point, Polygon, Validation};
    use proptest::prelude::*;

    use crate::bands::BandIndex;
    use crate::geodesy::{LocalFrame, point_segment_distance};

    /// A star-shaped ring around (`cx`, `cy`): vertices at sorted angles.
    fn star(cx: f64, cy: f64, radii: &[f64], scale: f64, quantum: f64) -> Vec<Coord<f64>> {
        let n = radii.len();
        let mut ring: Vec<Coord<f64>> = radii
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let a = std::f64::consts::TAU * i as f64 / n as f64;
                let q = |v: f64| (v / quantum).round() * quantum;
                Coord {
                    x: q(cx + scale * r * a.cos()),
                    y: q(cy + scale * r * a.sin()),
                }
            })
            .collect();
        ring.dedup();
        ring.push(ring[0]);
        ring
    }

    struct Case {
        poly: Polygon<f64>,
        index: BandIndex,
        /// Whether geo calls the polygon valid (else it is no oracle).
        valid: bool,
    }

    fn case(
        cx: f64,
        cy: f64,
        outer: &[f64],
        hole: Option<&[f64]>,
        scale: f64,
        quantum: f64,
    ) -> Option<Case> {
        let shell = star(cx, cy, outer, scale, quantum);
        // The hole stays within the shell's smallest radius.
        let min_r = outer.iter().copied().fold(f64::INFINITY, f64::min);
        let holes: Vec<Vec<Coord<f64>>> = hole
            .map(|h| star(cx, cy, h, scale * min_r * 0.4, quantum))
            .into_iter()
            .filter(|h| h.len() >= 4)
            .collect();
        if shell.len() < 4 {
            return None;
        }
        let poly = Polygon::new(
            LineString::from(shell.clone()),
            holes.iter().cloned().map(LineString::from).collect(),
        );
        // Rounding to a coarse quantum can fold a ring or push the hole
        // across the shell. geo's answer, the oracle, is undefined for an
        // invalid polygon, so such cases are checked only for agreement
        // within the index (the grid and the edge scan both apply the
        // even-odd rule).
        let valid = poly.is_valid();
        let mut rings: Vec<&[Coord<f64>]> = vec![&shell];
        rings.extend(holes.iter().map(Vec::as_slice));
        let index = BandIndex::new(&rings);
        Some(Case { poly, index, valid })
    }

    fn on_boundary(poly: &Polygon<f64>, p: Point<f64>) -> bool {
        poly.exterior().intersects(&p) || poly.interiors().iter().any(|r| r.intersects(&p))
    }

    /// Minimum distance in metres from the point to every edge, in the
    /// local frame centred on it (the definition the queries use).
    fn true_distance_m(poly: &Polygon<f64>, x: f64, y: f64) -> f64 {
        let f = LocalFrame::new(x, y);
        std::iter::once(poly.exterior())
            .chain(poly.interiors())
            .flat_map(|r| r.0.windows(2))
            .map(|w| {
                point_segment_distance(
                    (0.0, 0.0),
                    f.project(w[0].x, w[0].y),
                    f.project(w[1].x, w[1].y),
                )
            })
            .fold(f64::INFINITY, f64::min)
    }

    fn probe_points(c: &Case, seed: u64) -> Vec<(f64, f64)> {
        let [x0, y0, x1, y1] = c.index.bbox();
        let mut pts: Vec<(f64, f64)> = c.index.grid().corners().collect();
        pts.extend(c.index.grid().centres());
        for ring in std::iter::once(c.poly.exterior()).chain(c.poly.interiors()) {
            for w in ring.0.windows(2) {
                pts.push((w[0].x, w[0].y));
                pts.push((0.5 * (w[0].x + w[1].x), 0.5 * (w[0].y + w[1].y)));
                pts.push((0.25 * w[0].x + 0.75 * w[1].x, 0.25 * w[0].y + 0.75 * w[1].y));
            }
        }
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let (w, h) = (x1 - x0, y1 - y0);
        for _ in 0..500 {
            pts.push((
                x0 - 0.1 * w + 1.2 * w * next(),
                y0 - 0.1 * h + 1.2 * h * next(),
            ));
        }
        pts
    }

    fn check(c: &Case, seed: u64) -> Result<(), TestCaseError> {
        let mut free = 0usize;
        for (x, y) in probe_points(c, seed) {
            let by_edges = c.index.contains_by_edges(x, y);
            prop_assert_eq!(c.index.contains(x, y), by_edges, "({}, {})", x, y);
            let p = Point::new(x, y);
            let frame = LocalFrame::new(x, y);
            let truth = true_distance_m(&c.poly, x, y);
            // Within rounding of an edge, float ray casting and geo's robust
            // predicates may differ; the grid must equal the ray test there.
            if c.valid && !on_boundary(&c.poly, p) && truth > 1e-3 {
                prop_assert_eq!(by_edges, c.poly.contains(&p), "({}, {}) vs geo", x, y);
            }
            let lb = c.index.grid().distance_lower_bound_m(frame.kx(), x, y);
            prop_assert!(
                lb <= truth,
                "({}, {}): bound {} > distance {}",
                x,
                y,
                lb,
                truth
            );
            free += usize::from(lb > 0.0);
            for r in [0.5, 10.0, 300.0, 5_000.0] {
                // The memo's disc: none when an edge is within the radius,
                // else the distance to the nearest edge, capped by the
                // search radius.
                for search in [r, 4.0 * r] {
                    let clear = c.index.clearance_m(&frame, x, y, r, search);
                    prop_assert_eq!(
                        clear,
                        (truth > r).then_some(truth.min(search * (1.0 - 1e-9))),
                        "({}, {}) r {} search {}",
                        x,
                        y,
                        r,
                        search
                    );
                }
                prop_assert_eq!(
                    c.index.boundary_distance_m(&frame, x, y, r).is_some(),
                    truth <= r,
                    "({}, {}) r {}",
                    x,
                    y,
                    r
                );
            }
        }
        // The grid must actually answer something.
        prop_assert!(free > 0);
        // Rectangle summaries: every point of a summarized rectangle
        // (corners, edges, inside) gets the summary's answer.
        let [x0, y0, x1, y1] = c.index.bbox();
        let (w, h) = (x1 - x0, y1 - y0);
        let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut summarized = 0;
        for _ in 0..200 {
            let size = [0.01, 0.05, 0.3][(next() * 3.0) as usize % 3];
            let (rx, ry) = (
                x0 - 0.2 * w + 1.4 * w * next(),
                y0 - 0.2 * h + 1.4 * h * next(),
            );
            let rect = [rx, ry, rx + size * w, ry + size * h];
            let Some(inside) = c.index.contains_all_or_none(rect) else {
                continue;
            };
            summarized += 1;
            for i in 0..=8 {
                for j in 0..=8 {
                    let (x, y) = (
                        rect[0] + (rect[2] - rect[0]) * f64::from(i) / 8.0,
                        rect[1] + (rect[3] - rect[1]) * f64::from(j) / 8.0,
                    );
                    prop_assert_eq!(
                        c.index.contains(x, y),
                        inside,
                        "({}, {}) in {:?}",
                        x,
                        y,
                        rect
                    );
                }
            }
        }
        prop_assert!(summarized > 0);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn grid_agrees_with_brute_force(
            cx in 73.0f64..135.0,
            cy in 18.0f64..54.0,
            outer in prop::collection::vec(0.3f64..1.0, 3..60),
            hole in prop::option::of(prop::collection::vec(0.5f64..1.0, 3..12)),
            scale in prop::sample::select(vec![0.001, 0.05, 1.0]),
            quantum in prop::sample::select(vec![1e-12, 1e-4, 1e-3]),
            seed in any::<u64>(),
        ) {
            if let Some(c) = case(cx, cy, &outer, hole.as_deref(), scale, quantum) {
                check(&c, seed)?;
            }
        }
    }

    /// A square on whole degrees: its edges lie exactly on cell borders.
    #[test]
    fn axis_aligned_square_on_cell_borders() {
        let c = case(100.0, 30.0, &[1.0; 4], Some(&[1.0; 4]), 1.0, 0.5).expect("valid");
        check(&c, 1).expect("agrees");
    }
}
