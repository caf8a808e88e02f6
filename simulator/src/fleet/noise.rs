//! GPS noise: what a real device reports instead of the true position.
//!
//! Figures from DOMAIN.md: GNSS ≤ 10 m most of the time in the open, 100 m+
//! reflections in urban canyons, cell (LBS) ≈ 200 m+, Wi-Fi tens to hundreds
//! of metres, and sometimes an accuracy that is falsely tight.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use geoward_proto::{Fix, PositionSource, Timestamp};

use crate::geo::LatLon;

/// Probabilities and sizes of the error kinds. Probabilities are per fix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseModel {
    /// Standard deviation of ordinary GNSS error per axis, metres.
    pub gnss_sigma_m: f64,
    /// Urban-canyon reflection: error 100–300 m, honest-ish accuracy.
    pub canyon_probability: f64,
    /// Error 50–150 m while claiming 3–8 m.
    pub falsely_tight_probability: f64,
    /// Cell fallback: accuracy 300–1000 m, honest (error ≤ 0.8 × accuracy,
    /// never over 600 m).
    pub cell_probability: f64,
    /// Wi-Fi fallback: accuracy 40–150 m, honest (error ≤ 0.8 × accuracy).
    pub wifi_probability: f64,
}

impl Default for NoiseModel {
    fn default() -> Self {
        Self {
            gnss_sigma_m: 4.0,
            canyon_probability: 0.02,
            falsely_tight_probability: 0.005,
            cell_probability: 0.03,
            wifi_probability: 0.05,
        }
    }
}

impl NoiseModel {
    /// No noise at all: reported = true position, accuracy 3–5 m.
    pub const EXACT: NoiseModel = NoiseModel {
        gnss_sigma_m: 0.0,
        canyon_probability: 0.0,
        falsely_tight_probability: 0.0,
        cell_probability: 0.0,
        wifi_probability: 0.0,
    };

    /// The largest position error this model can produce, metres: subjects
    /// are kept this far from boundaries they must not seem to cross.
    pub fn max_error_m(&self) -> f64 {
        let mut m = self.gnss_sigma_m * 5.0;
        if self.canyon_probability > 0.0 {
            m = m.max(300.0);
        }
        if self.falsely_tight_probability > 0.0 {
            m = m.max(150.0);
        }
        if self.cell_probability > 0.0 {
            m = m.max(600.0);
        }
        if self.wifi_probability > 0.0 {
            m = m.max(120.0);
        }
        m
    }

    /// The fix a device reports at `time_ms` when truly at `truth`.
    pub fn observe(&self, rng: &mut ChaCha8Rng, time_ms: i64, truth: LatLon) -> Fix {
        let roll: f64 = rng.random();
        let mut p = 0.0;
        let mut pick = |q: f64| {
            p += q;
            roll < p
        };
        let (error_m, accuracy_m, source) = if pick(self.cell_probability) {
            let acc: f64 = rng.random_range(300.0..1000.0);
            let err = (acc * rng.random_range(0.0..0.8)).min(600.0);
            (err, acc, PositionSource::Cell)
        } else if pick(self.wifi_probability) {
            let acc: f64 = rng.random_range(40.0..150.0);
            (acc * rng.random_range(0.0..0.8), acc, PositionSource::Wifi)
        } else if pick(self.canyon_probability) {
            (
                rng.random_range(100.0..300.0),
                rng.random_range(20.0..120.0),
                PositionSource::Gnss,
            )
        } else if pick(self.falsely_tight_probability) {
            (
                rng.random_range(50.0..150.0),
                rng.random_range(3.0..8.0),
                PositionSource::Gnss,
            )
        } else {
            // Rayleigh-distributed radius from two normal axes.
            let r = self.gnss_sigma_m * (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt();
            let acc = (self.gnss_sigma_m * 2.0).max(3.0) * rng.random_range(0.8..1.6);
            (r.min(self.gnss_sigma_m * 5.0), acc, PositionSource::Gnss)
        };
        let bearing = rng.random_range(0.0..std::f64::consts::TAU);
        let reported = truth.moved(error_m * bearing.sin(), error_m * bearing.cos());
        Fix {
            seq: 0,
            time: Timestamp(time_ms),
            lat: reported.lat,
            lon: reported.lon,
            accuracy_m: ((accuracy_m * 10.0).round() / 10.0) as f32,
            altitude_m: None,
            speed_mps: None,
            heading_deg: None,
            satellites: (source == PositionSource::Gnss).then_some(8),
            source,
        }
    }
}
