//! The input vocabulary of the incident engine.
//!
//! Self-contained on purpose: the service maps geofence transitions and
//! decoded device messages into these types, so this crate depends on neither
//! `geoward-geofence` nor `geoward-proto`.

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, RuleId, SubjectId};
use crate::time::Timestamp;

/// One thing the engine learns about a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Whom it concerns.
    pub subject: SubjectId,
    /// What happened.
    pub body: SignalBody,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignalBody {
    /// A geofence rule transition (already debounced by the geofence engine).
    ZoneBreach {
        /// The rule that is breached.
        rule: RuleId,
        /// Which kind of rule it is; decides the incident kind.
        rule_kind: RuleKind,
        /// Where in the breach's life this transition is.
        phase: BreachPhase,
        /// True when the evidence arrived late (store-and-forward upload).
        late: bool,
        /// Device time of the transition.
        event_time: Timestamp,
        /// The fixes that prove it.
        evidence: Vec<EvidenceFix>,
    },
    /// Any message from a device: a position fix or a bare heartbeat.
    DeviceSeen {
        /// Which device.
        device: DeviceId,
        /// Bracelet or phone.
        device_kind: DeviceKind,
        /// Device time of the message.
        at: Timestamp,
        /// Where it was, when the message carried a position.
        position: Option<Position>,
        /// True when the position came from a GNSS fix (not cell or Wi-Fi).
        has_gnss_fix: bool,
        /// Battery level in percent, when reported.
        battery_pct: Option<u8>,
    },
    /// A discrete event a device reported.
    DeviceEvent {
        /// Which device.
        device: DeviceId,
        /// Bracelet or phone.
        device_kind: DeviceKind,
        /// Device time of the event.
        at: Timestamp,
        /// What it reported.
        event: DeviceEventKind,
    },
}

/// Kind of a geofence rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Permitted area (区域管理): leaving it is a breach.
    PermittedArea,
    /// Exclusion zone (禁止令): entering it is a breach.
    ExclusionZone,
    /// Curfew: being outside home during set hours is a breach.
    Curfew,
}

/// Phase of a breach as the geofence engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreachPhase {
    /// First evidence, not yet confirmed: recorded on an open incident only.
    Started,
    /// Confirmed: opens an incident (or adds evidence to the open one).
    Confirmed,
    /// The condition cleared (back inside, left the exclusion zone).
    Ended,
}

/// Bracelet or phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Ankle or wrist bracelet.
    Bracelet,
    /// The subject's phone.
    Phone,
}

/// A discrete device event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceEventKind {
    /// The strap was cut or opened (拆卸/断带).
    StrapOpened,
    /// The strap is closed again.
    StrapClosed,
    /// The case was opened.
    CaseOpened,
    /// The case is closed again.
    CaseClosed,
    /// The device reports low battery.
    LowBattery,
    /// The battery is charged again.
    BatteryOk,
    /// The device announces it is switching off (关机).
    PowerOff,
}

/// A position with its claimed accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Latitude, degrees WGS84.
    pub lat: f64,
    /// Longitude, degrees WGS84.
    pub lon: f64,
    /// Horizontal accuracy radius in metres.
    pub accuracy_m: f64,
}

impl Position {
    /// True when coordinates are finite and in range and accuracy is a
    /// finite non-negative number.
    pub fn is_valid(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
            && self.accuracy_m.is_finite()
            && self.accuracy_m >= 0.0
    }
}

/// A fix that supports an incident, kept on its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceFix {
    /// Device that produced it.
    pub device: DeviceId,
    /// Device time of the fix.
    pub at: Timestamp,
    /// Where.
    pub position: Position,
}
