//! Confirmation thresholds: how much evidence makes a breach, per
//! supervision level and rule kind. Defaults are documented on
//! [`Thresholds::default`]; every field can be overridden from config.

use serde::{Deserialize, Serialize};

use crate::fix::Source;

/// Supervision level (严管 / 普管 / 宽管).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SupervisionLevel {
    Strict,
    #[default]
    Normal,
    Lenient,
}

/// Kind of rule; thresholds differ per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Must be inside one of the permitted zones.
    Permitted,
    /// Must be outside an exclusion zone.
    Exclusion,
    /// Must be inside the home zone during a curfew window.
    Curfew,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permitted => "permitted",
            Self::Exclusion => "exclusion",
            Self::Curfew => "curfew",
        }
    }
}

/// Evidence needed to confirm and to end a breach of one rule kind.
///
/// A breach is confirmed once `confirm_fixes` confident violating fixes have
/// been seen spanning at least `confirm_seconds`; it ends once
/// `return_fixes` confident compliant fixes span at least `return_seconds`
/// without a violating fix in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleThresholds {
    pub confirm_fixes: u32,
    pub confirm_seconds: i64,
    pub return_fixes: u32,
    pub return_seconds: i64,
}

/// Thresholds of one supervision level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelThresholds {
    pub permitted: RuleThresholds,
    pub exclusion: RuleThresholds,
    pub curfew: RuleThresholds,
}

impl LevelThresholds {
    pub fn rule(&self, kind: RuleKind) -> &RuleThresholds {
        match kind {
            RuleKind::Permitted => &self.permitted,
            RuleKind::Exclusion => &self.exclusion,
            RuleKind::Curfew => &self.curfew,
        }
    }
}

/// Smallest accuracy radius believed per source: devices sometimes report a
/// falsely tight accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinAccuracy {
    pub gnss_m: f64,
    pub wifi_m: f64,
    pub cell_m: f64,
    pub fused_m: f64,
}

impl MinAccuracy {
    pub fn for_source(&self, s: Source) -> f64 {
        match s {
            Source::Gnss => self.gnss_m,
            Source::Wifi => self.wifi_m,
            Source::Cell => self.cell_m,
            Source::Fused => self.fused_m,
        }
    }
}

/// The whole thresholds table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    pub strict: LevelThresholds,
    pub normal: LevelThresholds,
    pub lenient: LevelThresholds,
    pub min_accuracy: MinAccuracy,
    /// Faster than this between two fixes (after subtracting both accuracy
    /// radii) is an implausible jump.
    pub max_speed_mps: f64,
    /// Consecutive fixes at least this far apart in time whose straight
    /// segment meets an exclusion zone give a possible crossing.
    pub possible_crossing_min_gap_seconds: i64,
    /// After a curfew starts or a leave ends, the subject has this long to
    /// comply before the last known position is judged.
    pub deadline_grace_seconds: i64,
    /// The last fix is carried to a deadline only if it is at most this old.
    pub deadline_max_fix_age_seconds: i64,
    /// A transition whose event time is this much older than processing
    /// time is marked late.
    pub late_after_seconds: i64,
    /// Per-subject window of judged fixes kept for late data: its time span.
    pub window_seconds: i64,
    /// ... and its maximum number of fixes.
    pub window_max_fixes: usize,
}

const fn rt(
    confirm_fixes: u32,
    confirm_seconds: i64,
    return_fixes: u32,
    return_seconds: i64,
) -> RuleThresholds {
    RuleThresholds {
        confirm_fixes,
        confirm_seconds,
        return_fixes,
        return_seconds,
    }
}

impl Default for Thresholds {
    /// | level   | permitted (fixes/s) | exclusion | curfew | return (all) |
    /// |---------|---------------------|-----------|--------|--------------|
    /// | strict  | 2 / 60              | 2 / 10    | 2 / 60 | 3 / 60       |
    /// | normal  | 3 / 120             | 2 / 30    | 3 / 120| 3 / 120      |
    /// | lenient | 5 / 300             | 3 / 60    | 4 / 300| 3 / 180      |
    ///
    /// Accuracy floors: GNSS 5 m, fused 10 m, Wi-Fi 50 m, cell 200 m.
    /// Max speed 100 m/s (a high-speed train is ~97 m/s). Possible crossing
    /// gap 60 s, deadline grace 0 s, carried fix age ≤ 30 min, late after
    /// 5 min, window 6 h or 512 fixes (about 6 KiB per subject when full at
    /// 1e-7° coordinates; see `window`).
    fn default() -> Self {
        Self {
            strict: LevelThresholds {
                permitted: rt(2, 60, 3, 60),
                exclusion: rt(2, 10, 3, 60),
                curfew: rt(2, 60, 3, 60),
            },
            normal: LevelThresholds {
                permitted: rt(3, 120, 3, 120),
                exclusion: rt(2, 30, 3, 120),
                curfew: rt(3, 120, 3, 120),
            },
            lenient: LevelThresholds {
                permitted: rt(5, 300, 3, 180),
                exclusion: rt(3, 60, 3, 180),
                curfew: rt(4, 300, 3, 180),
            },
            min_accuracy: MinAccuracy {
                gnss_m: 5.0,
                wifi_m: 50.0,
                cell_m: 200.0,
                fused_m: 10.0,
            },
            max_speed_mps: 100.0,
            possible_crossing_min_gap_seconds: 60,
            deadline_grace_seconds: 0,
            deadline_max_fix_age_seconds: 1800,
            late_after_seconds: 300,
            window_seconds: 6 * 3600,
            window_max_fixes: 512,
        }
    }
}

impl Thresholds {
    pub fn level(&self, level: SupervisionLevel) -> &LevelThresholds {
        match level {
            SupervisionLevel::Strict => &self.strict,
            SupervisionLevel::Normal => &self.normal,
            SupervisionLevel::Lenient => &self.lenient,
        }
    }
}
