//! Table tests of judging and tracking: each case feeds fixes and ticks to
//! one tracker and snapshots the transitions (`UPDATE_EXPECT=1` rewrites).

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, NaiveTime, Utc};
use expect_test::{Expect, expect};
use geo::{LineString, MultiPolygon, Polygon};
use geoward_geofence::{
    Curfew, Fix, LeaveGrant, LeavePermit, RuleKind, Shape, Source, SubjectRules, Thresholds,
    Tracker, Transition, TransitionKind, Zone, ZoneId, ZoneKind, ZoneSet,
};

/// County square 116.0–116.1 E, 39.9–40.0 N; exclusion circle of 200 m in
/// its middle; home circle of 100 m; a leave destination far east.
const HOME: (f64, f64) = (116.02, 39.92);
const EXCL: (f64, f64) = (116.05, 39.95);
const DEST: (f64, f64) = (117.5, 39.5);
/// Metres per degree of longitude at 39.95 N (about).
const M_PER_DEG_LON: f64 = 85_300.0;

fn zones() -> Arc<ZoneSet> {
    let square = Polygon::new(
        LineString::from(vec![
            (116.0, 39.9),
            (116.1, 39.9),
            (116.1, 40.0),
            (116.0, 40.0),
            (116.0, 39.9),
        ]),
        vec![],
    );
    let (set, report) = ZoneSet::build(vec![
        Zone::new(
            "county",
            ZoneKind::Permitted,
            Shape::Polygons(MultiPolygon(vec![square])),
        ),
        Zone::circle("victim", ZoneKind::Exclusion, EXCL.0, EXCL.1, 200.0),
        Zone::circle("home", ZoneKind::Home, HOME.0, HOME.1, 100.0),
        Zone::circle("dest", ZoneKind::Permitted, DEST.0, DEST.1, 5000.0),
    ]);
    assert!(report.is_clean());
    Arc::new(set)
}

fn rules() -> SubjectRules {
    SubjectRules {
        permitted: vec![ZoneId::from("county")],
        exclusions: vec![ZoneId::from("victim")],
        home: Some(ZoneId::from("home")),
        ..SubjectRules::default()
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

/// One step of a scenario.
enum Step {
    /// Fix at (time, lon, lat, accuracy, source), received at `now`.
    Fix(&'static str, f64, f64, f64, Source, &'static str),
    Tick(&'static str),
}

use Step::{Fix as F, Tick};

fn describe(out: &mut String, tr: &Transition) {
    let kind = match tr.kind {
        TransitionKind::BreachEnded { was_confirmed } => {
            format!("ended(confirmed={was_confirmed})")
        }
        k => k.as_str().to_owned(),
    };
    let rule = match &tr.rule {
        geoward_geofence::RuleRef::Exclusion(z) => format!("exclusion:{z}"),
        r => r.kind().as_str().to_owned(),
    };
    let late = if tr.late { " LATE" } else { "" };
    writeln!(
        out,
        "ep{} {rule} {kind} at {} (now {}){late} evidence={}",
        tr.episode,
        tr.event_time.format("%d %H:%M:%S"),
        tr.processed_at.format("%d %H:%M:%S"),
        tr.evidence.len()
    )
    .expect("write to string");
}

fn run(rules: SubjectRules, steps: &[Step]) -> String {
    run_with(zones(), rules, steps)
}

fn run_with(zones: Arc<ZoneSet>, rules: SubjectRules, steps: &[Step]) -> String {
    let mut tracker = Tracker::new("s1".into(), rules, zones, Arc::new(Thresholds::default()))
        .expect("valid rules");
    let mut out = String::new();
    for (seq, step) in steps.iter().enumerate() {
        let transitions = match *step {
            F(time, lon, lat, accuracy_m, source, now) => {
                let fix = Fix {
                    time: t(time),
                    lat,
                    lon,
                    accuracy_m,
                    source,
                    device_seq: seq as u64,
                };
                tracker.observe(fix, t(now)).expect("valid fix")
            }
            Tick(now) => tracker.tick(t(now)),
        };
        for tr in &transitions {
            describe(&mut out, tr);
        }
    }
    out
}

fn check(rules: SubjectRules, steps: &[Step], expect: Expect) {
    expect.assert_eq(&run(rules, steps));
}

/// Longitude `m` metres east of the county's east edge (negative: inside).
fn east_of_edge(m: f64) -> f64 {
    116.1 + m / M_PER_DEG_LON
}

const Y: f64 = 39.95;

#[test]
fn accuracy_circle_at_the_boundary_is_uncertain_not_a_breach() {
    use Source::Gnss;
    let (a, b) = (east_of_edge(30.0), east_of_edge(-30.0));
    check(
        rules(),
        &[
            // 30 m outside and inside with 50 m accuracy: uncertain, silent.
            F(
                "2024-03-04T10:00:00Z",
                a,
                Y,
                50.0,
                Gnss,
                "2024-03-04T10:00:01Z",
            ),
            F(
                "2024-03-04T10:01:00Z",
                b,
                Y,
                50.0,
                Gnss,
                "2024-03-04T10:01:01Z",
            ),
            F(
                "2024-03-04T10:02:00Z",
                a,
                Y,
                50.0,
                Gnss,
                "2024-03-04T10:02:01Z",
            ),
            F(
                "2024-03-04T10:03:00Z",
                a,
                Y,
                50.0,
                Gnss,
                "2024-03-04T10:03:01Z",
            ),
            F(
                "2024-03-04T10:04:00Z",
                a,
                Y,
                50.0,
                Gnss,
                "2024-03-04T10:04:01Z",
            ),
            // The same 30 m outside with 10 m accuracy: a real exit.
            F(
                "2024-03-04T10:05:00Z",
                a,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:05:01Z",
            ),
            F(
                "2024-03-04T10:06:00Z",
                a,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:06:01Z",
            ),
            F(
                "2024-03-04T10:07:00Z",
                a,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:07:01Z",
            ),
        ],
        expect![[r#"
            ep1 permitted breach_started at 04 10:05:00 (now 04 10:05:01) evidence=1
            ep1 permitted breach_confirmed at 04 10:07:00 (now 04 10:07:01) evidence=3
        "#]],
    );
}

#[test]
fn exclusion_confirms_faster_than_leaving_the_county() {
    use Source::Gnss;
    let out = east_of_edge(500.0);
    check(
        rules(),
        &[
            F(
                "2024-03-04T10:00:00Z",
                EXCL.0,
                EXCL.1,
                10.0,
                Gnss,
                "2024-03-04T10:00:01Z",
            ),
            F(
                "2024-03-04T10:00:30Z",
                EXCL.0,
                EXCL.1,
                10.0,
                Gnss,
                "2024-03-04T10:00:31Z",
            ),
            F(
                "2024-03-04T10:20:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:20:01Z",
            ),
            F(
                "2024-03-04T10:20:30Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:20:31Z",
            ),
            F(
                "2024-03-04T10:21:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:21:01Z",
            ),
            F(
                "2024-03-04T10:22:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:22:01Z",
            ),
        ],
        expect![[r#"
            ep1 exclusion:victim breach_started at 04 10:00:00 (now 04 10:00:01) evidence=1
            ep1 exclusion:victim breach_confirmed at 04 10:00:30 (now 04 10:00:31) evidence=2
            ep2 permitted breach_started at 04 10:20:00 (now 04 10:20:01) evidence=1
            ep2 permitted breach_confirmed at 04 10:22:00 (now 04 10:22:01) evidence=4
            ep1 exclusion:victim ended(confirmed=true) at 04 10:22:00 (now 04 10:22:01) evidence=4
        "#]],
    );
}

#[test]
fn curfew_deadline_confirms_at_the_tick_and_ends_on_return() {
    use Source::Gnss;
    let curfew = Curfew {
        days: vec![],
        start: NaiveTime::from_hms_opt(22, 0, 0).expect("time"),
        end: NaiveTime::from_hms_opt(6, 0, 0).expect("time"),
    };
    let r = SubjectRules {
        curfews: vec![curfew],
        ..rules()
    };
    // Asia/Shanghai is UTC+8 all year: 22:00 local = 14:00 UTC.
    check(
        r,
        &[
            F(
                "2024-03-04T13:50:00Z",
                116.03,
                39.93,
                10.0,
                Gnss,
                "2024-03-04T13:50:01Z",
            ),
            Tick("2024-03-04T13:59:59Z"),
            Tick("2024-03-04T14:00:00Z"),
            Tick("2024-03-04T14:01:00Z"),
            F(
                "2024-03-04T14:30:00Z",
                HOME.0,
                HOME.1,
                10.0,
                Gnss,
                "2024-03-04T14:30:01Z",
            ),
            F(
                "2024-03-04T14:31:00Z",
                HOME.0,
                HOME.1,
                10.0,
                Gnss,
                "2024-03-04T14:31:01Z",
            ),
            F(
                "2024-03-04T14:33:00Z",
                HOME.0,
                HOME.1,
                10.0,
                Gnss,
                "2024-03-04T14:33:01Z",
            ),
        ],
        expect![[r#"
            ep1 curfew breach_started at 04 14:00:00 (now 04 14:00:00) evidence=1
            ep1 curfew breach_confirmed at 04 14:00:00 (now 04 14:00:00) evidence=1
            ep1 curfew ended(confirmed=true) at 04 14:33:00 (now 04 14:33:01) evidence=3
        "#]],
    );
}

#[test]
fn curfew_window_runs_across_midnight_and_ends_in_the_morning() {
    use Source::Gnss;
    let curfew = Curfew {
        days: vec![chrono::Weekday::Mon],
        start: NaiveTime::from_hms_opt(22, 0, 0).expect("time"),
        end: NaiveTime::from_hms_opt(6, 0, 0).expect("time"),
    };
    let r = SubjectRules {
        curfews: vec![curfew],
        ..rules()
    };
    let away = (116.03, 39.93);
    check(
        r,
        &[
            // Monday 23:59 local at home, then out after midnight (Tuesday
            // 00:30 local = Monday 16:30 UTC): still Monday's window.
            F(
                "2024-03-04T15:59:00Z",
                HOME.0,
                HOME.1,
                10.0,
                Gnss,
                "2024-03-04T15:59:01Z",
            ),
            F(
                "2024-03-04T16:30:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-04T16:30:01Z",
            ),
            F(
                "2024-03-04T16:31:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-04T16:31:01Z",
            ),
            F(
                "2024-03-04T16:33:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-04T16:33:01Z",
            ),
            // 06:10 local: the window is over, the episode ends.
            F(
                "2024-03-04T22:10:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-04T22:10:01Z",
            ),
            // Tuesday night has no curfew (days = Monday only).
            F(
                "2024-03-05T15:00:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-05T15:00:01Z",
            ),
            F(
                "2024-03-05T15:01:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-05T15:01:01Z",
            ),
            F(
                "2024-03-05T15:03:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-05T15:03:01Z",
            ),
        ],
        expect![[r#"
            ep1 curfew breach_started at 04 16:30:00 (now 04 16:30:01) evidence=1
            ep1 curfew breach_confirmed at 04 16:33:00 (now 04 16:33:01) evidence=3
            ep1 curfew ended(confirmed=true) at 04 22:10:00 (now 04 22:10:01) evidence=0
        "#]],
    );
}

#[test]
fn curfew_follows_local_wall_time_across_a_dst_change() {
    use Source::Gnss;
    let curfew = Curfew {
        days: vec![],
        start: NaiveTime::from_hms_opt(22, 0, 0).expect("time"),
        end: NaiveTime::from_hms_opt(6, 0, 0).expect("time"),
    };
    let r = SubjectRules {
        curfews: vec![curfew],
        time_zone: chrono_tz::Europe::Berlin,
        ..rules()
    };
    let away = (116.03, 39.93);
    // 2024-03-31 Berlin moves to UTC+2 at 02:00. 03:30 UTC = 05:30 local
    // (in the window); 04:10 UTC = 06:10 local (out of it), which a fixed
    // UTC+1 offset would wrongly still count as curfew.
    check(
        r,
        &[
            F(
                "2024-03-31T03:30:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-31T03:30:01Z",
            ),
            F(
                "2024-03-31T03:31:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-31T03:31:01Z",
            ),
            F(
                "2024-03-31T03:33:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-31T03:33:01Z",
            ),
            F(
                "2024-03-31T04:10:00Z",
                away.0,
                away.1,
                10.0,
                Gnss,
                "2024-03-31T04:10:01Z",
            ),
        ],
        expect![[r#"
            ep1 curfew breach_started at 31 03:30:00 (now 31 03:30:01) evidence=1
            ep1 curfew breach_confirmed at 31 03:33:00 (now 31 03:33:01) evidence=3
            ep1 curfew ended(confirmed=true) at 31 04:10:00 (now 31 04:10:01) evidence=0
        "#]],
    );
}

#[test]
fn leave_adds_a_destination_and_ends_by_itself() {
    use Source::Gnss;
    let r = SubjectRules {
        leaves: vec![LeavePermit {
            from: t("2024-03-04T10:00:00Z"),
            until: t("2024-03-04T14:00:00Z"),
            grant: LeaveGrant::ExtraZone(ZoneId::from("dest")),
        }],
        ..rules()
    };
    check(
        r,
        &[
            // At the destination during the leave: nothing.
            F(
                "2024-03-04T11:00:00Z",
                DEST.0,
                DEST.1,
                10.0,
                Gnss,
                "2024-03-04T11:00:01Z",
            ),
            F(
                "2024-03-04T11:01:00Z",
                DEST.0,
                DEST.1,
                10.0,
                Gnss,
                "2024-03-04T11:01:01Z",
            ),
            F(
                "2024-03-04T13:50:00Z",
                DEST.0,
                DEST.1,
                10.0,
                Gnss,
                "2024-03-04T13:50:01Z",
            ),
            // The leave ends at 14:00 with the subject still away.
            Tick("2024-03-04T14:00:30Z"),
            F(
                "2024-03-04T16:00:00Z",
                116.05,
                39.91,
                10.0,
                Gnss,
                "2024-03-04T16:00:01Z",
            ),
            F(
                "2024-03-04T16:01:00Z",
                116.05,
                39.91,
                10.0,
                Gnss,
                "2024-03-04T16:01:01Z",
            ),
            F(
                "2024-03-04T16:03:00Z",
                116.05,
                39.91,
                10.0,
                Gnss,
                "2024-03-04T16:03:01Z",
            ),
        ],
        expect![[r#"
            ep1 permitted breach_started at 04 14:00:00 (now 04 14:00:30) evidence=1
            ep1 permitted breach_confirmed at 04 14:00:00 (now 04 14:00:30) evidence=1
            ep1 permitted ended(confirmed=true) at 04 16:03:00 (now 04 16:03:01) evidence=3
        "#]],
    );
}

#[test]
fn leave_suspending_a_rule_starts_and_ends_on_time() {
    use Source::Gnss;
    let r = SubjectRules {
        leaves: vec![LeavePermit {
            from: t("2024-03-04T10:00:00Z"),
            until: t("2024-03-04T12:00:00Z"),
            grant: LeaveGrant::Suspend(RuleKind::Permitted),
        }],
        ..rules()
    };
    let out = east_of_edge(2000.0);
    check(
        r,
        &[
            F(
                "2024-03-04T09:58:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T09:58:01Z",
            ),
            // Suspended from 10:00: the pending episode ends unconfirmed.
            F(
                "2024-03-04T10:00:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:00:01Z",
            ),
            F(
                "2024-03-04T11:00:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T11:00:01Z",
            ),
            F(
                "2024-03-04T11:59:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T11:59:01Z",
            ),
            // Back in force at 12:00 while still out: confirmed at the deadline.
            F(
                "2024-03-04T12:01:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T12:01:01Z",
            ),
        ],
        expect![[r#"
            ep1 permitted breach_started at 04 09:58:00 (now 04 09:58:01) evidence=1
            ep1 permitted ended(confirmed=false) at 04 10:00:00 (now 04 10:00:01) evidence=0
            ep2 permitted breach_started at 04 12:00:00 (now 04 12:01:01) evidence=1
            ep2 permitted breach_confirmed at 04 12:00:00 (now 04 12:01:01) evidence=1
        "#]],
    );
}

#[test]
fn late_batch_reveals_a_past_breach_once_and_duplicates_change_nothing() {
    use Source::Gnss;
    let out = east_of_edge(1000.0);
    let inside = (116.05, 39.91);
    let batch = [
        F(
            "2024-03-04T09:00:00Z",
            out,
            Y,
            10.0,
            Gnss,
            "2024-03-04T10:11:00Z",
        ),
        F(
            "2024-03-04T09:01:00Z",
            out,
            Y,
            10.0,
            Gnss,
            "2024-03-04T10:11:00Z",
        ),
        F(
            "2024-03-04T09:03:00Z",
            out,
            Y,
            10.0,
            Gnss,
            "2024-03-04T10:11:00Z",
        ),
        F(
            "2024-03-04T09:05:00Z",
            out,
            Y,
            10.0,
            Gnss,
            "2024-03-04T10:11:00Z",
        ),
    ];
    let mut steps = vec![
        F(
            "2024-03-04T10:00:00Z",
            inside.0,
            inside.1,
            10.0,
            Gnss,
            "2024-03-04T10:00:01Z",
        ),
        F(
            "2024-03-04T10:01:00Z",
            inside.0,
            inside.1,
            10.0,
            Gnss,
            "2024-03-04T10:01:01Z",
        ),
        F(
            "2024-03-04T10:03:00Z",
            inside.0,
            inside.1,
            10.0,
            Gnss,
            "2024-03-04T10:03:01Z",
        ),
        F(
            "2024-03-04T10:10:00Z",
            inside.0,
            inside.1,
            10.0,
            Gnss,
            "2024-03-04T10:10:01Z",
        ),
    ];
    steps.extend(batch);
    let text = {
        let mut tracker = Tracker::new(
            "s1".into(),
            rules(),
            zones(),
            Arc::new(Thresholds::default()),
        )
        .expect("valid rules");
        let mut out = String::new();
        // Sequence numbers must repeat for duplicates: feed the batch twice
        // with the same numbers.
        for round in 0..2 {
            for (seq, step) in steps.iter().enumerate() {
                let F(time, lon, lat, accuracy_m, source, now) = *step else {
                    continue;
                };
                let fix = Fix {
                    time: t(time),
                    lat,
                    lon,
                    accuracy_m,
                    source,
                    device_seq: seq as u64,
                };
                for tr in tracker.observe(fix, t(now)).expect("valid fix") {
                    describe(&mut out, &tr);
                }
            }
            writeln!(out, "-- round {round}: {:?}", tracker.stats()).expect("write");
        }
        out
    };
    expect![[r#"
        ep1 permitted breach_started at 04 09:00:00 (now 04 10:11:00) LATE evidence=1
        ep1 permitted breach_confirmed at 04 09:03:00 (now 04 10:11:00) LATE evidence=3
        ep1 permitted ended(confirmed=true) at 04 10:03:00 (now 04 10:11:00) LATE evidence=3
        -- round 0: TrackerStats { fixes: 8, duplicates: 0, too_late: 0, replays: 4 }
        -- round 1: TrackerStats { fixes: 8, duplicates: 8, too_late: 0, replays: 4 }
    "#]]
    .assert_eq(&text);
}

#[test]
fn jumps_and_low_confidence_fixes_never_confirm_alone() {
    use Source::{Cell, Gnss, Wifi};
    let inside = (116.05, 39.91);
    let far = east_of_edge(50_000.0);
    check(
        rules(),
        &[
            F(
                "2024-03-04T10:00:00Z",
                inside.0,
                inside.1,
                10.0,
                Gnss,
                "2024-03-04T10:00:01Z",
            ),
            // GNSS glitches 50 km away between good fixes: implausible jumps
            // (without the speed check each would start a pending breach).
            F(
                "2024-03-04T10:01:00Z",
                far,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:01:01Z",
            ),
            F(
                "2024-03-04T10:02:00Z",
                inside.0,
                inside.1,
                10.0,
                Gnss,
                "2024-03-04T10:02:01Z",
            ),
            F(
                "2024-03-04T10:03:00Z",
                far,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:03:01Z",
            ),
            F(
                "2024-03-04T10:04:00Z",
                inside.0,
                inside.1,
                10.0,
                Gnss,
                "2024-03-04T10:04:01Z",
            ),
            // Cell and Wi-Fi fixes far outside: never enough.
            F(
                "2024-03-04T10:10:00Z",
                far,
                Y,
                300.0,
                Cell,
                "2024-03-04T10:10:01Z",
            ),
            F(
                "2024-03-04T10:20:00Z",
                far,
                Y,
                300.0,
                Cell,
                "2024-03-04T10:20:01Z",
            ),
            F(
                "2024-03-04T10:30:00Z",
                far,
                Y,
                80.0,
                Wifi,
                "2024-03-04T10:30:01Z",
            ),
            F(
                "2024-03-04T10:40:00Z",
                far,
                Y,
                300.0,
                Cell,
                "2024-03-04T10:40:01Z",
            ),
        ],
        expect![[r#""#]],
    );
}

#[test]
fn low_confidence_fixes_keep_a_confirmed_breach_open() {
    use Source::{Cell, Gnss};
    let out = east_of_edge(3000.0);
    let inside = (116.09, 39.95);
    check(
        rules(),
        &[
            F(
                "2024-03-04T10:00:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:00:01Z",
            ),
            F(
                "2024-03-04T10:01:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:01:01Z",
            ),
            F(
                "2024-03-04T10:02:00Z",
                out,
                Y,
                10.0,
                Gnss,
                "2024-03-04T10:02:01Z",
            ),
            F(
                "2024-03-04T10:03:00Z",
                inside.0,
                inside.1,
                10.0,
                Gnss,
                "2024-03-04T10:03:01Z",
            ),
            F(
                "2024-03-04T10:04:00Z",
                out,
                Y,
                300.0,
                Cell,
                "2024-03-04T10:04:01Z",
            ),
            F(
                "2024-03-04T10:05:00Z",
                inside.0,
                inside.1,
                10.0,
                Gnss,
                "2024-03-04T10:05:01Z",
            ),
            F(
                "2024-03-04T10:06:00Z",
                inside.0,
                inside.1,
                10.0,
                Gnss,
                "2024-03-04T10:06:01Z",
            ),
            F(
                "2024-03-04T10:07:00Z",
                inside.0,
                inside.1,
                10.0,
                Gnss,
                "2024-03-04T10:07:01Z",
            ),
        ],
        expect![[r#"
            ep1 permitted breach_started at 04 10:00:00 (now 04 10:00:01) evidence=1
            ep1 permitted breach_confirmed at 04 10:02:00 (now 04 10:02:01) evidence=3
            ep1 permitted ended(confirmed=true) at 04 10:07:00 (now 04 10:07:01) evidence=3
        "#]],
    );
}

#[test]
fn sparse_fixes_across_a_small_exclusion_zone_are_a_possible_crossing() {
    use Source::Gnss;
    let west = EXCL.0 - 1000.0 / M_PER_DEG_LON;
    let east = EXCL.0 + 1000.0 / M_PER_DEG_LON;
    check(
        rules(),
        &[
            F(
                "2024-03-04T10:00:00Z",
                west,
                EXCL.1,
                10.0,
                Gnss,
                "2024-03-04T10:00:01Z",
            ),
            // Five minutes later on the other side: the line crosses the zone.
            F(
                "2024-03-04T10:05:00Z",
                east,
                EXCL.1,
                10.0,
                Gnss,
                "2024-03-04T10:05:01Z",
            ),
            // Back west but passing north of it: no crossing.
            F(
                "2024-03-04T10:10:00Z",
                west,
                EXCL.1 + 0.01,
                10.0,
                Gnss,
                "2024-03-04T10:10:01Z",
            ),
        ],
        expect![[r#"
            ep1 exclusion:victim possible_crossing at 04 10:05:00 (now 04 10:05:01) evidence=2
        "#]],
    );
}

#[test]
fn late_fixes_are_judged_against_the_zone_version_valid_at_fix_time() {
    use Source::Gnss;
    let moved = (116.08, 39.98);
    let mut v1 = Zone::circle("victim", ZoneKind::Exclusion, EXCL.0, EXCL.1, 200.0);
    v1.valid_until = Some(t("2024-03-04T12:00:00Z"));
    let mut v2 = Zone::circle("victim", ZoneKind::Exclusion, moved.0, moved.1, 200.0);
    v2.version = 2;
    v2.valid_from = Some(t("2024-03-04T12:00:00Z"));
    let (set, report) = ZoneSet::build(vec![v1, v2]);
    assert!(report.is_clean());
    let r = SubjectRules {
        exclusions: vec![ZoneId::from("victim")],
        ..SubjectRules::default()
    };
    check_with(
        Arc::new(set),
        r,
        &[
            // Live at the old place after the zone moved: compliant.
            F(
                "2024-03-04T12:30:00Z",
                EXCL.0,
                EXCL.1,
                10.0,
                Gnss,
                "2024-03-04T12:30:01Z",
            ),
            F(
                "2024-03-04T12:31:00Z",
                EXCL.0,
                EXCL.1,
                10.0,
                Gnss,
                "2024-03-04T12:31:01Z",
            ),
            // Uploaded late: there while the old version was valid.
            F(
                "2024-03-04T11:00:00Z",
                EXCL.0,
                EXCL.1,
                10.0,
                Gnss,
                "2024-03-04T13:00:00Z",
            ),
            F(
                "2024-03-04T11:00:40Z",
                EXCL.0,
                EXCL.1,
                10.0,
                Gnss,
                "2024-03-04T13:00:00Z",
            ),
        ],
        expect![[r#"
            ep1 exclusion:victim breach_started at 04 11:00:00 (now 04 13:00:00) LATE evidence=1
            ep1 exclusion:victim breach_confirmed at 04 11:00:40 (now 04 13:00:00) LATE evidence=2
        "#]],
    );
}

fn check_with(zones: Arc<ZoneSet>, rules: SubjectRules, steps: &[Step], expect: Expect) {
    expect.assert_eq(&run_with(zones, rules, steps));
}
