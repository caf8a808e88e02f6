//! Memory of the zone engine per subject in steady state, with the service's
//! default thresholds (a 6 h late-data window of at most 512 judged fixes).
//!
//! 20,000 subjects live in Zhengzhou's real counties, each with their county
//! as permitted zone and two 200 m exclusion circles near home, and report
//! one fix a minute (the field's cadence when compliant). The engine's
//! resident memory is sampled every hour of event time for nine hours: the
//! window fills for six hours and then only slides. The baseline is the same
//! engine in the same run right after registration, before any fix.
//!
//! Run: `cargo bench -p geoward-benches --bench engine_memory`
//! (prints a table; criterion is not involved: this is a one-shot
//! measurement of resident memory, not a timing). Coordinates are fed as
//! the binary frame carries them (1e-7°); `GEOWARD_BENCH_RAW_COORDS=1`
//! feeds the unrounded `f64`s instead, as JSON with more than seven
//! decimals would (the window then stores them raw).

use std::sync::Arc;
use std::time::Instant;

use geoward_benches::{Rng, rss_bytes, shared_data};
use geoward_geofence::chrono::{DateTime, Duration, Utc};
use geoward_geofence::{
    Engine, Fix, Source, SubjectRules, Thresholds, Zone, ZoneId, ZoneKind, ZoneSet,
    import_geojson_slice,
};

const SUBJECTS: usize = 20_000;
const HOURS: i64 = 9;
/// The design number for the whole service, per connected device.
const TARGET_BYTES: f64 = 10.0 * 1024.0;

struct Subject {
    id: String,
    home: (f64, f64),
    phase: f64,
}

/// Minute `r` of subject `s`: a smooth walk of about 1 km around home,
/// GNSS with 5–24 m accuracy, every tenth fix by cell (300 m). Coordinates
/// as the binary frame carries them (1e-7° integers, decoded as `i / 1e7`)
/// unless `raw`.
fn fix_of(s: &Subject, r: i64, t0: DateTime<Utc>, raw: bool) -> Fix {
    let a = r as f64 * 0.05 + s.phase;
    let cell = r % 10 == 0;
    let e7 = |deg: f64| if raw { deg } else { (deg * 1e7).round() / 1e7 };
    Fix {
        time: t0 + Duration::minutes(r),
        lon: e7(s.home.0 + 0.012 * a.sin()),
        lat: e7(s.home.1 + 0.009 * (a * 0.8).cos()),
        accuracy_m: if cell { 300.0 } else { 5.0 + (r % 20) as f64 },
        source: if cell { Source::Cell } else { Source::Gnss },
        device_seq: r as u64,
    }
}

fn main() {
    let raw = std::fs::read(shared_data().join("zones/he2_nan2_zheng4_zhou1.geojson"))
        .expect("Zhengzhou zone file");
    let (counties, _) = import_geojson_slice(&raw).expect("geojson");
    let [x0, y0, x1, y1] = [112.7, 34.3, 114.2, 34.95];
    let mut rng = Rng(17);
    let mut zones: Vec<Zone> = counties.zones().to_vec();
    let mut subjects = Vec::with_capacity(SUBJECTS);
    let mut rules = Vec::with_capacity(SUBJECTS);
    while subjects.len() < SUBJECTS {
        let home = (rng.range(x0, x1), rng.range(y0, y1));
        let Some(county) = counties.locate(home.0, home.1).first().copied() else {
            continue;
        };
        let id = format!("s{}", subjects.len());
        let mut exclusions = Vec::new();
        for k in 0..2 {
            let (ang, d) = (
                rng.range(0.0, std::f64::consts::TAU),
                rng.range(0.003, 0.02),
            );
            let zid = format!("{id}-x{k}");
            zones.push(Zone::circle(
                zid.clone(),
                ZoneKind::Exclusion,
                home.0 + d * ang.cos(),
                home.1 + d * ang.sin(),
                200.0,
            ));
            exclusions.push(ZoneId::new(zid));
        }
        rules.push(SubjectRules {
            permitted: vec![counties.zone(county).id.clone()],
            exclusions,
            ..SubjectRules::default()
        });
        subjects.push(Subject {
            id,
            home,
            phase: rng.range(0.0, 100.0),
        });
    }
    let (set, _) = ZoneSet::build(zones);
    let set = Arc::new(set);
    let thresholds = Thresholds::default();
    let raw = std::env::var_os("GEOWARD_BENCH_RAW_COORDS").is_some_and(|v| v == "1");
    eprintln!(
        "thresholds: window {} s, at most {} fixes; {} subjects, one fix a minute; coordinates {}",
        thresholds.window_seconds,
        thresholds.window_max_fixes,
        SUBJECTS,
        if raw {
            "unrounded f64"
        } else {
            "at 1e-7° (binary frame)"
        }
    );
    let mut engine = Engine::new(set, thresholds);
    for (s, r) in subjects.iter().zip(rules) {
        engine.set_subject(s.id.clone(), r).expect("rules resolve");
    }
    let handles: Vec<_> = subjects
        .iter()
        .map(|s| engine.handle(&s.id).expect("known subject"))
        .collect();
    let base = rss_bytes();
    let t0 = DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let started = Instant::now();
    let mut transitions = 0usize;
    println!("| event time | engine RSS over registration, per subject | / 10 KiB |");
    println!("|---:|---:|---:|");
    for hour in 1..=HOURS {
        for r in (hour - 1) * 60..hour * 60 {
            for (s, h) in subjects.iter().zip(&handles) {
                let fix = fix_of(s, r, t0, raw);
                transitions += engine
                    .observe_handle(*h, fix, fix.time)
                    .expect("known subject")
                    .len();
            }
        }
        let per = rss_bytes().saturating_sub(base) as f64 / SUBJECTS as f64;
        println!(
            "| {hour} h | {:.1} KiB | {:.2} |",
            per / 1024.0,
            per / TARGET_BYTES
        );
    }
    eprintln!(
        "{} fixes in {:.1} s, {transitions} transitions; registration baseline RSS {:.1} MiB",
        SUBJECTS as i64 * HOURS * 60,
        started.elapsed().as_secs_f64(),
        base as f64 / 1048576.0
    );
}
