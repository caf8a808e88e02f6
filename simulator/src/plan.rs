//! The plan: what every simulated device sends, and when.
//!
//! Replay, fleet synthesis and load generation all produce a [`Plan`]; the
//! wire runner publishes it. Messages are `geoward-proto` [`Uplink`]s, the
//! very values a real device encodes, so nothing is lost in translation.
//! Keeping the plan a plain value makes every transformation (time shift,
//! placement, coverage gaps) a pure, testable function and a run
//! reproducible from its seed.
//!
//! Sequence numbers follow the protocol: every fix, heartbeat and event has
//! its own per-device `seq`, given in the order the device created them
//! (device time); a batch carries the seqs of its stored fixes. Acks release
//! everything up to a seq.

use std::collections::BTreeMap;

use geoward_proto::{Fix, PositionSource, Timestamp, Uplink};

use crate::trace::Trace;

/// Publish `message` as `device` at plan time `at_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    /// Plan time, epoch milliseconds; the runner maps it to wall time.
    pub at_ms: i64,
    /// Device id (also its MQTT username).
    pub device: String,
    /// The message, seqs included.
    pub message: Uplink,
}

impl Send {
    /// Highest seq the message carries (what an ack must reach).
    pub fn max_seq(&self) -> u64 {
        self.message.max_seq().unwrap_or(0)
    }
}

/// A time-ordered list of sends. Sends with equal `at_ms` keep the order they
/// were added in, so every device's own order survives merging.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Sends ordered by `at_ms`.
    pub sends: Vec<Send>,
}

/// A fix from plain values (seq assigned later): sent live as
/// `Uplink::Fix`, or stored into a batch.
pub fn fix(time_ms: i64, lat: f64, lon: f64, accuracy_m: f64, source: PositionSource) -> Fix {
    Fix {
        seq: 0,
        time: Timestamp(time_ms),
        lat,
        lon,
        accuracy_m: accuracy_m as f32,
        altitude_m: None,
        speed_mps: None,
        heading_deg: None,
        satellites: None,
        source,
    }
}

/// Device time a message describes (earliest fix of a batch).
pub fn message_time_ms(m: &Uplink) -> i64 {
    match m {
        Uplink::Fix(f) => f.time.0,
        Uplink::Heartbeat(h) => h.time.0,
        Uplink::Event(e) => e.time.0,
        Uplink::Batch(b) => b.fixes.iter().map(|f| f.time.0).min().unwrap_or(0),
    }
}

/// Number of fixes a message carries.
pub fn fix_count(m: &Uplink) -> usize {
    match m {
        Uplink::Fix(_) => 1,
        Uplink::Batch(b) => b.fixes.len(),
        Uplink::Heartbeat(_) | Uplink::Event(_) => 0,
    }
}

fn shift_message(m: &mut Uplink, delta_ms: i64) {
    match m {
        Uplink::Fix(f) => f.time.0 += delta_ms,
        Uplink::Heartbeat(h) => h.time.0 += delta_ms,
        Uplink::Event(e) => e.time.0 += delta_ms,
        Uplink::Batch(b) => b.fixes.iter_mut().for_each(|f| f.time.0 += delta_ms),
    }
}

impl Plan {
    /// Builds a plan from sends in any order: stable-sorts by time and
    /// numbers each device's items in creation order.
    pub fn new(mut sends: Vec<Send>) -> Self {
        sends.sort_by_key(|s| s.at_ms);
        let mut plan = Self { sends };
        plan.assign_seqs();
        plan
    }

    /// One live fix per trace point, sent at its device time.
    pub fn from_traces(traces: &[Trace]) -> Self {
        let sends = traces
            .iter()
            .flat_map(|t| {
                t.points.iter().map(|p| Send {
                    at_ms: p.time_ms,
                    device: t.device.clone(),
                    message: Uplink::Fix(fix(p.time_ms, p.lat, p.lon, p.accuracy_m, p.source)),
                })
            })
            .collect();
        Self::new(sends)
    }

    /// Merges plans, keeping each one's per-device order and seqs.
    pub fn merge(plans: impl IntoIterator<Item = Plan>) -> Self {
        let mut sends: Vec<Send> = plans.into_iter().flat_map(|p| p.sends).collect();
        sends.sort_by_key(|s| s.at_ms);
        Self { sends }
    }

    /// Renumbers every device's items 1, 2, ... by device time (ties in plan
    /// order), so a batch's stored fixes keep the numbers they were created
    /// with and the service sees a contiguous sequence.
    pub fn assign_seqs(&mut self) {
        self.assign_seqs_from(1);
    }

    /// [`assign_seqs`](Self::assign_seqs) starting at `first`: the plan of
    /// devices that sent `first - 1` items before. A device's sequence never
    /// restarts, and a service that stored 1..=n acks n at the first repeat
    /// of it, releasing what it never got.
    pub fn assign_seqs_from(&mut self, first: u64) {
        let mut items: BTreeMap<&str, Vec<(i64, usize, usize)>> = BTreeMap::new();
        for (i, s) in self.sends.iter().enumerate() {
            let v = items.entry(s.device.as_str()).or_default();
            match &s.message {
                Uplink::Batch(b) => {
                    v.extend(b.fixes.iter().enumerate().map(|(j, f)| (f.time.0, i, j)));
                }
                m => v.push((message_time_ms(m), i, 0)),
            }
        }
        let mut numbered: Vec<(usize, usize, u64)> = Vec::with_capacity(self.sends.len());
        for (_, mut v) in items {
            v.sort();
            numbered.extend(
                v.into_iter()
                    .enumerate()
                    .map(|(k, (_, i, j))| (i, j, first + k as u64)),
            );
        }
        for (i, j, seq) in numbered {
            match &mut self.sends[i].message {
                Uplink::Fix(f) => f.seq = seq,
                Uplink::Heartbeat(h) => h.seq = seq,
                Uplink::Event(e) => e.seq = seq,
                Uplink::Batch(b) => b.fixes[j].seq = seq,
            }
        }
    }

    /// Moves the whole plan, message times included, by `delta_ms`.
    pub fn shift_by(&mut self, delta_ms: i64) {
        for s in &mut self.sends {
            s.at_ms += delta_ms;
            shift_message(&mut s.message, delta_ms);
        }
    }

    /// Shifts so the first send happens at `now_ms` (pure: `now` is given).
    pub fn shift_start_to(&mut self, now_ms: i64) {
        if let Some(first) = self.start_ms() {
            self.shift_by(now_ms - first);
        }
    }

    /// Shifts so the last send happens at `now_ms`: for as-fast-as-possible
    /// runs, whose device times must not lie in the future.
    pub fn shift_end_to(&mut self, now_ms: i64) {
        if let Some(last) = self.sends.last().map(|s| s.at_ms) {
            self.shift_by(now_ms - last);
        }
    }

    /// Time of the first send.
    pub fn start_ms(&self) -> Option<i64> {
        self.sends.first().map(|s| s.at_ms)
    }

    /// Distinct device ids, sorted.
    pub fn devices(&self) -> Vec<String> {
        let mut d: Vec<String> = self.sends.iter().map(|s| s.device.clone()).collect();
        d.sort();
        d.dedup();
        d
    }

    /// The sends of one device, in plan order.
    pub fn for_device<'a>(&'a self, device: &'a str) -> impl Iterator<Item = &'a Send> + 'a {
        self.sends.iter().filter(move |s| s.device == device)
    }

    /// Total fixes carried by all sends.
    pub fn fix_count(&self) -> usize {
        self.sends.iter().map(|s| fix_count(&s.message)).sum()
    }
}
