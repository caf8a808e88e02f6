//! Golden test vectors in `tests/vectors/*.json`: payload bytes with the
//! decoded value they must produce. They document the formats for firmware
//! and integrators and pin the encoders' output.
//!
//! Each file is checked twice: its stored payload must decode to its stored
//! expectation, and the vector regenerated from the code must equal the
//! file. After an intended format change, regenerate with
//! `UPDATE_VECTORS=1 cargo test -p geoward-proto --test vectors` and review
//! the diff.

mod common;

use std::path::PathBuf;

use common::*;
use geoward_proto::{
    Ack, Batch, Command, CommandAction, DecodeOptions, DeviceConfig, DeviceEvent, DeviceId,
    Downlink, Encoding, EventKind, Fix, GnssState, Heartbeat, KeyLookup, NoKeys, PositionSource,
    Protection, Route, StrapState, SupervisionLevel, TenantId, Timestamp, Topic, Uplink,
    decode_downlink, decode_uplink, encode_downlink, encode_uplink,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct VectorFile {
    description: String,
    topic: String,
    now_ms: i64,
    /// The device secret (UTF-8), if the decoder has one.
    secret_utf8: Option<String>,
    require_authenticated: bool,
    payload_hex: String,
    /// The payload as text when it is UTF-8 (JSON encodings).
    payload_text: Option<String>,
    /// `Debug` of the decoded value, or `error <reason>: <message>`.
    expected: Vec<String>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn decode_file(v: &VectorFile) -> Vec<String> {
    let payload = match hex::decode(&v.payload_hex) {
        Ok(p) => p,
        Err(e) => return vec![format!("bad hex: {e}")],
    };
    let topic = match Topic::parse(&v.topic) {
        Ok(t) => t,
        Err(e) => return vec![format!("error {}: {e}", e.reason())],
    };
    let opts = DecodeOptions {
        require_authenticated: v.require_authenticated,
        ..DecodeOptions::default()
    };
    let keys: Box<dyn KeyLookup> = match &v.secret_utf8 {
        Some(s) => Box::new(std::collections::HashMap::from([(
            topic
                .device_id()
                .cloned()
                .expect("vector topics name a device"),
            s.as_bytes().to_vec(),
        )])),
        None => Box::new(NoKeys),
    };
    let text = if matches!(topic.route, Route::Downlink { .. }) {
        decode_downlink(&payload, &opts).map(|d| format!("{d:#?}"))
    } else {
        decode_uplink(&topic, &payload, &opts, Timestamp(v.now_ms), keys.as_ref())
            .map(|d| format!("{d:#?}"))
    };
    match text {
        Ok(t) => t.lines().map(str::to_owned).collect(),
        Err(e) => vec![format!("error {}: {e}", e.reason())],
    }
}

struct Spec {
    name: &'static str,
    description: &'static str,
    topic: Topic,
    secret: bool,
    strict: bool,
    payload: Vec<u8>,
}

fn spec(name: &'static str, description: &'static str, topic: Topic, payload: Vec<u8>) -> Spec {
    Spec {
        name,
        description,
        topic,
        secret: false,
        strict: false,
        payload,
    }
}

fn enc(msg: &Uplink, encoding: Encoding, protection: Protection<'_>) -> Vec<u8> {
    encode_uplink(&device(), msg, encoding, protection).expect("encodable")
}

fn batch() -> Uplink {
    let base = sample_fix();
    Uplink::Batch(Batch {
        fixes: vec![
            base,
            Fix {
                seq: 44,
                time: Timestamp(base.time.0 + 60_000),
                lat: 31.2305012,
                lon: 121.4738001,
                accuracy_m: 35.0,
                altitude_m: None,
                speed_mps: None,
                heading_deg: None,
                satellites: None,
                source: PositionSource::Wifi,
            },
            Fix {
                seq: 45,
                time: Timestamp(base.time.0 + 120_000),
                lat: 31.2290000,
                lon: 121.4700000,
                accuracy_m: 650.0,
                altitude_m: None,
                speed_mps: None,
                heading_deg: None,
                satellites: None,
                source: PositionSource::Cell,
            },
        ],
    })
}

fn specs() -> Vec<Spec> {
    let d = device;
    let json = || Topic::uplink(d(), Encoding::Json);
    let bin = || Topic::uplink(d(), Encoding::Binary);
    let ot = || Topic::parse("owntracks/alice/bracelet-0001").expect("valid");
    let fix = Uplink::Fix(sample_fix());
    let minimal = Uplink::Fix(Fix {
        altitude_m: None,
        speed_mps: None,
        heading_deg: None,
        satellites: None,
        source: PositionSource::Fused,
        ..sample_fix()
    });
    let hb = Uplink::Heartbeat(Heartbeat {
        seq: 46,
        time: Timestamp(NOW.0 - 30_000),
        battery_pct: 73,
        charging: false,
        strap: StrapState::Intact,
        case_tamper: false,
        signal_dbm: Some(-85),
        gnss: GnssState::Fixed,
    });
    let ev = Uplink::Event(DeviceEvent {
        seq: 47,
        time: Timestamp(NOW.0 - 20_000),
        kind: EventKind::StrapOpened,
    });
    let mac = Protection::Mac { secret: SECRET };
    let mut flipped = enc(&fix, Encoding::Binary, mac);
    flipped[10] ^= 0x01;
    let ot_fix = Uplink::Fix(Fix {
        seq: 0,
        time: Timestamp(1_763_799_940_000),
        lat: 31.2304321,
        lon: 121.4737012,
        accuracy_m: 9.0,
        altitude_m: Some(12.0),
        speed_mps: Some(geoward_proto::owntracks::kmh_to_mps(4.0)),
        heading_deg: Some(271.0),
        satellites: None,
        source: PositionSource::Fused,
    });
    let future = format!(
        r#"{{"type":"fix","seq":48,"time_ms":{},"lat":31.2,"lon":121.4,"accuracy_m":5,"source":"gnss"}}"#,
        NOW.0 + 3_600_000
    );
    vec![
        spec(
            "json_fix",
            "Geoward JSON fix with every optional field",
            json(),
            enc(&fix, Encoding::Json, Protection::None),
        ),
        spec(
            "json_fix_minimal",
            "Geoward JSON fix with only required fields",
            json(),
            enc(&minimal, Encoding::Json, Protection::None),
        ),
        spec(
            "json_heartbeat",
            "Geoward JSON heartbeat",
            json(),
            enc(&hb, Encoding::Json, Protection::None),
        ),
        spec(
            "json_event",
            "Geoward JSON device event (strap opened)",
            json(),
            enc(&ev, Encoding::Json, Protection::None),
        ),
        spec(
            "json_batch",
            "Geoward JSON batch of three stored fixes",
            json(),
            enc(&batch(), Encoding::Json, Protection::None),
        ),
        Spec {
            secret: true,
            strict: true,
            ..spec(
                "json_sealed_fix",
                "Geoward JSON sealed envelope (HMAC over device id || inner bytes), secret 'correct horse battery staple'",
                json(),
                enc(&fix, Encoding::Json, mac),
            )
        },
        spec(
            "json_future_time_rejected",
            "A fix one hour in the future is rejected",
            json(),
            future.into_bytes(),
        ),
        spec(
            "bin_fix",
            "Binary single fix (38 bytes)",
            bin(),
            enc(&fix, Encoding::Binary, Protection::None),
        ),
        spec(
            "bin_fix_minimal",
            "Binary single fix without optional fields",
            bin(),
            enc(&minimal, Encoding::Binary, Protection::None),
        ),
        Spec {
            secret: true,
            strict: true,
            ..spec(
                "bin_fix_authenticated",
                "Binary fix with the authenticated flag and 16-byte tag",
                bin(),
                enc(&fix, Encoding::Binary, mac),
            )
        },
        Spec {
            secret: true,
            ..spec(
                "bin_fix_bad_mac",
                "Authenticated binary fix with one flipped bit: rejected",
                bin(),
                flipped,
            )
        },
        spec(
            "bin_heartbeat",
            "Binary heartbeat (23 bytes)",
            bin(),
            enc(&hb, Encoding::Binary, Protection::None),
        ),
        spec(
            "bin_event",
            "Binary device event (21 bytes)",
            bin(),
            enc(&ev, Encoding::Binary, Protection::None),
        ),
        spec(
            "bin_batch",
            "Binary batch of three fixes (22 + 3 x 24 bytes)",
            bin(),
            enc(&batch(), Encoding::Binary, Protection::None),
        ),
        Spec {
            secret: true,
            strict: true,
            ..spec(
                "bin_batch_authenticated",
                "Authenticated binary batch",
                bin(),
                enc(&batch(), Encoding::Binary, mac),
            )
        },
        spec(
            "bin_truncated",
            "Binary fix missing its last byte",
            bin(),
            enc(&fix, Encoding::Binary, Protection::None)[..37].to_vec(),
        ),
        spec(
            "bin_fix_tenant_topic",
            "Binary fix on a rumqttd tenant-prefixed topic: the tenant is reported beside the device",
            bin().with_tenant(TenantId::new("acme").expect("valid")),
            enc(&fix, Encoding::Binary, Protection::None),
        ),
        spec(
            "owntracks_location",
            "OwnTracks location: seq and time from tst, vel km/h to m/s",
            ot(),
            enc(&ot_fix, Encoding::OwnTracks, Protection::None),
        ),
        Spec {
            secret: true,
            strict: true,
            ..spec(
                "owntracks_encrypted",
                "OwnTracks encrypted (secretbox, key 'correct horse battery staple' zero-padded to 32, nonce 24 x 0x01)",
                ot(),
                enc(
                    &ot_fix,
                    Encoding::OwnTracks,
                    Protection::Encrypt {
                        secret: SECRET,
                        nonce: [1; 24],
                    },
                ),
            )
        },
        spec(
            "owntracks_lwt_rejected",
            "OwnTracks last will: a clear unsupported_type rejection",
            ot(),
            br#"{"_type":"lwt","tst":1763799000}"#.to_vec(),
        ),
        spec(
            "downlink_ack",
            "Downlink ack: everything up to seq 47 is stored",
            Topic::downlink(d()),
            encode_downlink(&Downlink::Ack(Ack { seq: 47 })),
        ),
        spec(
            "downlink_config",
            "Downlink config: strict supervision in violation",
            Topic::downlink(d()),
            encode_downlink(&Downlink::Config(DeviceConfig::recommended(
                SupervisionLevel::Strict,
                true,
            ))),
        ),
        spec(
            "downlink_command",
            "Downlink command: locate now",
            Topic::downlink(d()),
            encode_downlink(&Downlink::Command(Command {
                id: 9001,
                action: CommandAction::LocateNow,
            })),
        ),
    ]
}

fn render(s: &Spec) -> VectorFile {
    let mut v = VectorFile {
        description: s.description.to_owned(),
        topic: s.topic.to_string(),
        now_ms: NOW.0,
        secret_utf8: s
            .secret
            .then(|| String::from_utf8(SECRET.to_vec()).expect("utf-8 secret")),
        require_authenticated: s.strict,
        payload_hex: hex::encode(&s.payload),
        payload_text: String::from_utf8(s.payload.clone()).ok(),
        expected: Vec::new(),
    };
    v.expected = decode_file(&v);
    v
}

#[test]
fn golden_vectors() {
    let update = std::env::var_os("UPDATE_VECTORS").is_some_and(|v| v == "1");
    let specs = specs();
    let mut problems = Vec::new();
    for s in &specs {
        let path = dir().join(format!("{}.json", s.name));
        let generated = serde_json::to_string_pretty(&render(s)).expect("serialisable") + "\n";
        if update {
            std::fs::write(&path, &generated).expect("write vector");
            continue;
        }
        let Ok(stored) = std::fs::read_to_string(&path) else {
            problems.push(format!("{}: missing (run with UPDATE_VECTORS=1)", s.name));
            continue;
        };
        let file: VectorFile = serde_json::from_str(&stored).expect("vector file parses");
        if decode_file(&file) != file.expected {
            problems.push(format!(
                "{}: stored payload no longer decodes to the stored expectation",
                s.name
            ));
        }
        if stored != generated {
            problems.push(format!(
                "{}: encoder output or decoding changed (UPDATE_VECTORS=1 and review)",
                s.name
            ));
        }
    }
    // No stale files.
    for entry in std::fs::read_dir(dir()).expect("vectors dir") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(stem) = name.strip_suffix(".json")
            && !specs.iter().any(|s| s.name == stem)
        {
            problems.push(format!(
                "{name}: no vector of that name in tests/vectors.rs"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The stored expectations mean something: spot-check a few by hand.
#[test]
fn vectors_say_what_they_should() {
    let read = |n: &str| -> VectorFile {
        serde_json::from_str(
            &std::fs::read_to_string(dir().join(format!("{n}.json"))).expect("exists"),
        )
        .expect("parses")
    };
    assert_eq!(read("bin_fix").payload_hex.len(), 38 * 2);
    assert_eq!(read("bin_batch").payload_hex.len(), (22 + 3 * 24) * 2);
    assert!(
        read("bin_fix_authenticated")
            .expected
            .iter()
            .any(|l| l.contains("authenticated: true"))
    );
    assert_eq!(
        read("bin_fix_bad_mac").expected,
        ["error bad_mac: message authentication failed"]
    );
    assert!(read("owntracks_lwt_rejected").expected[0].starts_with("error unsupported_type"));
    assert!(
        read("bin_fix_tenant_topic")
            .expected
            .iter()
            .any(|l| l.contains("\"acme\""))
    );
    let _ = DeviceId::new("unused-but-imported").expect("valid");
}
