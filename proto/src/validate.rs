//! Semantic validation shared by all encodings, and the options that tune it.
//!
//! The codecs check shape (bytes, JSON, fields); this module checks meaning
//! (ranges, clocks, physics). Pure: `now` is an argument.

use crate::error::DecodeError;
use crate::message::{Fix, Heartbeat, Timestamp};

/// 2000-01-01T00:00:00Z. Earlier times come from devices whose clock reset
/// (often to 1970 or the GNSS week-rollover epoch); such a time is no evidence.
pub const MIN_TIME: Timestamp = Timestamp(946_684_800_000);

/// Limits applied while decoding. Construct with `..Default::default()`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Largest accepted payload in bytes (checked before any parsing).
    pub max_payload_bytes: usize,
    /// How far a message time may lie after `now` (device clock skew), in ms.
    pub max_future_ms: i64,
    /// Fastest plausible ground speed in m/s; faster fixes are rejected.
    pub max_speed_mps: f32,
    /// Reject messages that are not authenticated (MAC or OwnTracks encryption);
    /// set on listeners where the broker cannot prove a client's identity.
    pub require_authenticated: bool,
}

impl Default for DecodeOptions {
    /// 256 KiB payloads (a binary batch of ~10 000 fixes), 5 min clock skew,
    /// 350 m/s (faster than any airliner's ground speed), no authentication
    /// requirement.
    fn default() -> Self {
        DecodeOptions {
            max_payload_bytes: 256 * 1024,
            max_future_ms: 5 * 60 * 1000,
            max_speed_mps: 350.0,
            require_authenticated: false,
        }
    }
}

/// Checks a payload size against the limit.
pub fn check_size(len: usize, opts: &DecodeOptions) -> Result<(), DecodeError> {
    if len > opts.max_payload_bytes {
        return Err(DecodeError::PayloadTooLarge {
            size: len,
            max: opts.max_payload_bytes,
        });
    }
    Ok(())
}

/// Checks a message time: not before [`MIN_TIME`], not after `now + max_future_ms`.
#[inline]
pub fn check_time(
    time: Timestamp,
    opts: &DecodeOptions,
    now: Timestamp,
) -> Result<(), DecodeError> {
    if time < MIN_TIME {
        return Err(DecodeError::TimeTooOld(time));
    }
    if time.0 > now.0.saturating_add(opts.max_future_ms) {
        return Err(DecodeError::FutureTime {
            time,
            now,
            max_future_ms: opts.max_future_ms,
        });
    }
    Ok(())
}

#[inline]
fn finite(v: f32, field: &'static str) -> Result<(), DecodeError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(DecodeError::NonFinite(field))
    }
}

/// Lowest and highest plausible altitude in metres (Dead Sea shore to well
/// above any mountain; aircraft included).
pub const ALTITUDE_RANGE_M: (f32, f32) = (-1_000.0, 20_000.0);

/// Checks every field of a fix.
#[inline]
pub fn check_fix(fix: &Fix, opts: &DecodeOptions, now: Timestamp) -> Result<(), DecodeError> {
    if !fix.lat.is_finite() {
        return Err(DecodeError::NonFinite("lat"));
    }
    if !fix.lon.is_finite() {
        return Err(DecodeError::NonFinite("lon"));
    }
    if !(-90.0..=90.0).contains(&fix.lat) || !(-180.0..=180.0).contains(&fix.lon) {
        return Err(DecodeError::CoordinateOutOfRange {
            lat: fix.lat,
            lon: fix.lon,
        });
    }
    finite(fix.accuracy_m, "accuracy_m")?;
    if fix.accuracy_m < 0.0 {
        return Err(DecodeError::NegativeAccuracy(fix.accuracy_m));
    }
    if let Some(alt) = fix.altitude_m {
        finite(alt, "altitude_m")?;
        if !(ALTITUDE_RANGE_M.0..=ALTITUDE_RANGE_M.1).contains(&alt) {
            return Err(out_of_range("altitude_m", alt));
        }
    }
    if let Some(speed) = fix.speed_mps {
        finite(speed, "speed_mps")?;
        if speed < 0.0 {
            return Err(out_of_range("speed_mps", speed));
        }
        if speed > opts.max_speed_mps {
            return Err(DecodeError::AbsurdSpeed {
                speed_mps: speed,
                max_mps: opts.max_speed_mps,
            });
        }
    }
    if let Some(heading) = fix.heading_deg {
        finite(heading, "heading_deg")?;
        if !(0.0..360.0).contains(&heading) {
            return Err(out_of_range("heading_deg", heading));
        }
    }
    check_time(fix.time, opts, now)
}

/// Checks a heartbeat (battery range and time).
pub fn check_heartbeat(
    hb: &Heartbeat,
    opts: &DecodeOptions,
    now: Timestamp,
) -> Result<(), DecodeError> {
    if hb.battery_pct > 100 {
        return Err(out_of_range("battery_pct", hb.battery_pct));
    }
    check_time(hb.time, opts, now)
}

/// Builds an [`DecodeError::OutOfRange`] (cold path: allocates).
#[cold]
pub fn out_of_range(field: &'static str, value: impl std::fmt::Display) -> DecodeError {
    DecodeError::OutOfRange {
        field,
        value: value.to_string(),
    }
}
