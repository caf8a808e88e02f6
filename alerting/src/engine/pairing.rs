//! Bracelet–phone pairing for separation: each device's recent positions,
//! and the run of "apart" comparisons that must last the sustain time.
//!
//! The two devices use independent connections, so one device's messages
//! can arrive minutes of device time behind the other's (a slow link,
//! store-and-forward). Comparing only the two latest positions then pairs a
//! fix with whatever the other device said last, skips the comparisons that
//! would have shown the devices together, and lets two unrelated GPS
//! outliers minutes apart look like one sustained separation. So each
//! arriving fix is compared with the other device's fix nearest to it in
//! device time, and a comparison that shows them together at or after the
//! start of an apart run ends the run, whatever order they arrived in.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::geo::haversine_m;
use crate::ids::DeviceId;
use crate::signal::{DeviceKind, EvidenceFix, Position};
use crate::time::Timestamp;

/// Positions kept per device: at a one-minute cadence, eight minutes of
/// lag between the two devices still pair every fix.
const KEPT: usize = 8;

/// What one device said lately, oldest first. The device id is kept once,
/// not per fix, so pairing allocates nothing per message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Trail {
    device: DeviceId,
    fixes: VecDeque<(Timestamp, Position)>,
}

impl Trail {
    /// Puts a fix in device-time order; false when it is older than
    /// everything kept in a full trail (too late to pair) or a duplicate.
    fn insert(&mut self, at: Timestamp, p: Position) -> bool {
        let i = self.fixes.partition_point(|(t, _)| *t < at);
        if self.fixes.get(i).is_some_and(|(t, _)| *t == at) {
            return false;
        }
        if self.fixes.len() == KEPT {
            if i == 0 {
                return false;
            }
            self.fixes.pop_front();
            self.fixes.insert(i - 1, (at, p));
        } else {
            self.fixes.insert(i, (at, p));
        }
        true
    }

    /// The fix nearest to `at` in device time, within `window` ms.
    fn nearest(&self, at: Timestamp, window: i64) -> Option<(Timestamp, Position)> {
        self.fixes
            .iter()
            .copied()
            .min_by_key(|(t, _)| t.since(at).abs())
            .filter(|(t, _)| t.since(at).abs() <= window)
    }

    fn evidence(&self, (at, position): (Timestamp, Position)) -> EvidenceFix {
        EvidenceFix {
            device: self.device.clone(),
            at,
            position,
        }
    }
}

/// One subject's bracelet and phone trails and the current apart run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Pairing {
    bracelet: Option<Trail>,
    phone: Option<Trail>,
    /// Device time of the first comparison of the current apart run.
    apart_since: Option<Timestamp>,
    /// Device time of the latest comparison that found them apart.
    last_apart: Option<Timestamp>,
    /// Device time of the latest comparison that found them together.
    last_together: Option<Timestamp>,
}

/// The outcome of pairing one fix.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Compared {
    /// Nothing to compare with within the window (or a duplicate, or a fix
    /// too late to pair, or an apart comparison older than a together one).
    Nothing,
    /// Apart beyond both accuracies plus the margin, in a run that began
    /// at `since` and reaches `at`; `evidence` is the pair (bracelet first).
    Apart {
        since: Timestamp,
        at: Timestamp,
        evidence: [EvidenceFix; 2],
    },
    /// Together at `at`; `latest` when no later comparison found them apart.
    Together { at: Timestamp, latest: bool },
}

/// Pairing thresholds from the policy.
#[derive(Debug, Clone, Copy)]
pub(super) struct PairRule {
    /// Largest device-time difference of a comparable pair, ms.
    pub window_ms: i64,
    /// Distance beyond both accuracies that counts as apart, metres.
    pub margin_m: f64,
}

impl Pairing {
    /// Records a fix of `kind` and compares it with the other device.
    pub(super) fn add(
        &mut self,
        kind: DeviceKind,
        device: &DeviceId,
        at: Timestamp,
        p: Position,
        rule: PairRule,
    ) -> Compared {
        let (own, other) = match kind {
            DeviceKind::Bracelet => (&mut self.bracelet, &self.phone),
            DeviceKind::Phone => (&mut self.phone, &self.bracelet),
        };
        // A replaced device starts a fresh trail.
        let trail = match own {
            Some(t) if &t.device == device => t,
            _ => own.insert(Trail {
                device: device.clone(),
                fixes: VecDeque::new(),
            }),
        };
        if !trail.insert(at, p) {
            return Compared::Nothing;
        }
        let Some(other) = other else {
            return Compared::Nothing;
        };
        let Some(paired) = other.nearest(at, rule.window_ms) else {
            return Compared::Nothing;
        };
        let (mine, theirs) = (trail.evidence((at, p)), other.evidence(paired));
        let t = at.max(paired.0);
        let d = haversine_m(p.lat, p.lon, paired.1.lat, paired.1.lon);
        if d > p.accuracy_m + paired.1.accuracy_m + rule.margin_m {
            if self.last_together.is_some_and(|g| t < g) {
                return Compared::Nothing;
            }
            let since = self.apart_since.map_or(t, |s| s.min(t));
            self.apart_since = Some(since);
            self.last_apart = self.last_apart.max(Some(t));
            let evidence = match kind {
                DeviceKind::Bracelet => [mine, theirs],
                DeviceKind::Phone => [theirs, mine],
            };
            Compared::Apart {
                since,
                at: t,
                evidence,
            }
        } else {
            if self.apart_since.is_some_and(|s| t >= s) {
                self.apart_since = None;
            }
            self.last_together = self.last_together.max(Some(t));
            Compared::Together {
                at: t,
                latest: self.last_apart.is_none_or(|a| t >= a),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const RULE: PairRule = PairRule {
        window_ms: 2 * MIN,
        margin_m: 50.0,
    };

    /// A position `north_m` metres north of a fixed home.
    fn p(north_m: f64, accuracy_m: f64) -> Position {
        Position {
            lat: 30.0 + north_m / 111_195.0,
            lon: 120.0,
            accuracy_m,
        }
    }

    /// Feeds one device's fix at `minute`; bracelets are accurate to 10 m,
    /// phones to 5 m.
    fn add(pairing: &mut Pairing, kind: DeviceKind, minute: i64, north_m: f64) -> Compared {
        let (device, accuracy_m) = match kind {
            DeviceKind::Bracelet => ("b", 10.0),
            DeviceKind::Phone => ("p", 5.0),
        };
        let at = Timestamp(minute * MIN);
        pairing.add(
            kind,
            &DeviceId::new(device),
            at,
            p(north_m, accuracy_m),
            RULE,
        )
    }

    fn bracelet(pairing: &mut Pairing, minute: i64, north_m: f64) -> Compared {
        add(pairing, DeviceKind::Bracelet, minute, north_m)
    }

    fn phone(pairing: &mut Pairing, minute: i64, north_m: f64) -> Compared {
        add(pairing, DeviceKind::Phone, minute, north_m)
    }

    fn apart_since(c: &Compared) -> Option<i64> {
        match c {
            Compared::Apart { since, .. } => Some(since.0 / MIN),
            _ => None,
        }
    }

    fn together(minute: i64, latest: bool) -> Compared {
        Compared::Together {
            at: Timestamp(minute * MIN),
            latest,
        }
    }

    #[test]
    fn a_lagging_phone_pairs_with_the_bracelet_fix_of_its_own_time() {
        let mut pairing = Pairing::default();
        // The bracelet reports minutes 0..=5 first, at home.
        for m in 0..=5 {
            bracelet(&mut pairing, m, 0.0);
        }
        // The phone's minute-1 fix, arriving late, is an outlier 300 m off:
        // apart from the bracelet's minute-1 fix, not from minute 5.
        let c = phone(&mut pairing, 1, 300.0);
        let Compared::Apart {
            since,
            at,
            evidence,
        } = c
        else {
            panic!("{c:?}")
        };
        assert_eq!((since, at), (Timestamp(MIN), Timestamp(MIN)));
        assert_eq!(evidence[0].device, DeviceId::new("b"));
        assert_eq!(evidence[1].at, Timestamp(MIN));
        // Its minute-2 fix is home again: the run ends.
        assert_eq!(phone(&mut pairing, 2, 0.0), together(2, true));
        // Another outlier at minute 5 starts a new run, not one from minute 1.
        assert_eq!(apart_since(&phone(&mut pairing, 5, 300.0)), Some(5));
    }

    #[test]
    fn a_late_together_comparison_ends_the_run_but_is_not_the_latest_word() {
        let mut pairing = Pairing::default();
        for m in 0..=2 {
            bracelet(&mut pairing, m, 0.0);
        }
        assert_eq!(apart_since(&phone(&mut pairing, 2, 900.0)), Some(2));
        assert_eq!(phone(&mut pairing, 1, 0.0), together(1, false));
        // The run began at minute 2, after that together comparison, so
        // it goes on.
        assert_eq!(apart_since(&bracelet(&mut pairing, 3, 0.0)), Some(2));
    }

    #[test]
    fn nothing_to_pair_outside_the_window_and_duplicates_change_nothing() {
        let mut pairing = Pairing::default();
        bracelet(&mut pairing, 0, 0.0);
        assert_eq!(phone(&mut pairing, 3, 900.0), Compared::Nothing);
        assert_eq!(apart_since(&bracelet(&mut pairing, 3, 0.0)), Some(3));
        let before = pairing.clone();
        assert_eq!(bracelet(&mut pairing, 3, 0.0), Compared::Nothing);
        assert_eq!(pairing, before);
    }

    #[test]
    fn a_trail_keeps_the_newest_fixes_in_order() {
        let mut trail = Trail {
            device: DeviceId::new("b"),
            fixes: VecDeque::new(),
        };
        for m in [5, 1, 9, 3, 7, 2, 8, 4, 6, 0, 10] {
            trail.insert(Timestamp(m * MIN), p(0.0, 1.0));
        }
        let kept: Vec<i64> = trail.fixes.iter().map(|(t, _)| t.0 / MIN).collect();
        assert_eq!(kept, [3, 4, 5, 6, 7, 8, 9, 10]);
        assert!(
            !trail.insert(Timestamp(0), p(0.0, 1.0)),
            "older than all kept"
        );
    }
}
