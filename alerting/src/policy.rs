//! Thresholds and escalation policy, with the documented defaults.
//!
//! Every number the engine uses to decide lives here so that engineers can
//! replay traces against a changed policy before changing production.
//!
//! # Default table
//!
//! | what                                   | strict (严管) | normal (普管) | lenient (宽管) |
//! |----------------------------------------|---------------|---------------|----------------|
//! | lost contact after expected interval × | 5             | 10            | 15             |
//! | ack timeout, critical                  | 5 min         | 5 min         | 10 min         |
//! | ack timeout, high                      | 10 min        | 15 min        | 30 min         |
//! | ack timeout, medium                    | 30 min        | 60 min        | 120 min        |
//! | ack timeout, low                       | never         | never         | never          |
//! | exit → abscondment after               | 30 min        | 60 min        | 120 min        |
//! | lost contact → abscondment after       | 60 min        | 120 min       | 240 min        |
//! | no GNSS fix while heartbeating after   | 30 min        | 60 min        | 120 min        |
//!
//! Level-independent defaults: separation margin 50 m sustained 5 min with
//! bracelet and phone reports at most 2 min apart; low battery at ≤ 15 %,
//! cleared at ≥ 25 %; search radius = elapsed × 80 km/h plus the last fix's
//! accuracy, at least 500 m and at most 300 km; incidents are late when their
//! event time is more than 2 min before arrival.

use serde::{Deserialize, Serialize};

use crate::incident::Severity;

/// Supervision level (严管/普管/宽管).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisionLevel {
    /// 严管.
    Strict,
    /// 普管.
    Normal,
    /// 宽管.
    Lenient,
}

/// A value per supervision level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerLevel<T> {
    /// For strict supervision.
    pub strict: T,
    /// For normal supervision.
    pub normal: T,
    /// For lenient supervision.
    pub lenient: T,
}

impl<T: Copy> PerLevel<T> {
    /// The value for `level`.
    pub fn get(&self, level: SupervisionLevel) -> T {
        match level {
            SupervisionLevel::Strict => self.strict,
            SupervisionLevel::Normal => self.normal,
            SupervisionLevel::Lenient => self.lenient,
        }
    }
}

/// Acknowledgement timeouts per severity; `None` means the severity never
/// escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckTimeouts {
    /// Critical incidents (abscondment).
    pub critical_ms: PerLevel<Option<i64>>,
    /// High severity incidents.
    pub high_ms: PerLevel<Option<i64>>,
    /// Medium severity incidents.
    pub medium_ms: PerLevel<Option<i64>>,
    /// Low severity incidents.
    pub low_ms: PerLevel<Option<i64>>,
}

const MIN: i64 = 60_000;

/// The whole decision policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Lost contact when silent longer than expected interval × this factor.
    pub lost_contact_factor: PerLevel<u32>,
    /// Unacknowledged for this long → escalate one office up, repeatedly.
    pub ack_timeout: AckTimeouts,
    /// An unacknowledged zone exit this long after it was detected becomes
    /// abscondment.
    pub abscond_after_exit_ms: PerLevel<i64>,
    /// A lost contact this long after its deadline becomes abscondment
    /// (acknowledged or not: an officer who cannot reach the subject does
    /// not stop it; a resolution does).
    pub abscond_after_lost_contact_ms: PerLevel<i64>,
    /// Heartbeats without any GNSS fix for this long open a no-fix incident.
    pub no_fix_after_ms: PerLevel<i64>,
    /// Extra distance beyond both accuracies before bracelet and phone count
    /// as separated, metres.
    pub separation_margin_m: f64,
    /// Separation must last this long before it is an incident.
    pub separation_sustain_ms: i64,
    /// Bracelet and phone positions further apart in time than this are not
    /// compared.
    pub separation_pair_window_ms: i64,
    /// Battery at or below this opens a low-battery incident, percent.
    pub low_battery_pct: u8,
    /// Battery at or above this clears it, percent (hysteresis).
    pub battery_ok_pct: u8,
    /// Plausible speed of an absconding subject for the search radius, m/s.
    pub search_speed_mps: f64,
    /// Smallest search radius, metres.
    pub search_radius_min_m: f64,
    /// Largest search radius, metres.
    pub search_radius_max_m: f64,
    /// Evidence older than this at arrival marks an incident late.
    pub late_after_ms: i64,
    /// Cleared incidents stay in engine memory this long so late evidence
    /// can attach to them; older ones live only in the database.
    pub closed_retention_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        fn lvl<T>(strict: T, normal: T, lenient: T) -> PerLevel<T> {
            PerLevel {
                strict,
                normal,
                lenient,
            }
        }
        Self {
            // Messages get lost (3 % is common on cellular links): with
            // one device, five consecutive losses are needed for a false
            // lost contact, about 2e-8 per interval. The day-in-the-life
            // test holds this to the alert budget.
            lost_contact_factor: lvl(5, 10, 15),
            ack_timeout: AckTimeouts {
                critical_ms: lvl(Some(5 * MIN), Some(5 * MIN), Some(10 * MIN)),
                high_ms: lvl(Some(10 * MIN), Some(15 * MIN), Some(30 * MIN)),
                medium_ms: lvl(Some(30 * MIN), Some(60 * MIN), Some(120 * MIN)),
                low_ms: lvl(None, None, None),
            },
            abscond_after_exit_ms: lvl(30 * MIN, 60 * MIN, 120 * MIN),
            abscond_after_lost_contact_ms: lvl(60 * MIN, 120 * MIN, 240 * MIN),
            no_fix_after_ms: lvl(30 * MIN, 60 * MIN, 120 * MIN),
            separation_margin_m: 50.0,
            separation_sustain_ms: 5 * MIN,
            separation_pair_window_ms: 2 * MIN,
            low_battery_pct: 15,
            battery_ok_pct: 25,
            search_speed_mps: 80_000.0 / 3600.0,
            search_radius_min_m: 500.0,
            search_radius_max_m: 300_000.0,
            late_after_ms: 2 * MIN,
            closed_retention_ms: 24 * 60 * MIN,
        }
    }
}

impl Policy {
    /// How long an incident of `severity` may stay unacknowledged under
    /// `level` before it escalates; `None` = never.
    pub fn ack_timeout_ms(&self, severity: Severity, level: SupervisionLevel) -> Option<i64> {
        let t = match severity {
            Severity::Critical => self.ack_timeout.critical_ms,
            Severity::High => self.ack_timeout.high_ms,
            Severity::Medium => self.ack_timeout.medium_ms,
            Severity::Low => self.ack_timeout.low_ms,
        };
        t.get(level).map(|ms| ms.max(1))
    }

    /// Silence after which a subject with `expected_interval_ms` is lost.
    pub fn lost_contact_after_ms(&self, expected_interval_ms: i64, level: SupervisionLevel) -> i64 {
        expected_interval_ms
            .max(1)
            .saturating_mul(i64::from(self.lost_contact_factor.get(level).max(1)))
    }

    /// Radius in metres to search for a subject last seen `elapsed_ms` ago
    /// with a fix of `accuracy_m`.
    pub fn search_radius_m(&self, elapsed_ms: i64, accuracy_m: f64) -> f64 {
        let travelled = (elapsed_ms.max(0) as f64 / 1000.0) * self.search_speed_mps;
        let acc = if accuracy_m.is_finite() {
            accuracy_m.max(0.0)
        } else {
            0.0
        };
        (travelled + acc).clamp(self.search_radius_min_m, self.search_radius_max_m)
    }

    /// Checks the policy for values that would make the engine misbehave.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let positive = |v: i64, field: &'static str| {
            if v > 0 {
                Ok(())
            } else {
                Err(PolicyError::NotPositive { field })
            }
        };
        for level in [
            SupervisionLevel::Strict,
            SupervisionLevel::Normal,
            SupervisionLevel::Lenient,
        ] {
            positive(
                self.abscond_after_exit_ms.get(level),
                "abscond_after_exit_ms",
            )?;
            positive(
                self.abscond_after_lost_contact_ms.get(level),
                "abscond_after_lost_contact_ms",
            )?;
            positive(self.no_fix_after_ms.get(level), "no_fix_after_ms")?;
            positive(
                i64::from(self.lost_contact_factor.get(level)),
                "lost_contact_factor",
            )?;
        }
        if self.separation_sustain_ms < 0 {
            return Err(PolicyError::NotPositive {
                field: "separation_sustain_ms",
            });
        }
        positive(self.separation_pair_window_ms, "separation_pair_window_ms")?;
        positive(self.closed_retention_ms, "closed_retention_ms")?;
        if self.battery_ok_pct <= self.low_battery_pct {
            return Err(PolicyError::BatteryHysteresis);
        }
        let finite = |v: f64, field: &'static str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(PolicyError::NotFinite { field })
            }
        };
        finite(self.separation_margin_m, "separation_margin_m")?;
        finite(self.search_speed_mps, "search_speed_mps")?;
        finite(self.search_radius_min_m, "search_radius_min_m")?;
        finite(self.search_radius_max_m, "search_radius_max_m")?;
        if self.search_radius_max_m < self.search_radius_min_m {
            return Err(PolicyError::SearchRadiusRange);
        }
        Ok(())
    }
}

/// A policy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A duration or factor is zero or negative.
    #[error("policy field {field} must be positive")]
    NotPositive {
        /// The offending field.
        field: &'static str,
    },
    /// A distance or speed is negative, infinite or NaN.
    #[error("policy field {field} must be a finite non-negative number")]
    NotFinite {
        /// The offending field.
        field: &'static str,
    },
    /// `battery_ok_pct` must exceed `low_battery_pct`.
    #[error("battery_ok_pct must be greater than low_battery_pct")]
    BatteryHysteresis,
    /// `search_radius_max_m` below `search_radius_min_m`.
    #[error("search_radius_max_m must not be below search_radius_min_m")]
    SearchRadiusRange,
}

impl PolicyError {
    /// Stable reason code for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotPositive { .. } => "not_positive",
            Self::NotFinite { .. } => "not_finite",
            Self::BatteryHysteresis => "battery_hysteresis",
            Self::SearchRadiusRange => "search_radius_range",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid_and_round_trips() {
        let p = Policy::default();
        p.validate().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
    }

    #[test]
    fn search_radius_grows_with_time_and_is_capped() {
        let p = Policy::default();
        assert_eq!(p.search_radius_m(0, 10.0), 500.0);
        let one_hour = p.search_radius_m(3_600_000, 0.0);
        assert!((one_hour - 80_000.0).abs() < 1.0, "{one_hour}");
        assert_eq!(p.search_radius_m(i64::MAX, 0.0), 300_000.0);
    }

    #[test]
    fn low_severity_never_escalates_by_default() {
        let p = Policy::default();
        assert_eq!(
            p.ack_timeout_ms(Severity::Low, SupervisionLevel::Strict),
            None
        );
        assert_eq!(
            p.ack_timeout_ms(Severity::High, SupervisionLevel::Normal),
            Some(15 * MIN)
        );
    }
}
