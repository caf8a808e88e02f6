//! The messages themselves, independent of any encoding.
//!
//! Uplink = device to service, downlink = service to device. Every uplink
//! message carries the device's own sequence number because the ack protocol
//! ([`Ack`]) covers everything a device sends: the device keeps a message in
//! its store-and-forward buffer until an ack with a sequence number at least as
//! high arrives. Times are UTC unix milliseconds ([`Timestamp`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time as UTC unix milliseconds.
///
/// A plain integer on purpose: the wire formats carry milliseconds, and the
/// pure cores compare and subtract times without a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The time as unix milliseconds.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// The time `ms` milliseconds later (saturating).
    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Where a position came from; the accuracy to expect differs by an order of
/// magnitude between them (GNSS metres, Wi-Fi tens of metres, cell hundreds).
/// Serialised (JSON) as its snake_case variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionSource {
    /// Satellite positioning (GPS, BeiDou, ...).
    Gnss,
    /// Wi-Fi access point lookup.
    Wifi,
    /// Cell tower (LBS) lookup.
    Cell,
    /// A fused position computed by the device OS (phones).
    Fused,
}

/// One position fix as measured by a device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    /// Device sequence number of this fix.
    pub seq: u64,
    /// When the device measured the position.
    pub time: Timestamp,
    /// WGS84 latitude in degrees, `-90..=90`.
    pub lat: f64,
    /// WGS84 longitude in degrees, `-180..=180`.
    pub lon: f64,
    /// Horizontal accuracy (radius) in metres, `>= 0`.
    pub accuracy_m: f32,
    /// Altitude above the WGS84 ellipsoid in metres, if known.
    pub altitude_m: Option<f32>,
    /// Ground speed in metres per second, if known.
    pub speed_mps: Option<f32>,
    /// Course over ground in degrees clockwise from true north, `0..360`.
    pub heading_deg: Option<f32>,
    /// Number of satellites used, if known.
    pub satellites: Option<u8>,
    /// How the position was obtained.
    pub source: PositionSource,
}

/// State of the bracelet strap, from its tamper sensor.
/// Serialised (JSON) as its snake_case variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrapState {
    /// Closed and continuous.
    Intact,
    /// Opened at the clasp (may be closed again).
    Open,
    /// The strap's conductor is broken.
    Cut,
}

/// State of the satellite receiver, so "no fix while heartbeats arrive" can be
/// told apart from "receiver switched off".
/// Serialised (JSON) as its snake_case variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GnssState {
    /// Receiver powered off (power saving or indoors by policy).
    Off,
    /// Receiver on, no fix yet.
    Searching,
    /// Receiver on with a current fix.
    Fixed,
}

/// Periodic device health report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Device sequence number.
    pub seq: u64,
    /// When the device produced the report.
    pub time: Timestamp,
    /// Battery charge in percent, `0..=100`.
    pub battery_pct: u8,
    /// Whether the device is on its charger.
    pub charging: bool,
    /// Strap tamper sensor state.
    pub strap: StrapState,
    /// Whether the case tamper switch reports an opened case.
    pub case_tamper: bool,
    /// Mobile signal strength in dBm, if known.
    pub signal_dbm: Option<i8>,
    /// Satellite receiver state.
    pub gnss: GnssState,
}

/// What happened on the device.
/// Serialised (JSON) as its snake_case variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The strap was opened.
    StrapOpened,
    /// The strap was closed again.
    StrapClosed,
    /// The case was opened.
    CaseOpened,
    /// Battery fell below the device's low threshold.
    LowBattery,
    /// The device is powering off (last message before going dark).
    PowerOff,
    /// The subject pressed the SOS button.
    Sos,
    /// The receiver suspects GNSS or cellular jamming.
    JammingSuspected,
    /// The bracelet lost its link to the paired phone (bracelet–phone separation).
    PhoneLinkLost,
    /// The bracelet–phone link is back.
    PhoneLinkRestored,
}

/// A discrete device event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceEvent {
    /// Device sequence number.
    pub seq: u64,
    /// When the event happened on the device.
    pub time: Timestamp,
    /// What happened.
    pub kind: EventKind,
}

/// Fixes uploaded together after store-and-forward. Never empty once decoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// The fixes, in the order the device sent them (not necessarily by time).
    pub fixes: Vec<Fix>,
}

/// A message from a device to the service.
#[derive(Debug, Clone, PartialEq)]
pub enum Uplink {
    /// One position fix.
    Fix(Fix),
    /// A health report.
    Heartbeat(Heartbeat),
    /// A discrete event.
    Event(DeviceEvent),
    /// Stored fixes uploaded together.
    Batch(Batch),
}

impl Uplink {
    /// The highest device sequence number the message carries: what an
    /// [`Ack`] must reach to release the message from the device's buffer.
    /// `None` only for an empty batch, which decoding never returns.
    pub fn max_seq(&self) -> Option<u64> {
        match self {
            Uplink::Fix(f) => Some(f.seq),
            Uplink::Heartbeat(h) => Some(h.seq),
            Uplink::Event(e) => Some(e.seq),
            Uplink::Batch(b) => b.fixes.iter().map(|f| f.seq).max(),
        }
    }

    /// A short stable name of the message kind, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Uplink::Fix(_) => "fix",
            Uplink::Heartbeat(_) => "heartbeat",
            Uplink::Event(_) => "event",
            Uplink::Batch(_) => "batch",
        }
    }
}

/// "Everything up to `seq` is durably stored": the basis of zero loss. The
/// device may drop every buffered message with a sequence number `<= seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Highest device sequence number durably stored by the service.
    pub seq: u64,
}

/// Supervision level (严管/普管/宽管); it sets the reporting cadence.
/// Serialised (JSON) as its snake_case variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisionLevel {
    /// 严管.
    Strict,
    /// 普管.
    Normal,
    /// 宽管.
    Lenient,
}

/// Reporting configuration pushed to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Seconds between position fixes.
    pub report_interval_s: u32,
    /// Seconds between heartbeats.
    pub heartbeat_interval_s: u32,
    /// The supervision level the intervals were chosen for (informative).
    pub supervision: SupervisionLevel,
    /// Whether the subject is currently in violation (informative; a violation
    /// shortens the interval).
    pub in_violation: bool,
}

impl DeviceConfig {
    /// The default cadence: one fix per 30/60/120 s for strict/normal/lenient
    /// while compliant, every 15 s while in violation; a heartbeat every 5 min.
    pub fn recommended(supervision: SupervisionLevel, in_violation: bool) -> DeviceConfig {
        let report_interval_s = if in_violation {
            15
        } else {
            match supervision {
                SupervisionLevel::Strict => 30,
                SupervisionLevel::Normal => 60,
                SupervisionLevel::Lenient => 120,
            }
        };
        DeviceConfig {
            report_interval_s,
            heartbeat_interval_s: 300,
            supervision,
            in_violation,
        }
    }
}

/// What the service asks a device to do.
/// Serialised (JSON) as its snake_case variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandAction {
    /// Take and send a fix now, whatever the interval.
    LocateNow,
    /// Upload everything in the store-and-forward buffer now.
    FlushStored,
    /// Vibrate/beep so the subject calls their officer.
    Vibrate,
}

/// A command to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// Service-chosen id so logs can tie the command to the device's response.
    pub id: u64,
    /// What to do.
    pub action: CommandAction,
}

/// A message from the service to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downlink {
    /// Acknowledge stored messages.
    Ack(Ack),
    /// New reporting configuration.
    Config(DeviceConfig),
    /// Do something now.
    Command(Command),
}

/// The three payload encodings of the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Geoward JSON (phones, integrators).
    Json,
    /// Geoward compact binary frame (bracelets).
    Binary,
    /// OwnTracks JSON (`_type: location`, optionally encrypted).
    OwnTracks,
}

impl Encoding {
    /// A short stable name, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Binary => "bin",
            Encoding::OwnTracks => "owntracks",
        }
    }
}
