//! Command line: `geoward-sim replay | fleet | load | check`. Parsing lives
//! here (so tests can parse argument lists); `main.rs` only calls [`main`].

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use geoward_proto::Encoding;

use crate::expect::{Expectations, parse_observed};
use crate::fleet::{self, FleetConfig, NoiseModel, ScenarioKind, ScenarioSpec};
use crate::geo::LatLon;
use crate::load::{LoadProfile, Report, incident_latency, trigger_marks};
use crate::plan::Plan;
use crate::schedule::{
    Crossing, Faults, Gap, GapModel, Pacing, fan_out, place_across, translate_to,
};
use crate::trace::{self, Format};
use crate::wire::{self, ClientIdentity, Live, TlsSettings, WireConfig};
use crate::zones;

/// geoward-sim: replay traces, simulate fleets and load-test Geoward over the
/// real device wire.
#[derive(Debug, Parser)]
#[command(name = "geoward-sim", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay recorded traces (GPX, CSV, NDJSON wire format, track export).
    Replay(ReplayArgs),
    /// Simulate N subjects living in a zone, with scripted violations.
    Fleet(FleetArgs),
    /// Hold a target fix rate across many connections and measure.
    Load(LoadArgs),
    /// Compare observed incidents (NDJSON or an SSE feed capture) with an
    /// expectation file; exit 1 on any difference.
    Check(CheckArgs),
}

/// Trace file formats on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// GPX 1.0/1.1.
    Gpx,
    /// CSV `device,time,lat,lon,accuracy[,source]`.
    Csv,
    /// One device JSON wire message a line.
    Ndjson,
    /// Track-query export, one stored fix a line.
    Track,
}

/// Payload encodings on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EncodingArg {
    /// Geoward JSON.
    Json,
    /// Geoward binary frame.
    Bin,
    /// OwnTracks JSON (fixes only, no acks).
    Owntracks,
}

/// Options shared by every command that publishes.
#[derive(Debug, Args)]
pub struct WireArgs {
    /// Broker address; several comma-separated hosts spread connections
    /// (e.g. 127.0.0.1,127.0.0.2 past the ephemeral-port limit).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// Payload encoding.
    #[arg(long, value_enum, default_value = "json")]
    pub encoding: EncodingArg,
    /// MQTT password of every device (fleet runs use their own secrets).
    #[arg(long, env = "GEOWARD_SIM_SECRET", default_value = "")]
    pub secret: String,
    /// Also authenticate payloads with the secret (seal, MAC, encryption).
    #[arg(long)]
    pub mac: bool,
    /// Per-device MQTT passwords and payload keys: the saved output of
    /// `geoward import` / `geoward devices add` (`new device ID:
    /// mqtt_password = P payload_key_hex = K` lines); overrides --secret and
    /// a fleet's generated secrets for the devices it lists.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Speed: 1 = real time, 10, 3600, `max` (as fast as possible), or
    /// `60x,6h` (60 times faster for the first 6 h of plan time, then real
    /// time: state that takes hours to build, at the devices' own rate).
    #[arg(long, default_value = "1")]
    pub speed: String,
    /// Seconds to wait for outstanding acks after the last send.
    #[arg(long, default_value_t = 10)]
    pub drain_s: u64,
    /// Seconds a connection attempt (TCP, TLS, CONNACK) may take.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout_s: u64,
    /// Connection attempts in flight at once (brokers' accept backlogs
    /// overflow when thousands connect together).
    #[arg(long, default_value_t = 256)]
    pub max_connecting: usize,
    /// Build the plan and print its summary without connecting.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the plan as NDJSON (wire JSON with `device_id`), replayable.
    #[arg(long)]
    pub write_plan: Option<PathBuf>,
    /// Write the JSON report here (the summary goes to stderr).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Follow the officers' alert feed (SSE over http://) during the run and
    /// check the incidents against the expectations; exit 1 on any
    /// difference. In a load run (no expectations): time every zone incident
    /// from its confirming fix to the feed.
    #[arg(long)]
    pub feed: Option<String>,
    /// Bearer token for the feed.
    #[arg(long, env = "GEOWARD_SIM_FEED_TOKEN")]
    pub feed_token: Option<String>,
    /// Seconds to keep following the feed after the last send (less when
    /// the feed ends first).
    #[arg(long, default_value_t = 30)]
    pub settle_s: u64,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
    /// Write an SVG histogram of publish->ack (and publish->incident)
    /// latency here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Connect over TLS, trusting the CA certificates in this PEM file.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) every device presents (needs --ca and
    /// --client-key); devices then publish under /tenants/<device id>/.
    #[arg(long, requires_all = ["ca", "client_key"], conflicts_with = "client_cert_dir")]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Per-device client certificates: DIR/<id>.crt + DIR/<id>.key, or
    /// DIR/<id>/cert.pem + DIR/<id>/key.pem (needs --ca).
    #[arg(long, requires = "ca")]
    pub client_cert_dir: Option<PathBuf>,
    /// Local addresses to connect from, round-robin over devices:
    /// comma-separated, or an IPv4 range like 127.0.0.2-127.0.0.9 (each
    /// address has its own ~28k ephemeral ports).
    #[arg(long, value_parser = parse_addrs)]
    pub source_addrs: Option<Addrs>,
}

/// A list of local addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Addrs(pub Vec<IpAddr>);

/// Parses `A,B,C` or an IPv4 range `A-B` (at most 65,536 addresses).
pub fn parse_addrs(s: &str) -> Result<Addrs, String> {
    if let Some((a, b)) = s.split_once('-') {
        let a: Ipv4Addr = a.trim().parse().map_err(|_| format!("bad address {a:?}"))?;
        let b: Ipv4Addr = b.trim().parse().map_err(|_| format!("bad address {b:?}"))?;
        let (a, b) = (u32::from(a), u32::from(b));
        if b < a || b - a >= 65_536 {
            return Err("want a range A-B with A <= B and at most 65536 addresses".into());
        }
        return Ok(Addrs(
            (a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect(),
        ));
    }
    s.split(',')
        .map(|a| {
            a.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("bad address {a:?}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Addrs)
}

/// `replay` options.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Trace files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Format, when the extension does not say.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Device id for formats without one (default: file stem).
    #[arg(long)]
    pub device: Option<String>,
    /// Translate every trace to start at LAT,LON.
    #[arg(long, value_parser = parse_latlon)]
    pub at: Option<LatLon>,
    /// Translate every trace to start inside a zone: FILE:ZONE.
    #[arg(long)]
    pub in_zone: Option<String>,
    /// Place every trace across a zone's boundary: FILE:ZONE[:exit|excursion].
    #[arg(long)]
    pub cross: Option<String>,
    /// Replay each trace as N devices.
    #[arg(long, default_value_t = 1)]
    pub copies: usize,
    /// Metres between copies.
    #[arg(long, default_value_t = 50.0)]
    pub spacing_m: f64,
    /// Seconds between copies' starts.
    #[arg(long, default_value_t = 0)]
    pub stagger_s: i64,
    /// Coverage gap START_S:DURATION_S from the plan start (repeatable).
    #[arg(long = "gap", value_parser = parse_pair)]
    pub gaps: Vec<(i64, i64)>,
    /// Random gaps MEAN_INTERVAL_S:MEAN_DURATION_S on every device.
    #[arg(long, value_parser = parse_pair)]
    pub random_gaps: Option<(i64, i64)>,
    /// Probability of delivering a message twice.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Probability of swapping a message with the next one.
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Seed of the faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Shift times so the replay starts now (`max` speed: ends now).
    #[arg(long)]
    pub shift_to_now: bool,
    /// Expectation file to check the alert feed against (needs --feed).
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Wire options.
    #[command(flatten)]
    pub wire: WireArgs,
}

/// `fleet` options.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Zone file (GeoJSON, optionally .gz).
    #[arg(long)]
    pub zones: PathBuf,
    /// Zone id or name the subjects live in.
    #[arg(long)]
    pub zone: String,
    /// Subjects.
    #[arg(long, default_value_t = 10)]
    pub subjects: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days to simulate.
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// Local midnight of the first day (RFC 3339); default 2026-01-05
    /// (see --shift-to-now).
    #[arg(long)]
    pub start: Option<String>,
    /// Scripted scenario KIND[@DAY] (repeatable); kinds: leave_and_stay,
    /// brief_excursion, curfew_breach, exclusion_entry, strap_cut,
    /// power_off, goes_silent, phone_left_at_home.
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
    /// One subject for every scenario kind.
    #[arg(long)]
    pub all_scenarios: bool,
    /// Every subject carries a phone too.
    #[arg(long)]
    pub phones: bool,
    /// No GPS noise (exact positions).
    #[arg(long)]
    pub exact: bool,
    /// Write the expectation file (incidents + subject set-up) here.
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Write the service registry the fleet needs (subjects, devices, zones,
    /// rules, orders) as a `geoward import` TOML file here.
    #[arg(long)]
    pub write_import: Option<PathBuf>,
    /// Office of the subjects in --write-import (must exist in the service).
    #[arg(long, default_value = "office1")]
    pub office: String,
    /// Reporting interval the service should expect of the subjects'
    /// devices, seconds (--write-import).
    #[arg(long, default_value_t = 60)]
    pub expected_interval_s: i64,
    /// Day one is today (local midnight, UTC+8); with `--speed max` the run
    /// ends at today's midnight instead, so all device times are past.
    #[arg(long)]
    pub shift_to_now: bool,
    /// Wire options.
    #[command(flatten)]
    pub wire: WireArgs,
}

/// `load` options.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Connections.
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Target fixes per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds at the target rate.
    #[arg(long, default_value_t = 30)]
    pub duration: u32,
    /// Seconds of ramp-up.
    #[arg(long, default_value_t = 5)]
    pub ramp_up: u32,
    /// Seconds of ramp-down.
    #[arg(long, default_value_t = 5)]
    pub ramp_down: u32,
    /// Centre of the devices' positions.
    #[arg(long, value_parser = parse_latlon, default_value = "38.47,106.28")]
    pub at: LatLon,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Device id prefix.
    #[arg(long, default_value = "load")]
    pub prefix: String,
    /// Fixes per message: 1 publishes every fix as it is due; N > 1 has each
    /// device upload its fixes N at a time, as a batch published when its
    /// newest fix is due (store-and-forward). The rate stays in fixes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub batch: u16,
    /// Reconnect storm: every device drops its connection at this second
    /// of the run and reconnects (repeatable).
    #[arg(long = "storm-at")]
    pub storms_at_s: Vec<u32>,
    /// Wire options.
    #[command(flatten)]
    pub wire: WireArgs,
}

/// `check` options.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Expectation file.
    #[arg(long)]
    pub expect: PathBuf,
    /// Observed incidents: NDJSON `{"subject","kind","at_ms"}` or a capture
    /// of the officers' SSE feed.
    #[arg(long)]
    pub observed: PathBuf,
}

fn parse_latlon(s: &str) -> Result<LatLon, String> {
    let (a, b) = s.split_once(',').ok_or("want LAT,LON")?;
    let lat: f64 = a
        .trim()
        .parse()
        .map_err(|_| format!("bad latitude {a:?}"))?;
    let lon: f64 = b
        .trim()
        .parse()
        .map_err(|_| format!("bad longitude {b:?}"))?;
    if lat.abs() > 90.0 || lon.abs() > 180.0 {
        return Err("latitude or longitude out of range".into());
    }
    Ok(LatLon::new(lat, lon))
}

fn parse_pair(s: &str) -> Result<(i64, i64), String> {
    let (a, b) = s.split_once(':').ok_or("want A:B in seconds")?;
    let a: i64 = a.parse().map_err(|_| format!("bad number {a:?}"))?;
    let b: i64 = b.parse().map_err(|_| format!("bad number {b:?}"))?;
    if a < 0 || b <= 0 {
        return Err("want A >= 0 and B > 0".into());
    }
    Ok((a, b))
}

/// Runs a parsed command line; the exit code says whether the run passed.
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(a) => replay(a).await,
        Command::Fleet(a) => fleet_cmd(a).await,
        Command::Load(a) => load_cmd(a).await,
        Command::Check(a) => check_cmd(&a),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Builds the replay plan (pure apart from reading the files).
pub fn replay_plan(a: &ReplayArgs, now_ms: i64) -> anyhow::Result<Plan> {
    let format = a.format.map(|f| match f {
        FormatArg::Gpx => Format::Gpx,
        FormatArg::Csv => Format::Csv,
        FormatArg::Ndjson => Format::Ndjson,
        FormatArg::Track => Format::TrackExport,
    });
    let mut traces = Vec::new();
    for f in &a.files {
        let mut t = trace::load(f, format)?;
        if let Some(d) = &a.device {
            t.iter_mut().for_each(|t| t.device = d.clone());
        }
        traces.extend(t);
    }
    if let Some(p) = a.at {
        traces = traces.iter().map(|t| translate_to(t, p)).collect();
    }
    if let Some(spec) = &a.in_zone {
        let (file, zone) = spec.rsplit_once(':').context("--in-zone wants FILE:ZONE")?;
        let areas = zones::load(Path::new(file))?;
        let area = zones::find(&areas, zone, file)?;
        let start = area
            .interior_point(a.seed)
            .with_context(|| format!("zone {zone} has no interior point"))?;
        traces = traces.iter().map(|t| translate_to(t, start)).collect();
    }
    if let Some(spec) = &a.cross {
        let mut parts = spec.rsplitn(2, ':');
        let last = parts.next().unwrap_or_default();
        let (file_zone, crossing) = match last {
            "exit" => (parts.next().unwrap_or_default().to_string(), Crossing::Exit),
            "excursion" => (
                parts.next().unwrap_or_default().to_string(),
                Crossing::Excursion,
            ),
            _ => (spec.clone(), Crossing::Exit),
        };
        let (file, zone) = file_zone
            .rsplit_once(':')
            .context("--cross wants FILE:ZONE[:exit|excursion]")?;
        let areas = zones::load(Path::new(file))?;
        let area = zones::find(&areas, zone, file)?;
        traces = traces
            .iter()
            .map(|t| place_across(t, area, crossing, 0))
            .collect::<Result<_, _>>()?;
    }
    if a.copies > 1 {
        traces = traces
            .iter()
            .flat_map(|t| fan_out(t, a.copies, a.spacing_m, a.stagger_s * 1000))
            .collect();
    }
    let mut plan = Plan::from_traces(&traces);
    let start = plan.start_ms().unwrap_or(0);
    let faults = Faults {
        gaps: a
            .gaps
            .iter()
            .map(|&(s, d)| Gap {
                device: None,
                start_ms: start + s * 1000,
                end_ms: start + (s + d) * 1000,
            })
            .collect(),
        random_gaps: a.random_gaps.map(|(i, d)| GapModel {
            mean_interval_ms: i * 1000,
            mean_duration_ms: d * 1000,
        }),
        duplicate_probability: a.duplicates,
        reorder_probability: a.reorder,
        ..Faults::default()
    };
    plan = faults.apply(&plan, a.seed);
    if a.shift_to_now {
        if Pacing::parse(&a.wire.speed)? == Pacing::AsFastAsPossible {
            plan.shift_end_to(now_ms);
        } else {
            plan.shift_start_to(now_ms);
        }
    }
    Ok(plan)
}

async fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let plan = replay_plan(&a, now_ms())?;
    let expect = a.expect.as_deref().map(Expectations::load).transpose()?;
    let run = Run {
        mode: "replay",
        secrets: HashMap::new(),
        target: None,
        hold: None,
        storms_at_ms: Vec::new(),
        expect,
    };
    publish(&plan, &a.wire, run).await
}

/// Builds the fleet configuration from the arguments.
pub fn fleet_config(a: &FleetArgs, now_ms: i64) -> anyhow::Result<FleetConfig> {
    let base = FleetConfig::default();
    let start_ms = match (&a.start, a.shift_to_now) {
        (Some(s), _) => trace::parse_time_ms(s).map_err(|e| anyhow::anyhow!("--start: {e}"))?,
        (None, true) => {
            let day = 86_400_000;
            let local = now_ms + base.utc_offset_ms;
            let today = local - local.rem_euclid(day) - base.utc_offset_ms;
            // As fast as possible: whole days ending at today's midnight, so
            // no device time lies in the future and local times (curfew)
            // stay aligned. Otherwise the run's first day is today.
            if Pacing::parse(&a.wire.speed)? == Pacing::AsFastAsPossible {
                today - i64::from(a.days.max(1)) * day
            } else {
                today
            }
        }
        (None, false) => base.start_ms,
    };
    let mut scenarios = Vec::new();
    if a.all_scenarios {
        scenarios.extend(ScenarioKind::ALL.map(|kind| ScenarioSpec {
            kind,
            day: 0,
            at_minute: None,
        }));
    }
    for s in &a.scenarios {
        let (name, day) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                d.parse::<u32>()
                    .with_context(|| format!("bad day in {s:?}"))?,
            ),
            None => (s.as_str(), 0),
        };
        let kind =
            ScenarioKind::from_name(name).with_context(|| format!("unknown scenario {name:?}"))?;
        scenarios.push(ScenarioSpec {
            kind,
            day,
            at_minute: None,
        });
    }
    Ok(FleetConfig {
        subjects: a.subjects.max(scenarios.len()),
        seed: a.seed,
        start_ms,
        duration_ms: i64::from(a.days.max(1)) * 86_400_000,
        noise: if a.exact {
            NoiseModel::EXACT
        } else {
            NoiseModel::default()
        },
        phones: a.phones,
        scenarios,
        ..base
    })
}

async fn fleet_cmd(a: FleetArgs) -> anyhow::Result<ExitCode> {
    let cfg = fleet_config(&a, now_ms())?;
    let file = a.zones.display().to_string();
    let areas = zones::load(&a.zones)?;
    let area = zones::find(&areas, &a.zone, &file)?;
    let fleet = fleet::generate(&cfg, area)?;
    if let Some(path) = &a.expect {
        std::fs::write(path, fleet.expectations.to_json())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "wrote {} expected incidents for {} subjects to {}",
            fleet.expectations.incidents.len(),
            fleet.subjects.len(),
            path.display()
        );
    }
    if let Some(path) = &a.write_import {
        let day = 86_400_000;
        let opts = crate::setup::RegistryOptions {
            office: a.office.clone(),
            supervision_level: "normal".into(),
            expected_interval_s: a.expected_interval_s,
            order_starts_ms: cfg.start_ms - day,
            order_ends_ms: cfg.start_ms - day + 90 * day,
        };
        std::fs::write(
            path,
            crate::setup::import_toml(&fleet.subjects, area, &opts),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    let secrets = fleet
        .subjects
        .iter()
        .flat_map(|s| s.devices.iter().map(|d| (d.id.clone(), d.secret.clone())))
        .collect();
    let run = Run {
        mode: "fleet",
        secrets,
        target: None,
        hold: None,
        storms_at_ms: Vec::new(),
        expect: Some(fleet.expectations.clone()),
    };
    publish(&fleet.plan, &a.wire, run).await
}

async fn load_cmd(a: LoadArgs) -> anyhow::Result<ExitCode> {
    if !(a.rate.is_finite() && a.rate > 0.0) {
        bail!("--rate must be positive");
    }
    let profile = LoadProfile {
        devices: a.devices,
        rate_per_s: a.rate,
        ramp_up_s: a.ramp_up,
        hold_s: a.duration,
        ramp_down_s: a.ramp_down,
        centre: a.at,
        radius_m: 20_000.0,
        seed: a.seed,
        prefix: a.prefix.clone(),
        batch: usize::from(a.batch),
    };
    // Device times must be "now" when sent: a big plan takes seconds to
    // build, so it is moved to start at the moment it is handed over.
    let mut plan = profile.plan(now_ms());
    plan.shift_start_to(now_ms());
    let start = plan.start_ms().unwrap_or_else(now_ms);
    let storms = a
        .storms_at_s
        .iter()
        .map(|&s| start + i64::from(s) * 1000)
        .collect();
    let run = Run {
        mode: "load",
        secrets: HashMap::new(),
        target: Some(a.rate),
        hold: Some((a.ramp_up, a.duration)),
        storms_at_ms: storms,
        expect: None,
    };
    publish(&plan, &a.wire, run).await
}

fn check_cmd(a: &CheckArgs) -> anyhow::Result<ExitCode> {
    let exp = Expectations::load(&a.expect)?;
    let text = std::fs::read_to_string(&a.observed)
        .with_context(|| format!("reading {}", a.observed.display()))?;
    let observed =
        parse_observed(&text).with_context(|| format!("reading {}", a.observed.display()))?;
    let report = exp.check(&observed);
    print!("{}", report.summary());
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes a plan as NDJSON: the wire JSON of every message with its
/// `device_id` — readable back as an NDJSON trace.
pub fn write_plan(plan: &Plan, out: &mut impl Write) -> anyhow::Result<()> {
    for s in &plan.sends {
        let mut v: serde_json::Value =
            serde_json::from_slice(&geoward_proto::json::encode_uplink(&s.message))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("device_id".into(), s.device.clone().into());
        }
        writeln!(out, "{v}")?;
    }
    Ok(())
}

/// In a time-compressed run, moves the window of every expected incident
/// that no message triggers (lost contact: its window starts at the
/// device's last message before the silence) to wall-clock time: from the
/// first publication of that message to `end_ms`, the end of following the
/// feed. The service counts silence from when it received the last message,
/// in wall-clock time, and opens the incident at that deadline, so
/// device-time windows cannot hold it when hours of device time pass in
/// seconds. `clock` pairs an instant with the epoch milliseconds it was.
/// Expectations whose message was never published keep their window (and
/// will show as missing or mismatched).
pub fn silence_windows_to_wall_clock(
    exp: &mut Expectations,
    marks: &[wire::Mark],
    clock: (tokio::time::Instant, i64),
    end_ms: i64,
) {
    for e in exp.incidents.iter_mut().filter(|e| e.trigger_at.is_none()) {
        let published = marks
            .iter()
            .filter(|m| m.device == e.device && m.time_ms == e.not_before)
            .map(|m| m.published)
            .min();
        if let Some(p) = published {
            let since = p.saturating_duration_since(clock.0).as_millis() as i64;
            e.not_before = clock.1 + since;
            e.not_after = end_ms.max(e.not_before);
        }
    }
}

/// What a command adds to the wire options.
struct Run {
    mode: &'static str,
    secrets: HashMap<String, String>,
    target: Option<f64>,
    /// Load: ramp-up and hold seconds.
    hold: Option<(u32, u32)>,
    storms_at_ms: Vec<i64>,
    expect: Option<Expectations>,
}

async fn publish(plan: &Plan, w: &WireArgs, run: Run) -> anyhow::Result<ExitCode> {
    let Run {
        mode,
        secrets,
        target,
        hold,
        storms_at_ms,
        expect,
    } = run;
    if w.feed.is_some() && expect.is_none() && mode != "load" {
        bail!("--feed needs expectations (--expect FILE), except in a load run");
    }
    if let Some(path) = &w.write_plan {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        write_plan(plan, &mut f)?;
        f.flush()?;
    }
    eprintln!(
        "{mode}: plan of {} sends ({} fixes) for {} devices",
        plan.sends.len(),
        plan.fix_count(),
        plan.devices().len()
    );
    if w.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let (hosts, port) = match w.broker.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().context("bad broker port")?),
        None => (w.broker.as_str(), 1883),
    };
    let encoding = match w.encoding {
        EncodingArg::Json => Encoding::Json,
        EncodingArg::Bin => Encoding::Binary,
        EncodingArg::Owntracks => Encoding::OwnTracks,
    };
    let tls = match &w.ca {
        None => None,
        Some(ca) => {
            let identity = match (&w.client_cert, &w.client_key, &w.client_cert_dir) {
                (Some(c), Some(k), _) => TlsSettings::shared_identity(c, k)?,
                (_, _, Some(dir)) => ClientIdentity::PerDevice(dir.clone()),
                _ => ClientIdentity::None,
            };
            Some(Arc::new(TlsSettings::new(ca, identity)?))
        }
    };
    // Publications that start a publish -> incident measurement.
    let mut marks = match (&expect, &w.feed) {
        (Some(exp), Some(_)) => trigger_marks(exp),
        _ => HashMap::new(),
    };
    // Silence is counted by the service in wall-clock time from when it
    // received the device's last message: in a time-compressed run the
    // window of an expectation without a triggering message (lost contact)
    // is moved to wall-clock time from that message's publication (see
    // `silence_windows_to_wall_clock`), so watch those messages too.
    let pacing = Pacing::parse(&w.speed)?;
    let compressed = pacing != Pacing::REAL_TIME;
    if let (Some(exp), Some(_), true) = (&expect, &w.feed, compressed) {
        for e in exp.incidents.iter().filter(|e| e.trigger_at.is_none()) {
            marks
                .entry(e.device.clone())
                .or_default()
                .insert(e.not_before);
        }
    }
    let mut secrets = secrets;
    let mut payload_keys = HashMap::new();
    if let Some(path) = &w.credentials {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let creds = crate::credentials::parse(&text)
            .with_context(|| format!("reading {}", path.display()))?;
        for (device, c) in creds {
            secrets.insert(device.clone(), c.password);
            payload_keys.insert(device, c.payload_key);
        }
    }
    let live = Arc::new(Live::default());
    let devices = plan.devices().len();
    let want = crate::fdlimit::needed(devices, w.source_addrs.is_some());
    if let Some(have) = crate::fdlimit::raise(want)
        && have < want
    {
        eprintln!(
            "warning: {devices} devices need about {want} open files, the limit is {have} \
             (raise `ulimit -n`); some connections will fail"
        );
    }
    let cfg = WireConfig {
        hosts: hosts.split(',').map(str::to_string).collect(),
        port,
        encoding,
        protect_payloads: w.mac,
        secrets,
        payload_keys,
        default_secret: w.secret.clone(),
        pacing,
        drain_timeout: Duration::from_secs(w.drain_s),
        connect_timeout: Duration::from_secs(w.connect_timeout_s),
        max_connecting: w.max_connecting,
        expect_acks: encoding != Encoding::OwnTracks,
        storms_at_ms,
        marks: Arc::new(marks),
        live: live.clone(),
        source_addrs: w.source_addrs.clone().map(|a| a.0).unwrap_or_default(),
        tls,
        ..WireConfig::default()
    };
    // Follow the alert feed from before the first send until the run has
    // settled.
    let (stop_feed, feed_stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = w.feed.clone().map(|url| {
        let token = w.feed_token.clone();
        tokio::spawn(async move {
            crate::feed::follow(&url, token.as_deref(), async {
                let _ = feed_stopped.await;
            })
            .await
        })
    });
    let bar = crate::progress::bar(mode, plan.sends.len() as u64, w.quiet);
    let ticker = crate::progress::follow(bar.clone(), live);
    let clock = (tokio::time::Instant::now(), now_ms());
    let stats = wire::run(
        plan,
        &cfg,
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
        |_| {},
    )
    .await;
    ticker.abort();
    bar.finish_and_clear();
    let stats = stats?;
    let mut report = Report::new(mode, target, &stats);
    if let Some((ramp_up_s, hold_s)) = hold {
        report = report.with_hold(ramp_up_s, hold_s);
    }
    let mut ok = !report.interrupted && report.errors == 0 && report.unacked_at_end == 0;
    let mut incident_hist = None;
    let seen = match follower {
        Some(mut follower) => {
            eprintln!("following the alert feed for up to {} s more", w.settle_s);
            let seen = tokio::select! {
                r = &mut follower => r,
                () = tokio::time::sleep(Duration::from_secs(w.settle_s)) => {
                    let _ = stop_feed.send(());
                    follower.await
                }
            }
            .context("feed task")??;
            Some(seen)
        }
        None => None,
    };
    if let (Some(seen), None) = (&seen, &expect) {
        // A load run has no expectations: it times every zone incident.
        let latency = crate::load::scheduled_feed_latency(
            seen,
            (clock.0, plan.start_ms().unwrap_or(0)),
            pacing,
            &crate::load::Publications::of(plan),
        );
        report = report.with_feed_latency(&latency);
        incident_hist = Some(("fix -> feed", latency));
    }
    if let (Some(seen), Some(mut exp)) = (seen, expect) {
        if compressed {
            silence_windows_to_wall_clock(&mut exp, &stats.total.marks, clock, now_ms());
        }
        let observed: Vec<_> = seen.iter().map(|s| s.incident.clone()).collect();
        let check = exp.check(&observed);
        let latency = incident_latency(&exp, &check, &seen, &stats.total.marks);
        report = report.with_incidents(&check, &latency);
        eprint!("{}", check.summary());
        ok &= check.passed();
        incident_hist = Some(("publish -> incident", latency));
    }
    eprint!("{}", report.summary());
    match &w.report {
        Some(path) => std::fs::write(path, report.to_json())
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{}", report.to_json()),
    }
    if let Some(path) = &w.plot {
        let mut series = vec![("publish -> ack", &stats.total.ack_latency_us)];
        if let Some((name, h)) = &incident_hist {
            series.push((name, h));
        }
        std::fs::write(path, crate::plot::latency_svg(&series))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
