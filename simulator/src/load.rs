//! Load generation: a plan that holds a target fix rate across many devices
//! with ramp-up, hold and ramp-down, and the report of what was achieved.

use std::collections::{BTreeSet, HashMap};

use geoward_proto::{Batch, Fix, Uplink};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::expect::{CheckReport, Expectations};
use crate::feed::Seen;
use crate::geo::LatLon;
use crate::plan::{Plan, Send, fix};
use crate::trace::PositionSource;
use crate::wire::stats::new_histogram;
use crate::wire::{Mark, Percentiles, RunStats};

/// Shape of a load run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadProfile {
    /// Devices (connections).
    pub devices: usize,
    /// Target fixes per second while holding.
    pub rate_per_s: f64,
    /// Seconds rising linearly from 0 to the target.
    pub ramp_up_s: u32,
    /// Seconds at the target.
    pub hold_s: u32,
    /// Seconds falling linearly to 0.
    pub ramp_down_s: u32,
    /// Where the devices are (each gets a random spot within `radius_m`).
    pub centre: LatLon,
    /// Spread of device positions.
    pub radius_m: f64,
    /// Seed for positions and device order.
    pub seed: u64,
    /// Device id prefix (`<prefix>000001`, ...: letters and digits only, so
    /// the ids are valid TLS tenants when the prefix is).
    pub prefix: String,
    /// Fixes per message. 1 sends every fix live, as it is due; N > 1 sends
    /// a device's fixes N at a time, as a batch published when its newest
    /// fix is due: how a bracelet uploads what it stored (store-and-forward,
    /// or a backlog after a reconnect).
    pub batch: usize,
}

impl LoadProfile {
    /// Target rate at second `t` of the run.
    pub fn rate_at(&self, t: u32) -> f64 {
        let r = self.rate_per_s;
        if t < self.ramp_up_s {
            r * f64::from(t + 1) / f64::from(self.ramp_up_s + 1)
        } else if t < self.ramp_up_s + self.hold_s {
            r
        } else if t < self.ramp_up_s + self.hold_s + self.ramp_down_s {
            let k = t - self.ramp_up_s - self.hold_s;
            r * f64::from(self.ramp_down_s - k) / f64::from(self.ramp_down_s + 1)
        } else {
            0.0
        }
    }

    /// Total length in seconds.
    pub fn duration_s(&self) -> u32 {
        self.ramp_up_s + self.hold_s + self.ramp_down_s
    }

    /// Device id of device `i`.
    pub fn device_id(&self, i: usize) -> String {
        format!("{}{:06}", self.prefix, i + 1)
    }

    /// The plan, starting at `start_ms` (pass "now"): each second's fixes
    /// are spread evenly over the second and over the devices in turn, so
    /// every device makes fixes at `rate / devices` per second; they are
    /// sent `batch` at a time.
    pub fn plan(&self, start_ms: i64) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let n = self.devices.max(1);
        let spots: Vec<LatLon> = (0..n)
            .map(|_| {
                let d = self.radius_m * rng.random::<f64>().sqrt();
                let b = rng.random_range(0.0..std::f64::consts::TAU);
                self.centre.moved(d * b.sin(), d * b.cos())
            })
            .collect();
        let mut fixes: Vec<Vec<Fix>> = vec![Vec::new(); n];
        let mut carry = 0.0;
        let mut next_device = 0usize;
        for t in 0..self.duration_s() {
            carry += self.rate_at(t);
            let count = carry.floor() as usize;
            carry -= count as f64;
            for k in 0..count {
                let at = start_ms + i64::from(t) * 1000 + (k as i64 * 1000) / count as i64;
                let d = next_device % n;
                next_device += 1;
                let p = spots[d];
                fixes[d].push(fix(at, p.lat, p.lon, 8.0, PositionSource::Gnss));
            }
        }
        // Devices take turns, so without a phase of their own every device
        // would fill its batch in the same tenth of a second: a burst each
        // period instead of a steady rate. A device's first batch is shorter
        // by a random amount, as if it had uploaded just before the run.
        let batch = self.batch.max(1);
        let mut sends = Vec::new();
        for (d, fixes) in fixes.into_iter().enumerate() {
            let device = self.device_id(d);
            let first = (1 + rng.random_range(0..batch)).min(fixes.len());
            let (head, rest) = fixes.split_at(first);
            for chunk in std::iter::once(head).chain(rest.chunks(batch)) {
                if chunk.is_empty() {
                    continue;
                }
                let newest = chunk[chunk.len() - 1].time.0;
                let message = match chunk {
                    [one] if batch == 1 => Uplink::Fix(*one),
                    _ => Uplink::Batch(Batch {
                        fixes: chunk.to_vec(),
                    }),
                };
                sends.push(Send {
                    at_ms: newest,
                    device: device.clone(),
                    message,
                });
            }
        }
        Plan::new(sends)
    }
}

/// Machine-readable result of a wire run (replay, fleet or load).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `replay`, `fleet` or `load`.
    pub mode: String,
    /// Target rate, fixes per second (load only).
    pub target_rate_per_s: Option<f64>,
    /// Fixes actually published per second, from the start of the run to
    /// the last first publication (ramps included; at least the dispatch
    /// phase). Devices that connect late publish late, and this shows it.
    pub achieved_rate_per_s: f64,
    /// Load: fixes per second over the hold phase (the seconds between
    /// ramp-up and ramp-down), the rate to compare with the target.
    pub hold_rate_per_s: Option<f64>,
    /// Fixes first published in each second of the run.
    pub fixes_per_s: Vec<u64>,
    /// Connections.
    pub devices: usize,
    /// Messages published for the first time.
    pub published: u64,
    /// Fixes in them.
    pub fixes: u64,
    /// Messages released by acks.
    pub acked: u64,
    /// Messages still unacknowledged at the end.
    pub unacked_at_end: u64,
    /// Republished after reconnects.
    pub resent: u64,
    /// Publish and encode errors.
    pub errors: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
    /// The same by reason (`crate::wire::stats::CONNECT_ERROR_REASONS`).
    pub connect_errors_by_reason: std::collections::BTreeMap<&'static str, u64>,
    /// With `--source-addrs`: why the relay could not reach the broker
    /// (e.g. `no_local_port`), by reason; the devices saw `closed`.
    pub relay_errors_by_reason: std::collections::BTreeMap<&'static str, u64>,
    /// Undecodable downlinks.
    pub bad_downlinks: u64,
    /// Skipped messages (encoding cannot carry them).
    pub skipped: u64,
    /// Publish → ack latency.
    pub ack_latency: Percentiles,
    /// Publish → incident latency of scripted breaches: from the first
    /// publication of the triggering message to the incident's arrival on
    /// the alert feed (only with `--feed`).
    pub incident_latency: Option<Percentiles>,
    /// Incidents compared with the expectations (only with `--feed`).
    pub incidents: Option<IncidentCounts>,
    /// Load with `--feed`: from the scheduled publication of the fix that
    /// confirmed a zone breach to the incident's arrival on the feed (see
    /// [`scheduled_feed_latency`]).
    pub feed_latency: Option<Percentiles>,
    /// Dispatch phase, seconds.
    pub dispatch_s: f64,
    /// Whole run including drain, seconds.
    pub elapsed_s: f64,
    /// Stopped early by a signal.
    pub interrupted: bool,
}

impl Report {
    /// Builds the report of a run.
    pub fn new(mode: &str, target_rate_per_s: Option<f64>, r: &RunStats) -> Self {
        let dispatch_s = r.dispatch_elapsed.as_secs_f64();
        let t = &r.total;
        Self {
            mode: mode.to_string(),
            target_rate_per_s,
            achieved_rate_per_s: achieved_rate(t, dispatch_s),
            hold_rate_per_s: None,
            fixes_per_s: t.fixes_per_s.clone(),
            devices: r.devices,
            published: t.published,
            fixes: t.fixes,
            acked: t.acked,
            unacked_at_end: t.unacked_at_end,
            resent: t.resent,
            errors: t.errors,
            reconnects: t.reconnects,
            connect_errors: t.connect_errors,
            connect_errors_by_reason: t.connect_errors_by_reason.clone(),
            relay_errors_by_reason: t.relay_errors_by_reason.clone(),
            bad_downlinks: t.bad_downlinks,
            skipped: t.skipped,
            ack_latency: Percentiles::of(&t.ack_latency_us),
            incident_latency: None,
            incidents: None,
            feed_latency: None,
            dispatch_s,
            elapsed_s: r.elapsed.as_secs_f64(),
            interrupted: r.interrupted,
        }
    }

    /// Load: the rate over seconds `ramp_up_s .. ramp_up_s + hold_s`.
    pub fn with_hold(mut self, ramp_up_s: u32, hold_s: u32) -> Self {
        let from = ramp_up_s as usize;
        let to = from + hold_s as usize;
        if hold_s > 0 {
            let sum: u64 = (from..to)
                .map(|s| self.fixes_per_s.get(s).copied().unwrap_or(0))
                .sum();
            self.hold_rate_per_s = Some(sum as f64 / f64::from(hold_s));
        }
        self
    }

    /// Adds the alert-feed outcome: counts and publish → incident latency.
    pub fn with_incidents(mut self, check: &CheckReport, latency_us: &Histogram<u64>) -> Self {
        self.incidents = Some(IncidentCounts {
            expected: (check.matched.len() + check.missing.len()) as u64,
            matched: check.matched.len() as u64,
            missing: check.missing.len() as u64,
            unexpected: check.unexpected.len() as u64,
        });
        self.incident_latency = Some(Percentiles::of(latency_us));
        self
    }

    /// Adds the load run's fix → feed latency.
    pub fn with_feed_latency(mut self, latency_us: &Histogram<u64>) -> Self {
        self.feed_latency = Some(Percentiles::of(latency_us));
        self
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// Readable summary for the terminal.
    pub fn summary(&self) -> String {
        let l = &self.ack_latency;
        let target = match (self.target_rate_per_s, self.hold_rate_per_s) {
            (Some(r), Some(h)) => format!(" overall, {h:.1} fixes/s holding (target {r:.0})"),
            (Some(r), None) => format!(" (target {r:.0})"),
            _ => String::new(),
        };
        format!(
            "{mode}: {devices} devices, {published} messages ({fixes} fixes) in {d:.1} s\n\
             rate:      {rate:.1} fixes/s{target}\n\
             acks:      {acked} acked, {unacked} unacked at end, {resent} resent\n\
             latency:   publish->ack p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({n} samples)\n\
             problems:  {errors} errors, {reconnects} reconnects, {ce} failed connects{why}, {bd} bad downlinks, {sk} skipped{int}\n{incidents}",
            mode = self.mode,
            devices = self.devices,
            published = self.published,
            fixes = self.fixes,
            d = self.dispatch_s,
            rate = self.achieved_rate_per_s,
            acked = self.acked,
            unacked = self.unacked_at_end,
            resent = self.resent,
            p50 = l.p50_ms,
            p95 = l.p95_ms,
            p99 = l.p99_ms,
            max = l.max_ms,
            n = l.count,
            errors = self.errors,
            reconnects = self.reconnects,
            ce = self.connect_errors,
            why = {
                let mut parts: Vec<String> = self
                    .connect_errors_by_reason
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                parts.extend(
                    self.relay_errors_by_reason
                        .iter()
                        .map(|(k, v)| format!("relay {k} {v}")),
                );
                if parts.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", parts.join(", "))
                }
            },
            bd = self.bad_downlinks,
            sk = self.skipped,
            int = if self.interrupted {
                ", INTERRUPTED"
            } else {
                ""
            },
            incidents = self.incident_lines(),
        )
    }

    fn incident_lines(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.incidents {
            s += &format!(
                "incidents: {} expected, {} matched, {} missing, {} unexpected\n",
                c.expected, c.matched, c.missing, c.unexpected
            );
        }
        if let Some(l) = &self.incident_latency {
            s += &format!(
                "latency:   publish->incident p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)\n",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.count
            );
        }
        if let Some(l) = &self.feed_latency {
            s += &format!(
                "latency:   fix->feed p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} zone incidents; from the confirming fix's scheduled publication)\n",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.count
            );
        }
        s
    }
}

/// Fixes first published per second of publishing (never a shorter span
/// than the dispatch phase).
fn achieved_rate(t: &crate::wire::Stats, dispatch_s: f64) -> f64 {
    let published: u64 = t.fixes_per_s.iter().sum();
    let span = t.last_publish.as_secs_f64().max(dispatch_s);
    if span > 0.0 {
        published as f64 / span
    } else {
        0.0
    }
}

/// Incidents seen on the feed against the expectations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IncidentCounts {
    /// Incidents the run had to produce.
    pub expected: u64,
    /// Of those, seen in their window.
    pub matched: u64,
    /// Of those, not seen.
    pub missing: u64,
    /// Seen but not expected (false alerts).
    pub unexpected: u64,
}

/// The messages whose publication starts a publish → incident measurement:
/// every expected incident's device and triggering time.
pub fn trigger_marks(exp: &Expectations) -> HashMap<String, BTreeSet<i64>> {
    let mut out: HashMap<String, BTreeSet<i64>> = HashMap::new();
    for e in &exp.incidents {
        if let Some(t) = e.trigger_at {
            out.entry(e.device.clone()).or_default().insert(t);
        }
    }
    out
}

/// Publish → incident latency, microseconds, of every matched incident
/// whose triggering message was published: from that publication to the
/// arrival of the incident on the feed. `check` must come from
/// `exp.check` over the incidents of `seen`, in order.
pub fn incident_latency(
    exp: &Expectations,
    check: &CheckReport,
    seen: &[Seen],
    marks: &[Mark],
) -> Histogram<u64> {
    let mut h = new_histogram();
    for &(e, o) in &check.pairs {
        let (Some(expected), Some(seen)) = (exp.incidents.get(e), seen.get(o)) else {
            continue;
        };
        let Some(trigger) = expected.trigger_at else {
            continue;
        };
        let published = marks
            .iter()
            .filter(|m| m.device == expected.device && m.time_ms == trigger)
            .map(|m| m.published)
            .min();
        if let Some(p) = published {
            let us = seen.arrived.saturating_duration_since(p).as_micros() as u64;
            let _ = h.record(us.clamp(1, 3_600_000_000));
        }
    }
    h
}

/// Incident kinds opened by a zone transition: their `opened_at` is the
/// device time of the fix that confirmed the breach.
const ZONE_KINDS: [&str; 3] = ["zone_exit", "exclusion_entry", "curfew_breach"];

/// When each fix of a plan was published, to time fix → feed from the
/// message that carried the confirming fix: a live fix goes out at its own
/// time, a batched one when its batch does.
#[derive(Debug, Default)]
pub struct Publications {
    /// (device index, fix device time) → plan time of its message.
    sent: HashMap<(usize, i64), i64>,
    /// Where each device's first fix was: a load device stands still, so an
    /// incident's last position tells which device confirmed it (the feed
    /// names subjects, not devices).
    spots: Vec<LatLon>,
}

/// How far an incident's position may lie from a device's spot and still be
/// that device's (the service stores coordinates to 1e-7°, about 1 cm).
const SAME_SPOT_M: f64 = 1.0;

impl Publications {
    /// The publications of `plan`.
    pub fn of(plan: &Plan) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut out = Self::default();
        for s in &plan.sends {
            let fixes: &[Fix] = match &s.message {
                Uplink::Fix(f) => std::slice::from_ref(f),
                Uplink::Batch(b) => &b.fixes,
                Uplink::Heartbeat(_) | Uplink::Event(_) => continue,
            };
            let Some(first) = fixes.first() else { continue };
            let d = *index.entry(s.device.as_str()).or_insert_with(|| {
                out.spots.push(LatLon::new(first.lat, first.lon));
                out.spots.len() - 1
            });
            for f in fixes {
                out.sent.entry((d, f.time.0)).or_insert(s.at_ms);
            }
        }
        out
    }

    /// Plan time at which the fix of device time `at_ms` of the device
    /// standing at `position` was published. Unknown (no position, or no
    /// device there): `at_ms`, the earliest it can have been published, so
    /// that a latency timed from it can only overstate.
    pub fn sent_at(&self, position: Option<[f64; 2]>, at_ms: i64) -> i64 {
        let Some([lat, lon]) = position else {
            return at_ms;
        };
        let here = LatLon::new(lat, lon);
        self.spots
            .iter()
            .position(|s| s.distance_m(here) <= SAME_SPOT_M)
            .and_then(|d| self.sent.get(&(d, at_ms)).copied())
            .unwrap_or(at_ms)
    }
}

/// Fix → feed latency, microseconds, of every zone incident seen: from when
/// the pacing had the confirming fix's message due (the plan's device times
/// are its clock, the incident's `opened_at` is that fix's device time, and
/// `published` finds its message's plan time) to the incident's
/// arrival on the feed. A device task that publishes after its message was
/// due, or a feed read late because the simulator is busy, adds to it: what
/// it measures is at least the real publish → feed latency. `run` pairs the
/// instant the run started with the plan time of its first send.
pub fn scheduled_feed_latency(
    seen: &[Seen],
    run: (tokio::time::Instant, i64),
    pacing: crate::schedule::Pacing,
    published: &Publications,
) -> Histogram<u64> {
    let mut h = new_histogram();
    let (started, start_ms) = run;
    for s in seen
        .iter()
        .filter(|s| ZONE_KINDS.contains(&s.incident.kind.as_str()))
    {
        let sent_ms = published.sent_at(s.incident.position, s.incident.at_ms);
        let due = started + pacing.due_after(start_ms, sent_ms).unwrap_or_default();
        let us = s.arrived.saturating_duration_since(due).as_micros() as u64;
        let _ = h.record(us.clamp(1, 3_600_000_000));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fix_count;

    fn profile() -> LoadProfile {
        LoadProfile {
            devices: 7,
            rate_per_s: 100.0,
            ramp_up_s: 4,
            hold_s: 10,
            ramp_down_s: 4,
            centre: LatLon::new(38.47, 106.28),
            radius_m: 5_000.0,
            seed: 3,
            prefix: "load".into(),
            batch: 1,
        }
    }

    #[test]
    fn plan_holds_the_rate_and_ramps() {
        let p = profile();
        let plan = p.plan(1_800_000_000_000);
        let per_second = |t: i64| {
            plan.sends
                .iter()
                .filter(|s| (s.at_ms - 1_800_000_000_000) / 1000 == t)
                .count()
        };
        for t in 4..14 {
            assert_eq!(per_second(t), 100, "second {t}");
        }
        assert!(per_second(0) < per_second(2) && per_second(2) < 100);
        assert!(per_second(17) < per_second(15) && per_second(15) < 100);
        assert_eq!(per_second(18), 0);
        assert_eq!(plan.devices().len(), 7);
        // Evenly shared: every device within one fix of the others.
        let counts: Vec<usize> = plan
            .devices()
            .iter()
            .map(|d| plan.for_device(d).count())
            .collect();
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(hi - lo <= 1, "{counts:?}");
        assert_eq!(plan, p.plan(1_800_000_000_000));
    }

    #[test]
    fn batches_carry_the_same_fixes_and_go_out_when_their_newest_is_due() {
        let live = profile().plan(1_800_000_000_000);
        let p = LoadProfile {
            batch: 4,
            ..profile()
        };
        let plan = p.plan(1_800_000_000_000);
        assert_eq!(plan.fix_count(), live.fix_count());
        let published = Publications::of(&plan);
        for d in plan.devices() {
            let sends: Vec<&Send> = plan.for_device(&d).collect();
            let times = |sends: &[&Send]| -> Vec<(i64, u64)> {
                sends
                    .iter()
                    .flat_map(|s| match &s.message {
                        Uplink::Fix(f) => vec![(f.time.0, f.seq)],
                        Uplink::Batch(b) => b.fixes.iter().map(|f| (f.time.0, f.seq)).collect(),
                        m => panic!("unexpected {m:?}"),
                    })
                    .collect()
            };
            // The same fixes and seqs as sent live, only grouped.
            let live_sends: Vec<&Send> = live.for_device(&d).collect();
            assert_eq!(times(&sends), times(&live_sends), "{d}");
            // A short first batch (the device's phase), then full ones.
            assert!((1..=4).contains(&fix_count(&sends[0].message)));
            let (last, full) = sends[1..].split_last().unwrap();
            assert!(fix_count(&last.message) <= 4);
            for s in full {
                let Uplink::Batch(b) = &s.message else {
                    panic!("not a batch: {s:?}")
                };
                assert_eq!(b.fixes.len(), 4);
            }
            for s in &sends {
                let Uplink::Batch(b) = &s.message else {
                    continue;
                };
                // Published when its newest fix is due: nothing from the future.
                let newest = b.fixes.iter().map(|f| f.time.0).max().unwrap();
                assert_eq!(s.at_ms, newest);
                for f in &b.fixes {
                    // The device is found by its spot, and its own batch named.
                    assert_eq!(published.sent_at(Some([f.lat, f.lon]), f.time.0), s.at_ms);
                }
            }
        }
        // The phases spread the publications: no tenth of a second of the
        // hold carries more than twice its share of messages.
        let mut per_tenth: HashMap<i64, usize> = HashMap::new();
        for s in &plan.sends {
            *per_tenth
                .entry((s.at_ms - 1_800_000_000_000) / 100)
                .or_default() += 1;
        }
        let hold: Vec<usize> = (40..140)
            .map(|t| per_tenth.get(&t).copied().unwrap_or(0))
            .collect();
        let share = hold.iter().sum::<usize>() / hold.len();
        assert!(hold.iter().all(|&n| n <= 2 * share), "{hold:?}");
        // Live, every fix is published at its own time; nobody stands at
        // the north pole, and an incident without a position is timed from
        // its fix.
        let live_published = Publications::of(&live);
        for send in &live.sends {
            let Uplink::Fix(f) = &send.message else {
                panic!("not live")
            };
            assert_eq!(
                live_published.sent_at(Some([f.lat, f.lon]), f.time.0),
                f.time.0
            );
        }
        let t = plan.sends[40].at_ms;
        assert_eq!(published.sent_at(Some([90.0, 0.0]), t - 7), t - 7);
        assert_eq!(published.sent_at(None, t - 7), t - 7);
    }

    #[test]
    fn achieved_rate_counts_late_publications_and_hold_rate_its_seconds() {
        let mut t = crate::wire::Stats::default();
        t.count_published(std::time::Duration::from_millis(200), 10);
        t.count_published(std::time::Duration::from_millis(3_500), 10);
        // Dispatched in one second, but the last fixes went out at 3.5 s.
        assert!((achieved_rate(&t, 1.0) - 20.0 / 3.5).abs() < 1e-9);
        assert_eq!(t.fixes_per_s, vec![10, 0, 0, 10]);
        // Never faster than the dispatch phase allows.
        assert!((achieved_rate(&t, 10.0) - 2.0).abs() < 1e-9);
        let run = RunStats {
            total: t,
            devices: 1,
            dispatch_elapsed: std::time::Duration::from_secs(1),
            elapsed: std::time::Duration::from_secs(4),
            interrupted: false,
        };
        let r = Report::new("load", Some(5.0), &run).with_hold(1, 3);
        assert_eq!(r.hold_rate_per_s, Some(10.0 / 3.0));
        assert!(
            r.summary().contains("holding (target 5)"),
            "{}",
            r.summary()
        );
    }

    #[test]
    fn fix_to_feed_is_timed_from_the_confirming_fix_being_due() {
        use crate::expect::ObservedIncident;
        use crate::schedule::Pacing;
        use std::time::Duration;
        let started = tokio::time::Instant::now();
        let start_ms = 1_800_000_000_000;
        let spot = [38.47, 106.28];
        let seen = |kind: &str, at_ms: i64, arrived_ms: u64| Seen {
            incident: ObservedIncident {
                subject: "s1".into(),
                kind: kind.into(),
                at_ms,
                position: Some(spot),
            },
            arrived: started + Duration::from_millis(arrived_ms),
        };
        let feed = [
            // Confirming fix due 10 s into the run, on the feed 25 ms later.
            seen("zone_exit", start_ms + 10_000, 10_025),
            seen("exclusion_entry", start_ms + 20_000, 20_040),
            // Not opened by a fix: not timed.
            seen("lost_contact", start_ms + 5_000, 30_000),
        ];
        let live = Publications::default();
        let h = scheduled_feed_latency(&feed, (started, start_ms), Pacing::REAL_TIME, &live);
        assert_eq!(h.len(), 2);
        // Recorded at the histogram's precision.
        assert!(h.equivalent(h.min(), 25_000), "{}", h.min());
        assert!(h.equivalent(h.max(), 40_000), "{}", h.max());
        // At ten times real time the same fix is due at 1 s.
        let fast = Pacing::parse("10x").unwrap();
        let h = scheduled_feed_latency(&feed[..1], (started, start_ms), fast, &live);
        assert!(h.equivalent(h.max(), 9_025_000), "{}", h.max());
        // Batched: the fix of 10 s went out in a message of 10.02 s, so the
        // feed had it 5 ms after it was sent.
        // Another device's batch with a fix of the same time went out
        // earlier: the incident's position tells them apart.
        let batch = |at_ms: i64, device: &str, lat: f64| Send {
            at_ms,
            device: device.into(),
            message: Uplink::Batch(Batch {
                fixes: vec![fix(
                    start_ms + 10_000,
                    lat,
                    spot[1],
                    8.0,
                    PositionSource::Gnss,
                )],
            }),
        };
        let batched = Publications::of(&Plan::new(vec![
            batch(start_ms + 10_001, "other", spot[0] + 0.01),
            batch(start_ms + 10_020, "d1", spot[0]),
        ]));
        let h =
            scheduled_feed_latency(&feed[..1], (started, start_ms), Pacing::REAL_TIME, &batched);
        assert!(h.equivalent(h.max(), 5_000), "{}", h.max());
        let run = RunStats {
            total: crate::wire::Stats::default(),
            devices: 1,
            dispatch_elapsed: Duration::from_secs(1),
            elapsed: Duration::from_secs(1),
            interrupted: false,
        };
        let r = Report::new("load", Some(5.0), &run).with_feed_latency(&h);
        assert!(r.summary().contains("fix->feed"), "{}", r.summary());
    }
}
