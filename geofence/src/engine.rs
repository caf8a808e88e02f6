//! All subjects: a map of trackers sharing one zone set and thresholds.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::fix::{Fix, FixError};
use crate::rules::{RulesError, SubjectRules};
use crate::thresholds::Thresholds;
use crate::tracker::Tracker;
use crate::transition::{SubjectId, Transition};
use crate::zone_set::ZoneSet;

/// A fix that could not be observed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObserveError {
    #[error("unknown subject")]
    UnknownSubject,
    #[error(transparent)]
    InvalidFix(#[from] FixError),
}

impl ObserveError {
    /// Stable code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownSubject => "unknown_subject",
            Self::InvalidFix(e) => e.reason(),
        }
    }
}

/// Hasher of the subject map: foldhash is several times cheaper than the
/// default SipHash on short ids and still seeded per map, which matters on
/// a path taken once per fix.
type SubjectHasher = foldhash::fast::RandomState;

/// A subject's place in one [`Engine`], returned by [`Engine::handle`]:
/// [`Engine::observe_handle`] with it skips the id lookup (a hash of the id
/// and a few cold cache lines per fix). A handle stays valid while the
/// subject stays in the engine (replacing its rules keeps it); after
/// [`Engine::remove_subject`] it is stale and is refused as an unknown
/// subject, even if the slot is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubjectHandle {
    slot: u32,
    generation: u32,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    tracker: Option<Tracker>,
}

/// The zone engine for many subjects. Single-threaded; shard subjects over
/// several engines for more cores.
///
/// Trackers live in a dense vector; the id map holds only slot numbers, so
/// a probe touches small entries, and callers that keep a
/// [`SubjectHandle`] skip the probe altogether.
#[derive(Debug)]
pub struct Engine {
    zones: Arc<ZoneSet>,
    thresholds: Arc<Thresholds>,
    index: HashMap<SubjectId, u32, SubjectHasher>,
    slots: Vec<Slot>,
    /// Slots of removed subjects, reused by the next new subject.
    free: Vec<u32>,
}

impl Engine {
    pub fn new(zones: Arc<ZoneSet>, thresholds: Thresholds) -> Self {
        Self {
            zones,
            thresholds: Arc::new(thresholds),
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    pub fn zones(&self) -> &Arc<ZoneSet> {
        &self.zones
    }

    /// Switches every subject to a new zone set (see [`Tracker::rebind`]).
    /// Subjects whose rules name a zone missing from the new set keep the
    /// old set and are returned with the error; fix their rules and call
    /// [`Engine::set_subject`].
    pub fn replace_zones(&mut self, zones: Arc<ZoneSet>) -> Vec<(SubjectId, RulesError)> {
        self.zones = zones;
        let mut failed = Vec::new();
        for t in self.slots.iter_mut().filter_map(|s| s.tracker.as_mut()) {
            if let Err(e) = t.rebind(self.zones.clone()) {
                failed.push((t.subject().to_owned(), e));
            }
        }
        failed.sort_by(|a, b| a.0.cmp(&b.0));
        failed
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Adds a subject or replaces its rules. Replacing starts a fresh
    /// tracker: history and open episodes of the old rules are dropped, so
    /// the caller should resolve open incidents when rules change.
    pub fn set_subject(
        &mut self,
        subject: SubjectId,
        rules: SubjectRules,
    ) -> Result<(), RulesError> {
        let t = Tracker::new(
            subject.clone(),
            rules,
            self.zones.clone(),
            self.thresholds.clone(),
        )?;
        if let Some(&slot) = self.index.get(&subject) {
            self.slots[slot as usize].tracker = Some(t);
            return Ok(());
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize].tracker = Some(t);
                slot
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    tracker: Some(t),
                });
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 subjects")
            }
        };
        self.index.insert(subject, slot);
        Ok(())
    }

    pub fn remove_subject(&mut self, subject: &str) -> bool {
        let Some(slot) = self.index.remove(subject) else {
            return false;
        };
        let s = &mut self.slots[slot as usize];
        s.tracker = None;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
        true
    }

    /// The handle of a subject, for [`Engine::observe_handle`].
    pub fn handle(&self, subject: &str) -> Option<SubjectHandle> {
        self.index.get(subject).map(|&slot| SubjectHandle {
            slot,
            generation: self.slots[slot as usize].generation,
        })
    }

    pub fn tracker(&self, subject: &str) -> Option<&Tracker> {
        let slot = *self.index.get(subject)?;
        self.slots[slot as usize].tracker.as_ref()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Judges one fix of one subject at processing time `now`.
    pub fn observe(
        &mut self,
        subject: &str,
        fix: Fix,
        now: DateTime<Utc>,
    ) -> Result<Vec<Transition>, ObserveError> {
        let slot = *self
            .index
            .get(subject)
            .ok_or(ObserveError::UnknownSubject)?;
        let t = self.slots[slot as usize]
            .tracker
            .as_mut()
            .ok_or(ObserveError::UnknownSubject)?;
        Ok(t.observe(fix, now)?)
    }

    /// [`Engine::observe`] by handle: the same, without the id lookup. A
    /// stale handle (subject removed) is an unknown subject.
    pub fn observe_handle(
        &mut self,
        subject: SubjectHandle,
        fix: Fix,
        now: DateTime<Utc>,
    ) -> Result<Vec<Transition>, ObserveError> {
        let t = self
            .slots
            .get_mut(subject.slot as usize)
            .filter(|s| s.generation == subject.generation)
            .and_then(|s| s.tracker.as_mut())
            .ok_or(ObserveError::UnknownSubject)?;
        Ok(t.observe(fix, now)?)
    }

    /// Advances every subject's clock to `now` (curfew starts, leave ends).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Transition> {
        let mut out = Vec::new();
        for t in self.slots.iter_mut().filter_map(|s| s.tracker.as_mut()) {
            out.extend(t.tick(now));
        }
        out
    }
}
