//! The gateway a benchmark drains against: `ibq sim` in the benchmark's own process, or
//! `ibq sim` as a process of its own (`--sim-process`), as a real gateway is. Inside the
//! benchmark the simulator shares the engine's threads, so a busy engine delays the
//! simulator's reading too; as a process it reads the socket on its own.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::sim::{SimConfig, SimHandle, Simulator, Universe};

/// What the gateway counted, as the control channel's `stats` reports it.
#[derive(Debug, Default, Clone)]
pub struct GatewayCounts {
    pub messages_received: u64,
    pub line_seconds: f64,
    pub lines_limit: u32,
    pub max_lines_in_use: u32,
    pub errors: HashMap<i32, u64>,
}

impl GatewayCounts {
    /// Reads the `key=value` words of a `stats` reply.
    pub fn parse(reply: &str) -> anyhow::Result<Self> {
        let mut counts = Self::default();
        let mut seen = 0;
        for word in reply.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let bad = || anyhow!("stats: {key} has {value:?}, not a number");
            match key {
                "messages" => counts.messages_received = value.parse().map_err(|_| bad())?,
                "line_seconds" => counts.line_seconds = value.parse().map_err(|_| bad())?,
                "lines_limit" => counts.lines_limit = value.parse().map_err(|_| bad())?,
                "max_lines" => counts.max_lines_in_use = value.parse().map_err(|_| bad())?,
                _ => {
                    if let Some(code) = key.strip_prefix("error_") {
                        let code = code.parse().map_err(|_| bad())?;
                        counts
                            .errors
                            .insert(code, value.parse().map_err(|_| bad())?);
                    }
                    continue;
                }
            }
            seen += 1;
        }
        if seen < 4 {
            bail!(
                "stats reply without messages, line_seconds, lines_limit and max_lines: {reply:?}"
            );
        }
        Ok(counts)
    }
}

/// A simulator for one benchmark run.
pub enum BenchSim {
    InProcess(SimHandle),
    Process {
        child: Box<tokio::process::Child>,
        address: String,
        control: String,
        universe: Universe,
    },
}

impl BenchSim {
    /// Starts `ibq sim` with its defaults: here, or as a process of its own.
    pub async fn start(own_process: bool) -> anyhow::Result<Self> {
        let here = Simulator::start(SimConfig {
            port: 0,
            ..SimConfig::default()
        })
        .await?;
        if !own_process {
            return Ok(Self::InProcess(here));
        }
        // The same seed and clock list the same contracts: the requests are made from this
        // one's universe.
        let universe = here.universe();
        here.shutdown().await;
        let exe = std::env::current_exe().context("finding the ibq binary")?;
        let mut child = tokio::process::Command::new(exe)
            .args(["sim", "--port", "0", "--control-port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting ibq sim")?;
        let stdout = child.stdout.take().context("ibq sim's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("ibq sim did not say where it listens within 30 s")??
            .context("ibq sim ended before it listened")?;
        let (address, control) = parse_listening(&line)?;
        // Keep the pipe drained so the simulator never blocks on its stdout.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self::Process {
            child: Box::new(child),
            address,
            control,
            universe,
        })
    }

    pub fn address(&self) -> String {
        match self {
            Self::InProcess(sim) => sim.address(),
            Self::Process { address, .. } => address.clone(),
        }
    }

    pub fn universe(&self) -> Universe {
        match self {
            Self::InProcess(sim) => sim.universe(),
            Self::Process { universe, .. } => universe.clone(),
        }
    }

    /// Where the simulator runs, for the report.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::InProcess(_) => "in this process",
            Self::Process { .. } => "as a process of its own",
        }
    }

    /// What the simulator counted so far.
    pub async fn counts(&self) -> anyhow::Result<GatewayCounts> {
        match self {
            Self::InProcess(sim) => {
                let s = sim.stats();
                Ok(GatewayCounts {
                    messages_received: s.messages_received,
                    line_seconds: s.line_seconds,
                    lines_limit: s.lines_limit,
                    max_lines_in_use: s.max_lines_in_use,
                    errors: s.errors,
                })
            }
            Self::Process { control, .. } => {
                let stream = tokio::net::TcpStream::connect(control.as_str())
                    .await
                    .with_context(|| {
                        format!("connecting to ibq sim's control channel {control}")
                    })?;
                let (rd, mut wr) = stream.into_split();
                wr.write_all(b"stats\n").await?;
                let mut reply = String::new();
                BufReader::new(rd).read_line(&mut reply).await?;
                let reply = reply
                    .trim()
                    .strip_prefix("ok ")
                    .ok_or_else(|| anyhow!("ibq sim answered stats with {reply:?}"))?;
                GatewayCounts::parse(reply)
            }
        }
    }

    pub async fn shutdown(self) {
        match self {
            Self::InProcess(sim) => sim.shutdown().await,
            Self::Process { mut child, .. } => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }
}

/// The gateway and control addresses of `ibq sim`'s listening line.
fn parse_listening(line: &str) -> anyhow::Result<(String, String)> {
    let bad = || anyhow!("unexpected first line from ibq sim: {line:?}");
    let rest = line.strip_prefix("ibq sim listening on ").ok_or_else(bad)?;
    let (address, rest) = rest.split_once(' ').ok_or_else(bad)?;
    let control = rest
        .split_once("control ")
        .map(|(_, c)| c.trim_end_matches(')').to_string())
        .ok_or_else(bad)?;
    Ok((address.to_string(), control))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_and_stats_are_read() {
        let (a, c) = parse_listening(
            "ibq sim listening on 127.0.0.1:4100 (seed 42, 100 lines, control 127.0.0.1:4101)",
        )
        .unwrap();
        assert_eq!(
            (a.as_str(), c.as_str()),
            ("127.0.0.1:4100", "127.0.0.1:4101")
        );
        let counts = GatewayCounts::parse(
            "connections_open=1 connections_total=1 messages=2020 lines_in_use=0 max_lines=95 contract_details=3 error_100=4 error_2104=1 line_seconds=1643.5 lines_limit=100",
        )
        .unwrap();
        assert_eq!(counts.messages_received, 2020);
        assert_eq!(counts.errors.get(&100), Some(&4));
        assert_eq!(counts.lines_limit, 100);
        assert!((counts.line_seconds - 1643.5).abs() < 1e-9);
        assert!(GatewayCounts::parse("connections_open=0").is_err());
        assert!(parse_listening("listening somewhere").is_err());
    }
}
