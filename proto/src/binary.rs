//! The compact binary frame for bracelets (layout byte by byte in PROTOCOL.md).
//!
//! Little-endian, fixed layouts, no varints: a bracelet's firmware writes it
//! with a few stores, and the decoder reads it with constant-offset loads and
//! no allocation beyond the output `Vec` of a batch. Coordinates are fixed
//! point at 1e-7 degree (about 1 cm); a fix inside a batch takes 24 bytes
//! because its sequence number and time are deltas against the batch header.

use crate::KeyLookup;
use crate::auth::{MAC_LEN, mac_tag, verify_mac};
use crate::codec::{Body, RejectedFix};
use crate::error::{DecodeError, EncodeError};
use crate::ids::DeviceId;
use crate::message::{
    Batch, DeviceEvent, EventKind, Fix, GnssState, Heartbeat, PositionSource, StrapState,
    Timestamp, Uplink,
};
use crate::validate::{DecodeOptions, check_fix, check_heartbeat, check_time, out_of_range};

/// First byte of every frame (`'G'`).
pub const MAGIC: u8 = 0x47;
/// The frame version this code reads and writes.
pub const VERSION: u8 = 1;
/// Header: magic, version, message type, flags.
pub const HEADER_LEN: usize = 4;
/// Header flag: the frame ends in a 16-byte MAC tag.
pub const FLAG_AUTHENTICATED: u8 = 0x01;

/// Message type byte of a single fix.
pub const TYPE_FIX: u8 = 0x01;
/// Message type byte of a heartbeat.
pub const TYPE_HEARTBEAT: u8 = 0x02;
/// Message type byte of a device event.
pub const TYPE_EVENT: u8 = 0x03;
/// Message type byte of a batch of fixes.
pub const TYPE_BATCH: u8 = 0x04;

/// The position part shared by single and batched fixes.
pub const FIX_BODY_LEN: usize = 18;
/// A fix inside a batch: seq delta u16, time delta u32, position part.
pub const BATCH_FIX_LEN: usize = 2 + 4 + FIX_BODY_LEN;
/// A whole single-fix frame without tag.
pub const FIX_FRAME_LEN: usize = HEADER_LEN + 16 + FIX_BODY_LEN;
/// A whole heartbeat frame without tag.
pub const HEARTBEAT_FRAME_LEN: usize = HEADER_LEN + 16 + 3;
/// A whole event frame without tag.
pub const EVENT_FRAME_LEN: usize = HEADER_LEN + 16 + 1;
/// Batch header: frame header, base seq, base time, fix count.
pub const BATCH_HEADER_LEN: usize = HEADER_LEN + 8 + 8 + 2;

// Fix flag bits.
const FIX_SOURCE_MASK: u8 = 0x03;
const FIX_HAS_ALTITUDE: u8 = 0x04;
const FIX_HAS_SPEED: u8 = 0x08;
const FIX_HAS_HEADING: u8 = 0x10;
const FIX_HAS_SATELLITES: u8 = 0x20;
const FIX_RESERVED: u8 = 0xC0;

// Heartbeat status bits.
const HB_CHARGING: u8 = 0x01;
const HB_STRAP_SHIFT: u8 = 1;
const HB_CASE_TAMPER: u8 = 0x08;
const HB_GNSS_SHIFT: u8 = 4;
const HB_HAS_SIGNAL: u8 = 0x40;
const HB_RESERVED: u8 = 0x80;

#[inline(always)]
fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
#[inline(always)]
fn i16_at(b: &[u8], o: usize) -> i16 {
    i16::from_le_bytes([b[o], b[o + 1]])
}
#[inline(always)]
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
#[inline(always)]
fn i32_at(b: &[u8], o: usize) -> i32 {
    i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
#[inline(always)]
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}
#[inline(always)]
fn i64_at(b: &[u8], o: usize) -> i64 {
    u64_at(b, o) as i64
}

#[cold]
fn invalid(field: &'static str, detail: &str) -> DecodeError {
    DecodeError::InvalidField {
        field,
        detail: detail.to_owned(),
    }
}

/// Requires `msg` to be exactly `len` bytes (`tag` is added to the numbers
/// reported, so they describe the whole frame).
fn exact_len(msg: &[u8], len: usize, tag: usize) -> Result<(), DecodeError> {
    if msg.len() < len {
        return Err(DecodeError::Truncated {
            needed: len + tag,
            got: msg.len() + tag,
        });
    }
    if msg.len() > len {
        return Err(DecodeError::TrailingBytes {
            extra: msg.len() - len,
        });
    }
    Ok(())
}

/// Decodes the 18-byte position part. Absent optional fields must be zero so
/// every message has exactly one encoding.
#[inline(always)]
fn read_fix_body(b: &[u8; FIX_BODY_LEN], seq: u64, time: Timestamp) -> Result<Fix, DecodeError> {
    let flags = b[17];
    if flags & FIX_RESERVED != 0 {
        return Err(invalid("fix_flags", "reserved bits set"));
    }
    let source = match flags & FIX_SOURCE_MASK {
        0 => PositionSource::Gnss,
        1 => PositionSource::Wifi,
        2 => PositionSource::Cell,
        _ => PositionSource::Fused,
    };
    let alt = i16_at(b, 10);
    let speed = u16_at(b, 12);
    let heading = u16_at(b, 14);
    let sats = b[16];
    let optional =
        |present: bool, raw_is_zero: bool, field: &'static str| -> Result<bool, DecodeError> {
            if !present && !raw_is_zero {
                return Err(invalid(field, "absent field must be zero"));
            }
            Ok(present)
        };
    let altitude_m =
        optional(flags & FIX_HAS_ALTITUDE != 0, alt == 0, "altitude_m")?.then_some(alt as f32);
    let speed_mps = optional(flags & FIX_HAS_SPEED != 0, speed == 0, "speed_mps")?
        .then(|| speed as f32 / 100.0);
    let heading_deg = if optional(flags & FIX_HAS_HEADING != 0, heading == 0, "heading_deg")? {
        if heading >= 36_000 {
            return Err(out_of_range("heading_deg", heading as f32 / 100.0));
        }
        Some(heading as f32 / 100.0)
    } else {
        None
    };
    let satellites =
        optional(flags & FIX_HAS_SATELLITES != 0, sats == 0, "satellites")?.then_some(sats);
    Ok(Fix {
        seq,
        time,
        lat: i32_at(b, 0) as f64 / 1e7,
        lon: i32_at(b, 4) as f64 / 1e7,
        accuracy_m: u16_at(b, 8) as f32 / 10.0,
        altitude_m,
        speed_mps,
        heading_deg,
        satellites,
        source,
    })
}

fn body_of(b: &[u8]) -> &[u8; FIX_BODY_LEN] {
    b.last_chunk::<FIX_BODY_LEN>()
        .unwrap_or_else(|| unreachable!("callers pass at least FIX_BODY_LEN bytes"))
}

/// Decodes a binary uplink frame for `device` (from the topic).
pub(crate) fn decode(
    frame: &[u8],
    device: &DeviceId,
    opts: &DecodeOptions,
    now: Timestamp,
    keys: &dyn KeyLookup,
) -> Result<Body, DecodeError> {
    if frame.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            needed: HEADER_LEN,
            got: frame.len(),
        });
    }
    if frame[0] != MAGIC {
        return Err(DecodeError::BadMagic(frame[0]));
    }
    if frame[1] != VERSION {
        return Err(DecodeError::UnsupportedVersion(frame[1]));
    }
    let kind = frame[2];
    let flags = frame[3];
    if flags & !FLAG_AUTHENTICATED != 0 {
        return Err(invalid("flags", "reserved bits set"));
    }
    let authenticated = flags & FLAG_AUTHENTICATED != 0;
    let (msg, tag_len) = if authenticated {
        if frame.len() < HEADER_LEN + MAC_LEN {
            return Err(DecodeError::Truncated {
                needed: HEADER_LEN + MAC_LEN,
                got: frame.len(),
            });
        }
        let (msg, tag) = frame.split_at(frame.len() - MAC_LEN);
        let secret = keys
            .device_secret(device)
            .ok_or_else(|| DecodeError::UnknownKey(device.clone()))?;
        if !verify_mac(&secret, device, msg, tag) {
            return Err(DecodeError::BadMac);
        }
        (msg, MAC_LEN)
    } else {
        (frame, 0)
    };
    let mut rejected_fixes = Vec::new();
    let message = match kind {
        TYPE_FIX => {
            exact_len(msg, FIX_FRAME_LEN, tag_len)?;
            let fix = read_fix_body(body_of(msg), u64_at(msg, 4), Timestamp(i64_at(msg, 12)))?;
            check_fix(&fix, opts, now)?;
            Uplink::Fix(fix)
        }
        TYPE_HEARTBEAT => {
            exact_len(msg, HEARTBEAT_FRAME_LEN, tag_len)?;
            let status = msg[21];
            if status & HB_RESERVED != 0 {
                return Err(invalid("status", "reserved bits set"));
            }
            let strap = match (status >> HB_STRAP_SHIFT) & 0x03 {
                0 => StrapState::Intact,
                1 => StrapState::Open,
                2 => StrapState::Cut,
                _ => return Err(invalid("strap", "undefined strap state 3")),
            };
            let gnss = match (status >> HB_GNSS_SHIFT) & 0x03 {
                0 => GnssState::Off,
                1 => GnssState::Searching,
                2 => GnssState::Fixed,
                _ => return Err(invalid("gnss", "undefined gnss state 3")),
            };
            let signal = msg[22] as i8;
            let signal_dbm = if status & HB_HAS_SIGNAL != 0 {
                Some(signal)
            } else if signal != 0 {
                return Err(invalid("signal_dbm", "absent field must be zero"));
            } else {
                None
            };
            let hb = Heartbeat {
                seq: u64_at(msg, 4),
                time: Timestamp(i64_at(msg, 12)),
                battery_pct: msg[20],
                charging: status & HB_CHARGING != 0,
                strap,
                case_tamper: status & HB_CASE_TAMPER != 0,
                signal_dbm,
                gnss,
            };
            check_heartbeat(&hb, opts, now)?;
            Uplink::Heartbeat(hb)
        }
        TYPE_EVENT => {
            exact_len(msg, EVENT_FRAME_LEN, tag_len)?;
            let kind =
                event_from_code(msg[20]).ok_or_else(|| invalid("event", "undefined event code"))?;
            let ev = DeviceEvent {
                seq: u64_at(msg, 4),
                time: Timestamp(i64_at(msg, 12)),
                kind,
            };
            check_time(ev.time, opts, now)?;
            Uplink::Event(ev)
        }
        TYPE_BATCH => {
            if msg.len() < BATCH_HEADER_LEN {
                return Err(DecodeError::Truncated {
                    needed: BATCH_HEADER_LEN + tag_len,
                    got: frame.len(),
                });
            }
            let base_seq = u64_at(msg, 4);
            let base_time = i64_at(msg, 12);
            let count = u16_at(msg, 20) as usize;
            if count == 0 {
                return Err(DecodeError::EmptyBatch);
            }
            exact_len(msg, BATCH_HEADER_LEN + count * BATCH_FIX_LEN, tag_len)?;
            // The earliest fix is at base_time; if that is out of range the
            // whole batch is garbage (and later additions cannot overflow).
            check_time(Timestamp(base_time), opts, now)?;
            let (records, _) = msg[BATCH_HEADER_LEN..].as_chunks::<BATCH_FIX_LEN>();
            let mut fixes = Vec::with_capacity(records.len());
            for r in records {
                let seq = base_seq.checked_add(u16_at(r, 0) as u64);
                let time = Timestamp(base_time.saturating_add(u32_at(r, 2) as i64));
                let fix = match seq {
                    Some(seq) => read_fix_body(body_of(r), seq, time)
                        .and_then(|f| check_fix(&f, opts, now).map(|()| f)),
                    None => Err(out_of_range("seq", "overflows u64")),
                };
                match fix {
                    Ok(f) => fixes.push(f),
                    Err(error) => rejected_fixes.push(RejectedFix { seq, error }),
                }
            }
            if fixes.is_empty() {
                // Every fix failed: report the first reason as the message's.
                return Err(rejected_fixes.swap_remove(0).error);
            }
            Uplink::Batch(Batch { fixes })
        }
        other => return Err(DecodeError::UnknownMessageType(format!("{other:#04x}"))),
    };
    Ok(Body {
        message,
        authenticated,
        rejected_fixes,
    })
}

fn event_from_code(code: u8) -> Option<EventKind> {
    Some(match code {
        1 => EventKind::StrapOpened,
        2 => EventKind::StrapClosed,
        3 => EventKind::CaseOpened,
        4 => EventKind::LowBattery,
        5 => EventKind::PowerOff,
        6 => EventKind::Sos,
        7 => EventKind::JammingSuspected,
        8 => EventKind::PhoneLinkLost,
        9 => EventKind::PhoneLinkRestored,
        _ => return None,
    })
}

fn event_code(kind: EventKind) -> u8 {
    match kind {
        EventKind::StrapOpened => 1,
        EventKind::StrapClosed => 2,
        EventKind::CaseOpened => 3,
        EventKind::LowBattery => 4,
        EventKind::PowerOff => 5,
        EventKind::Sos => 6,
        EventKind::JammingSuspected => 7,
        EventKind::PhoneLinkLost => 8,
        EventKind::PhoneLinkRestored => 9,
    }
}

fn header(out: &mut Vec<u8>, kind: u8, authenticated: bool) {
    out.extend_from_slice(&[
        MAGIC,
        VERSION,
        kind,
        if authenticated { FLAG_AUTHENTICATED } else { 0 },
    ]);
}

fn fixed_point(deg: f64, field: &'static str) -> Result<i32, EncodeError> {
    let v = (deg * 1e7).round();
    if !v.is_finite() || v < i32::MIN as f64 || v > i32::MAX as f64 {
        return Err(EncodeError::Unrepresentable(field));
    }
    Ok(v as i32)
}

/// Writes the 18-byte position part. Quantises: accuracy to 0.1 m (clamped
/// to 0..=6553.5), altitude to whole metres (clamped to i16), speed to
/// 0.01 m/s (clamped to 0..=655.35), heading to 0.01 degree.
fn write_fix_body(out: &mut Vec<u8>, f: &Fix) -> Result<(), EncodeError> {
    let lat = fixed_point(f.lat, "lat")?;
    let lon = fixed_point(f.lon, "lon")?;
    // `as` from float saturates and maps NaN to 0: a documented clamp.
    let acc = (f.accuracy_m as f64 * 10.0).round() as u16;
    let mut flags = match f.source {
        PositionSource::Gnss => 0,
        PositionSource::Wifi => 1,
        PositionSource::Cell => 2,
        PositionSource::Fused => 3,
    };
    let alt = f.altitude_m.map_or(0, |a| {
        flags |= FIX_HAS_ALTITUDE;
        (a as f64).round() as i16
    });
    let speed = f.speed_mps.map_or(0, |s| {
        flags |= FIX_HAS_SPEED;
        (s as f64 * 100.0).round() as u16
    });
    let heading = f.heading_deg.map_or(0, |h| {
        flags |= FIX_HAS_HEADING;
        let cd = (h as f64 * 100.0).round().rem_euclid(36_000.0);
        cd as u16
    });
    let sats = f.satellites.map_or(0, |s| {
        flags |= FIX_HAS_SATELLITES;
        s
    });
    out.extend_from_slice(&lat.to_le_bytes());
    out.extend_from_slice(&lon.to_le_bytes());
    out.extend_from_slice(&acc.to_le_bytes());
    out.extend_from_slice(&alt.to_le_bytes());
    out.extend_from_slice(&speed.to_le_bytes());
    out.extend_from_slice(&heading.to_le_bytes());
    out.push(sats);
    out.push(flags);
    Ok(())
}

/// Encodes an uplink message as a binary frame; with `mac = Some((device,
/// secret))` the frame is flagged authenticated and ends in the 16-byte tag.
///
/// A batch uses its smallest seq and time as the base; it must span at most
/// 65 535 sequence numbers and 2^32-1 ms (49 days) and hold at most 65 535
/// fixes, else [`EncodeError::Unrepresentable`] tells the caller to split it.
pub fn encode_uplink(
    msg: &Uplink,
    mac: Option<(&DeviceId, &[u8])>,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    let authenticated = mac.is_some();
    match msg {
        Uplink::Fix(f) => {
            header(&mut out, TYPE_FIX, authenticated);
            out.extend_from_slice(&f.seq.to_le_bytes());
            out.extend_from_slice(&f.time.0.to_le_bytes());
            write_fix_body(&mut out, f)?;
        }
        Uplink::Heartbeat(h) => {
            header(&mut out, TYPE_HEARTBEAT, authenticated);
            out.extend_from_slice(&h.seq.to_le_bytes());
            out.extend_from_slice(&h.time.0.to_le_bytes());
            let strap = match h.strap {
                StrapState::Intact => 0,
                StrapState::Open => 1,
                StrapState::Cut => 2,
            };
            let gnss = match h.gnss {
                GnssState::Off => 0,
                GnssState::Searching => 1,
                GnssState::Fixed => 2,
            };
            let mut status = (strap << HB_STRAP_SHIFT) | (gnss << HB_GNSS_SHIFT);
            if h.charging {
                status |= HB_CHARGING;
            }
            if h.case_tamper {
                status |= HB_CASE_TAMPER;
            }
            if h.signal_dbm.is_some() {
                status |= HB_HAS_SIGNAL;
            }
            out.push(h.battery_pct);
            out.push(status);
            out.push(h.signal_dbm.unwrap_or(0) as u8);
        }
        Uplink::Event(e) => {
            header(&mut out, TYPE_EVENT, authenticated);
            out.extend_from_slice(&e.seq.to_le_bytes());
            out.extend_from_slice(&e.time.0.to_le_bytes());
            out.push(event_code(e.kind));
        }
        Uplink::Batch(b) => {
            let (Some(base_seq), Some(base_time)) = (
                b.fixes.iter().map(|f| f.seq).min(),
                b.fixes.iter().map(|f| f.time.0).min(),
            ) else {
                return Err(EncodeError::EmptyBatch);
            };
            let count =
                u16::try_from(b.fixes.len()).map_err(|_| EncodeError::Unrepresentable("fixes"))?;
            out.reserve(BATCH_HEADER_LEN + b.fixes.len() * BATCH_FIX_LEN + MAC_LEN);
            header(&mut out, TYPE_BATCH, authenticated);
            out.extend_from_slice(&base_seq.to_le_bytes());
            out.extend_from_slice(&base_time.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            for f in &b.fixes {
                let dseq = u16::try_from(f.seq - base_seq)
                    .map_err(|_| EncodeError::Unrepresentable("seq"))?;
                let dtime = u32::try_from(f.time.0.wrapping_sub(base_time) as u64)
                    .map_err(|_| EncodeError::Unrepresentable("time"))?;
                out.extend_from_slice(&dseq.to_le_bytes());
                out.extend_from_slice(&dtime.to_le_bytes());
                write_fix_body(&mut out, f)?;
            }
        }
    }
    if let Some((device, secret)) = mac {
        let tag = mac_tag(secret, device, &out);
        out.extend_from_slice(&tag);
    }
    Ok(out)
}
