//! Triage in a real terminal against `ibq sim`:
//! - three requests fail on the same injected IB error; with a filter showing one of them,
//!   `D` dismisses only that one, with the reason typed; in the failed pane grouped by cause
//!   (`z`), marking the group marks the other two, `y` puts both ids on the clipboard by
//!   OSC 52, and `X` dismisses them (the default reason kept) after one confirmation: the
//!   table holds all three CANCELLED by the operator with their reasons, and the failed count
//!   drops to zero;
//! - a request held by the gateway (its latency fault) is released from the processing pane
//!   with `u`: PENDING again by the operator, no attempt counted, its line freed at the
//!   gateway.

use std::time::Duration;

use base64::Engine;
use chrono::DateTime;
use ibq::queue::{Actor, Event, Request, Status};
use ibq::sim::{RequestKind, SimConfig, Simulator};
use uuid::Uuid;

use crate::common::{ibq, stderr, stdout, test_config, wait_until};
use crate::console_pty::{spawn_term, Term};

fn enqueue(lake: &std::path::Path, ty: &str, symbol: &str) -> Uuid {
    let out = ibq(lake, &["enqueue", ty, symbol, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    Uuid::parse_str(v["request_id"].as_str().unwrap()).unwrap()
}

async fn row(lake: &std::path::Path, id: Uuid) -> Option<Request> {
    let s = ibq::queue::store::read_state(lake).await.unwrap();
    s.get(&id).map(|r| (**r).clone())
}

/// The console with its engine on `lake` against `gateway`, in a 36×140 terminal.
fn console(dir: &std::path::Path, lake: &std::path::Path, gateway: &str) -> Term {
    let cfg = test_config(dir, "");
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--gateway",
        gateway,
    ];
    spawn_term(dir, &args, 36, 140)
}

async fn quit(mut console: Term) {
    let status = console.quit().await;
    assert!(status.success(), "exit status {status:?}");
}

fn dismissed_with(r: &Request, reason: &str) -> bool {
    r.status == Status::Cancelled
        && r.event == Event::Dismissed
        && r.changed_by == Actor::Operator
        && r.result_data
            .as_ref()
            .and_then(|d| d["dismiss_reason"].as_str())
            == Some(reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_dismissed_by_filter_and_by_group_in_a_real_terminal() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    sim.fail_next(RequestKind::HistoricalData, 3, 200);
    let spy = enqueue(&lake, "market_bars", "SPY");
    let qqq = enqueue(&lake, "market_bars", "QQQ");
    let iwm = enqueue(&lake, "market_bars", "IWM");
    let mut pair = vec![spy, qqq];
    pair.sort();

    let mut console = console(dir.path(), &lake, &sim.address());
    wait_until(
        "the three requests failed",
        Duration::from_secs(60),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            [spy, qqq, iwm]
                .iter()
                .all(|id| s.get(id).is_some_and(|r| r.status == Status::Failed))
        },
    )
    .await;
    wait_until(
        "the console shows the failures",
        Duration::from_secs(10),
        async || console.screen().contains("failed 3"),
    )
    .await;

    // Only what the filter shows: IWM, with the reason typed.
    console.keys("3");
    console.keys("/symbol:iwm\r");
    assert!(
        console.screen().contains("Failed · symbol:iwm · 1–1 of 1"),
        "{}",
        console.screen()
    );
    console.keys("D");
    assert!(console.screen().contains("reason"), "{}", console.screen());
    console.keys("\x15delisted symbol\r");
    assert!(
        console
            .screen()
            .contains("Dismiss 1 failed request shown by filter \"symbol:iwm\"?"),
        "{}",
        console.screen()
    );
    console.keys("y");
    wait_until("IWM dismissed", Duration::from_secs(30), async || {
        row(&lake, iwm)
            .await
            .is_some_and(|r| dismissed_with(&r, "delisted symbol"))
    })
    .await;
    for id in [spy, qqq] {
        assert_eq!(row(&lake, id).await.unwrap().status, Status::Failed);
    }
    wait_until(
        "the failed count drops to 2",
        Duration::from_secs(10),
        async || console.screen().contains("failed 2"),
    )
    .await;

    // The filter cleared, grouped by cause: one line for both, marked at once, copied.
    console.keys("\x1b");
    console.keys("z");
    assert!(
        console.screen().contains("2 requests"),
        "{}",
        console.screen()
    );
    console.keys(" ");
    console.keys("y");
    let want = base64::engine::general_purpose::STANDARD.encode(
        pair.iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    assert!(
        String::from_utf8_lossy(&console.raw()).contains(&format!("\u{1b}]52;c;{want}\u{7}")),
        "OSC 52 with both ids in the output"
    );

    // Dismiss the group: the default reason kept, one confirmation.
    console.keys("X");
    console.keys("\r");
    assert!(
        console.screen().contains("Dismiss 2 failed requests"),
        "{}",
        console.screen()
    );
    console.keys("y");
    wait_until("both dismissed", Duration::from_secs(30), async || {
        let mut all = true;
        for id in &pair {
            all &= row(&lake, *id)
                .await
                .is_some_and(|r| dismissed_with(&r, "dismissed in the console"));
        }
        all
    })
    .await;
    wait_until(
        "the failed count drops to 0",
        Duration::from_secs(10),
        async || console.screen().contains("failed 0"),
    )
    .await;
    quit(console).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_request_is_released_from_the_processing_pane_in_a_real_terminal() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        clock_start: DateTime::parse_from_rfc3339("2026-11-23T10:00:00-05:00").ok(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // The gateway holds every quote's answer: the snapshot sits on its line.
    sim.set_latency(RequestKind::MarketData, Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let es = enqueue(&lake, "futures_snapshot", "ES");

    let mut console = console(dir.path(), &lake, &sim.address());
    wait_until(
        "the quote holds a line at the gateway",
        Duration::from_secs(60),
        async || {
            row(&lake, es)
                .await
                .is_some_and(|r| r.status == Status::Processing)
                && sim.stats().lines_in_use == 1
        },
    )
    .await;
    // Paused, so it is not claimed again at once; then released from its pane.
    console.keys("P");
    console.keys("2");
    wait_until(
        "the processing pane shows it",
        Duration::from_secs(10),
        async || console.screen().contains("Processing · 1–1 of 1"),
    )
    .await;
    console.keys("u");
    assert!(
        console
            .screen()
            .contains("Release 1 processing request (futures_snapshot ES)?"),
        "{}",
        console.screen()
    );
    console.keys("y");
    wait_until(
        "released by the operator",
        Duration::from_secs(30),
        async || {
            row(&lake, es).await.is_some_and(|r| {
                r.status == Status::Pending
                    && r.event == Event::Released
                    && r.changed_by == Actor::Operator
            })
        },
    )
    .await;
    let r = row(&lake, es).await.unwrap();
    assert_eq!((r.attempts, r.failures), (0, 0), "no attempt counted");
    wait_until(
        "the line freed at the gateway",
        Duration::from_secs(15),
        async || sim.stats().lines_in_use == 0,
    )
    .await;
    wait_until("the console says so", Duration::from_secs(10), async || {
        console.screen().contains("released 1 request")
    })
    .await;
    quit(console).await;
    sim.shutdown().await;
}
