//! Fuzzes the owntracks uplink decoder: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    geoward_proto_fuzz::decode_uplink_both_ways(geoward_proto::Encoding::OwnTracks, data);
});
