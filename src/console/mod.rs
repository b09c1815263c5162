//! The operator console: a ratatui front end over the engine's `Snapshot`s and `Command`s.
//!
//! `run_console` owns the terminal (raw mode, alternate screen, always restored); `App`
//! holds the UI state and draws the screen as a pure function of (snapshot, UI state); the
//! panes and popups are components. Live tracing events reach the logs pane through the
//! layer in [`logs`].

pub mod alerts;
pub mod app;
pub mod bench;
pub mod causes;
pub mod clipboard;
pub mod cmdline;
pub mod cursor;
pub mod filter;
pub mod fmt;
pub mod keymap;
pub mod logs;
pub mod panes;
pub mod popups;
pub mod run;
pub mod sample;
pub mod theme;

pub use app::App;
pub use bench::{bench_render, BenchReport};
pub use logs::{ConsoleLogLayer, LogBuffer};
pub use run::{run_console, ConsoleOptions};

#[cfg(test)]
mod tests;
