//! The per-rule breach state machine (hysteresis).
//!
//! `Clear → Pending` on a confident violating fix; `Pending → Confirmed`
//! after enough confident violating fixes over enough time (or at once on a
//! missed deadline); `Confirmed → Returning` on a confident compliant fix;
//! `Returning → Clear` after a sustained return. Uncertain and
//! low-confidence fixes never advance a breach; any violating fix (even
//! low-confidence) sends `Returning` back to `Confirmed`, so weak evidence
//! can keep a confirmed breach open but never create one.

use crate::judge::Verdict;
use crate::thresholds::RuleThresholds;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    #[default]
    Clear,
    Pending,
    Confirmed,
    Returning,
}

/// State of one rule; `Copy` so checkpoints are cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RuleState {
    pub(crate) phase: Phase,
    /// Time of the episode's first violating observation (ms).
    pub(crate) start: i64,
    /// Observations counted in the current phase.
    count: u32,
    /// Time of the first counted observation of the current phase (ms).
    first: i64,
}

/// One observation of one rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obs {
    pub(crate) t: i64,
    pub(crate) verdict: Verdict,
    pub(crate) confident: bool,
    /// Carried to a deadline: confirms at once when violating.
    pub(crate) deadline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Started,
    Confirmed,
    /// `from` is when the return (or the deactivation) began.
    Ended {
        confirmed: bool,
        from: i64,
    },
}

impl RuleState {
    /// Applies one observation; calls `emit` for each resulting step.
    pub(crate) fn apply(&mut self, o: Obs, th: &RuleThresholds, mut emit: impl FnMut(Step, i64)) {
        let violating = o.verdict == Verdict::Violating;
        let strong_violation = violating && o.confident;
        let strong_ok = o.verdict == Verdict::Ok && o.confident;
        let inactive = o.verdict == Verdict::Inactive;
        match self.phase {
            Phase::Clear => {
                if strong_violation {
                    *self = Self {
                        phase: Phase::Pending,
                        start: o.t,
                        count: 1,
                        first: o.t,
                    };
                    emit(Step::Started, o.t);
                    self.maybe_confirm(o, th, &mut emit);
                }
            }
            Phase::Pending => {
                if strong_violation {
                    self.count += 1;
                    self.maybe_confirm(o, th, &mut emit);
                } else if strong_ok || inactive {
                    self.phase = Phase::Clear;
                    emit(
                        Step::Ended {
                            confirmed: false,
                            from: o.t,
                        },
                        o.t,
                    );
                }
            }
            Phase::Confirmed => {
                if inactive {
                    self.phase = Phase::Clear;
                    emit(
                        Step::Ended {
                            confirmed: true,
                            from: o.t,
                        },
                        o.t,
                    );
                } else if strong_ok {
                    self.phase = Phase::Returning;
                    self.count = 1;
                    self.first = o.t;
                    self.maybe_end(o, th, &mut emit);
                }
            }
            Phase::Returning => {
                if violating {
                    self.phase = Phase::Confirmed;
                } else if inactive {
                    self.phase = Phase::Clear;
                    emit(
                        Step::Ended {
                            confirmed: true,
                            from: o.t,
                        },
                        o.t,
                    );
                } else if strong_ok {
                    self.count += 1;
                    self.maybe_end(o, th, &mut emit);
                }
            }
        }
    }

    fn maybe_confirm(&mut self, o: Obs, th: &RuleThresholds, emit: &mut impl FnMut(Step, i64)) {
        let enough =
            self.count >= th.confirm_fixes && o.t - self.first >= th.confirm_seconds * 1000;
        if o.deadline || enough {
            self.phase = Phase::Confirmed;
            emit(Step::Confirmed, o.t);
        }
    }

    fn maybe_end(&mut self, o: Obs, th: &RuleThresholds, emit: &mut impl FnMut(Step, i64)) {
        if self.count >= th.return_fixes && o.t - self.first >= th.return_seconds * 1000 {
            self.phase = Phase::Clear;
            emit(
                Step::Ended {
                    confirmed: true,
                    from: self.first,
                },
                o.t,
            );
        }
    }
}
