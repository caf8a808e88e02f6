//! Time control: when, in wall time, a plan's send is due.

use std::time::Duration;

use thiserror::Error;

/// How plan time maps to wall time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Plan time runs `factor` times faster than wall time (1 = real time,
    /// 3600 = an hour a second).
    Speed(f64),
    /// No waiting: publish in plan order as fast as the wire accepts. Each
    /// device's order still holds because a device's sends go out in plan
    /// order on one connection.
    AsFastAsPossible,
}

/// `--speed` value that is not a positive number or `max`.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("bad speed {0:?}: want a positive factor (1, 10, 3600) or \"max\"")]
pub struct BadSpeed(pub String);

impl BadSpeed {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        "bad_speed"
    }
}

impl Pacing {
    /// Real time.
    pub const REAL_TIME: Pacing = Pacing::Speed(1.0);

    /// Parses `1`, `10`, `x3600`, `3600x` or `max`.
    pub fn parse(text: &str) -> Result<Self, BadSpeed> {
        let t = text.trim().to_ascii_lowercase();
        if t == "max" || t == "afap" {
            return Ok(Self::AsFastAsPossible);
        }
        let n = t
            .trim_start_matches(['x', '×'])
            .trim_end_matches(['x', '×']);
        match n.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Self::Speed(f)),
            _ => Err(BadSpeed(text.to_string())),
        }
    }

    /// How long after the run started a send at plan time `at_ms` is due,
    /// given the plan's first send at `start_ms`; `None` means "now".
    pub fn due_after(&self, start_ms: i64, at_ms: i64) -> Option<Duration> {
        match *self {
            Self::AsFastAsPossible => None,
            Self::Speed(f) => {
                let plan_ms = at_ms.saturating_sub(start_ms).max(0) as f64;
                Some(Duration::from_secs_f64(plan_ms / f / 1000.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_factors_and_max() {
        assert_eq!(Pacing::parse("1"), Ok(Pacing::REAL_TIME));
        assert_eq!(Pacing::parse("x10"), Ok(Pacing::Speed(10.0)));
        assert_eq!(Pacing::parse("3600x"), Ok(Pacing::Speed(3600.0)));
        assert_eq!(Pacing::parse("max"), Ok(Pacing::AsFastAsPossible));
        for bad in ["0", "-2", "fast", "inf", "NaN", ""] {
            assert_eq!(
                Pacing::parse(bad).unwrap_err().reason(),
                "bad_speed",
                "{bad}"
            );
        }
    }

    #[test]
    fn maps_plan_time_to_wall_time() {
        let s = 1_000_000;
        assert_eq!(
            Pacing::REAL_TIME.due_after(s, s + 1500),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            Pacing::Speed(3600.0).due_after(s, s + 3_600_000),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            Pacing::Speed(10.0).due_after(s, s - 5),
            Some(Duration::ZERO)
        );
        assert_eq!(Pacing::AsFastAsPossible.due_after(s, s + 99), None);
    }
}
