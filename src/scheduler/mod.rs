//! Market-hours scheduler: the NYSE calendar and the jobs that fill the queue.
pub mod cli;
pub mod config;
