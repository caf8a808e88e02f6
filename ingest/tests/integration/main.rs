//! The service's black-box tests, in one test binary: each module used to be
//! its own binary, and every one of them linked the broker, sqlx and axum and
//! instantiated the harness's generics again, which cost the suite minutes of
//! compiling on two cores (see `benches/RESULTS.md`, "Test suite").

mod common;

mod alert_store;
mod alerting;
mod api;
mod broker_log;
mod broker_skip;
mod connected_devices;
mod crash;
mod nodelay;
mod pg_outage;
mod pipeline;
mod shutdown;
mod tls;
mod zones_cli;
