//! Geoward JSON, for phones and integrators (field by field in PROTOCOL.md).
//!
//! Decoding goes through one flat, borrowed wire struct per direction
//! instead of a serde-tagged enum: serde's internally tagged enums buffer the
//! whole object first, the flat struct parses in one pass without allocating
//! (strings borrow from the payload). The message type then decides which
//! fields are required and which are forbidden, so a typo or a field from
//! another message type is an error instead of being silently ignored.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize};

use crate::KeyLookup;
use crate::auth::{mac_tag, verify_mac};
use crate::codec::{Body, RejectedFix};
use crate::error::DecodeError;
use crate::ids::DeviceId;
use crate::message::{
    Ack, Batch, Command, CommandAction, DeviceConfig, DeviceEvent, Downlink, EventKind, Fix,
    GnssState, Heartbeat, PositionSource, StrapState, SupervisionLevel, Timestamp, Uplink,
};
use crate::validate::{
    DecodeOptions, check_fix, check_heartbeat, check_size, check_time, out_of_range,
};

/// A JSON string that borrows from the payload unless it contains escapes.
#[derive(Debug)]
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// Reads an `f32` field as `f64` and narrows it, so that an overflow becomes
/// infinity and validation rejects it as `non_finite`. Without this the
/// outcome would depend on serde_json's features, which cargo unifies across
/// the workspace (`float_roundtrip` makes an f32 overflow a parse error).
fn f32_via_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|v| v as f32))
}

#[cold]
pub(crate) fn bad_json(e: serde_json::Error) -> DecodeError {
    DecodeError::BadJson(e.to_string())
}

/// Every field any uplink message may have; the `type` decides which count.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireUplink<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    device_id: Option<Text<'a>>,
    seq: Option<u64>,
    time_ms: Option<i64>,
    lat: Option<f64>,
    lon: Option<f64>,
    #[serde(default, deserialize_with = "f32_via_f64")]
    accuracy_m: Option<f32>,
    #[serde(default, deserialize_with = "f32_via_f64")]
    altitude_m: Option<f32>,
    #[serde(default, deserialize_with = "f32_via_f64")]
    speed_mps: Option<f32>,
    #[serde(default, deserialize_with = "f32_via_f64")]
    heading_deg: Option<f32>,
    satellites: Option<u8>,
    source: Option<PositionSource>,
    battery_pct: Option<u8>,
    charging: Option<bool>,
    strap: Option<StrapState>,
    case_tamper: Option<bool>,
    signal_dbm: Option<i8>,
    gnss: Option<GnssState>,
    event: Option<EventKind>,
    fixes: Option<Vec<WireFix>>,
    #[serde(borrow)]
    sealed: Option<Text<'a>>,
    #[serde(borrow)]
    mac: Option<Text<'a>>,
}

/// A fix inside a batch (no `type`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFix {
    seq: Option<u64>,
    time_ms: Option<i64>,
    lat: Option<f64>,
    lon: Option<f64>,
    #[serde(default, deserialize_with = "f32_via_f64")]
    accuracy_m: Option<f32>,
    #[serde(default, deserialize_with = "f32_via_f64")]
    altitude_m: Option<f32>,
    #[serde(default, deserialize_with = "f32_via_f64")]
    speed_mps: Option<f32>,
    #[serde(default, deserialize_with = "f32_via_f64")]
    heading_deg: Option<f32>,
    satellites: Option<u8>,
    source: Option<PositionSource>,
}

fn need<T>(v: Option<T>, field: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::MissingField(field))
}

impl WireFix {
    fn into_fix(self) -> Result<Fix, DecodeError> {
        Ok(Fix {
            seq: need(self.seq, "seq")?,
            time: Timestamp(need(self.time_ms, "time_ms")?),
            lat: need(self.lat, "lat")?,
            lon: need(self.lon, "lon")?,
            accuracy_m: need(self.accuracy_m, "accuracy_m")?,
            altitude_m: self.altitude_m,
            speed_mps: self.speed_mps,
            heading_deg: self.heading_deg,
            satellites: self.satellites,
            source: need(self.source, "source")?,
        })
    }
}

/// Rejects fields that do not belong to the message type.
macro_rules! forbid {
    ($w:ident: $($f:ident),+) => {
        $(if $w.$f.is_some() {
            return Err(DecodeError::UnexpectedField(stringify!($f)));
        })+
    };
}

/// Decodes a Geoward JSON uplink (plain or sealed) for `device` (from the topic).
pub(crate) fn decode(
    payload: &[u8],
    device: &DeviceId,
    opts: &DecodeOptions,
    now: Timestamp,
    keys: &dyn KeyLookup,
) -> Result<Body, DecodeError> {
    let w: WireUplink<'_> = serde_json::from_slice(payload).map_err(bad_json)?;
    let Some(sealed) = &w.sealed else {
        forbid!(w: mac);
        return convert(w, device, opts, now, false);
    };
    forbid!(w: kind, device_id, seq, time_ms, lat, lon, accuracy_m, altitude_m, speed_mps,
        heading_deg, satellites, source, battery_pct, charging, strap, case_tamper, signal_dbm,
        gnss, event, fixes);
    let mac = need(w.mac.as_ref(), "mac")?;
    let inner = BASE64
        .decode(sealed.0.as_bytes())
        .map_err(|_| DecodeError::BadBase64("sealed"))?;
    let tag = BASE64
        .decode(mac.0.as_bytes())
        .map_err(|_| DecodeError::BadBase64("mac"))?;
    let secret = keys
        .device_secret(device)
        .ok_or_else(|| DecodeError::UnknownKey(device.clone()))?;
    if !verify_mac(&secret, device, &inner, &tag) {
        return Err(DecodeError::BadMac);
    }
    let w: WireUplink<'_> = serde_json::from_slice(&inner).map_err(bad_json)?;
    forbid!(w: sealed, mac);
    convert(w, device, opts, now, true)
}

fn convert(
    w: WireUplink<'_>,
    device: &DeviceId,
    opts: &DecodeOptions,
    now: Timestamp,
    authenticated: bool,
) -> Result<Body, DecodeError> {
    let kind = need(w.kind.as_ref(), "type")?;
    if let Some(id) = &w.device_id
        && id.0 != device.as_str()
    {
        return Err(DecodeError::DeviceMismatch {
            topic: device.clone(),
            payload: id.0.clone().into_owned(),
        });
    }
    let mut rejected_fixes = Vec::new();
    let message = match &*kind.0 {
        "fix" => {
            forbid!(w: battery_pct, charging, strap, case_tamper, signal_dbm, gnss, event, fixes);
            let fix = WireFix {
                seq: w.seq,
                time_ms: w.time_ms,
                lat: w.lat,
                lon: w.lon,
                accuracy_m: w.accuracy_m,
                altitude_m: w.altitude_m,
                speed_mps: w.speed_mps,
                heading_deg: w.heading_deg,
                satellites: w.satellites,
                source: w.source,
            }
            .into_fix()?;
            check_fix(&fix, opts, now)?;
            Uplink::Fix(fix)
        }
        "heartbeat" => {
            forbid!(w: lat, lon, accuracy_m, altitude_m, speed_mps, heading_deg, satellites, source,
                event, fixes);
            let hb = Heartbeat {
                seq: need(w.seq, "seq")?,
                time: Timestamp(need(w.time_ms, "time_ms")?),
                battery_pct: need(w.battery_pct, "battery_pct")?,
                charging: need(w.charging, "charging")?,
                strap: need(w.strap, "strap")?,
                case_tamper: need(w.case_tamper, "case_tamper")?,
                signal_dbm: w.signal_dbm,
                gnss: need(w.gnss, "gnss")?,
            };
            check_heartbeat(&hb, opts, now)?;
            Uplink::Heartbeat(hb)
        }
        "event" => {
            forbid!(w: lat, lon, accuracy_m, altitude_m, speed_mps, heading_deg, satellites, source,
                battery_pct, charging, strap, case_tamper, signal_dbm, gnss, fixes);
            let ev = DeviceEvent {
                seq: need(w.seq, "seq")?,
                time: Timestamp(need(w.time_ms, "time_ms")?),
                kind: need(w.event, "event")?,
            };
            check_time(ev.time, opts, now)?;
            Uplink::Event(ev)
        }
        "batch" => {
            forbid!(w: seq, time_ms, lat, lon, accuracy_m, altitude_m, speed_mps, heading_deg,
                satellites, source, battery_pct, charging, strap, case_tamper, signal_dbm, gnss,
                event);
            let wire = need(w.fixes, "fixes")?;
            if wire.is_empty() {
                return Err(DecodeError::EmptyBatch);
            }
            let mut fixes = Vec::with_capacity(wire.len());
            for wf in wire {
                let seq = wf.seq;
                match wf
                    .into_fix()
                    .and_then(|f| check_fix(&f, opts, now).map(|()| f))
                {
                    Ok(f) => fixes.push(f),
                    Err(error) => rejected_fixes.push(RejectedFix { seq, error }),
                }
            }
            if fixes.is_empty() {
                return Err(rejected_fixes.swap_remove(0).error);
            }
            Uplink::Batch(Batch { fixes })
        }
        other => return Err(DecodeError::UnknownMessageType(other.to_owned())),
    };
    Ok(Body {
        message,
        authenticated,
        rejected_fixes,
    })
}

#[derive(Serialize)]
struct Tagged<T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct OutFix {
    seq: u64,
    time_ms: i64,
    lat: f64,
    lon: f64,
    accuracy_m: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    altitude_m: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed_mps: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heading_deg: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    satellites: Option<u8>,
    source: PositionSource,
}

impl From<&Fix> for OutFix {
    fn from(f: &Fix) -> Self {
        OutFix {
            seq: f.seq,
            time_ms: f.time.0,
            lat: f.lat,
            lon: f.lon,
            accuracy_m: f.accuracy_m,
            altitude_m: f.altitude_m,
            speed_mps: f.speed_mps,
            heading_deg: f.heading_deg,
            satellites: f.satellites,
            source: f.source,
        }
    }
}

#[derive(Serialize)]
struct OutHeartbeat {
    seq: u64,
    time_ms: i64,
    battery_pct: u8,
    charging: bool,
    strap: StrapState,
    case_tamper: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal_dbm: Option<i8>,
    gnss: GnssState,
}

#[derive(Serialize)]
struct OutEvent {
    seq: u64,
    time_ms: i64,
    event: EventKind,
}

#[derive(Serialize)]
struct OutBatch {
    fixes: Vec<OutFix>,
}

fn to_vec<T: Serialize>(kind: &'static str, body: T) -> Vec<u8> {
    // Serialising plain structs of numbers, strings and unit enums into a Vec
    // cannot fail (no maps with non-string keys, no IO, finite floats are
    // written as numbers and non-finite ones as null).
    serde_json::to_vec(&Tagged { kind, body })
        .unwrap_or_else(|e| unreachable!("serialising a wire struct failed: {e}"))
}

/// Encodes an uplink message as plain Geoward JSON. Non-finite floats come
/// out as `null` (the decoder then rejects the message); NaN has no JSON form.
pub fn encode_uplink(msg: &Uplink) -> Vec<u8> {
    match msg {
        Uplink::Fix(f) => to_vec("fix", OutFix::from(f)),
        Uplink::Heartbeat(h) => to_vec(
            "heartbeat",
            OutHeartbeat {
                seq: h.seq,
                time_ms: h.time.0,
                battery_pct: h.battery_pct,
                charging: h.charging,
                strap: h.strap,
                case_tamper: h.case_tamper,
                signal_dbm: h.signal_dbm,
                gnss: h.gnss,
            },
        ),
        Uplink::Event(e) => to_vec(
            "event",
            OutEvent {
                seq: e.seq,
                time_ms: e.time.0,
                event: e.kind,
            },
        ),
        Uplink::Batch(b) => to_vec(
            "batch",
            OutBatch {
                fixes: b.fixes.iter().map(OutFix::from).collect(),
            },
        ),
    }
}

/// Wraps inner message bytes in the sealed envelope
/// `{"sealed":"<base64 inner>","mac":"<base64 tag>"}`, the tag being
/// HMAC-SHA256(secret, device id || inner) truncated to 16 bytes.
pub fn seal(device: &DeviceId, secret: &[u8], inner: &[u8]) -> Vec<u8> {
    let tag = mac_tag(secret, device, inner);
    format!(
        r#"{{"sealed":"{}","mac":"{}"}}"#,
        BASE64.encode(inner),
        BASE64.encode(tag)
    )
    .into_bytes()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDownlink<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    seq: Option<u64>,
    report_interval_s: Option<u32>,
    heartbeat_interval_s: Option<u32>,
    supervision: Option<SupervisionLevel>,
    in_violation: Option<bool>,
    id: Option<u64>,
    action: Option<CommandAction>,
}

/// Decodes a downlink message (device side, and tests).
pub fn decode_downlink(payload: &[u8], opts: &DecodeOptions) -> Result<Downlink, DecodeError> {
    check_size(payload.len(), opts)?;
    let w: WireDownlink<'_> = serde_json::from_slice(payload).map_err(bad_json)?;
    let kind = need(w.kind.as_ref(), "type")?;
    Ok(match &*kind.0 {
        "ack" => {
            forbid!(w: report_interval_s, heartbeat_interval_s, supervision, in_violation, id, action);
            Downlink::Ack(Ack {
                seq: need(w.seq, "seq")?,
            })
        }
        "config" => {
            forbid!(w: seq, id, action);
            let cfg = DeviceConfig {
                report_interval_s: need(w.report_interval_s, "report_interval_s")?,
                heartbeat_interval_s: need(w.heartbeat_interval_s, "heartbeat_interval_s")?,
                supervision: need(w.supervision, "supervision")?,
                in_violation: need(w.in_violation, "in_violation")?,
            };
            if cfg.report_interval_s == 0 {
                return Err(out_of_range("report_interval_s", 0));
            }
            if cfg.heartbeat_interval_s == 0 {
                return Err(out_of_range("heartbeat_interval_s", 0));
            }
            Downlink::Config(cfg)
        }
        "command" => {
            forbid!(w: seq, report_interval_s, heartbeat_interval_s, supervision, in_violation);
            Downlink::Command(Command {
                id: need(w.id, "id")?,
                action: need(w.action, "action")?,
            })
        }
        other => return Err(DecodeError::UnknownMessageType(other.to_owned())),
    })
}

#[derive(Serialize)]
struct OutAck {
    seq: u64,
}

#[derive(Serialize)]
struct OutConfig {
    report_interval_s: u32,
    heartbeat_interval_s: u32,
    supervision: SupervisionLevel,
    in_violation: bool,
}

#[derive(Serialize)]
struct OutCommand {
    id: u64,
    action: CommandAction,
}

/// Encodes a downlink message (always JSON, on `geoward/v1/dev/{id}/down`).
pub fn encode_downlink(msg: &Downlink) -> Vec<u8> {
    match msg {
        Downlink::Ack(a) => to_vec("ack", OutAck { seq: a.seq }),
        Downlink::Config(c) => to_vec(
            "config",
            OutConfig {
                report_interval_s: c.report_interval_s,
                heartbeat_interval_s: c.heartbeat_interval_s,
                supervision: c.supervision,
                in_violation: c.in_violation,
            },
        ),
        Downlink::Command(c) => to_vec(
            "command",
            OutCommand {
                id: c.id,
                action: c.action,
            },
        ),
    }
}
