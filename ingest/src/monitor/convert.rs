//! Conversions between the pipeline's stored items and the decision engines' own
//! input types. The engines know nothing of each other or of the wire: this is
//! the one place their vocabularies meet.

use chrono::{DateTime, Utc};
use geoward_alerting::signal::{
    BreachPhase, DeviceEventKind, DeviceKind, EvidenceFix, Position, RuleKind,
};
use geoward_alerting::{DeviceId, RuleId, Signal, SignalBody, SubjectId, Timestamp};
use geoward_geofence::{Fix, RuleRef, Source, Transition, TransitionKind};
use serde_json::Value;

use crate::pipeline::plan::Item;

/// Alerting time of a chrono time.
pub fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp(t.timestamp_millis())
}

fn source(name: &str) -> Source {
    match name {
        "wifi" => Source::Wifi,
        "cell" => Source::Cell,
        "fused" => Source::Fused,
        _ => Source::Gnss,
    }
}

/// Accuracy assumed when a format carries none (OwnTracks may omit `acc`): wide
/// enough that such a fix alone never confirms a breach near a boundary.
const UNKNOWN_ACCURACY_M: f64 = 100.0;

/// The zone engine's fix of a stored fix item.
pub fn geofence_fix(item: &Item) -> Option<Fix> {
    match item {
        Item::Fix {
            seq,
            time,
            lat,
            lon,
            accuracy_m,
            source: src,
        } => Some(Fix {
            time: *time,
            lat: *lat,
            lon: *lon,
            accuracy_m: accuracy_m.map_or(UNKNOWN_ACCURACY_M, f64::from),
            source: source(src),
            device_seq: u64::try_from(*seq).unwrap_or(0),
        }),
        Item::Event { .. } => None,
    }
}

/// The incident engine's signals of one stored item: contact (every item), and
/// the device events it reports.
pub fn device_signals(
    subject: &SubjectId,
    device: &str,
    kind: DeviceKind,
    item: &Item,
) -> Vec<Signal> {
    let device = DeviceId(device.to_owned());
    let signal = |body| Signal {
        subject: subject.clone(),
        body,
    };
    match item {
        Item::Fix {
            time,
            lat,
            lon,
            accuracy_m,
            source: src,
            ..
        } => vec![signal(SignalBody::DeviceSeen {
            device,
            device_kind: kind,
            at: ts(*time),
            position: Some(Position {
                lat: *lat,
                lon: *lon,
                accuracy_m: accuracy_m.map_or(UNKNOWN_ACCURACY_M, f64::from),
            }),
            has_gnss_fix: source(src).is_confident(),
            battery_pct: None,
        })],
        Item::Event {
            time,
            kind: what,
            detail,
            ..
        } => {
            let at = ts(*time);
            let event = |e| {
                signal(SignalBody::DeviceEvent {
                    device: device.clone(),
                    device_kind: kind,
                    at,
                    event: e,
                })
            };
            let mut out = Vec::new();
            let mut battery_pct = None;
            if *what == "heartbeat" {
                let d: Value = serde_json::from_str(detail).unwrap_or(Value::Null);
                battery_pct = d
                    .get("battery_pct")
                    .and_then(Value::as_u64)
                    .and_then(|b| u8::try_from(b).ok());
                // The heartbeat's sensor states are authoritative: a strap reported
                // open or cut is a tamper even if the event itself was lost.
                match d.get("strap").and_then(Value::as_str) {
                    Some("open" | "cut") => out.push(event(DeviceEventKind::StrapOpened)),
                    Some("intact") => out.push(event(DeviceEventKind::StrapClosed)),
                    _ => {}
                }
                match d.get("case_tamper").and_then(Value::as_bool) {
                    Some(true) => out.push(event(DeviceEventKind::CaseOpened)),
                    Some(false) => out.push(event(DeviceEventKind::CaseClosed)),
                    None => {}
                }
            } else if let Some(e) = device_event(what) {
                out.push(event(e));
            }
            out.insert(
                0,
                signal(SignalBody::DeviceSeen {
                    device: device.clone(),
                    device_kind: kind,
                    at,
                    position: None,
                    has_gnss_fix: false,
                    battery_pct,
                }),
            );
            out
        }
    }
}

fn device_event(kind: &str) -> Option<DeviceEventKind> {
    Some(match kind {
        "strap_opened" => DeviceEventKind::StrapOpened,
        "strap_closed" => DeviceEventKind::StrapClosed,
        "case_opened" => DeviceEventKind::CaseOpened,
        "low_battery" => DeviceEventKind::LowBattery,
        "power_off" => DeviceEventKind::PowerOff,
        // SOS, jamming and phone-link events are stored and on the track; the
        // incident engine has no episode kind for them yet.
        _ => return None,
    })
}

/// The rule id of a zone transition, stable across restarts: it keys the incident
/// engine's per-rule memory and appears in incident causes.
pub fn rule_id(rule: &RuleRef) -> RuleId {
    RuleId(match rule {
        RuleRef::Permitted => "permitted".to_owned(),
        RuleRef::Exclusion(z) => format!("exclusion:{}", z.as_str()),
        RuleRef::Curfew => "curfew".to_owned(),
    })
}

/// The incident engine's signal of a zone transition; `None` for possible
/// crossings, which are reported but are not breaches.
pub fn zone_signal(t: &Transition, device: &str) -> Option<Signal> {
    let phase = match t.kind {
        TransitionKind::BreachStarted => BreachPhase::Started,
        TransitionKind::BreachConfirmed => BreachPhase::Confirmed,
        TransitionKind::BreachEnded { .. } => BreachPhase::Ended,
        TransitionKind::PossibleCrossing => return None,
    };
    let rule_kind = match t.rule {
        RuleRef::Permitted => RuleKind::PermittedArea,
        RuleRef::Exclusion(_) => RuleKind::ExclusionZone,
        RuleRef::Curfew => RuleKind::Curfew,
    };
    Some(Signal {
        subject: SubjectId(t.subject.clone()),
        body: SignalBody::ZoneBreach {
            rule: rule_id(&t.rule),
            rule_kind,
            phase,
            late: t.late,
            event_time: ts(t.event_time),
            evidence: t
                .evidence
                .iter()
                .map(|f| EvidenceFix {
                    device: DeviceId(device.to_owned()),
                    at: ts(f.time),
                    position: Position {
                        lat: f.lat,
                        lon: f.lon,
                        accuracy_m: f.accuracy_m,
                    },
                })
                .collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(detail: &str) -> Item {
        Item::Event {
            seq: 1,
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            kind: "heartbeat",
            detail: detail.to_owned(),
        }
    }

    #[test]
    fn heartbeat_sensors_become_device_events_after_contact() {
        let s = SubjectId("s".into());
        let out = device_signals(
            &s,
            "b1",
            DeviceKind::Bracelet,
            &heartbeat(r#"{"battery_pct":40,"strap":"cut","case_tamper":false}"#),
        );
        assert!(matches!(
            out[0].body,
            SignalBody::DeviceSeen {
                battery_pct: Some(40),
                ..
            }
        ));
        let events: Vec<_> = out[1..]
            .iter()
            .map(|s| match &s.body {
                SignalBody::DeviceEvent { event, .. } => *event,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            events,
            vec![DeviceEventKind::StrapOpened, DeviceEventKind::CaseClosed]
        );
    }

    #[test]
    fn low_confidence_sources_are_not_gnss_fixes() {
        let s = SubjectId("s".into());
        let fix = |src| Item::Fix {
            seq: 1,
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            lat: 30.0,
            lon: 120.0,
            accuracy_m: None,
            source: src,
        };
        for (src, gnss) in [
            ("gnss", true),
            ("fused", true),
            ("cell", false),
            ("wifi", false),
        ] {
            let out = device_signals(&s, "p1", DeviceKind::Phone, &fix(src));
            assert!(
                matches!(out[0].body, SignalBody::DeviceSeen { has_gnss_fix, .. } if has_gnss_fix == gnss),
                "{src}"
            );
            assert_eq!(
                geofence_fix(&fix(src)).unwrap().accuracy_m,
                UNKNOWN_ACCURACY_M
            );
        }
    }
}
