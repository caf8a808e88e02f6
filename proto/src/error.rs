//! Typed errors. Every rejection has a stable, low-cardinality
//! [`DecodeError::reason`] code that the service uses as a metric label;
//! the codes are part of the protocol documentation (PROTOCOL.md) and must
//! not change once released.

use thiserror::Error;

use crate::ids::DeviceId;
use crate::message::{Encoding, Timestamp};

/// Why an id (device, office, user, tenant) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// The id is empty.
    #[error("id is empty")]
    Empty,
    /// The id is longer than allowed.
    #[error("id is {len} bytes long, more than allowed")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// The id contains a character outside its charset.
    #[error("id contains the character {c:?} outside its charset")]
    BadChar {
        /// The first offending character.
        c: char,
    },
}

/// Why an MQTT topic is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    /// The topic matches none of the documented schemes.
    #[error("topic does not match any known scheme")]
    UnknownScheme,
    /// A `/tenants/{tenant}/` prefix is malformed.
    #[error("bad tenant prefix: {0}")]
    BadTenant(IdError),
    /// An id segment (device, office, user) is invalid.
    #[error("bad {segment} id in topic: {error}")]
    BadId {
        /// Which segment: `device`, `office` or `user`.
        segment: &'static str,
        /// What is wrong with it.
        error: IdError,
    },
}

/// Why a payload was rejected. Decoding never panics; it returns one of these.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecodeError {
    /// The payload is larger than [`crate::DecodeOptions::max_payload_bytes`].
    #[error("payload of {size} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// Payload size in bytes.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A binary frame ends early.
    #[error("frame truncated: {needed} bytes needed, {got} present")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A binary frame has bytes after its end.
    #[error("{extra} trailing bytes after the frame")]
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// The first byte of a binary frame is not the magic byte.
    #[error("bad frame magic byte {0:#04x}")]
    BadMagic(u8),
    /// A binary frame of a version this code does not know.
    #[error("unsupported frame version {0}")]
    UnsupportedVersion(u8),
    /// The message type is not one of the protocol's.
    #[error("unknown message type {0}")]
    UnknownMessageType(String),
    /// An OwnTracks message type other than `location`/`encrypted`
    /// (`lwt`, `transition`, `waypoint`, ...).
    #[error("unsupported owntracks message type {0}")]
    UnsupportedOwnTracksType(String),
    /// The payload is not well-formed JSON of the expected shape.
    #[error("malformed json: {0}")]
    BadJson(String),
    /// A required field is absent.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field that does not belong to this message type is present.
    #[error("field {0} is not allowed in this message type")]
    UnexpectedField(&'static str),
    /// A field holds a code or bit pattern the protocol does not define.
    #[error("invalid value in field {field}: {detail}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A numeric field is outside its documented range.
    #[error("field {field} out of range: {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The offending value, printed.
        value: String,
    },
    /// Latitude or longitude outside `-90..=90` / `-180..=180`.
    #[error("coordinate out of range: lat {lat}, lon {lon}")]
    CoordinateOutOfRange {
        /// Latitude in degrees.
        lat: f64,
        /// Longitude in degrees.
        lon: f64,
    },
    /// A number is NaN or infinite.
    #[error("field {0} is not a finite number")]
    NonFinite(&'static str),
    /// Negative horizontal accuracy.
    #[error("negative accuracy {0} m")]
    NegativeAccuracy(f32),
    /// A time further in the future than [`crate::DecodeOptions::max_future_ms`].
    #[error("time {time} is more than {max_future_ms} ms after now ({now})")]
    FutureTime {
        /// The message time.
        time: Timestamp,
        /// The `now` passed to the decoder.
        now: Timestamp,
        /// The allowed clock skew.
        max_future_ms: i64,
    },
    /// A time before [`crate::validate::MIN_TIME`] (a device with a reset clock).
    #[error("time {0} is before 2000-01-01")]
    TimeTooOld(Timestamp),
    /// A speed above [`crate::DecodeOptions::max_speed_mps`].
    #[error("speed {speed_mps} m/s exceeds the limit of {max_mps} m/s")]
    AbsurdSpeed {
        /// The reported speed.
        speed_mps: f32,
        /// The configured limit.
        max_mps: f32,
    },
    /// A batch without fixes.
    #[error("batch holds no fixes")]
    EmptyBatch,
    /// A base64 field does not decode.
    #[error("bad base64 in field {0}")]
    BadBase64(&'static str),
    /// The MAC tag does not match: wrong key, forged or corrupted message.
    #[error("message authentication failed")]
    BadMac,
    /// The message is authenticated or encrypted but the key lookup knows no
    /// secret for the device.
    #[error("no key known for device {0}")]
    UnknownKey(DeviceId),
    /// The device's secret cannot be used (an OwnTracks key longer than 32 bytes).
    #[error("device key is unusable: {0}")]
    BadKey(&'static str),
    /// An OwnTracks `encrypted` payload fails to decrypt (wrong key or forged).
    #[error("owntracks payload could not be decrypted")]
    DecryptFailed,
    /// The message is not authenticated but the options require it.
    #[error("message is not authenticated and the listener requires it")]
    Unauthenticated,
    /// The device id inside the payload differs from the topic's.
    #[error("payload device id {payload:?} does not match topic device id {topic}")]
    DeviceMismatch {
        /// The topic's device id.
        topic: DeviceId,
        /// The payload's device id.
        payload: String,
    },
    /// The topic is valid but does not carry uplink messages (downlink, alerts).
    #[error("topic does not carry uplink messages")]
    NotUplinkTopic,
    /// The topic is not one of ours.
    #[error("bad topic: {0}")]
    Topic(#[from] TopicError),
}

impl DecodeError {
    /// A stable low-cardinality code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::PayloadTooLarge { .. } => "payload_too_large",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::TrailingBytes { .. } => "trailing_bytes",
            DecodeError::BadMagic(_) => "bad_magic",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::UnknownMessageType(_) => "unknown_message_type",
            DecodeError::UnsupportedOwnTracksType(_) => "unsupported_type",
            DecodeError::BadJson(_) => "bad_json",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::UnexpectedField(_) => "unexpected_field",
            DecodeError::InvalidField { .. } => "invalid_field",
            DecodeError::OutOfRange { .. } => "out_of_range",
            DecodeError::CoordinateOutOfRange { .. } => "coordinate_out_of_range",
            DecodeError::NonFinite(_) => "non_finite",
            DecodeError::NegativeAccuracy(_) => "negative_accuracy",
            DecodeError::FutureTime { .. } => "future_time",
            DecodeError::TimeTooOld(_) => "time_too_old",
            DecodeError::AbsurdSpeed { .. } => "absurd_speed",
            DecodeError::EmptyBatch => "empty_batch",
            DecodeError::BadBase64(_) => "bad_base64",
            DecodeError::BadMac => "bad_mac",
            DecodeError::UnknownKey(_) => "unknown_key",
            DecodeError::BadKey(_) => "bad_key",
            DecodeError::DecryptFailed => "decrypt_failed",
            DecodeError::Unauthenticated => "unauthenticated",
            DecodeError::DeviceMismatch { .. } => "device_mismatch",
            DecodeError::NotUplinkTopic => "topic_mismatch",
            DecodeError::Topic(_) => "bad_topic",
        }
    }

    /// Every reason code, for documentation tests and metric pre-registration.
    pub const ALL_REASONS: &'static [&'static str] = &[
        "payload_too_large",
        "truncated",
        "trailing_bytes",
        "bad_magic",
        "unsupported_version",
        "unknown_message_type",
        "unsupported_type",
        "bad_json",
        "missing_field",
        "unexpected_field",
        "invalid_field",
        "out_of_range",
        "coordinate_out_of_range",
        "non_finite",
        "negative_accuracy",
        "future_time",
        "time_too_old",
        "absurd_speed",
        "empty_batch",
        "bad_base64",
        "bad_mac",
        "unknown_key",
        "bad_key",
        "decrypt_failed",
        "unauthenticated",
        "device_mismatch",
        "topic_mismatch",
        "bad_topic",
    ];
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The encoding cannot carry this message kind (OwnTracks carries fixes only).
    #[error("{encoding:?} cannot carry a {kind} message")]
    UnsupportedMessage {
        /// The encoding asked for.
        encoding: Encoding,
        /// The message kind ([`crate::Uplink::kind`]).
        kind: &'static str,
    },
    /// The protection asked for does not exist in this encoding
    /// (encryption is OwnTracks-only, a MAC is Geoward-only).
    #[error("{encoding:?} does not support this protection")]
    UnsupportedProtection {
        /// The encoding asked for.
        encoding: Encoding,
    },
    /// A batch without fixes.
    #[error("batch holds no fixes")]
    EmptyBatch,
    /// A value does not fit the binary frame (NaN coordinate, a batch whose
    /// sequence or time span exceeds the deltas: split it).
    #[error("field {0} cannot be represented in this encoding")]
    Unrepresentable(&'static str),
    /// An OwnTracks key longer than 32 bytes.
    #[error("owntracks key is longer than 32 bytes")]
    BadKey,
}

impl EncodeError {
    /// A stable low-cardinality code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            EncodeError::UnsupportedMessage { .. } => "unsupported_message",
            EncodeError::UnsupportedProtection { .. } => "unsupported_protection",
            EncodeError::EmptyBatch => "empty_batch",
            EncodeError::Unrepresentable(_) => "unrepresentable",
            EncodeError::BadKey => "bad_key",
        }
    }
}

impl TopicError {
    /// A stable low-cardinality code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            TopicError::UnknownScheme => "unknown_scheme",
            TopicError::BadTenant(_) => "bad_tenant",
            TopicError::BadId { .. } => "bad_id",
        }
    }
}
