//! The one gateway connection and the limits it must respect: the connection supervisor,
//! the market-data line accountant, historical pacing and what a quote's numbers mean.

pub mod connection;
pub mod lines;
pub mod pacing;
pub mod quote;

pub use connection::Gateway;
pub use lines::{LineBudget, NoFreeLine, SnapshotLine};
