//! ibq: a terminal console and durable request queue for one Interactive Brokers gateway
//! connection. See `docs/ARCHITECTURE.md` for how the pieces fit together.

pub mod cli;
pub mod config;
pub mod console;
pub mod doctor;
pub mod engine;
pub mod gateway;
pub mod lake;
pub mod logging;
pub mod market;
pub mod queue;
pub mod scheduler;
pub mod sim;
pub mod streaming;
pub mod text;
pub mod worker;
