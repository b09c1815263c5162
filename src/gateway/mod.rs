//! The one gateway connection and the limits it must respect: the connection supervisor,
//! the market-data line accountant and historical pacing.

pub mod connection;
pub mod lines;
pub mod pacing;

pub use connection::Gateway;
pub use lines::{LineBudget, NoFreeLine, SnapshotLine};
