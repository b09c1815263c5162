//! Triage in a real terminal against `ibq sim`: two requests fail on the same injected IB
//! error; in the failed pane grouped by cause (`z`), marking the group marks both, `y` puts
//! both ids on the clipboard by OSC 52, and `X` dismisses them after one confirmation: the
//! table holds them CANCELLED by the operator and the failed count drops to zero.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use ibq::queue::{Actor, Event, Status};
use ibq::sim::{RequestKind, SimConfig, Simulator};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};

use crate::common::{ibq, ibq_bin, stderr, stdout, test_config, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_group_is_copied_and_dismissed_in_a_real_terminal() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let cfg = test_config(dir.path(), "");
    sim.fail_next(RequestKind::HistoricalData, 2, 200);
    let mut ids = Vec::new();
    for sym in ["SPY", "QQQ"] {
        let out = ibq(&lake, &["enqueue", "market_bars", sym, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        ids.push(uuid::Uuid::parse_str(v["request_id"].as_str().unwrap()).unwrap());
    }
    ids.sort();

    let (rows, cols) = (36, 140);
    let pty = native_pty_system()
        .openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(ibq_bin());
    cmd.args([
        "--config",
        cfg.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--gateway",
        &sim.address(),
    ]);
    cmd.env("TERM", "xterm-256color");
    cmd.env("NO_COLOR", "1");
    cmd.env_remove("TMUX");
    cmd.cwd(dir.path());
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
    let raw = Arc::new(Mutex::new(Vec::new()));
    {
        let (parser, raw) = (Arc::clone(&parser), Arc::clone(&raw));
        let mut reader = pty.master.try_clone_reader().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buf[..n]);
                raw.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
    }
    let mut writer = pty.master.take_writer().unwrap();
    let mut keys = |k: &str| {
        writer.write_all(k.as_bytes()).unwrap();
        writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    };
    let screen = || parser.lock().unwrap().screen().contents();

    wait_until(
        "both requests failed",
        Duration::from_secs(60),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            ids.iter()
                .all(|id| s.get(id).is_some_and(|r| r.status == Status::Failed))
        },
    )
    .await;
    wait_until(
        "the console shows both failures",
        Duration::from_secs(10),
        async || screen().contains("failed 2"),
    )
    .await;

    // Group by cause: one line for both, marked at once, copied.
    keys("3");
    keys("z");
    assert!(screen().contains("2 requests"), "{}", screen());
    keys(" ");
    keys("y");
    let want = base64::engine::general_purpose::STANDARD.encode(
        ids.iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let raw_text = String::from_utf8_lossy(&raw.lock().unwrap()).to_string();
    assert!(
        raw_text.contains(&format!("\u{1b}]52;c;{want}\u{7}")),
        "OSC 52 with both ids in the output"
    );

    // Dismiss the group: one confirmation.
    keys("X");
    assert!(
        screen().contains("Dismiss 2 failed requests"),
        "{}",
        screen()
    );
    keys("y");
    wait_until("both dismissed", Duration::from_secs(30), async || {
        let s = ibq::queue::store::read_state(&lake).await.unwrap();
        ids.iter().all(|id| {
            s.get(id).is_some_and(|r| {
                r.status == Status::Cancelled
                    && r.event == Event::Dismissed
                    && r.changed_by == Actor::Operator
            })
        })
    })
    .await;
    wait_until(
        "the failed count drops",
        Duration::from_secs(10),
        async || screen().contains("failed 0") || !screen().contains("failed 2"),
    )
    .await;
    assert!(!screen().contains("failed 2"), "{}", screen());

    keys("q");
    if screen().contains("Quit") {
        keys("y");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "ibq did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
    sim.shutdown().await;
}
