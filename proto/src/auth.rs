//! Device authentication inside the payload.
//!
//! The broker's plain-TCP listener has no per-client topic ACL, so anyone can
//! publish on any device's topic. A device proves itself with a per-device
//! secret: a 16-byte truncated HMAC-SHA256 tag over `device id || message
//! bytes` (binary frames: the frame before the tag; JSON: the sealed inner
//! message). Putting the device id into the MAC input binds the message to the
//! topic's device, so a frame replayed on another device's topic fails.
//! OwnTracks `encrypted` payloads are authenticated by the secretbox instead.

use std::borrow::Cow;
use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::DeviceId;

/// Length of the truncated HMAC-SHA256 tag in bytes.
pub const MAC_LEN: usize = 16;

/// Where the codecs get a device's secret. One secret per device serves both
/// the HMAC (Geoward JSON and binary) and OwnTracks encryption (where it is the
/// UTF-8 key the app is configured with, at most 32 bytes).
pub trait KeyLookup {
    /// The device's secret, or `None` if the device has none.
    fn device_secret(&self, device: &DeviceId) -> Option<Cow<'_, [u8]>>;
}

/// A lookup that knows no keys: authenticated messages are then rejected with
/// `unknown_key`, plain ones pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKeys;

impl KeyLookup for NoKeys {
    fn device_secret(&self, _device: &DeviceId) -> Option<Cow<'_, [u8]>> {
        None
    }
}

impl KeyLookup for HashMap<DeviceId, Vec<u8>> {
    fn device_secret(&self, device: &DeviceId) -> Option<Cow<'_, [u8]>> {
        self.get(device).map(|k| Cow::Borrowed(k.as_slice()))
    }
}

fn mac_over(secret: &[u8], device: &DeviceId, bytes: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("hmac takes keys of any length"));
    mac.update(device.as_str().as_bytes());
    mac.update(bytes);
    mac
}

/// The 16-byte tag: HMAC-SHA256(secret, device id || bytes), first 16 bytes.
pub fn mac_tag(secret: &[u8], device: &DeviceId, bytes: &[u8]) -> [u8; MAC_LEN] {
    let full = mac_over(secret, device, bytes).finalize().into_bytes();
    let mut tag = [0u8; MAC_LEN];
    tag.copy_from_slice(&full[..MAC_LEN]);
    tag
}

/// Checks a tag in constant time. A tag of the wrong length fails.
pub fn verify_mac(secret: &[u8], device: &DeviceId, bytes: &[u8], tag: &[u8]) -> bool {
    tag.len() == MAC_LEN
        && mac_over(secret, device, bytes)
            .verify_truncated_left(tag)
            .is_ok()
}
