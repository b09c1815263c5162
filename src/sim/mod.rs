//! `ibq sim`: a gateway simulator speaking the TWS API protocol well enough that the
//! unmodified `ibapi` client cannot tell it from IB Gateway. See `docs/SIM.md`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ibq::sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig { port: 0, ..SimConfig::default() }).await?;
//! let client = ibapi::Client::connect(&sim.address(), 1).await?;
//! # drop(client); sim.shutdown().await; Ok(()) }
//! ```
pub mod cli;
mod clock;
mod connection;
pub mod control;
mod farms;
mod faults;
pub mod frame;
mod historical;
mod limits;
mod market_data;
mod portfolio;
mod pricing;
mod proto;
mod reader;
mod server;
mod universe;

pub use farms::{Farm, FarmStatus};
pub use faults::{RequestKind, UnknownKind};
pub use market_data::Permissions;
pub use portfolio::PositionSpec;
pub use server::{Arrival, SimConfig, SimHandle, SimStats, Simulator, ARRIVALS_KEPT};
pub use universe::{option_conid, Instrument, Kind, Right, Underlying, Universe};
