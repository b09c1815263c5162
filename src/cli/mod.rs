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
    /// How many times faster than real time the engine's clock runs (with --clock; the demo
    /// runs at 60 unless given).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Commands that print their answer and end (not the engine, the console, the
    /// simulator, the demo or the benchmarks).
    pub fn prints_and_exits(&self) -> bool {
        !self.demo
            && !self.observe
            && matches!(
                &self.command,
                Some(
                    Command::Enqueue(_)
                        | Command::List(_)
                        | Command::Show(_)
                        | Command::Retry(_)
                        | Command::Reprioritize(_)
                        | Command::Cancel(_)
                        | Command::Dismiss(_)
                        | Command::Release(_)
                        | Command::Compact
                        | Command::Config(_)
                        | Command::Keys
                        | Command::Schedule(_)
                        | Command::Promote(_)
                        | Command::Demote(_)
                        | Command::Pause
                        | Command::Resume
                        | Command::Legs(_)
                        | Command::Status { .. }
                        | Command::Doctor { .. }
                        | Command::Upkeep(_)
                )
            )
    }
}

/// Lets SIGPIPE end the process as it ends other Unix tools (Rust ignores it by default,
/// which turns a closed pipe into a panic in `println!`).
pub fn default_sigpipe() {
    // SAFETY: called at the start of `main`, before any thread is started; restoring the
    // default disposition of a signal has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Keeps a panic that a library raises and catches itself off the terminal:
/// `object_store`'s `BufWriter::abort` panics "Already shut down" when an upload failed
/// while completing (a full disk does that), and deltalake catches that panic and returns
/// the write error, which ibq reports. Every other panic is printed as usual.
pub fn quiet_caught_library_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_buffered_writer = info.location().is_some_and(|l| {
            let file = l.file().replace('\\', "/");
            file.contains("/object_store-") && file.ends_with("/src/buffered.rs")
        });
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str));
        if in_buffered_writer && message == Some("Already shut down") {
            tracing::debug!("object_store could not abort an upload that failed to complete");
            return;
        }
        default(info);
    }));
}

/// An error as one line: its causes joined by `: ` (a cause of several lines, as TOML
/// parse errors are, joined by `; `), and a cause whose text is already in the line left
/// out (an error that prints its source would otherwise repeat it).
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[test]
    fn an_error_line_does_not_repeat_its_cause_and_keeps_every_line() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let e = anyhow::Error::new(io).context(format!("cannot read x.toml: {text}"));
        assert_eq!(error_line(&e), format!("cannot read x.toml: {text}"));
        let e = anyhow::anyhow!("line 1: invalid table header\nexpected `.`, `]`\n");
        assert_eq!(
            error_line(&e),
            "line 1: invalid table header; expected `.`, `]`"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&e), "outer: inner");
    }
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
    /// Put FAILED requests that will never succeed aside: CANCELLED, with a reason.
    Dismiss(queue::DismissArgs),
    /// Put a PROCESSING request that is stuck or too slow back to PENDING: the running
    /// engine abandons its run and frees its lines, and no attempt is counted.
    Release(queue::ReleaseArgs),
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
    /// Stop the running engine's worker from claiming requests (those in flight finish).
    Pause,
    /// Let the running engine's worker claim requests again.
    Resume,
    /// The console on a simulator and a demo lake, on a fast clock.
    Demo,
    /// Run the engine (worker, scheduler, streaming) without a console.
    Run,
    /// What the running engine is doing.
    Status {
        #[arg(long)]
        json: bool,
        /// One short line with tmux colour codes for `status-right` (`ibq off` when no
        /// engine runs).
        #[arg(long, conflicts_with = "json")]
        tmux: bool,
    },
    /// Check a gateway before the open: server version, accounts, data farms, market data and
    /// history per configured contract, lines; ends with `ready` or what to fix (exit 0 only
    /// when ready). `--gateway HOST:PORT` checks another address.
    Doctor {
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks.
    Bench(crate::cli::bench::BenchArgs),
    /// Tools for tests.
    #[command(hide = true)]
    Debug(debug::DebugArgs),
    /// Merge small files, checkpoint, vacuum and clean the log of the result tables and the
    /// queue's (the engine does it hourly); `--migrate` first partitions tables an older
    /// ibq created.
    Upkeep(upkeep::UpkeepArgs),
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print the default configuration, every key documented.
    #[arg(long)]
    pub print_default: bool,
}

pub mod bench;
pub mod bench_restarts;
pub mod bench_sim;
pub mod bench_year;
pub mod bench_year_build;
mod bench_year_measure;
mod bench_year_rows;
mod bench_year_time;
mod bench_year_window;
pub mod console;
pub mod debug;
pub mod legs;
pub mod queue;
pub mod run;
pub mod tmux;
pub mod upkeep;
pub mod worker;

/// Resolves the configuration and the command-line overrides into one `Config`.
pub fn resolve_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(lake) = &cli.lake {
        if lake.as_os_str().is_empty() {
            anyhow::bail!("--lake (or IBQ_LAKE) is empty; give the folder of the Delta tables");
        }
        config.lake.root = lake.clone();
    }
    if let Some(gateway) = &cli.gateway {
        config.gateway.address = gateway.clone();
        config
            .check()
            .map_err(|e| anyhow::anyhow!("--gateway: {e}"))?;
    }
    check_lake_folder(&config.lake.root)?;
    Ok(config)
}

/// The lake is a folder, or does not exist yet (it is created on the first write).
fn check_lake_folder(root: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::metadata(root) {
        Ok(m) if !m.is_dir() => anyhow::bail!(
            "the lake {} is a file, not a folder (give the folder of the Delta tables with --lake, IBQ_LAKE or [lake] root)",
            root.display()
        ),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => anyhow::bail!("cannot use the lake {}: {e}", root.display()),
    }
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

/// The demo's clock: `--clock` (default 09:25 New York on the latest trading day) running
/// `--speed` times faster than real time (default sixty).
fn demo_clock(cli: &Cli) -> anyhow::Result<console::DemoClock> {
    if !(cli.speed.is_finite() && cli.speed > 0.0) {
        anyhow::bail!("--speed must be a positive number, got {}", cli.speed);
    }
    Ok(console::DemoClock {
        start: cli.clock.map(|t| t.with_timezone(&chrono::Utc)),
        speed: if cli.speed == 1.0 {
            None
        } else {
            Some(cli.speed)
        },
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
    if matches!(cli.command, Some(Command::Demo)) || (cli.command.is_none() && cli.demo) {
        if cli.observe {
            anyhow::bail!("--demo and --observe cannot be combined");
        }
        return console::demo(&config, keymap, demo_clock(&cli)?).await;
    }
    let clock = engine_clock(&cli)?;
    let Some(command) = cli.command else {
        return match cli.observe {
            true => console::observe(&config, keymap).await,
            false => console::console(&config, keymap, clock).await,
        };
    };
    match command {
        Command::Demo => unreachable!("handled above"),
        Command::Enqueue(a) => queue::enqueue(a, &config, clock).await,
        Command::List(a) => queue::list(a, &config).await,
        Command::Show(a) => queue::show(a, &config).await,
        Command::Retry(a) => queue::retry(a, &config).await,
        Command::Reprioritize(a) => queue::reprioritize(a, &config).await,
        Command::Cancel(a) => queue::cancel(a, &config).await,
        Command::Dismiss(a) => queue::dismiss(a, &config).await,
        Command::Release(a) => queue::release(a, &config).await,
        Command::Compact => queue::compact(&config).await,
        Command::Run => run::run(&config, clock).await,
        Command::Promote(a) => legs::promote(a, &config).await,
        Command::Demote(a) => legs::demote(a, &config).await,
        Command::Legs(a) => legs::legs(a, &config).await,
        Command::Pause => worker::pause(&config).await,
        Command::Resume => worker::resume(&config).await,
        Command::Status { tmux: true, .. } => {
            println!(
                "{}",
                tmux::line_for(
                    &config.lake.root,
                    chrono::Utc::now(),
                    chrono::Duration::seconds(config.streaming.stale_after_secs as i64),
                )
            );
            Ok(())
        }
        Command::Status { json, .. } => run::status(&config, json).await,
        Command::Schedule(a) => crate::scheduler::cli::run(a, &config),
        Command::Doctor { json } => crate::doctor::probe::run(&config, json).await,
        Command::Bench(a) => bench::run(a, &config, cli.lake.as_deref()).await,
        Command::Debug(a) => debug::run(a, &config).await,
        Command::Upkeep(a) => upkeep::run(a, &config).await,
        Command::Config(_) | Command::Sim(_) | Command::Keys => unreachable!("handled above"),
    }
}
