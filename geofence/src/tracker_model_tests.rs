//! The tracker against its reference model ([`crate::tracker_ref`], the
//! tracker before packed window entries and batched checkpoint advances):
//! seeded random streams of in-order, late, too-late, duplicate and
//! same-time fixes, invalid fixes, clock ticks across curfew starts and
//! leave ends, and zone set changes, fed to both with tiny windows (so the
//! checkpoint moves all the time) and with the real default window. After
//! every step both must return the same result (transitions with episode
//! ids, times, lateness and evidence fixes, or the same error), the same
//! stats and the same open breaches.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, Utc, Weekday};
use geo::{LineString, MultiPolygon, Polygon};

use crate::fix::{Fix, Source};
use crate::rules::{Curfew, LeaveGrant, LeavePermit, SubjectRules};
use crate::test_rng::Rng;
use crate::thresholds::{RuleKind, SupervisionLevel, Thresholds};
use crate::tracker::Tracker;
use crate::tracker_ref::RefTracker;
use crate::transition::{Transition, TransitionKind};
use crate::zone::{Shape, Zone, ZoneId, ZoneKind};
use crate::zone_set::ZoneSet;

/// County square 116.0–116.1 E, 39.9–40.0 N (its east edge moves 0.01°
/// west at `T_MOVE`), exclusion circle and square inside, home circle,
/// leave destination far east.
const EXCL: (f64, f64) = (116.05, 39.95);
const SCHOOL: (f64, f64) = (116.07, 39.93);
const HOME: (f64, f64) = (116.02, 39.92);
const DEST: (f64, f64) = (117.5, 39.5);
const EAST: f64 = 116.1;

fn t0() -> DateTime<Utc> {
    // 20:00 in Shanghai: curfews at 22:00 local are two hours in.
    DateTime::from_timestamp(1_748_779_200, 0).unwrap_or_default()
}

fn square(w: f64, s: f64, e: f64, n: f64) -> Shape {
    Shape::Polygons(MultiPolygon(vec![Polygon::new(
        LineString::from(vec![(w, s), (e, s), (e, n), (w, n), (w, s)]),
        vec![],
    )]))
}

/// Two versions of the world: `moved` shifts the victim's and the home
/// circle and widens the school (as a zone update would).
fn zones(moved: bool) -> Arc<ZoneSet> {
    let t_move = t0() + Duration::hours(3);
    let mut county1 = Zone::new(
        "county",
        ZoneKind::Permitted,
        square(116.0, 39.9, EAST, 40.0),
    );
    county1.valid_until = Some(t_move);
    let mut county2 = Zone::new(
        "county",
        ZoneKind::Permitted,
        square(116.0, 39.9, EAST - 0.01, 40.0),
    );
    county2.version = 2;
    county2.valid_from = Some(t_move);
    let (victim, school_half) = if moved {
        ((EXCL.0 + 0.002, EXCL.1), 0.002)
    } else {
        (EXCL, 0.001)
    };
    let (set, report) = ZoneSet::build(vec![
        county1,
        county2,
        Zone::circle("victim", ZoneKind::Exclusion, victim.0, victim.1, 200.0),
        Zone::new(
            "school",
            ZoneKind::Exclusion,
            square(
                SCHOOL.0 - school_half,
                SCHOOL.1 - school_half,
                SCHOOL.0 + school_half,
                SCHOOL.1 + school_half,
            ),
        ),
        Zone::circle(
            "home",
            ZoneKind::Home,
            HOME.0 + if moved { 0.0015 } else { 0.0 },
            HOME.1,
            100.0,
        ),
        Zone::circle("dest", ZoneKind::Permitted, DEST.0, DEST.1, 5000.0),
    ]);
    assert!(report.is_clean(), "test zones are clean");
    Arc::new(set)
}

fn rules(rng: &mut Rng) -> SubjectRules {
    let mut r = SubjectRules {
        permitted: vec![ZoneId::from("county")],
        exclusions: vec![ZoneId::from("victim")],
        home: Some(ZoneId::from("home")),
        level: match rng.below(3) {
            0 => SupervisionLevel::Strict,
            1 => SupervisionLevel::Normal,
            _ => SupervisionLevel::Lenient,
        },
        ..SubjectRules::default()
    };
    if rng.chance(60) {
        r.exclusions.push(ZoneId::from("school"));
    }
    let hm = |h: u32, m: u32| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
    if rng.chance(60) {
        r.curfews.push(Curfew {
            days: Vec::new(),
            start: hm(22, 0),
            end: hm(6, 0),
        });
    }
    if rng.chance(30) {
        r.curfews.push(Curfew {
            days: vec![Weekday::Sun, Weekday::Mon],
            start: hm(20, 40 + rng.below(20) as u32),
            end: hm(21, 30),
        });
    }
    for _ in 0..rng.below(3) {
        let from = t0() + Duration::minutes(rng.below(300) as i64);
        let until = from + Duration::minutes(1 + rng.below(120) as i64);
        let grant = match rng.below(4) {
            0 => LeaveGrant::ExtraZone(ZoneId::from("dest")),
            1 => LeaveGrant::Suspend(RuleKind::Permitted),
            2 => LeaveGrant::Suspend(RuleKind::Exclusion),
            _ => LeaveGrant::Suspend(RuleKind::Curfew),
        };
        r.leaves.push(LeavePermit { from, until, grant });
    }
    r
}

fn thresholds(rng: &mut Rng, tiny_windows: bool) -> Thresholds {
    let mut th = Thresholds::default();
    if tiny_windows && rng.chance(85) {
        // Tiny windows: the checkpoint advances on most fixes.
        th.window_max_fixes = rng.below(12) as usize;
        th.window_seconds = [60, 300, 1200, 6 * 3600][rng.below(4) as usize];
    }
    if rng.chance(20) {
        th.possible_crossing_min_gap_seconds = 10;
    }
    if rng.chance(20) {
        th.deadline_grace_seconds = 120;
    }
    th
}

/// A position near something worth judging.
fn place(rng: &mut Rng, prev: (f64, f64)) -> (f64, f64) {
    let jitter = |rng: &mut Rng, m: f64| rng.range(-m, m) / 85_000.0;
    match rng.below(10) {
        // Across the county's east edge (both versions), metres to
        // hundreds of metres either side.
        0 | 1 => (
            EAST - [0.0, 0.01][rng.below(2) as usize] + jitter(rng, 400.0),
            39.95 + jitter(rng, 2000.0),
        ),
        2 => (EXCL.0 + jitter(rng, 400.0), EXCL.1 + jitter(rng, 400.0)),
        3 => (SCHOOL.0 + jitter(rng, 300.0), SCHOOL.1 + jitter(rng, 300.0)),
        4 => (HOME.0 + jitter(rng, 250.0), HOME.1 + jitter(rng, 250.0)),
        // Far away: an implausible jump, or the leave destination.
        5 => match rng.below(3) {
            0 => (DEST.0 + jitter(rng, 3000.0), DEST.1),
            1 => (121.47, 31.23),
            _ => (116.3 + jitter(rng, 2000.0), 39.9),
        },
        _ => (
            (prev.0 + jitter(rng, 300.0)).clamp(-180.0, 180.0),
            (prev.1 + jitter(rng, 300.0)).clamp(-90.0, 90.0),
        ),
    }
}

fn random_fix(rng: &mut Rng, time: DateTime<Utc>, seq: u64, at: (f64, f64)) -> Fix {
    let source = match rng.below(10) {
        0..=5 => Source::Gnss,
        6 => Source::Fused,
        7 => Source::Wifi,
        _ => Source::Cell,
    };
    let accuracy_m = match rng.below(6) {
        0 => 0.0,
        1 => rng.range(0.0, 400.0),
        2 => 5.0 + rng.below(20) as f64,
        _ => rng.range(2.0, 40.0),
    };
    // Mostly as the wire carries fixes (1e-7°, accuracy in decimetres of
    // an `f32`), which the window stores as steps; otherwise any `f64`,
    // which it stores raw.
    if rng.chance(70) {
        let e7 = |deg: f64| (deg * 1e7).round() / 1e7;
        let decimetres = (accuracy_m * 10.0).round().min(65_535.0) as u16;
        Fix {
            time,
            lat: e7(at.1),
            lon: e7(at.0),
            accuracy_m: f64::from(f32::from(decimetres) / 10.0),
            source,
            device_seq: seq,
        }
    } else {
        Fix {
            time,
            lat: at.1,
            lon: at.0,
            accuracy_m,
            source,
            device_seq: seq,
        }
    }
}

/// What the streams exercised, summed over all cases.
#[derive(Debug, Default)]
struct Coverage {
    steps: u64,
    transitions: u64,
    confirmed: u64,
    ended: u64,
    crossings: u64,
    late: u64,
    deadline_confirmations: u64,
    replays: u64,
    too_late: u64,
    duplicates: u64,
    rebinds: u64,
    errors: u64,
}

impl Coverage {
    fn count(&mut self, out: &[Transition]) {
        for t in out {
            self.transitions += 1;
            self.late += u64::from(t.late);
            match t.kind {
                TransitionKind::BreachConfirmed => {
                    self.confirmed += 1;
                    // Confirmed at a deadline: the event time is no fix's.
                    let ms = t.event_time.timestamp_millis();
                    if t.evidence.iter().all(|f| f.time.timestamp_millis() != ms) {
                        self.deadline_confirmations += 1;
                    }
                }
                TransitionKind::BreachEnded { .. } => self.ended += 1,
                TransitionKind::PossibleCrossing => self.crossings += 1,
                TransitionKind::BreachStarted => {}
            }
        }
    }
}

/// Runs one seeded stream through both trackers, comparing after every step.
fn run_case(seed: u64, steps: usize, tiny_windows: bool, cov: &mut Coverage) {
    let mut rng = Rng(seed);
    let th = Arc::new(thresholds(&mut rng, tiny_windows));
    let r = rules(&mut rng);
    let mut moved = false;
    let mut new = Tracker::new("s".into(), r.clone(), zones(moved), th.clone())
        .unwrap_or_else(|e| panic!("seed {seed}: rules: {e}"));
    let mut old = RefTracker::new("s".into(), r, zones(moved), th.clone())
        .unwrap_or_else(|e| panic!("seed {seed}: rules: {e}"));
    let mut clock = t0();
    let mut now = clock;
    let mut at = HOME;
    let mut target = HOME;
    let mut sent: Vec<Fix> = Vec::new();
    for step in 0..steps {
        let seq = step as u64 + 1;
        let kind = rng.below(100);
        let what;
        let (a, b) = if kind < 62 {
            // In order, mostly; sometimes a long gap, sometimes with
            // sub-millisecond time, sometimes processed late.
            let gap_s = match rng.below(10) {
                0 => rng.below(3),
                1 => 600 + rng.below(3600),
                _ => 5 + rng.below(120),
            };
            clock += Duration::seconds(gap_s as i64);
            if clock + Duration::minutes(10) < now && rng.chance(50) {
                // The device catches up with processing time.
                clock = now - Duration::seconds(rng.below(600) as i64);
            }
            // Sub-millisecond times now and then (evidence must keep them).
            let time = if rng.chance(10) {
                clock + Duration::nanoseconds(rng.below(999_999_999) as i64)
            } else {
                clock
            };
            // Stay around one place for a while, then move on.
            if rng.chance(15) {
                target = place(&mut rng, target);
            }
            let jitter = |rng: &mut Rng| rng.range(-30.0, 30.0) / 85_000.0;
            at = (target.0 + jitter(&mut rng), target.1 + jitter(&mut rng));
            let fix = random_fix(&mut rng, time, seq, at);
            now = now.max(time) + Duration::seconds(rng.below(3) as i64);
            if rng.chance(5) {
                now += Duration::minutes(30);
            }
            sent.push(fix);
            what = format!("fix {fix:?} now {now}");
            (new.observe(fix, now), old.observe(fix, now))
        } else if kind < 77 {
            // Late: up to twice the window's span back, or hours back.
            let span = th.window_seconds.clamp(60, 3 * 3600) as u64;
            let back = if rng.chance(15) {
                rng.below(6 * 3600)
            } else {
                rng.below(2 * span)
            };
            let time = clock - Duration::seconds(back as i64) - Duration::milliseconds(1);
            let there = place(&mut rng, at);
            let fix = random_fix(&mut rng, time, seq, there);
            now += Duration::seconds(rng.below(5) as i64);
            sent.push(fix);
            what = format!("late fix {fix:?} now {now}");
            (new.observe(fix, now), old.observe(fix, now))
        } else if kind < 85 && !sent.is_empty() {
            // A duplicate of something sent (maybe long ago), or the same
            // time with another sequence number.
            let n = sent.len() as u64;
            let i = if rng.chance(70) {
                n - 1 - rng.below(n.min(6))
            } else {
                rng.below(n)
            };
            let mut fix = sent[i as usize];
            if rng.chance(30) {
                fix.device_seq += 1_000_000;
                fix.lon += 0.0005;
            }
            what = format!("resend {fix:?} now {now}");
            (new.observe(fix, now), old.observe(fix, now))
        } else if kind < 95 {
            now = now.max(clock + Duration::seconds(rng.below(4000) as i64));
            what = format!("tick {now}");
            (Ok(new.tick(now)), Ok(old.tick(now)))
        } else if kind < 96 {
            let mut fix = random_fix(&mut rng, clock, seq, at);
            fix.lat = [f64::NAN, 91.0, f64::INFINITY][rng.below(3) as usize];
            what = format!("invalid fix {fix:?}");
            (new.observe(fix, now), old.observe(fix, now))
        } else {
            moved = !moved;
            let set = zones(moved);
            cov.rebinds += 1;
            what = format!("rebind moved={moved}");
            let (a, b) = (new.rebind(set.clone()), old.rebind(set));
            assert_eq!(a, b, "seed {seed} step {step}: {what}");
            (Ok(Vec::new()), Ok(Vec::new()))
        };
        assert_eq!(a, b, "seed {seed} step {step}: {what}");
        assert_eq!(new.stats(), old.stats(), "seed {seed} step {step}: {what}");
        assert_eq!(
            new.open_breaches(),
            old.open_breaches(),
            "seed {seed} step {step}: {what}"
        );
        cov.steps += 1;
        match a {
            Ok(out) => cov.count(&out),
            Err(_) => cov.errors += 1,
        }
    }
    let s = new.stats();
    cov.replays += s.replays;
    cov.too_late += s.too_late;
    cov.duplicates += s.duplicates;
}

/// Many seeded streams; the coverage check makes sure they exercise every
/// path the two implementations could disagree on.
#[test]
fn tracker_equals_reference_model_on_random_streams() {
    let mut cov = Coverage::default();
    for seed in 0..400u64 {
        run_case(
            seed.wrapping_mul(0x2545_F491_4F6C_DD1D),
            250,
            true,
            &mut cov,
        );
    }
    let c = &cov;
    assert!(c.transitions > 3_000, "{c:?}");
    assert!(c.confirmed > 500, "{c:?}");
    assert!(c.ended > 500, "{c:?}");
    assert!(c.crossings > 100, "{c:?}");
    assert!(c.late > 500, "{c:?}");
    assert!(c.deadline_confirmations > 100, "{c:?}");
    assert!(c.replays > 3_000, "{c:?}");
    assert!(c.too_late > 3_000, "{c:?}");
    assert!(c.duplicates > 500, "{c:?}");
    assert!(c.rebinds > 1_000, "{c:?}");
    assert!(c.errors > 500, "{c:?}");
}

/// Long streams with the default window (512 fixes, 6 h): the window fills
/// and the checkpoint advances in full batches.
#[test]
fn tracker_equals_reference_model_on_long_streams() {
    let mut cov = Coverage::default();
    for seed in 0..4u64 {
        run_case(seed.wrapping_add(1_000_003), 3_000, false, &mut cov);
    }
    assert!(cov.transitions > 200, "{cov:?}");
    assert!(cov.replays > 500, "{cov:?}");
}

/// A curfew deadline among fixes pruned but not yet stepped past, then a
/// zone change that moves home, then a late fix that replays from the
/// checkpoint: the checkpoint must judge that deadline under the zones in
/// force when the fixes were pruned, as pruning on every fix did.
#[test]
fn pruned_deadline_is_judged_under_the_zones_of_its_time() {
    let th = Arc::new(Thresholds {
        window_max_fixes: 2,
        ..Thresholds::default()
    });
    let hm = |h: u32| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
    let rules = SubjectRules {
        home: Some(ZoneId::from("home")),
        curfews: vec![Curfew {
            days: Vec::new(),
            start: hm(22),
            end: hm(6),
        }],
        ..SubjectRules::default()
    };
    let mut new = Tracker::new("s".into(), rules.clone(), zones(false), th.clone())
        .unwrap_or_else(|e| panic!("rules: {e}"));
    let mut old = RefTracker::new("s".into(), rules, zones(false), th)
        .unwrap_or_else(|e| panic!("rules: {e}"));
    // 22:00 in Shanghai is t0 + 2 h. At the old home's centre: inside the
    // old home, outside the moved one.
    let at = |minutes: i64, seq: u64| Fix {
        time: t0() + Duration::minutes(minutes),
        lat: HOME.1,
        lon: HOME.0,
        accuracy_m: 5.0,
        source: Source::Gnss,
        device_seq: seq,
    };
    let mut emitted = Vec::new();
    for (i, minutes) in [110, 125, 126, 127].into_iter().enumerate() {
        let fix = at(minutes, i as u64);
        let (a, b) = (new.observe(fix, fix.time), old.observe(fix, fix.time));
        assert_eq!(a, b, "fix at +{minutes} min");
        emitted.extend(a.unwrap_or_default());
    }
    let moved = zones(true);
    assert_eq!(new.rebind(moved.clone()), old.rebind(moved));
    let late = at(126, 10);
    let late = Fix {
        time: late.time + Duration::seconds(30),
        ..late
    };
    let now = late.time + Duration::minutes(10);
    let (a, b) = (new.observe(late, now), old.observe(late, now));
    assert_eq!(a, b, "late fix after the zone change");
    assert_eq!(new.stats(), old.stats());
    assert_eq!(new.stats().replays, 1, "the late fix was replayed");
    assert_eq!(new.open_breaches(), old.open_breaches());
    assert!(
        emitted.is_empty(),
        "at home under the old zones: {emitted:?}"
    );
}
