//! OwnTracks JSON (`_type: location` on `owntracks/{user}/{device}`), plain
//! or `encrypted` with libsodium secretbox (XSalsa20-Poly1305).
//!
//! OwnTracks has no sequence number; the fix's `seq` is derived from `tst`
//! (unix seconds), which is monotonic for one phone as long as its clock is.
//! Two locations within the same second get the same seq and count as
//! duplicates. OwnTracks apps are not acked (MQTT QoS 1 is their delivery
//! guarantee). Other `_type`s (`lwt`, `transition`, `waypoint`, `card`, ...)
//! are rejected as `unsupported_type`.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use serde::Serialize;

use crate::KeyLookup;
use crate::codec::Body;
use crate::error::{DecodeError, EncodeError};
use crate::ids::DeviceId;
use crate::message::{Fix, PositionSource, Timestamp, Uplink};
use crate::scan::{self, Reader, Res, read_struct};
use crate::validate::{DecodeOptions, check_fix, out_of_range};

/// Length of the secretbox nonce that prefixes the ciphertext.
pub const NONCE_LEN: usize = 24;
/// Length of the secretbox (Poly1305) tag.
pub const TAG_LEN: usize = 16;
/// Length of the secretbox key; shorter OwnTracks keys are zero-padded.
pub const KEY_LEN: usize = 32;

/// The fields Geoward reads; OwnTracks sends many more, which are skipped
/// (they must still be well-formed JSON).
#[derive(Debug, Default)]
pub(crate) struct Wire<'a> {
    pub(crate) kind: Option<Cow<'a, str>>,
    pub(crate) data: Option<Cow<'a, str>>,
    pub(crate) lat: Option<f64>,
    pub(crate) lon: Option<f64>,
    pub(crate) tst: Option<i64>,
    pub(crate) acc: Option<f64>,
    pub(crate) alt: Option<f64>,
    pub(crate) vel: Option<f64>,
    pub(crate) cog: Option<f64>,
}

/// The wire fields, in the order of the array form (see [`crate::scan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    Type,
    Data,
    Lat,
    Lon,
    Tst,
    Acc,
    Alt,
    Vel,
    Cog,
}

impl From<F> for u32 {
    fn from(f: F) -> u32 {
        f as u32
    }
}

const ORDER: [F; 9] = [
    F::Type,
    F::Data,
    F::Lat,
    F::Lon,
    F::Tst,
    F::Acc,
    F::Alt,
    F::Vel,
    F::Cog,
];

/// The JSON keys of [`ORDER`] (indexed by `F as usize` too).
const KEYS: [&[u8]; 9] = [
    b"_type", b"data", b"lat", b"lon", b"tst", b"acc", b"alt", b"vel", b"cog",
];

/// The keys of [`ORDER`] as table entries.
const NAMES: [scan::Key; 9] = {
    let mut keys = [scan::Key::new(b""); 9];
    let mut i = 0;
    while i < 9 {
        keys[i] = scan::Key::new(KEYS[i]);
        i += 1;
    }
    keys
};

/// Hash lookup of [`NAMES`].
const TABLE: scan::KeyTable = scan::KeyTable::new(&NAMES);

/// Reads an OwnTracks document. Keys are decoded and checked even when the
/// field is ignored; ignored values are skipped.
pub(crate) fn read(bytes: &[u8]) -> Result<Wire<'_>, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut w = Wire::default();
    let lookup = |key: &[u8]| {
        Some(match key {
            b"_type" => F::Type,
            b"data" => F::Data,
            b"lat" => F::Lat,
            b"lon" => F::Lon,
            b"tst" => F::Tst,
            b"acc" => F::Acc,
            b"alt" => F::Alt,
            b"vel" => F::Vel,
            b"cog" => F::Cog,
            _ => return None,
        })
    };
    let skip = |r: &mut Reader<'_>, key: &[u8]| -> Res<()> {
        // Unknown keys are names serde would have decoded: they must be
        // valid UTF-8 (escapes were already checked by `key`).
        if std::str::from_utf8(key).is_err() {
            return Err(r.error("invalid utf-8 in a key"));
        }
        r.skip_value()
    };
    let result = read_struct(&mut r, &ORDER, &TABLE, lookup, skip, |r, f, pending| {
        if !r.value(pending, KEYS[f as usize].len())? {
            return Ok(());
        }
        match f {
            F::Type => w.kind = Some(r.text()?),
            F::Data => w.data = Some(r.text()?),
            F::Lat => w.lat = Some(r.f64()?),
            F::Lon => w.lon = Some(r.f64()?),
            F::Tst => w.tst = Some(r.i64()?),
            F::Acc => w.acc = Some(r.f64()?),
            F::Alt => w.alt = Some(r.f64()?),
            F::Vel => w.vel = Some(r.f64()?),
            F::Cog => w.cog = Some(r.f64()?),
        }
        Ok(())
    })
    .and_then(|()| r.end());
    match result {
        Ok(()) => Ok(w),
        Err(_) => Err(r.syntax().into_error()),
    }
}

fn need<T>(v: Option<T>, field: &'static str) -> Result<T, DecodeError> {
    match v {
        Some(v) => Ok(v),
        None => Err(DecodeError::MissingField(field)),
    }
}

/// OwnTracks pads the UTF-8 key with zero bytes to 32.
fn padded_key(secret: &[u8]) -> Option<[u8; KEY_LEN]> {
    if secret.len() > KEY_LEN {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    key[..secret.len()].copy_from_slice(secret);
    Some(key)
}

/// Decodes an OwnTracks payload for `device` (the topic's `{device}`).
pub(crate) fn decode(
    payload: &[u8],
    device: &DeviceId,
    opts: &DecodeOptions,
    now: Timestamp,
    keys: &dyn KeyLookup,
) -> Result<Body, DecodeError> {
    decode_with(payload, device, opts, now, keys, read)
}

/// [`decode`] with the document reader as a parameter, so that the test
/// oracle can run the same logic over the serde-based reader.
pub(crate) fn decode_with(
    payload: &[u8],
    device: &DeviceId,
    opts: &DecodeOptions,
    now: Timestamp,
    keys: &dyn KeyLookup,
    read: for<'b> fn(&'b [u8]) -> Result<Wire<'b>, DecodeError>,
) -> Result<Body, DecodeError> {
    let w = read(payload)?;
    let kind = need(w.kind.as_ref(), "_type")?;
    match &**kind {
        "location" => Ok(Body {
            message: Uplink::Fix(location(&w, opts, now)?),
            authenticated: false,
            rejected_fixes: Vec::new(),
        }),
        "encrypted" => {
            let data = need(w.data.as_ref(), "data")?;
            let raw = BASE64
                .decode(data.as_bytes())
                .map_err(|_| DecodeError::BadBase64("data"))?;
            let secret = keys
                .device_secret(device)
                .ok_or_else(|| DecodeError::UnknownKey(device.clone()))?;
            let key = padded_key(&secret)
                .ok_or(DecodeError::BadKey("owntracks key longer than 32 bytes"))?;
            if raw.len() < NONCE_LEN + TAG_LEN {
                return Err(DecodeError::DecryptFailed);
            }
            let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
            let plain = XSalsa20Poly1305::new(Key::from_slice(&key))
                .decrypt(Nonce::from_slice(nonce), ciphertext)
                .map_err(|_| DecodeError::DecryptFailed)?;
            let inner = read(&plain)?;
            let inner_kind = need(inner.kind.as_ref(), "_type")?;
            if &**inner_kind != "location" {
                return Err(DecodeError::UnsupportedOwnTracksType(
                    inner_kind.clone().into_owned(),
                ));
            }
            Ok(Body {
                message: Uplink::Fix(location(&inner, opts, now)?),
                authenticated: true,
                rejected_fixes: Vec::new(),
            })
        }
        other => Err(DecodeError::UnsupportedOwnTracksType(other.to_owned())),
    }
}

/// km/h (OwnTracks `vel`) to m/s.
pub fn kmh_to_mps(kmh: f64) -> f32 {
    (kmh / 3.6) as f32
}

fn location(w: &Wire<'_>, opts: &DecodeOptions, now: Timestamp) -> Result<Fix, DecodeError> {
    let tst = need(w.tst, "tst")?;
    let seq = u64::try_from(tst).map_err(|_| out_of_range("tst", tst))?;
    let time_ms = tst
        .checked_mul(1000)
        .ok_or_else(|| out_of_range("tst", tst))?;
    // Apps send -1 (or omit the field) when speed or course are unknown.
    let fix = Fix {
        seq,
        time: Timestamp(time_ms),
        lat: need(w.lat, "lat")?,
        lon: need(w.lon, "lon")?,
        accuracy_m: need(w.acc, "acc")? as f32,
        altitude_m: w.alt.map(|a| a as f32),
        speed_mps: w.vel.filter(|v| *v >= 0.0).map(kmh_to_mps),
        heading_deg: w
            .cog
            .filter(|c| *c >= 0.0)
            .map(|c| c.rem_euclid(360.0) as f32),
        satellites: None,
        source: PositionSource::Fused,
    };
    check_fix(&fix, opts, now)?;
    Ok(fix)
}

#[derive(Serialize)]
struct OutLocation {
    #[serde(rename = "_type")]
    kind: &'static str,
    tst: i64,
    lat: f64,
    lon: f64,
    acc: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    alt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vel: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cog: Option<i64>,
}

/// Encodes a fix as an OwnTracks `location`, the way the apps do: `tst` in
/// whole seconds, `acc`/`alt` in whole metres, `vel` in whole km/h, `cog` in
/// whole degrees. The fix's `seq` is not carried (the decoder derives it from `tst`).
pub fn encode_location(fix: &Fix) -> Vec<u8> {
    let out = OutLocation {
        kind: "location",
        tst: fix.time.0.div_euclid(1000),
        lat: fix.lat,
        lon: fix.lon,
        acc: (fix.accuracy_m as f64).round() as i64,
        alt: fix.altitude_m.map(|a| (a as f64).round() as i64),
        vel: fix.speed_mps.map(|s| (s as f64 * 3.6).round() as i64),
        cog: fix
            .heading_deg
            .map(|h| ((h as f64).round() as i64).rem_euclid(360)),
    };
    serde_json::to_vec(&out)
        .unwrap_or_else(|e| unreachable!("serialising a wire struct failed: {e}"))
}

/// Wraps a plaintext OwnTracks payload as `{"_type":"encrypted","data":...}`
/// with the caller's nonce (never reuse one with the same key; the pure core
/// has no RNG).
pub fn encrypt(
    secret: &[u8],
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let key = padded_key(secret).ok_or(EncodeError::BadKey)?;
    let ciphertext = XSalsa20Poly1305::new(Key::from_slice(&key))
        .encrypt(Nonce::from_slice(nonce), plaintext)
        .unwrap_or_else(|_| {
            unreachable!("secretbox encryption of an in-memory buffer cannot fail")
        });
    let mut data = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    data.extend_from_slice(nonce);
    data.extend_from_slice(&ciphertext);
    Ok(format!(
        r#"{{"_type":"encrypted","data":"{}"}}"#,
        BASE64.encode(data)
    )
    .into_bytes())
}
