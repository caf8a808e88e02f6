//! Model-based property tests of the incident engine.
//!
//! `engine_matches_reference_model` drives the engine and a deliberately
//! simple reference model with the same random sequence of ticks, contact,
//! geofence transitions (some late), acknowledgements and resolutions, and
//! compares after every step: which incidents exist, their opening times,
//! late flags, conditions, handling state and escalation levels, and the
//! results of officer actions. Escalation level has a closed form in the
//! model: one office up per elapsed acknowledgement timeout since detection,
//! counted until the acknowledgement, capped at the root.
//!
//! `engine_invariants_hold_under_chaos` throws everything (out-of-order
//! events, device events, two devices, reassignment) at it and checks the
//! invariants that must always hold.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::support::*;
use geoward_alerting::incident::{Condition, Handling, IncidentKind, IncidentState};
use geoward_alerting::signal::{BreachPhase, DeviceEventKind, DeviceKind, RuleKind};
use geoward_alerting::{
    Effect, EngineState, IncidentEngine, IncidentId, Policy, Signal, SignalBody, Timestamp,
};
use proptest::prelude::*;

const ESCALATE_MS: i64 = 15 * MIN; // high severity, normal supervision
const LOST_MS: i64 = 10 * MIN; // 10 × 60 s
const CHAIN_TOP: i64 = 2; // jo1 → county → city
const LATE_MS: i64 = 2 * MIN;

fn model_policy() -> Policy {
    Policy {
        // Promotion is covered by scenario tests; keeping it out lets the
        // model stay small.
        abscond_after_exit_ms: geoward_alerting::policy::PerLevel {
            strict: 1_000 * 60 * MIN,
            normal: 1_000 * 60 * MIN,
            lenient: 1_000 * 60 * MIN,
        },
        abscond_after_lost_contact_ms: geoward_alerting::policy::PerLevel {
            strict: 1_000 * 60 * MIN,
            normal: 1_000 * 60 * MIN,
            lenient: 1_000 * 60 * MIN,
        },
        ..Policy::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum K {
    Exit,
    Exclusion,
    Lost,
}

impl K {
    fn kind(self) -> IncidentKind {
        match self {
            K::Exit => IncidentKind::ZoneExit,
            K::Exclusion => IncidentKind::ExclusionEntry,
            K::Lost => IncidentKind::LostContact,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Advance(i64),
    Seen,
    Breach {
        k: K,
        rule: u8,
        confirmed: bool,
        lag: i64,
        late_flag: bool,
    },
    Ack(K),
    Resolve(K),
}

fn op() -> impl Strategy<Value = Op> {
    let zone = prop_oneof![Just(K::Exit), Just(K::Exclusion)];
    let any_k = prop_oneof![Just(K::Exit), Just(K::Exclusion), Just(K::Lost)];
    prop_oneof![
        3 => (0..=20 * MIN).prop_map(Op::Advance),
        2 => Just(Op::Seen),
        4 => (zone, 0u8..2, any::<bool>(), prop_oneof![3 => Just(0i64), 1 => 0..=3 * 60 * MIN], any::<bool>())
            .prop_map(|(k, rule, confirmed, lag, late_flag)| Op::Breach { k, rule, confirmed, lag, late_flag }),
        1 => any_k.clone().prop_map(Op::Ack),
        1 => any_k.prop_map(Op::Resolve),
    ]
}

#[derive(Debug, Clone)]
struct MInc {
    opened_at: i64,
    detected_at: i64,
    late: bool,
    active: bool,
    acked_at: Option<i64>,
    resolved: bool,
}

impl MInc {
    fn state(&self) -> IncidentState {
        if self.resolved {
            IncidentState::Resolved
        } else if !self.active {
            IncidentState::Cleared
        } else if self.acked_at.is_some() {
            IncidentState::Acknowledged
        } else {
            IncidentState::Open
        }
    }

    fn level(&self, now: i64) -> u32 {
        let end = self.acked_at.unwrap_or(now);
        ((end - self.detected_at) / ESCALATE_MS).clamp(0, CHAIN_TOP) as u32
    }
}

#[derive(Debug, Default)]
struct Model {
    now: i64,
    last_contact: i64,
    last_event: i64,
    incidents: BTreeMap<K, Vec<MInc>>,
    rules: BTreeMap<K, BTreeSet<u8>>,
}

impl Model {
    fn active(&mut self, k: K) -> Option<&mut MInc> {
        self.incidents.get_mut(&k)?.last_mut().filter(|i| i.active)
    }

    fn timers(&mut self) {
        let deadline = self.last_contact + LOST_MS;
        if self.now >= deadline && self.active(K::Lost).is_none() {
            let now = self.now;
            self.incidents.entry(K::Lost).or_default().push(MInc {
                opened_at: deadline,
                detected_at: now,
                late: false,
                active: true,
                acked_at: None,
                resolved: false,
            });
        }
    }

    /// Expected result of an officer action on the latest incident of `k`.
    fn action(&mut self, k: K, resolve: bool) -> Result<(), &'static str> {
        let now = self.now;
        let inc = self
            .incidents
            .get_mut(&k)
            .and_then(|v| v.last_mut())
            .expect("caller checked");
        if inc.resolved {
            return Err("already_resolved");
        }
        if resolve {
            if inc.acked_at.is_none() {
                return Err("not_acknowledged");
            }
            inc.resolved = true;
        } else {
            if inc.acked_at.is_some() {
                return Err("already_acknowledged");
            }
            inc.acked_at = Some(now);
        }
        Ok(())
    }
}

fn latest(e: &IncidentEngine, kind: IncidentKind) -> Vec<IncidentId> {
    let mut v: Vec<_> = e
        .incidents()
        .filter(|i| i.header.episode_kind == kind)
        .map(|i| (i.header.opened_at, i.header.id.clone()))
        .collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

fn check_common(
    e: &IncidentEngine,
    fx: &[Effect],
    keys: &mut HashSet<String>,
) -> Result<(), TestCaseError> {
    for f in fx {
        if let Effect::Notify(n) = f {
            prop_assert!(
                keys.insert(n.idempotency_key.clone()),
                "duplicate key {}",
                n.idempotency_key
            );
        }
    }
    let mut active = HashSet::new();
    for inc in e.incidents() {
        let h = &inc.header;
        for (i, entry) in inc.timeline.iter().enumerate() {
            prop_assert_eq!(entry.seq as usize, i);
        }
        prop_assert_eq!(h.timeline_len as usize, inc.timeline.len());
        if h.is_active() {
            prop_assert!(
                active.insert((h.subject.clone(), h.episode_kind)),
                "two active {:?}",
                h.episode_kind
            );
            let cur = e
                .active_incident(&h.subject, h.episode_kind)
                .map(|i| &i.header.id);
            prop_assert_eq!(cur, Some(&h.id));
        }
        if matches!(h.handling, Handling::Resolved { .. }) {
            prop_assert!(h.handled());
        }
    }
    Ok(())
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=n for a longer hunt.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn engine_matches_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut e = engine_with(model_policy());
        let mut m = Model { now: T0, last_contact: T0, last_event: T0 - 10 * 60 * MIN, ..Model::default() };
        let mut keys = HashSet::new();
        for op in ops {
            let mut fx = Vec::new();
            match op {
                Op::Advance(dt) => {
                    m.now += dt;
                    m.timers();
                    fx = e.tick(Timestamp(m.now));
                }
                Op::Seen => {
                    m.timers();
                    m.last_contact = m.now;
                    if let Some(i) = m.active(K::Lost) {
                        i.active = false;
                    }
                    fx = e.apply(&seen(DeviceKind::Bracelet, m.now, None, true), Timestamp(m.now)).unwrap();
                }
                Op::Breach { k, rule, confirmed, lag, late_flag } => {
                    m.timers();
                    let at = (m.last_event + 1).max(m.now - lag);
                    m.last_event = at;
                    let late = late_flag || m.now - at > LATE_MS;
                    let now = m.now;
                    if confirmed {
                        m.rules.entry(k).or_default().insert(rule);
                        if m.active(k).is_none() {
                            m.incidents.entry(k).or_default().push(MInc {
                                opened_at: at, detected_at: now, late, active: true, acked_at: None, resolved: false,
                            });
                        }
                    } else if m.active(k).is_some() {
                        let rules = m.rules.entry(k).or_default();
                        if rules.remove(&rule) && rules.is_empty() {
                            m.active(k).unwrap().active = false;
                        }
                    }
                    let (rule_kind, name) = match k {
                        K::Exit => (RuleKind::PermittedArea, format!("home{rule}")),
                        _ => (RuleKind::ExclusionZone, format!("school{rule}")),
                    };
                    let phase = if confirmed { BreachPhase::Confirmed } else { BreachPhase::Ended };
                    let sig = breach(&name, rule_kind, phase, at, late_flag);
                    fx = e.apply(&sig, Timestamp(m.now)).unwrap();
                }
                Op::Ack(k) | Op::Resolve(k) => {
                    let resolve = matches!(op, Op::Resolve(_));
                    let ids = latest(&e, k.kind());
                    let Some(id) = ids.last() else {
                        prop_assert!(m.incidents.get(&k).is_none_or(|v| v.is_empty()));
                        continue;
                    };
                    let expected = m.action(k, resolve);
                    let got = if resolve {
                        e.resolve(id, &"o1".into(), "handled", Timestamp(m.now))
                    } else {
                        e.acknowledge(id, &"o1".into(), Timestamp(m.now))
                    };
                    prop_assert_eq!(got.as_ref().map(|_| ()).map_err(|err| err.reason()), expected);
                    if let Ok(f) = got {
                        fx = f;
                    }
                }
            }
            check_common(&e, &fx, &mut keys)?;
            // Compare with the model.
            let mut expected_total = 0;
            for k in [K::Exit, K::Exclusion, K::Lost] {
                let ids = latest(&e, k.kind());
                let model = m.incidents.get(&k).cloned().unwrap_or_default();
                expected_total += model.len();
                prop_assert_eq!(ids.len(), model.len(), "{:?} count", k);
                for (id, mi) in ids.iter().zip(&model) {
                    let inc = e.incident(id).unwrap();
                    let h = &inc.header;
                    prop_assert_eq!(h.opened_at, Timestamp(mi.opened_at), "{:?} opened_at", k);
                    prop_assert_eq!(h.late, mi.late, "{:?} late", k);
                    prop_assert_eq!(h.state(), mi.state(), "{:?} state", k);
                    prop_assert_eq!(h.kind, k.kind());
                    let level = mi.level(m.now);
                    prop_assert_eq!(h.escalation_level, level, "{:?} level", k);
                    let escalated: Vec<String> = inc.timeline.iter().filter_map(|t| match &t.event {
                        geoward_alerting::incident::TimelineEvent::Escalated { office, .. } => Some(office.to_string()),
                        _ => None,
                    }).collect();
                    let chain = ["county", "city"];
                    prop_assert_eq!(escalated, chain[..level as usize].to_vec());
                }
                prop_assert_eq!(
                    e.active_incident(&"s1".into(), k.kind()).is_some(),
                    model.last().is_some_and(|i| i.active)
                );
            }
            prop_assert_eq!(e.incidents().count(), expected_total, "no other incidents");
        }
    }

    #[test]
    fn engine_invariants_hold_under_chaos(ops in proptest::collection::vec(chaos_op(), 1..80)) {
        let mut e = engine();
        let mut now = T0;
        let mut keys = HashSet::new();
        let table = signals();
        for op in ops {
            let fx = match op {
                Chaos::Advance(dt) => {
                    now += dt;
                    e.tick(Timestamp(now))
                }
                Chaos::Signal(i, skew) => match e.apply(&table[i](now + skew), Timestamp(now)) {
                    Ok(fx) => fx,
                    Err(err) => {
                        prop_assert_eq!(err.reason(), "invalid_position");
                        Vec::new()
                    }
                },
                Chaos::Act(which, pick) => {
                    let ids: Vec<IncidentId> = e.incidents().map(|i| i.header.id.clone()).collect();
                    if ids.is_empty() {
                        continue;
                    }
                    let id = &ids[pick % ids.len()];
                    let o = "o9".into();
                    let r = match which {
                        0 => e.acknowledge(id, &o, Timestamp(now)),
                        1 => e.resolve(id, &o, "done", Timestamp(now)),
                        2 => e.add_note(id, &o, "called", Timestamp(now)),
                        _ => e.reassign(id, &o, &(if pick % 2 == 0 { "jo2" } else { "jo1" }).into(), "moved", Timestamp(now)),
                    };
                    r.unwrap_or_default()
                }
            };
            check_common(&e, &fx, &mut keys)?;
        }
        // The whole state survives a snapshot.
        let json = serde_json::to_string(e.state()).unwrap();
        let back: EngineState = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, e.state());
        for inc in e.incidents() {
            if let Condition::Cleared { .. } = inc.header.condition {
                prop_assert!(inc.header.causes.is_empty());
            }
        }
    }
}

type SignalAt = fn(i64) -> Signal;

#[derive(Debug, Clone)]
enum Chaos {
    Advance(i64),
    /// Index into `signals()`, skew of the event time from now.
    Signal(usize, i64),
    Act(u8, usize),
}

fn signals() -> Vec<SignalAt> {
    vec![
        |at| {
            breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Confirmed,
                at,
                false,
            )
        },
        |at| {
            breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Ended,
                at,
                false,
            )
        },
        |at| {
            breach(
                "home",
                RuleKind::PermittedArea,
                BreachPhase::Started,
                at,
                true,
            )
        },
        |at| {
            breach(
                "bar",
                RuleKind::ExclusionZone,
                BreachPhase::Confirmed,
                at,
                true,
            )
        },
        |at| breach("bar", RuleKind::ExclusionZone, BreachPhase::Ended, at, true),
        |at| breach("night", RuleKind::Curfew, BreachPhase::Confirmed, at, false),
        |at| breach("night", RuleKind::Curfew, BreachPhase::Ended, at, false),
        |at| seen(DeviceKind::Bracelet, at, Some(pos(30.0, 120.0, 10.0)), true),
        |at| seen(DeviceKind::Bracelet, at, None, false),
        |at| seen(DeviceKind::Phone, at, Some(pos(30.02, 120.0, 15.0)), false),
        |at| seen(DeviceKind::Phone, at, Some(pos(30.0, 120.0, 15.0)), false),
        |at| {
            seen(
                DeviceKind::Phone,
                at,
                Some(pos(f64::INFINITY, 120.0, 15.0)),
                false,
            )
        },
        |at| event(DeviceEventKind::StrapOpened, at),
        |at| event(DeviceEventKind::StrapClosed, at),
        |at| event(DeviceEventKind::CaseOpened, at),
        |at| event(DeviceEventKind::CaseClosed, at),
        |at| event(DeviceEventKind::LowBattery, at),
        |at| event(DeviceEventKind::BatteryOk, at),
        |at| event(DeviceEventKind::PowerOff, at),
        |at| {
            let mut s = seen(DeviceKind::Bracelet, at, None, true);
            if let SignalBody::DeviceSeen { battery_pct, .. } = &mut s.body {
                *battery_pct = Some((at.rem_euclid(100)) as u8);
            }
            s
        },
    ]
}

fn chaos_op() -> impl Strategy<Value = Chaos> {
    let n = signals().len();
    prop_oneof![
        2 => (0..=30 * MIN).prop_map(Chaos::Advance),
        6 => (0..n, -3 * 60 * MIN..=MIN).prop_map(|(s, skew)| Chaos::Signal(s, skew)),
        2 => (0u8..4, any::<usize>()).prop_map(|(w, p)| Chaos::Act(w, p)),
    ]
}
