//! Synthetic fleets: N subjects living in a zone, moving through their day,
//! seen through a GPS noise model, with scripted violations mixed in. Every
//! scripted scenario comes with the incident it must produce, so a run can be
//! checked against an expectation file.
//!
//! Deterministic: each subject draws from its own ChaCha stream of the seed,
//! so adding subjects does not change the existing ones.

mod noise;
mod path;
mod scenario;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use geoward_proto::{DeviceEvent, EventKind, GnssState, Heartbeat, StrapState, Timestamp, Uplink};

use crate::expect::{Expectations, ExpectedIncident};
use crate::geo::{Area, LatLon};
use crate::plan::{Plan, Send};

pub use noise::NoiseModel;
pub use path::Path;
pub use scenario::ScenarioKind;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Bluetooth range between bracelet and phone.
const BLE_RANGE_M: f64 = 100.0;

/// Curfew rule every synthetic subject has: at home during these hours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Curfew {
    /// Start, minutes after local midnight (22:00 = 1320).
    pub start_minute: u32,
    /// End, minutes after local midnight (06:00 = 360); may be before start.
    pub end_minute: u32,
    /// Radius around home that counts as "at home", metres.
    pub radius_m: f64,
}

impl Curfew {
    /// Whether local minute-of-day `m` is inside the curfew.
    pub fn covers(&self, m: u32) -> bool {
        if self.start_minute <= self.end_minute {
            (self.start_minute..self.end_minute).contains(&m)
        } else {
            m >= self.start_minute || m < self.end_minute
        }
    }
}

/// A scripted scenario: which kind, on which day, at what local time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScenarioSpec {
    /// What the subject does.
    pub kind: ScenarioKind,
    /// Day of the run, 0-based.
    pub day: u32,
    /// Local minute of day it starts; `None` uses the kind's default.
    pub at_minute: Option<u32>,
}

/// Everything a fleet run depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Number of subjects (scripted ones included).
    pub subjects: usize,
    /// Seed of all randomness.
    pub seed: u64,
    /// Local midnight of the first day, epoch milliseconds.
    pub start_ms: i64,
    /// Length of the run.
    pub duration_ms: i64,
    /// Local time offset from UTC (Asia/Shanghai: +8 h).
    pub utc_offset_ms: i64,
    /// Fix cadence while compliant.
    pub fix_interval_ms: i64,
    /// Fix cadence from the start of a location violation.
    pub violation_fix_interval_ms: i64,
    /// Heartbeat cadence.
    pub heartbeat_interval_ms: i64,
    /// Travel speed, metres per second.
    pub speed_mps: f64,
    /// GPS noise.
    pub noise: NoiseModel,
    /// Curfew rule of every subject.
    pub curfew: Curfew,
    /// Radius of the exclusion zone set up for the exclusion scenario.
    pub exclusion_radius_m: f64,
    /// Bracelet–phone distance the service treats as separation.
    pub separation_m: f64,
    /// Every subject also carries a phone (the phone scenario always does).
    pub phones: bool,
    /// Scripted scenarios; scenario `i` is played by subject `i`.
    pub scenarios: Vec<ScenarioSpec>,
    /// How long violating fixes must span before the service confirms a
    /// zone exit (its permitted-zone `confirm_seconds`; 120 s at the normal
    /// level): a brief excursion is seen outside for at most half of it.
    pub exit_confirm_ms: i64,
    /// How late after the evidence an incident may start.
    pub tolerance_ms: i64,
    /// How long after the last message a lost-contact incident may start.
    pub silence_max_ms: i64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            subjects: 10,
            seed: 1,
            // 2026-01-05T00:00:00+08:00
            start_ms: 1_767_542_400_000,
            duration_ms: DAY_MS,
            utc_offset_ms: 8 * HOUR_MS,
            fix_interval_ms: MINUTE_MS,
            violation_fix_interval_ms: 15_000,
            heartbeat_interval_ms: 5 * MINUTE_MS,
            speed_mps: 8.0,
            noise: NoiseModel::default(),
            curfew: Curfew {
                start_minute: 22 * 60,
                end_minute: 6 * 60,
                radius_m: 300.0,
            },
            exclusion_radius_m: 200.0,
            separation_m: 500.0,
            phones: false,
            scenarios: Vec::new(),
            exit_confirm_ms: 2 * MINUTE_MS,
            tolerance_ms: 15 * MINUTE_MS,
            silence_max_ms: 2 * HOUR_MS,
        }
    }
}

/// A fleet could not be generated.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FleetError {
    /// More scenarios than subjects.
    #[error("{scenarios} scenarios need at least as many subjects, have {subjects}")]
    TooFewSubjects {
        /// Scenarios asked for.
        scenarios: usize,
        /// Subjects asked for.
        subjects: usize,
    },
    /// The zone is too small or thin to hold a home far enough from its edge.
    #[error("zone {0} has no room for a home away from its boundary")]
    NoRoom(String),
    /// A scenario cannot be arranged (e.g. its day is after the run).
    #[error("scenario {kind} for subject {subject}: {message}")]
    Scenario {
        /// Scenario kind name.
        kind: &'static str,
        /// Subject id.
        subject: String,
        /// Why.
        message: String,
    },
    /// Nonsensical configuration value.
    #[error("bad fleet config: {0}")]
    Config(&'static str),
}

impl FleetError {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooFewSubjects { .. } => "too_few_subjects",
            Self::NoRoom(_) => "no_room",
            Self::Scenario { .. } => "scenario",
            Self::Config(_) => "config",
        }
    }
}

/// One device of a subject, as the service must be set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSetup {
    /// Device id, also the MQTT username.
    pub id: String,
    /// `bracelet` or `phone`.
    pub kind: String,
    /// MQTT password.
    pub secret: String,
}

/// A circular exclusion zone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Circle {
    /// Centre latitude.
    pub lat: f64,
    /// Centre longitude.
    pub lon: f64,
    /// Radius, metres.
    pub radius_m: f64,
}

/// A subject and the rules the service must apply to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectSetup {
    /// Subject id.
    pub id: String,
    /// Devices worn or carried.
    pub devices: Vec<DeviceSetup>,
    /// Home position.
    pub home: LatLonJson,
    /// Zone (id from the zone file) the subject must stay in.
    pub permitted_zone: String,
    /// Curfew rule (local time).
    pub curfew: Curfew,
    /// Local offset from UTC, minutes.
    pub utc_offset_minutes: i64,
    /// Exclusion zones.
    pub exclusions: Vec<Circle>,
    /// The scripted scenario this subject plays, if any.
    pub scenario: Option<String>,
}

/// A position in JSON files.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLonJson {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

impl From<LatLon> for LatLonJson {
    fn from(p: LatLon) -> Self {
        Self {
            lat: p.lat,
            lon: p.lon,
        }
    }
}

/// A generated fleet: what to send and what must come of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// All devices' sends.
    pub plan: Plan,
    /// Subjects and their rules.
    pub subjects: Vec<SubjectSetup>,
    /// Incidents the run must produce (exactly).
    pub expectations: Expectations,
}

/// Generates a fleet living in `area`.
pub fn generate(cfg: &FleetConfig, area: &Area) -> Result<Fleet, FleetError> {
    if cfg.scenarios.len() > cfg.subjects {
        return Err(FleetError::TooFewSubjects {
            scenarios: cfg.scenarios.len(),
            subjects: cfg.subjects,
        });
    }
    if cfg.fix_interval_ms <= 0
        || cfg.violation_fix_interval_ms <= 0
        || cfg.heartbeat_interval_ms <= 0
        || cfg.duration_ms <= 0
    {
        return Err(FleetError::Config(
            "intervals and duration must be positive",
        ));
    }
    if !(cfg.speed_mps.is_finite() && cfg.speed_mps > 0.0) {
        return Err(FleetError::Config("speed_mps must be positive"));
    }
    let mut sends = Vec::new();
    let mut subjects = Vec::with_capacity(cfg.subjects);
    let mut incidents = Vec::new();
    for i in 0..cfg.subjects {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(i as u64);
        let scenario = cfg.scenarios.get(i).copied();
        let s = subject(cfg, area, i, scenario, &mut rng)?;
        sends.extend(s.sends);
        subjects.push(s.setup);
        incidents.extend(s.expected);
    }
    let expectations = Expectations {
        version: 1,
        seed: Some(cfg.seed),
        incidents,
        subjects: serde_json::to_value(&subjects).unwrap_or_default(),
    };
    Ok(Fleet {
        plan: Plan::new(sends),
        subjects,
        expectations,
    })
}

/// What one subject contributes.
struct Generated {
    sends: Vec<Send>,
    setup: SubjectSetup,
    expected: Vec<ExpectedIncident>,
}

/// Places far enough from the zone edge that noise never crosses it.
struct Room<'a> {
    area: &'a Area,
    margin_m: f64,
}

impl Room<'_> {
    fn ok(&self, p: LatLon) -> bool {
        self.area.contains(p)
            && self
                .area
                .main_part()
                .and_then(|m| m.rings.first())
                .is_some_and(|ring| ring.iter().all(|v| v.distance_m(p) >= self.margin_m))
    }

    /// The straight route a→b stays in the room (checked every 250 m).
    fn route_ok(&self, a: LatLon, b: LatLon) -> bool {
        let steps = (a.distance_m(b) / 250.0).ceil().max(1.0) as usize;
        (0..=steps).all(|k| {
            let f = k as f64 / steps as f64;
            self.ok(LatLon::new(
                a.lat + (b.lat - a.lat) * f,
                a.lon + (b.lon - a.lon) * f,
            ))
        })
    }

    /// A place `min_m..max_m` from `from`, reachable in a straight line.
    fn near(&self, rng: &mut ChaCha8Rng, from: LatLon, min_m: f64, max_m: f64) -> Option<LatLon> {
        (0..200).find_map(|_| {
            let d = rng.random_range(min_m..max_m);
            let b = rng.random_range(0.0..std::f64::consts::TAU);
            let p = from.moved(d * b.sin(), d * b.cos());
            (self.ok(p) && self.route_ok(from, p)).then_some(p)
        })
    }
}

fn subject(
    cfg: &FleetConfig,
    area: &Area,
    index: usize,
    scenario: Option<ScenarioSpec>,
    rng: &mut ChaCha8Rng,
) -> Result<Generated, FleetError> {
    let id = format!("S{:04}", index + 1);
    let room = Room {
        area,
        margin_m: cfg.noise.max_error_m().max(cfg.curfew.radius_m) + 500.0,
    };
    let home = (0..50)
        .find_map(|_| area.sample_inside(rng, 1000).filter(|p| room.ok(*p)))
        .ok_or_else(|| FleetError::NoRoom(area.name.clone()))?;
    let work = room.near(rng, home, 1_500.0, 12_000.0).unwrap_or(home);
    let errand = room.near(rng, home, 500.0, 4_000.0).unwrap_or(home);

    // The daily routine: night at home, work, sometimes an errand.
    let end_ms = cfg.start_ms + cfg.duration_ms;
    let mut path = Path::new(cfg.start_ms, home);
    let days = (cfg.duration_ms + DAY_MS - 1) / DAY_MS;
    for d in 0..days {
        let day0 = cfg.start_ms + d * DAY_MS;
        path.stay_until(day0 + 7 * HOUR_MS + rng.random_range(0..60) * MINUTE_MS);
        path.go(work, cfg.speed_mps);
        path.stay_until(day0 + 17 * HOUR_MS + rng.random_range(0..60) * MINUTE_MS);
        if rng.random_bool(0.5) {
            path.go(errand, cfg.speed_mps);
            let (t, _) = path.last();
            path.stay_until(t + rng.random_range(20..60) * MINUTE_MS);
        }
        path.go(home, cfg.speed_mps);
    }
    path.stay_until(end_ms);

    let bracelet = format!("{id}b");
    let phone_id = format!("{id}p");
    let mut setup = SubjectSetup {
        id: id.clone(),
        devices: vec![DeviceSetup {
            id: bracelet.clone(),
            kind: "bracelet".into(),
            secret: secret(rng),
        }],
        home: home.into(),
        permitted_zone: area.id.clone(),
        curfew: cfg.curfew,
        utc_offset_minutes: cfg.utc_offset_ms / MINUTE_MS,
        exclusions: Vec::new(),
        scenario: scenario.map(|s| s.kind.name().to_string()),
    };
    let has_phone = cfg.phones || scenario.is_some_and(|s| s.kind == ScenarioKind::PhoneLeftAtHome);
    if has_phone {
        setup.devices.push(DeviceSetup {
            id: phone_id.clone(),
            kind: "phone".into(),
            secret: secret(rng),
        });
    }

    let ctx = scenario::Context {
        cfg,
        area,
        subject: &id,
        home,
        routine: &path,
    };
    let script = match scenario {
        Some(spec) => Some(scenario::script(&ctx, spec, rng, &room)?),
        None => None,
    };
    let (bracelet_path, phone_path) = match &script {
        Some(s) => (
            s.bracelet.clone(),
            s.phone.clone().unwrap_or(s.bracelet.clone()),
        ),
        None => (path.clone(), path.clone()),
    };
    if let Some(s) = &script {
        setup.exclusions.extend(s.exclusion);
    }

    let stop_ms = script.as_ref().and_then(|s| s.stop_ms).unwrap_or(end_ms);
    let fast_from = script
        .as_ref()
        .and_then(|s| s.fast_from_ms)
        .unwrap_or(i64::MAX);
    let times = fix_times(cfg, rng, stop_ms, fast_from);

    // A bracelet paired with a phone reports losing and regaining the
    // Bluetooth link (about 100 m) as events.
    let mut bracelet_events = script.as_ref().map_or(Vec::new(), |s| s.events.clone());
    if has_phone {
        let mut linked = true;
        for &t in &times {
            let apart = bracelet_path.at(t).distance_m(phone_path.at(t)) > BLE_RANGE_M;
            if apart == linked {
                linked = !apart;
                let kind = if apart {
                    EventKind::PhoneLinkLost
                } else {
                    EventKind::PhoneLinkRestored
                };
                bracelet_events.push((t, kind));
            }
        }
    }
    let mut sends = Vec::new();
    let mut battery = Battery::new(cfg, rng);
    emit(
        &mut sends,
        &bracelet,
        &bracelet_path,
        &times,
        cfg,
        stop_ms,
        &bracelet_events,
        &mut battery,
        rng,
    );
    if has_phone {
        let mut battery = Battery::new(cfg, rng);
        emit(
            &mut sends,
            &phone_id,
            &phone_path,
            &times,
            cfg,
            stop_ms,
            &[],
            &mut battery,
            rng,
        );
    }
    let expected = match (&script, scenario) {
        (Some(s), Some(spec)) => {
            scenario::expected(&ctx, spec, s, &times, &bracelet_path, &phone_path, &sends)?
        }
        _ => Vec::new(),
    };
    Ok(Generated {
        sends,
        setup,
        expected,
    })
}

fn secret(rng: &mut ChaCha8Rng) -> String {
    format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

/// Fix times from a random phase, at the compliant cadence until `fast_from`
/// and the violation cadence after, up to `stop_ms` (exclusive).
fn fix_times(cfg: &FleetConfig, rng: &mut ChaCha8Rng, stop_ms: i64, fast_from: i64) -> Vec<i64> {
    let mut t = cfg.start_ms + rng.random_range(0..cfg.fix_interval_ms);
    let mut out = Vec::new();
    while t < stop_ms {
        out.push(t);
        t += if t >= fast_from {
            cfg.violation_fix_interval_ms
        } else {
            cfg.fix_interval_ms
        };
    }
    out
}

/// Battery: drains 1.5–2.5 %/h all day, charges in the evening (21:00–23:00
/// local), so a routine day never reaches a low-battery level (≥ 35 %).
struct Battery {
    level: f64,
    drain_per_ms: f64,
    charge_per_ms: f64,
    last_ms: i64,
    utc_offset_ms: i64,
}

impl Battery {
    fn new(cfg: &FleetConfig, rng: &mut ChaCha8Rng) -> Self {
        Self {
            level: rng.random_range(90.0..100.0),
            drain_per_ms: rng.random_range(1.5..2.5) / HOUR_MS as f64,
            charge_per_ms: 30.0 / HOUR_MS as f64,
            last_ms: cfg.start_ms,
            utc_offset_ms: cfg.utc_offset_ms,
        }
    }

    fn charging(&self, t_ms: i64) -> bool {
        let local_minute = ((t_ms + self.utc_offset_ms).rem_euclid(DAY_MS) / MINUTE_MS) as u32;
        (21 * 60..23 * 60).contains(&local_minute)
    }

    fn at(&mut self, t_ms: i64) -> u8 {
        let dt = (t_ms - self.last_ms).max(0) as f64;
        self.level += if self.charging(t_ms) {
            dt * self.charge_per_ms
        } else {
            -dt * self.drain_per_ms
        };
        self.level = self.level.clamp(1.0, 100.0);
        self.last_ms = self.last_ms.max(t_ms);
        self.level.round() as u8
    }
}

/// Fixes, heartbeats and events of one device.
#[allow(clippy::too_many_arguments)]
fn emit(
    out: &mut Vec<Send>,
    device: &str,
    path: &Path,
    fix_times: &[i64],
    cfg: &FleetConfig,
    stop_ms: i64,
    events: &[(i64, EventKind)],
    battery: &mut Battery,
    rng: &mut ChaCha8Rng,
) {
    enum Item {
        Fix,
        Heartbeat,
        Event(EventKind),
    }
    let mut items: Vec<(i64, Item)> = fix_times.iter().map(|&t| (t, Item::Fix)).collect();
    let mut t = cfg.start_ms + rng.random_range(0..cfg.heartbeat_interval_ms);
    while t < stop_ms {
        items.push((t, Item::Heartbeat));
        t += cfg.heartbeat_interval_ms;
    }
    items.extend(events.iter().map(|&(t, e)| (t, Item::Event(e))));
    items.sort_by_key(|(t, _)| *t);
    let mut strap = StrapState::Intact;
    for (t, item) in items {
        let message = match item {
            Item::Fix => Uplink::Fix(cfg.noise.observe(rng, t, path.at(t))),
            Item::Heartbeat => Uplink::Heartbeat(Heartbeat {
                seq: 0,
                time: Timestamp(t),
                battery_pct: battery.at(t),
                charging: battery.charging(t),
                strap,
                case_tamper: false,
                signal_dbm: Some(-85),
                gnss: GnssState::Fixed,
            }),
            Item::Event(kind) => {
                if kind == EventKind::StrapOpened {
                    strap = StrapState::Open;
                }
                Uplink::Event(DeviceEvent {
                    seq: 0,
                    time: Timestamp(t),
                    kind,
                })
            }
        };
        out.push(Send {
            at_ms: t,
            device: device.to_string(),
            message,
        });
    }
}
