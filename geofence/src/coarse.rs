//! A coarse uniform grid over every indexed piece: the first level of
//! [`crate::ZoneSet::locate`].
//!
//! Each cell lists the pieces whose bounding box meets it (widened by a
//! small margin, so rounding in the cell lookup never loses one). A point
//! query reads one cell's short list instead of walking the R-tree; the
//! exact test of each listed piece then decides. Pieces whose box covers a
//! large share of the grid are kept apart in a short list tested for every
//! query, so one huge zone cannot blow up the grid.
//!
//! Each listing also carries the piece's zone and, when the piece's own
//! cell grid says that the whole coarse cell is inside (or outside) the
//! piece, that answer: a point there is located without reading the piece
//! at all.

/// Target cells per piece: fine enough that many cells lie wholly inside
/// one county.
const CELLS_PER_ITEM: usize = 16;
const MIN_CELLS: usize = 64;
const MAX_CELLS: usize = 1 << 20;
/// A piece covering more cells than this goes to the always-tested list.
const MAX_CELLS_PER_ITEM: usize = 1 << 14;
/// Boxes are widened by this fraction of a cell when listed.
const MARGIN: f64 = 1.0 / 64.0;

/// One listed piece with its box rounded outwards to `f32`, so pieces whose
/// box misses the point are skipped without reading the piece.
#[derive(Debug, Clone, Copy)]
struct Listed {
    item: u32,
    zone: u32,
    bbox: [f32; 4],
    /// What the piece says for every point of the cell, if it says one
    /// thing: [`UNKNOWN`], [`INSIDE`] or [`OUTSIDE`].
    class: u8,
}

const UNKNOWN: u8 = 0;
const INSIDE: u8 = 1;
const OUTSIDE: u8 = 2;

/// One candidate of a point query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Candidate {
    /// The piece contains the point; no need to ask it.
    Inside { zone: u32 },
    /// Ask the piece.
    Test { item: u32 },
}

impl Listed {
    fn new(item: usize, zone: u32, b: &[f64; 4]) -> Self {
        let down = |v: f64| {
            let f = v as f32;
            if f64::from(f) > v { f.next_down() } else { f }
        };
        let up = |v: f64| {
            let f = v as f32;
            if f64::from(f) < v { f.next_up() } else { f }
        };
        Self {
            item: item as u32,
            zone,
            bbox: [down(b[0]), down(b[1]), up(b[2]), up(b[3])],
            class: UNKNOWN,
        }
    }

    /// Whether the box may hold the point (never false when it does).
    fn may_hold(&self, x: f64, y: f64) -> bool {
        x >= f64::from(self.bbox[0])
            && x <= f64::from(self.bbox[2])
            && y >= f64::from(self.bbox[1])
            && y <= f64::from(self.bbox[3])
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CoarseGrid {
    min_x: f64,
    min_y: f64,
    max_x: f64,
    max_y: f64,
    sx: f64,
    sy: f64,
    nx: usize,
    ny: usize,
    /// `items[offsets[c]..offsets[c + 1]]` are cell `c`'s pieces.
    offsets: Vec<u32>,
    items: Vec<Listed>,
    /// Pieces too large to list per cell (or without a finite box), tested
    /// for every query.
    wide: Vec<u32>,
}

impl CoarseGrid {
    /// `boxes[i]` is piece `i`'s `[min_x, min_y, max_x, max_y]` in degrees
    /// and `zones[i]` its zone; `summarize(i, rect)` must tell whether piece
    /// `i` contains every point of `rect` (`Some(true)`), none of them
    /// (`Some(false)`), or cannot tell (`None`).
    pub(crate) fn new(
        boxes: &[[f64; 4]],
        zones: &[u32],
        summarize: impl Fn(usize, [f64; 4]) -> Option<bool>,
    ) -> Self {
        let finite =
            |b: &&[f64; 4]| b.iter().all(|v| v.is_finite()) && b[0] <= b[2] && b[1] <= b[3];
        let (mut min_x, mut min_y, mut max_x, mut max_y) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for b in boxes.iter().filter(finite) {
            min_x = min_x.min(b[0]);
            min_y = min_y.min(b[1]);
            max_x = max_x.max(b[2]);
            max_y = max_y.max(b[3]);
        }
        let mut grid = Self {
            min_x,
            min_y,
            max_x,
            max_y,
            sx: 0.0,
            sy: 0.0,
            nx: 1,
            ny: 1,
            offsets: vec![0, 0],
            items: Vec::new(),
            wide: Vec::new(),
        };
        if min_x > max_x {
            // No finite box: nothing can be found; keep every piece wide so
            // its own test still decides.
            grid.wide = (0..boxes.len() as u32).collect();
            return grid;
        }
        let (w, h) = ((max_x - min_x).max(1e-9), (max_y - min_y).max(1e-9));
        let target = (boxes.len() * CELLS_PER_ITEM).clamp(MIN_CELLS, MAX_CELLS) as f64;
        let side = (w * h / target).sqrt();
        grid.nx = ((w / side).ceil() as usize).clamp(1, 1 << 12);
        grid.ny = ((h / side).ceil() as usize).clamp(1, 1 << 12);
        grid.sx = grid.nx as f64 / w;
        grid.sy = grid.ny as f64 / h;
        let (mx, my) = (MARGIN / grid.sx, MARGIN / grid.sy);
        let span = |g: &Self, b: &[f64; 4]| {
            (
                g.col(b[0] - mx),
                g.row(b[1] - my),
                g.col(b[2] + mx),
                g.row(b[3] + my),
            )
        };
        let cells = grid.nx * grid.ny;
        let mut counts = vec![0u32; cells + 1];
        let mut listed = vec![false; boxes.len()];
        for (i, b) in boxes.iter().enumerate() {
            if !finite(&b) {
                grid.wide.push(i as u32);
                continue;
            }
            let (c0, r0, c1, r1) = span(&grid, b);
            if (c1 - c0 + 1) * (r1 - r0 + 1) > MAX_CELLS_PER_ITEM {
                grid.wide.push(i as u32);
                continue;
            }
            listed[i] = true;
            for r in r0..=r1 {
                for c in c0..=c1 {
                    counts[r * grid.nx + c + 1] += 1;
                }
            }
        }
        for c in 0..cells {
            counts[c + 1] += counts[c];
        }
        let mut cursor = counts[..cells].to_vec();
        grid.items = vec![Listed::new(0, 0, &[0.0; 4]); counts[cells] as usize];
        for (i, b) in boxes.iter().enumerate() {
            if !listed[i] {
                continue;
            }
            let (c0, r0, c1, r1) = span(&grid, b);
            for r in r0..=r1 {
                for c in c0..=c1 {
                    let slot = &mut cursor[r * grid.nx + c];
                    let mut l = Listed::new(i, zones[i], b);
                    l.class = match summarize(i, grid.cell_rect(c, r)) {
                        None => UNKNOWN,
                        Some(true) => INSIDE,
                        Some(false) => OUTSIDE,
                    };
                    grid.items[*slot as usize] = l;
                    *slot += 1;
                }
            }
        }
        grid.offsets = counts;
        grid
    }

    /// Cell `(c, r)` widened by [`MARGIN`]: it holds every point whose
    /// lookup lands in the cell, rounding included.
    fn cell_rect(&self, c: usize, r: usize) -> [f64; 4] {
        let (w, h) = (1.0 / self.sx, 1.0 / self.sy);
        [
            self.min_x + c as f64 * w - MARGIN * w,
            self.min_y + r as f64 * h - MARGIN * h,
            self.min_x + (c + 1) as f64 * w + MARGIN * w,
            self.min_y + (r + 1) as f64 * h + MARGIN * h,
        ]
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

    /// Every piece that may contain the point (a superset of those that
    /// do), each once: those known to contain it by zone, the others to
    /// test.
    pub(crate) fn candidates(&self, x: f64, y: f64) -> impl Iterator<Item = Candidate> + '_ {
        let cell: &[Listed] =
            if x >= self.min_x && x <= self.max_x && y >= self.min_y && y <= self.max_y {
                let c = self.row(y) * self.nx + self.col(x);
                &self.items[self.offsets[c] as usize..self.offsets[c + 1] as usize]
            } else {
                &[]
            };
        cell.iter()
            .filter(move |l| l.class != OUTSIDE && l.may_hold(x, y))
            .map(|l| match l.class {
                INSIDE => Candidate::Inside { zone: l.zone },
                _ => Candidate::Test { item: l.item },
            })
            .chain(self.wide.iter().map(|&item| Candidate::Test { item }))
    }

    /// Heap bytes owned by the grid.
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.offsets.capacity() + self.wide.capacity()) * size_of::<u32>()
            + self.items.capacity() * size_of::<Listed>()
    }
}
