//! Geoward JSON, for phones and integrators (field by field in PROTOCOL.md).
//!
//! Uplink decoding reads each document once with the hand-written
//! [`crate::scan`] reader into one flat wire struct (strings borrow from the
//! payload, a batch's fixes are validated as they are read): serde_json was
//! the bottleneck of the JSON throughput goal. The message type then decides
//! which fields are required and which are forbidden, so a typo or a field
//! from another message type is an error instead of being silently ignored.
//! The serde-derived decoder this replaces is kept as a test oracle
//! (`oracle.rs`); downlink decoding (device side, rare) still uses serde.

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
use crate::scan::{Key, KeyTable, Reader, Res, Syntax, read_struct};
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

#[cold]
pub(crate) fn bad_json(e: serde_json::Error) -> DecodeError {
    DecodeError::BadJson(e.to_string())
}

#[inline]
fn need<T>(v: Option<T>, field: &'static str) -> Result<T, DecodeError> {
    match v {
        Some(v) => Ok(v),
        None => Err(DecodeError::MissingField(field)),
    }
}

/// Rejects fields that do not belong to the message type (downlink).
macro_rules! forbid {
    ($w:ident: $($f:ident),+) => {
        $(if $w.$f.is_some() {
            return Err(DecodeError::UnexpectedField(stringify!($f)));
        })+
    };
}

/// Every field an uplink object may have, in the order of the wire struct
/// that defined the format (it matters for the array form of a struct, see
/// [`crate::scan`], and for which unexpected field is named first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    Type,
    DeviceId,
    Seq,
    TimeMs,
    Lat,
    Lon,
    AccuracyM,
    AltitudeM,
    SpeedMps,
    HeadingDeg,
    Satellites,
    Source,
    BatteryPct,
    Charging,
    Strap,
    CaseTamper,
    SignalDbm,
    Gnss,
    Event,
    Fixes,
    Sealed,
    Mac,
}

impl From<F> for u32 {
    fn from(f: F) -> u32 {
        f as u32
    }
}

impl F {
    /// The length of the field's JSON key (a constant where `self` is).
    #[inline(always)]
    const fn key_len(self) -> usize {
        UPLINK_KEYS[self as usize].len()
    }

    /// The name in `unexpected_field` errors (the wire struct's field name:
    /// `kind` for `type`).
    fn name(self) -> &'static str {
        match self {
            F::Type => "kind",
            F::DeviceId => "device_id",
            F::Seq => "seq",
            F::TimeMs => "time_ms",
            F::Lat => "lat",
            F::Lon => "lon",
            F::AccuracyM => "accuracy_m",
            F::AltitudeM => "altitude_m",
            F::SpeedMps => "speed_mps",
            F::HeadingDeg => "heading_deg",
            F::Satellites => "satellites",
            F::Source => "source",
            F::BatteryPct => "battery_pct",
            F::Charging => "charging",
            F::Strap => "strap",
            F::CaseTamper => "case_tamper",
            F::SignalDbm => "signal_dbm",
            F::Gnss => "gnss",
            F::Event => "event",
            F::Fixes => "fixes",
            F::Sealed => "sealed",
            F::Mac => "mac",
        }
    }
}

/// An uplink object's fields in array form.
const UPLINK_ORDER: [F; 22] = [
    F::Type,
    F::DeviceId,
    F::Seq,
    F::TimeMs,
    F::Lat,
    F::Lon,
    F::AccuracyM,
    F::AltitudeM,
    F::SpeedMps,
    F::HeadingDeg,
    F::Satellites,
    F::Source,
    F::BatteryPct,
    F::Charging,
    F::Strap,
    F::CaseTamper,
    F::SignalDbm,
    F::Gnss,
    F::Event,
    F::Fixes,
    F::Sealed,
    F::Mac,
];

/// The JSON keys of [`UPLINK_ORDER`].
const UPLINK_KEYS: [&[u8]; 22] = [
    b"type",
    b"device_id",
    b"seq",
    b"time_ms",
    b"lat",
    b"lon",
    b"accuracy_m",
    b"altitude_m",
    b"speed_mps",
    b"heading_deg",
    b"satellites",
    b"source",
    b"battery_pct",
    b"charging",
    b"strap",
    b"case_tamper",
    b"signal_dbm",
    b"gnss",
    b"event",
    b"fixes",
    b"sealed",
    b"mac",
];

/// The keys of [`UPLINK_ORDER`] as table entries.
const UPLINK_NAMES: [Key; 22] = {
    let mut keys = [Key::new(b""); 22];
    let mut i = 0;
    while i < 22 {
        keys[i] = Key::new(UPLINK_KEYS[i]);
        i += 1;
    }
    keys
};

/// Hash lookup of [`UPLINK_NAMES`].
const UPLINK_TABLE: KeyTable = KeyTable::new(&UPLINK_NAMES);

/// The keys of [`FIX_ORDER`] (a slice of [`UPLINK_NAMES`]).
const FIX_NAMES: [Key; 10] = {
    let mut keys = [Key::new(b""); 10];
    let mut i = 0;
    while i < 10 {
        keys[i] = UPLINK_NAMES[i + 2];
        i += 1;
    }
    keys
};

/// Hash lookup of [`FIX_NAMES`].
const FIX_TABLE: KeyTable = KeyTable::new(&FIX_NAMES);

/// A batch entry's fields in array form.
const FIX_ORDER: [F; 10] = [
    F::Seq,
    F::TimeMs,
    F::Lat,
    F::Lon,
    F::AccuracyM,
    F::AltitudeM,
    F::SpeedMps,
    F::HeadingDeg,
    F::Satellites,
    F::Source,
];

fn fix_field(key: &[u8]) -> Option<F> {
    Some(match key {
        b"seq" => F::Seq,
        b"time_ms" => F::TimeMs,
        b"lat" => F::Lat,
        b"lon" => F::Lon,
        b"accuracy_m" => F::AccuracyM,
        b"altitude_m" => F::AltitudeM,
        b"speed_mps" => F::SpeedMps,
        b"heading_deg" => F::HeadingDeg,
        b"satellites" => F::Satellites,
        b"source" => F::Source,
        _ => return None,
    })
}

fn uplink_field(key: &[u8]) -> Option<F> {
    Some(match key {
        b"type" => F::Type,
        b"device_id" => F::DeviceId,
        b"battery_pct" => F::BatteryPct,
        b"charging" => F::Charging,
        b"strap" => F::Strap,
        b"case_tamper" => F::CaseTamper,
        b"signal_dbm" => F::SignalDbm,
        b"gnss" => F::Gnss,
        b"event" => F::Event,
        b"fixes" => F::Fixes,
        b"sealed" => F::Sealed,
        b"mac" => F::Mac,
        _ => return fix_field(key),
    })
}

/// Every field is known: unknown ones are rejected (`bad_json`).
fn deny_unknown(r: &mut Reader<'_>, _key: &[u8]) -> Res<()> {
    Err(r.error("unknown field"))
}

const SOURCES: [(&str, PositionSource); 4] = [
    ("gnss", PositionSource::Gnss),
    ("wifi", PositionSource::Wifi),
    ("cell", PositionSource::Cell),
    ("fused", PositionSource::Fused),
];
const STRAPS: [(&str, StrapState); 3] = [
    ("intact", StrapState::Intact),
    ("open", StrapState::Open),
    ("cut", StrapState::Cut),
];
const GNSS: [(&str, GnssState); 3] = [
    ("off", GnssState::Off),
    ("searching", GnssState::Searching),
    ("fixed", GnssState::Fixed),
];
const EVENTS: [(&str, EventKind); 9] = [
    ("strap_opened", EventKind::StrapOpened),
    ("strap_closed", EventKind::StrapClosed),
    ("case_opened", EventKind::CaseOpened),
    ("low_battery", EventKind::LowBattery),
    ("power_off", EventKind::PowerOff),
    ("sos", EventKind::Sos),
    ("jamming_suspected", EventKind::JammingSuspected),
    ("phone_link_lost", EventKind::PhoneLinkLost),
    ("phone_link_restored", EventKind::PhoneLinkRestored),
];

/// An `f32` field read as `f64` and narrowed, so that an overflow becomes
/// infinity and validation rejects it as `non_finite`. Inlined at every
/// field, like the number readers, so each field's digits get their own
/// branches (a shared parser mispredicts as field lengths alternate).
#[inline(always)]
fn f32_field(r: &mut Reader<'_>) -> Res<f32> {
    Ok(r.f64()? as f32)
}

/// The fields of one fix as read (a `fix` message or a batch entry).
#[derive(Debug, Default, Clone, Copy)]
struct FixFields {
    seq: Option<u64>,
    time_ms: Option<i64>,
    lat: Option<f64>,
    lon: Option<f64>,
    accuracy_m: Option<f32>,
    altitude_m: Option<f32>,
    speed_mps: Option<f32>,
    heading_deg: Option<f32>,
    satellites: Option<u8>,
    source: Option<PositionSource>,
}

impl FixFields {
    /// Reads fix field `f` (see [`Reader::value`] for `pending`); true if
    /// it was given and not `null`.
    #[inline(always)]
    fn set(&mut self, r: &mut Reader<'_>, f: F, pending: bool) -> Res<bool> {
        macro_rules! read {
            ($field:ident, $f:expr, $read:expr) => {
                if r.value(pending, $f.key_len())? {
                    self.$field = Some($read);
                    true
                } else {
                    false
                }
            };
        }
        Ok(match f {
            F::Seq => read!(seq, F::Seq, r.u64()?),
            F::TimeMs => read!(time_ms, F::TimeMs, r.i64()?),
            F::Lat => read!(lat, F::Lat, r.f64()?),
            F::Lon => read!(lon, F::Lon, r.f64()?),
            F::AccuracyM => read!(accuracy_m, F::AccuracyM, f32_field(r)?),
            F::AltitudeM => read!(altitude_m, F::AltitudeM, f32_field(r)?),
            F::SpeedMps => read!(speed_mps, F::SpeedMps, f32_field(r)?),
            F::HeadingDeg => read!(heading_deg, F::HeadingDeg, f32_field(r)?),
            F::Satellites => read!(satellites, F::Satellites, r.u8()?),
            F::Source => read!(source, F::Source, r.variant(&SOURCES)?),
            _ => unreachable!("{f:?} is not a fix field"),
        })
    }

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

/// Bit of field `f` in [`Fields::present`].
const fn bit(f: F) -> u32 {
    1 << f as u32
}

/// The fast path for a fix in the layout [`encode_uplink`] writes (compact,
/// fields in declaration order, optional ones left out, no `null`, no
/// escapes), after its opening `{` (and `"type":"fix",`): fills `ff`, sets
/// `present` and returns true after the closing `}`. Anything else returns
/// false, and the caller rewinds and takes the general path, so what is
/// accepted and how it reads are exactly the general path's (the differential
/// tests run both).
#[inline]
fn fast_fix(r: &mut Reader<'_>, ff: &mut FixFields, present: &mut u32) -> bool {
    let mut body = || -> Option<()> {
        r.lit(b"\"seq\":").then_some(())?;
        ff.seq = Some(r.u64().ok()?);
        r.lit(b",\"time_ms\":").then_some(())?;
        ff.time_ms = Some(r.i64().ok()?);
        r.lit(b",\"lat\":").then_some(())?;
        ff.lat = Some(r.f64().ok()?);
        r.lit(b",\"lon\":").then_some(())?;
        ff.lon = Some(r.f64().ok()?);
        r.lit(b",\"accuracy_m\":").then_some(())?;
        ff.accuracy_m = Some(f32_field(r).ok()?);
        *present |= bit(F::Seq) | bit(F::TimeMs) | bit(F::Lat) | bit(F::Lon) | bit(F::AccuracyM);
        if r.lit(b",\"altitude_m\":") {
            ff.altitude_m = Some(f32_field(r).ok()?);
            *present |= bit(F::AltitudeM);
        }
        if r.lit(b",\"speed_mps\":") {
            ff.speed_mps = Some(f32_field(r).ok()?);
            *present |= bit(F::SpeedMps);
        }
        if r.lit(b",\"heading_deg\":") {
            ff.heading_deg = Some(f32_field(r).ok()?);
            *present |= bit(F::HeadingDeg);
        }
        if r.lit(b",\"satellites\":") {
            ff.satellites = Some(r.u8().ok()?);
            *present |= bit(F::Satellites);
        }
        r.lit(b",\"source\":\"").then_some(())?;
        let source = if r.lit(b"gnss\"") {
            PositionSource::Gnss
        } else if r.lit(b"wifi\"") {
            PositionSource::Wifi
        } else if r.lit(b"cell\"") {
            PositionSource::Cell
        } else if r.lit(b"fused\"") {
            PositionSource::Fused
        } else {
            return None;
        };
        ff.source = Some(source);
        *present |= bit(F::Source);
        r.lit(b"}").then_some(())
    };
    body().is_some()
}

/// A batch's fixes, validated while they are read (validation depends on
/// nothing else in the message); reported only if the message is a batch.
#[derive(Debug, Default)]
struct Fixes {
    valid: Vec<Fix>,
    rejected: Vec<RejectedFix>,
}

/// Every field of an uplink object as read; `present` has bit `F as u32`
/// set for each field given and not `null`.
#[derive(Debug, Default)]
struct Fields<'a> {
    present: u32,
    kind: Option<Cow<'a, str>>,
    device_id: Option<Cow<'a, str>>,
    fix: FixFields,
    battery_pct: Option<u8>,
    charging: Option<bool>,
    strap: Option<StrapState>,
    case_tamper: Option<bool>,
    signal_dbm: Option<i8>,
    gnss: Option<GnssState>,
    event: Option<EventKind>,
    fixes: Option<Fixes>,
    sealed: Option<Cow<'a, str>>,
    mac: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    /// Rejects the first field of `list` (in list order) that is present.
    fn forbid(&self, list: &[F]) -> Result<(), DecodeError> {
        match list.iter().find(|&&f| self.present & (1 << f as u32) != 0) {
            Some(f) => Err(DecodeError::UnexpectedField(f.name())),
            None => Ok(()),
        }
    }
}

/// Reads one uplink document.
/// Reads one uplink document into `w` (filled in place: the struct is large
/// and copying it showed in profiles).
fn read_uplink<'a>(
    bytes: &'a [u8],
    opts: &DecodeOptions,
    now: Timestamp,
    w: &mut Fields<'a>,
) -> Result<(), Syntax> {
    let mut r = Reader::new(bytes);
    if r.lit(b"{\"type\":\"fix\",")
        && fast_fix(&mut r, &mut w.fix, &mut w.present)
        && r.end().is_ok()
    {
        w.kind = Some(Cow::Borrowed("fix"));
        w.present |= bit(F::Type);
        return Ok(());
    }
    r.rewind(0);
    *w = Fields::default();
    let result = read_struct(
        &mut r,
        &UPLINK_ORDER,
        &UPLINK_TABLE,
        uplink_field,
        deny_unknown,
        #[inline(always)]
        |r, f, pending| {
            macro_rules! read {
                ($field:ident, $f:expr, $read:expr) => {
                    if r.value(pending, $f.key_len())? {
                        w.$field = Some($read);
                        w.present |= bit($f);
                    }
                };
            }
            match f {
                F::Type => read!(kind, F::Type, r.text()?),
                F::DeviceId => read!(device_id, F::DeviceId, r.text()?),
                F::BatteryPct => read!(battery_pct, F::BatteryPct, r.u8()?),
                F::Charging => read!(charging, F::Charging, r.bool()?),
                F::Strap => read!(strap, F::Strap, r.variant(&STRAPS)?),
                F::CaseTamper => read!(case_tamper, F::CaseTamper, r.bool()?),
                F::SignalDbm => read!(signal_dbm, F::SignalDbm, r.i8()?),
                F::Gnss => read!(gnss, F::Gnss, r.variant(&GNSS)?),
                F::Event => read!(event, F::Event, r.variant(&EVENTS)?),
                F::Fixes => read!(fixes, F::Fixes, read_fixes(r, opts, now)?),
                F::Sealed => read!(sealed, F::Sealed, r.text()?),
                F::Mac => read!(mac, F::Mac, r.text()?),
                _ => {
                    if w.fix.set(r, f, pending)? {
                        w.present |= bit(f);
                    }
                }
            }
            Ok(())
        },
    )
    .and_then(|()| r.end());
    match result {
        Ok(()) => Ok(()),
        Err(_) => Err(r.syntax()),
    }
}

/// Reads the `fixes` array, validating each fix on its own.
fn read_fixes(outer: &mut Reader<'_>, opts: &DecodeOptions, now: Timestamp) -> Res<Fixes> {
    // A local copy whose address never escapes (every reader step below is
    // inlined), so its position lives in a register instead of a store and
    // reload per token.
    let mut local = *outer;
    let result = read_fixes_local(&mut local, opts, now);
    *outer = local;
    result
}

#[inline(always)]
fn read_fixes_local(r: &mut Reader<'_>, opts: &DecodeOptions, now: Timestamp) -> Res<Fixes> {
    if r.peek() != Some(b'[') {
        return Err(r.error("expected an array"));
    }
    r.bump();
    // A fix object is at least ~70 bytes; do not reallocate while reading.
    let mut out = Fixes {
        valid: Vec::with_capacity((r.remaining() / 64).min(4096)),
        rejected: Vec::new(),
    };
    let mut first = true;
    while r.array_next(&mut first)? {
        let mut ff = FixFields::default();
        let start = r.position();
        if !(r.lit(b"{") && fast_fix(r, &mut ff, &mut 0)) {
            r.rewind(start);
            ff = FixFields::default();
            read_struct(
                r,
                &FIX_ORDER,
                &FIX_TABLE,
                fix_field,
                deny_unknown,
                #[inline(always)]
                |r, f, pending| ff.set(r, f, pending).map(|_| ()),
            )?;
        }
        match ff
            .into_fix()
            .and_then(|f| check_fix(&f, opts, now).map(|()| f))
        {
            Ok(f) => out.valid.push(f),
            Err(error) => out.rejected.push(RejectedFix { seq: ff.seq, error }),
        }
    }
    Ok(out)
}

/// Decodes a Geoward JSON uplink (plain or sealed) for `device` (from the topic).
pub(crate) fn decode(
    payload: &[u8],
    device: &DeviceId,
    opts: &DecodeOptions,
    now: Timestamp,
    keys: &dyn KeyLookup,
) -> Result<Body, DecodeError> {
    let mut w = Fields::default();
    read_uplink(payload, opts, now, &mut w).map_err(Syntax::into_error)?;
    let Some(sealed) = &w.sealed else {
        w.forbid(&[F::Mac])?;
        return convert(&mut w, device, opts, now, false);
    };
    w.forbid(&UPLINK_ORDER[..20])?;
    let mac = need(w.mac.as_ref(), "mac")?;
    let inner = BASE64
        .decode(sealed.as_bytes())
        .map_err(|_| DecodeError::BadBase64("sealed"))?;
    let tag = BASE64
        .decode(mac.as_bytes())
        .map_err(|_| DecodeError::BadBase64("mac"))?;
    let secret = keys
        .device_secret(device)
        .ok_or_else(|| DecodeError::UnknownKey(device.clone()))?;
    if !verify_mac(&secret, device, &inner, &tag) {
        return Err(DecodeError::BadMac);
    }
    let mut w = Fields::default();
    read_uplink(&inner, opts, now, &mut w).map_err(Syntax::into_error)?;
    w.forbid(&[F::Sealed, F::Mac])?;
    convert(&mut w, device, opts, now, true)
}

fn convert(
    w: &mut Fields<'_>,
    device: &DeviceId,
    opts: &DecodeOptions,
    now: Timestamp,
    authenticated: bool,
) -> Result<Body, DecodeError> {
    use F::*;
    let kind = need(w.kind.as_ref(), "type")?;
    if let Some(id) = &w.device_id
        && id != device.as_str()
    {
        return Err(DecodeError::DeviceMismatch {
            topic: device.clone(),
            payload: id.clone().into_owned(),
        });
    }
    let mut rejected_fixes = Vec::new();
    let message = match &**kind {
        "fix" => {
            w.forbid(&[
                BatteryPct, Charging, Strap, CaseTamper, SignalDbm, Gnss, Event, Fixes,
            ])?;
            let fix = w.fix.into_fix()?;
            check_fix(&fix, opts, now)?;
            Uplink::Fix(fix)
        }
        "heartbeat" => {
            w.forbid(&[
                Lat, Lon, AccuracyM, AltitudeM, SpeedMps, HeadingDeg, Satellites, Source, Event,
                Fixes,
            ])?;
            let hb = Heartbeat {
                seq: need(w.fix.seq, "seq")?,
                time: Timestamp(need(w.fix.time_ms, "time_ms")?),
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
            w.forbid(&[
                Lat, Lon, AccuracyM, AltitudeM, SpeedMps, HeadingDeg, Satellites, Source,
                BatteryPct, Charging, Strap, CaseTamper, SignalDbm, Gnss, Fixes,
            ])?;
            let ev = DeviceEvent {
                seq: need(w.fix.seq, "seq")?,
                time: Timestamp(need(w.fix.time_ms, "time_ms")?),
                kind: need(w.event, "event")?,
            };
            check_time(ev.time, opts, now)?;
            Uplink::Event(ev)
        }
        "batch" => {
            w.forbid(&[
                Seq, TimeMs, Lat, Lon, AccuracyM, AltitudeM, SpeedMps, HeadingDeg, Satellites,
                Source, BatteryPct, Charging, Strap, CaseTamper, SignalDbm, Gnss, Event,
            ])?;
            let fixes = need(w.fixes.take(), "fixes")?;
            if fixes.valid.is_empty() {
                return Err(match fixes.rejected.into_iter().next() {
                    Some(first) => first.error,
                    None => DecodeError::EmptyBatch,
                });
            }
            rejected_fixes = fixes.rejected;
            Uplink::Batch(Batch { fixes: fixes.valid })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path takes what the encoder writes (the differential tests
    /// in `oracle` check it agrees with the general path).
    #[test]
    fn fast_path_reads_encoder_output() {
        let fix = Fix {
            seq: 7,
            time: Timestamp(1_763_799_940_000),
            lat: 31.2304321,
            lon: -121.4737012,
            accuracy_m: 8.5,
            altitude_m: Some(-12.0),
            speed_mps: None,
            heading_deg: Some(270.5),
            satellites: Some(9),
            source: PositionSource::Fused,
        };
        let bytes = encode_uplink(&Uplink::Fix(fix));
        let mut r = Reader::new(&bytes);
        let (mut ff, mut present) = (FixFields::default(), 0);
        assert!(r.lit(b"{\"type\":\"fix\","));
        assert!(fast_fix(&mut r, &mut ff, &mut present));
        assert_eq!(ff.into_fix(), Ok(fix));
        assert_eq!(r.end(), Ok(()));
        let expected = [
            F::Seq,
            F::TimeMs,
            F::Lat,
            F::Lon,
            F::AccuracyM,
            F::AltitudeM,
            F::HeadingDeg,
            F::Satellites,
            F::Source,
        ]
        .iter()
        .fold(0, |m, &f| m | bit(f));
        assert_eq!(present, expected);
        // A space is enough to leave the fast path.
        let spaced = String::from_utf8(bytes)
            .expect("utf-8")
            .replace(",\"lon", ", \"lon");
        let mut r = Reader::new(spaced.as_bytes());
        assert!(r.lit(b"{\"type\":\"fix\","));
        assert!(!fast_fix(&mut r, &mut FixFields::default(), &mut 0));
    }
}
