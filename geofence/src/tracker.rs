//! Per-subject tracker: judges fixes, runs the hysteresis in event time and
//! emits transitions.
//!
//! # Late data
//! The tracker keeps a bounded, time-ordered window of judged fixes
//! (`Thresholds::window_seconds` back from the newest fix, at most
//! `Thresholds::window_max_fixes`, stored compactly by [`crate::window`])
//! plus a checkpoint of the state just before the window. A fix newer than
//! everything seen steps the state forward in O(1). A late fix is inserted in order and the hysteresis is
//! re-run over the whole window from the checkpoint (O(window), no polygon
//! work: verdicts are stored). The recomputed episodes are reconciled with
//! what was already emitted: missing confirmations and ends are emitted
//! (marked late when old), new episodes are emitted only if they were
//! confirmed or are still open, and an emitted open episode that the new
//! history no longer supports is ended. Emitted transitions are never
//! retracted. A fix older than the checkpoint is counted as too late and
//! dropped. Fixes with the same time and device sequence number as one
//! already in the window are duplicates and change nothing.
//!
//! # Batched pruning and checkpoint
//! The window's bounds only move forward, so pruning after each of a run
//! of in-order fixes ends where one pruning after the last of them does.
//! Pruning therefore waits for a batch of in-order fixes, or until
//! something depends on it (a late or too-late fix, a transition listing
//! live fixes as evidence, a tick's deadline, a zone set change): an
//! in-order fix after the window's last is after every pruned fix too, so
//! it needs no exact floor. Pruning is first logical: the checkpoint's
//! time moves past the pruned fixes at once (so "too late" is decided as
//! if the checkpoint had moved), but stepping the checkpoint's state past
//! them waits until [`PRUNE_BATCH`] have piled up, or until a late fix's
//! replay or a zone set change needs that state. Pruned fixes are never
//! evidence. So an in-order fix touches neither the checkpoint nor the
//! window's front (each a cold cache line when many subjects take turns),
//! and pruning reads the fronts, and the checkpoint the pruned fixes, in
//! sequential sweeps. `tracker_model_tests` checks the result equals
//! pruning on every fix, the way the tracker did before.
//!
//! # Deadlines
//! Curfew starts and leave ends are deadlines. When processing passes a
//! deadline (a fix after it, or [`Tracker::tick`] with `now` after it), the
//! last confident fix (if recent enough) is judged at the deadline; if it
//! violates a rule the deadline concerns, that breach is confirmed at the
//! deadline.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use smallvec::SmallVec;

use crate::fix::{Fix, FixError};
use crate::geodesy::{METRES_PER_DEGREE, distance_m};
use crate::hysteresis::{Obs, Phase, RuleState, Step};
use crate::judge::{CURFEW, Compiled, FIRST_EXCLUSION, PERMITTED, Verdict, Verdicts};
use crate::rules::{RulesError, SubjectRules};
use crate::thresholds::Thresholds;
use crate::transition::{RuleRef, SubjectId, Transition, TransitionKind};
use crate::window::{Entry, Window};
use crate::zone_set::{Memo, ZoneSet};

/// Most fixes listed as evidence in one transition (the latest are kept).
const MAX_EVIDENCE: usize = 16;
/// Fixes pruned from the window (logically) before the checkpoint steps
/// past them in one sweep; in-order fixes waiting to be pruned count
/// towards it too. The window then holds up to this many more entries
/// than `window_max_fixes`.
const PRUNE_BATCH: usize = 32;
/// Consecutive mutually consistent "implausible" fixes after which the
/// subject is taken to really be there (re-anchoring after a genuine fast
/// trip or a long gap).
const REANCHOR_AFTER: u8 = 3;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn dt(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
struct Pos {
    t: i64,
    lon: f64,
    lat: f64,
    r: f64,
}

impl Pos {
    /// Whether `to` can be reached from here at `max_speed_mps`, allowing
    /// for both accuracy radii. Decided by [`Pos::reachable_exact`]; bounds
    /// of the great-circle distance that need no trigonometry settle the
    /// clear cases first (every fix of a walking subject) with margins far
    /// above rounding, so the answer is always the exact one.
    fn reachable(&self, to: &Pos, max_speed_mps: f64) -> bool {
        let secs = ((to.t - self.t).abs() as f64 / 1000.0).max(1.0);
        let limit = max_speed_mps * secs + self.r + to.r;
        if limit.is_finite() && max_speed_mps >= 0.0 {
            let (dlat, dlon) = ((to.lat - self.lat).abs(), (to.lon - self.lon).abs());
            // Along the meridian, then along the parallel nearer the
            // equator (where a degree of longitude is longest): an upper
            // bound. The latitude difference alone is a lower bound.
            let dlon = dlon % 360.0;
            let upper = (dlat + dlon.min(360.0 - dlon)) * METRES_PER_DEGREE;
            let lower = dlat * METRES_PER_DEGREE;
            if upper * (1.0 + 1e-9) + 1e-6 < limit {
                return true;
            }
            if lower * (1.0 - 1e-9) - 1e-6 > limit {
                return false;
            }
        }
        self.reachable_exact(to, max_speed_mps)
    }

    fn reachable_exact(&self, to: &Pos, max_speed_mps: f64) -> bool {
        let d = (distance_m(self.lon, self.lat, to.lon, to.lat) - self.r - to.r).max(0.0);
        let secs = ((to.t - self.t).abs() as f64 / 1000.0).max(1.0);
        d / secs <= max_speed_mps
    }
}

/// What the possible-crossing check needs of the previous fix.
#[derive(Debug, Clone, Copy)]
struct Prev {
    t: i64,
    lon: f64,
    lat: f64,
    verdicts: Verdicts,
    confident: bool,
}

/// Everything the hysteresis needs to continue from one point in time.
/// Fields an in-order fix reads come first (`repr(C)` keeps the order), so
/// they share as few cache lines as possible.
#[derive(Debug, Clone)]
#[repr(C)]
struct Cursor {
    t: i64,
    next_deadline: Option<(i64, u32)>,
    anchor: Option<Pos>,
    prev: Option<Prev>,
    /// The last confident fix's position and believed radius, judged again
    /// at a deadline.
    last_confident: Option<Pos>,
    /// Inline for up to four rules (permitted, curfew, two exclusions), so
    /// the hysteresis state sits in the tracker instead of behind a pointer.
    rules: SmallVec<[RuleState; 4]>,
    chain: u8,
    chain_last: Option<Pos>,
}

#[derive(Debug, Clone, Copy)]
enum EvKind {
    Step(Step),
    Crossing { from: i64 },
}

#[derive(Debug, Clone, Copy)]
struct Ev {
    rule: usize,
    kind: EvKind,
    t: i64,
    /// Episode start of the rule when the event happened.
    start: i64,
}

struct Ctx<'a> {
    c: &'a Compiled,
    zones: &'a ZoneSet,
    th: &'a Thresholds,
}

impl Ctx<'_> {
    /// A new window entry with the fix's verdicts (confidence is set when
    /// the entry is stepped).
    fn judged(&self, fix: Fix, t: i64, memo: &mut Memo) -> Entry {
        Entry {
            fix,
            t,
            verdicts: self.c.judge(self.zones, self.th, &fix, fix.time, memo),
            confident: false,
        }
    }

    fn cursor(&self, t: i64) -> Cursor {
        Cursor {
            t,
            rules: smallvec::smallvec![RuleState::default(); self.c.rule_count()],
            anchor: None,
            chain: 0,
            chain_last: None,
            last_confident: None,
            prev: None,
            next_deadline: self.next_deadline(t),
        }
    }

    fn next_deadline(&self, after: i64) -> Option<(i64, u32)> {
        self.c
            .next_deadline(dt(after), self.th.deadline_grace_seconds)
            .map(|(d, m)| (ms(d), m))
    }

    fn apply(&self, cur: &mut Cursor, rule: usize, o: Obs, out: &mut Vec<Ev>) {
        let th = self.th.level(self.c.level).rule(Compiled::rule_kind(rule));
        let first = out.len();
        cur.rules[rule].apply(o, th, |step, t| {
            out.push(Ev {
                rule,
                kind: EvKind::Step(step),
                t,
                start: 0,
            })
        });
        let start = cur.rules[rule].start;
        for ev in &mut out[first..] {
            ev.start = start;
        }
    }

    fn run_deadlines(&self, cur: &mut Cursor, until: i64, out: &mut Vec<Ev>) {
        while let Some((d, mask)) = cur.next_deadline {
            if d > until {
                break;
            }
            if let Some(p) = cur.last_confident
                && d - p.t <= self.th.deadline_max_fix_age_seconds * 1000
            {
                let v = self
                    .c
                    .judge_at(self.zones, p.lon, p.lat, p.r, dt(d), &mut Memo::default());
                for rule in 0..self.c.rule_count() {
                    if mask & (1 << rule) != 0 && v.get(rule) == Verdict::Violating {
                        let o = Obs {
                            t: d,
                            verdict: Verdict::Violating,
                            confident: true,
                            deadline: true,
                        };
                        self.apply(cur, rule, o, out);
                    }
                }
            }
            cur.t = cur.t.max(d);
            cur.next_deadline = self.next_deadline(d);
        }
    }

    /// Steps past one entry. `crossings: false` skips possible-crossing
    /// checks (when advancing the checkpoint, whose events are discarded).
    fn entry(&self, cur: &mut Cursor, e: &mut Entry, out: &mut Vec<Ev>, crossings: bool) {
        self.run_deadlines(cur, e.t, out);
        let pos = Pos {
            t: e.t,
            lon: e.fix.lon,
            lat: e.fix.lat,
            r: Compiled::radius_m(&e.fix, self.th),
        };
        let max_speed = self.th.max_speed_mps;
        let mut plausible = cur.anchor.is_none_or(|a| a.reachable(&pos, max_speed));
        if !plausible {
            let chained =
                cur.chain > 0 && cur.chain_last.is_some_and(|c| c.reachable(&pos, max_speed));
            cur.chain = if chained { cur.chain + 1 } else { 1 };
            cur.chain_last = Some(pos);
            plausible = cur.chain >= REANCHOR_AFTER;
        }
        if plausible {
            cur.anchor = Some(pos);
            cur.chain = 0;
            cur.chain_last = None;
        }
        let confident = plausible && e.fix.source.is_confident();
        e.confident = confident;
        for rule in 0..self.c.rule_count() {
            let o = Obs {
                t: e.t,
                verdict: e.verdicts.get(rule),
                confident,
                deadline: false,
            };
            self.apply(cur, rule, o, out);
        }
        if let Some(p) = cur.prev
            && crossings
            && confident
            && p.confident
            && e.t - p.t >= self.th.possible_crossing_min_gap_seconds * 1000
        {
            for rule in FIRST_EXCLUSION..self.c.rule_count() {
                if p.verdicts.get(rule) != Verdict::Ok || e.verdicts.get(rule) != Verdict::Ok {
                    continue;
                }
                let Some(z) = self.c.exclusion_at(rule, e.fix.time) else {
                    continue;
                };
                if self
                    .zones
                    .segment_meets_resolved(z, (p.lon, p.lat), (e.fix.lon, e.fix.lat))
                {
                    out.push(Ev {
                        rule,
                        kind: EvKind::Crossing { from: p.t },
                        t: e.t,
                        start: p.t,
                    });
                }
            }
        }
        cur.prev = Some(Prev {
            t: e.t,
            lon: e.fix.lon,
            lat: e.fix.lat,
            verdicts: e.verdicts,
            confident,
        });
        if confident {
            cur.last_confident = Some(pos);
        }
        cur.t = cur.t.max(e.t);
    }
}

/// The key `(t, device_seq)` of the newest entry of a window's live part
/// (from `lag` on), if any.
fn last_live(window: &Window, lag: usize) -> Option<(i64, u64)> {
    window.last_key().filter(|_| window.len() > lag)
}

/// An episode as emitted so far.
#[derive(Debug, Clone)]
struct Episode {
    id: u64,
    rule: usize,
    start: i64,
    confirmed: bool,
    end: Option<i64>,
}

/// An episode as recomputed by a replay.
#[derive(Debug, Clone)]
struct Recomputed {
    rule: usize,
    start: i64,
    confirmed_at: Option<i64>,
    end: Option<(i64, i64)>,
}

/// Counters of one tracker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Fixes accepted into the window.
    pub fixes: u64,
    /// Fixes ignored as duplicates.
    pub duplicates: u64,
    /// Fixes older than the window, dropped.
    pub too_late: u64,
    /// Late fixes that caused a replay.
    pub replays: u64,
}

/// One subject's judge and breach tracker.
///
/// Laid out hot fields first (`repr(C)` keeps the order): what an in-order
/// fix reads and writes sits in the first cache lines, since with many
/// subjects taking turns each line touched is a miss; the rules' full
/// text, episode counter and name come last. The window's open block
/// (what a push writes) follows the first line's fields.
#[derive(Debug)]
#[repr(C)]
pub struct Tracker {
    /// The key `(t, device_seq)` of the window's newest live fix, kept here
    /// so an in-order fix reads no (cold) window entry; `None` when no fix
    /// is live.
    last: Option<(i64, u64)>,
    /// The checkpoint's time as if it had stepped past every pruned fix:
    /// fixes before it are too late. Exact once the window is settled
    /// (pruning may wait; see the module doc).
    floor: i64,
    max_now: i64,
    /// Entries at the window's front pruned only logically: the checkpoint
    /// has not stepped past them yet (see the module doc).
    lag: usize,
    /// In-order fixes appended since the window was last pruned: pruning
    /// waits for a batch of them (see the module doc).
    unsettled: usize,
    /// No episode ended and no crossing happened before this time: pruning
    /// drops those older than the floor only once the floor passes it
    /// (their list is cold; most fixes need not read it).
    tidy_from: i64,
    window: Window,
    thresholds: Arc<Thresholds>,
    zones: Arc<ZoneSet>,
    stats: TrackerStats,
    tip: Option<Cursor>,
    /// Read on every fix too (whether the checkpoint is set; pruning
    /// retains the open ones), so among the hot fields rather than last.
    base: Option<Box<Cursor>>,
    episodes: Vec<Episode>,
    crossings: Vec<(usize, i64, i64)>,
    /// Free discs of the zones last judged (see [`Memo`]); cleared when
    /// the zone set changes.
    memo: Memo,
    compiled: Compiled,
    next_episode: u64,
    subject: SubjectId,
}

impl Tracker {
    /// Resolves the rules' zone ids against `zones`.
    pub fn new(
        subject: SubjectId,
        rules: SubjectRules,
        zones: Arc<ZoneSet>,
        thresholds: Arc<Thresholds>,
    ) -> Result<Self, RulesError> {
        let compiled = Compiled::new(rules, &zones)?;
        Ok(Self {
            last: None,
            floor: i64::MIN,
            max_now: i64::MIN,
            lag: 0,
            unsettled: 0,
            tidy_from: i64::MAX,
            thresholds,
            zones,
            stats: TrackerStats::default(),
            tip: None,
            window: Window::default(),
            memo: Memo::default(),
            compiled,
            base: None,
            episodes: Vec::new(),
            crossings: Vec::new(),
            next_episode: 1,
            subject,
        })
    }

    /// Switches to a new zone set (zones added, versions changed), keeping
    /// the window and open episodes. Fixes already judged keep their
    /// verdicts; new fixes and replays of late data use the new set.
    /// On error (a zone the rules name is gone) nothing changes.
    pub fn rebind(&mut self, zones: Arc<ZoneSet>) -> Result<(), RulesError> {
        // Pruned fixes are stepped past under the zones they were pruned
        // under (a deadline among them is judged with those).
        self.settle();
        self.catch_up_checkpoint();
        self.compiled = Compiled::new(self.compiled.rules.clone(), &zones)?;
        self.zones = zones;
        self.memo.clear();
        Ok(())
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn rules(&self) -> &SubjectRules {
        &self.compiled.rules
    }

    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// Rules currently in an open (pending or confirmed) episode.
    pub fn open_breaches(&self) -> Vec<(RuleRef, bool)> {
        self.episodes
            .iter()
            .filter(|e| e.end.is_none())
            .map(|e| (self.rule_ref(e.rule), e.confirmed))
            .collect()
    }

    fn rule_ref(&self, rule: usize) -> RuleRef {
        match rule {
            PERMITTED => RuleRef::Permitted,
            CURFEW => RuleRef::Curfew,
            r => RuleRef::Exclusion(self.compiled.rules.exclusions[r - FIRST_EXCLUSION].clone()),
        }
    }

    fn horizon(&self) -> i64 {
        self.last
            .map_or(self.max_now, |(last, _)| last.max(self.max_now))
    }

    /// The live window: entries not pruned.
    fn live(&self) -> impl Iterator<Item = Entry> + '_ {
        self.window.iter_from(self.lag)
    }

    /// Judges one fix; `now` is processing time (for lateness and deadlines).
    pub fn observe(&mut self, fix: Fix, now: DateTime<Utc>) -> Result<Vec<Transition>, FixError> {
        fix.validate()?;
        self.max_now = self.max_now.max(ms(now));
        let t = ms(fix.time);
        if self.base.is_none() {
            let ctx = Ctx {
                c: &self.compiled,
                zones: &self.zones,
                th: &self.thresholds,
            };
            let base = ctx.cursor(t - self.thresholds.window_seconds * 1000);
            self.floor = base.t;
            self.base = Some(Box::new(base));
        }
        let key = (t, fix.device_seq);
        // In-order fixes (the common case) need no search of the window,
        // which would touch a handful of cold cache lines across it.
        let after_last = self.last.is_none_or(|last| last < key);
        let tip_t = match &self.tip {
            Some(tip) => tip.t,
            None => self.base.as_ref().map_or(i64::MIN, |b| b.t),
        };
        // The floor may lag behind while pruning waits, but a fix after
        // the window's last is after every fix pruned too; with no live
        // fix the window is settled and the floor exact.
        if after_last && t >= tip_t && t >= self.floor {
            return Ok(self.observe_in_order(fix, t, key, now));
        }
        self.settle();
        if t < self.floor {
            self.stats.too_late += 1;
            return Ok(Vec::new());
        }
        // A replay starts from the checkpoint: bring it up to date.
        self.catch_up_checkpoint();
        let pos = if after_last {
            self.window.len()
        } else {
            self.window.partition_point(|k| k < key).0
        };
        if !after_last && self.window.key_at(pos) == Some(key) {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        self.stats.fixes += 1;
        let ctx = Ctx {
            c: &self.compiled,
            zones: &self.zones,
            th: &self.thresholds,
        };
        let horizon = t.max(self.horizon());
        let (Some(base), tip) = (self.base.as_deref(), &mut self.tip) else {
            unreachable!("the checkpoint is set above");
        };
        let tip = tip.get_or_insert_with(|| base.clone());
        let entry = ctx.judged(fix, t, &mut self.memo);
        let mut evs = Vec::new();
        self.stats.replays += 1;
        self.window.insert(pos, &entry);
        self.last = last_live(&self.window, self.lag);
        let mut cur = base.clone();
        self.window
            .replay(|e| ctx.entry(&mut cur, e, &mut evs, true));
        ctx.run_deadlines(&mut cur, horizon, &mut evs);
        let base_rules = base.rules.clone();
        *tip = cur;
        let out = self.reconcile(&base_rules, &evs, now);
        self.settle();
        Ok(out)
    }

    /// A fix after every fix in the window and not before the tip: steps
    /// the tip forward, no replay.
    fn observe_in_order(
        &mut self,
        fix: Fix,
        t: i64,
        key: (i64, u64),
        now: DateTime<Utc>,
    ) -> Vec<Transition> {
        self.stats.fixes += 1;
        let ctx = Ctx {
            c: &self.compiled,
            zones: &self.zones,
            th: &self.thresholds,
        };
        let horizon = t.max(self.horizon());
        let tip = match &mut self.tip {
            Some(tip) => tip,
            none => none.insert(
                (**self
                    .base
                    .as_ref()
                    .expect("the checkpoint is set before the tip"))
                .clone(),
            ),
        };
        let mut entry = ctx.judged(fix, t, &mut self.memo);
        let mut evs = Vec::new();
        ctx.entry(tip, &mut entry, &mut evs, true);
        let before = self.last.replace(key);
        self.window.push(&entry);
        ctx.run_deadlines(tip, horizon, &mut evs);
        let out = if evs.is_empty() {
            Vec::new()
        } else {
            // Transitions list the live fixes as evidence: the window as
            // pruned after the previous fix, plus this one.
            if let Some((newest, _)) = before {
                self.settle_to(self.window.len() - 1, newest);
            }
            self.apply_live(&evs, now)
        };
        self.unsettled += 1;
        if self.lag + self.unsettled >= PRUNE_BATCH {
            self.settle();
        }
        out
    }

    /// Advances the clock: processes deadlines (curfew starts, leave ends)
    /// up to `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Transition> {
        self.max_now = self.max_now.max(ms(now));
        let horizon = self.horizon();
        let Some(tip) = self.tip.as_mut() else {
            return Vec::new();
        };
        if tip.next_deadline.is_none_or(|(d, _)| d > horizon) {
            return Vec::new();
        }
        let ctx = Ctx {
            c: &self.compiled,
            zones: &self.zones,
            th: &self.thresholds,
        };
        let mut evs = Vec::new();
        ctx.run_deadlines(tip, horizon, &mut evs);
        if evs.is_empty() {
            return Vec::new();
        }
        self.settle();
        self.apply_live(&evs, now)
    }

    /// Prunes the window as pruning after every fix would have by now.
    fn settle(&mut self) {
        if let Some((newest, _)) = self.last {
            self.settle_to(self.window.len(), newest);
        }
    }

    /// Prunes `window[..len]` to its bounds as of a newest fix at `newest`,
    /// logically: the floor moves past the pruned fixes now, the
    /// checkpoint's state once a batch is full. Pruning after each of a
    /// run of appended fixes ends where one pruning after the last does
    /// (both bounds only move forward), so it can wait for a batch: then
    /// the fronts it reads are adjacent entries read in one sweep, where
    /// pruning every fix reads one cold entry a fix.
    fn settle_to(&mut self, len: usize, newest: i64) {
        self.unsettled = 0;
        let (max_fixes, span) = (
            self.thresholds.window_max_fixes.max(1),
            self.thresholds.window_seconds * 1000,
        );
        // Entries go while more than `max_fixes` follow them or they are
        // more than `span` older than the newest: a prefix of the window.
        let (within_span, before) = self.window.partition_point(|(t, _)| newest - t > span);
        let lag = within_span.max(len.saturating_sub(max_fixes)).min(len);
        if lag <= self.lag {
            return;
        }
        // Stepping past an entry moves the checkpoint's time to it
        // (deadlines stepped on the way are not after it); the last pruned
        // is the latest. When the checkpoint steps now, it tells that time
        // with no second read of the window.
        self.lag = lag;
        if lag >= PRUNE_BATCH {
            self.floor = self.floor.max(self.advance_checkpoint());
        } else {
            let last_pruned = if lag == within_span {
                before
            } else {
                self.window.key_at(lag - 1)
            };
            let (front, _) = last_pruned.expect("0 < lag <= len");
            self.floor = self.floor.max(front);
        }
        self.last = last_live(&self.window, self.lag);
        let floor = self.floor;
        if self.tidy_from < floor {
            self.episodes
                .retain(|e| e.end.is_none_or(|end| end >= floor));
            self.crossings.retain(|c| c.2 >= floor);
            let ends = self.episodes.iter().filter_map(|e| e.end);
            self.tidy_from = ends
                .chain(self.crossings.iter().map(|c| c.2))
                .min()
                .unwrap_or(i64::MAX);
        }
    }

    /// [`Tracker::advance_checkpoint`] where the floor is already settled.
    fn catch_up_checkpoint(&mut self) {
        let checkpoint = self.advance_checkpoint();
        debug_assert_eq!(checkpoint, self.floor, "floor tracks the checkpoint");
    }

    /// Steps the checkpoint past the logically pruned entries and drops
    /// them; returns the checkpoint's time, which the floor must be.
    fn advance_checkpoint(&mut self) -> i64 {
        let ctx = Ctx {
            c: &self.compiled,
            zones: &self.zones,
            th: &self.thresholds,
        };
        let Some(base) = self.base.as_deref_mut() else {
            return self.floor;
        };
        if self.lag == 0 {
            return base.t;
        }
        let mut discard = Vec::new();
        self.window.drain_front(self.lag, |e| {
            ctx.entry(base, e, &mut discard, false);
            discard.clear();
        });
        self.lag = 0;
        base.t
    }

    fn new_episode(&mut self, rule: usize, start: i64, confirmed: bool) -> u64 {
        let id = self.next_episode;
        self.next_episode += 1;
        self.episodes.push(Episode {
            id,
            rule,
            start,
            confirmed,
            end: None,
        });
        id
    }

    fn open_episode(&mut self, rule: usize) -> Option<&mut Episode> {
        self.episodes
            .iter_mut()
            .rev()
            .find(|e| e.rule == rule && e.end.is_none())
    }

    fn apply_live(&mut self, evs: &[Ev], now: DateTime<Utc>) -> Vec<Transition> {
        // Episodes may end and crossings be added: tidy at the next prune.
        self.tidy_from = i64::MIN;
        let mut out = Vec::new();
        for ev in evs {
            match ev.kind {
                EvKind::Step(Step::Started) => {
                    let id = self.new_episode(ev.rule, ev.t, false);
                    out.push(self.breach(
                        id,
                        ev.rule,
                        TransitionKind::BreachStarted,
                        ev.t,
                        ev.t,
                        now,
                    ));
                }
                EvKind::Step(Step::Confirmed) => {
                    let id = match self.open_episode(ev.rule) {
                        Some(ep) => {
                            ep.confirmed = true;
                            ep.id
                        }
                        None => self.new_episode(ev.rule, ev.start, true),
                    };
                    out.push(self.breach(
                        id,
                        ev.rule,
                        TransitionKind::BreachConfirmed,
                        ev.start,
                        ev.t,
                        now,
                    ));
                }
                EvKind::Step(Step::Ended { from, .. }) => {
                    if let Some(ep) = self.open_episode(ev.rule) {
                        ep.end = Some(ev.t);
                        let (id, was_confirmed) = (ep.id, ep.confirmed);
                        out.push(self.ended(id, ev.rule, was_confirmed, from, ev.t, now));
                    }
                }
                EvKind::Crossing { from } => {
                    if let Some(t) = self.crossing(ev.rule, from, ev.t, now) {
                        out.push(t);
                    }
                }
            }
        }
        out
    }

    fn crossing(
        &mut self,
        rule: usize,
        from: i64,
        to: i64,
        now: DateTime<Utc>,
    ) -> Option<Transition> {
        if self.crossings.contains(&(rule, from, to)) {
            return None;
        }
        self.crossings.push((rule, from, to));
        let id = self.next_episode;
        self.next_episode += 1;
        let evidence = self
            .live()
            .filter(|e| e.t == from || e.t == to)
            .map(|e| e.fix)
            .collect();
        Some(self.transition(
            id,
            rule,
            TransitionKind::PossibleCrossing,
            to,
            now,
            evidence,
        ))
    }

    fn reconcile(
        &mut self,
        base_rules: &[RuleState],
        evs: &[Ev],
        now: DateTime<Utc>,
    ) -> Vec<Transition> {
        self.tidy_from = i64::MIN;
        let mut rec: Vec<Recomputed> = Vec::new();
        let mut open: Vec<Option<usize>> = vec![None; base_rules.len()];
        for (rule, s) in base_rules.iter().enumerate() {
            if s.phase != Phase::Clear {
                open[rule] = Some(rec.len());
                let confirmed = matches!(s.phase, Phase::Confirmed | Phase::Returning);
                rec.push(Recomputed {
                    rule,
                    start: s.start,
                    confirmed_at: confirmed.then_some(s.start),
                    end: None,
                });
            }
        }
        let mut out = Vec::new();
        for ev in evs {
            match ev.kind {
                EvKind::Step(Step::Started) => {
                    open[ev.rule] = Some(rec.len());
                    rec.push(Recomputed {
                        rule: ev.rule,
                        start: ev.t,
                        confirmed_at: None,
                        end: None,
                    });
                }
                EvKind::Step(Step::Confirmed) => {
                    if let Some(i) = open[ev.rule] {
                        rec[i].confirmed_at = Some(ev.t);
                    }
                }
                EvKind::Step(Step::Ended { from, .. }) => {
                    if let Some(i) = open[ev.rule].take() {
                        rec[i].end = Some((from, ev.t));
                    }
                }
                EvKind::Crossing { from } => {
                    if let Some(t) = self.crossing(ev.rule, from, ev.t, now) {
                        out.push(t);
                    }
                }
            }
        }
        let mut matched = vec![false; self.episodes.len()];
        for e in &rec {
            let e_end = e.end.map_or(i64::MAX, |(_, t)| t);
            let candidate = self.episodes.iter().enumerate().rev().find(|(_, x)| {
                x.rule == e.rule
                    && x.start <= e_end
                    && e.start <= x.end.unwrap_or(i64::MAX)
                    && (e.end.is_some() || x.end.is_none())
            });
            match candidate.map(|(i, _)| i) {
                Some(i) => {
                    if i < matched.len() {
                        matched[i] = true;
                    }
                    let x = &mut self.episodes[i];
                    let id = x.id;
                    if let Some(tc) = e.confirmed_at
                        && !x.confirmed
                    {
                        x.confirmed = true;
                        out.push(self.breach(
                            id,
                            e.rule,
                            TransitionKind::BreachConfirmed,
                            e.start,
                            tc,
                            now,
                        ));
                    }
                    let x = &mut self.episodes[i];
                    if let Some((from, te)) = e.end
                        && x.end.is_none()
                    {
                        x.end = Some(te);
                        let was = x.confirmed;
                        out.push(self.ended(id, e.rule, was, from, te, now));
                    }
                }
                None => {
                    if e.confirmed_at.is_none() && e.end.is_some() {
                        continue; // a pending episode that came to nothing: no noise
                    }
                    let id = self.new_episode(e.rule, e.start, e.confirmed_at.is_some());
                    out.push(self.breach(
                        id,
                        e.rule,
                        TransitionKind::BreachStarted,
                        e.start,
                        e.start,
                        now,
                    ));
                    if let Some(tc) = e.confirmed_at {
                        out.push(self.breach(
                            id,
                            e.rule,
                            TransitionKind::BreachConfirmed,
                            e.start,
                            tc,
                            now,
                        ));
                    }
                    if let Some((from, te)) = e.end {
                        if let Some(x) = self.episodes.last_mut() {
                            x.end = Some(te);
                        }
                        out.push(self.ended(id, e.rule, true, from, te, now));
                    }
                }
            }
        }
        // Emitted open episodes the new history does not support end now.
        let last_t = self.last.map_or(ms(now), |(last, _)| last);
        for (i, was_matched) in matched.into_iter().enumerate() {
            if !was_matched && self.episodes[i].end.is_none() {
                self.episodes[i].end = Some(last_t);
                let (id, rule, was) = (
                    self.episodes[i].id,
                    self.episodes[i].rule,
                    self.episodes[i].confirmed,
                );
                out.push(self.ended(id, rule, was, last_t, last_t, now));
            }
        }
        out.sort_by_key(|t| t.event_time);
        out
    }

    fn breach(
        &self,
        id: u64,
        rule: usize,
        kind: TransitionKind,
        from: i64,
        t: i64,
        now: DateTime<Utc>,
    ) -> Transition {
        let mut evidence = self.fixes_with(rule, Verdict::Violating, from, t);
        if evidence.is_empty() {
            // Confirmed at a deadline: the evidence is the carried fix.
            evidence.extend(
                self.live()
                    .take_while(|e| e.t <= t)
                    .filter(|e| e.confident)
                    .last()
                    .map(|e| e.fix),
            );
        }
        self.transition(id, rule, kind, t, now, evidence)
    }

    fn ended(
        &self,
        id: u64,
        rule: usize,
        was_confirmed: bool,
        from: i64,
        t: i64,
        now: DateTime<Utc>,
    ) -> Transition {
        let evidence = self.fixes_with(rule, Verdict::Ok, from, t);
        self.transition(
            id,
            rule,
            TransitionKind::BreachEnded { was_confirmed },
            t,
            now,
            evidence,
        )
    }

    fn fixes_with(&self, rule: usize, v: Verdict, from: i64, to: i64) -> Vec<Fix> {
        // The whole buffer is sorted; pruned entries are never evidence.
        let start = self
            .window
            .partition_point(|(t, _)| t < from)
            .0
            .max(self.lag);
        let mut fixes: Vec<Fix> = self
            .window
            .iter_from(start)
            .take_while(|e| e.t <= to)
            .filter(|e| e.confident && e.verdicts.get(rule) == v)
            .map(|e| e.fix)
            .collect();
        if fixes.len() > MAX_EVIDENCE {
            fixes.drain(..fixes.len() - MAX_EVIDENCE);
        }
        fixes
    }

    fn transition(
        &self,
        episode: u64,
        rule: usize,
        kind: TransitionKind,
        t: i64,
        now: DateTime<Utc>,
        evidence: Vec<Fix>,
    ) -> Transition {
        Transition {
            subject: self.subject.clone(),
            episode,
            rule: self.rule_ref(rule),
            kind,
            event_time: dt(t),
            processed_at: now,
            late: ms(now) - t > self.thresholds.late_after_seconds * 1000,
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Duration};
    use proptest::prelude::*;

    use super::{PRUNE_BATCH, Pos, Tracker};
    use crate::fix::{Fix, Source};
    use crate::rules::SubjectRules;
    use crate::thresholds::Thresholds;
    use crate::zone::{Zone, ZoneId, ZoneKind};
    use crate::zone_set::ZoneSet;

    proptest! {
        /// The trigonometry-free bounds never change a reachability answer:
        /// near and far pairs, short and long gaps, slow and fast limits.
        #[test]
        fn reachable_equals_exact(
            lon in -180.0f64..180.0,
            lat in -85.0f64..85.0,
            dlon in prop_oneof![-0.01f64..0.01, -1.0f64..1.0, -200.0f64..200.0],
            dlat in prop_oneof![-0.01f64..0.01, -1.0f64..1.0, -40.0f64..40.0],
            secs in prop_oneof![0i64..5, 5i64..600, 600i64..100_000],
            r1 in 0.0f64..500.0,
            r2 in 0.0f64..500.0,
            speed in prop_oneof![Just(0.0), 0.5f64..5.0, 5.0f64..300.0],
        ) {
            let a = Pos { t: 0, lon, lat, r: r1 };
            let b = Pos {
                t: secs * 1000,
                lon: lon + dlon,
                lat: (lat + dlat).clamp(-90.0, 90.0),
                r: r2,
            };
            prop_assert_eq!(a.reachable(&b, speed), a.reachable_exact(&b, speed));
            prop_assert_eq!(b.reachable(&a, speed), b.reachable_exact(&a, speed));
        }
    }

    /// Clear cases on either side of the shortcuts answer as expected.
    #[test]
    fn clear_cases() {
        let a = Pos {
            t: 0,
            lon: 116.0,
            lat: 40.0,
            r: 10.0,
        };
        let near = Pos {
            t: 60_000,
            lon: 116.001,
            lat: 40.001,
            r: 10.0,
        };
        let far = Pos {
            t: 60_000,
            lon: 116.0,
            lat: 45.0,
            r: 10.0,
        };
        assert!(a.reachable(&near, 5.0) && a.reachable_exact(&near, 5.0));
        assert!(!a.reachable(&far, 100.0) && !a.reachable_exact(&far, 100.0));
    }

    /// A subject whose one rule is a 100 m exclusion circle at (116, 40).
    fn exclusion_tracker(th: Thresholds) -> Tracker {
        let zones = Arc::new(
            ZoneSet::build(vec![Zone::circle(
                "x",
                ZoneKind::Exclusion,
                116.0,
                40.0,
                100.0,
            )])
            .0,
        );
        let rules = SubjectRules {
            exclusions: vec![ZoneId::new("x")],
            ..SubjectRules::default()
        };
        Tracker::new("s".into(), rules, zones, Arc::new(th)).expect("rules resolve")
    }

    /// Nine hours at one fix a minute with the default 6 h window, as the
    /// wire carries fixes (1e-7°, accuracy in decimetres): a walk with GNSS
    /// noise. The full window holds 6 h of fixes plus up to a batch pruned
    /// only logically, in at most 12 bytes an entry all told (block
    /// headers and the growing last block included), where a plain entry
    /// is 64.
    #[test]
    fn a_full_window_takes_about_ten_bytes_a_fix() {
        let mut t = exclusion_tracker(Thresholds::default());
        let t0 = DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
            .expect("time")
            .to_utc();
        let (mut most, mut bytes) = (0, 0);
        for m in 0..9 * 60 {
            // About 1 km around home, a few metres of noise, 3–25 m
            // accuracy; every tenth fix by cell (300 m).
            let a = m as f64 * 0.05;
            let noise = ((m * 7919) % 101) as f64 - 50.0;
            let e7 = |deg: f64| (deg * 1e7).round() / 1e7;
            let cell = m % 10 == 0;
            let fix = Fix {
                time: t0 + Duration::minutes(m) + Duration::milliseconds((m * 37) % 1000),
                lon: e7(116.02 + 0.006 * a.cos() + noise * 4e-7),
                lat: e7(39.95 + 0.004 * a.sin() - noise * 3e-7),
                accuracy_m: if cell {
                    300.0
                } else {
                    f64::from((30 + (m * 13) % 220) as u16 as f32 / 10.0)
                },
                source: if cell { Source::Cell } else { Source::Gnss },
                device_seq: m as u64,
            };
            t.observe(fix, fix.time).expect("valid fix");
            if t.window.len() > most {
                (most, bytes) = (t.window.len(), t.window.heap_bytes());
            }
        }
        assert!((361..=361 + PRUNE_BATCH).contains(&most), "{most}");
        assert!(bytes <= 12 * most, "{bytes} bytes for {most} entries");
    }

    /// Episodes and possible crossings older than the window are dropped
    /// as the window slides: a subject who keeps entering and leaving a
    /// zone for a day holds only the last hour's, not every one since.
    #[test]
    fn old_episodes_and_crossings_are_dropped_as_the_window_slides() {
        use crate::transition::TransitionKind;
        let mut t = exclusion_tracker(Thresholds {
            window_seconds: 3600,
            ..Thresholds::default()
        });
        let t0 = DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
            .expect("time")
            .to_utc();
        let (mut confirmed, mut crossings, mut seq) = (0, 0, 0u64);
        let mut observe = |t: &mut Tracker, m: i64, lon: f64| {
            seq += 1;
            let fix = Fix {
                time: t0 + Duration::minutes(m),
                lon,
                lat: 40.0,
                accuracy_m: 10.0,
                source: Source::Gnss,
                device_seq: seq,
            };
            for tr in t.observe(fix, fix.time).expect("valid fix") {
                confirmed += usize::from(tr.kind == TransitionKind::BreachConfirmed);
                crossings += usize::from(tr.kind == TransitionKind::PossibleCrossing);
            }
        };
        // Each 40-minute cycle: 15 minutes inside the zone, 15 west of it,
        // then a 10-minute gap to a fix east of it (a possible crossing).
        for cycle in 0..36 {
            let m0 = cycle * 40;
            for m in 0..15 {
                observe(&mut t, m0 + m, 116.0);
            }
            for m in 15..30 {
                observe(&mut t, m0 + m, 115.99);
            }
            observe(&mut t, m0 + 39, 116.01);
        }
        assert!(confirmed >= 30, "{confirmed} breaches confirmed");
        assert!(crossings >= 30, "{crossings} possible crossings");
        // One hour holds at most two cycles' worth (plus a pruned batch).
        assert!(t.episodes.len() <= 3, "{} episodes kept", t.episodes.len());
        assert!(
            t.crossings.len() <= 3,
            "{} crossings kept",
            t.crossings.len()
        );
    }
}
