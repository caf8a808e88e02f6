//! Synthetic fleets on a real county: determinism, routine sanity, and every
//! scenario judged by an independent reference oracle written here against
//! the plan alone, compared with the generated expectation file.

use std::collections::BTreeMap;
use std::path::Path;

use geoward_proto::{EventKind, Uplink};
use geoward_simulator::expect::ObservedIncident;
use geoward_simulator::fleet::{self, FleetConfig, NoiseModel, ScenarioKind, ScenarioSpec};
use geoward_simulator::geo::{Area, LatLon};
use geoward_simulator::plan::Plan;
use geoward_simulator::trace::source_name;
use geoward_simulator::zones;

fn county() -> Area {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/zones/ning2_xia4_yin2_chuan1.geojson");
    let areas = zones::load(&file).expect("zone file");
    zones::find(&areas, "兴庆区", "yinchuan")
        .expect("county")
        .clone()
}

fn config(subjects: usize, scenarios: &[ScenarioKind]) -> FleetConfig {
    FleetConfig {
        subjects,
        seed: 20_260_105,
        noise: NoiseModel::EXACT,
        scenarios: scenarios
            .iter()
            .map(|&kind| ScenarioSpec {
                kind,
                day: 0,
                at_minute: None,
            })
            .collect(),
        ..FleetConfig::default()
    }
}

/// Reference judgement of a plan with exact positions: first occurrence of
/// each (subject, kind), by the simplest possible rules.
fn oracle(fleet: &fleet::Fleet, area: &Area, cfg: &FleetConfig) -> Vec<ObservedIncident> {
    let mut first: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
    let mut note = |subject: &str, kind: &'static str, at: i64| {
        first.entry((subject.to_string(), kind)).or_insert(at);
    };
    let end = cfg.start_ms + cfg.duration_ms;
    for s in &fleet.subjects {
        let home = LatLon::new(s.home.lat, s.home.lon);
        let bracelet = &s.devices[0].id;
        let fixes = |device: &str| -> Vec<(i64, LatLon)> {
            fleet
                .plan
                .for_device(device)
                .filter_map(|x| match &x.message {
                    Uplink::Fix(fix) => Some((fix.time.0, LatLon::new(fix.lat, fix.lon))),
                    _ => None,
                })
                .collect()
        };
        let b = fixes(bracelet);
        // An exit counts once fixes outside span the confirmation time
        // without a fix inside between; it starts at the first of them.
        let mut outside_since = None;
        for &(t, p) in &b {
            if area.contains(p) {
                outside_since = None;
            } else {
                let since = *outside_since.get_or_insert(t);
                if t - since >= cfg.exit_confirm_ms {
                    note(&s.id, "zone_exit", since);
                }
            }
            let minute = ((t + cfg.utc_offset_ms).rem_euclid(86_400_000) / 60_000) as u32;
            if s.curfew.covers(minute) && p.distance_m(home) > s.curfew.radius_m {
                note(&s.id, "curfew_breach", t);
            }
            for c in &s.exclusions {
                if p.distance_m(LatLon::new(c.lat, c.lon)) <= c.radius_m {
                    note(&s.id, "exclusion_entry", t);
                }
            }
        }
        if let Some(phone) = s.devices.get(1) {
            let p: BTreeMap<i64, LatLon> = fixes(&phone.id).into_iter().collect();
            for &(t, bp) in &b {
                if p.get(&t)
                    .is_some_and(|pp| pp.distance_m(bp) > cfg.separation_m)
                {
                    note(&s.id, "separation", t);
                }
            }
        }
        let mut last = cfg.start_ms;
        let mut powered_off = false;
        for x in fleet.plan.for_device(bracelet) {
            last = last.max(x.at_ms);
            if let Uplink::Event(e) = &x.message {
                match e.kind {
                    EventKind::StrapOpened => note(&s.id, "tamper", e.time.0),
                    EventKind::PowerOff => {
                        powered_off = true;
                        note(&s.id, "power_off", e.time.0);
                    }
                    _ => {}
                }
            }
        }
        if !powered_off && end - last > 30 * 60_000 {
            note(&s.id, "lost_contact", last + 30 * 60_000);
        }
    }
    first
        .into_iter()
        .map(|((subject, kind), at_ms)| ObservedIncident {
            subject,
            kind: kind.to_string(),
            at_ms,
            position: None,
        })
        .collect()
}

#[test]
fn every_scenario_kind_produces_exactly_its_incident() {
    let area = county();
    let cfg = config(12, &ScenarioKind::ALL);
    let fleet = fleet::generate(&cfg, &area).expect("fleet");
    let seen = oracle(&fleet, &area, &cfg);
    let report = fleet.expectations.check(&seen);
    assert!(report.passed(), "{}", report.summary());
    // Eight scenarios; leaving and staying away also breaks curfew at 22:00,
    // a brief excursion is too short to confirm an exit.
    assert_eq!(fleet.expectations.incidents.len(), 8);
    let kinds: Vec<&str> = fleet
        .expectations
        .incidents
        .iter()
        .map(|i| i.kind.name())
        .collect();
    assert_eq!(
        kinds,
        [
            "zone_exit",
            "curfew_breach",
            "curfew_breach",
            "exclusion_entry",
            "tamper",
            "power_off",
            "lost_contact",
            "separation"
        ]
    );
    // The four routine subjects are judged clean by the oracle.
    for s in &fleet.subjects[8..] {
        assert!(seen.iter().all(|o| o.subject != s.id), "{} fired", s.id);
    }
}

#[test]
fn oracle_catches_a_missing_scenario() {
    // Sanity of the test itself: the oracle sees a strap cut that a fleet
    // without scenarios does not expect.
    let area = county();
    let with = fleet::generate(&config(2, &[ScenarioKind::StrapCut]), &area).unwrap();
    let without = fleet::generate(&config(2, &[]), &area).unwrap();
    let seen = oracle(&with, &area, &config(2, &[]));
    let report = without.expectations.check(&seen);
    assert_eq!(report.unexpected.len(), 1, "{}", report.summary());
}

#[test]
fn fleet_is_deterministic_per_seed_and_stable_per_subject() {
    let area = county();
    let cfg = FleetConfig {
        noise: NoiseModel::default(),
        ..config(5, &[ScenarioKind::CurfewBreach])
    };
    let a = fleet::generate(&cfg, &area).unwrap();
    assert_eq!(a, fleet::generate(&cfg, &area).unwrap());
    let other = fleet::generate(
        &FleetConfig {
            seed: 2,
            ..cfg.clone()
        },
        &area,
    )
    .unwrap();
    assert_ne!(a.plan, other.plan);
    // Adding subjects leaves the existing ones unchanged.
    let more = fleet::generate(&FleetConfig { subjects: 7, ..cfg }, &area).unwrap();
    assert_eq!(a.subjects[..], more.subjects[..5]);
    let dev = &a.subjects[3].devices[0].id;
    let sends = |p: &Plan| p.for_device(dev).cloned().collect::<Vec<_>>();
    assert_eq!(sends(&a.plan), sends(&more.plan));
}

#[test]
fn routine_day_has_cadence_battery_noise_and_stays_home_at_night() {
    let area = county();
    let cfg = FleetConfig {
        noise: NoiseModel::default(),
        phones: true,
        ..config(20, &[])
    };
    let fleet = fleet::generate(&cfg, &area).unwrap();
    assert_eq!(fleet.plan.devices().len(), 40);
    assert!(fleet.expectations.incidents.is_empty());
    let mut sources = BTreeMap::new();
    for s in &fleet.subjects {
        let home = LatLon::new(s.home.lat, s.home.lon);
        assert!(area.contains(home));
        let sends: Vec<_> = fleet.plan.for_device(&s.devices[0].id).collect();
        let fixes = sends.iter().filter(|x| matches!(x.message, Uplink::Fix(_)));
        let heartbeats: Vec<u8> = sends
            .iter()
            .filter_map(|x| match &x.message {
                Uplink::Heartbeat(h) => Some(h.battery_pct),
                _ => None,
            })
            .collect();
        assert_eq!(fixes.count(), 1440, "one fix a minute");
        assert_eq!(heartbeats.len(), 288, "one heartbeat per 5 minutes");
        assert!(
            heartbeats.iter().all(|&b| (30..=100).contains(&b)),
            "{heartbeats:?}"
        );
        assert!(heartbeats[0] > heartbeats[200], "battery drains by day");
        for x in &sends {
            if let Uplink::Fix(fix) = &x.message {
                *sources.entry(source_name(fix.source)).or_insert(0usize) += 1;
                assert!(
                    area.contains(LatLon::new(fix.lat, fix.lon)),
                    "noise crossed the boundary"
                );
                let night = fix.time.0 - cfg.start_ms < 5 * 3_600_000;
                if night {
                    let d = LatLon::new(fix.lat, fix.lon).distance_m(home);
                    assert!(d <= 601.0, "{} {d} m from home at night", s.id);
                }
            }
        }
        let seqs: Vec<u64> = sends.iter().map(|x| x.max_seq()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
    // All four position sources occur at roughly their configured rates.
    let total: usize = sources.values().sum();
    let share = |k: &str| sources.get(k).copied().unwrap_or(0) as f64 / total as f64;
    assert!((0.02..0.04).contains(&share("cell")), "{sources:?}");
    assert!((0.04..0.06).contains(&share("wifi")), "{sources:?}");
}

#[test]
fn bad_configs_are_typed_errors() {
    let area = county();
    let e = fleet::generate(&config(1, &ScenarioKind::ALL), &area).unwrap_err();
    assert_eq!(e.reason(), "too_few_subjects");
    let mut late = config(1, &[ScenarioKind::StrapCut]);
    late.scenarios[0].day = 3;
    assert_eq!(
        fleet::generate(&late, &area).unwrap_err().reason(),
        "scenario"
    );
    let zero = FleetConfig {
        fix_interval_ms: 0,
        ..config(1, &[])
    };
    assert_eq!(
        fleet::generate(&zero, &area).unwrap_err().reason(),
        "config"
    );
    assert_eq!(
        ScenarioKind::from_name("power_off"),
        Some(ScenarioKind::PowerOff)
    );
    assert_eq!(ScenarioKind::from_name("nap"), None);
}
