//! geoward-sim: replays recorded traces, drives synthetic fleets and generates
//! load over the same wire real devices use.
//!
//! The pure parts (trace parsing, scheduling, fleet synthesis) do no IO and
//! never read the clock: time is an argument, randomness a seed. Only the
//! wire runner talks to a broker.

pub mod cli;
pub mod credentials;
pub mod expect;
pub mod fdlimit;
pub mod feed;
pub mod fleet;
pub mod geo;
pub mod load;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod schedule;
pub mod setup;
pub mod trace;
pub mod wire;
pub mod zones;
