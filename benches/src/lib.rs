//! Shared helpers for the benchmarks (data paths).

use std::path::PathBuf;

/// The `shared/data` folder that sits beside the checkout (`../shared/data`).
pub fn shared_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}
