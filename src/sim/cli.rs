//! Command-line entry of `ibq sim`.

use std::time::Duration;

use anyhow::Context;

use super::{RequestKind, SimConfig, Simulator};

/// Options of `ibq sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Port to listen on (127.0.0.1 only; 0 = any free port).
    #[arg(long, default_value_t = 4002)]
    pub port: u16,
    /// Seed of prices, faults and the demo portfolio.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Market-data lines of the account.
    #[arg(long, default_value_t = 100)]
    pub lines: u32,
    /// Start the sim clock here (RFC 3339, e.g. 2026-11-23T09:25:00-05:00); default real time.
    #[arg(long, value_parser = parse_clock)]
    pub clock: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Sim seconds per real second.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed, allow_hyphen_values = true)]
    pub speed: f64,
    /// Start with the market closed (frozen stock/option quotes, market data type 2).
    #[arg(long)]
    pub market_closed: bool,
    /// Text control channel port on 127.0.0.1 (0 = any free port).
    #[arg(long)]
    pub control_port: Option<u16>,
    /// Milliseconds a client may take to send its hello and StartApi.
    #[arg(long, default_value_t = 10_000)]
    pub handshake_timeout_ms: u64,
    /// Milliseconds between streaming tick updates.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    pub tick_interval_ms: u64,
    /// Messages per second a client may send before error 100 (0 = unlimited).
    #[arg(long, default_value_t = 50)]
    pub max_rate: u32,
    /// Managed account id.
    #[arg(long, default_value = "DU1234567")]
    pub account: String,
    /// Fail requests of a kind at random: KIND=RATE (repeatable), e.g. historical_data=0.1.
    #[arg(long, value_parser = parse_rate)]
    pub error_rate: Vec<(RequestKind, f64)>,
    /// Delay answers of a kind: KIND=MS (repeatable), e.g. market_data=200.
    #[arg(long, value_parser = parse_latency)]
    pub latency: Vec<(RequestKind, u64)>,
    /// Fail the first requests of a kind: KIND=COUNT:CODE (repeatable), e.g. historical_data=3:162.
    #[arg(long, value_parser = parse_fail_next)]
    pub fail_next: Vec<(RequestKind, u32, i32)>,
    /// Restart the gateway (close every connection) every this many seconds.
    #[arg(long)]
    pub restart_every: Option<u64>,
    /// Milliseconds a restart refuses connections.
    #[arg(long, default_value_t = 2_000)]
    pub restart_down_ms: u64,
    /// Run a nightly reset (1100, then the restore code) every this many seconds.
    #[arg(long)]
    pub reset_every: Option<u64>,
    /// Code a nightly reset restores with: 1101 (data lost) or 1102 (data kept).
    #[arg(long, default_value_t = 1102, value_parser = parse_reset_code)]
    pub reset_code: i32,
    /// Milliseconds after a snapshot's data until its end (TickSnapshotEnd); the line is held
    /// meanwhile. A gateway takes about 11 s.
    #[arg(long, default_value_t = 11_000)]
    pub snapshot_end_ms: u64,
    /// Market-data permissions of the account: live subscriptions, delayed data only, or none.
    #[arg(long, value_enum, default_value_t = super::market_data::Permissions::Live)]
    pub permissions: super::market_data::Permissions,
    /// Another session holds the account's live data (every market-data request gets 10197).
    #[arg(long)]
    pub competing_session: bool,
    /// Milliseconds between the 1100 and the restore notice.
    #[arg(long, default_value_t = 5_000)]
    pub reset_after_ms: u64,
    /// A nightly reset answers no request until its restore notice (answers held across a
    /// 1101 are never sent).
    #[arg(long)]
    pub reset_silent: bool,
    /// Accept connections but never answer their handshake (switch back with the control
    /// channel's `handshake answer`).
    #[arg(long)]
    pub stall_handshake: bool,
}

fn parse_clock(s: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("expected RFC 3339 like 2026-11-23T09:25:00-05:00: {e}"))
}

fn parse_reset_code(s: &str) -> Result<i32, String> {
    match s {
        "1101" => Ok(1101),
        "1102" => Ok(1102),
        _ => Err(format!("expected 1101 or 1102, got {s:?}")),
    }
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("speed must be a positive number, got {s:?}")),
    }
}

fn split_kind(s: &str) -> Result<(RequestKind, &str), String> {
    let (kind, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KIND=VALUE, got {s:?}"))?;
    Ok((
        kind.parse()
            .map_err(|e: super::UnknownKind| e.to_string())?,
        value,
    ))
}

fn parse_rate(s: &str) -> Result<(RequestKind, f64), String> {
    let (kind, value) = split_kind(s)?;
    match value.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok((kind, rate)),
        _ => Err(format!("rate must be between 0 and 1, got {value:?}")),
    }
}

fn parse_latency(s: &str) -> Result<(RequestKind, u64), String> {
    let (kind, value) = split_kind(s)?;
    Ok((
        kind,
        value
            .parse()
            .map_err(|_| format!("invalid milliseconds {value:?}"))?,
    ))
}

fn parse_fail_next(s: &str) -> Result<(RequestKind, u32, i32), String> {
    let (kind, value) = split_kind(s)?;
    let (count, code) = value
        .split_once(':')
        .ok_or_else(|| format!("expected COUNT:CODE, got {value:?}"))?;
    Ok((
        kind,
        count
            .parse()
            .map_err(|_| format!("invalid count {count:?}"))?,
        code.parse().map_err(|_| format!("invalid code {code:?}"))?,
    ))
}

/// Runs the simulator until SIGINT or SIGTERM.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    // Connections and errors go to stderr (RUST_LOG overrides the level); stdout keeps the
    // one listening line scripts wait for. A subscriber set up by the caller wins.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let config = SimConfig {
        port: args.port,
        seed: args.seed,
        lines: args.lines,
        clock_start: args.clock,
        speed: args.speed,
        market_closed: args.market_closed,
        control_port: args.control_port,
        handshake_timeout: Duration::from_millis(args.handshake_timeout_ms),
        tick_interval: Duration::from_millis(args.tick_interval_ms),
        max_messages_per_sec: args.max_rate,
        account: args.account.clone(),
        portfolio: None,
        snapshot_end: Duration::from_millis(args.snapshot_end_ms),
        permissions: args.permissions,
        competing_session: args.competing_session,
        reset_silent: args.reset_silent,
        stall_handshake: args.stall_handshake,
    };
    let sim = Simulator::start(config).await?;
    for (kind, rate) in &args.error_rate {
        sim.set_error_rate(*kind, *rate);
    }
    for (kind, ms) in &args.latency {
        sim.set_latency(*kind, Duration::from_millis(*ms));
    }
    for (kind, count, code) in &args.fail_next {
        sim.fail_next(*kind, *count, *code);
    }
    let control = sim
        .control_address()
        .map(|a| format!(", control {a}"))
        .unwrap_or_default();
    println!(
        "ibq sim listening on {} (seed {}, {} lines{control})",
        sim.address(),
        args.seed,
        args.lines
    );
    if let Some(secs) = args.restart_every.filter(|s| *s > 0) {
        let down = Duration::from_millis(args.restart_down_ms);
        repeat_fault(sim.clone(), secs, move |sim| sim.restart(down));
    }
    if let Some(secs) = args.reset_every.filter(|s| *s > 0) {
        let (code, after) = (args.reset_code, Duration::from_millis(args.reset_after_ms));
        repeat_fault(sim.clone(), secs, move |sim| sim.nightly_reset(code, after));
    }
    wait_for_signal()
        .await
        .context("waiting for SIGINT/SIGTERM")?;
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

/// Runs `fault` on the simulator every `secs` seconds, the first time `secs` from now.
fn repeat_fault(
    sim: super::SimHandle,
    secs: u64,
    fault: impl Fn(&super::SimHandle) + Send + 'static,
) {
    tokio::spawn(async move {
        let period = Duration::from_secs(secs);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            every.tick().await;
            fault(&sim);
        }
    });
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn options_parse_and_bad_ones_fail() {
        let cli = Cli::try_parse_from([
            "ibq",
            "--port",
            "0",
            "--clock",
            "2026-11-23T09:25:00-05:00",
            "--speed",
            "60",
            "--error-rate",
            "historical_data=0.1",
            "--fail-next",
            "contract_details=2:200",
            "--latency",
            "market_data=50",
            "--permissions",
            "delayed",
            "--competing-session",
            "--snapshot-end-ms",
            "500",
        ])
        .map_err(|e| e.to_string());
        let sim = cli.map(|c| c.sim);
        assert!(
            sim.as_ref().is_ok_and(|s| s.speed == 60.0
                && s.fail_next == [(RequestKind::ContractDetails, 2, 200)]
                && s.permissions == super::super::market_data::Permissions::Delayed
                && s.competing_session
                && s.snapshot_end_ms == 500),
            "{sim:?}"
        );
        for bad in [
            vec!["ibq", "--speed", "0"],
            vec!["ibq", "--speed", "-1"],
            vec!["ibq", "--clock", "tomorrow"],
            vec!["ibq", "--error-rate", "orders=0.5"],
            vec!["ibq", "--error-rate", "market_data=2"],
            vec!["ibq", "--fail-next", "positions=3"],
            vec!["ibq", "--reset-code", "1100"],
            vec!["ibq", "--port", "70000"],
            vec!["ibq", "--permissions", "maybe"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?} must fail");
        }
    }
}
