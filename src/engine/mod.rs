//! The engine: one tokio runtime running the queue, the gateway connection, the worker, the
//! scheduler and the streaming manager. Front ends never touch those directly: they send
//! `Command`s and render the latest `Snapshot`.

pub mod command;
pub mod snapshot;

pub use command::{Command, CommandResult, EngineHandle, Reply};
pub use journal::{ActionEntry, ActionOutcome};
pub use snapshot::{
    ClockView, GatewayState, JobView, LegState, LegView, LineBudgetView, MarketView, Snapshot,
    WorkerStats,
};
pub mod actions;
pub mod journal;
pub mod observer;
mod publish;
pub mod runtime;
mod serve;
