//! The simulator's integration tests, in one test binary: one link instead of
//! seven (see `benches/RESULTS.md`, "Test suite").

mod cli;
mod e2e;
mod fleet;
mod report;
mod schedule;
mod trace;
mod wire;
