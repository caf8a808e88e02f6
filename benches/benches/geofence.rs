//! Zone engine on the national county set (3,253 features, 6.9 M vertices):
//! index build, locate throughput against a naive baseline (`geo::Contains`
//! over the R-tree envelope candidates), and subject evaluation throughput
//! for 100k subjects against a naive per-fix judge, all in the same run.
//!
//! Run: `cargo bench -p geoward-benches --bench geofence -- --warm-up-time 1 --measurement-time 3`
//! Fixed seeds, real data; one-shot timings and memory go to stderr.

use std::hint::black_box;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration as Elapsed, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use geo::{Contains, Point};
use geoward_benches::{Rng, rss_bytes, shared_data};
use geoward_geofence::chrono::{DateTime, Duration, Utc};
use geoward_geofence::geodesy::distance_m;
use geoward_geofence::{
    Engine, Fix, Shape, Source, SubjectRules, Thresholds, Zone, ZoneId, ZoneKind, ZoneRef, ZoneSet,
    import_value,
};

const SUBJECTS: usize = 100_000;
const POINTS: usize = 10_000;
/// Subjects in the hot-cache variant (their state stays in cache).
const HOT: usize = 1_000;
/// Fixes made per untimed step of the subject benches (see [`timed_in_chunks`]).
const CHUNK: u64 = 4096;
/// Rounds of fixes observed before the subject benches are timed: every
/// subject gets more than its window holds (64) plus a batch of pruned
/// fixes (32), so every timed fix also prunes and no window grows while
/// timed.
const FILL_ROUNDS: u32 = 130;
/// Subject `i` joins at round `i % STAGGER` (see the fill).
const STAGGER: usize = 32;

fn national() -> (ZoneSet, Vec<Zone>) {
    let path = shared_data().join("zones/china-counties.geojson.gz");
    let raw = std::fs::read(&path).expect("national zone file");
    let t0 = Instant::now();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(raw.as_slice())
        .read_to_end(&mut json)
        .expect("gunzip");
    let t1 = Instant::now();
    let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
    let t2 = Instant::now();
    let (set, report) = import_value(&value).expect("geojson");
    let t3 = Instant::now();
    eprintln!(
        "national import: gunzip {:.2} s, json {:.2} s, convert+repair+index {:.2} s; {} of {} features accepted, {} defects",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64(),
        report.accepted,
        report.features,
        report.defects.len()
    );
    let zones = set.zones().to_vec();
    drop(value);
    let before = rss_bytes();
    let t = Instant::now();
    let (rebuilt, _) = ZoneSet::build(zones.clone());
    let build = t.elapsed();
    let after = rss_bytes();
    eprintln!(
        "national build (repair+index of parsed zones): {:.2} s; index heap {:.1} MiB, kept geometry {:.1} MiB, RSS growth {:.1} MiB",
        build.as_secs_f64(),
        rebuilt.index_heap_bytes() as f64 / 1048576.0,
        rebuilt.geometry_heap_bytes() as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / 1048576.0
    );
    (rebuilt, zones)
}

/// Uniform random points in China's bounding box that lie in some county.
fn points_in_china(set: &ZoneSet, n: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (lon, lat) = (rng.range(73.5, 135.1), rng.range(18.1, 53.6));
        if !set.locate(lon, lat).is_empty() {
            out.push((lon, lat));
        }
    }
    out
}

/// The baseline: exact `geo::Contains` over every R-tree envelope candidate.
fn naive_locate(set: &ZoneSet, lon: f64, lat: f64) -> Vec<ZoneRef> {
    let p = Point::new(lon, lat);
    let mut out = set.candidates(lon, lat);
    out.retain(|z| match &set.zone(*z).shape {
        Shape::Polygons(mp) => mp.contains(&p),
        Shape::Circle { .. } => false,
    });
    out
}

fn bench_build_and_locate(c: &mut Criterion) {
    let (set, zones) = national();
    let mut g = c.benchmark_group("geofence_build");
    g.sample_size(10);
    g.bench_function("build_national_index", |b| {
        b.iter_batched(|| zones.clone(), ZoneSet::build, BatchSize::LargeInput)
    });
    g.finish();

    let points = points_in_china(&set, POINTS, 7);
    for (lon, lat) in points.iter().take(2000) {
        assert_eq!(
            set.locate(*lon, *lat),
            naive_locate(&set, *lon, *lat),
            "baseline disagrees"
        );
    }
    let mut g = c.benchmark_group("geofence_locate");
    g.sample_size(20);
    g.throughput(Throughput::Elements(points.len() as u64));
    g.bench_function("band_index", |b| {
        b.iter(|| {
            let mut n = 0;
            for (lon, lat) in &points {
                n += set.locate(*lon, *lat).len();
            }
            black_box(n)
        })
    });
    g.bench_function("baseline_rstar_geo_contains", |b| {
        b.iter(|| {
            let mut n = 0;
            for (lon, lat) in &points {
                n += naive_locate(&set, *lon, *lat).len();
            }
            black_box(n)
        })
    });
    g.finish();
}

struct Subject {
    id: String,
    home: (f64, f64),
    county: usize,
    circles: [(f64, f64); 2],
    phase: f64,
}

/// Position of subject `s` at minute `r`: a smooth walk of about 1 km
/// around home (≈ 1 m/s), GNSS most of the time, every tenth fix by cell.
/// Coordinates as the binary frame carries them (1e-7° integers, decoded
/// as `i / 1e7`).
fn fix_of(s: &Subject, r: u64, t0: DateTime<Utc>, seq: u64) -> Fix {
    let a = r as f64 * 0.05 + s.phase;
    let e7 = |deg: f64| (deg * 1e7).round() / 1e7;
    let (lon, lat) = (
        e7(s.home.0 + 0.012 * a.sin()),
        e7(s.home.1 + 0.009 * (a * 0.8).cos()),
    );
    let cell = (r + seq).is_multiple_of(10);
    Fix {
        time: t0 + Duration::seconds(60 * r as i64),
        lat,
        lon,
        accuracy_m: if cell { 300.0 } else { 5.0 + (seq % 20) as f64 },
        source: if cell { Source::Cell } else { Source::Gnss },
        device_seq: r,
    }
}

/// The next `n` fixes of a round-robin stream over `pool` subjects, from
/// stream position `*k` (rounds counted from `round0`), as (subject index,
/// fix).
fn next_fixes(
    subjects: &[Subject],
    pool: usize,
    round0: u64,
    t0: DateTime<Utc>,
    k: &mut u64,
    n: u64,
    out: &mut Vec<(usize, Fix)>,
) {
    out.clear();
    for _ in 0..n {
        let (i, r) = ((*k % pool as u64) as usize, round0 + *k / pool as u64);
        out.push((i, fix_of(&subjects[i], r, t0, *k)));
        *k += 1;
    }
}

/// Times `judge` over `iters` fixes made by `make` in chunks of [`CHUNK`]
/// before the timer starts: a service judges fixes it has already decoded,
/// and making them here (trigonometry, a time, a read of the bench's cold
/// subject table) is not evaluation. Both ours and the baselines are
/// measured this way.
fn timed_in_chunks<T>(
    iters: u64,
    mut make: impl FnMut(u64, &mut Vec<T>),
    mut judge: impl FnMut(&T),
) -> Elapsed {
    let mut fixes = Vec::with_capacity(CHUNK as usize);
    let mut elapsed = Elapsed::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        make(n, &mut fixes);
        let start = Instant::now();
        for f in &fixes {
            judge(f);
        }
        elapsed += start.elapsed();
        left -= n;
    }
    elapsed
}

fn bench_subjects(c: &mut Criterion) {
    let (counties, _) = national();
    let homes = points_in_china(&counties, SUBJECTS, 11);
    let mut rng = Rng(13);
    let mut subjects = Vec::with_capacity(SUBJECTS);
    let mut zones: Vec<Zone> = counties.zones().to_vec();
    for (i, home) in homes.iter().enumerate() {
        let county = counties.locate(home.0, home.1)[0].index();
        let mut circles = [(0.0, 0.0); 2];
        for (k, c) in circles.iter_mut().enumerate() {
            let ang = rng.range(0.0, std::f64::consts::TAU);
            let d = rng.range(0.003, 0.02);
            *c = (home.0 + d * ang.cos(), home.1 + d * ang.sin());
            zones.push(Zone::circle(
                format!("s{i}-x{k}"),
                ZoneKind::Exclusion,
                c.0,
                c.1,
                200.0,
            ));
        }
        subjects.push(Subject {
            id: format!("s{i}"),
            home: *home,
            county,
            circles,
            phase: rng.range(0.0, 100.0),
        });
    }
    let t = Instant::now();
    let (set, report) = ZoneSet::build(zones);
    eprintln!(
        "subject zone set: {} zones ({} exclusion circles) built in {:.2} s",
        report.accepted,
        2 * SUBJECTS,
        t.elapsed().as_secs_f64()
    );
    let set = Arc::new(set);
    let thresholds = Thresholds {
        // Steady state with a full window (pruning on every fix) without
        // holding 100k × 512 fixes in memory.
        window_max_fixes: 64,
        ..Thresholds::default()
    };
    let new_engine = || {
        let mut engine = Engine::new(set.clone(), thresholds.clone());
        for s in &subjects {
            let rules = SubjectRules {
                permitted: vec![
                    set.zone(set.zone_ref(s.county).expect("county zone"))
                        .id
                        .clone(),
                ],
                exclusions: vec![
                    ZoneId::new(format!("{}-x0", s.id)),
                    ZoneId::new(format!("{}-x1", s.id)),
                ],
                ..SubjectRules::default()
            };
            engine
                .set_subject(s.id.clone(), rules)
                .expect("rules resolve");
        }
        engine
    };
    let t0 = DateTime::parse_from_rfc3339("2025-06-01T08:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    // Both engines are measured in the steady state of a running service:
    // every window full, so each fix also prunes one. Filling them first
    // (untimed) also keeps criterion's samples from mixing the cheaper
    // filling rounds with full ones.
    let mut transitions = 0usize;
    let filled = |k: &mut u64, transitions: &mut usize| {
        let mut engine = new_engine();
        let t = Instant::now();
        for _ in 0..u64::from(FILL_ROUNDS) * SUBJECTS as u64 {
            let (i, r) = ((*k % SUBJECTS as u64) as usize, *k / SUBJECTS as u64);
            *k += 1;
            // Subjects join over the first STAGGER rounds, as a service's
            // do over time, so the tracker's batched upkeep (every 32
            // pruned fixes) falls in every round alike rather than all
            // subjects' in one round of 32.
            if r < (i % STAGGER) as u64 {
                continue;
            }
            let s = &subjects[i];
            let fix = fix_of(s, r, t0, *k - 1);
            *transitions += engine
                .observe(&s.id, fix, fix.time)
                .expect("known subject")
                .len();
        }
        eprintln!(
            "engine filled: {FILL_ROUNDS} rounds in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        engine
    };
    let mut k: u64 = 0;
    let mut engine = filled(&mut k, &mut transitions);
    // A second engine for the by-handle variant, so both variants see the
    // same windows and working set (one engine would hand the second
    // variant the first one's fixes too).
    let mut kh_: u64 = 0;
    let mut engine_h = filled(&mut kh_, &mut transitions);

    let mut g = c.benchmark_group("geofence_subjects");
    g.throughput(Throughput::Elements(1));
    let mut made = Vec::new();
    g.bench_function("engine_observe", |b| {
        b.iter_custom(|iters| {
            timed_in_chunks(
                iters,
                |n, out: &mut Vec<(String, Fix)>| {
                    // The id travels with the fix, as a service has it
                    // just decoded.
                    next_fixes(&subjects, SUBJECTS, 0, t0, &mut k, n, &mut made);
                    out.clear();
                    out.extend(made.iter().map(|&(i, f)| (subjects[i].id.clone(), f)));
                },
                |(id, fix)| {
                    let out = engine.observe(id, *fix, fix.time).expect("known subject");
                    transitions += out.len();
                },
            )
        })
    });
    // The same on a fresh engine, by handle (the id lookup done once, as a
    // service that keeps the handle next to its device session would).
    let handles: Vec<_> = subjects
        .iter()
        .map(|s| engine_h.handle(&s.id).expect("known subject"))
        .collect();
    g.bench_function("engine_observe_handle", |b| {
        b.iter_custom(|iters| {
            timed_in_chunks(
                iters,
                |n, out: &mut Vec<_>| {
                    next_fixes(&subjects, SUBJECTS, 0, t0, &mut kh_, n, &mut made);
                    out.clear();
                    out.extend(made.iter().map(|&(i, f)| (handles[i], f)));
                },
                |&(handle, fix)| {
                    let out = engine_h
                        .observe_handle(handle, fix, fix.time)
                        .expect("known subject");
                    transitions += out.len();
                },
            )
        })
    });
    drop(engine_h);
    let county_shapes: Vec<&geo::MultiPolygon<f64>> = subjects
        .iter()
        .map(
            |s| match &set.zone(set.zone_ref(s.county).expect("county zone")).shape {
                Shape::Polygons(mp) => mp,
                Shape::Circle { .. } => unreachable!("counties are polygons"),
            },
        )
        .collect();
    // The naive judge: the subject's county polygon and two circle tests.
    let mut bad = 0usize;
    let mut naive = |&(i, fix): &(usize, Fix)| {
        let inside = county_shapes[i].contains(&Point::new(fix.lon, fix.lat));
        let excluded = subjects[i]
            .circles
            .iter()
            .any(|c| distance_m(c.0, c.1, fix.lon, fix.lat) < 200.0);
        bad += usize::from(!inside || excluded);
    };
    let mut kb: u64 = 0;
    g.bench_function("baseline_geo_contains_judge", |b| {
        b.iter_custom(|iters| {
            timed_in_chunks(
                iters,
                |n, out| next_fixes(&subjects, SUBJECTS, 0, t0, &mut kb, n, out),
                &mut naive,
            )
        })
    });
    // The same engine, cycling over only the first HOT subjects: their
    // state and zones stay in cache, which shows compute cost apart from
    // memory latency.
    let first_round = k / SUBJECTS as u64 + 1;
    let mut kh: u64 = 0;
    g.bench_function("engine_observe_1k_subjects_hot", |b| {
        b.iter_custom(|iters| {
            timed_in_chunks(
                iters,
                |n, out: &mut Vec<(String, Fix)>| {
                    next_fixes(&subjects, HOT, first_round, t0, &mut kh, n, &mut made);
                    out.clear();
                    out.extend(made.iter().map(|&(i, f)| (subjects[i].id.clone(), f)));
                },
                |(id, fix)| {
                    let out = engine.observe(id, *fix, fix.time).expect("known subject");
                    transitions += out.len();
                },
            )
        })
    });
    let mut khb: u64 = 0;
    g.bench_function("baseline_geo_contains_judge_1k_subjects_hot", |b| {
        b.iter_custom(|iters| {
            timed_in_chunks(
                iters,
                |n, out| next_fixes(&subjects, HOT, 0, t0, &mut khb, n, out),
                &mut naive,
            )
        })
    });
    black_box(bad);
    g.finish();
    eprintln!(
        "subject evaluation: {k} + {kh_} (by handle) + {kh} (hot) fixes observed, {transitions} transitions emitted"
    );
}

// Subjects first: after the build benchmark (which rebuilds the national
// index a dozen times) the subject benchmarks ran slower, by handle 39 %
// and the naive baseline 13 %; the cause was not isolated (the heap is the
// suspect; see benches/RESULTS.md). A service builds its zone set once.
criterion_group!(benches, bench_subjects, bench_build_and_locate);
criterion_main!(benches);
