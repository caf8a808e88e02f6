//! The engine's own input type: one position fix from a device.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the device obtained the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Satellite fix (GPS, BeiDou, ...).
    Gnss,
    /// Wi-Fi positioning: tens to hundreds of metres, low confidence.
    Wifi,
    /// Cell (LBS) positioning: ≈ 200 m and worse, low confidence.
    Cell,
    /// Device-side fusion that includes GNSS.
    Fused,
}

impl Source {
    /// Whether fixes from this source may count towards confirming a breach.
    pub fn is_confident(self) -> bool {
        matches!(self, Self::Gnss | Self::Fused)
    }
}

/// One position fix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// When the device measured the position (event time).
    pub time: DateTime<Utc>,
    pub lat: f64,
    pub lon: f64,
    /// Reported accuracy radius in metres (a floor per source applies).
    pub accuracy_m: f64,
    pub source: Source,
    /// The device's sequence number; with `time` it identifies duplicates.
    pub device_seq: u64,
}

/// A fix that cannot be judged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FixError {
    #[error("latitude or longitude out of range or not finite")]
    InvalidPosition,
    #[error("accuracy is negative or not finite")]
    InvalidAccuracy,
}

impl FixError {
    /// Stable code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidPosition => "invalid_position",
            Self::InvalidAccuracy => "invalid_accuracy",
        }
    }
}

impl Fix {
    pub(crate) fn validate(&self) -> Result<(), FixError> {
        if !self.lat.is_finite()
            || !self.lon.is_finite()
            || self.lat.abs() > 90.0
            || self.lon.abs() > 180.0
        {
            return Err(FixError::InvalidPosition);
        }
        if !self.accuracy_m.is_finite() || self.accuracy_m < 0.0 {
            return Err(FixError::InvalidAccuracy);
        }
        Ok(())
    }
}
