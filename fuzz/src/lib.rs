//! Shared setup for the fuzz targets: one uplink decoder harness per encoding.

use std::collections::HashMap;

use geoward_proto::{DecodeOptions, DeviceId, Encoding, Timestamp, Topic, decode_uplink};

/// Decodes `data` as an uplink of `encoding` twice: with the key known and
/// authentication optional, and with authentication required. The device
/// has a secret so the MAC and decryption paths run too. Any panic is a bug.
pub fn decode_uplink_both_ways(encoding: Encoding, data: &[u8]) {
    let device = DeviceId::new("fuzz-device").expect("valid id");
    let keys = HashMap::from([(device.clone(), b"correct horse battery staple".to_vec())]);
    let topic = Topic::uplink(device, encoding);
    let now = Timestamp(1_763_800_000_000);
    for require_authenticated in [false, true] {
        let opts = DecodeOptions {
            require_authenticated,
            ..DecodeOptions::default()
        };
        if let Err(e) = decode_uplink(&topic, data, &opts, now, &keys) {
            // Reason codes must come from the documented set.
            assert!(geoward_proto::DecodeError::ALL_REASONS.contains(&e.reason()));
        }
    }
}
