//! Differential tests: the scanner-based decoders against the serde oracle.

use std::collections::HashMap;

use proptest::prelude::*;

use super::{decode_json, decode_owntracks};
use crate::codec::Body;
use crate::error::DecodeError;
use crate::ids::DeviceId;
use crate::message::{Batch, Fix, PositionSource, Timestamp, Uplink};
use crate::validate::DecodeOptions;
use crate::{json, owntracks};

const NOW: Timestamp = Timestamp(1_763_800_000_000);
const SECRET: &[u8] = b"correct horse battery staple";

fn device() -> DeviceId {
    DeviceId::new("bracelet-0001").expect("valid id")
}

fn keys() -> HashMap<DeviceId, Vec<u8>> {
    HashMap::from([(device(), SECRET.to_vec())])
}

/// What a decoder said, comparable: the value, or the error in full except
/// for the `bad_json` message (which names serde's or the scanner's view).
fn outcome(r: Result<Body, DecodeError>) -> String {
    match r {
        Ok(b) => format!(
            "ok {:?} auth={} rejected={:?}",
            b.message, b.authenticated, b.rejected_fixes
        ),
        Err(DecodeError::BadJson(_)) => "bad_json".to_owned(),
        Err(e) => format!("err {e:?}"),
    }
}

fn same_json(bytes: &[u8]) -> Result<(), TestCaseError> {
    let opts = DecodeOptions::default();
    let new = outcome(json::decode(bytes, &device(), &opts, NOW, &keys()));
    let old = outcome(decode_json(bytes, &device(), &opts, NOW, &keys()));
    prop_assert_eq!(new, old, "{}", String::from_utf8_lossy(bytes));
    Ok(())
}

fn same_owntracks(bytes: &[u8]) -> Result<(), TestCaseError> {
    let opts = DecodeOptions::default();
    let new = outcome(owntracks::decode(bytes, &device(), &opts, NOW, &keys()));
    let old = outcome(decode_owntracks(bytes, &device(), &opts, NOW, &keys()));
    prop_assert_eq!(new, old, "{}", String::from_utf8_lossy(bytes));
    Ok(())
}

/// Number tokens: valid ones in many spellings, and near misses.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..300).prop_map(|v| v.to_string()),
        (-300i64..0).prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        (NOW.0 - 100_000_000..NOW.0 + 1_000_000).prop_map(|v| v.to_string()),
        (-1_800_000_000i64..1_800_000_000).prop_map(|v| format!("{}", v as f64 / 1e7)),
        (-200.0f64..400.0).prop_map(|v| format!("{v}")),
        (-200.0f64..400.0).prop_map(|v| format!("{v:e}")),
        (-200.0f64..400.0).prop_map(|v| format!("{:E}", v as f32)),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        any::<f32>().prop_map(|v| format!("{v}")),
        prop::sample::select(vec![
            "-0",
            "-0.0",
            "0e0",
            "0.0",
            "1e39",
            "-1e39",
            "3.5e38",
            "1e400",
            "-1e400",
            "1E+2",
            "1e-2",
            "01",
            "-01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "-",
            "+1",
            "2.5e-324",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "255",
            "256",
            "-128",
            "-129",
            "127",
            "128",
            "359.99999",
            "360",
            "0.30000000000000004",
            "121.47370119999999",
            "123456789012345678901234567890",
            "0.000000000000000000000000000001234",
            "1e-99999999999999999999",
            "0e99999999999999999999",
            "NaN",
            "Infinity",
        ])
        .prop_map(str::to_owned),
    ]
}

/// String tokens (with quotes): names of the schema, escapes, near misses.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            r#""fix""#,
            r#""heartbeat""#,
            r#""event""#,
            r#""batch""#,
            r#""teleport""#,
            r#""fi\u0078""#,
            r#""gnss""#,
            r#""wifi""#,
            r#""cell""#,
            r#""fused""#,
            r#""Gnss""#,
            r#""intact""#,
            r#""open""#,
            r#""cut""#,
            r#""off""#,
            r#""searching""#,
            r#""fixed""#,
            r#""sos""#,
            r#""strap_opened""#,
            r#""phone_link_lost""#,
            r#""phone_link_restored""#,
            r#""bracelet-0001""#,
            r#""bracelet-0002""#,
            r#""bracelet\u002d0001""#,
            r#""bracelet\/0001""#,
            r#""\ud83d\ude00""#,
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            r#""\ud83dx""#,
            r#""a\"b""#,
            r#""\/\b\f\n\r\t\\""#,
            r#""é""#,
            r#""\x""#,
            r#""\u12""#,
            r#""e30=""#,
            r#""AAAA""#,
            r#""!!!""#,
            r#""""#,
            "\"\u{1}\"",
            "\"\t\"",
            r#""location""#,
            r#""encrypted""#,
            r#""lwt""#,
        ])
        .prop_map(str::to_owned),
        "[a-z_]{0,10}".prop_map(|s| format!("\"{s}\"")),
        any::<String>().prop_map(|s| format!("{s:?}")),
    ]
}

/// Any JSON-ish value, nested a little.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("nul".to_owned()),
        number(),
        string(),
        Just(r#"{"gnss":null}"#.to_owned()),
        Just(r#"{"open" : null }"#.to_owned()),
        Just(r#"{"sos":1}"#.to_owned()),
        Just(r#"{"cut":null,"open":null}"#.to_owned()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((string(), inner), 0..4).prop_map(|v| {
                let body: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

/// A key token for a Geoward object: field names (some escaped), near misses.
fn geoward_key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "type", "device_id", "seq", "time_ms", "lat", "lon", "accuracy_m", "altitude_m",
            "speed_mps", "heading_deg", "satellites", "source", "battery_pct", "charging",
            "strap", "case_tamper", "signal_dbm", "gnss", "event", "fixes", "sealed", "mac",
        ])
        .prop_map(|k| format!("\"{k}\"")),
        1 => prop::sample::select(vec![
            r#""\u0074ype""#, r#""l\u0061t""#, r#""colour""#, r#""_type""#, r#""Type""#,
            r#""lat ""#, r#""\ud800""#, "\"l\u{1}at\"", "\"\u{e9}\"",
        ])
        .prop_map(str::to_owned),
    ]
}

/// A plausible value for a Geoward field (or anything, sometimes).
fn geoward_value(key: &str) -> BoxedStrategy<String> {
    let fixes = prop::collection::vec(fix_object(), 0..4)
        .prop_map(|v| format!("[{}]", v.join(",")))
        .boxed();
    let specific = match key.trim_matches('"') {
        "type" => prop::sample::select(vec![
            r#""fix""#,
            r#""heartbeat""#,
            r#""event""#,
            r#""batch""#,
            r#""teleport""#,
            r#""fi\u0078""#,
        ])
        .prop_map(str::to_owned)
        .boxed(),
        "seq" | "time_ms" | "lat" | "lon" | "accuracy_m" | "altitude_m" | "speed_mps"
        | "heading_deg" | "satellites" | "battery_pct" | "signal_dbm" => number().boxed(),
        "charging" | "case_tamper" => prop::sample::select(vec!["true", "false"])
            .prop_map(str::to_owned)
            .boxed(),
        "fixes" => fixes,
        _ => string().boxed(),
    };
    prop_oneof![6 => specific, 1 => value()].boxed()
}

/// A plausible fix-ish value with nearly valid numbers.
fn fix_number(key: &'static str) -> BoxedStrategy<String> {
    let good = match key {
        "seq" => (0u64..1000).prop_map(|v| v.to_string()).boxed(),
        "time_ms" => (NOW.0 - 10_000_000..NOW.0 + 600_000)
            .prop_map(|v| v.to_string())
            .boxed(),
        "lat" => (-95.0f64..95.0).prop_map(|v| format!("{v}")).boxed(),
        "lon" => (-185.0f64..185.0).prop_map(|v| format!("{v}")).boxed(),
        "source" => prop::sample::select(vec![
            r#""gnss""#,
            r#""wifi""#,
            r#""cell""#,
            r#""fused""#,
            r#"{"fused":null}"#,
            r#""gnss""#,
            r#""wifi""#,
            r#""radio""#,
        ])
        .prop_map(str::to_owned)
        .boxed(),
        "satellites" => (0u32..260).prop_map(|v| v.to_string()).boxed(),
        _ => (-10.0f64..400.0).prop_map(|v| format!("{v}")).boxed(),
    };
    prop_oneof![40 => good, 1 => number(), 1 => Just("null".to_owned())].boxed()
}

/// A batch entry: mostly valid fix objects, sometimes in array form.
fn fix_object() -> impl Strategy<Value = String> {
    const FIX_KEYS: [&str; 10] = [
        "seq",
        "time_ms",
        "lat",
        "lon",
        "accuracy_m",
        "altitude_m",
        "speed_mps",
        "heading_deg",
        "satellites",
        "source",
    ];
    let values: Vec<BoxedStrategy<String>> = FIX_KEYS.iter().map(|k| fix_number(k)).collect();
    (
        values,
        prop::collection::vec(prop::bool::weighted(0.9), 10),
        0u8..20,
        ws_seed(),
    )
        .prop_map(|(values, keep, form, ws)| {
            let mut w = Ws(ws, 0);
            if form == 0 {
                return format!("[{}]", values.join(&w.sep(",")));
            }
            let mut parts: Vec<String> = FIX_KEYS
                .iter()
                .zip(&values)
                .zip(&keep)
                .filter(|(_, keep)| **keep || form > 4)
                .map(|((k, v), _)| format!("\"{k}\"{}{v}", w.sep(":")))
                .collect();
            if form == 1 {
                parts.push(r#""type":"fix""#.to_owned());
            }
            format!("{{{}}}", parts.join(&w.sep(",")))
        })
}

fn ws_seed() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 8)
}

/// Whitespace between tokens, chosen by a seed.
struct Ws(Vec<u8>, usize);

impl Ws {
    fn sep(&mut self, token: &str) -> String {
        self.1 += 1;
        let pick = |b: u8| match b % 16 {
            0 => " ",
            1 => "\n",
            2 => "\t \r\n",
            _ => "",
        };
        let b = self.0[self.1 % self.0.len()];
        format!("{}{token}{}", pick(b), pick(b / 16))
    }
}

/// A Geoward uplink document, mostly well-formed.
fn geoward_doc() -> impl Strategy<Value = String> {
    let entry = geoward_key()
        .prop_flat_map(|k| {
            let v = geoward_value(&k);
            (Just(k), v)
        })
        .boxed();
    let fix_like = (
        prop::sample::select(vec!["fix", "heartbeat", "event", "batch"]),
        fix_object(),
        prop::collection::vec(entry.clone(), 0..2),
    )
        .prop_map(|(kind, fix, extra)| {
            // A fix object plus a type: often a valid message.
            let body = fix.trim_start_matches('{').trim_end_matches('}').to_owned();
            let mut parts = vec![format!("\"type\":\"{kind}\"")];
            if !body.is_empty() && !fix.starts_with('[') {
                parts.push(body);
            }
            parts.extend(extra.into_iter().map(|(k, v)| format!("{k}:{v}")));
            format!("{{{}}}", parts.join(","))
        });
    let heartbeat = (
        0u64..100,
        NOW.0 - 1_000_000..NOW.0 + 600_000,
        0u32..120,
        any::<bool>(),
        prop::sample::select(vec!["intact", "open", "cut", "torn"]),
        prop::sample::select(vec!["off", "searching", "fixed"]),
        prop::option::of(-140i32..140),
    )
        .prop_map(|(seq, t, batt, ch, strap, gnss, sig)| {
            let sig = sig.map(|s| format!(r#","signal_dbm":{s}"#)).unwrap_or_default();
            format!(
                r#"{{"type":"heartbeat","seq":{seq},"time_ms":{t},"battery_pct":{batt},"charging":{ch},"strap":"{strap}","case_tamper":{ch},"gnss":"{gnss}"{sig}}}"#
            )
        });
    let event = (
        0u64..100,
        NOW.0 - 1_000_000..NOW.0 + 600_000,
        prop::sample::select(vec![
            r#""sos""#,
            r#""strap_opened""#,
            r#""phone_link_restored""#,
            r#"{"power_off":null}"#,
            r#""reboot""#,
        ]),
    )
        .prop_map(|(seq, t, ev)| {
            format!(r#"{{"type":"event","seq":{seq},"time_ms":{t},"event":{ev}}}"#)
        });
    let batch = (prop::collection::vec(fix_object(), 0..5), any::<bool>()).prop_map(
        |(fixes, with_device)| {
            let dev = if with_device {
                r#""device_id":"bracelet-0001","#
            } else {
                ""
            };
            format!(r#"{{{dev}"type":"batch","fixes":[{}]}}"#, fixes.join(","))
        },
    );
    let generic = (prop::collection::vec(entry, 0..10), ws_seed()).prop_map(|(entries, ws)| {
        let mut w = Ws(ws, 0);
        let parts: Vec<String> = entries
            .into_iter()
            .map(|(k, v)| format!("{k}{}{v}", w.sep(":")))
            .collect();
        format!("{}{}{}", w.sep("{"), parts.join(&w.sep(",")), w.sep("}"))
    });
    let array_form = prop::collection::vec(
        prop_oneof![3 => Just("null".to_owned()), 1 => value()],
        20..24,
    )
    .prop_map(|mut v| {
        v[0] = r#""event""#.to_owned();
        v[2] = "5".to_owned();
        v[3] = (NOW.0 - 5).to_string();
        v[18] = r#""sos""#.to_owned();
        format!("[{}]", v.join(","))
    });
    prop_oneof![
        5 => fix_like,
        2 => heartbeat,
        2 => event,
        3 => batch,
        3 => generic,
        1 => array_form,
        1 => value(),
    ]
}

/// Byte-level edits after generation.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b" \n,:{}[]\"\\0-.e1nu".to_vec())
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    prop_oneof![
        3 => Just(Vec::new()),
        1 => prop::collection::vec(edit, 1..3),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len();
        match *e {
            Edit::Set(i, b) if n > 0 => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Edit::Delete(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(i % (n + 1)),
            _ => {}
        }
    }
    bytes
}

/// An OwnTracks document, mostly well-formed, with ignored fields of any shape.
fn owntracks_doc() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        6 => prop::sample::select(vec![
            "_type", "data", "lat", "lon", "tst", "acc", "alt", "vel", "cog", "tid", "batt",
            "inregions", "conn", "t",
        ])
        .prop_map(|k| format!("\"{k}\"")),
        1 => prop::sample::select(vec![
            r#""l\u0061t""#, r#""\ud800""#, r#""x\ud83d\ude00""#, "\"\u{e9}\"", "\"t\u{1}\"",
        ])
        .prop_map(str::to_owned),
    ];
    let entry = key
        .prop_flat_map(|k| {
            let v = match k.as_str() {
                "\"_type\"" => prop::sample::select(vec![
                    r#""location""#,
                    r#""encrypted""#,
                    r#""lwt""#,
                    r#""locati\u006fn""#,
                ])
                .prop_map(str::to_owned)
                .boxed(),
                "\"tst\"" => prop_oneof![
                    3 => (NOW.0 / 1000 - 100_000..NOW.0 / 1000 + 600).prop_map(|v| v.to_string()),
                    1 => number(),
                ]
                .boxed(),
                "\"lat\"" | "\"lon\"" | "\"acc\"" | "\"alt\"" | "\"vel\"" | "\"cog\"" => {
                    prop_oneof![3 => (-200.0f64..400.0).prop_map(|v| format!("{v}")), 1 => number()]
                        .boxed()
                }
                _ => value().boxed(),
            };
            (Just(k), v)
        })
        .boxed();
    let location = (
        NOW.0 / 1000 - 100_000..NOW.0 / 1000 + 600,
        -90.0f64..90.0,
        -180.0f64..180.0,
        0u32..100,
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    r#""tid""#,
                    r#""batt""#,
                    r#""inregions""#,
                    r#""conn""#,
                    r#""x\ud83d\ude00""#,
                    r#""\u0074id""#,
                ]),
                value(),
            ),
            0..4,
        ),
    )
        .prop_map(|(tst, lat, lon, acc, extra)| {
            let mut parts = vec![format!(
                r#""_type":"location","tst":{tst},"lat":{lat},"lon":{lon},"acc":{acc}"#
            )];
            parts.extend(extra.into_iter().map(|(k, v)| format!("{k}:{v}")));
            format!("{{{}}}", parts.join(","))
        });
    let generic = (prop::collection::vec(entry, 0..10), ws_seed()).prop_map(|(entries, ws)| {
        let mut w = Ws(ws, 0);
        let parts: Vec<String> = entries
            .into_iter()
            .map(|(k, v)| format!("{k}{}{v}", w.sep(":")))
            .collect();
        format!("{}{}{}", w.sep("{"), parts.join(&w.sep(",")), w.sep("}"))
    });
    let array_form = prop::collection::vec(prop_oneof![2 => number(), 1 => value()], 8..11)
        .prop_map(|mut v| {
            v[0] = r#""location""#.to_owned();
            v[1] = "null".to_owned();
            format!("[{}]", v.join(","))
        });
    prop_oneof![5 => location, 3 => generic, 1 => array_form, 1 => value()]
}

/// A fix with any values, including ones validation rejects and non-finite
/// ones (which the encoder writes as `null`).
fn any_fix() -> impl Strategy<Value = Fix> {
    let float = prop_oneof![4 => -400.0f64..400.0, 1 => any::<f64>()];
    let float32 = prop_oneof![4 => -400.0f32..400.0, 1 => any::<f32>()];
    (
        any::<u64>(),
        prop_oneof![3 => NOW.0 - 10_000_000..NOW.0 + 600_000, 1 => any::<i64>()],
        (float.clone(), float),
        float32.clone(),
        prop::option::of(float32.clone()),
        prop::option::of(float32.clone()),
        prop::option::of(float32),
        prop::option::of(any::<u8>()),
        prop::sample::select(vec![
            PositionSource::Gnss,
            PositionSource::Wifi,
            PositionSource::Cell,
            PositionSource::Fused,
        ]),
    )
        .prop_map(
            |(
                seq,
                time,
                (lat, lon),
                accuracy_m,
                altitude_m,
                speed_mps,
                heading_deg,
                satellites,
                source,
            )| Fix {
                seq,
                time: Timestamp(time),
                lat,
                lon,
                accuracy_m,
                altitude_m,
                speed_mps,
                heading_deg,
                satellites,
                source,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// What the encoder writes (the decoder's fast path), plain or mutated.
    #[test]
    fn encoded_fixes_agree_with_serde(fixes in prop::collection::vec(any_fix(), 1..4),
        batch in any::<bool>(), edits in edits()) {
        let msg = if batch {
            Uplink::Batch(Batch { fixes })
        } else {
            Uplink::Fix(fixes[0])
        };
        same_json(&apply(json::encode_uplink(&msg), &edits))?;
    }

    #[test]
    fn geoward_json_agrees_with_serde(doc in geoward_doc(), edits in edits()) {
        same_json(&apply(doc.into_bytes(), &edits))?;
    }

    /// Sealed envelopes: the inner document is read by the same code, after
    /// the MAC (so the inner bytes must be sealed with the right key).
    #[test]
    fn sealed_json_agrees_with_serde(doc in geoward_doc(), edits in edits(), outer in 0u8..4) {
        let sealed = json::seal(&device(), SECRET, doc.as_bytes());
        let text = String::from_utf8(sealed).expect("ascii");
        let text = match outer {
            0 => text.replace(',', " ,\n"),
            1 => text.replace(r#""mac""#, r#""m\u0061c""#),
            2 => text.replace('{', r#"{"seq":null,"#),
            _ => text,
        };
        same_json(&apply(text.into_bytes(), &edits))?;
    }

    #[test]
    fn arbitrary_bytes_agree_with_serde(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        same_json(&bytes)?;
        same_owntracks(&bytes)?;
    }

    #[test]
    fn owntracks_agrees_with_serde(doc in owntracks_doc(), edits in edits(), encrypt in any::<bool>()) {
        let bytes = apply(doc.into_bytes(), &edits);
        if encrypt {
            let boxed = owntracks::encrypt(SECRET, &[7; 24], &bytes).expect("key fits");
            same_owntracks(&boxed)?;
        } else {
            same_owntracks(&bytes)?;
        }
    }
}

/// Rewrites a JSON value with every object's keys in an order chosen by
/// `seeds` and whitespace chosen by `ws`: the same message in another
/// layout (values keep their spelling, so only the layout changes).
fn relayout(v: &serde_json::Value, seeds: &[u64], objects: &mut usize, ws: &mut Ws) -> String {
    match v {
        serde_json::Value::Object(map) => {
            *objects += 1;
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            let salt = *objects;
            entries.sort_by_key(|(k, _)| {
                let h = k
                    .bytes()
                    .fold(salt as u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
                seeds[h as usize % seeds.len()] ^ h
            });
            let parts: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| {
                    let key = serde_json::to_string(k).expect("a key serialises");
                    let sep = ws.sep(":");
                    format!("{key}{sep}{}", relayout(v, seeds, objects, ws))
                })
                .collect();
            format!("{}{}{}", ws.sep("{"), parts.join(&ws.sep(",")), ws.sep("}"))
        }
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|v| relayout(v, seeds, objects, ws))
                .collect();
            format!("{}{}{}", ws.sep("["), parts.join(&ws.sep(",")), ws.sep("]"))
        }
        leaf => serde_json::to_string(leaf).expect("a leaf serialises"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The same messages as the encoder writes them, with keys in random
    /// orders and random whitespace (so the key-table lookup and not the
    /// encoder-layout fast path reads them): the decoder must return exactly
    /// what it returns for the encoder's layout, and agree with the oracle.
    #[test]
    fn any_key_order_decodes_like_the_encoder_layout(
        fixes in prop::collection::vec(any_fix(), 1..4),
        batch in any::<bool>(),
        with_device in any::<bool>(),
        seeds in prop::collection::vec(any::<u64>(), 1..16),
        ws in ws_seed(),
        spaced in any::<bool>(),
    ) {
        let msg = if batch {
            Uplink::Batch(Batch { fixes })
        } else {
            Uplink::Fix(fixes[0])
        };
        let encoded = json::encode_uplink(&msg);
        let mut value: serde_json::Value =
            serde_json::from_slice(&encoded).expect("encoder output is json");
        if with_device && let Some(map) = value.as_object_mut() {
            map.insert("device_id".to_owned(), device().as_str().into());
        }
        // Whitespace everywhere, or compact (only the key order changes).
        let mut w = Ws(if spaced { ws } else { vec![255] }, 0);
        let doc = relayout(&value, &seeds, &mut 0, &mut w);
        let opts = DecodeOptions::default();
        let want = outcome(json::decode(&encoded, &device(), &opts, NOW, &keys()));
        let got = outcome(json::decode(doc.as_bytes(), &device(), &opts, NOW, &keys()));
        prop_assert_eq!(&got, &want, "{}", doc);
        same_json(doc.as_bytes())?;
    }
}

/// Inputs the generators may miss, each checked against the oracle.
#[test]
fn edge_cases_agree_with_serde() {
    let t = NOW.0 - 1000;
    let fix =
        format!(r#""seq":1,"time_ms":{t},"lat":31.2,"lon":121.4,"accuracy_m":5,"source":"gnss""#);
    let cases = [
        format!(r#"{{"type":"fix",{fix}}}"#),
        format!(" \n\t\r{{ \"type\" : \"fix\" , {} }} \n", fix.replace(',', " ,\t")),
        format!(r#"{{"type":"fix",{fix}}} x"#),
        format!(r#"{{"type":"fix",{fix}}}{{}}"#),
        format!(r#"{{"type":"fix",{fix},}}"#),
        format!(r#"{{"type":"fix",{fix},"seq":2}}"#),
        format!(r#"{{"type":"fix",{fix},"seq":null}}"#),
        format!(r#"{{"type":"fix",{fix},"altitude_m":null}}"#),
        format!(r#"{{"type":"fix",{fix},"altitude_m":null,"altitude_m":1}}"#),
        format!(r#"{{"\u0074ype":"fix",{fix}}}"#),
        format!(r#"{{"type":"f\u0069x",{fix}}}"#),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace(r#""gnss""#, r#"{"gnss":null}"#)),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace(r#""gnss""#, r#"{"gnss":1}"#)),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace(r#""gnss""#, r#""GNSS""#)),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace("31.2", "3.12e1")),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace("31.2", "3120E-2")),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace(r#""seq":1"#, r#""seq":1.0"#)),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace(r#""seq":1"#, r#""seq":-0"#)),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace(r#""seq":1"#, r#""seq":1e0"#)),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace(r#""accuracy_m":5"#, r#""accuracy_m":1e39"#)),
        format!(r#"{{"type":"fix",{}}}"#, fix.replace(r#""accuracy_m":5"#, r#""accuracy_m":1e309"#)),
        format!(r#"{{"type":"fix","device_id":"bracelet\u002d0001",{fix}}}"#),
        format!(r#"{{"type":"fix","device_id":"\ud83d\ude00",{fix}}}"#),
        format!(r#"{{"type":"fix","device_id":"\ud83d",{fix}}}"#),
        format!(r#"{{"type":"fix","device_id":"{}",{fix}}}"#, "\u{e9}"),
        format!(r#"{{"type":"fix",{fix},"colour":"red"}}"#),
        format!(r#"{{"type":"fix",{fix},"source_position":1}}"#),
        format!(r#"{{"type":"fix",{fix},"accuracy_m_extra":1}}"#),
        format!(r#"{{"type":"fix",{fix},"heading_deg\"":1}}"#),
        format!(r#"{{"type":"fix",{fix},"lat\u0000":1}}"#),
        format!(r#"{{"type":"fix",{fix},"la\t":1}}"#),
        format!(r#"{{{fix},"type":"fix"}}"#),
        format!(r#"{{{fix},"type":"fix"}}"#).replace(r#""type":"fix"}"#, r#""type":"fix"#),
        format!(r#"{{{fix},"type""#),
        format!(r#"{{{fix},"typ"#),
        format!(r#"{{{fix},"type":"#),
        format!(r#"{{"seq":1,"type":"fix","time_ms":{t},"source":"gnss","lon":121.4,"lat":31.2,"accuracy_m":5,"heading_deg":1,"satellites":5}}"#),
        format!(r#"{{"type":"fix",{fix},"mac":null}}"#),
        format!(r#"{{"type":"fix",{fix},"mac":"AAAA"}}"#),
        format!(r#"{{"type":null,{fix}}}"#),
        r#"["event",null,5,1763799999000,null,null,null,null,null,null,null,null,null,null,null,null,null,null,"sos",null,null,null]"#.to_owned(),
        r#"["event",null,5,1763799999000,null,null,null,null,null,null,null,null,null,null,null,null,null,null,"sos",null,null]"#.to_owned(),
        r#"["event",null,5,1763799999000,null,null,null,null,null,null,null,null,null,null,null,null,null,null,"sos",null,null,null,null]"#.to_owned(),
        format!(r#"{{"type":"batch","fixes":[[1,{t},1,2,3,null,null,null,null,"wifi"]]}}"#),
        format!(r#"{{"type":"batch","fixes":[[1,{t},1,2,3,null,null,null,"wifi"]]}}"#),
        format!(r#"{{"type":"batch","fixes":[{{{fix}}},{{{fix},"speed_mps":999}}]}}"#),
        format!(r#"{{"type":"batch","fixes":[{{{fix},"speed_mps":999}},{{"seq":3}}]}}"#),
        format!(r#"{{"type":"batch","fixes":[{{{fix}}},]}}"#),
        format!(r#"{{"type":"batch","fixes":[{{{fix},"type":"fix"}}]}}"#),
        r#"{"type":"batch","fixes":[]}"#.to_owned(),
        r#"{"type":"batch","fixes":null}"#.to_owned(),
        r#"{"type":"batch","fixes":{}}"#.to_owned(),
        r#"{"type":"heartbeat","seq":1,"time_ms":1763799999000,"battery_pct":256,"charging":false,"strap":"intact","case_tamper":false,"gnss":"off"}"#.to_owned(),
        r#"{"type":"heartbeat","seq":1,"time_ms":1763799999000,"battery_pct":100,"charging":false,"strap":"intact","case_tamper":false,"gnss":"off","signal_dbm":-128}"#.to_owned(),
        r#"{"type":"heartbeat","seq":1,"time_ms":1763799999000,"battery_pct":100,"charging":false,"strap":"intact","case_tamper":false,"gnss":"off","signal_dbm":-129}"#.to_owned(),
        r#"{"sealed":"e30=","mac":"AAAA","seq":null}"#.to_owned(),
        r#"{"sealed":"e30=","mac":"AAAA","type":"fix"}"#.to_owned(),
        r#"{"sealed":"e3\u0030=","mac":"AAAA"}"#.to_owned(),
        r#"{"sealed":null,"mac":"AAAA"}"#.to_owned(),
        "{}".to_owned(),
        "[]".to_owned(),
        "null".to_owned(),
        String::new(),
    ];
    for c in &cases {
        same_json(c.as_bytes()).unwrap_or_else(|e| panic!("{c}: {e}"));
    }
    let ot = [
        r#"{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"inregions":["home",{"a":[[[]]]}],"x":{"\ud800":"\udc00"}}"#,
        r#"{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"\ud800":1}"#,
        r#"{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"x":1e99999}"#,
        r#"{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"x":01}"#,
        r#"{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"t":"a","t":"b"}"#,
        r#"{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"lat":1}"#,
        r#"{"_type":"location","tst":-1,"lat":31.2,"lon":121.4,"acc":12}"#,
        r#"{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"vel":-1,"cog":725}"#,
        r#"["location",null,31.2,121.4,1763799000,12,null,null,null]"#,
        r#"{"_type":"lwt"}"#,
        r#"{"_type":"encrypted","data":"!!"}"#,
    ];
    for c in ot {
        same_owntracks(c.as_bytes()).unwrap_or_else(|e| panic!("{c}: {e}"));
    }
    let mut raw =
        br#"{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"#.to_vec();
    raw.extend_from_slice(b"\"\xff\":1}");
    same_owntracks(&raw).expect("invalid utf-8 key");
    let mut raw =
        br#"{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"#.to_vec();
    raw.extend_from_slice(b"\"x\":\"\xff\"}");
    same_owntracks(&raw).expect("invalid utf-8 in an ignored value");
    let deep = format!(
        r#"{{"_type":"location","tst":1763799000,"lat":31.2,"lon":121.4,"acc":12,"x":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    same_owntracks(deep.as_bytes()).expect("deep ignored value");
}

/// Outcome labels of `n` documents from `strategy` decoded by `decode`
/// (fixed seed).
fn labels(
    strategy: impl Strategy<Value = Vec<u8>>,
    decode: fn(&[u8]) -> Result<Body, DecodeError>,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..n {
        let bytes = strategy.new_tree(&mut runner).expect("generates").current();
        let label = match decode(&bytes) {
            Ok(b) if !b.rejected_fixes.is_empty() => "ok_with_rejected".to_owned(),
            Ok(b) => format!("ok_{}", b.message.kind()),
            Err(e) => e.reason().to_owned(),
        };
        *seen.entry(label).or_default() += 1;
    }
    seen
}

/// The generators reach every part of the decoders: well-formed messages of
/// each kind, batches with rejected fixes, and most rejection reasons (a
/// differential test over inputs that all fail to parse would prove little).
#[test]
fn generators_cover_the_decoders() {
    let opts = DecodeOptions::default();
    let geoward = (geoward_doc(), edits()).prop_map(|(doc, e)| apply(doc.into_bytes(), &e));
    let seen = labels(
        geoward,
        |b| json::decode(b, &device(), &DecodeOptions::default(), NOW, &keys()),
        3000,
    );
    for label in [
        "ok_fix",
        "ok_heartbeat",
        "ok_event",
        "ok_batch",
        "ok_with_rejected",
        "bad_json",
        "missing_field",
        "unexpected_field",
        "unknown_message_type",
        "device_mismatch",
        "coordinate_out_of_range",
        "out_of_range",
        "future_time",
        "empty_batch",
    ] {
        assert!(seen.contains_key(label), "{label} never produced: {seen:?}");
    }
    let parsed: usize = seen
        .iter()
        .filter(|(k, _)| k.as_str() != "bad_json")
        .map(|(_, v)| v)
        .sum();
    assert!(parsed * 3 > 3000, "too few documents parse: {seen:?}");

    let ot = (owntracks_doc(), edits()).prop_map(|(doc, e)| apply(doc.into_bytes(), &e));
    let seen = labels(
        ot,
        |b| owntracks::decode(b, &device(), &DecodeOptions::default(), NOW, &keys()),
        2000,
    );
    for label in ["ok_fix", "bad_json", "missing_field", "unsupported_type"] {
        assert!(seen.contains_key(label), "{label} never produced: {seen:?}");
    }
    assert!(
        seen["ok_fix"] * 5 > 2000,
        "too few locations parse: {seen:?}"
    );
    let _ = opts;
}
