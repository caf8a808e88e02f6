//! Per-fix verdicts: how one fix relates to each of a subject's rules.
//!
//! Rules are numbered: 0 = permitted, 1 = curfew, 2.. = exclusion zones in
//! the order of [`SubjectRules::exclusions`]. Verdicts of one fix pack into
//! a `u32` (2 bits per rule).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use smallvec::SmallVec;

use crate::fix::Fix;
use crate::rules::{LeaveGrant, MAX_EXCLUSIONS, RulesError, SubjectRules};
use crate::thresholds::{RuleKind, SupervisionLevel, Thresholds};
use crate::zone::ZoneId;
use crate::zone_set::{Memo, Relation, Resolved, ZoneRef, ZoneSet};

pub(crate) const PERMITTED: usize = 0;
pub(crate) const CURFEW: usize = 1;
pub(crate) const FIRST_EXCLUSION: usize = 2;

/// A fix's standing with respect to one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Verdict {
    /// Compliant: the whole accuracy circle is where it should be.
    Ok = 0,
    /// Violating: the whole accuracy circle is where it must not be.
    Violating = 1,
    /// The circle meets the boundary: cannot tell.
    Uncertain = 2,
    /// The rule does not apply at this time.
    Inactive = 3,
}

/// Verdicts of one fix for all rules, 2 bits each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Verdicts(pub(crate) u32);

impl Verdicts {
    pub(crate) fn get(self, rule: usize) -> Verdict {
        match (self.0 >> (2 * rule)) & 3 {
            0 => Verdict::Ok,
            1 => Verdict::Violating,
            2 => Verdict::Uncertain,
            _ => Verdict::Inactive,
        }
    }

    fn set(&mut self, rule: usize, v: Verdict) {
        self.0 = (self.0 & !(3 << (2 * rule))) | ((v as u32) << (2 * rule));
    }
}

/// One zone version as a rule holds it: validity and geometry copied out
/// of the zone set, so judging a fix reads no zone tables (for circles, no
/// zone memory at all).
#[derive(Debug, Clone, Copy)]
struct Version {
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    geom: Resolved,
}

impl Version {
    fn new(zones: &ZoneSet, r: ZoneRef) -> Self {
        let z = zones.zone(r);
        Self {
            valid_from: z.valid_from,
            valid_until: z.valid_until,
            geom: zones.resolve(r),
        }
    }

    /// Same as [`crate::Zone::is_valid_at`].
    fn is_valid_at(&self, t: DateTime<Utc>) -> bool {
        self.valid_from.is_none_or(|from| t >= from)
            && self.valid_until.is_none_or(|until| t < until)
    }
}

/// A zone id resolved to its versions in the zone set. The newest version
/// is held inline (most zones have one version: no pointer to follow).
#[derive(Debug, Clone)]
struct Slot {
    newest: Version,
    /// Older versions, oldest first.
    older: Vec<Version>,
}

impl Slot {
    fn resolve(zones: &ZoneSet, id: &ZoneId) -> Result<Self, RulesError> {
        let Some((newest, older)) = zones.versions(id).split_last() else {
            return Err(RulesError::UnknownZone(id.clone()));
        };
        Ok(Self {
            newest: Version::new(zones, *newest),
            older: older.iter().map(|r| Version::new(zones, *r)).collect(),
        })
    }

    /// The highest version valid at `t`.
    fn at(&self, t: DateTime<Utc>) -> Option<&Version> {
        if self.newest.is_valid_at(t) {
            return Some(&self.newest);
        }
        self.older.iter().rev().find(|v| v.is_valid_at(t))
    }
}

/// Rules resolved against a zone set, ready to judge fixes.
///
/// What judging an ordinary fix reads comes first (`repr(C)` keeps the
/// order): the supervision level and whether there are curfews or leaves
/// at all are copied out of `rules`, so a subject without them never
/// reads the rules themselves.
#[derive(Debug, Clone)]
#[repr(C)]
pub(crate) struct Compiled {
    pub(crate) level: SupervisionLevel,
    has_curfews: bool,
    has_leaves: bool,
    /// Inline for the usual one permitted zone and two exclusion zones:
    /// judging a fix then follows no pointer out of the tracker.
    permitted: SmallVec<[Slot; 1]>,
    exclusions: SmallVec<[Slot; 2]>,
    /// Extra zones of leave permits, by leave index.
    extra: Vec<(usize, Slot)>,
    home: Option<Slot>,
    pub(crate) rules: SubjectRules,
}

impl Compiled {
    pub(crate) fn new(rules: SubjectRules, zones: &ZoneSet) -> Result<Self, RulesError> {
        if rules.exclusions.len() > MAX_EXCLUSIONS {
            return Err(RulesError::TooManyExclusions);
        }
        if !rules.curfews.is_empty() && rules.home.is_none() {
            return Err(RulesError::CurfewWithoutHome);
        }
        if rules.leaves.iter().any(|l| l.until <= l.from) {
            return Err(RulesError::EmptyLeave);
        }
        let resolve = |ids: &[ZoneId]| {
            ids.iter()
                .map(|id| Slot::resolve(zones, id))
                .collect::<Result<Vec<_>, _>>()
        };
        let permitted = resolve(&rules.permitted)?.into_iter().collect();
        let exclusions = resolve(&rules.exclusions)?.into_iter().collect();
        let home = rules
            .home
            .as_ref()
            .map(|h| Slot::resolve(zones, h))
            .transpose()?;
        let mut extra = Vec::new();
        for (i, l) in rules.leaves.iter().enumerate() {
            if let LeaveGrant::ExtraZone(id) = &l.grant {
                extra.push((i, Slot::resolve(zones, id)?));
            }
        }
        Ok(Self {
            level: rules.level,
            has_curfews: !rules.curfews.is_empty(),
            has_leaves: !rules.leaves.is_empty(),
            permitted,
            exclusions,
            extra,
            home,
            rules,
        })
    }

    pub(crate) fn rule_count(&self) -> usize {
        FIRST_EXCLUSION + self.exclusions.len()
    }

    pub(crate) fn rule_kind(rule: usize) -> RuleKind {
        match rule {
            PERMITTED => RuleKind::Permitted,
            CURFEW => RuleKind::Curfew,
            _ => RuleKind::Exclusion,
        }
    }

    /// The exclusion zone of rule `rule` valid at `t`.
    pub(crate) fn exclusion_at(&self, rule: usize, t: DateTime<Utc>) -> Option<&Resolved> {
        self.exclusions[rule - FIRST_EXCLUSION]
            .at(t)
            .map(|v| &v.geom)
    }

    fn suspended(&self, kind: RuleKind, t: DateTime<Utc>) -> bool {
        self.has_leaves
            && self
                .rules
                .leaves
                .iter()
                .any(|l| l.grant == LeaveGrant::Suspend(kind) && l.is_active_at(t))
    }

    /// Accuracy radius believed for the fix.
    pub(crate) fn radius_m(fix: &Fix, th: &Thresholds) -> f64 {
        fix.accuracy_m.max(th.min_accuracy.for_source(fix.source))
    }

    /// Judges the fix's position at time `t` (normally the fix's own time;
    /// a deadline re-judges the last position at the deadline). `memo` is
    /// the subject's [`Memo`] for `zones`: it changes speed, never answers.
    pub(crate) fn judge(
        &self,
        zones: &ZoneSet,
        th: &Thresholds,
        fix: &Fix,
        t: DateTime<Utc>,
        memo: &mut Memo,
    ) -> Verdicts {
        self.judge_at(zones, fix.lon, fix.lat, Self::radius_m(fix, th), t, memo)
    }

    /// [`Compiled::judge`] of a position with its believed radius `r`
    /// (what a checkpoint keeps of a fix to judge it again at a deadline).
    pub(crate) fn judge_at(
        &self,
        zones: &ZoneSet,
        lon: f64,
        lat: f64,
        r: f64,
        t: DateTime<Utc>,
        memo: &mut Memo,
    ) -> Verdicts {
        let mut v = Verdicts::default();
        v.set(PERMITTED, self.judge_permitted(zones, lon, lat, r, t, memo));
        let curfew =
            if !self.has_curfews || self.suspended(RuleKind::Curfew, t) || !self.in_curfew(t) {
                Verdict::Inactive
            } else {
                match self.home.as_ref().and_then(|h| h.at(t)) {
                    None => Verdict::Inactive,
                    Some(z) => match zones.relate_memo(&z.geom, lon, lat, r, memo) {
                        Relation::Inside => Verdict::Ok,
                        Relation::Outside => Verdict::Violating,
                        Relation::Boundary => Verdict::Uncertain,
                    },
                }
            };
        v.set(CURFEW, curfew);
        let excl_suspended = !self.exclusions.is_empty() && self.suspended(RuleKind::Exclusion, t);
        for (i, slot) in self.exclusions.iter().enumerate() {
            let verdict = match slot.at(t) {
                _ if excl_suspended => Verdict::Inactive,
                None => Verdict::Inactive,
                Some(z) => match zones.relate_memo(&z.geom, lon, lat, r, memo) {
                    Relation::Inside => Verdict::Violating,
                    Relation::Outside => Verdict::Ok,
                    Relation::Boundary => Verdict::Uncertain,
                },
            };
            v.set(FIRST_EXCLUSION + i, verdict);
        }
        v
    }

    fn judge_permitted(
        &self,
        zones: &ZoneSet,
        lon: f64,
        lat: f64,
        r: f64,
        t: DateTime<Utc>,
        memo: &mut Memo,
    ) -> Verdict {
        if self.permitted.is_empty() || self.suspended(RuleKind::Permitted, t) {
            return Verdict::Inactive;
        }
        let extra = self
            .extra
            .iter()
            .filter(|(i, _)| self.rules.leaves[*i].is_active_at(t))
            .map(|(_, s)| s);
        let (mut any_valid, mut any_boundary) = (false, false);
        for slot in self.permitted.iter().chain(extra) {
            let Some(z) = slot.at(t) else { continue };
            any_valid = true;
            match zones.relate_memo(&z.geom, lon, lat, r, memo) {
                Relation::Inside => return Verdict::Ok,
                Relation::Boundary => any_boundary = true,
                Relation::Outside => {}
            }
        }
        match (any_valid, any_boundary) {
            (false, _) => Verdict::Inactive,
            (true, true) => Verdict::Uncertain,
            (true, false) => Verdict::Violating,
        }
    }

    /// Whether some curfew window covers `t` (local wall-clock time, so
    /// windows across midnight and DST changes behave as written).
    pub(crate) fn in_curfew(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.rules.time_zone);
        let (date, time) = (local.date_naive(), local.time());
        let yesterday = date.pred_opt().unwrap_or(date);
        self.rules.curfews.iter().any(|c| {
            let on = |d: NaiveDate| c.days.is_empty() || c.days.contains(&d.weekday());
            if c.start < c.end {
                on(date) && time >= c.start && time < c.end
            } else {
                (on(date) && time >= c.start) || (on(yesterday) && time < c.end)
            }
        })
    }

    /// The first deadline strictly after `after`: a curfew window start or a
    /// leave end (plus grace), with the mask of rules it concerns.
    pub(crate) fn next_deadline(
        &self,
        after: DateTime<Utc>,
        grace_s: i64,
    ) -> Option<(DateTime<Utc>, u32)> {
        let grace = Duration::seconds(grace_s);
        let mut best: Option<(DateTime<Utc>, u32)> = None;
        let mut consider = |t: DateTime<Utc>, mask: u32| {
            if t > after {
                match &mut best {
                    Some((bt, bm)) if *bt == t => *bm |= mask,
                    Some((bt, _)) if *bt < t => {}
                    _ => best = Some((t, mask)),
                }
            }
        };
        let excl_mask = ((1u32 << self.exclusions.len()) - 1) << FIRST_EXCLUSION;
        let mask_of = |kind: RuleKind| match kind {
            RuleKind::Permitted => 1 << PERMITTED,
            RuleKind::Curfew => 1 << CURFEW,
            RuleKind::Exclusion => excl_mask,
        };
        for l in &self.rules.leaves {
            let mask = match l.grant {
                LeaveGrant::ExtraZone(_) => 1 << PERMITTED,
                LeaveGrant::Suspend(kind) => mask_of(kind),
            };
            consider(l.until + grace, mask);
        }
        if !self.rules.curfews.is_empty() {
            let tz = self.rules.time_zone;
            let start_date = (after - grace).with_timezone(&tz).date_naive();
            for day in -1..=8 {
                let Some(date) = start_date.checked_add_signed(Duration::days(day)) else {
                    continue;
                };
                for c in &self.rules.curfews {
                    if !(c.days.is_empty() || c.days.contains(&date.weekday())) {
                        continue;
                    }
                    let naive = date.and_time(c.start);
                    // A start inside a DST gap moves to the first valid instant.
                    let start = tz.from_local_datetime(&naive).earliest().or_else(|| {
                        tz.from_local_datetime(&(naive + Duration::hours(1)))
                            .earliest()
                    });
                    if let Some(s) = start {
                        consider(s.with_timezone(&Utc) + grace, 1 << CURFEW);
                    }
                }
            }
        }
        best
    }
}
