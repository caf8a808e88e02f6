//! Turning decoded messages into one storage batch: dedupe by (device, sequence),
//! evidence chaining and the ack watermark. Pure: no IO, no clock.
//!
//! The watermark of a device is the highest sequence `n` such that every sequence
//! `1..=n` is stored. Sequences start at 1. Items stored above a gap are remembered in
//! `above` so that their resends are recognised as duplicates and so that the
//! watermark jumps over them once the gap is filled.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::evidence::{EvidenceFields, GENESIS, Hash, chain_hash};
use crate::store::{DeviceState, EventRow, EvidenceRow, FixRow, WriteBatch};

/// One decoded, verified message on its way to storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Device the message belongs to.
    pub device_id: String,
    /// The topic it arrived on.
    pub topic: String,
    /// Where the ack for this device goes.
    pub ack_topic: String,
    /// The raw payload, kept as evidence.
    pub payload: Bytes,
    /// Receive time (microsecond precision).
    pub received_at: DateTime<Utc>,
    /// The device's sequence numbers are not contiguous (OwnTracks derives them from
    /// the fix time): the items are stored (the database ignores repeats) but are
    /// outside the ack watermark, and such devices get no acks.
    pub sparse_sequence: bool,
    /// What the message carries.
    pub items: Vec<Item>,
}

/// One sequenced item of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A position fix.
    Fix {
        /// Sequence.
        seq: i64,
        /// Fix time.
        time: DateTime<Utc>,
        /// Latitude.
        lat: f64,
        /// Longitude.
        lon: f64,
        /// Accuracy, metres.
        accuracy_m: Option<f32>,
        /// Source name.
        source: &'static str,
    },
    /// A heartbeat or device event.
    Event {
        /// Sequence.
        seq: i64,
        /// Event time.
        time: DateTime<Utc>,
        /// Kind name.
        kind: &'static str,
        /// Details as JSON.
        detail: String,
    },
}

impl Item {
    /// The item's sequence number.
    pub fn seq(&self) -> i64 {
        match self {
            Item::Fix { seq, .. } | Item::Event { seq, .. } => *seq,
        }
    }

    /// When the device took the fix or saw the event.
    pub fn time(&self) -> DateTime<Utc> {
        match self {
            Item::Fix { time, .. } | Item::Event { time, .. } => *time,
        }
    }
}

/// What the pipeline remembers per device between batches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceTrack {
    /// Ack watermark.
    pub acked: i64,
    /// Stored sequences above the watermark.
    pub above: BTreeSet<i64>,
    /// Evidence chain head.
    pub head: Option<(i64, Hash)>,
    /// Newest fix time seen (for counting late fixes).
    pub newest_fix: Option<DateTime<Utc>>,
}

impl From<DeviceState> for DeviceTrack {
    fn from(s: DeviceState) -> Self {
        let mut t = DeviceTrack {
            acked: s.acked_seq,
            above: s.stored_above.into_iter().collect(),
            head: s.evidence_head,
            newest_fix: None,
        };
        t.advance();
        t
    }
}

impl DeviceTrack {
    fn is_stored(&self, seq: i64) -> bool {
        seq <= self.acked || self.above.contains(&seq)
    }

    fn advance(&mut self) {
        while self.above.first() == Some(&(self.acked + 1)) {
            self.above.pop_first();
            self.acked += 1;
        }
    }
}

/// A planned commit and the state to adopt once it is durable.
#[derive(Debug, Default)]
pub struct Plan {
    /// Rows to write in one transaction.
    pub write: WriteBatch,
    /// Device tracks after the commit.
    pub tracks: HashMap<String, DeviceTrack>,
    /// Acks to publish after the commit: (ack topic, sequence).
    pub acks: Vec<(String, i64)>,
    /// Items dropped as duplicates.
    pub duplicates: u64,
    /// Fixes older than the device's newest fix.
    pub late_fixes: u64,
    /// Items refused because the device has too many stored items above a gap; they
    /// are not acked, so the device resends them.
    pub refused: u64,
}

/// Builds the batch for `messages` given the current tracks of their devices (every
/// device in `messages` must have an entry in `tracks`; missing ones start empty).
pub fn plan(
    messages: Vec<Accepted>,
    tracks: &HashMap<String, DeviceTrack>,
    max_pending: usize,
) -> Plan {
    let mut p = Plan::default();
    let mut ack_topics: HashMap<String, String> = HashMap::new();
    for m in messages {
        let t = p
            .tracks
            .entry(m.device_id.clone())
            .or_insert_with(|| tracks.get(&m.device_id).cloned().unwrap_or_default());
        if !m.sparse_sequence {
            ack_topics.insert(m.device_id.clone(), m.ack_topic.clone());
        }
        let mut new_items = Vec::with_capacity(m.items.len());
        for item in m.items {
            let seq = item.seq();
            if m.sparse_sequence {
                if new_items.iter().any(|i: &Item| i.seq() == seq) {
                    p.duplicates += 1;
                } else {
                    new_items.push(item);
                }
                continue;
            }
            if seq < 1 || t.is_stored(seq) || new_items.iter().any(|i: &Item| i.seq() == seq) {
                p.duplicates += 1;
                continue;
            }
            if seq > t.acked + 1 && t.above.len() + new_items.len() >= max_pending {
                p.refused += 1;
                continue;
            }
            new_items.push(item);
        }
        if new_items.is_empty() {
            continue;
        }
        let seq_min = new_items.iter().map(Item::seq).min().unwrap_or(0);
        let seq_max = new_items.iter().map(Item::seq).max().unwrap_or(0);
        let (prev_idx, prev_hash) = t.head.unwrap_or((0, GENESIS));
        let idx = prev_idx + 1;
        let micros = m.received_at.timestamp_micros();
        let hash = chain_hash(
            &prev_hash,
            &EvidenceFields {
                device_id: &m.device_id,
                idx,
                seq_min,
                seq_max,
                received_at_micros: micros,
                topic: &m.topic,
                payload: &m.payload,
            },
        );
        p.write.evidence.push(EvidenceRow {
            device_id: m.device_id.clone(),
            idx,
            seq_min,
            seq_max,
            received_at_micros: micros,
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            prev_hash,
            hash,
        });
        t.head = Some((idx, hash));
        for item in new_items {
            if !m.sparse_sequence {
                t.above.insert(item.seq());
            }
            match item {
                Item::Fix {
                    seq,
                    time,
                    lat,
                    lon,
                    accuracy_m,
                    source,
                } => {
                    if t.newest_fix.is_some_and(|n| time < n) {
                        p.late_fixes += 1;
                    } else {
                        t.newest_fix = Some(time);
                    }
                    p.write.fixes.push(FixRow {
                        device_id: m.device_id.clone(),
                        seq,
                        fix_time: time,
                        received_at: m.received_at,
                        lat,
                        lon,
                        accuracy_m,
                        source,
                    });
                }
                Item::Event {
                    seq,
                    time,
                    kind,
                    detail,
                } => p.write.events.push(EventRow {
                    device_id: m.device_id.clone(),
                    seq,
                    event_time: time,
                    received_at: m.received_at,
                    kind,
                    detail,
                }),
            }
        }
        t.advance();
    }
    let mut devices: Vec<&String> = p.tracks.keys().collect();
    devices.sort();
    for d in devices {
        let t = &p.tracks[d];
        let before = tracks.get(d).map(|t| t.acked).unwrap_or(0);
        if t.acked > before {
            p.write.progress.push((d.clone(), t.acked));
        }
        // Every device in the batch gets an ack, also when nothing advanced: a
        // device resending duplicates evidently missed its last ack.
        if t.acked > 0
            && let Some(topic) = ack_topics.get(d)
        {
            p.acks.push((topic.clone(), t.acked));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(device: &str, seqs: &[i64]) -> Accepted {
        Accepted {
            device_id: device.into(),
            topic: format!("geoward/v1/dev/{device}/up/json"),
            ack_topic: format!("geoward/v1/dev/{device}/down"),
            payload: Bytes::from(format!("{seqs:?}")),
            received_at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
            sparse_sequence: false,
            items: seqs
                .iter()
                .map(|&seq| Item::Fix {
                    seq,
                    time: DateTime::from_timestamp_millis(1_700_000_000_000 + seq * 1000).unwrap(),
                    lat: 30.0,
                    lon: 120.0,
                    accuracy_m: Some(5.0),
                    source: "gnss",
                })
                .collect(),
        }
    }

    fn run(tracks: &mut HashMap<String, DeviceTrack>, msgs: Vec<Accepted>) -> Plan {
        let p = plan(msgs, tracks, 100);
        for (d, t) in &p.tracks {
            tracks.insert(d.clone(), t.clone());
        }
        p
    }

    #[test]
    fn watermark_waits_for_gaps_and_duplicates_are_dropped() {
        let mut tracks = HashMap::new();
        let p = run(
            &mut tracks,
            vec![msg("a", &[1, 2]), msg("a", &[4]), msg("b", &[2])],
        );
        assert_eq!(p.write.fixes.len(), 4);
        assert_eq!(p.acks, vec![("geoward/v1/dev/a/down".to_owned(), 2)]);
        assert_eq!(p.write.progress, vec![("a".to_owned(), 2)]);

        let p = run(&mut tracks, vec![msg("a", &[2, 3, 4]), msg("b", &[1])]);
        assert_eq!(p.duplicates, 2);
        assert_eq!(p.write.fixes.len(), 2);
        assert_eq!(
            p.acks,
            vec![
                ("geoward/v1/dev/a/down".to_owned(), 4),
                ("geoward/v1/dev/b/down".to_owned(), 2)
            ]
        );

        // A pure resend: nothing written, but the ack is repeated.
        let p = run(&mut tracks, vec![msg("a", &[1, 2, 3, 4])]);
        assert!(p.write.evidence.is_empty() && p.write.fixes.is_empty());
        assert_eq!(p.acks, vec![("geoward/v1/dev/a/down".to_owned(), 4)]);
    }

    #[test]
    fn evidence_chains_per_device_and_late_fixes_are_counted() {
        let mut tracks = HashMap::new();
        let p = run(
            &mut tracks,
            vec![msg("a", &[3]), msg("a", &[1]), msg("b", &[1])],
        );
        let a: Vec<_> = p
            .write
            .evidence
            .iter()
            .filter(|e| e.device_id == "a")
            .collect();
        assert_eq!(a[0].idx, 1);
        assert_eq!(a[0].prev_hash, GENESIS);
        assert_eq!(a[1].idx, 2);
        assert_eq!(a[1].prev_hash, a[0].hash);
        assert_eq!(p.late_fixes, 1);
        let p = run(&mut tracks, vec![msg("a", &[2])]);
        assert_eq!(p.write.evidence[0].idx, 3);
        assert_eq!(p.acks[0].1, 3);
    }

    #[test]
    fn too_many_items_above_a_gap_are_refused_not_acked() {
        let mut tracks = HashMap::new();
        let seqs: Vec<i64> = (2..=150).collect();
        let p = run(&mut tracks, vec![msg("a", &seqs)]);
        assert_eq!(p.write.fixes.len(), 100);
        assert_eq!(p.refused, 49);
        assert!(p.acks.is_empty());
        let p = run(&mut tracks, vec![msg("a", &[1])]);
        assert_eq!(p.acks[0].1, 101);
    }
}
