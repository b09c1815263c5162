//! Integration tests: one binary, one module per area. They run the real `ibq` binary,
//! real Delta tables in temporary folders and, where a gateway is needed, `ibq sim`.

mod bad_input;
mod bench_year;
mod common;
mod connlife;
mod console_pty;
mod contracts;
mod demo;
mod derived_stats;
mod dismiss;
mod doctor;
mod during;
mod engine_clock;
mod escape;
mod gateway_data;
mod history;
mod market_data;
mod old_params;
mod old_table;
mod queue_cli;
mod queue_recovery;
mod queue_store;
mod recipes;
mod restarts;
mod retention;
mod run_cli;
mod scheduler;
mod sim;
mod streaming;
mod triage_pty;
mod upkeep;
mod worker;
mod written;
