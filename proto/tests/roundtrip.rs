//! Property: every message survives every encoding and protection unchanged.

mod common;

use common::*;
use geoward_proto::{
    Ack, Command, CommandAction, DecodeOptions, DeviceConfig, Downlink, Encoding, NoKeys,
    Protection, SupervisionLevel, Topic, Uplink, decode_downlink, decode_uplink, encode_downlink,
    encode_uplink,
};
use proptest::prelude::*;

fn round_trip(
    msg: &Uplink,
    encoding: Encoding,
    protection: Protection<'_>,
) -> Result<(), TestCaseError> {
    let bytes = encode_uplink(&device(), msg, encoding, protection).expect("encodable");
    let topic = Topic::uplink(device(), encoding);
    let decoded = decode_uplink(&topic, &bytes, &DecodeOptions::default(), NOW, &keys())
        .map_err(|e| TestCaseError::fail(format!("{e} ({})", e.reason())))?;
    prop_assert_eq!(&decoded.message, msg);
    prop_assert_eq!(&decoded.device_id, &device());
    prop_assert_eq!(decoded.encoding, encoding);
    prop_assert_eq!(
        decoded.authenticated,
        !matches!(protection, Protection::None)
    );
    prop_assert!(decoded.rejected_fixes.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn json_plain(msg in uplink()) {
        round_trip(&msg, Encoding::Json, Protection::None)?;
    }

    #[test]
    fn json_sealed(msg in uplink()) {
        round_trip(&msg, Encoding::Json, Protection::Mac { secret: SECRET })?;
    }

    #[test]
    fn binary_plain(msg in uplink()) {
        round_trip(&msg, Encoding::Binary, Protection::None)?;
    }

    #[test]
    fn binary_authenticated(msg in uplink()) {
        round_trip(&msg, Encoding::Binary, Protection::Mac { secret: SECRET })?;
    }

    #[test]
    fn owntracks_plain(fix in owntracks_fix()) {
        round_trip(&Uplink::Fix(fix), Encoding::OwnTracks, Protection::None)?;
    }

    #[test]
    fn owntracks_encrypted(fix in owntracks_fix(), nonce in any::<[u8; 24]>()) {
        round_trip(&Uplink::Fix(fix), Encoding::OwnTracks, Protection::Encrypt { secret: SECRET, nonce })?;
    }

    /// The binary frame has exactly one encoding per message: re-encoding a
    /// decoded single message gives the same bytes. (Batches are exempt: the
    /// encoder picks the smallest seq/time as base, a device may pick another.)
    #[test]
    fn binary_is_canonical(msg in prop_oneof![
        fix().prop_map(Uplink::Fix),
        heartbeat().prop_map(Uplink::Heartbeat),
        event().prop_map(Uplink::Event),
    ]) {
        let bytes = encode_uplink(&device(), &msg, Encoding::Binary, Protection::None).expect("encodable");
        let decoded = decode_uplink(&Topic::uplink(device(), Encoding::Binary), &bytes,
            &DecodeOptions::default(), NOW, &NoKeys).expect("decodes");
        let again = encode_uplink(&device(), &decoded.message, Encoding::Binary, Protection::None).expect("encodable");
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn downlink(msg in prop_oneof![
        any::<u64>().prop_map(|seq| Downlink::Ack(Ack { seq })),
        (1u32.., 1u32.., prop_oneof![
            Just(SupervisionLevel::Strict), Just(SupervisionLevel::Normal), Just(SupervisionLevel::Lenient)
        ], any::<bool>()).prop_map(|(r, h, supervision, in_violation)| Downlink::Config(DeviceConfig {
            report_interval_s: r, heartbeat_interval_s: h, supervision, in_violation,
        })),
        (any::<u64>(), prop_oneof![
            Just(CommandAction::LocateNow), Just(CommandAction::FlushStored), Just(CommandAction::Vibrate)
        ]).prop_map(|(id, action)| Downlink::Command(Command { id, action })),
    ]) {
        let bytes = encode_downlink(&msg);
        prop_assert_eq!(decode_downlink(&bytes, &DecodeOptions::default()), Ok(msg));
    }
}

/// A binary fix inside a batch takes 24 bytes, as the issue demands.
#[test]
fn batch_fix_is_24_bytes() {
    let fixes: Vec<_> = (0..10)
        .map(|i| geoward_proto::Fix {
            seq: 100 + i,
            time: geoward_proto::Timestamp(NOW.0 - 600_000 + i as i64 * 15_000),
            ..sample_fix()
        })
        .collect();
    let one = encode_uplink(
        &device(),
        &Uplink::Batch(geoward_proto::Batch {
            fixes: fixes[..1].to_vec(),
        }),
        Encoding::Binary,
        Protection::None,
    )
    .expect("encodable");
    let ten = encode_uplink(
        &device(),
        &Uplink::Batch(geoward_proto::Batch { fixes }),
        Encoding::Binary,
        Protection::None,
    )
    .expect("encodable");
    assert_eq!((ten.len() - one.len()) / 9, 24);
    assert_eq!(ten.len(), geoward_proto::binary::BATCH_HEADER_LEN + 10 * 24);
}
