//! Storage batcher throughput: `Store::write_batch` (one `INSERT ... SELECT FROM
//! UNNEST` per table on PostgreSQL) against the naive way measured in the same run
//! (one `INSERT ... VALUES` per row, same transaction per batch, same schema), plus
//! the embedded SQLite store with the same batches.
//!
//! Run: `benches/storage-bench` (starts a throwaway PostgreSQL 15 cluster), or
//! `GEOWARD_BENCH_PG_URL=postgres://user@host:port/postgres cargo bench -p geoward-benches --bench storage`.
//! Without `GEOWARD_BENCH_PG_URL` (or `GEOWARD_TEST_PG_URL`) the PostgreSQL groups
//! are skipped with a message; the bench creates its own database on that cluster
//! and drops it at the end.
//!
//! The rows are made the way the service makes them: a seeded fleet of bracelets
//! around Zhengzhou publishes sealed Geoward JSON uplinks (one fix per minute,
//! a heartbeat every fifth minute, store-and-forward uploads after coverage gaps),
//! ingest's own `Decoder` verifies and decodes them and ingest's `plan` builds the
//! batch: dedupe, per-device SHA-256 evidence chain, ack progress. Generating a
//! batch is not timed; only the write (including the commit) is. Every variant
//! starts on emptied tables with the same seeded fleet, and its stored rows are
//! counted and sampled evidence chains verified afterwards. `unnest_fixes_only`
//! writes only the fix rows of the same batches, to show what the evidence rows
//! (one raw payload per message) cost on top.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use geoward_benches::Rng;
use geoward_ingest::config::StorageConfig;
use geoward_ingest::metrics::Metrics;
use geoward_ingest::pipeline::decode::Decoder;
use geoward_ingest::pipeline::plan::{DeviceTrack, plan};
use geoward_ingest::store::{NewDevice, Store, WriteBatch};
use geoward_proto::{
    Batch, DeviceId, Encoding, Fix, GnssState, Heartbeat, PositionSource, Protection, StrapState,
    Timestamp, Topic, Uplink, encode_uplink,
};
use sqlx::PgPool;
use tokio::runtime::Runtime;

/// Fixes per batch (the service closes a batch at `storage.batch_max_rows`, 5,000 by default).
const SIZES: [usize; 3] = [500, 2_000, 5_000];
/// Devices in the fleet (a city has hundreds to thousands of subjects).
const DEVICES: usize = 2_000;
const SEED: u64 = 0x6765_6f77_6172_6421;
/// Zhengzhou city centre.
const CENTRE: (f64, f64) = (34.7466, 113.6254);
/// Pipeline default: items remembered above a gap per device.
const MAX_PENDING: usize = 4_096;
/// Largest store-and-forward upload a device sends in one message.
const MAX_UPLOAD: usize = 100;

/// One simulated bracelet.
struct Device {
    id: DeviceId,
    secret: Vec<u8>,
    topic: String,
    seq: u64,
    /// Minutes measured so far.
    minutes: u64,
    lat: f64,
    lon: f64,
    /// Messages measured but not yet sent (store-and-forward buffer).
    buffer: Vec<Uplink>,
    /// Minutes left out of coverage.
    offline_minutes: u32,
}

/// What a fleet has written so far (to check the tables and describe the mix).
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    batches: u64,
    fixes: u64,
    events: u64,
    evidence: u64,
}

/// A seeded fleet that turns its uplinks into storage batches through ingest's
/// decoder and planner, exactly as the service's reader and batcher do.
struct Fleet {
    rng: Rng,
    devices: Vec<Device>,
    decoder: Decoder,
    tracks: HashMap<String, DeviceTrack>,
    /// Simulated time of the device whose turn it is, unix ms.
    clock_ms: i64,
    /// Device whose turn it is; `measured` says whether it already measured this minute.
    cursor: usize,
    measured: bool,
    written: Written,
}

impl Fleet {
    /// A fresh fleet (same seed, same rows every time) whose devices are registered
    /// in `store`, starting at `start` with empty device state.
    async fn new(store: &Store, start: DateTime<Utc>) -> Fleet {
        let mut rng = Rng(SEED);
        let mut devices = Vec::with_capacity(DEVICES);
        for i in 0..DEVICES {
            let id = DeviceId::new(format!("zz{i:05}")).expect("valid device id");
            let secret: Vec<u8> = (0..16).map(|_| rng.next_u64() as u8).collect();
            // Uniform over a disc of ~25 km around the centre.
            let r = 0.22 * rng.unit().sqrt();
            let a = rng.range(0.0, std::f64::consts::TAU);
            let topic = Topic::uplink(id.clone(), Encoding::Json).to_string();
            store
                .upsert_device(
                    &NewDevice {
                        id: id.as_str(),
                        kind: "bracelet",
                        subject_id: None,
                        password_hash: "bench",
                        payload_key: &hex::encode(&secret),
                    },
                    start,
                )
                .await
                .expect("registering a bench device");
            devices.push(Device {
                id,
                secret,
                topic,
                seq: 0,
                minutes: 0,
                lat: CENTRE.0 + r * a.sin(),
                lon: CENTRE.1 + r * a.cos() / CENTRE.0.to_radians().cos(),
                buffer: Vec::new(),
                offline_minutes: 0,
            });
        }
        Fleet {
            rng,
            devices,
            decoder: Decoder::new(store.clone(), Metrics::new(), 256 * 1024, true),
            tracks: HashMap::new(),
            clock_ms: start.timestamp_millis(),
            cursor: 0,
            measured: false,
            written: Written::default(),
        }
    }

    /// The device at the cursor measures this minute's fix (and every fifth minute a
    /// heartbeat) into its buffer; sometimes it loses coverage for a while.
    fn measure(&mut self) {
        let now = Timestamp(self.clock_ms);
        let rng = &mut self.rng;
        let d = &mut self.devices[self.cursor];
        // A walk of up to ~60 m a minute.
        d.lat += rng.range(-5.0e-4, 5.0e-4);
        d.lon += rng.range(-6.0e-4, 6.0e-4);
        let (source, accuracy_m) = match rng.below(20) {
            0 => (PositionSource::Cell, rng.range(200.0, 800.0) as f32),
            1 | 2 => (PositionSource::Wifi, rng.range(20.0, 150.0) as f32),
            _ => (PositionSource::Gnss, rng.range(3.0, 15.0) as f32),
        };
        d.seq += 1;
        d.buffer.push(Uplink::Fix(Fix {
            seq: d.seq,
            time: now,
            lat: d.lat,
            lon: d.lon,
            accuracy_m,
            altitude_m: Some(rng.range(80.0, 120.0) as f32),
            speed_mps: Some(rng.range(0.0, 1.5) as f32),
            heading_deg: Some(rng.range(0.0, 359.0) as f32),
            satellites: (source == PositionSource::Gnss).then(|| 6 + rng.below(10) as u8),
            source,
        }));
        d.minutes += 1;
        if d.minutes.is_multiple_of(5) {
            d.seq += 1;
            d.buffer.push(Uplink::Heartbeat(Heartbeat {
                seq: d.seq,
                time: now,
                battery_pct: 20 + rng.below(80) as u8,
                charging: false,
                strap: StrapState::Intact,
                case_tamper: false,
                signal_dbm: Some(-60 - rng.below(50) as i8),
                gnss: GnssState::Fixed,
            }));
        }
        if d.offline_minutes > 0 {
            d.offline_minutes -= 1;
        } else if rng.below(100) == 0 {
            // Out of coverage (lift, basement, dead zone) for 5 to 60 minutes.
            d.offline_minutes = 5 + rng.below(56) as u32;
        }
    }

    /// Drains the cursor device's buffer into messages while it has coverage, up to
    /// `room` fixes. Returns the messages and the fixes they carry.
    fn drain(&mut self, room: usize) -> Vec<(String, Vec<u8>)> {
        let d = &mut self.devices[self.cursor];
        let mut out = Vec::new();
        if d.offline_minutes > 0 {
            return out;
        }
        let mut left = room;
        while left > 0 && !d.buffer.is_empty() {
            let msg = match &d.buffer[0] {
                Uplink::Heartbeat(_) => d.buffer.remove(0),
                _ => {
                    // Consecutive fixes go up together: one Fix, or a Batch after a gap.
                    let n = d
                        .buffer
                        .iter()
                        .take_while(|m| matches!(m, Uplink::Fix(_)))
                        .count()
                        .min(left)
                        .min(MAX_UPLOAD);
                    left -= n;
                    let fixes: Vec<Fix> = d
                        .buffer
                        .drain(..n)
                        .filter_map(|m| match m {
                            Uplink::Fix(f) => Some(f),
                            _ => None,
                        })
                        .collect();
                    if n == 1 {
                        Uplink::Fix(fixes[0])
                    } else {
                        Uplink::Batch(Batch { fixes })
                    }
                }
            };
            let payload = encode_uplink(
                &d.id,
                &msg,
                Encoding::Json,
                Protection::Mac { secret: &d.secret },
            )
            .expect("encoding a bench uplink");
            out.push((d.topic.clone(), payload));
        }
        out
    }

    /// The next storage batch with exactly `fixes` fixes, as the batcher would
    /// commit it; the fleet adopts the planned device state (as after a commit).
    async fn next_batch(&mut self, fixes: usize) -> WriteBatch {
        let minute_ms = 60_000 / DEVICES as i64;
        let mut accepted = Vec::new();
        let mut room = fixes;
        while room > 0 {
            if !self.measured {
                self.measure();
                self.measured = true;
            }
            let msgs = self.drain(room);
            let d = &self.devices[self.cursor];
            let done = d.offline_minutes > 0 || d.buffer.is_empty();
            for (topic, payload) in msgs {
                let received_at = DateTime::from_timestamp_millis(
                    self.clock_ms + 200 + self.rng.below(1_800) as i64,
                )
                .expect("simulated time in range");
                let (a, _) = self
                    .decoder
                    .decode(topic.as_bytes(), Bytes::from(payload), received_at)
                    .await
                    .unwrap_or_else(|reason| {
                        panic!("the service rejected a bench uplink: {reason}")
                    });
                room -= a
                    .items
                    .iter()
                    .filter(|i| matches!(i, geoward_ingest::pipeline::plan::Item::Fix { .. }))
                    .count();
                accepted.push(a);
            }
            if done {
                self.cursor = (self.cursor + 1) % DEVICES;
                self.measured = false;
                self.clock_ms += minute_ms;
            }
        }
        let p = plan(accepted, &self.tracks, MAX_PENDING);
        assert_eq!(p.duplicates + p.refused, 0, "bench rows are all new");
        assert_eq!(
            p.write.fixes.len(),
            fixes,
            "batch has the asked number of fixes"
        );
        self.tracks.extend(p.tracks);
        self.written.batches += 1;
        self.written.fixes += p.write.fixes.len() as u64;
        self.written.events += p.write.events.len() as u64;
        self.written.evidence += p.write.evidence.len() as u64;
        p.write
    }
}

/// The naive baseline: the same rows and upserts as `Store::write_batch`, in one
/// transaction, but one `INSERT ... VALUES` statement (one round trip) per row.
async fn write_row_by_row(pool: &PgPool, b: &WriteBatch) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for f in &b.fixes {
        sqlx::query(
            "INSERT INTO fixes (device_id, seq, fix_time, received_at, lat, lon, accuracy_m, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&f.device_id)
        .bind(f.seq)
        .bind(f.fix_time)
        .bind(f.received_at)
        .bind(f.lat)
        .bind(f.lon)
        .bind(f.accuracy_m)
        .bind(f.source)
        .execute(&mut *tx)
        .await?;
    }
    for e in &b.events {
        sqlx::query(
            "INSERT INTO device_events (device_id, seq, event_time, received_at, kind, detail) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&e.device_id)
        .bind(e.seq)
        .bind(e.event_time)
        .bind(e.received_at)
        .bind(e.kind)
        .bind(&e.detail)
        .execute(&mut *tx)
        .await?;
    }
    let mut heads: HashMap<&str, (i64, &[u8])> = HashMap::new();
    for e in &b.evidence {
        sqlx::query(
            "INSERT INTO evidence (device_id, idx, seq_min, seq_max, received_at, topic, payload, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&e.device_id)
        .bind(e.idx)
        .bind(e.seq_min)
        .bind(e.seq_max)
        .bind(DateTime::from_timestamp_micros(e.received_at_micros))
        .bind(&e.topic)
        .bind(e.payload.as_ref())
        .bind(&e.prev_hash[..])
        .bind(&e.hash[..])
        .execute(&mut *tx)
        .await?;
        heads.insert(&e.device_id, (e.idx, &e.hash[..]));
    }
    for (device, (idx, hash)) in heads {
        sqlx::query(
            "INSERT INTO evidence_heads (device_id, idx, hash) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id) DO UPDATE SET idx = excluded.idx, hash = excluded.hash",
        )
        .bind(device)
        .bind(idx)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    }
    for (device, acked) in &b.progress {
        sqlx::query(
            "INSERT INTO device_progress (device_id, acked_seq, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (device_id) DO UPDATE SET acked_seq = GREATEST(device_progress.acked_seq, excluded.acked_seq), \
             updated_at = excluded.updated_at",
        )
        .bind(device)
        .bind(*acked)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// How a variant writes one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// `Store::write_batch`.
    Store,
    /// [`write_row_by_row`] (PostgreSQL only).
    RowByRow,
    /// `Store::write_batch` of the batch's fixes alone (no events, evidence or
    /// progress): what the fix rows cost by themselves, to see where the time goes.
    FixesOnly,
}

/// A migrated, maintained store as the service opens it.
async fn open(database_url: String, data_dir: std::path::PathBuf) -> Store {
    let cfg = StorageConfig {
        database_url,
        data_dir,
        ..StorageConfig::default()
    };
    let store = Store::connect(&cfg)
        .await
        .expect("connecting the bench store");
    store.migrate().await.expect("migrating the bench store");
    store
        .maintain(cfg.retention_days, cfg.partition_interval_days, Utc::now())
        .await
        .expect("storage maintenance");
    store
}

/// Empties the tables a batch writes, so every variant starts from the same state.
async fn truncate(store: &Store) {
    let tables = [
        "fixes",
        "device_events",
        "evidence",
        "evidence_heads",
        "device_progress",
    ];
    for t in tables {
        let sql = match store {
            Store::Postgres(_) => format!("TRUNCATE {t}"),
            Store::Sqlite(_) => format!("DELETE FROM {t}"),
        };
        geoward_ingest::with_pool!(store, p => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(drop))
            .expect("emptying a bench table");
    }
}

/// Checks that a variant stored what the fleet generated and that the evidence
/// chains verify, so the variants are known to write the same, valid rows.
async fn check_stored(store: &Store, fleet: &Fleet, writer: Writer, label: &str) {
    let count = |table: &'static str| async move {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = geoward_ingest::with_pool!(store, p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await)
            .expect("counting bench rows");
        n as u64
    };
    let w = fleet.written;
    assert_eq!(count("fixes").await, w.fixes, "{label}: fixes stored");
    if writer == Writer::FixesOnly {
        eprintln!("{label}: {} batches, {} fixes stored", w.batches, w.fixes);
        return;
    }
    assert_eq!(
        count("device_events").await,
        w.events,
        "{label}: events stored"
    );
    assert_eq!(
        count("evidence").await,
        w.evidence,
        "{label}: evidence stored"
    );
    for d in fleet.devices.iter().step_by(397) {
        let verified = store
            .verify_evidence(d.id.as_str())
            .await
            .expect("reading evidence");
        assert!(
            verified.is_ok(),
            "{label}: chain of {} breaks: {verified:?}",
            d.id
        );
    }
    eprintln!(
        "{label}: {} batches, {} fixes, {} events, {} evidence rows ({:.2} evidence rows per fix); stored rows and sampled chains verified",
        w.batches,
        w.fixes,
        w.events,
        w.evidence,
        w.evidence as f64 / w.fixes.max(1) as f64
    );
}

/// One criterion group: `name/<fixes per batch>` for each size, each on emptied
/// tables with a fresh fleet (identical rows for every variant).
fn group(c: &mut Criterion, rt: &Runtime, store: &Store, name: &str, writer: Writer) {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for fixes in SIZES {
        let start = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        let mut fleet = rt.block_on(async {
            truncate(store).await;
            Fleet::new(store, start).await
        });
        g.throughput(Throughput::Elements(fixes as u64));
        g.bench_function(BenchmarkId::from_parameter(fixes), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let mut batch = rt.block_on(fleet.next_batch(fixes));
                    if writer == Writer::FixesOnly {
                        batch = WriteBatch {
                            fixes: batch.fixes,
                            ..WriteBatch::default()
                        };
                    }
                    let started = Instant::now();
                    match (writer, store) {
                        (Writer::RowByRow, Store::Postgres(p)) => {
                            rt.block_on(write_row_by_row(p, black_box(&batch)))
                        }
                        _ => rt.block_on(store.write_batch(black_box(&batch))),
                    }
                    .expect("writing a bench batch");
                    timed += started.elapsed();
                }
                timed
            })
        });
        rt.block_on(check_stored(
            store,
            &fleet,
            writer,
            &format!("{name}/{fixes}"),
        ));
    }
    g.finish();
}

fn storage(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    match std::env::var("GEOWARD_BENCH_PG_URL").or_else(|_| std::env::var("GEOWARD_TEST_PG_URL")) {
        Err(_) => eprintln!(
            "storage bench: neither GEOWARD_BENCH_PG_URL nor GEOWARD_TEST_PG_URL is set: \
             SKIPPING the PostgreSQL groups (unnest_batch, unnest_fixes_only, row_by_row); run benches/storage-bench \
             to get a throwaway cluster"
        ),
        Ok(admin_url) => {
            let name = format!("geoward_bench_{}", geoward_ingest::auth::generate_secret());
            let (base, _) = admin_url
                .rsplit_once('/')
                .expect("the PostgreSQL URL names a database");
            let admin = rt.block_on(async {
                let admin = PgPool::connect(&admin_url)
                    .await
                    .expect("connecting to the bench cluster");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .expect("creating the bench database");
                admin
            });
            eprintln!("storage bench: PostgreSQL database {name}");
            let store = rt.block_on(open(format!("{base}/{name}"), std::env::temp_dir()));
            group(c, &rt, &store, "unnest_batch", Writer::Store);
            group(c, &rt, &store, "unnest_fixes_only", Writer::FixesOnly);
            group(c, &rt, &store, "row_by_row", Writer::RowByRow);
            rt.block_on(async {
                store.close().await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await
                .expect("dropping the bench database");
                admin.close().await;
            });
        }
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let store = rt.block_on(open(String::new(), dir.path().to_path_buf()));
    group(c, &rt, &store, "sqlite_batch", Writer::Store);
    rt.block_on(store.close());
}

criterion_group!(benches, storage);
criterion_main!(benches);
