//! Subject handles: observing by handle is observing by id, handles survive
//! rule changes and go stale on removal (even when the slot is reused).

use std::sync::Arc;

use geoward_geofence::chrono::{DateTime, Duration, Utc};
use geoward_geofence::{
    Engine, Fix, ObserveError, Source, SubjectRules, Thresholds, Zone, ZoneId, ZoneKind, ZoneSet,
};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// Fix `i` of a walk that enters the exclusion circle at fix 5.
fn fix(i: i64) -> Fix {
    let lon = if i < 5 { 116.02 } else { 116.0 };
    Fix {
        time: t0() + Duration::seconds(60 * i),
        lat: 40.0,
        lon,
        accuracy_m: 5.0,
        source: Source::Gnss,
        device_seq: i as u64,
    }
}

fn engine() -> Engine {
    let (set, _) = ZoneSet::build(vec![Zone::circle(
        "x",
        ZoneKind::Exclusion,
        116.0,
        40.0,
        300.0,
    )]);
    Engine::new(Arc::new(set), Thresholds::default())
}

fn rules() -> SubjectRules {
    SubjectRules {
        exclusions: vec![ZoneId::from("x")],
        ..SubjectRules::default()
    }
}

#[test]
fn observing_by_handle_equals_observing_by_id() {
    let (mut by_id, mut by_handle) = (engine(), engine());
    for e in [&mut by_id, &mut by_handle] {
        for s in ["a", "b", "c"] {
            e.set_subject(s.into(), rules()).expect("rules");
        }
    }
    let h = by_handle.handle("b").expect("known");
    let mut emitted = 0;
    for i in 0..20 {
        let f = fix(i);
        let a = by_id.observe("b", f, f.time).expect("known");
        let b = by_handle.observe_handle(h, f, f.time).expect("known");
        assert_eq!(a, b, "fix {i}");
        emitted += a.len();
    }
    // Started and confirmed at least: the comparison saw transitions.
    assert!(emitted >= 2, "{emitted}");
    assert_eq!(
        by_handle.tracker("b").expect("known").stats(),
        by_id.tracker("b").expect("known").stats()
    );
}

#[test]
fn handles_survive_rule_changes_and_go_stale_on_removal() {
    let mut e = engine();
    e.set_subject("a".into(), rules()).expect("rules");
    let h = e.handle("a").expect("known");
    e.set_subject("a".into(), rules()).expect("rules");
    assert_eq!(e.handle("a"), Some(h));
    let f = fix(0);
    e.observe_handle(h, f, f.time).expect("still valid");
    assert!(e.remove_subject("a"));
    assert_eq!(e.handle("a"), None);
    assert_eq!(
        e.observe_handle(h, f, f.time).expect_err("stale"),
        ObserveError::UnknownSubject
    );
    // A new subject reuses the slot; the old handle must not reach it.
    e.set_subject("z".into(), rules()).expect("rules");
    let hz = e.handle("z").expect("known");
    assert_ne!(hz, h);
    assert_eq!(
        e.observe_handle(h, f, f.time).expect_err("stale"),
        ObserveError::UnknownSubject
    );
    e.observe_handle(hz, f, f.time).expect("valid");
    assert_eq!(e.len(), 1);
    assert_eq!(e.tracker("z").expect("known").stats().fixes, 1);
}
