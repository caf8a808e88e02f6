//! Geoward device wire protocol: the messages devices and the service
//! exchange over MQTT, their three encodings, validation and the topic
//! scheme. Pure: no IO, no clock, no async; `now` is always an argument.
//!
//! The byte-level specification is `PROTOCOL.md` beside this crate; golden
//! vectors in `tests/vectors/` are checked against this code.
//!
//! Code map (one job per module):
//! - [`message`]: the messages, independent of encoding.
//! - [`ids`]: validated device, office, user and tenant ids.
//! - [`topic`]: MQTT topic scheme, including rumqttd tenant prefixes.
//! - [`codec`]: the entry points [`decode_uplink`], [`encode_uplink`], downlink.
//! - [`json`], [`binary`], [`owntracks`]: one module per encoding; `scan`:
//!   the JSON reader both JSON codecs use (no serde on the uplink path).
//! - [`auth`]: per-device secrets and the truncated HMAC tag.
//! - [`validate`]: semantic checks and [`DecodeOptions`].
//! - [`error`]: typed errors with stable `reason()` codes.

#![warn(missing_docs)]

pub mod auth;
pub mod binary;
pub mod codec;
pub mod error;
pub mod ids;
pub mod json;
pub mod message;
pub mod owntracks;
mod scan;
pub mod topic;
pub mod validate;

#[cfg(test)]
mod oracle;

pub use auth::{KeyLookup, NoKeys};
pub use codec::{
    Decoded, Protection, RejectedFix, decode_downlink, decode_uplink, encode_downlink,
    encode_uplink,
};
pub use error::{DecodeError, EncodeError, IdError, TopicError};
pub use ids::{DeviceId, OfficeId, OwnTracksUser, TenantId};
pub use message::{
    Ack, Batch, Command, CommandAction, DeviceConfig, DeviceEvent, Downlink, Encoding, EventKind,
    Fix, GnssState, Heartbeat, PositionSource, StrapState, SupervisionLevel, Timestamp, Uplink,
};
pub use topic::{Route, Topic};
pub use validate::DecodeOptions;
