//! Shared fixtures: a city → county → two justice offices tree with
//! targets, one subject, and helpers to build signals and read effects.

use geoward_alerting::incident::IncidentKind;
use geoward_alerting::notify::Notification;
use geoward_alerting::routing::{DeliveryTarget, Office, OfficeKind, TargetKind, TargetRole};
use geoward_alerting::signal::{
    BreachPhase, DeviceEventKind, DeviceKind, EvidenceFix, Position, RuleKind,
};
use geoward_alerting::{
    Effect, IncidentChange, IncidentEngine, OfficeTree, Policy, Signal, SignalBody, SubjectConfig,
    SupervisionLevel, Timestamp,
};

pub const T0: i64 = 1_800_000_000_000;
pub const MIN: i64 = 60_000;

fn target(id: &str, kind: TargetKind, role: TargetRole) -> DeliveryTarget {
    DeliveryTarget {
        id: id.into(),
        kind,
        role,
    }
}

pub fn tree() -> OfficeTree {
    let hook = |u: &str| TargetKind::Webhook {
        url: format!("http://127.0.0.1:9/{u}"),
    };
    OfficeTree::new(vec![
        Office {
            id: "city".into(),
            parent: None,
            kind: OfficeKind::CityBureau,
            name: "市司法局".into(),
            targets: vec![target("city-duty", hook("city"), TargetRole::Duty)],
        },
        Office {
            id: "county".into(),
            parent: Some("city".into()),
            kind: OfficeKind::CountyBureau,
            name: "区司法局".into(),
            targets: vec![
                target("county-duty", hook("county"), TargetRole::Duty),
                target("county-police", hook("police"), TargetRole::PoliceLiaison),
            ],
        },
        Office {
            id: "jo1".into(),
            parent: Some("county".into()),
            kind: OfficeKind::JusticeOffice,
            name: "一所".into(),
            targets: vec![
                target("jo1-hook", hook("jo1"), TargetRole::Duty),
                target("jo1-mqtt", TargetKind::Mqtt, TargetRole::Duty),
            ],
        },
        Office {
            id: "jo2".into(),
            parent: Some("county".into()),
            kind: OfficeKind::JusticeOffice,
            name: "二所".into(),
            targets: vec![target("jo2-mqtt", TargetKind::Mqtt, TargetRole::Duty)],
        },
    ])
    .expect("fixture tree is valid")
}

pub fn engine_with(policy: Policy) -> IncidentEngine {
    let mut e = IncidentEngine::new(policy, tree());
    e.upsert_subject(
        SubjectConfig {
            id: "s1".into(),
            office: "jo1".into(),
            level: SupervisionLevel::Normal,
            expected_interval_ms: MIN,
        },
        Timestamp(T0),
    )
    .expect("fixture subject is valid");
    e
}

pub fn engine() -> IncidentEngine {
    engine_with(Policy::default())
}

pub fn pos(lat: f64, lon: f64, acc: f64) -> Position {
    Position {
        lat,
        lon,
        accuracy_m: acc,
    }
}

pub fn breach(rule: &str, kind: RuleKind, phase: BreachPhase, at: i64, late: bool) -> Signal {
    Signal {
        subject: "s1".into(),
        body: SignalBody::ZoneBreach {
            rule: rule.into(),
            rule_kind: kind,
            phase,
            late,
            event_time: Timestamp(at),
            evidence: vec![EvidenceFix {
                device: "b1".into(),
                at: Timestamp(at),
                position: pos(30.3, 120.2, 8.0),
            }],
        },
    }
}

pub fn seen(kind: DeviceKind, at: i64, position: Option<Position>, gnss: bool) -> Signal {
    let device = match kind {
        DeviceKind::Bracelet => "b1",
        DeviceKind::Phone => "p1",
    };
    Signal {
        subject: "s1".into(),
        body: SignalBody::DeviceSeen {
            device: device.into(),
            device_kind: kind,
            at: Timestamp(at),
            position,
            has_gnss_fix: gnss,
            battery_pct: None,
        },
    }
}

pub fn event(ev: DeviceEventKind, at: i64) -> Signal {
    Signal {
        subject: "s1".into(),
        body: SignalBody::DeviceEvent {
            device: "b1".into(),
            device_kind: DeviceKind::Bracelet,
            at: Timestamp(at),
            event: ev,
        },
    }
}

pub fn changes(fx: &[Effect]) -> Vec<&IncidentChange> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Incident(c) => Some(&**c),
            _ => None,
        })
        .collect()
}

pub fn notifications(fx: &[Effect]) -> Vec<&Notification> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => Some(&**n),
            _ => None,
        })
        .collect()
}

pub fn codes(fx: &[Effect]) -> Vec<String> {
    changes(fx)
        .iter()
        .map(|c| format!("{}:{}", c.header.kind.code(), c.entry.event.code()))
        .collect()
}

pub fn opened(fx: &[Effect], kind: IncidentKind) -> Vec<&IncidentChange> {
    changes(fx)
        .into_iter()
        .filter(|c| c.entry.event.code() == "opened" && c.header.episode_kind == kind)
        .collect()
}
