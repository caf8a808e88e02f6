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

/// The zone engine for many subjects. Single-threaded; shard subjects over
/// several engines for more cores.
#[derive(Debug)]
pub struct Engine {
    zones: Arc<ZoneSet>,
    thresholds: Arc<Thresholds>,
    trackers: HashMap<SubjectId, Tracker, SubjectHasher>,
}

impl Engine {
    pub fn new(zones: Arc<ZoneSet>, thresholds: Thresholds) -> Self {
        Self {
            zones,
            thresholds: Arc::new(thresholds),
            trackers: HashMap::default(),
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
        for (id, t) in &mut self.trackers {
            if let Err(e) = t.rebind(self.zones.clone()) {
                failed.push((id.clone(), e));
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
        self.trackers.insert(subject, t);
        Ok(())
    }

    pub fn remove_subject(&mut self, subject: &str) -> bool {
        self.trackers.remove(subject).is_some()
    }

    pub fn tracker(&self, subject: &str) -> Option<&Tracker> {
        self.trackers.get(subject)
    }

    pub fn len(&self) -> usize {
        self.trackers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trackers.is_empty()
    }

    /// Judges one fix of one subject at processing time `now`.
    pub fn observe(
        &mut self,
        subject: &str,
        fix: Fix,
        now: DateTime<Utc>,
    ) -> Result<Vec<Transition>, ObserveError> {
        let t = self
            .trackers
            .get_mut(subject)
            .ok_or(ObserveError::UnknownSubject)?;
        Ok(t.observe(fix, now)?)
    }

    /// Advances every subject's clock to `now` (curfew starts, leave ends).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Transition> {
        let mut out = Vec::new();
        for t in self.trackers.values_mut() {
            out.extend(t.tick(now));
        }
        out
    }
}
