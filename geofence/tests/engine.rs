//! The engine over several subjects: errors, zone replacement, ticks.

use std::sync::Arc;

use geoward_geofence::chrono::{DateTime, Utc};
use geoward_geofence::{
    Engine, Fix, ObserveError, RulesError, Source, SubjectRules, Thresholds, TransitionKind, Zone,
    ZoneId, ZoneKind, ZoneSet,
};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn fix(time: &str, lon: f64, lat: f64, seq: u64) -> Fix {
    Fix {
        time: t(time),
        lat,
        lon,
        accuracy_m: 5.0,
        source: Source::Gnss,
        device_seq: seq,
    }
}

#[test]
fn errors_have_reasons_and_new_zones_apply_to_new_fixes() {
    let (set, _) = ZoneSet::build(vec![Zone::circle(
        "a",
        ZoneKind::Exclusion,
        116.0,
        40.0,
        300.0,
    )]);
    let mut engine = Engine::new(Arc::new(set), Thresholds::default());
    let rules = |ids: &[&str]| SubjectRules {
        exclusions: ids.iter().map(|s| ZoneId::from(*s)).collect(),
        ..SubjectRules::default()
    };
    let err = engine
        .set_subject("s".into(), rules(&["nope"]))
        .expect_err("unknown zone");
    assert_eq!(err.reason(), "unknown_zone");
    engine
        .set_subject("s".into(), rules(&["a"]))
        .expect("rules");
    let err = engine
        .observe(
            "x",
            fix("2024-01-01T00:00:00Z", 116.0, 40.0, 1),
            t("2024-01-01T00:00:01Z"),
        )
        .expect_err("unknown subject");
    assert_eq!(err, ObserveError::UnknownSubject);
    let err = engine
        .observe(
            "s",
            fix("2024-01-01T00:00:00Z", 116.0, 95.0, 1),
            t("2024-01-01T00:00:01Z"),
        )
        .expect_err("bad latitude");
    assert_eq!(err.reason(), "invalid_position");

    // Zone "a" moves onto the subject's position: from then on it counts.
    let (moved, _) = ZoneSet::build(vec![Zone::circle(
        "a",
        ZoneKind::Exclusion,
        116.1,
        40.0,
        300.0,
    )]);
    let (lon, lat) = (116.1, 40.0);
    let mut kinds = Vec::new();
    for (i, time) in ["2024-01-01T00:00:00Z", "2024-01-01T00:00:40Z"]
        .iter()
        .enumerate()
    {
        kinds.extend(
            engine
                .observe("s", fix(time, lon, lat, i as u64), t(time))
                .expect("fix"),
        );
    }
    assert!(kinds.is_empty(), "{kinds:?}");
    assert!(engine.replace_zones(Arc::new(moved)).is_empty());
    for (i, time) in ["2024-01-01T00:01:20Z", "2024-01-01T00:02:00Z"]
        .iter()
        .enumerate()
    {
        kinds.extend(
            engine
                .observe("s", fix(time, lon, lat, 10 + i as u64), t(time))
                .expect("fix"),
        );
    }
    let kinds: Vec<TransitionKind> = kinds.into_iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [
            TransitionKind::BreachStarted,
            TransitionKind::BreachConfirmed
        ]
    );

    // A set without zone "a" is refused for this subject.
    let (empty, _) = ZoneSet::build(vec![]);
    let failed = engine.replace_zones(Arc::new(empty));
    assert_eq!(
        failed,
        vec![("s".to_owned(), RulesError::UnknownZone(ZoneId::from("a")))]
    );
}
