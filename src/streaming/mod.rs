//! Streaming of active legs: the registry (`active_strategies`), one market-data stream per
//! active leg holding a line from the shared budget, their latest quotes for the console,
//! and their periodic rows in `position_updates`.

pub mod manager;
pub mod registry;

pub use manager::Streaming;
