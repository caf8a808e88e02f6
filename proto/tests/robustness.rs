//! Property: decoding never panics, on arbitrary bytes or on mutated valid
//! payloads, and a mutated authenticated payload is never accepted.

mod common;

use common::*;
use geoward_proto::{
    DecodeOptions, Encoding, Protection, Topic, Uplink, decode_downlink, decode_uplink,
    encode_uplink,
};
use proptest::prelude::*;

fn topics() -> Vec<Topic> {
    [Encoding::Json, Encoding::Binary, Encoding::OwnTracks]
        .into_iter()
        .map(|e| Topic::uplink(device(), e))
        .collect()
}

fn opts(require_authenticated: bool) -> DecodeOptions {
    DecodeOptions {
        require_authenticated,
        ..DecodeOptions::default()
    }
}

/// Byte-level edits: flip, overwrite, insert, delete, truncate.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        let n = bytes.len();
        match *e {
            Edit::Flip(i, b) if n > 0 => bytes[i % n] ^= b,
            Edit::Set(i, b) if n > 0 => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Edit::Delete(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(i % (n + 1)),
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), strict in any::<bool>()) {
        for topic in topics() {
            let _ = decode_uplink(&topic, &bytes, &opts(strict), NOW, &keys());
        }
        let _ = decode_downlink(&bytes, &DecodeOptions::default());
    }

    /// Arbitrary frames that start with a valid header reach the body parsers.
    #[test]
    fn arbitrary_binary_bodies_never_panic(kind in 0u8..6, flags in 0u8..2,
        body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut frame = vec![geoward_proto::binary::MAGIC, geoward_proto::binary::VERSION, kind, flags];
        frame.extend_from_slice(&body);
        let _ = decode_uplink(&Topic::uplink(device(), Encoding::Binary), &frame, &opts(false), NOW, &keys());
    }

    #[test]
    fn arbitrary_topics_never_panic(s in "(/tenants/[a-z0-9é/+#]{0,8}/)?[a-z0-9/+#_-]{0,40}") {
        if let Ok(t) = Topic::parse(&s) {
            // Whatever parses formats back to the same string.
            prop_assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn mutated_payloads_never_panic(msg in uplink(), encoding_ix in 0usize..2, protect in any::<bool>(),
        edits in proptest::collection::vec(edit(), 1..4)) {
        let encoding = [Encoding::Json, Encoding::Binary][encoding_ix];
        let protection = if protect { Protection::Mac { secret: SECRET } } else { Protection::None };
        let original = encode_uplink(&device(), &msg, encoding, protection).expect("encodable");
        let mut bytes = original.clone();
        apply(&mut bytes, &edits);
        let topic = Topic::uplink(device(), encoding);
        let result = decode_uplink(&topic, &bytes, &opts(protect), NOW, &keys());
        if let Ok(d) = result {
            // An accepted payload under `require_authenticated` is either
            // untouched or (JSON only) re-spelled without changing the signed inner bytes.
            if protect {
                prop_assert!(d.authenticated);
                prop_assert_eq!(&d.message, &msg);
            }
        }
    }

    #[test]
    fn mutated_owntracks_never_panic(fix in owntracks_fix(), encrypt in any::<bool>(), nonce in any::<[u8; 24]>(),
        edits in proptest::collection::vec(edit(), 1..4)) {
        let protection = if encrypt { Protection::Encrypt { secret: SECRET, nonce } } else { Protection::None };
        let original = encode_uplink(&device(), &Uplink::Fix(fix), Encoding::OwnTracks, protection).expect("encodable");
        let mut bytes = original.clone();
        apply(&mut bytes, &edits);
        let result = decode_uplink(&Topic::uplink(device(), Encoding::OwnTracks), &bytes, &opts(encrypt), NOW, &keys());
        if let (true, Ok(d)) = (encrypt, result) {
            prop_assert_eq!(d.message, Uplink::Fix(fix));
        }
    }
}
