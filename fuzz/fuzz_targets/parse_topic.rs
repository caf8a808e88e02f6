//! Fuzzes the topic parser: never panics, and what parses formats back to
//! the same string.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(topic) = geoward_proto::Topic::parse(s)
    {
        assert_eq!(topic.to_string(), s);
    }
});
