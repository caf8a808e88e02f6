//! The zone set: every zone version, an R-tree over their parts, and the
//! per-part band indexes that make point queries cheap.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rstar::RTree;
use rstar::primitives::{GeomWithData, Rectangle};

use crate::bands::{BandIndex, PartRelation};
use crate::coarse::{Candidate, CoarseGrid};
use crate::geodesy::{LocalFrame, point_segment_distance};
use crate::repair::{Repairs, repair};
use crate::report::{Defect, DefectKind, FeatureRef, ImportReport, Repair};
use crate::zone::{Shape, Zone, ZoneId};

/// Handle to one zone version inside a [`ZoneSet`] (an index, cheap to copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneRef(u32);

impl ZoneRef {
    /// Position of the zone in [`ZoneSet::zones`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How an accuracy circle lies relative to a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The whole circle is inside the zone.
    Inside,
    /// The whole circle is outside the zone.
    Outside,
    /// The circle meets the zone's boundary: cannot tell.
    Boundary,
}

#[derive(Debug)]
enum ItemGeom {
    Part(BandIndex),
    /// `kx`: metres per degree of longitude at the centre, precomputed.
    Circle {
        lon: f64,
        lat: f64,
        radius_m: f64,
        kx: f64,
    },
}

/// One indexed piece: a polygon part or a circle.
#[derive(Debug)]
struct Item {
    zone: u32,
    geom: ItemGeom,
}

impl Item {
    fn contains(&self, lon: f64, lat: f64) -> bool {
        match &self.geom {
            ItemGeom::Part(b) => b.contains(lon, lat),
            ItemGeom::Circle {
                lon: cx,
                lat: cy,
                radius_m,
                kx,
            } => {
                let (x, y) = LocalFrame::with_kx(*cx, *cy, *kx).project(lon, lat);
                x * x + y * y < radius_m * radius_m
            }
        }
    }

    /// `frame` is centred on the query point (used by polygon parts).
    fn boundary_distance_m(
        &self,
        frame: &LocalFrame,
        lon: f64,
        lat: f64,
        max_m: f64,
    ) -> Option<f64> {
        match &self.geom {
            ItemGeom::Part(b) => b.boundary_distance_m(frame, lon, lat, max_m),
            ItemGeom::Circle {
                lon: cx,
                lat: cy,
                radius_m,
                kx,
            } => {
                let (x, y) = LocalFrame::with_kx(*cx, *cy, *kx).project(lon, lat);
                let d = ((x * x + y * y).sqrt() - radius_m).abs();
                (d <= max_m).then_some(d)
            }
        }
    }

    fn segment_meets(&self, a: (f64, f64), b: (f64, f64)) -> bool {
        match &self.geom {
            ItemGeom::Part(band) => {
                band.contains(a.0, a.1)
                    || band.contains(b.0, b.1)
                    || band.segment_meets_boundary(a, b)
            }
            ItemGeom::Circle {
                lon,
                lat,
                radius_m,
                kx,
            } => {
                let f = LocalFrame::with_kx(*lon, *lat, *kx);
                point_segment_distance((0.0, 0.0), f.project(a.0, a.1), f.project(b.0, b.1))
                    < *radius_m
            }
        }
    }
}

/// A zone's geometry as rules hold it (see [`ZoneSet::resolve`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Resolved {
    Circle {
        lon: f64,
        lat: f64,
        radius_m: f64,
        kx: f64,
    },
    /// `items[start..end]` of the zone set.
    Parts { start: u32, end: u32 },
}

/// Largest latitude distance (degrees) between a memo's centre and a query
/// for the memo to be used: over it the frames' scales differ by less than
/// [`MEMO_SLACK`] below [`MEMO_MAX_LAT`].
const MEMO_MAX_DLAT: f64 = 0.01;
const MEMO_MAX_LAT: f64 = 80.0;
const MEMO_SLACK: f64 = 1e-3;
/// Metres around a fix searched for the nearest edge when the cell grid
/// cannot answer it: wider than a GNSS accuracy circle by a few minutes'
/// walk, so the disc left in the memo answers the next fixes.
const MEMO_SEARCH_M: f64 = 200.0;

/// A disc known to hold no boundary edge of one polygon zone, and whether
/// its centre is inside: a later query whose accuracy circle lies within
/// the disc gets the same answer with no zone memory read (a subject moves
/// little between fixes, so its next fix usually lands in the last disc).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FreeDisc {
    /// The zone's first item (identifies the zone version in its set).
    start: u32,
    lon: f64,
    lat: f64,
    kx: f64,
    radius_m: f64,
    inside: bool,
}

/// A subject's free discs, one per polygon zone it was last judged
/// against (two: a permitted zone and a home, say). Valid for one zone set
/// only: clear it when the set changes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Memo {
    discs: [Option<FreeDisc>; 2],
    next: u8,
}

impl Memo {
    fn hit(&self, start: u32, lon: f64, lat: f64, radius_m: f64) -> Option<Relation> {
        let d = self.discs.iter().flatten().find(|d| d.start == start)?;
        if (lat - d.lat).abs() >= MEMO_MAX_DLAT || lat.abs() >= MEMO_MAX_LAT {
            return None;
        }
        let (x, y) = LocalFrame::with_kx(d.lon, d.lat, d.kx).project(lon, lat);
        // NaN compares false: no hit.
        // `sqrt` rather than `hypot`: metres never overflow, and the slack
        // dwarfs the rounding.
        (((x * x + y * y).sqrt() + radius_m) * (1.0 + MEMO_SLACK) < d.radius_m).then_some(
            if d.inside {
                Relation::Inside
            } else {
                Relation::Outside
            },
        )
    }

    fn store(&mut self, disc: FreeDisc) {
        if let Some(slot) = self
            .discs
            .iter_mut()
            .find(|d| d.is_some_and(|d| d.start == disc.start))
        {
            *slot = Some(disc);
            return;
        }
        self.discs[usize::from(self.next)] = Some(disc);
        self.next = (self.next + 1) % 2;
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

type TreeItem = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// All zones, indexed. Immutable once built; share it behind an `Arc`.
#[derive(Debug)]
pub struct ZoneSet {
    zones: Vec<Zone>,
    /// `items[zone_items[z]..zone_items[z + 1]]` are zone `z`'s pieces.
    zone_items: Vec<u32>,
    items: Vec<Item>,
    tree: RTree<TreeItem>,
    /// First level of `locate`: pieces by coarse cell.
    coarse: CoarseGrid,
    /// Versions of each id, sorted by ascending version.
    by_id: HashMap<ZoneId, Vec<ZoneRef>>,
}

fn circle_bbox(lon: f64, lat: f64, radius_m: f64) -> [f64; 4] {
    let f = LocalFrame::new(lon, lat);
    let (dx, dy) = (f.lon_degrees(radius_m), f.lat_degrees(radius_m));
    [lon - dx, lat - dy, lon + dx, lat + dy]
}

impl ZoneSet {
    /// Repairs, validates and indexes zones. Zones with defects are left
    /// out and listed in the report; this never fails as a whole.
    pub fn build(zones: Vec<Zone>) -> (Self, ImportReport) {
        let refs = zones
            .into_iter()
            .enumerate()
            .map(|(index, z)| {
                let id = Some(z.id.to_string());
                (FeatureRef { index, id }, z)
            })
            .collect();
        let mut report = ImportReport::default();
        let set = Self::build_with_refs(refs, &mut report);
        (set, report)
    }

    pub(crate) fn build_with_refs(
        input: Vec<(FeatureRef, Zone)>,
        report: &mut ImportReport,
    ) -> Self {
        report.features += input.len();
        let mut zones = Vec::with_capacity(input.len());
        let mut by_id: HashMap<ZoneId, Vec<ZoneRef>> = HashMap::new();
        let mut zone_items = vec![0u32];
        let mut items = Vec::new();
        let mut tree_items = Vec::new();
        for (feature, mut zone) in input {
            let mut repairs = Repairs::default();
            let shape = match repair(&zone.shape, &mut repairs) {
                Ok(s) => s,
                Err(kind) => {
                    report.defects.push(Defect { feature, kind });
                    continue;
                }
            };
            let versions = by_id.entry(zone.id.clone()).or_default();
            if versions
                .iter()
                .any(|r| zones_version(&zones, *r) == zone.version)
            {
                report.defects.push(Defect {
                    feature,
                    kind: DefectKind::DuplicateId(zone.version),
                });
                continue;
            }
            for (kind, count) in repairs.iter() {
                report.repairs.push(Repair {
                    feature: feature.clone(),
                    kind,
                    count,
                });
            }
            let zref = ZoneRef(zones.len() as u32);
            versions.push(zref);
            let z = zref.0;
            match &shape {
                Shape::Circle { center, radius_m } => {
                    let bbox = circle_bbox(center.x(), center.y(), *radius_m);
                    tree_items.push(TreeItem::new(
                        Rectangle::from_corners([bbox[0], bbox[1]], [bbox[2], bbox[3]]),
                        items.len() as u32,
                    ));
                    items.push(Item {
                        zone: z,
                        geom: ItemGeom::Circle {
                            lon: center.x(),
                            lat: center.y(),
                            radius_m: *radius_m,
                            kx: LocalFrame::new(center.x(), center.y()).kx(),
                        },
                    });
                }
                Shape::Polygons(mp) => {
                    for poly in &mp.0 {
                        let mut rings: Vec<&[geo::Coord<f64>]> = vec![&poly.exterior().0];
                        rings.extend(poly.interiors().iter().map(|r| r.0.as_slice()));
                        let band = BandIndex::new(&rings);
                        let b = band.bbox();
                        tree_items.push(TreeItem::new(
                            Rectangle::from_corners([b[0], b[1]], [b[2], b[3]]),
                            items.len() as u32,
                        ));
                        items.push(Item {
                            zone: z,
                            geom: ItemGeom::Part(band),
                        });
                    }
                }
            }
            zone_items.push(items.len() as u32);
            zone.shape = shape;
            zones.push(zone);
        }
        for versions in by_id.values_mut() {
            versions.sort_by_key(|r| zones[r.index()].version);
        }
        report.accepted += zones.len();
        let mut boxes = vec![[0.0; 4]; items.len()];
        for t in &tree_items {
            let (lo, hi) = (t.geom().lower(), t.geom().upper());
            boxes[t.data as usize] = [lo[0], lo[1], hi[0], hi[1]];
        }
        let zones_of: Vec<u32> = items.iter().map(|i| i.zone).collect();
        let coarse = CoarseGrid::new(&boxes, &zones_of, |i, rect| match &items[i].geom {
            ItemGeom::Part(b) => b.contains_all_or_none(rect),
            ItemGeom::Circle { .. } => None,
        });
        Self {
            zones,
            zone_items,
            items,
            tree: RTree::bulk_load(tree_items),
            coarse,
            by_id,
        }
    }

    /// All accepted zone versions, in input order.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// # Panics
    /// If `r` comes from another, larger zone set.
    pub fn zone(&self, r: ZoneRef) -> &Zone {
        &self.zones[r.index()]
    }

    /// The handle of `zones()[index]`, if there is such a zone.
    pub fn zone_ref(&self, index: usize) -> Option<ZoneRef> {
        (index < self.zones.len()).then_some(ZoneRef(index as u32))
    }

    /// Every version of a zone id, oldest version first.
    pub fn versions(&self, id: &ZoneId) -> &[ZoneRef] {
        self.by_id.get(id).map_or(&[], Vec::as_slice)
    }

    /// The version of `id` valid at `t` (the highest version if several).
    pub fn version_at(&self, id: &ZoneId, t: DateTime<Utc>) -> Option<ZoneRef> {
        self.versions(id)
            .iter()
            .rev()
            .copied()
            .find(|r| self.zone(*r).is_valid_at(t))
    }

    fn items_of(&self, r: ZoneRef) -> &[Item] {
        &self.items[self.zone_items[r.index()] as usize..self.zone_items[r.index() + 1] as usize]
    }

    /// Zone versions whose area contains the point (boundary excluded),
    /// sorted and without repeats, regardless of validity.
    pub fn locate(&self, lon: f64, lat: f64) -> Vec<ZoneRef> {
        let mut out = Vec::new();
        for c in self.coarse.candidates(lon, lat) {
            match c {
                Candidate::Inside { zone } => out.push(ZoneRef(zone)),
                Candidate::Test { item } => {
                    let item = &self.items[item as usize];
                    if item.contains(lon, lat) {
                        out.push(ZoneRef(item.zone));
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Zones having a part whose bounding box contains the point: the R-tree
    /// candidates before the exact test (for baselines and debugging).
    pub fn candidates(&self, lon: f64, lat: f64) -> Vec<ZoneRef> {
        let mut out: Vec<ZoneRef> = self
            .tree
            .locate_all_at_point(&[lon, lat])
            .map(|hit| ZoneRef(self.items[hit.data as usize].zone))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Like [`ZoneSet::locate`], keeping only versions valid at `t`.
    pub fn locate_at(&self, lon: f64, lat: f64, t: DateTime<Utc>) -> Vec<ZoneRef> {
        let mut out = self.locate(lon, lat);
        out.retain(|r| self.zone(*r).is_valid_at(t));
        out
    }

    /// Whether the zone's area contains the point.
    pub fn contains(&self, zone: ZoneRef, lon: f64, lat: f64) -> bool {
        self.items_of(zone).iter().any(|i| i.contains(lon, lat))
    }

    /// Distance in metres from the point to the zone's boundary, if it is at
    /// most `max_m` (the search is bounded so huge polygons stay cheap).
    pub fn boundary_distance_m(
        &self,
        zone: ZoneRef,
        lon: f64,
        lat: f64,
        max_m: f64,
    ) -> Option<f64> {
        let items = self.items_of(zone);
        // Circles carry their own frame: skip the cosine for them.
        let frame = match items {
            [
                Item {
                    geom: ItemGeom::Circle { kx, .. },
                    ..
                },
            ] => LocalFrame::with_kx(lon, lat, *kx),
            _ => LocalFrame::new(lon, lat),
        };
        items
            .iter()
            .filter_map(|i| i.boundary_distance_m(&frame, lon, lat, max_m))
            .reduce(f64::min)
    }

    /// How a circle of `radius_m` around the point lies relative to the zone.
    pub fn relate(&self, zone: ZoneRef, lon: f64, lat: f64, radius_m: f64) -> Relation {
        self.relate_resolved(&self.resolve(zone), lon, lat, radius_m)
    }

    /// What [`ZoneSet::relate_resolved`] needs of a zone, copied out so a
    /// subject's rules can hold it inline: circles need no further memory
    /// access at all, polygons skip the zone tables.
    pub(crate) fn resolve(&self, zone: ZoneRef) -> Resolved {
        let (start, end) = (
            self.zone_items[zone.index()],
            self.zone_items[zone.index() + 1],
        );
        match self.items.get(start as usize).map(|i| &i.geom) {
            Some(&ItemGeom::Circle {
                lon,
                lat,
                radius_m,
                kx,
            }) if end == start + 1 => Resolved::Circle {
                lon,
                lat,
                radius_m,
                kx,
            },
            _ => Resolved::Parts { start, end },
        }
    }

    /// [`ZoneSet::relate`] on a resolved zone: the same answers (boundary
    /// when an edge lies within the radius, else containment), stopping at
    /// the first edge found within the radius.
    pub(crate) fn relate_resolved(
        &self,
        zone: &Resolved,
        lon: f64,
        lat: f64,
        radius_m: f64,
    ) -> Relation {
        self.relate_memo(zone, lon, lat, radius_m, &mut Memo::default())
    }

    /// [`ZoneSet::relate_resolved`] through a subject's [`Memo`]: the same
    /// answers; a polygon zone that no edge comes within the radius of
    /// leaves a free disc in the memo (from the cell grids, or from the
    /// nearest edge of a wider box where a grid cannot tell), and a query
    /// inside a stored disc is answered from it.
    pub(crate) fn relate_memo(
        &self,
        zone: &Resolved,
        lon: f64,
        lat: f64,
        radius_m: f64,
        memo: &mut Memo,
    ) -> Relation {
        if let Resolved::Parts { start, .. } = *zone
            && let Some(rel) = memo.hit(start, lon, lat, radius_m)
        {
            return rel;
        }
        match *zone {
            Resolved::Circle {
                lon: cx,
                lat: cy,
                radius_m: cr,
                kx,
            } => {
                let (x, y) = LocalFrame::with_kx(cx, cy, kx).project(lon, lat);
                let d2 = x * x + y * y;
                if (d2.sqrt() - cr).abs() <= radius_m {
                    Relation::Boundary
                } else if d2 < cr * cr {
                    Relation::Inside
                } else {
                    Relation::Outside
                }
            }
            Resolved::Parts { start, end } => {
                let items = &self.items[start as usize..end as usize];
                let frame = LocalFrame::new(lon, lat);
                // Boundary if any piece is near, else inside if any piece
                // contains the centre; each part answers both at once.
                let mut inside = false;
                // The smallest free distance over all parts, while every
                // part is a polygon part clear of the radius.
                let mut free = Some(f64::INFINITY);
                for i in items {
                    let rel = match &i.geom {
                        ItemGeom::Part(b) => match b.free_bound(&frame, lon, lat) {
                            Some((part_inside, bound)) if bound > radius_m => {
                                free = free.map(|f| f.min(bound));
                                if part_inside {
                                    PartRelation::Inside
                                } else {
                                    PartRelation::Outside
                                }
                            }
                            // Near a boundary the grid gives no disc: the
                            // edges of a wider box give one (the distance
                            // to the nearest), so a subject walking along
                            // the boundary is not scanned at every fix.
                            _ => match b.clearance_m(&frame, lon, lat, radius_m, MEMO_SEARCH_M) {
                                None => PartRelation::Near,
                                Some(bound) => {
                                    free = free.map(|f| f.min(bound));
                                    if b.contains(lon, lat) {
                                        PartRelation::Inside
                                    } else {
                                        PartRelation::Outside
                                    }
                                }
                            },
                        },
                        ItemGeom::Circle { .. } => {
                            free = None;
                            if i.boundary_distance_m(&frame, lon, lat, radius_m).is_some() {
                                PartRelation::Near
                            } else if i.contains(lon, lat) {
                                PartRelation::Inside
                            } else {
                                PartRelation::Outside
                            }
                        }
                    };
                    match rel {
                        PartRelation::Near => return Relation::Boundary,
                        PartRelation::Inside => inside = true,
                        PartRelation::Outside => {}
                    }
                }
                if let Some(radius_m) = free {
                    memo.store(FreeDisc {
                        start,
                        lon,
                        lat,
                        kx: frame.kx(),
                        radius_m,
                        inside,
                    });
                }
                if inside {
                    Relation::Inside
                } else {
                    Relation::Outside
                }
            }
        }
    }

    /// Whether the straight segment between two points (lon, lat) meets the zone.
    pub fn segment_meets(&self, zone: ZoneRef, a: (f64, f64), b: (f64, f64)) -> bool {
        self.items_of(zone).iter().any(|i| i.segment_meets(a, b))
    }

    /// [`ZoneSet::segment_meets`] on a resolved zone: a circle is tested
    /// from the rule's inline copy with no zone-set read.
    pub(crate) fn segment_meets_resolved(
        &self,
        zone: &Resolved,
        a: (f64, f64),
        b: (f64, f64),
    ) -> bool {
        match *zone {
            Resolved::Circle {
                lon,
                lat,
                radius_m,
                kx,
            } => {
                let f = LocalFrame::with_kx(lon, lat, kx);
                point_segment_distance((0.0, 0.0), f.project(a.0, a.1), f.project(b.0, b.1))
                    < radius_m
            }
            Resolved::Parts { start, end } => self.items[start as usize..end as usize]
                .iter()
                .any(|i| i.segment_meets(a, b)),
        }
    }

    /// Heap bytes of the index structures (bands, R-tree, tables), not
    /// counting the kept source geometry in [`ZoneSet::zones`].
    pub fn index_heap_bytes(&self) -> usize {
        let bands: usize = self
            .items
            .iter()
            .map(|i| match &i.geom {
                ItemGeom::Part(b) => b.heap_bytes(),
                ItemGeom::Circle { .. } => 0,
            })
            .sum();
        // The R-tree stores each leaf once plus inner nodes (< leaves / 2 for
        // its node size); estimate conservatively as twice the leaves.
        let tree = 2 * self.tree.size() * size_of::<TreeItem>();
        bands
            + tree
            + self.coarse.heap_bytes()
            + self.items.capacity() * size_of::<Item>()
            + self.zone_items.capacity() * 4
    }

    /// Heap bytes of the kept source geometry (vertices).
    pub fn geometry_heap_bytes(&self) -> usize {
        self.zones
            .iter()
            .map(|z| match &z.shape {
                Shape::Circle { .. } => 0,
                Shape::Polygons(mp) => {
                    mp.0.iter()
                        .map(|p| {
                            p.exterior().0.capacity() * 16
                                + p.interiors()
                                    .iter()
                                    .map(|r| r.0.capacity() * 16)
                                    .sum::<usize>()
                        })
                        .sum()
                }
            })
            .sum()
    }
}

fn zones_version(zones: &[Zone], r: ZoneRef) -> u32 {
    zones[r.index()].version
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::ZoneKind;

    /// A subject's memo never changes an answer: random walks (small steps
    /// and jumps, varying radii) over real county polygons, each answer
    /// through a persistent memo compared with a fresh computation.
    #[test]
    fn memo_answers_equal_fresh_answers() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/zones/he2_nan2_zheng4_zhou1.geojson"
        );
        let bytes = std::fs::read(path).expect("zone file");
        let (set, _) = crate::import_geojson_slice(&bytes).expect("geojson");
        let mut seed = 3u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut hits, mut boundary) = (0usize, 0usize);
        for z in 0..set.len() {
            let r = ZoneRef(z as u32);
            let resolved = set.resolve(r);
            let Shape::Polygons(mp) = &set.zone(r).shape else {
                continue;
            };
            let ring = &mp.0[0].exterior().0;
            let mut memo = Memo::default();
            let v = ring[(next() * ring.len() as f64) as usize % ring.len()];
            let (mut lon, mut lat) = (v.x + 0.02 * (next() - 0.5), v.y + 0.02 * (next() - 0.5));
            for step in 0..400 {
                let jump = if step % 50 == 0 { 0.05 } else { 0.002 };
                lon += jump * (next() - 0.5);
                lat += jump * (next() - 0.5);
                let radius = [5.0, 30.0, 300.0][step % 3];
                let Resolved::Parts { start, .. } = resolved else {
                    unreachable!("polygon zones resolve to parts");
                };
                hits += usize::from(memo.hit(start, lon, lat, radius).is_some());
                let got = set.relate_memo(&resolved, lon, lat, radius, &mut memo);
                let want = set.relate(r, lon, lat, radius);
                assert_eq!(got, want, "zone {z} step {step} ({lon}, {lat}) r {radius}");
                boundary += usize::from(want == Relation::Boundary);
            }
        }
        assert!(hits > 1000, "{hits} memo hits");
        assert!(boundary > 100, "{boundary} boundary answers");
    }

    #[test]
    fn circle_relations() {
        let (set, report) = ZoneSet::build(vec![Zone::circle(
            "c",
            ZoneKind::Exclusion,
            116.4,
            39.9,
            100.0,
        )]);
        assert!(report.is_clean());
        let z = set
            .version_at(&ZoneId::from("c"), Utc::now())
            .expect("valid");
        assert_eq!(set.relate(z, 116.4, 39.9, 10.0), Relation::Inside);
        assert_eq!(set.relate(z, 116.4, 39.9, 150.0), Relation::Boundary);
        assert_eq!(set.relate(z, 116.41, 39.9, 10.0), Relation::Outside);
        assert_eq!(set.locate(116.4, 39.9), vec![z]);
    }
}
