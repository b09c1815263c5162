//! The `ibq` command line: global options and subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "ibq",
    version,
    about = "Operator console and durable request queue for one IB gateway connection"
)]
pub struct Cli {
    /// Root folder of the Delta tables (default from ibq.toml, else ./data/lake).
    #[arg(long, global = true, env = "IBQ_LAKE")]
    pub lake: Option<PathBuf>,
    /// Configuration file (default ./ibq.toml, else the user config dir).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Key map file overriding the default bindings.
    #[arg(long, global = true)]
    pub keymap: Option<PathBuf>,
    /// Gateway address HOST:PORT (overrides ibq.toml).
    #[arg(long, global = true)]
    pub gateway: Option<String>,
    /// Run the built-in demo (same as `ibq demo`).
    #[arg(long)]
    pub demo: bool,
    /// Open a console on a lake whose engine runs in another process.
    #[arg(long)]
    pub observe: bool,
    /// Start the engine's clock (scheduler and market phase) at this instant, RFC 3339
    /// (e.g. 2026-11-23T09:25:00-05:00); real time when absent. Before the subcommand.
    #[arg(long)]
    pub clock: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// How many times faster than real time the engine's clock runs (with --clock).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a request to the queue.
    Enqueue(queue::EnqueueArgs),
    /// List requests.
    List(queue::ListArgs),
    /// Show one request and its whole transition history.
    Show(queue::ShowArgs),
    /// Put FAILED requests back to PENDING.
    Retry(queue::RetryArgs),
    /// Change the priority of a PENDING or FAILED request.
    Reprioritize(queue::ReprioritizeArgs),
    /// Cancel a PENDING request.
    Cancel(queue::CancelArgs),
    /// Rewrite the queue table to the newest row per request.
    Compact,
    /// Configuration helpers.
    Config(ConfigArgs),
    /// Print the effective console key map (defaults overridden by the user's key map file).
    Keys,
    /// Run the gateway simulator.
    Sim(crate::sim::cli::SimArgs),
    /// Print the scheduler's plan for a day.
    Schedule(crate::scheduler::cli::ScheduleArgs),
    /// Stream a contract as an active leg (needs a running engine).
    Promote(legs::PromoteArgs),
    /// Stop streaming a leg and free its line.
    Demote(legs::DemoteArgs),
    /// The active legs, with live quotes when an engine runs.
    Legs(legs::LegsArgs),
    /// The console on a simulator and a demo lake, on a fast clock.
    Demo,
    /// Run the engine (worker, scheduler, streaming) without a console.
    Run,
    /// What the running engine is doing.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks.
    Bench(crate::cli::bench::BenchArgs),
    /// Tools for tests.
    #[command(hide = true)]
    Debug(debug::DebugArgs),
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print the default configuration, every key documented.
    #[arg(long)]
    pub print_default: bool,
}

pub mod bench;
pub mod bench_restarts;
pub mod console;
pub mod debug;
pub mod legs;
pub mod queue;
pub mod run;

/// Resolves the configuration and the command-line overrides into one `Config`.
pub fn resolve_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(lake) = &cli.lake {
        config.lake.root = lake.clone();
    }
    if let Some(gateway) = &cli.gateway {
        config.gateway.address = gateway.clone();
    }
    Ok(config)
}

/// The engine's clock: real time, or `--clock` running `--speed` times faster.
fn engine_clock(cli: &Cli) -> anyhow::Result<std::sync::Arc<dyn crate::scheduler::clock::Clock>> {
    if !(cli.speed.is_finite() && cli.speed > 0.0) {
        anyhow::bail!("--speed must be a positive number, got {}", cli.speed);
    }
    Ok(match cli.clock {
        Some(start) => std::sync::Arc::new(crate::scheduler::clock::FastClock::new(
            start.with_timezone(&chrono::Utc),
            cli.speed,
        )),
        None if cli.speed != 1.0 => {
            anyhow::bail!("--speed needs --clock (the instant the fast clock starts from)")
        }
        None => std::sync::Arc::new(crate::scheduler::clock::SystemClock),
    })
}

/// Runs the parsed command line; the error is printed by `main` as one line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Config(args)) => {
            if args.print_default {
                print!("{}", crate::config::DEFAULT_CONFIG);
                return Ok(());
            }
            anyhow::bail!("ibq config: nothing to do (try --print-default)");
        }
        Some(Command::Sim(args)) => return crate::sim::cli::run(args.clone()).await,
        Some(Command::Keys) => {
            let map = crate::console::keymap::KeyMap::load(cli.keymap.as_deref())?;
            print!("{}", map.render_table());
            return Ok(());
        }
        _ => {}
    }
    let config = resolve_config(&cli)?;
    let keymap = cli.keymap.as_deref();
    let clock = engine_clock(&cli)?;
    let Some(command) = cli.command else {
        return match (cli.demo, cli.observe) {
            (true, true) => anyhow::bail!("--demo and --observe cannot be combined"),
            (true, false) => console::demo(&config, keymap).await,
            (false, true) => console::observe(&config, keymap).await,
            (false, false) => console::console(&config, keymap, clock).await,
        };
    };
    match command {
        Command::Demo => console::demo(&config, keymap).await,
        Command::Enqueue(a) => queue::enqueue(a, &config).await,
        Command::List(a) => queue::list(a, &config).await,
        Command::Show(a) => queue::show(a, &config).await,
        Command::Retry(a) => queue::retry(a, &config).await,
        Command::Reprioritize(a) => queue::reprioritize(a, &config).await,
        Command::Cancel(a) => queue::cancel(a, &config).await,
        Command::Compact => queue::compact(&config).await,
        Command::Run => run::run(&config, clock).await,
        Command::Promote(a) => legs::promote(a, &config).await,
        Command::Demote(a) => legs::demote(a, &config).await,
        Command::Legs(a) => legs::legs(a, &config).await,
        Command::Status { json } => run::status(&config, json).await,
        Command::Schedule(a) => crate::scheduler::cli::run(a, &config),
        Command::Bench(a) => bench::run(a, &config).await,
        Command::Debug(a) => debug::run(a, &config).await,
        Command::Config(_) | Command::Sim(_) | Command::Keys => unreachable!("handled above"),
    }
}
