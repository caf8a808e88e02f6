//! The officers' live feed as Server-Sent Events.
//!
//! Each office has its own feed with monotonically increasing event ids. The
//! service stores every feed event (id, office, frame data) so a browser
//! reconnecting with `Last-Event-ID: n` is sent every event after `n` before
//! live ones: nothing is missed. An office's feed carries every incident
//! change of its subtree ([`feed_offices`] says which feeds an incident
//! change goes to).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::engine::IncidentChange;
use crate::ids::OfficeId;
use crate::incident::{IncidentHeader, TimelineEntry};
use crate::routing::OfficeTree;

/// Version of [`FeedPayload`]'s JSON shape.
pub const FEED_SCHEMA: u32 = 1;

/// The SSE `event:` name of incident changes.
pub const INCIDENT_EVENT: &str = "incident";

/// The JSON in a feed frame's `data:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedPayload {
    /// [`FEED_SCHEMA`].
    pub schema: u32,
    /// What changed (`opened`, `escalated`, `acknowledged`, …).
    pub change: String,
    /// The incident after the change.
    pub incident: IncidentHeader,
    /// The timeline entry of the change.
    pub entry: TimelineEntry,
}

impl FeedPayload {
    /// The payload of an engine incident change.
    pub fn from_change(change: &IncidentChange) -> Self {
        Self {
            schema: FEED_SCHEMA,
            change: change.entry.event.code().to_owned(),
            incident: change.header.clone(),
            entry: change.entry.clone(),
        }
    }

    /// Compact JSON (one line, as SSE `data:` wants).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Offices whose feeds show a change of this incident: the responsible
/// office and every office above it (superiors see their subtree).
pub fn feed_offices(tree: &OfficeTree, header: &IncidentHeader) -> Vec<OfficeId> {
    let mut out = tree.chain(&header.office);
    if out.is_empty() {
        out.push(header.office.clone());
    }
    out
}

/// One SSE frame: `id:`, `event:`, one `data:` line per line of `data`, and
/// the blank line that ends the frame.
pub fn format_frame(id: u64, event: &str, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 48);
    out.push_str("id: ");
    out.push_str(&id.to_string());
    out.push('\n');
    out.push_str("event: ");
    out.push_str(event.lines().next().unwrap_or(""));
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// The frame for an incident change with feed event id `id`.
pub fn incident_frame(id: u64, change: &IncidentChange) -> String {
    format_frame(
        id,
        INCIDENT_EVENT,
        &FeedPayload::from_change(change).to_json(),
    )
}

/// A comment frame that keeps proxies from closing an idle stream.
pub const KEEPALIVE_FRAME: &str = ": keepalive\n\n";

/// Tells the browser how long to wait before reconnecting.
pub fn retry_frame(retry_ms: u64) -> String {
    format!("retry: {retry_ms}\n\n")
}

/// A `Last-Event-ID` header that is not an event id of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LastEventIdError {
    /// Empty or not decimal digits.
    #[error("last-event-id must be a decimal event id")]
    NotANumber,
    /// Larger than any id we issue.
    #[error("last-event-id is out of range")]
    OutOfRange,
}

impl LastEventIdError {
    /// Stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotANumber => "not_a_number",
            Self::OutOfRange => "out_of_range",
        }
    }
}

/// Parses a `Last-Event-ID` header value: the id of the last event the
/// browser saw; send events with larger ids.
pub fn parse_last_event_id(value: &str) -> Result<u64, LastEventIdError> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LastEventIdError::NotANumber);
    }
    v.parse::<u64>().map_err(|_| LastEventIdError::OutOfRange)
}

/// Hands out per-office event ids, 1, 2, 3, …; restore with the largest id
/// stored per office after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedSequencer {
    last: BTreeMap<OfficeId, u64>,
}

impl FeedSequencer {
    /// Starts from the stored maxima (offices without events start at 1).
    pub fn new(last: BTreeMap<OfficeId, u64>) -> Self {
        Self { last }
    }

    /// The next id of `office`'s feed.
    pub fn next_id(&mut self, office: &OfficeId) -> u64 {
        let n = self.last.entry(office.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// The last id issued for `office` (0 when none).
    pub fn last_id(&self, office: &OfficeId) -> u64 {
        self.last.get(office).copied().unwrap_or(0)
    }
}

/// What a reconnecting browser gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Frames after its `Last-Event-ID`, oldest first.
    pub frames: Vec<String>,
    /// True when events it has not seen are no longer held (or the id is
    /// from before a restart): it must reload the incident list, then
    /// follow the live feed.
    pub gap: bool,
}

/// The SSE `event:` name telling a browser to reload (sent on a gap).
pub const RESET_EVENT: &str = "reset";

/// An in-memory resumable feed for every office, holding the last
/// `capacity` frames per office. A service that must survive restarts
/// stores frames in its database instead, numbering them with a
/// [`FeedSequencer`] restored from the stored maxima; this type is for a
/// single process and for tests.
#[derive(Debug, Clone)]
pub struct FeedLog {
    capacity: usize,
    seq: FeedSequencer,
    frames: BTreeMap<OfficeId, VecDeque<(u64, String)>>,
}

impl FeedLog {
    /// A log keeping `capacity` (at least 1) frames per office.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seq: FeedSequencer::default(),
            frames: BTreeMap::new(),
        }
    }

    /// Appends a change to the feeds of its office chain; returns
    /// `(office, frame)` pairs for the live subscribers.
    pub fn publish(
        &mut self,
        tree: &OfficeTree,
        change: &IncidentChange,
    ) -> Vec<(OfficeId, String)> {
        let data = FeedPayload::from_change(change).to_json();
        let mut out = Vec::new();
        for office in feed_offices(tree, &change.header) {
            let id = self.seq.next_id(&office);
            let frame = format_frame(id, INCIDENT_EVENT, &data);
            let q = self.frames.entry(office.clone()).or_default();
            if q.len() == self.capacity {
                q.pop_front();
            }
            q.push_back((id, frame.clone()));
            out.push((office, frame));
        }
        out
    }

    /// Frames of `office` after `last_event_id` (all held frames when
    /// `None`: a first connection).
    pub fn replay(&self, office: &OfficeId, last_event_id: Option<u64>) -> Replay {
        let held = self.frames.get(office);
        let last_issued = self.seq.last_id(office);
        let Some(after) = last_event_id else {
            return Replay {
                frames: held
                    .map(|q| q.iter().map(|(_, f)| f.clone()).collect())
                    .unwrap_or_default(),
                gap: false,
            };
        };
        let oldest = held.and_then(|q| q.front()).map(|(id, _)| *id);
        let gap = after > last_issued || oldest.is_some_and(|o| after.saturating_add(1) < o);
        let frames = held
            .map(|q| {
                q.iter()
                    .filter(|(id, _)| *id > after)
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .unwrap_or_default();
        Replay { frames, gap }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_has_id_event_and_one_data_line_per_line() {
        assert_eq!(
            format_frame(7, "incident", "{\"a\":1}\nsecond"),
            "id: 7\nevent: incident\ndata: {\"a\":1}\ndata: second\n\n"
        );
    }

    #[test]
    fn last_event_id_parsing() {
        assert_eq!(parse_last_event_id(" 42 "), Ok(42));
        assert_eq!(parse_last_event_id(""), Err(LastEventIdError::NotANumber));
        assert_eq!(parse_last_event_id("-1"), Err(LastEventIdError::NotANumber));
        assert_eq!(parse_last_event_id("4x"), Err(LastEventIdError::NotANumber));
        assert_eq!(
            parse_last_event_id("99999999999999999999999"),
            Err(LastEventIdError::OutOfRange)
        );
    }

    #[test]
    fn sequencer_is_per_office_and_resumes() {
        let mut s = FeedSequencer::new(BTreeMap::from([(OfficeId::from("a"), 10)]));
        assert_eq!(s.next_id(&"a".into()), 11);
        assert_eq!(s.next_id(&"b".into()), 1);
        assert_eq!(s.next_id(&"a".into()), 12);
        assert_eq!(s.last_id(&"b".into()), 1);
    }
}
