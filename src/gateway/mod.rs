//! The one gateway connection and the limits it must respect: the connection supervisor,
//! the farms' state, the market-data line accountant, historical pacing and what a quote's numbers mean.

pub mod connection;
pub mod farms;
pub mod lines;
pub mod pace;
pub mod pacing;
pub mod quote;

pub use connection::Gateway;
pub use farms::FarmsView;
pub use lines::{LineBudget, NoFreeLine, SnapshotLine};
