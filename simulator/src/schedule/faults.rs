//! Store-and-forward faults: coverage gaps (fixes kept and uploaded as a batch
//! on reconnect), duplicate delivery and out-of-order delivery.
//!
//! Applied to a plan in that order: gaps change what the device sends (held
//! heartbeats are dropped, so seqs are reassigned afterwards; a batch keeps
//! its fixes' seqs), duplicates and reordering
//! change only how sends reach the wire (they keep their sequence numbers,
//! as a real device's resends and a network's reordering would).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use geoward_proto::{Batch, Fix, Uplink};

use crate::plan::{Plan, Send};

/// One coverage gap: the device keeps what it produces in `[start_ms,
/// end_ms)` and uploads it at `end_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// Device, or all devices when `None`.
    pub device: Option<String>,
    /// First plan millisecond without coverage.
    pub start_ms: i64,
    /// Reconnect time.
    pub end_ms: i64,
}

/// Random gaps per device: one every `mean_interval_ms`, lasting
/// `mean_duration_ms` on average (each uniform in 0.5–1.5× the mean).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GapModel {
    /// Mean time between gap starts.
    pub mean_interval_ms: i64,
    /// Mean gap length.
    pub mean_duration_ms: i64,
}

/// What to do to a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Explicit gaps.
    pub gaps: Vec<Gap>,
    /// Random gaps on every device.
    pub random_gaps: Option<GapModel>,
    /// Most fixes in one batch message; longer gaps upload several batches.
    pub max_batch: usize,
    /// Probability that a send is delivered a second time.
    pub duplicate_probability: f64,
    /// Largest delay of a duplicate after its original.
    pub duplicate_max_delay_ms: i64,
    /// Probability that a send swaps places with the device's next send.
    pub reorder_probability: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            gaps: Vec::new(),
            random_gaps: None,
            max_batch: 100,
            duplicate_probability: 0.0,
            duplicate_max_delay_ms: 5_000,
            reorder_probability: 0.0,
        }
    }
}

impl Faults {
    /// Applies the faults; the same plan, faults and seed give the same result.
    pub fn apply(&self, plan: &Plan, seed: u64) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut per_device: BTreeMap<String, Vec<Send>> = BTreeMap::new();
        for s in &plan.sends {
            per_device
                .entry(s.device.clone())
                .or_default()
                .push(s.clone());
        }
        let mut out = Vec::with_capacity(plan.sends.len());
        for (device, sends) in per_device {
            let mut gaps: Vec<(i64, i64)> = self
                .gaps
                .iter()
                .filter(|g| g.device.as_deref().is_none_or(|d| d == device))
                .map(|g| (g.start_ms, g.end_ms))
                .collect();
            if let Some(model) = self.random_gaps {
                gaps.extend(random_gaps(&sends, model, &mut rng));
            }
            let mut renumbered = Plan {
                sends: apply_gaps(&device, sends, &gaps, self.max_batch.max(1)),
            };
            renumbered.assign_seqs();
            let mut sends = renumbered.sends;
            if self.duplicate_probability > 0.0 {
                sends = duplicate(sends, self, &mut rng);
            }
            if self.reorder_probability > 0.0 {
                reorder(&mut sends, self.reorder_probability, &mut rng);
            }
            out.extend(sends);
        }
        out.sort_by_key(|s| s.at_ms);
        Plan { sends: out }
    }
}

fn random_gaps(sends: &[Send], model: GapModel, rng: &mut ChaCha8Rng) -> Vec<(i64, i64)> {
    let (Some(first), Some(last)) = (sends.first(), sends.last()) else {
        return Vec::new();
    };
    let jitter = |rng: &mut ChaCha8Rng, mean: i64| {
        let mean = mean.max(1) as f64;
        (mean * rng.random_range(0.5..1.5)) as i64
    };
    let mut gaps = Vec::new();
    let mut t = first.at_ms + jitter(rng, model.mean_interval_ms);
    while t < last.at_ms {
        let end = t + jitter(rng, model.mean_duration_ms).max(1);
        gaps.push((t, end));
        t = end + jitter(rng, model.mean_interval_ms);
    }
    gaps
}

/// Holds fixes and events produced inside a gap and releases them at its
/// end: fixes as batches (oldest first), then events in order. Heartbeats in
/// a gap are dropped: "alive now" means nothing later.
fn apply_gaps(device: &str, sends: Vec<Send>, gaps: &[(i64, i64)], max_batch: usize) -> Vec<Send> {
    if gaps.is_empty() {
        return sends;
    }
    let gap_of = |at: i64| gaps.iter().find(|(s, e)| (*s..*e).contains(&at)).copied();
    let mut live: Vec<Send> = Vec::with_capacity(sends.len());
    let mut held: BTreeMap<(i64, i64), (Vec<Fix>, Vec<Send>)> = BTreeMap::new();
    for s in sends {
        match gap_of(s.at_ms) {
            None => live.push(s),
            Some(g) => {
                let slot = held.entry(g).or_default();
                match s.message {
                    Uplink::Fix(fix) => slot.0.push(fix),
                    Uplink::Batch(b) => slot.0.extend(b.fixes),
                    Uplink::Event(_) => slot.1.push(s),
                    Uplink::Heartbeat(_) => {}
                }
            }
        }
    }
    // Stored data goes first on reconnect: releases precede a live message
    // of the same instant.
    let mut out: Vec<Send> = Vec::with_capacity(live.len() + held.len());
    for ((_, end), (fixes, events)) in held {
        for chunk in fixes.chunks(max_batch) {
            out.push(Send {
                at_ms: end,
                device: device.to_string(),
                message: Uplink::Batch(Batch {
                    fixes: chunk.to_vec(),
                }),
            });
        }
        for mut e in events {
            e.at_ms = end;
            out.push(e);
        }
    }
    out.extend(live);
    out.sort_by_key(|s| s.at_ms);
    out
}

fn duplicate(sends: Vec<Send>, f: &Faults, rng: &mut ChaCha8Rng) -> Vec<Send> {
    let mut out = Vec::with_capacity(sends.len());
    for s in sends {
        let dup = rng.random_bool(f.duplicate_probability.clamp(0.0, 1.0));
        let delay = rng.random_range(0..=f.duplicate_max_delay_ms.max(0));
        let copy = dup.then(|| Send {
            at_ms: s.at_ms + delay,
            ..s.clone()
        });
        out.push(s);
        out.extend(copy);
    }
    out.sort_by_key(|s| s.at_ms);
    out
}

/// Swaps the content of neighbouring sends (times stay), so the later
/// message reaches the wire first.
fn reorder(sends: &mut [Send], p: f64, rng: &mut ChaCha8Rng) {
    let mut i = 0;
    while i + 1 < sends.len() {
        if rng.random_bool(p.clamp(0.0, 1.0)) {
            let (a, b) = sends.split_at_mut(i + 1);
            std::mem::swap(&mut a[i].message, &mut b[0].message);
            i += 2;
        } else {
            i += 1;
        }
    }
}
