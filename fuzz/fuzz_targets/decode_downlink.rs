//! Fuzzes the downlink decoder (device side): it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = geoward_proto::decode_downlink(data, &geoward_proto::DecodeOptions::default());
});
