//! Market-hours scheduler: the NYSE calendar and the jobs that fill the queue.
//!
//! - [`calendar`] (from [`crate::market`]): holidays and early closes by rule, session hours in New York time.
//! - [`phase`]: closed / pre-market / regular / post-market and the next change.
//! - [`clock`] (from [`crate::market`]): the injectable clock (system or fast) shared with the rest of ibq.
//! - [`config`]: the `[scheduler]` section of `ibq.toml`, unvalidated.
//! - [`schedule`]: validated jobs, their slots and deterministic occurrence keys.
//! - [`runner`]: the task that hands due occurrences to an [`runner::OccurrenceSink`].
//! - [`cli`]: `ibq schedule`, a day's plan.
//! - [`view`]: what a front end shows: each job's next run and how today's slots went.
pub use crate::market::{calendar, clock};
pub mod cli;
pub mod config;
pub mod phase;
pub mod runner;
pub mod schedule;
pub mod view;

#[cfg(test)]
pub(crate) mod test_support;
