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

/// A coordinate on the binary frame's grid of 1e-7° (about 1 cm).
///
/// The engines see every position at the binary frame's resolution,
/// whatever the encoding: JSON and OwnTracks carry doubles of up to 17
/// digits, far finer than any receiver's precision, and the zone engine's
/// late-data window keeps a fix on this grid as small steps (about 11
/// bytes) but any other double whole. The stored fix row and the raw
/// payload (the evidence) keep what the device sent.
fn on_grid_deg(deg: f64) -> f64 {
    (deg * 1e7).round() / 1e7
}

/// An accuracy radius on the binary frame's grid of a decimetre (see
/// [`on_grid_deg`]).
fn on_grid_m(accuracy_m: Option<f32>) -> f64 {
    accuracy_m.map_or(UNKNOWN_ACCURACY_M, |m| f64::from((m * 10.0).round() / 10.0))
}

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
            lat: on_grid_deg(*lat),
            lon: on_grid_deg(*lon),
            accuracy_m: on_grid_m(*accuracy_m),
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
                lat: on_grid_deg(*lat),
                lon: on_grid_deg(*lon),
                accuracy_m: on_grid_m(*accuracy_m),
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

    #[test]
    fn both_engines_see_positions_on_the_binary_frames_grid() {
        let s = SubjectId("s".into());
        let fix = |lat, lon, accuracy_m| Item::Fix {
            seq: 1,
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            lat,
            lon,
            accuracy_m: Some(accuracy_m),
            source: "gnss",
        };
        // A phone's JSON double is moved to the nearest 1e-7° and decimetre.
        let json = fix(34.747_312_345_678_9, 113.625_098_765_432_1, 4.837);
        let g = geofence_fix(&json).unwrap();
        assert_eq!(
            (g.lat, g.lon, g.accuracy_m),
            (34.747_312_3, 113.625_098_8, f64::from(4.8f32))
        );
        let out = device_signals(&s, "b1", DeviceKind::Bracelet, &json);
        let SignalBody::DeviceSeen {
            position: Some(p), ..
        } = &out[0].body
        else {
            panic!("no position in {out:?}");
        };
        assert_eq!((p.lat, p.lon, p.accuracy_m), (g.lat, g.lon, g.accuracy_m));
        // What the binary frame carries (1e-7° integers, decimetres) stays
        // bit for bit what it was, on both sides of zero.
        for (lat_e7, lon_e7, dm) in [(347_473_123, 1_136_250_988, 48), (-339_000_001, -1, 0)] {
            let (lat, lon) = (f64::from(lat_e7) / 1e7, f64::from(lon_e7) / 1e7);
            let acc = dm as f32 / 10.0;
            let g = geofence_fix(&fix(lat, lon, acc)).unwrap();
            assert_eq!(
                (g.lat.to_bits(), g.lon.to_bits(), g.accuracy_m.to_bits()),
                (lat.to_bits(), lon.to_bits(), f64::from(acc).to_bits())
            );
        }
    }
}
