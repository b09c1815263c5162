//! The line-based text control channel: one command per line, one reply line
//! (`ok ...` or `error ...`).
//!
//! Commands: `restart [DOWN_MS]`, `nightly_reset [1101|1102] [AFTER_MS] [silent]`,
//! `error_rate KIND RATE`, `latency KIND MS`, `fail_next KIND COUNT CODE`,
//! `market_closed on|off`, `farm FARM ok|broken|inactive|connecting`,
//! `handshake stall|answer`, `stats`, `now`, `help`.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::faults::RequestKind;
use super::server::SimHandle;

/// Longest command line accepted; longer lines are refused and the connection closed.
const MAX_LINE: u64 = 1024;

const HELP: &str = "commands: restart [DOWN_MS] | nightly_reset [1101|1102] [AFTER_MS] [silent] | error_rate KIND RATE | latency KIND MS | fail_next KIND COUNT CODE | market_closed on|off | farm FARM ok|broken|inactive|connecting | handshake stall|answer | stats | now | help; KIND = contract_details|market_data|historical_data|positions|sec_def_opt_params|current_time; FARM = market_data (usfarm)|usopt|usfuture|eufarm|historical|sec_def";

pub(crate) async fn serve(
    handle: SimHandle,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { tokio::spawn(session(handle.clone(), stream)); }
                Err(e) => {
                    tracing::warn!("control accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

async fn session(handle: SimHandle, stream: TcpStream) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let mut line = String::new();
        match (&mut rd).take(MAX_LINE).read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !line.ends_with('\n') && line.len() as u64 >= MAX_LINE {
            let _ = wr.write_all(b"error line too long\n").await;
            return;
        }
        let reply = match execute(&handle, line.trim()) {
            Ok(text) => format!("ok {text}\n"),
            Err(text) => format!("error {text}\n"),
        };
        if wr.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn kind(arg: Option<&str>) -> Result<RequestKind, String> {
    arg.ok_or("missing request kind")?
        .parse()
        .map_err(|e: super::faults::UnknownKind| e.to_string())
}

fn number<T: std::str::FromStr>(arg: Option<&str>, what: &str) -> Result<T, String> {
    let arg = arg.ok_or(format!("missing {what}"))?;
    arg.parse().map_err(|_| format!("invalid {what} {arg:?}"))
}

/// Runs one command line against the simulator; the reply text without `ok`/`error`.
pub fn execute(handle: &SimHandle, line: &str) -> Result<String, String> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("");
    let mut arg = || words.next();
    match command {
        "restart" => {
            let down: u64 = arg().map_or(Ok(0), |a| number(Some(a), "milliseconds"))?;
            handle.restart(Duration::from_millis(down));
            Ok(format!("restarting, down for {down} ms"))
        }
        "nightly_reset" => {
            let code: i32 = arg().map_or(Ok(1102), |a| number(Some(a), "code"))?;
            if code != 1101 && code != 1102 {
                return Err(format!("restored code must be 1101 or 1102, got {code}"));
            }
            let after: u64 = arg().map_or(Ok(5000), |a| number(Some(a), "milliseconds"))?;
            let silent = match arg() {
                None => false,
                Some("silent") => true,
                Some(other) => return Err(format!("expected silent or nothing, got {other:?}")),
            };
            handle.nightly_reset_with(code, Duration::from_millis(after), silent);
            let quiet = if silent {
                ", nothing answered until then"
            } else {
                ""
            };
            Ok(format!("1100 sent, {code} in {after} ms{quiet}"))
        }
        "farm" => {
            let farm: super::Farm = arg().ok_or("missing farm")?.parse()?;
            let status: super::FarmStatus = arg().ok_or("missing farm state")?.parse()?;
            let code = handle.set_farm(farm, status)?;
            Ok(format!(
                "{} farm {status:?}, notice {code} sent",
                farm.name()
            ))
        }
        "handshake" => {
            let stall = match arg() {
                Some("stall") => true,
                Some("answer") => false,
                other => return Err(format!("expected stall or answer, got {other:?}")),
            };
            handle.set_stall_handshake(stall);
            Ok(if stall {
                "new connections get no handshake answer".to_string()
            } else {
                "handshakes answered".to_string()
            })
        }
        "error_rate" => {
            let kind = kind(arg())?;
            let rate: f64 = number(arg(), "rate")?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("rate must be between 0 and 1, got {rate}"));
            }
            handle.set_error_rate(kind, rate);
            Ok(format!("{kind} error rate {rate}"))
        }
        "latency" => {
            let kind = kind(arg())?;
            let ms: u64 = number(arg(), "milliseconds")?;
            handle.set_latency(kind, Duration::from_millis(ms));
            Ok(format!("{kind} latency {ms} ms"))
        }
        "fail_next" => {
            let kind = kind(arg())?;
            let count: u32 = number(arg(), "count")?;
            let code: i32 = number(arg(), "code")?;
            handle.fail_next(kind, count, code);
            Ok(format!("next {count} {kind} requests fail with {code}"))
        }
        "market_closed" => {
            let closed = match arg() {
                Some("on" | "true" | "1") => true,
                Some("off" | "false" | "0") => false,
                other => return Err(format!("expected on or off, got {other:?}")),
            };
            handle.set_market_closed(closed);
            Ok(format!("market {}", if closed { "closed" } else { "open" }))
        }
        "stats" => Ok(handle.stats().to_string()),
        "now" => Ok(handle.now().to_rfc3339()),
        "help" => Ok(HELP.to_string()),
        "" => Err("empty command".to_string()),
        other => Err(format!("unknown command {other:?}; {HELP}")),
    }
}
