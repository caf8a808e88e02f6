//! The serde-derived decoders that `scan`-based decoding replaced, kept
//! verbatim as a reference, and the differential property tests: on
//! arbitrary, generated and mutated documents both decoders must return the
//! same value or the same error (the `bad_json` message aside), and neither
//! may panic.
//!
//! The oracle's floats are correctly rounded because proto's dev-dependency on
//! serde_json enables `float_roundtrip` (its default float parsing is only
//! "best effort"); the scanner does not use serde_json at all.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer};

use crate::KeyLookup;
use crate::auth::verify_mac;
use crate::codec::{Body, RejectedFix};
use crate::error::DecodeError;
use crate::ids::DeviceId;
use crate::json::{Text, bad_json};
use crate::message::{
    Batch, DeviceEvent, EventKind, Fix, GnssState, Heartbeat, PositionSource, StrapState,
    Timestamp, Uplink,
};
use crate::owntracks;
use crate::validate::{DecodeOptions, check_fix, check_heartbeat, check_time};

/// Reads an `f32` field as `f64` and narrows it, so that an overflow becomes
/// infinity and validation rejects it as `non_finite`. Without this the
/// outcome would depend on serde_json's features, which cargo unifies across
/// the workspace (`float_roundtrip` makes an f32 overflow a parse error).
fn f32_via_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|v| v as f32))
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
pub(crate) fn decode_json(
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

/// The fields Geoward reads; OwnTracks sends many more, which are ignored.
#[derive(Deserialize)]
struct WireOwnTracks<'a> {
    #[serde(rename = "_type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    data: Option<Text<'a>>,
    lat: Option<f64>,
    lon: Option<f64>,
    tst: Option<i64>,
    acc: Option<f64>,
    alt: Option<f64>,
    vel: Option<f64>,
    cog: Option<f64>,
}

/// The serde reader of OwnTracks documents.
fn read_owntracks(bytes: &[u8]) -> Result<owntracks::Wire<'_>, DecodeError> {
    let w: WireOwnTracks<'_> = serde_json::from_slice(bytes).map_err(bad_json)?;
    Ok(owntracks::Wire {
        kind: w.kind.map(|t| t.0),
        data: w.data.map(|t| t.0),
        lat: w.lat,
        lon: w.lon,
        tst: w.tst,
        acc: w.acc,
        alt: w.alt,
        vel: w.vel,
        cog: w.cog,
    })
}

/// The OwnTracks decoder over the serde reader.
pub(crate) fn decode_owntracks(
    payload: &[u8],
    device: &DeviceId,
    opts: &DecodeOptions,
    now: Timestamp,
    keys: &dyn KeyLookup,
) -> Result<Body, DecodeError> {
    owntracks::decode_with(payload, device, opts, now, keys, read_owntracks)
}

mod tests;
