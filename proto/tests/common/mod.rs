//! Strategies and helpers shared by the proto test binaries.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;

use geoward_proto::{
    Batch, DeviceEvent, DeviceId, EventKind, Fix, GnssState, Heartbeat, PositionSource, StrapState,
    Timestamp, Uplink, validate::MIN_TIME,
};
use proptest::prelude::*;

/// The receive time used by all tests: 2025-11-22T08:26:40Z.
pub const NOW: Timestamp = Timestamp(1_763_800_000_000);

/// The device all tests talk as.
pub fn device() -> DeviceId {
    DeviceId::new("bracelet-0001").expect("valid id")
}

/// The device's secret (also a valid OwnTracks key: at most 32 bytes).
pub const SECRET: &[u8] = b"correct horse battery staple";

/// A key lookup that knows [`device`].
pub fn keys() -> HashMap<DeviceId, Vec<u8>> {
    HashMap::from([(device(), SECRET.to_vec())])
}

pub fn source() -> impl Strategy<Value = PositionSource> {
    prop_oneof![
        Just(PositionSource::Gnss),
        Just(PositionSource::Wifi),
        Just(PositionSource::Cell),
        Just(PositionSource::Fused),
    ]
}

/// Times the validator accepts (and that leave room for batch deltas).
pub fn time() -> impl Strategy<Value = Timestamp> {
    (MIN_TIME.0..NOW.0).prop_map(Timestamp)
}

/// A valid fix whose values lie on the binary frame's grid, so every
/// encoding round-trips it exactly.
pub fn fix_at(
    seq: impl Strategy<Value = u64>,
    time: impl Strategy<Value = Timestamp>,
) -> impl Strategy<Value = Fix> {
    (
        seq,
        time,
        -900_000_000i32..=900_000_000,
        -1_800_000_000i32..=1_800_000_000,
        any::<u16>(),
        proptest::option::of(-1_000i16..=20_000),
        proptest::option::of(0u16..=35_000),
        proptest::option::of(0u16..36_000),
        proptest::option::of(any::<u8>()),
        source(),
    )
        .prop_map(
            |(seq, time, lat, lon, acc, alt, speed, heading, sats, source)| Fix {
                seq,
                time,
                lat: lat as f64 / 1e7,
                lon: lon as f64 / 1e7,
                accuracy_m: acc as f32 / 10.0,
                altitude_m: alt.map(|a| a as f32),
                speed_mps: speed.map(|s| s as f32 / 100.0),
                heading_deg: heading.map(|h| h as f32 / 100.0),
                satellites: sats,
                source,
            },
        )
}

pub fn fix() -> impl Strategy<Value = Fix> {
    fix_at(any::<u64>(), time())
}

pub fn heartbeat() -> impl Strategy<Value = Heartbeat> {
    (
        any::<u64>(),
        time(),
        0u8..=100,
        any::<bool>(),
        prop_oneof![
            Just(StrapState::Intact),
            Just(StrapState::Open),
            Just(StrapState::Cut)
        ],
        any::<bool>(),
        proptest::option::of(any::<i8>()),
        prop_oneof![
            Just(GnssState::Off),
            Just(GnssState::Searching),
            Just(GnssState::Fixed)
        ],
    )
        .prop_map(
            |(seq, time, battery_pct, charging, strap, case_tamper, signal_dbm, gnss)| Heartbeat {
                seq,
                time,
                battery_pct,
                charging,
                strap,
                case_tamper,
                signal_dbm,
                gnss,
            },
        )
}

pub fn event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::StrapOpened),
        Just(EventKind::StrapClosed),
        Just(EventKind::CaseOpened),
        Just(EventKind::LowBattery),
        Just(EventKind::PowerOff),
        Just(EventKind::Sos),
        Just(EventKind::JammingSuspected),
        Just(EventKind::PhoneLinkLost),
        Just(EventKind::PhoneLinkRestored),
    ]
}

pub fn event() -> impl Strategy<Value = DeviceEvent> {
    (any::<u64>(), time(), event_kind()).prop_map(|(seq, time, kind)| DeviceEvent {
        seq,
        time,
        kind,
    })
}

/// A batch whose seq and time spans fit the binary deltas.
pub fn batch() -> impl Strategy<Value = Batch> {
    (
        0..u64::MAX - u16::MAX as u64,
        MIN_TIME.0..NOW.0 - u32::MAX as i64,
    )
        .prop_flat_map(|(base_seq, base_time)| {
            proptest::collection::vec(
                fix_at(
                    (0..=u16::MAX as u64).prop_map(move |d| base_seq + d),
                    (0..=u32::MAX as i64).prop_map(move |d| Timestamp(base_time + d)),
                ),
                1..40,
            )
            .prop_map(|fixes| Batch { fixes })
        })
}

pub fn uplink() -> impl Strategy<Value = Uplink> {
    prop_oneof![
        fix().prop_map(Uplink::Fix),
        heartbeat().prop_map(Uplink::Heartbeat),
        event().prop_map(Uplink::Event),
        batch().prop_map(Uplink::Batch),
    ]
}

/// A fix as the OwnTracks apps can express it: whole seconds, metres, km/h
/// and degrees, `seq` derived from `tst`, fused source.
pub fn owntracks_fix() -> impl Strategy<Value = Fix> {
    (
        MIN_TIME.0 / 1000..NOW.0 / 1000,
        -900_000_000i32..=900_000_000,
        -1_800_000_000i32..=1_800_000_000,
        0u16..10_000,
        proptest::option::of(-1_000i16..=20_000),
        proptest::option::of(0u16..=1_260),
        proptest::option::of(0u16..360),
    )
        .prop_map(|(tst, lat, lon, acc, alt, vel, cog)| Fix {
            seq: tst as u64,
            time: Timestamp(tst * 1000),
            lat: lat as f64 / 1e7,
            lon: lon as f64 / 1e7,
            accuracy_m: acc as f32,
            altitude_m: alt.map(|a| a as f32),
            speed_mps: vel.map(|v| geoward_proto::owntracks::kmh_to_mps(v as f64)),
            heading_deg: cog.map(|c| c as f32),
            satellites: None,
            source: PositionSource::Fused,
        })
}

/// A fixed valid fix for table tests.
pub fn sample_fix() -> Fix {
    Fix {
        seq: 42,
        time: Timestamp(NOW.0 - 60_000),
        lat: 31.2304321,
        lon: 121.4737012,
        accuracy_m: 8.5,
        altitude_m: Some(12.0),
        speed_mps: Some(1.25),
        heading_deg: Some(270.5),
        satellites: Some(9),
        source: PositionSource::Gnss,
    }
}
