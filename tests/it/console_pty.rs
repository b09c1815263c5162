//! The real `ibq` binary in a pseudo-terminal against `ibq sim`: rows move to done, a
//! failed request is retried with `r`, `p` promotes a leg, `q` quits and the terminal is
//! restored; the Delta tables show each of these.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ibq::queue::Status;
use ibq::sim::{RequestKind, SimConfig, Simulator};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};

use crate::common::{ibq, ibq_bin, stderr, stdout, test_config, wait_until};

struct Term {
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Term {
    fn screen(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    fn keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }

    async fn wait_screen(&self, what: &str, within: Duration, f: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let s = self.screen();
            if f(&s) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_drives_the_queue_and_the_legs_in_a_real_terminal() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let cfg = test_config(dir.path(), "");
    // Pending work before the console starts; the bars request will meet an injected fault.
    sim.fail_next(RequestKind::HistoricalData, 1, 200);
    let mut ids = Vec::new();
    for args in [
        vec!["enqueue", "futures_snapshot", "ES", "--json"],
        vec!["enqueue", "futures_snapshot", "NQ", "--json"],
        vec!["enqueue", "market_bars", "SPY", "--json"],
    ] {
        let out = ibq(&lake, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        ids.push(uuid::Uuid::parse_str(v["request_id"].as_str().unwrap()).unwrap());
    }

    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 36,
            cols: 120,
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
    cmd.cwd(dir.path());
    let child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let parser = Arc::new(Mutex::new(vt100::Parser::new(36, 120, 0)));
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
    let mut term = Term {
        parser,
        raw,
        writer: pty.master.take_writer().unwrap(),
        child,
    };

    // The screen shows the connection and the requests moving to done.
    term.wait_screen("connected", Duration::from_secs(30), |s| {
        s.contains("connected")
    })
    .await;
    wait_until(
        "the futures snapshots done",
        Duration::from_secs(60),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            ids[..2]
                .iter()
                .all(|id| s.get(id).is_some_and(|r| r.status == Status::Success))
        },
    )
    .await;
    term.wait_screen("done 2", Duration::from_secs(10), |s| s.contains("done 2"))
        .await;

    // The bars request failed on the injected fault; retry it with `r` in the failed pane.
    wait_until(
        "the bars request failed",
        Duration::from_secs(30),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            s.get(&ids[2]).is_some_and(|r| r.status == Status::Failed)
        },
    )
    .await;
    term.wait_screen("the failed row", Duration::from_secs(10), |s| {
        s.contains("failed 1")
    })
    .await;
    term.keys("3");
    term.keys("r");
    wait_until(
        "the retried request done",
        Duration::from_secs(60),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            s.get(&ids[2]).is_some_and(|r| r.status == Status::Success)
        },
    )
    .await;
    let history = ibq::queue::store::history(&lake, ids[2]).await.unwrap();
    assert!(history
        .iter()
        .any(|h| h.event == ibq::queue::Event::Retried
            && h.changed_by == ibq::queue::Actor::Operator));
    term.wait_screen("done 3", Duration::from_secs(10), |s| s.contains("done 3"))
        .await;

    // `p` promotes SPY: the legs pane and the gauge change, the registry records it.
    let spy = sim.universe().conid_of("SPY").unwrap();
    term.keys("1");
    term.keys("p");
    term.keys(&format!("{spy} smoke-test\r"));
    term.wait_screen("the leg streaming", Duration::from_secs(30), |s| {
        s.contains("streams 1") && s.contains("SPY")
    })
    .await;
    let registry = ibq::streaming::registry::Registry::open(&lake)
        .await
        .unwrap();
    assert!(registry
        .active()
        .any(|l| l.conid == spy && l.strategy.as_deref() == Some("smoke-test")));

    // `q` quits (confirming if anything is in flight); the terminal is restored.
    term.keys("q");
    if term.screen().contains("Quit") {
        term.keys("y");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = term.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ibq did not exit; screen:\n{}",
            term.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !term.parser.lock().unwrap().screen().alternate_screen(),
        "left the alternate screen"
    );
    let raw = String::from_utf8_lossy(&term.raw.lock().unwrap()).to_string();
    assert!(
        raw.contains("\u{1b}[?1049l"),
        "the alternate screen was closed"
    );
    sim.shutdown().await;
}
