//! Every rejection has a typed error and a stable reason code; this table
//! produces each reason code from a concrete payload and checks the table
//! covers all of `DecodeError::ALL_REASONS`.

mod common;

use std::borrow::Cow;
use std::collections::BTreeSet;

use common::*;
use geoward_proto::{
    Batch, DecodeError, DecodeOptions, DeviceId, Encoding, Fix, KeyLookup, NoKeys, Protection,
    Topic, Uplink, decode_uplink, encode_uplink,
};

/// A lookup whose secret is too long for OwnTracks.
struct LongKey;
impl KeyLookup for LongKey {
    fn device_secret(&self, _: &DeviceId) -> Option<Cow<'_, [u8]>> {
        Some(Cow::Borrowed(&[7u8; 33]))
    }
}

struct Case {
    name: &'static str,
    encoding: Encoding,
    payload: Vec<u8>,
    opts: DecodeOptions,
    keys: &'static str,
    reason: &'static str,
}

fn case(
    name: &'static str,
    encoding: Encoding,
    payload: impl Into<Vec<u8>>,
    reason: &'static str,
) -> Case {
    Case {
        name,
        encoding,
        payload: payload.into(),
        opts: DecodeOptions::default(),
        keys: "device",
        reason,
    }
}

fn bin(msg: &Uplink) -> Vec<u8> {
    encode_uplink(&device(), msg, Encoding::Binary, Protection::None).expect("encodable")
}

fn json_fix(extra: &str) -> String {
    let t = NOW.0 - 1000;
    format!(
        r#"{{"type":"fix","seq":1,"time_ms":{t},"lat":31.2,"lon":121.4,"accuracy_m":5,"source":"gnss"{extra}}}"#
    )
}

fn cases() -> Vec<Case> {
    let fix = Uplink::Fix(sample_fix());
    let fix_frame = bin(&fix);
    let mut long = fix_frame.clone();
    long.push(0);
    let mut reserved = fix_frame.clone();
    *reserved.last_mut().expect("non-empty") |= 0x80;
    let hb = bin(&Uplink::Heartbeat(geoward_proto::Heartbeat {
        seq: 1,
        time: NOW,
        battery_pct: 50,
        charging: false,
        strap: geoward_proto::StrapState::Intact,
        case_tamper: false,
        signal_dbm: None,
        gnss: geoward_proto::GnssState::Fixed,
    }));
    let mut strap3 = hb.clone();
    strap3[21] |= 0b110;
    let mut batch0 = bin(&Uplink::Batch(Batch {
        fixes: vec![sample_fix()],
    }));
    batch0.truncate(geoward_proto::binary::BATCH_HEADER_LEN);
    batch0[20] = 0;
    let mut bad_tag = encode_uplink(
        &device(),
        &fix,
        Encoding::Binary,
        Protection::Mac { secret: SECRET },
    )
    .expect("encodable");
    *bad_tag.last_mut().expect("non-empty") ^= 1;
    let wrong_secret = encode_uplink(
        &device(),
        &fix,
        Encoding::Json,
        Protection::Mac { secret: b"wrong" },
    )
    .expect("encodable");
    let encrypted_wrong = encode_uplink(
        &device(),
        &fix,
        Encoding::OwnTracks,
        Protection::Encrypt {
            secret: b"wrong",
            nonce: [1; 24],
        },
    )
    .expect("encodable");
    let encrypted_transition = geoward_proto::owntracks::encrypt(
        SECRET,
        &[2; 24],
        br#"{"_type":"transition","event":"leave","tst":1763799000}"#,
    )
    .expect("key fits");
    let far = NOW.0 + 10 * 60 * 1000;
    let sealed_twice = {
        let once = encode_uplink(
            &device(),
            &fix,
            Encoding::Json,
            Protection::Mac { secret: SECRET },
        )
        .expect("encodable");
        geoward_proto::json::seal(&device(), SECRET, &once)
    };
    let mut header_flag = fix_frame.clone();
    header_flag[3] = 0x02;
    let minimal = Uplink::Fix(Fix {
        altitude_m: None,
        ..sample_fix()
    });
    let mut absent_nonzero = bin(&minimal);
    absent_nonzero[4 + 16 + 10] = 1;
    let mut heading_36000 = fix_frame.clone();
    heading_36000[4 + 16 + 14..4 + 16 + 16].copy_from_slice(&36_000u16.to_le_bytes());
    let mut battery_101 = hb.clone();
    battery_101[20] = 101;

    vec![
        Case {
            opts: DecodeOptions {
                max_payload_bytes: 10,
                ..DecodeOptions::default()
            },
            ..case(
                "oversize",
                Encoding::Json,
                json_fix(""),
                "payload_too_large",
            )
        },
        case(
            "truncated frame",
            Encoding::Binary,
            &fix_frame[..fix_frame.len() - 1],
            "truncated",
        ),
        case(
            "header only",
            Encoding::Binary,
            &fix_frame[..3],
            "truncated",
        ),
        case("trailing byte", Encoding::Binary, long, "trailing_bytes"),
        case("bad magic", Encoding::Binary, [0u8, 1, 1, 0], "bad_magic"),
        case(
            "future version",
            Encoding::Binary,
            [0x47u8, 2, 1, 0],
            "unsupported_version",
        ),
        case(
            "binary type 9",
            Encoding::Binary,
            [0x47u8, 1, 9, 0],
            "unknown_message_type",
        ),
        case(
            "json type teleport",
            Encoding::Json,
            r#"{"type":"teleport","seq":1}"#,
            "unknown_message_type",
        ),
        case(
            "owntracks lwt",
            Encoding::OwnTracks,
            r#"{"_type":"lwt","tst":1763799000}"#,
            "unsupported_type",
        ),
        case(
            "owntracks transition",
            Encoding::OwnTracks,
            r#"{"_type":"transition","event":"enter","tst":1763799000,"lat":1,"lon":2}"#,
            "unsupported_type",
        ),
        case(
            "owntracks encrypted transition",
            Encoding::OwnTracks,
            encrypted_transition,
            "unsupported_type",
        ),
        case("not json", Encoding::Json, "{", "bad_json"),
        case(
            "unknown field",
            Encoding::Json,
            json_fix(r#","colour":"red""#),
            "bad_json",
        ),
        case(
            "owntracks not json",
            Encoding::OwnTracks,
            [0xff, 0xfe],
            "bad_json",
        ),
        case(
            "fix without lat",
            Encoding::Json,
            r#"{"type":"fix","seq":1}"#,
            "missing_field",
        ),
        case("no type", Encoding::Json, r#"{"seq":1}"#, "missing_field"),
        case(
            "owntracks without acc",
            Encoding::OwnTracks,
            r#"{"_type":"location","tst":1763799000,"lat":1,"lon":2}"#,
            "missing_field",
        ),
        case(
            "fix with battery",
            Encoding::Json,
            json_fix(r#","battery_pct":50"#),
            "unexpected_field",
        ),
        case(
            "reserved fix flag",
            Encoding::Binary,
            reserved,
            "invalid_field",
        ),
        case("strap state 3", Encoding::Binary, strap3, "invalid_field"),
        case(
            "heading 360",
            Encoding::Json,
            json_fix(r#","heading_deg":360"#),
            "out_of_range",
        ),
        case(
            "negative speed",
            Encoding::Json,
            json_fix(r#","speed_mps":-1"#),
            "out_of_range",
        ),
        case(
            "lat 91",
            Encoding::Json,
            json_fix("").replace("31.2", "91"),
            "coordinate_out_of_range",
        ),
        case(
            "lon -180.5",
            Encoding::Json,
            json_fix("").replace("121.4", "-180.5"),
            "coordinate_out_of_range",
        ),
        case(
            "accuracy overflows f32",
            Encoding::Json,
            json_fix("").replace(r#""accuracy_m":5"#, r#""accuracy_m":1e39"#),
            "non_finite",
        ),
        case(
            "negative accuracy",
            Encoding::Json,
            json_fix("").replace(r#""accuracy_m":5"#, r#""accuracy_m":-3"#),
            "negative_accuracy",
        ),
        case(
            "future",
            Encoding::Json,
            json_fix("").replace(&(NOW.0 - 1000).to_string(), &far.to_string()),
            "future_time",
        ),
        case(
            "1970",
            Encoding::Json,
            json_fix("").replace(&(NOW.0 - 1000).to_string(), "0"),
            "time_too_old",
        ),
        case(
            "mach 2",
            Encoding::Json,
            json_fix(r#","speed_mps":700"#),
            "absurd_speed",
        ),
        case(
            "empty json batch",
            Encoding::Json,
            r#"{"type":"batch","fixes":[]}"#,
            "empty_batch",
        ),
        case(
            "empty binary batch",
            Encoding::Binary,
            batch0,
            "empty_batch",
        ),
        case(
            "sealed not base64",
            Encoding::Json,
            r#"{"sealed":"!!!","mac":"AAAA"}"#,
            "bad_base64",
        ),
        case("wrong secret", Encoding::Json, wrong_secret, "bad_mac"),
        case("flipped tag", Encoding::Binary, bad_tag.clone(), "bad_mac"),
        Case {
            keys: "none",
            ..case("no key", Encoding::Binary, bad_tag, "unknown_key")
        },
        Case {
            keys: "long",
            ..case(
                "owntracks key too long",
                Encoding::OwnTracks,
                encrypted_wrong.clone(),
                "bad_key",
            )
        },
        case(
            "owntracks wrong key",
            Encoding::OwnTracks,
            encrypted_wrong,
            "decrypt_failed",
        ),
        Case {
            opts: DecodeOptions {
                require_authenticated: true,
                ..DecodeOptions::default()
            },
            ..case(
                "plain on strict listener",
                Encoding::Json,
                json_fix(""),
                "unauthenticated",
            )
        },
        case(
            "other device",
            Encoding::Json,
            json_fix(r#","device_id":"bracelet-0002""#),
            "device_mismatch",
        ),
        case(
            "mac without sealed",
            Encoding::Json,
            json_fix(r#","mac":"AAAA""#),
            "unexpected_field",
        ),
        case(
            "sealed plus fields",
            Encoding::Json,
            r#"{"sealed":"e30=","mac":"AAAA","seq":1}"#,
            "unexpected_field",
        ),
        case(
            "sealed twice",
            Encoding::Json,
            sealed_twice,
            "unexpected_field",
        ),
        case(
            "sealed without mac",
            Encoding::Json,
            r#"{"sealed":"e30="}"#,
            "missing_field",
        ),
        case(
            "reserved header flag",
            Encoding::Binary,
            header_flag,
            "invalid_field",
        ),
        case(
            "absent altitude not zero",
            Encoding::Binary,
            absent_nonzero,
            "invalid_field",
        ),
        case(
            "binary heading 360.00",
            Encoding::Binary,
            heading_36000,
            "out_of_range",
        ),
        case("battery 101", Encoding::Binary, battery_101, "out_of_range"),
        case(
            "owntracks tst overflow",
            Encoding::OwnTracks,
            r#"{"_type":"location","tst":9223372036854775807,"lat":1,"lon":2,"acc":3}"#,
            "out_of_range",
        ),
    ]
}

fn decode(c: &Case, topic: &Topic) -> Result<geoward_proto::Decoded, DecodeError> {
    match c.keys {
        "none" => decode_uplink(topic, &c.payload, &c.opts, NOW, &NoKeys),
        "long" => decode_uplink(topic, &c.payload, &c.opts, NOW, &LongKey),
        _ => decode_uplink(topic, &c.payload, &c.opts, NOW, &keys()),
    }
}

#[test]
fn every_reason_code_is_produced_and_stable() {
    let mut seen = BTreeSet::new();
    for c in cases() {
        let topic = Topic::uplink(device(), c.encoding);
        let err = decode(&c, &topic).expect_err(c.name);
        assert_eq!(err.reason(), c.reason, "{}: {err}", c.name);
        let msg = err.to_string();
        assert!(
            !msg.ends_with('.') && msg.chars().next().is_some_and(|ch| !ch.is_uppercase()),
            "{msg}"
        );
        seen.insert(err.reason());
    }
    // Topic-level rejections.
    let down = Topic::downlink(device());
    let err = decode_uplink(
        &down,
        json_fix("").as_bytes(),
        &DecodeOptions::default(),
        NOW,
        &NoKeys,
    )
    .expect_err("downlink topic");
    seen.insert(err.reason());
    let err = DecodeError::from(Topic::parse("geoward/v1/dev/a+b/up/json").expect_err("wildcard"));
    seen.insert(err.reason());

    let all: BTreeSet<_> = DecodeError::ALL_REASONS.iter().copied().collect();
    assert_eq!(
        all.len(),
        DecodeError::ALL_REASONS.len(),
        "duplicate reason codes"
    );
    assert_eq!(seen, all, "the table must produce every reason code");
    for r in all {
        assert!(
            r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{r}"
        );
    }
}

/// One bad fix in a batch drops that fix, not the batch.
#[test]
fn bad_fix_in_batch_is_dropped_alone() {
    let good = sample_fix();
    let too_fast = Fix {
        seq: 43,
        speed_mps: Some(500.0),
        ..good
    };
    let batch = Uplink::Batch(Batch {
        fixes: vec![good, too_fast],
    });
    for encoding in [Encoding::Json, Encoding::Binary] {
        let bytes =
            encode_uplink(&device(), &batch, encoding, Protection::None).expect("encodable");
        let d = decode_uplink(
            &Topic::uplink(device(), encoding),
            &bytes,
            &DecodeOptions::default(),
            NOW,
            &NoKeys,
        )
        .expect("batch with one good fix decodes");
        assert_eq!(
            d.message,
            Uplink::Batch(Batch { fixes: vec![good] }),
            "{encoding:?}"
        );
        assert_eq!(d.rejected_fixes.len(), 1);
        assert_eq!(d.rejected_fixes[0].seq, Some(43));
        assert_eq!(d.rejected_fixes[0].error.reason(), "absurd_speed");
    }
    let all_bad = Uplink::Batch(Batch {
        fixes: vec![too_fast],
    });
    let bytes =
        encode_uplink(&device(), &all_bad, Encoding::Binary, Protection::None).expect("encodable");
    let err = decode_uplink(
        &Topic::uplink(device(), Encoding::Binary),
        &bytes,
        &DecodeOptions::default(),
        NOW,
        &NoKeys,
    )
    .expect_err("nothing left");
    assert_eq!(err.reason(), "absurd_speed");
}

/// A frame authenticated for one device fails on another device's topic:
/// the device id is part of the MAC input.
#[test]
fn mac_binds_the_device_id() {
    let other = DeviceId::new("bracelet-0002").expect("valid");
    let frame = encode_uplink(
        &device(),
        &Uplink::Fix(sample_fix()),
        Encoding::Binary,
        Protection::Mac { secret: SECRET },
    )
    .expect("encodable");
    let keys = std::collections::HashMap::from([
        (device(), SECRET.to_vec()),
        (other.clone(), SECRET.to_vec()),
    ]);
    let ok = decode_uplink(
        &Topic::uplink(device(), Encoding::Binary),
        &frame,
        &DecodeOptions::default(),
        NOW,
        &keys,
    );
    assert!(ok.is_ok_and(|d| d.authenticated));
    let err = decode_uplink(
        &Topic::uplink(other, Encoding::Binary),
        &frame,
        &DecodeOptions::default(),
        NOW,
        &keys,
    )
    .expect_err("replayed on another topic");
    assert_eq!(err.reason(), "bad_mac");
}

/// OwnTracks: `tst` becomes both the time and the sequence number; unknown
/// OwnTracks fields are ignored; `-1` speed and course mean unknown.
#[test]
fn owntracks_seq_from_tst_and_extra_fields() {
    let payload = br#"{"_type":"location","tid":"ab","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"vel":-1,"cog":-1,"batt":80,"inregions":["home"],"t":"u","conn":"m"}"#;
    let topic = Topic::parse("owntracks/alice/phone-7").expect("valid");
    let d =
        decode_uplink(&topic, payload, &DecodeOptions::default(), NOW, &NoKeys).expect("decodes");
    let Uplink::Fix(f) = d.message else {
        panic!("expected a fix, got {:?}", d.message)
    };
    assert_eq!((f.seq, f.time.0), (1_763_799_000, 1_763_799_000_000));
    assert_eq!((f.speed_mps, f.heading_deg), (None, None));
    assert_eq!(d.device_id.as_str(), "phone-7");
    assert!(!d.authenticated);
}

/// Downlink decoding rejects with the same typed errors.
#[test]
fn downlink_rejections() {
    let opts = DecodeOptions::default();
    for (payload, reason) in [
        (
            r#"{"type":"config","report_interval_s":0,"heartbeat_interval_s":300,"supervision":"strict","in_violation":false}"#,
            "out_of_range",
        ),
        (r#"{"type":"reboot"}"#, "unknown_message_type"),
        (r#"{"type":"ack"}"#, "missing_field"),
        (r#"{"type":"ack","seq":1,"id":2}"#, "unexpected_field"),
        (
            r#"{"type":"command","id":1,"action":"self_destruct"}"#,
            "bad_json",
        ),
    ] {
        let err = geoward_proto::decode_downlink(payload.as_bytes(), &opts).expect_err(payload);
        assert_eq!(err.reason(), reason, "{payload}: {err}");
    }
}
