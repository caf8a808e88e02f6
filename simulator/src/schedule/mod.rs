//! Pure transformations from traces to a [`crate::plan::Plan`]: time control,
//! placement and store-and-forward faults. No IO, no clock, seeded randomness.

pub mod faults;
pub mod pacing;
pub mod placement;

pub use faults::{Faults, Gap, GapModel};
pub use pacing::Pacing;
pub use placement::{Crossing, PlacementError, fan_out, place_across, translate_to};
