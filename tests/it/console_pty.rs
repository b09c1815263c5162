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

pub struct Term {
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Term {
    pub fn screen(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    pub fn keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }

    pub async fn wait_screen(&self, what: &str, within: Duration, f: impl Fn(&str) -> bool) {
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

/// Starts the real binary with `args` in a `rows` × `cols` pseudo-terminal, in `dir`.
pub fn spawn_term(dir: &std::path::Path, args: &[&str], rows: u16, cols: u16) -> Term {
    let pty = native_pty_system()
        .openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(ibq_bin());
    cmd.args(args);
    cmd.env("TERM", "xterm-256color");
    cmd.env("NO_COLOR", "1");
    cmd.env("TMPDIR", dir);
    cmd.env_remove("IBQ_LAKE");
    // OSC 52 and the title go to the terminal itself, not through a tmux the tests run in.
    cmd.env_remove("TMUX");
    cmd.cwd(dir);
    let child = pty.slave.spawn_command(cmd).unwrap();
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
    Term {
        parser,
        raw,
        writer: pty.master.take_writer().unwrap(),
        child,
    }
}

impl Term {
    /// Quits with `q` (confirming when asked) and waits for the exit status.
    pub async fn quit(&mut self) -> portable_pty::ExitStatus {
        self.keys("q");
        if self.screen().contains("Quit") {
            self.keys("y");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader take the last bytes.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ibq did not exit; screen:\n{}",
                self.screen()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }
}

/// What the terminal was told outside the screen: bells (BEL bytes that do not end an OSC
/// sequence) and OSC 2 titles, each with its offset in the output; and where the title
/// stack was pushed and popped (`CSI 22;0t`, `CSI 23;0t`).
#[derive(Debug, Default)]
struct Signals {
    bells: Vec<usize>,
    titles: Vec<(usize, String)>,
    pushes: Vec<usize>,
    pops: Vec<usize>,
}

fn signals(raw: &[u8]) -> Signals {
    let mut out = Signals::default();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0x07 => out.bells.push(i),
            0x1b if raw.get(i + 1) == Some(&b']') => {
                // OSC: up to BEL or ST.
                let start = i + 2;
                let mut j = start;
                while j < raw.len()
                    && raw[j] != 0x07
                    && !(raw[j] == 0x1b && raw.get(j + 1) == Some(&b'\\'))
                {
                    j += 1;
                }
                let body = String::from_utf8_lossy(&raw[start..j.min(raw.len())]).to_string();
                if let Some(title) = body.strip_prefix("2;") {
                    out.titles.push((i, title.to_string()));
                }
                i = if raw.get(j) == Some(&0x07) {
                    j + 1
                } else {
                    j + 2
                };
                continue;
            }
            0x1b if raw[i..].starts_with(b"\x1b[22;0t") => out.pushes.push(i),
            0x1b if raw[i..].starts_with(b"\x1b[23;0t") => out.pops.push(i),
            _ => {}
        }
        i += 1;
    }
    out
}

/// Starts `ibq sim` as its own process on a free port; its address.
fn spawn_sim() -> (std::process::Child, String) {
    spawn_sim_with(&[])
}

/// `ibq sim` as its own process on a free port with more options (`--fail-next …`).
pub fn spawn_sim_with(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(ibq_bin())
        .args(["sim", "--port", "0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ibq sim starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .strip_prefix("ibq sim listening on ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("ibq sim printed its address: {line:?}"))
        .to_string();
    (child, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_gateway_rings_the_bell_and_sets_the_title_which_is_restored_on_exit() {
    let (mut sim, address) = spawn_sim();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let cfg = test_config(dir.path(), "");
    let out = ibq(&lake, &["enqueue", "futures_snapshot", "ES", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = uuid::Uuid::parse_str(v["request_id"].as_str().unwrap()).unwrap();

    let mut term = spawn_term(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
            "--gateway",
            &address,
        ],
        // Below 110 columns the logs pane leaves out the event's target.
        30,
        100,
    );
    wait_until("the request done", Duration::from_secs(60), async || {
        let s = ibq::queue::store::read_state(&lake).await.unwrap();
        s.get(&id).is_some_and(|r| r.status == Status::Success)
    })
    .await;

    // The logs pane: its first line about the finished request leads with the type and
    // the symbol (after the time and the level), not with an id.
    term.keys("5");
    term.wait_screen("the request's log line", Duration::from_secs(10), |s| {
        s.lines().any(|l| l.contains(" ok: "))
    })
    .await;
    let screen = term.screen();
    let first = screen
        .lines()
        .find(|l| l.contains(&id.to_string()[..8]) || l.contains(" ok: "))
        .unwrap_or_else(|| panic!("a log line about the request; screen:\n{screen}"));
    let message = first
        .split_once("INFO")
        .map(|(_, m)| m.trim_start())
        .unwrap_or_else(|| panic!("an INFO line: {first:?}"));
    assert!(
        message.starts_with("futures_snapshot ES ok: "),
        "the log line leads with the type and the symbol: {first:?}"
    );

    // Healthy: the title says so; no bell yet.
    let before = signals(&term.raw());
    assert_eq!(
        before.pushes.len(),
        1,
        "the terminal's title was saved once"
    );
    assert!(
        before
            .titles
            .first()
            .is_some_and(|(at, _)| *at > before.pushes[0]),
        "the title was saved before ibq set its own: {before:?}"
    );
    let (_, healthy) = before.titles.last().expect("an OSC 2 title");
    assert!(healthy.starts_with("ibq ✔"), "{healthy}");
    assert!(before.bells.is_empty(), "no bell while healthy: {before:?}");
    let mark = term.raw().len();

    // The gateway dies: a bell and a title naming it.
    sim.kill().unwrap();
    sim.wait().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        let raw = term.raw();
        let s = signals(&raw[mark..]);
        if !s.bells.is_empty() && s.titles.iter().any(|(_, t)| t.contains("gateway")) {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no bell and gateway title after the sim died: {s:?}; screen:\n{}",
            term.screen()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, down) = after
        .titles
        .iter()
        .find(|(_, t)| t.contains("gateway"))
        .unwrap();
    assert!(down.starts_with("ibq ✖ gateway "), "{down}");

    // On exit the saved title comes back, after ibq's last one.
    let status = term.quit().await;
    assert!(status.success(), "exit status {status:?}");
    let all = signals(&term.raw());
    let last_title = all.titles.last().unwrap().0;
    assert_eq!(all.pops.len(), 1, "the title was restored once: {all:?}");
    assert!(
        all.pops[0] > last_title,
        "restored after the last title: {all:?}"
    );
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

    let mut term = spawn_term(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
            "--gateway",
            &sim.address(),
        ],
        36,
        120,
    );

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
    let status = term.quit().await;
    assert!(status.success(), "exit status {status:?}");
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
