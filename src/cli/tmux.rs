//! `ibq status --tmux`: one short line for tmux's `status-right`, with tmux's colour codes
//! (`#[fg=…]`). It reads only the status file the engine writes every two seconds
//! (`<lake>/.ibq-status.json`): no table is opened and the owner lock is not touched, so
//! tmux may run it every few seconds without ever standing in an engine's way.
//!
//! ```text
//! ibq ● 55/100 · 12 pend · 3 fail · 1 stale
//! ```

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::engine::{GatewayState, LegView};

/// The line tmux shows when no engine runs on the lake.
pub const OFF: &str = "#[fg=colour244]ibq off#[default]";

/// A status file older than this, from a process that is still alive, is shown as late:
/// the engine writes it every two seconds.
const LATE_SECS: i64 = 10;
/// A status file older than this is an engine that is gone (its pid may be reused).
const GONE_SECS: i64 = 120;

const GREEN: &str = "#[fg=green]";
const YELLOW: &str = "#[fg=yellow]";
const RED: &str = "#[fg=red]";
const GREY: &str = "#[fg=colour244]";
const DEFAULT: &str = "#[default]";

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 performs only the existence and permission checks.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The line for the lake at `root`, as of `now`.
pub fn line_for(root: &Path, now: DateTime<Utc>, stale_after: Duration) -> String {
    let status: Option<Value> = std::fs::read_to_string(crate::engine::runtime::status_path(root))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    match status {
        Some(s) if s["pid"].as_i64().is_some_and(alive) => line(&s, now, stale_after),
        _ => OFF.to_string(),
    }
}

/// The line for one status file's content. Only ibq's own words and numbers: nothing from
/// outside (IB's messages, addresses) reaches the status bar.
pub fn line(s: &Value, now: DateTime<Utc>, stale_after: Duration) -> String {
    let written: Option<DateTime<Utc>> = serde_json::from_value(s["written_at"].clone()).ok();
    let age = written.map(|w| (now - w).num_seconds()).unwrap_or(i64::MAX);
    if age > GONE_SECS {
        return OFF.to_string();
    }
    let mut parts = Vec::new();
    let gateway = serde_json::from_value::<GatewayState>(s["gateway"].clone()).ok();
    let (colour, mark) = match gateway {
        Some(GatewayState::Connected { .. }) => (GREEN, "●"),
        Some(GatewayState::Connecting { .. }) => (YELLOW, "…"),
        Some(GatewayState::Degraded { .. }) => (YELLOW, "▲"),
        Some(GatewayState::Reconnecting { .. }) => (RED, "↻"),
        Some(GatewayState::Disconnected { .. }) | None => (RED, "✖"),
    };
    let mut head = format!("{colour}ibq {mark}");
    if age > LATE_SECS {
        head.push_str(&format!("{DEFAULT} {YELLOW}status {}s old", age));
    }
    parts.push(format!("{head}{DEFAULT}"));

    let l = &s["lines"];
    let limit = l["limit"].as_u64().unwrap_or(0);
    let used = l["streams"].as_u64().unwrap_or(0) + l["snapshots"].as_u64().unwrap_or(0);
    if limit > 0 {
        let fill = used as f64 / limit as f64;
        let colour = if fill >= 0.9 {
            RED
        } else if fill >= 0.7 {
            YELLOW
        } else {
            ""
        };
        parts.push(paint(colour, format!("{used}/{limit}")));
    }

    let c = &s["counts"];
    let pending = c["pending"].as_u64().unwrap_or(0);
    parts.push(format!("{pending} pend"));
    let failed = c["failed"].as_u64().unwrap_or(0);
    parts.push(paint(
        if failed > 0 { RED } else { GREY },
        format!("{failed} fail"),
    ));

    let legs: Vec<LegView> = serde_json::from_value(s["legs"].clone()).unwrap_or_default();
    let (stalled, stale) = crate::console::alerts::troubled(&legs, now, stale_after);
    let troubled = stalled.len() + stale.len();
    parts.push(paint(
        if troubled > 0 { YELLOW } else { GREY },
        format!("{troubled} stale"),
    ));
    if s["worker"]["paused"].as_bool() == Some(true) {
        parts.push(paint(YELLOW, "paused".into()));
    }
    parts.join(" · ")
}

fn paint(colour: &str, text: String) -> String {
    if colour.is_empty() {
        text
    } else {
        format!("{colour}{text}{DEFAULT}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn status(gateway: Value, failed: u64, legs: Value) -> Value {
        json!({
            "pid": 1,
            "written_at": "2026-11-23T15:30:00Z",
            "gateway": gateway,
            "counts": {"pending": 12, "processing": 1, "success": 5, "failed": failed, "cancelled": 0},
            "lines": {"limit": 100, "margin": 2, "streams": 50, "snapshots": 5},
            "worker": {"running": true, "paused": false},
            "legs": legs,
        })
    }

    fn leg(conid: i32, tick: &str, state: Value) -> Value {
        json!({"conid": conid, "symbol": "SPY", "sec_type": "OPT", "expiry": null, "strike": null,
               "right": null, "strategy": null, "quantity": 1.0, "bid": null, "ask": null,
               "last": null, "bid_size": null, "ask_size": null, "volume": null,
               "last_tick_at": tick, "state": state})
    }

    fn visible(line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        while let Some(i) = rest.find("#[") {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            rest = &rest[rest.find(']').unwrap() + 1..];
        }
        out + rest
    }

    #[test]
    fn a_healthy_engine_is_green_and_short() {
        let s = status(
            json!({"state": "connected", "address": "127.0.0.1:4002", "server_version": 176,
                   "account": "DU1", "since": "2026-11-23T14:00:00Z"}),
            0,
            json!([leg(
                1,
                "2026-11-23T15:29:58Z",
                json!({"state": "streaming"})
            )]),
        );
        let line = line(&s, t("2026-11-23T15:30:01Z"), Duration::seconds(30));
        assert_eq!(
            line,
            "#[fg=green]ibq ●#[default] · 55/100 · 12 pend · #[fg=colour244]0 fail#[default] · #[fg=colour244]0 stale#[default]"
        );
        assert_eq!(
            visible(&line),
            "ibq ● · 55/100 · 12 pend · 0 fail · 0 stale"
        );
    }

    #[test]
    fn trouble_is_coloured() {
        let s = status(
            json!({"state": "disconnected", "address": "127.0.0.1:4002", "reason": "reset"}),
            3,
            json!([
                leg(1, "2026-11-23T15:28:00Z", json!({"state": "streaming"})),
                leg(
                    2,
                    "2026-11-23T15:29:59Z",
                    json!({"state": "stalled", "reason": "x"})
                ),
            ]),
        );
        let line = line(&s, t("2026-11-23T15:30:01Z"), Duration::seconds(30));
        assert!(line.starts_with("#[fg=red]ibq ✖#[default]"), "{line}");
        assert!(line.contains("#[fg=red]3 fail#[default]"), "{line}");
        assert!(line.contains("#[fg=yellow]2 stale#[default]"), "{line}");
    }

    #[test]
    fn a_late_status_says_so_and_an_old_one_is_off() {
        let s = status(json!({"state": "connecting", "address": "x"}), 0, json!([]));
        let late = line(&s, t("2026-11-23T15:30:30Z"), Duration::seconds(30));
        assert!(
            visible(&late).starts_with("ibq … status 30s old · "),
            "{late}"
        );
        assert_eq!(
            line(&s, t("2026-11-23T15:40:00Z"), Duration::seconds(30)),
            OFF
        );
    }

    #[test]
    fn no_status_file_is_off() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(line_for(dir.path(), Utc::now(), Duration::seconds(30)), OFF);
        // A file whose process is gone.
        std::fs::write(
            crate::engine::runtime::status_path(dir.path()),
            json!({"pid": i32::MAX, "written_at": Utc::now()}).to_string(),
        )
        .unwrap();
        assert_eq!(line_for(dir.path(), Utc::now(), Duration::seconds(30)), OFF);
    }
}
