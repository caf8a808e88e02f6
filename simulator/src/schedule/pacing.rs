//! Time control: when, in wall time, a plan's send is due.

use std::time::Duration;

use thiserror::Error;

/// How plan time maps to wall time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Plan time runs `factor` times faster than wall time (1 = real time,
    /// 3600 = an hour a second).
    Speed(f64),
    /// `factor` times faster for the plan's first `real_after_ms`, then
    /// real time: fills hours of state (the zone engine's late-data windows)
    /// in minutes, then runs at the devices' own rate, where what is in
    /// flight per device is what a real fleet keeps in flight.
    SpeedThenReal {
        /// The first phase's factor.
        factor: f64,
        /// Plan time, from the first send, run at `factor`.
        real_after_ms: i64,
    },
    /// No waiting: publish in plan order as fast as the wire accepts. Each
    /// device's order still holds because a device's sends go out in plan
    /// order on one connection.
    AsFastAsPossible,
}

/// `--speed` value that is not a positive number or `max`.
#[derive(Debug, Clone, PartialEq, Error)]
#[error(
    "bad speed {0:?}: want a positive factor (1, 10, 3600), a factor then real time \
     after some hours of plan time (60x,6h) or \"max\""
)]
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

    /// Parses `1`, `10`, `x3600`, `3600x`, `max`, or `60x,6h` (60 times
    /// faster for the first 6 hours of plan time, then real time).
    pub fn parse(text: &str) -> Result<Self, BadSpeed> {
        let bad = || BadSpeed(text.to_string());
        let t = text.trim().to_ascii_lowercase();
        if t == "max" || t == "afap" {
            return Ok(Self::AsFastAsPossible);
        }
        let positive = |n: &str| match n.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Some(f),
            _ => None,
        };
        let (factor, hours) = match t.split_once(',') {
            Some((f, h)) => (f, Some(h.trim().strip_suffix('h').ok_or_else(bad)?)),
            None => (t.as_str(), None),
        };
        let factor = positive(
            factor
                .trim_start_matches(['x', '×'])
                .trim_end_matches(['x', '×']),
        )
        .ok_or_else(bad)?;
        Ok(match hours {
            None => Self::Speed(factor),
            Some(h) => Self::SpeedThenReal {
                factor,
                real_after_ms: (positive(h).ok_or_else(bad)? * 3_600_000.0) as i64,
            },
        })
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
            Self::SpeedThenReal {
                factor,
                real_after_ms,
            } => {
                let plan_ms = at_ms.saturating_sub(start_ms).max(0);
                let fast = plan_ms.min(real_after_ms) as f64 / factor;
                let real = (plan_ms - plan_ms.min(real_after_ms)) as f64;
                Some(Duration::from_secs_f64((fast + real) / 1000.0))
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
        assert_eq!(
            Pacing::parse("60x,6h"),
            Ok(Pacing::SpeedThenReal {
                factor: 60.0,
                real_after_ms: 6 * 3_600_000
            })
        );
        assert_eq!(
            Pacing::parse("120, 0.5h"),
            Ok(Pacing::SpeedThenReal {
                factor: 120.0,
                real_after_ms: 1_800_000
            })
        );
        for bad in [
            "0", "-2", "fast", "inf", "NaN", "", "60x,6", "60x,0h", "60x,-1h", "0x,6h", "60x,h",
        ] {
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

    #[test]
    fn runs_fast_for_the_first_hours_then_in_real_time() {
        let s = 1_000_000;
        let p = Pacing::parse("60x,6h").unwrap();
        // Six hours of plan time in six minutes...
        assert_eq!(
            p.due_after(s, s + 6 * 3_600_000),
            Some(Duration::from_secs(360))
        );
        assert_eq!(p.due_after(s, s + 3_600_000), Some(Duration::from_secs(60)));
        // ...then a plan minute is a wall minute.
        assert_eq!(
            p.due_after(s, s + 6 * 3_600_000 + 60_000),
            Some(Duration::from_secs(420))
        );
        assert_eq!(p.due_after(s, s - 5), Some(Duration::ZERO));
    }
}
