//! The entry points: pick the codec by topic, check size first and
//! authentication last, and say who sent what.

use crate::KeyLookup;
use crate::error::{DecodeError, EncodeError};
use crate::ids::{DeviceId, TenantId};
use crate::message::{Downlink, Encoding, Timestamp, Uplink};
use crate::topic::{Route, Topic};
use crate::validate::{DecodeOptions, check_size};
use crate::{binary, json, owntracks};

/// A fix of a batch that failed validation. The rest of the batch is kept:
/// one bad fix must not make a device resend (or the service drop) hundreds
/// of good stored ones.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedFix {
    /// The fix's sequence number, when it could be read.
    pub seq: Option<u64>,
    /// Why it was rejected.
    pub error: DecodeError,
}

/// What the codec-specific decoders return.
#[derive(Debug)]
pub(crate) struct Body {
    pub(crate) message: Uplink,
    pub(crate) authenticated: bool,
    pub(crate) rejected_fixes: Vec<RejectedFix>,
}

/// A decoded and validated uplink message.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The device, from the topic (payloads cannot claim another one).
    pub device_id: DeviceId,
    /// The broker tenant from the topic's `/tenants/{tenant}/` prefix, if any;
    /// the service checks the device belongs to it.
    pub tenant: Option<TenantId>,
    /// The payload encoding.
    pub encoding: Encoding,
    /// Whether the payload proved the device's secret (MAC or OwnTracks
    /// encryption). Plain payloads are only as trustworthy as the broker's
    /// client authentication.
    pub authenticated: bool,
    /// The message. A batch here is never empty.
    pub message: Uplink,
    /// Fixes dropped from a batch by validation (empty for other messages).
    pub rejected_fixes: Vec<RejectedFix>,
}

/// Decodes and validates an uplink payload received on `topic`.
///
/// `now` is the receive time (used to reject fix times in the future); `keys`
/// supplies per-device secrets for authenticated and encrypted payloads.
/// Never panics; every rejection is a [`DecodeError`] with a `reason()`.
///
/// ```
/// use std::collections::HashMap;
/// use geoward_proto::*;
///
/// let device = DeviceId::new("bracelet-0001")?;
/// let secret = b"per-device secret".to_vec();
/// let keys = HashMap::from([(device.clone(), secret.clone())]);
/// let now = Timestamp(1_763_800_000_000);
/// let fix = Fix {
///     seq: 7, time: Timestamp(now.0 - 60_000), lat: 31.2304321, lon: 121.4737012,
///     accuracy_m: 8.5, altitude_m: None, speed_mps: None, heading_deg: None,
///     satellites: None, source: PositionSource::Gnss,
/// };
/// let frame = encode_uplink(&device, &Uplink::Fix(fix), Encoding::Binary,
///     Protection::Mac { secret: &secret })?;
///
/// let topic = Topic::parse("/tenants/acme/geoward/v1/dev/bracelet-0001/up/bin")?;
/// let opts = DecodeOptions { require_authenticated: true, ..DecodeOptions::default() };
/// let decoded = decode_uplink(&topic, &frame, &opts, now, &keys)?;
/// assert!(decoded.authenticated);
/// assert_eq!(decoded.tenant.as_ref().map(TenantId::as_str), Some("acme"));
/// assert_eq!(decoded.message, Uplink::Fix(fix));
///
/// // Tampering is a typed rejection with a metric-friendly reason.
/// let mut bad = frame.clone();
/// bad[10] ^= 1;
/// let err = decode_uplink(&topic, &bad, &opts, now, &keys).unwrap_err();
/// assert_eq!(err.reason(), "bad_mac");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_uplink(
    topic: &Topic,
    payload: &[u8],
    opts: &DecodeOptions,
    now: Timestamp,
    keys: &dyn KeyLookup,
) -> Result<Decoded, DecodeError> {
    check_size(payload.len(), opts)?;
    let (device, encoding) = match &topic.route {
        Route::Uplink { device, encoding } => (device, *encoding),
        Route::OwnTracks { device, .. } => (device, Encoding::OwnTracks),
        Route::Downlink { .. } | Route::OfficeAlerts { .. } => {
            return Err(DecodeError::NotUplinkTopic);
        }
    };
    let body = match encoding {
        Encoding::Json => json::decode(payload, device, opts, now, keys)?,
        Encoding::Binary => binary::decode(payload, device, opts, now, keys)?,
        Encoding::OwnTracks => owntracks::decode(payload, device, opts, now, keys)?,
    };
    if opts.require_authenticated && !body.authenticated {
        return Err(DecodeError::Unauthenticated);
    }
    Ok(Decoded {
        device_id: device.clone(),
        tenant: topic.tenant.clone(),
        encoding,
        authenticated: body.authenticated,
        message: body.message,
        rejected_fixes: body.rejected_fixes,
    })
}

/// How an encoded uplink proves its origin.
#[derive(Debug, Clone, Copy)]
pub enum Protection<'a> {
    /// Plain payload.
    None,
    /// Geoward JSON sealed envelope or authenticated binary frame, keyed by
    /// the device's secret.
    Mac {
        /// The device's secret.
        secret: &'a [u8],
    },
    /// OwnTracks `encrypted` payload with the device's key and a fresh nonce.
    Encrypt {
        /// The device's OwnTracks key (at most 32 bytes).
        secret: &'a [u8],
        /// A nonce never used before with this key.
        nonce: [u8; owntracks::NONCE_LEN],
    },
}

/// Encodes an uplink message of `device` (simulator, tests, reference
/// firmware). OwnTracks carries fixes only and ignores the fix's `seq`.
pub fn encode_uplink(
    device: &DeviceId,
    msg: &Uplink,
    encoding: Encoding,
    protection: Protection<'_>,
) -> Result<Vec<u8>, EncodeError> {
    match (encoding, protection) {
        (Encoding::Json, Protection::None) => Ok(json::encode_uplink(msg)),
        (Encoding::Json, Protection::Mac { secret }) => {
            Ok(json::seal(device, secret, &json::encode_uplink(msg)))
        }
        (Encoding::Binary, Protection::None) => binary::encode_uplink(msg, None),
        (Encoding::Binary, Protection::Mac { secret }) => {
            binary::encode_uplink(msg, Some((device, secret)))
        }
        (Encoding::OwnTracks, p @ (Protection::None | Protection::Encrypt { .. })) => {
            let Uplink::Fix(fix) = msg else {
                return Err(EncodeError::UnsupportedMessage {
                    encoding,
                    kind: msg.kind(),
                });
            };
            let plain = owntracks::encode_location(fix);
            match p {
                Protection::Encrypt { secret, nonce } => owntracks::encrypt(secret, &nonce, &plain),
                _ => Ok(plain),
            }
        }
        (encoding, _) => Err(EncodeError::UnsupportedProtection { encoding }),
    }
}

/// Encodes a downlink message (Geoward JSON; see PROTOCOL.md for why the
/// downlink has one encoding).
pub fn encode_downlink(msg: &Downlink) -> Vec<u8> {
    json::encode_downlink(msg)
}

/// Decodes a downlink message.
pub fn decode_downlink(payload: &[u8], opts: &DecodeOptions) -> Result<Downlink, DecodeError> {
    json::decode_downlink(payload, opts)
}
