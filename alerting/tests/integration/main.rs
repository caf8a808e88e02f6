//! The alerting crate's integration tests, in one test binary (one link and
//! one instantiation of the fixtures instead of seven; see `benches/RESULTS.md`,
//! "Test suite").

mod support;

mod audit_chain;
mod day_in_the_life;
mod engine;
mod feed;
mod model;
mod outbox;
#[cfg(feature = "delivery")]
mod webhook_delivery;
