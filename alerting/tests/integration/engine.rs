//! Scenario tests of the incident engine: timers at their exact deadlines,
//! one incident per episode, late data, escalation, abscondment, devices,
//! officer actions.

use crate::support::*;
use geoward_alerting::incident::{Condition, IncidentKind, IncidentState, TimelineEvent};
use geoward_alerting::signal::{BreachPhase, DeviceEventKind, DeviceKind, Position, RuleKind};
use geoward_alerting::{
    ActionError, Effect, EngineState, IncidentEngine, IncidentId, Policy, Timestamp,
};

/// Lost contact deadline under normal supervision: 10 × 60 s.
const LOST: i64 = 10 * MIN;

fn t(ms: i64) -> Timestamp {
    Timestamp(T0 + ms)
}

fn only_incident(e: &IncidentEngine, kind: IncidentKind) -> IncidentId {
    let ids: Vec<_> = e
        .incidents()
        .filter(|i| i.header.episode_kind == kind)
        .map(|i| i.header.id.clone())
        .collect();
    assert_eq!(ids.len(), 1, "expected one {kind:?} incident, got {ids:?}");
    ids[0].clone()
}

#[test]
fn lost_contact_opens_exactly_at_the_deadline_on_a_tick_and_clears_on_contact() {
    let mut e = engine();
    // normal supervision: 10 × 60 s expected interval.
    assert!(e.tick(t(LOST - 1)).is_empty());
    let fx = e.tick(t(LOST));
    let open = opened(&fx, IncidentKind::LostContact);
    assert_eq!(open.len(), 1, "{:?}", codes(&fx));
    assert_eq!(open[0].header.opened_at, t(LOST));
    assert_eq!(open[0].header.detected_at, t(LOST));
    // jo1 has two duty targets.
    assert_eq!(notifications(&fx).len(), 2);
    assert!(
        fx.iter()
            .any(|f| matches!(f, Effect::Audit(a) if a.action == "incident_opened"))
    );
    // Further ticks do not duplicate it.
    assert!(opened(&e.tick(t(LOST + MIN)), IncidentKind::LostContact).is_empty());

    let fx = e
        .apply(
            &seen(DeviceKind::Bracelet, T0 + LOST + 2 * MIN, None, true),
            t(LOST + 2 * MIN),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["lost_contact:cleared"]);
    let id = only_incident(&e, IncidentKind::LostContact);
    let h = &e.incident(&id).unwrap().header;
    assert_eq!(h.state(), IncidentState::Cleared);
    // High severity: cleared is not handled until acknowledged and resolved.
    assert!(!h.handled());
    e.acknowledge(&id, &"o1".into(), t(LOST + 3 * MIN)).unwrap();
    e.resolve(&id, &"o1".into(), "device was in a lift", t(LOST + 4 * MIN))
        .unwrap();
    assert!(e.incident(&id).unwrap().header.handled());
}

#[test]
fn a_late_tick_opens_lost_contact_at_the_deadline_not_at_the_tick() {
    let mut e = engine();
    let fx = e.tick(t(LOST + 7 * MIN));
    let open = opened(&fx, IncidentKind::LostContact);
    assert_eq!(open[0].header.opened_at, t(LOST));
}

#[test]
fn a_message_after_a_silent_gap_without_ticks_still_records_the_lost_contact() {
    let mut e = engine();
    let fx = e
        .apply(
            &seen(DeviceKind::Bracelet, T0 + LOST + 2 * MIN, None, true),
            t(LOST + 2 * MIN),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["lost_contact:opened", "lost_contact:cleared"]);
}

#[test]
fn one_incident_per_exit_episode_with_evidence_on_its_timeline() {
    let mut e = engine();
    let mut all = Vec::new();
    for (phase, at) in [
        (BreachPhase::Confirmed, 10_000),
        (BreachPhase::Started, 20_000),
        (BreachPhase::Confirmed, 30_000),
    ] {
        let fx = e
            .apply(
                &breach("home", RuleKind::PermittedArea, phase, T0 + at, false),
                t(at),
            )
            .unwrap();
        all.extend(fx);
    }
    assert_eq!(opened(&all, IncidentKind::ZoneExit).len(), 1);
    let id = only_incident(&e, IncidentKind::ZoneExit);
    assert_eq!(e.incident(&id).unwrap().timeline.len(), 3);
    assert_eq!(id.as_str(), format!("s1:zone_exit:{}", T0 + 10_000));

    let fx = e
        .apply(
            &breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Ended,
                T0 + 40_000,
                false,
            ),
            t(40_000),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["zone_exit:cleared"]);
    let h = &e.incident(&id).unwrap().header;
    assert_eq!(h.condition, Condition::Cleared { at: t(40_000) });

    // A new exit is a new episode.
    let fx = e
        .apply(
            &breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Confirmed,
                T0 + 50_000,
                false,
            ),
            t(50_000),
        )
        .unwrap();
    assert_eq!(opened(&fx, IncidentKind::ZoneExit).len(), 1);
    assert_eq!(
        e.incidents()
            .filter(|i| i.header.episode_kind == IncidentKind::ZoneExit)
            .count(),
        2
    );
}

#[test]
fn two_rules_of_one_kind_share_the_episode_until_both_end() {
    let mut e = engine();
    let ex = RuleKind::ExclusionZone;
    e.apply(
        &breach("school", ex, BreachPhase::Confirmed, T0 + 1_000, false),
        t(1_000),
    )
    .unwrap();
    let fx = e
        .apply(
            &breach("bar", ex, BreachPhase::Confirmed, T0 + 2_000, false),
            t(2_000),
        )
        .unwrap();
    assert!(opened(&fx, IncidentKind::ExclusionEntry).is_empty());
    let fx = e
        .apply(
            &breach("school", ex, BreachPhase::Ended, T0 + 3_000, false),
            t(3_000),
        )
        .unwrap();
    assert!(codes(&fx).is_empty(), "{:?}", codes(&fx));
    let fx = e
        .apply(
            &breach("bar", ex, BreachPhase::Ended, T0 + 4_000, false),
            t(4_000),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["exclusion_entry:cleared"]);
}

#[test]
fn late_data_opens_an_incident_in_the_past_marked_late() {
    let mut e = engine();
    let now = 2 * MIN;
    // Keep the subject in contact so lost contact stays out of the way.
    e.apply(&seen(DeviceKind::Bracelet, T0 + now, None, true), t(now))
        .unwrap();
    let then = now - 90 * MIN;
    let fx = e
        .apply(
            &breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Confirmed,
                T0 + then,
                true,
            ),
            t(now),
        )
        .unwrap();
    let open = opened(&fx, IncidentKind::ZoneExit);
    assert_eq!(open.len(), 1);
    assert!(open[0].header.late);
    assert_eq!(open[0].header.opened_at, t(then));
    let fx = e
        .apply(
            &breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Ended,
                T0 + then + 10 * MIN,
                true,
            ),
            t(now),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["zone_exit:cleared"]);
}

#[test]
fn out_of_order_end_then_confirm_yields_one_past_cleared_incident() {
    let mut e = engine();
    let now = MIN;
    let pa = RuleKind::PermittedArea;
    let fx = e
        .apply(
            &breach("home", pa, BreachPhase::Ended, T0 - 10 * MIN, true),
            t(now),
        )
        .unwrap();
    assert!(fx.is_empty());
    let fx = e
        .apply(
            &breach("home", pa, BreachPhase::Confirmed, T0 - 30 * MIN, true),
            t(now),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["zone_exit:opened", "zone_exit:cleared"]);
    let id = only_incident(&e, IncidentKind::ZoneExit);
    let h = &e.incident(&id).unwrap().header;
    assert!(h.late);
    assert_eq!(h.opened_at, Timestamp(T0 - 30 * MIN));
    assert_eq!(
        h.condition,
        Condition::Cleared {
            at: Timestamp(T0 - 10 * MIN)
        }
    );
    // A further stale confirmation of the same past episode attaches to it.
    let fx = e
        .apply(
            &breach("home", pa, BreachPhase::Confirmed, T0 - 20 * MIN, true),
            t(now),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["zone_exit:evidence"]);
    only_incident(&e, IncidentKind::ZoneExit);
    // And a stale end never clears a newer episode.
    e.apply(
        &breach("home", pa, BreachPhase::Confirmed, T0 + now, false),
        t(now),
    )
    .unwrap();
    let fx = e
        .apply(
            &breach("home", pa, BreachPhase::Ended, T0 - 5 * MIN, true),
            t(now),
        )
        .unwrap();
    assert!(codes(&fx).is_empty());
    assert!(
        e.active_incident(&"s1".into(), IncidentKind::ZoneExit)
            .is_some()
    );
}

#[test]
fn unacknowledged_exit_escalates_up_the_chain_then_becomes_abscondment() {
    let mut e = engine();
    let keep_alive = |e: &mut IncidentEngine, at: i64| {
        let p = pos(30.5, 120.5, 12.0);
        e.apply(&seen(DeviceKind::Bracelet, T0 + at, Some(p), true), t(at))
            .unwrap()
    };
    keep_alive(&mut e, 0);
    e.apply(
        &breach(
            "home",
            RuleKind::PermittedArea,
            BreachPhase::Confirmed,
            T0,
            false,
        ),
        t(0),
    )
    .unwrap();
    let id = only_incident(&e, IncidentKind::ZoneExit);
    let mut escalations = Vec::new();
    let mut police = Vec::new();
    let mut at = 0;
    while at < 61 * MIN {
        at += 30_000;
        let mut fx = keep_alive(&mut e, at);
        fx.extend(e.tick(t(at)));
        for c in changes(&fx) {
            if let TimelineEvent::Escalated { level, office } = &c.entry.event {
                escalations.push((c.entry.at, *level, office.to_string()));
            }
        }
        police.extend(
            notifications(&fx)
                .into_iter()
                .filter(|n| n.payload.police.is_some())
                .cloned(),
        );
    }
    // High, normal: 15 min per step; then critical after promotion at 60 min.
    assert_eq!(
        escalations,
        [
            (t(15 * MIN), 1, "county".to_owned()),
            (t(30 * MIN), 2, "city".to_owned())
        ]
    );
    let h = &e.incident(&id).unwrap().header;
    assert_eq!(h.kind, IncidentKind::Abscondment);
    assert_eq!(h.episode_kind, IncidentKind::ZoneExit);
    assert_eq!(police.len(), 1, "police liaison told once");
    let brief = police[0].payload.police.clone().unwrap();
    assert_eq!(police[0].target.as_str(), "county-police");
    // Promoted by the timers run before the 60 min message was applied.
    assert_eq!(brief.last_seen_at, Some(t(60 * MIN - 30_000)));
    assert_eq!(
        brief.search_radius_m,
        Policy::default().search_radius_m(brief.elapsed_ms, 12.0)
    );
    // Coming back clears it; it still needs an officer.
    let fx = e
        .apply(
            &breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Ended,
                T0 + at,
                false,
            ),
            t(at),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["abscondment:cleared"]);
    assert!(!e.incident(&id).unwrap().header.handled());
}

#[test]
fn acknowledgement_stops_escalation_and_exit_promotion() {
    let mut e = engine();
    e.apply(
        &breach(
            "home",
            RuleKind::PermittedArea,
            BreachPhase::Confirmed,
            T0,
            false,
        ),
        t(0),
    )
    .unwrap();
    let id = only_incident(&e, IncidentKind::ZoneExit);
    let fx = e.acknowledge(&id, &"o1".into(), t(14 * MIN)).unwrap();
    assert_eq!(
        codes(&fx).last().map(String::as_str),
        Some("zone_exit:acknowledged")
    );
    let mut at = 14 * MIN;
    while at < 3 * 60 * MIN {
        at += MIN;
        e.apply(&seen(DeviceKind::Bracelet, T0 + at, None, true), t(at))
            .unwrap();
        e.tick(t(at));
    }
    let h = &e.incident(&id).unwrap().header;
    assert_eq!(h.escalation_level, 0);
    assert_eq!(h.kind, IncidentKind::ZoneExit);
}

#[test]
fn an_action_after_a_missed_deadline_records_the_escalation_first() {
    let mut e = engine();
    e.apply(
        &breach(
            "home",
            RuleKind::PermittedArea,
            BreachPhase::Confirmed,
            T0,
            false,
        ),
        t(0),
    )
    .unwrap();
    let id = only_incident(&e, IncidentKind::ZoneExit);
    let fx = e.acknowledge(&id, &"o1".into(), t(16 * MIN)).unwrap();
    let c = codes(&fx);
    assert!(c.contains(&"zone_exit:escalated".to_owned()), "{c:?}");
    assert_eq!(c.last().map(String::as_str), Some("zone_exit:acknowledged"));
}

#[test]
fn lost_contact_becomes_abscondment_even_when_acknowledged() {
    let mut e = engine();
    e.tick(t(LOST));
    let id = only_incident(&e, IncidentKind::LostContact);
    e.acknowledge(&id, &"o1".into(), t(LOST + MIN)).unwrap();
    // normal: 120 min after the incident opened at its deadline.
    assert!(e.tick(t(LOST + 120 * MIN - 1)).is_empty());
    let fx = e.tick(t(LOST + 120 * MIN));
    assert_eq!(
        codes(&fx),
        ["abscondment:promoted", "abscondment:police_notified"]
    );
    let brief = notifications(&fx)
        .into_iter()
        .find_map(|n| n.payload.police.clone())
        .unwrap();
    // Never seen: no position, the widest search.
    assert_eq!(brief.last_position, None);
    assert_eq!(brief.search_radius_m, Policy::default().search_radius_max_m);
}

#[test]
fn bracelet_phone_separation_needs_distance_beyond_accuracy_for_the_sustain_time() {
    let mut e = engine();
    let near = pos(30.0, 120.0, 20.0);
    let far = pos(30.01, 120.0, 20.0); // ~1.1 km north
    let wide = pos(30.01, 120.0, 2_000.0); // far but too inaccurate to tell
    let mut all = Vec::new();
    let mut at = 0;
    for (b, p) in [(near, wide), (near, wide), (near, far), (near, far)] {
        at += MIN;
        all.extend(
            e.apply(&seen(DeviceKind::Bracelet, T0 + at, Some(b), true), t(at))
                .unwrap(),
        );
        all.extend(
            e.apply(&seen(DeviceKind::Phone, T0 + at, Some(p), false), t(at))
                .unwrap(),
        );
    }
    assert!(opened(&all, IncidentKind::Separation).is_empty());
    for _ in 0..5 {
        at += MIN;
        all.extend(
            e.apply(
                &seen(DeviceKind::Bracelet, T0 + at, Some(near), true),
                t(at),
            )
            .unwrap(),
        );
        all.extend(
            e.apply(&seen(DeviceKind::Phone, T0 + at, Some(far), false), t(at))
                .unwrap(),
        );
    }
    let open = opened(&all, IncidentKind::Separation);
    assert_eq!(open.len(), 1);
    // Apart since the first far pair at 3 min, sustained 5 min.
    assert_eq!(open[0].header.opened_at, t(3 * MIN));
    at += MIN;
    let fx = e
        .apply(&seen(DeviceKind::Phone, T0 + at, Some(near), false), t(at))
        .unwrap();
    assert_eq!(codes(&fx), ["separation:cleared"]);
}

/// Bracelet fixes each minute arriving on time, phone fixes of the same
/// minutes arriving `phone_lag(minute)` minutes late (independent
/// connections), in arrival order; what the engine emitted.
fn paired_minutes(
    minutes: i64,
    bracelet: impl Fn(i64) -> Position,
    phone: impl Fn(i64) -> Position,
    phone_lag: impl Fn(i64) -> i64,
) -> Vec<Effect> {
    let mut arrivals: Vec<(i64, u8, i64)> = (0..minutes)
        .flat_map(|m| [(m, 0, m), (m + phone_lag(m), 1, m)])
        .collect();
    arrivals.sort();
    let mut e = engine();
    let mut all = Vec::new();
    for (arrive, device, m) in arrivals {
        let (kind, p) = match device {
            0 => (DeviceKind::Bracelet, bracelet(m)),
            _ => (DeviceKind::Phone, phone(m)),
        };
        let signal = seen(kind, T0 + m * MIN, Some(p), true);
        all.extend(e.apply(&signal, t(arrive * MIN)).unwrap());
    }
    all
}

/// The flake CI caught: at home, two phone GPS outliers six minutes apart,
/// and the phone's messages running three minutes behind in between. Only
/// the latest positions compared, every comparison in between was skipped
/// and the two outliers made one "sustained" separation.
#[test]
fn outliers_minutes_apart_with_a_lagging_phone_are_not_a_separation() {
    let home = |m: i64| pos(30.0 + (m % 3) as f64 * 1e-5, 120.0, 10.0);
    let phone = |m: i64| match m {
        1 | 7 => pos(30.0027, 120.0, 5.0), // 300 m off
        _ => home(m + 1),
    };
    let lag = |m: i64| match m {
        0 | 1 => 0,
        2..=6 => 3,
        _ => 2,
    };
    let all = paired_minutes(12, home, phone, lag);
    assert!(opened(&all, IncidentKind::Separation).is_empty());
}

#[test]
fn a_real_separation_opens_from_its_first_apart_pair_even_with_a_lagging_phone() {
    let home = pos(30.0, 120.0, 10.0);
    let away = pos(30.01, 120.0, 10.0); // ~1.1 km north
    let bracelet = |m: i64| if m >= 3 { away } else { home };
    let all = paired_minutes(12, bracelet, |_| home, |_| 3);
    let open = opened(&all, IncidentKind::Separation);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].header.opened_at, t(3 * MIN));
}

#[test]
fn no_fix_while_heartbeating_opens_and_a_fix_clears_it() {
    let mut e = engine();
    let mut at = 0;
    let mut all = Vec::new();
    while at < 61 * MIN {
        at += MIN;
        all.extend(
            e.apply(&seen(DeviceKind::Bracelet, T0 + at, None, false), t(at))
                .unwrap(),
        );
    }
    let open = opened(&all, IncidentKind::NoFix);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].header.opened_at, t(60 * MIN));
    let fx = e
        .apply(
            &seen(
                DeviceKind::Bracelet,
                T0 + at,
                Some(pos(30.0, 120.0, 5.0)),
                true,
            ),
            t(at),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["no_fix:cleared"]);
}

#[test]
fn tamper_power_and_battery_episodes() {
    let mut e = engine();
    let fx = e
        .apply(&event(DeviceEventKind::StrapOpened, T0 + 1_000), t(1_000))
        .unwrap();
    assert_eq!(codes(&fx), ["tamper:opened"]);
    let fx = e
        .apply(&event(DeviceEventKind::CaseOpened, T0 + 2_000), t(2_000))
        .unwrap();
    assert_eq!(codes(&fx), ["tamper:evidence"]);
    let fx = e
        .apply(&event(DeviceEventKind::StrapClosed, T0 + 3_000), t(3_000))
        .unwrap();
    assert!(codes(&fx).is_empty());
    let fx = e
        .apply(&event(DeviceEventKind::CaseClosed, T0 + 4_000), t(4_000))
        .unwrap();
    assert_eq!(codes(&fx), ["tamper:cleared"]);
    // A late "strap opened" from before the close opens nothing.
    let fx = e
        .apply(&event(DeviceEventKind::StrapOpened, T0 + 2_500), t(5_000))
        .unwrap();
    assert!(codes(&fx).is_empty());

    let fx = e
        .apply(&event(DeviceEventKind::PowerOff, T0 + 6_000), t(6_000))
        .unwrap();
    assert_eq!(codes(&fx), ["power_off:opened"]);
    let fx = e
        .apply(
            &seen(DeviceKind::Bracelet, T0 + 7_000, None, true),
            t(7_000),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["power_off:cleared"]);

    let mut low = seen(DeviceKind::Bracelet, T0 + 8_000, None, true);
    if let geoward_alerting::SignalBody::DeviceSeen { battery_pct, .. } = &mut low.body {
        *battery_pct = Some(10);
    }
    assert_eq!(
        codes(&e.apply(&low, t(8_000)).unwrap()),
        ["low_battery:opened"]
    );
    // 20 % is inside the hysteresis band: still low.
    let mut mid = low.clone();
    if let geoward_alerting::SignalBody::DeviceSeen {
        battery_pct, at, ..
    } = &mut mid.body
    {
        *battery_pct = Some(20);
        *at = t(9_000);
    }
    assert!(codes(&e.apply(&mid, t(9_000)).unwrap()).is_empty());
    let mut ok = low.clone();
    if let geoward_alerting::SignalBody::DeviceSeen {
        battery_pct, at, ..
    } = &mut ok.body
    {
        *battery_pct = Some(80);
        *at = t(10_000);
    }
    assert_eq!(
        codes(&e.apply(&ok, t(10_000)).unwrap()),
        ["low_battery:cleared"]
    );
    // Low severity: handled once cleared.
    let id = only_incident(&e, IncidentKind::LowBattery);
    assert!(e.incident(&id).unwrap().header.handled());
}

#[test]
fn officer_action_rules() {
    let mut e = engine();
    e.apply(
        &breach(
            "home",
            RuleKind::PermittedArea,
            BreachPhase::Confirmed,
            T0,
            false,
        ),
        t(0),
    )
    .unwrap();
    let id = only_incident(&e, IncidentKind::ZoneExit);
    let o = "o1".into();
    let err = |r: Result<Vec<Effect>, ActionError>| r.unwrap_err().reason();
    assert_eq!(
        err(e.resolve(&id, &o, "done", t(1_000))),
        "not_acknowledged"
    );
    assert_eq!(err(e.add_note(&id, &o, "   ", t(1_000))), "empty_note");
    assert_eq!(
        err(e.add_note(&id, &o, &"x".repeat(4001), t(1_000))),
        "note_too_long"
    );
    assert_eq!(
        err(e.acknowledge(&"nope".into(), &o, t(1_000))),
        "unknown_incident"
    );
    assert_eq!(
        err(e.reassign(&id, &o, &"mars".into(), "x", t(1_000))),
        "unknown_office"
    );
    assert_eq!(
        err(e.reassign(&id, &o, &"jo1".into(), "x", t(1_000))),
        "same_office"
    );

    let fx = e
        .reassign(&id, &o, &"jo2".into(), "subject moved", t(2_000))
        .unwrap();
    let n = notifications(&fx);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].target.as_str(), "jo2-mqtt");
    assert!(fx.iter().any(
        |f| matches!(f, Effect::Audit(a) if a.actor == "officer:o1" && a.action == "reassigned")
    ));
    // Escalation restarts at the new office.
    let fx = e.tick(t(2_000 + 15 * MIN));
    let exit_codes: Vec<_> = codes(&fx)
        .into_iter()
        .filter(|c| c.starts_with("zone_exit"))
        .collect();
    assert_eq!(exit_codes, ["zone_exit:escalated"]);
    assert_eq!(
        e.incident(&id).unwrap().header.escalated_to.as_str(),
        "county"
    );

    e.acknowledge(&id, &o, t(20 * MIN)).unwrap();
    assert_eq!(
        err(e.acknowledge(&id, &o, t(20 * MIN))),
        "already_acknowledged"
    );
    e.add_note(&id, &o, "phoned, on the way back", t(21 * MIN))
        .unwrap();
    e.resolve(&id, &o, "returned", t(22 * MIN)).unwrap();
    assert_eq!(
        err(e.resolve(&id, &o, "again", t(23 * MIN))),
        "already_resolved"
    );
    assert_eq!(
        e.incident(&id).unwrap().header.state(),
        IncidentState::Resolved
    );
    // Still the active episode: more evidence attaches, no new incident.
    let fx = e
        .apply(
            &breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Confirmed,
                T0 + 24 * MIN,
                false,
            ),
            t(24 * MIN),
        )
        .unwrap();
    assert_eq!(codes(&fx), ["zone_exit:evidence"]);
}

#[test]
fn invalid_input_is_a_typed_error() {
    let mut e = engine();
    let bad = seen(
        DeviceKind::Bracelet,
        T0,
        Some(pos(f64::NAN, 0.0, 1.0)),
        true,
    );
    assert_eq!(
        e.apply(&bad, t(0)).unwrap_err().reason(),
        "invalid_position"
    );
    let mut other = seen(DeviceKind::Bracelet, T0, None, true);
    other.subject = "ghost".into();
    assert_eq!(
        e.apply(&other, t(0)).unwrap_err().reason(),
        "unknown_subject"
    );
}

#[test]
fn a_snapshot_restores_an_engine_that_behaves_the_same() {
    let mut a = engine();
    a.apply(
        &breach(
            "home",
            RuleKind::PermittedArea,
            BreachPhase::Confirmed,
            T0,
            false,
        ),
        t(0),
    )
    .unwrap();
    a.tick(t(4 * MIN));
    let json = serde_json::to_string(a.state()).unwrap();
    let state: EngineState = serde_json::from_str(&json).unwrap();
    let mut b = IncidentEngine::with_state(Policy::default(), tree(), state);
    assert_eq!(a.tick(t(20 * MIN)), b.tick(t(20 * MIN)));
    assert_eq!(a.state(), b.state());
}

#[test]
fn removing_a_subject_clears_its_incidents() {
    let mut e = engine();
    e.apply(
        &breach(
            "home",
            RuleKind::PermittedArea,
            BreachPhase::Confirmed,
            T0,
            false,
        ),
        t(0),
    )
    .unwrap();
    let fx = e.remove_subject(&"s1".into(), t(MIN));
    assert_eq!(codes(&fx), ["zone_exit:cleared"]);
    assert!(e.subject(&"s1".into()).is_none());
    assert!(e.tick(t(60 * MIN)).is_empty());
}

#[test]
fn a_stale_past_episode_never_displaces_the_active_one() {
    // Found by the chaos property test: confirm at 0, a stale end at -1 and
    // a stale confirm at -2 used to orphan the active incident.
    let mut e = engine();
    let c = RuleKind::Curfew;
    e.apply(&breach("night", c, BreachPhase::Confirmed, T0, false), t(0))
        .unwrap();
    e.apply(&breach("night", c, BreachPhase::Ended, T0 - 1, false), t(0))
        .unwrap();
    let fx = e
        .apply(
            &breach("night", c, BreachPhase::Confirmed, T0 - 2, false),
            t(0),
        )
        .unwrap();
    assert_eq!(
        codes(&fx),
        ["curfew_breach:opened", "curfew_breach:cleared"]
    );
    let active = e
        .active_incident(&"s1".into(), IncidentKind::CurfewBreach)
        .unwrap();
    assert_eq!(active.header.opened_at, t(0));
}

#[test]
fn list_filters_scope_by_office_subtree_kind_state_and_time() {
    use geoward_alerting::query::{IncidentFilter, parse_kinds, parse_states};
    let mut e = engine();
    e.apply(
        &breach(
            "home",
            RuleKind::PermittedArea,
            BreachPhase::Confirmed,
            T0,
            false,
        ),
        t(0),
    )
    .unwrap();
    e.tick(t(LOST)); // lost contact too
    let tree = tree();
    let count = |f: &IncidentFilter| {
        e.incidents()
            .filter(|i| f.matches(&tree, &i.header))
            .count()
    };
    assert_eq!(count(&IncidentFilter::default()), 2);
    let county = IncidentFilter {
        office_subtree: Some("county".into()),
        ..IncidentFilter::default()
    };
    assert_eq!(count(&county), 2);
    let jo2 = IncidentFilter {
        office_subtree: Some("jo2".into()),
        ..IncidentFilter::default()
    };
    assert_eq!(count(&jo2), 0);
    let exits = IncidentFilter {
        kinds: parse_kinds("zone_exit").unwrap(),
        states: parse_states("open").unwrap(),
        opened_from: Some(t(0)),
        opened_before: Some(t(1)),
        ..IncidentFilter::default()
    };
    assert_eq!(count(&exits), 1);
}

#[test]
fn silence_after_power_off_stays_one_incident_that_can_become_abscondment() {
    let mut e = engine();
    let off_at = MIN;
    let fx = e
        .apply(&event(DeviceEventKind::PowerOff, T0 + off_at), t(off_at))
        .unwrap();
    assert_eq!(codes(&fx), ["power_off:opened"]);
    let id = only_incident(&e, IncidentKind::PowerOff);

    // The lost-contact deadline counts from the power-off message: it adds
    // the silence to the power-off incident instead of opening another.
    assert!(e.tick(t(off_at + LOST - 1)).is_empty());
    let fx = e.tick(t(off_at + LOST));
    assert_eq!(codes(&fx), ["power_off:evidence"]);
    assert!(
        e.incidents()
            .all(|i| i.header.episode_kind == IncidentKind::PowerOff),
        "no lost-contact incident"
    );
    let later = codes(&e.tick(t(off_at + LOST + 30 * MIN)));
    assert!(
        !later.contains(&"power_off:evidence".to_owned()),
        "{later:?}"
    );

    // Silence as long as a lost contact needs (normal: 120 min after the
    // deadline) makes it abscondment, like a lost contact.
    let before = codes(&e.tick(t(off_at + LOST + 120 * MIN - 1)));
    assert!(
        !before.iter().any(|c| c.ends_with(":promoted")),
        "{before:?}"
    );
    let fx = e.tick(t(off_at + LOST + 120 * MIN));
    assert_eq!(
        codes(&fx),
        ["abscondment:promoted", "abscondment:police_notified"]
    );
    assert_eq!(
        e.incident(&id).unwrap().header.kind,
        IncidentKind::Abscondment
    );

    // The device coming back clears it, and a later silence without any
    // power-off is an ordinary lost contact again.
    let back = off_at + LOST + 130 * MIN;
    let fx = e
        .apply(&seen(DeviceKind::Bracelet, T0 + back, None, true), t(back))
        .unwrap();
    assert_eq!(codes(&fx), ["abscondment:cleared"]);
    let fx = e.tick(t(back + LOST));
    assert_eq!(
        opened(&fx, IncidentKind::LostContact).len(),
        1,
        "{:?}",
        codes(&fx)
    );
}
