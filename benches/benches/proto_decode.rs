//! Decode throughput of the device protocol, per message (or per fix for
//! batches), against `serde_json::Value` parsing of the same JSON payload
//! measured in the same run.
//!
//! Payloads are built from the real GPX tracks in `../shared/data/traces`
//! (their coordinates, cycling through them so branch predictors and caches
//! do not see one payload). Everything is deterministic: no RNG.
//!
//! The Geoward JSON rows are measured twice: payloads as `encode_uplink`
//! writes them (the decoder has a fast path for exactly that layout) and the
//! same messages with their keys in another order (its general path).
//!
//! Run: `cargo bench -p geoward-benches --bench proto_decode -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use geoward_benches::shared_data;
use geoward_proto::{
    Batch, DecodeOptions, DeviceId, Encoding, Fix, NoKeys, PositionSource, Protection, Timestamp,
    Topic, Uplink, decode_uplink, encode_uplink,
};

/// Receive time of every payload: 2025-11-22T08:26:40Z.
const NOW: Timestamp = Timestamp(1_763_800_000_000);
/// Fixes per batch, a typical store-and-forward upload after ~1.5 h offline.
const BATCH: usize = 100;
/// Distinct payloads cycled through per benchmark.
const PAYLOADS: usize = 256;

/// (lat, lon, elevation) of every `<trkpt>` in the GPX traces.
fn track_points() -> Vec<(f64, f64, Option<f64>)> {
    let mut points = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(shared_data().join("traces"))
        .expect("shared/data/traces exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "gpx"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable gpx");
        for chunk in text.split("<trkpt").skip(1) {
            let attr = |name: &str| -> Option<f64> {
                let start = chunk.find(&format!("{name}=\""))? + name.len() + 2;
                chunk[start..].split('"').next()?.parse().ok()
            };
            let end = chunk.find("</trkpt>").unwrap_or(chunk.len());
            let ele = chunk[..end]
                .split("<ele>")
                .nth(1)
                .and_then(|s| s.split('<').next())
                .and_then(|s| s.trim().parse().ok());
            if let (Some(lat), Some(lon)) = (attr("lat"), attr("lon")) {
                points.push((lat, lon, ele));
            }
        }
    }
    assert!(points.len() > BATCH, "need real track points");
    points
}

/// Fixes from the track points, on the binary grid (1e-7 degree etc.), one
/// per minute ending just before `NOW`, with deterministic speed and heading.
fn fixes() -> Vec<Fix> {
    let points = track_points();
    let n = points.len() as i64;
    points
        .iter()
        .enumerate()
        .map(|(i, &(lat, lon, ele))| Fix {
            seq: 1_000 + i as u64,
            time: Timestamp(NOW.0 - (n - i as i64) * 60_000),
            lat: (lat * 1e7).round() / 1e7,
            lon: (lon * 1e7).round() / 1e7,
            accuracy_m: (3 + i % 40) as f32 / 2.0,
            altitude_m: ele.map(|e| e.round() as f32),
            speed_mps: Some((i % 3000) as f32 / 100.0),
            heading_deg: Some((i * 7 % 360) as f32),
            satellites: Some((4 + i % 12) as u8),
            source: PositionSource::Gnss,
        })
        .collect()
}

fn device() -> DeviceId {
    DeviceId::new("bracelet-0001").expect("valid id")
}

fn encode_all(msgs: &[Uplink], encoding: Encoding) -> Vec<Vec<u8>> {
    msgs.iter()
        .map(|m| encode_uplink(&device(), m, encoding, Protection::None).expect("encodable"))
        .collect()
}

fn proto_decode(c: &mut Criterion) {
    let fixes = fixes();
    let opts = DecodeOptions::default();
    let singles: Vec<Uplink> = fixes
        .iter()
        .take(PAYLOADS)
        .copied()
        .map(Uplink::Fix)
        .collect();
    let batches: Vec<Uplink> = fixes
        .chunks_exact(BATCH)
        .map(|c| Uplink::Batch(Batch { fixes: c.to_vec() }))
        .collect();
    let json_topic = Topic::uplink(device(), Encoding::Json);
    let bin_topic = Topic::uplink(device(), Encoding::Binary);
    let ot_topic = Topic::uplink(device(), Encoding::OwnTracks);

    // Every payload must decode before it is timed.
    let check = |topic: &Topic, payloads: &[Vec<u8>]| {
        for p in payloads {
            decode_uplink(topic, p, &opts, NOW, &NoKeys).expect("bench payload decodes");
        }
    };

    // Single fixes: Geoward JSON and binary against Value parsing of the JSON.
    let json_single = encode_all(&singles, Encoding::Json);
    let bin_single = encode_all(&singles, Encoding::Binary);
    check(&json_topic, &json_single);
    check(&bin_topic, &bin_single);
    let mut g = c.benchmark_group("fix");
    g.throughput(Throughput::Elements(1));
    bench_cycle(&mut g, "baseline_serde_json_value", &json_single, |p| {
        serde_json::from_slice::<serde_json::Value>(p).is_ok()
    });
    bench_cycle(&mut g, "geoward_json", &json_single, |p| {
        decode_uplink(&json_topic, p, &opts, NOW, &NoKeys).is_ok()
    });
    // The same fixes with keys in another order (re-serialised through
    // `Value`, which sorts them): the decoder's general path instead of its
    // fast path for the encoder's own layout.
    let json_single_sorted = resorted(&json_single);
    check(&json_topic, &json_single_sorted);
    bench_cycle(
        &mut g,
        "geoward_json_general_path",
        &json_single_sorted,
        |p| decode_uplink(&json_topic, p, &opts, NOW, &NoKeys).is_ok(),
    );
    bench_cycle(&mut g, "binary", &bin_single, |p| {
        decode_uplink(&bin_topic, p, &opts, NOW, &NoKeys).is_ok()
    });
    g.finish();

    // Batches, per fix.
    let json_batch = encode_all(&batches, Encoding::Json);
    let bin_batch = encode_all(&batches, Encoding::Binary);
    check(&json_topic, &json_batch);
    check(&bin_topic, &bin_batch);
    let secret = b"bench secret".to_vec();
    let keys = HashMap::from([(device(), secret.clone())]);
    let bin_batch_mac: Vec<_> = batches
        .iter()
        .map(|m| {
            encode_uplink(
                &device(),
                m,
                Encoding::Binary,
                Protection::Mac { secret: &secret },
            )
            .expect("encodable")
        })
        .collect();
    let mut g = c.benchmark_group("batch_per_fix");
    g.throughput(Throughput::Elements(BATCH as u64));
    bench_cycle(&mut g, "baseline_serde_json_value", &json_batch, |p| {
        serde_json::from_slice::<serde_json::Value>(p).is_ok()
    });
    bench_cycle(&mut g, "geoward_json", &json_batch, |p| {
        decode_uplink(&json_topic, p, &opts, NOW, &NoKeys).is_ok()
    });
    let json_batch_sorted = resorted(&json_batch);
    check(&json_topic, &json_batch_sorted);
    bench_cycle(
        &mut g,
        "geoward_json_general_path",
        &json_batch_sorted,
        |p| decode_uplink(&json_topic, p, &opts, NOW, &NoKeys).is_ok(),
    );
    bench_cycle(&mut g, "binary", &bin_batch, |p| {
        decode_uplink(&bin_topic, p, &opts, NOW, &NoKeys).is_ok()
    });
    bench_cycle(&mut g, "binary_authenticated", &bin_batch_mac, |p| {
        decode_uplink(&bin_topic, p, &opts, NOW, &keys).is_ok_and(|d| d.authenticated)
    });
    g.finish();

    // OwnTracks locations (whole-second times: seq derives from tst).
    let ot_fixes: Vec<Uplink> = singles
        .iter()
        .map(|m| match m {
            Uplink::Fix(f) => Uplink::Fix(Fix {
                time: Timestamp(f.time.0 / 1000 * 1000),
                ..*f
            }),
            other => other.clone(),
        })
        .collect();
    let ot_plain = encode_all(&ot_fixes, Encoding::OwnTracks);
    check(&ot_topic, &ot_plain);
    let ot_encrypted: Vec<_> = ot_fixes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut nonce = [0u8; 24];
            nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
            encode_uplink(
                &device(),
                m,
                Encoding::OwnTracks,
                Protection::Encrypt {
                    secret: &secret,
                    nonce,
                },
            )
            .expect("encodable")
        })
        .collect();
    let mut g = c.benchmark_group("owntracks");
    g.throughput(Throughput::Elements(1));
    bench_cycle(&mut g, "baseline_serde_json_value", &ot_plain, |p| {
        serde_json::from_slice::<serde_json::Value>(p).is_ok()
    });
    bench_cycle(&mut g, "location", &ot_plain, |p| {
        decode_uplink(&ot_topic, p, &opts, NOW, &NoKeys).is_ok()
    });
    bench_cycle(&mut g, "encrypted", &ot_encrypted, |p| {
        decode_uplink(&ot_topic, p, &opts, NOW, &keys).is_ok_and(|d| d.authenticated)
    });
    g.finish();
}

/// The payloads re-serialised through `serde_json::Value` (keys sorted,
/// numbers re-spelled): same messages, another layout.
fn resorted(payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
    payloads
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(p).expect("valid json");
            let out = serde_json::to_vec(&v).expect("serialisable");
            // Neither a fix nor a batch entry starts the way the encoder's do.
            assert!(
                !out.starts_with(br#"{"type":"fix","#)
                    && !out.windows(7).any(|w| w == br#"{"seq":"#),
                "keys not reordered: is serde_json's preserve_order enabled?"
            );
            out
        })
        .collect()
}

/// Geoward JSON against the baseline again, timed in on-CPU time of the
/// benchmark thread instead of wall-clock time: "per core" on a machine whose
/// two cores are shared with other work (the wall-clock rows then measure a
/// share of a core).
fn proto_decode_cpu(c: &mut Criterion<ThreadCpu>) {
    let fixes = fixes();
    let opts = DecodeOptions::default();
    let json_topic = Topic::uplink(device(), Encoding::Json);
    let singles: Vec<Uplink> = fixes
        .iter()
        .take(PAYLOADS)
        .copied()
        .map(Uplink::Fix)
        .collect();
    let batches: Vec<Uplink> = fixes
        .chunks_exact(BATCH)
        .map(|c| Uplink::Batch(Batch { fixes: c.to_vec() }))
        .collect();
    for (name, msgs, per) in [
        ("cpu_fix", &singles, 1),
        ("cpu_batch_per_fix", &batches, BATCH),
    ] {
        let payloads = encode_all(msgs, Encoding::Json);
        let mut g = c.benchmark_group(name);
        // Equal samples of ~160 ms each: the thread's on-CPU time is
        // accounted at scheduler ticks (a few ms), which averages out only
        // over long samples.
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(50)
            .measurement_time(Duration::from_secs(8))
            .throughput(Throughput::Elements(per as u64));
        bench_cycle(&mut g, "baseline_serde_json_value", &payloads, |p| {
            serde_json::from_slice::<serde_json::Value>(p).is_ok()
        });
        bench_cycle(&mut g, "geoward_json", &payloads, |p| {
            decode_uplink(&json_topic, p, &opts, NOW, &NoKeys).is_ok()
        });
        let sorted = resorted(&payloads);
        bench_cycle(&mut g, "geoward_json_general_path", &sorted, |p| {
            decode_uplink(&json_topic, p, &opts, NOW, &NoKeys).is_ok()
        });
        g.finish();
    }
}

/// On-CPU time of the calling thread in ns, from Linux's
/// `/proc/thread-self/schedstat` (first field; no libc needed).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat is readable (Linux)")
}

/// A criterion measurement of the benchmark thread's on-CPU time.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNanos
    }
}

/// Formats CPU nanoseconds like criterion formats wall-clock ones.
struct CpuNanos;

impl ValueFormatter for CpuNanos {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns (cpu)")
        } else if ns < 1e6 {
            (1e-3, "µs (cpu)")
        } else {
            (1e-6, "ms (cpu)")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iteration = match *throughput {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => n,
            Throughput::Bits(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n,
        } as f64;
        let per_second = per_iteration * 1e9 / ns;
        let (factor, unit) = if per_second < 1e6 {
            (1e-3, "K/s (cpu)")
        } else {
            (1e-6, "M/s (cpu)")
        };
        values
            .iter_mut()
            .for_each(|v| *v = per_iteration * 1e9 / *v * factor);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Benchmarks `f` over the payloads in turn; `f` returns whether it succeeded
/// (asserted, so a broken decoder cannot look fast).
fn bench_cycle<M: Measurement>(
    g: &mut criterion::BenchmarkGroup<'_, M>,
    name: &str,
    payloads: &[Vec<u8>],
    f: impl Fn(&[u8]) -> bool,
) {
    let mut i = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            let ok = f(black_box(&payloads[i]));
            assert!(ok, "{name}: payload {i} failed to decode");
        })
    });
}

criterion_group!(benches, proto_decode);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = proto_decode_cpu
}
criterion_main!(benches, cpu);
