//! Escape injection: another program appends rows with terminal control sequences in the
//! symbol, the parameters, the error message and the result (Python `deltalake`, as any
//! writer would). `ibq list`, `ibq show` and the errors that echo their input print no
//! byte a terminal acts on; the console in a real pseudo-terminal keeps its title, its
//! alternate screen and its frame; the log file holds the text escaped.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portable_pty::{native_pty_system, CommandBuilder, PtySize};

use crate::common::{ibq, ibq_bin, python, stderr, stdout, test_config, wait_until};

/// Retitles the terminal (OSC 2), clears it, writes the clipboard (OSC 52), then a bare CR.
const EVIL: &str = "X\x1b]2;PWNED\x07\x1b[2J\x1b]52;c;aGk=\x07A\rB";
/// The same, as `ibq` must show it.
const EVIL_SEEN: &str = r"X\x1b]2;PWNED\x07\x1b[2J\x1b]52;c;aGk=\x07A\rB";
/// C1 CSI/OSC/ST, a right-to-left override and DEL.
const EVIL_C1: &str = "\u{9b}2J\u{9d}0;T\u{9c}\u{202e}RTL\u{202c}\x7f";
const EVIL_C1_SEEN: &str = r"\u{9b}2J\u{9d}0;T\u{9c}\u{202e}RTL\u{202c}\x7f";

const SYMBOL_ROW: &str = "e5c00000-0000-4000-8000-000000000001";
const KEY_ROW: &str = "e5c00000-0000-4000-8000-000000000002";
const FAILED_ROW: &str = "e5c00000-0000-4000-8000-000000000003";
const RESULT_ROW: &str = "e5c00000-0000-4000-8000-000000000004";

/// A character a terminal would act on rather than show (a newline is a newline).
fn acted_on(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && c != '\n')
        || (0x7f..=0x9f).contains(&u)
        || (0x202a..=0x202e).contains(&u)
        || (0x2066..=0x2069).contains(&u)
}

#[track_caller]
fn assert_printable(what: &str, text: &str) {
    if let Some((i, c)) = text.char_indices().find(|(_, c)| acted_on(*c)) {
        panic!(
            "{what} holds {:?} at byte {i}: {:?}",
            c,
            &text[i.saturating_sub(40)..(i + 40).min(text.len())]
        );
    }
}

/// A lake whose queue table holds one request of ibq's, then four rows another program
/// appended: a hostile symbol, a hostile parameter key and value, a FAILED row with a
/// hostile error and result, a SUCCESS row with C1 controls in its result.
fn hostile_lake(dir: &Path) -> std::path::PathBuf {
    let lake = dir.join("lake");
    let out = ibq(&lake, &["enqueue", "futures_snapshot", "ES"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = lake.join("ib_request_queue");
    python(&format!(
        r#"
import datetime, json, pyarrow as pa
from deltalake import write_deltalake
evil = "X\x1b]2;PWNED\x07\x1b[2J\x1b]52;c;aGk=\x07A\rB"
c1 = "\u009b2J\u009d0;T\u009c\u202eRTL\u202c\x7f"
now = datetime.datetime.now(datetime.timezone.utc)
ts = pa.timestamp("us", tz="UTC")
n = 4
t = pa.table({{
  "request_id": ["{SYMBOL_ROW}", "{KEY_ROW}", "{FAILED_ROW}", "{RESULT_ROW}"],
  "request_type": ["option_chain", "market_bars", "futures_snapshot", "position_update"],
  "symbol": [evil, "SPY", "NQ", "ALL"],
  "priority": pa.array([2] * n, pa.int64()),
  "status": ["PENDING", "PENDING", "FAILED", "SUCCESS"],
  "parameters": [
    json.dumps({{"target_dte": 30}}),
    json.dumps({{evil: 1, "bar_size": evil + c1}}),
    json.dumps({{"month": "front"}}),
    json.dumps({{}}),
  ],
  "result_table": ["option_snapshots", "market_bars", "futures_snapshots", "position_updates"],
  "created_at": pa.array([now] * n, ts),
  "updated_at": pa.array([now] * n, ts),
  "result_data": pa.array([None, None, json.dumps({{"note": evil}}), json.dumps({{"note": c1, c1: [evil]}})], pa.string()),
  "error_message": pa.array([None, None, "IB 200: " + evil + " " + c1, None], pa.string()),
}})
write_deltalake("{}", t, mode="append", schema_mode="merge")
"#,
        table.display()
    ));
    lake
}

#[test]
fn list_and_show_print_outside_text_as_visible_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = hostile_lake(dir.path());

    let out = ibq(&lake, &["list", "--limit", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    assert!(!list.as_bytes().contains(&0x1b), "ESC in `ibq list`");
    assert_printable("ibq list", &list);
    assert!(list.contains(EVIL_SEEN), "the symbol, escaped:\n{list}");
    assert_eq!(list.lines().count(), 2 + 5, "one line per request:\n{list}");

    let mut shown = String::new();
    for id in [SYMBOL_ROW, KEY_ROW, FAILED_ROW, RESULT_ROW] {
        let out = ibq(&lake, &["show", id]);
        assert!(out.status.success(), "show {id}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.as_bytes().contains(&0x1b), "ESC in `ibq show {id}`");
        assert_printable(&format!("ibq show {id}"), &text);
        shown.push_str(&text);
    }
    assert!(
        shown.contains(&format!("symbol         {EVIL_SEEN}")),
        "{shown}"
    );
    // The parameters and results are JSON: serde escapes C0 itself, ibq the rest.
    assert!(
        shown.contains(EVIL_C1_SEEN),
        "C1 and bidi in a result, escaped:\n{shown}"
    );
    assert!(shown.contains(r#""note": "X\u001b]2;PWNED"#), "{shown}");

    // `--json` stays JSON that round-trips the exact text.
    let out = ibq(&lake, &["show", FAILED_ROW, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v["request"]["result_data"]["note"].as_str(),
        Some(EVIL),
        "{v}"
    );
    let out = ibq(&lake, &["show", RESULT_ROW, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v["request"]["result_data"]["note"].as_str(),
        Some(EVIL_C1),
        "{v}"
    );
}

#[test]
fn errors_that_echo_their_input_print_it_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // ibq's own rejection quotes the symbol; a bad id and a bad number are quoted too (the
    // last one by the argument parser).
    for (args, quoted) in [
        (vec!["enqueue", "option_chain", EVIL], EVIL_SEEN.to_string()),
        (vec!["show", EVIL], EVIL_SEEN.to_lowercase()),
        (vec!["list", "--limit", EVIL], EVIL_SEEN.to_string()),
        (
            vec![
                "enqueue",
                "market_bars",
                "SPY",
                "--param",
                &format!("bar_size={EVIL}"),
            ],
            EVIL_SEEN.to_string(),
        ),
    ] {
        let out = ibq(&lake, &args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = stderr(&out);
        assert!(
            !err.as_bytes().contains(&0x1b),
            "ESC in the error of {args:?}"
        );
        assert_printable(&format!("the error of {args:?}"), &err);
        assert!(
            err.contains(&quoted),
            "{args:?} quotes its input escaped: {err}"
        );
    }
}

/// The real console in a pseudo-terminal, its output parsed by vt100 and kept raw.
struct Term {
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
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

    fn wait_screen(&self, what: &str, within: Duration, f: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let s = self.screen();
            if f(&s) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The title is untouched, the alternate screen still on, no OSC ever reached the
    /// terminal, and every row of the panes still starts with their border (a bare CR
    /// would have written over it).
    #[track_caller]
    fn assert_intact(&self, what: &str) {
        let parser = self.parser.lock().unwrap();
        let screen = parser.screen();
        // Only ibq's own title (`[console] title`), never one a row carried.
        let title = screen.title();
        assert!(
            title.is_empty() || (title.starts_with("ibq ") && !title.contains("PWNED")),
            "{what}: the title changed to {title:?}"
        );
        assert_eq!(screen.icon_name(), "", "{what}: the icon name changed");
        assert!(
            screen.alternate_screen(),
            "{what}: left the alternate screen"
        );
        let raw = self.raw.lock().unwrap();
        for (i, _) in raw.windows(2).enumerate().filter(|(_, w)| *w == b"\x1b]") {
            let end = raw[i..]
                .windows(2)
                .position(|w| w == b"\x1b\\")
                .map_or(raw.len(), |p| i + p);
            let osc = String::from_utf8_lossy(&raw[i..end]);
            assert!(
                osc.starts_with("\x1b]2;ibq ") && !osc.contains("PWNED"),
                "{what}: an OSC sequence other than ibq's title reached the terminal: {osc:?}"
            );
        }
        assert!(
            !raw.windows(8).any(|w| w == b"\x1b[?1049l"),
            "{what}: the alternate screen was switched off"
        );
        let (rows, _) = screen.size();
        let contents = screen.contents();
        for row in 5..rows - 3 {
            let first = screen
                .cell(row, 0)
                .map(|c| c.contents())
                .unwrap_or_default();
            assert!(
                matches!(first.as_str(), "│" | "┌" | "└"),
                "{what}: row {row} lost its border ({first:?}):\n{contents}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_draws_hostile_rows_without_obeying_them() {
    let dir = tempfile::tempdir().unwrap();
    let lake = hostile_lake(dir.path());
    let cfg = test_config(dir.path(), "");
    let (rows, cols) = (36, 120);
    let pty = native_pty_system()
        .openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(ibq_bin());
    // No gateway listens there: the rows stay where the engine put them.
    cmd.args([
        "--config",
        cfg.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--gateway",
        "127.0.0.1:9",
    ]);
    cmd.env("TERM", "xterm-256color");
    cmd.env("NO_COLOR", "1");
    cmd.env_remove("IBQ_LAKE");
    cmd.cwd(dir.path());
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
    let mut term = Term {
        parser,
        raw,
        writer: pty.master.take_writer().unwrap(),
        child,
    };

    // Once the engine has taken the rows in (the bad parameter key rejected), the console
    // draws them within a few frames: as requests or as rejections, escaped either way.
    let key_row = uuid::Uuid::parse_str(KEY_ROW).unwrap();
    wait_until(
        "the engine took the rows in",
        Duration::from_secs(30),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            s.get(&key_row)
                .is_some_and(|r| r.status == ibq::queue::Status::Failed)
        },
    )
    .await;
    std::thread::sleep(Duration::from_secs(2));
    term.assert_intact("the panes");
    term.wait_screen("the hostile rows", Duration::from_secs(30), |s| {
        s.contains(r"X\x1b]2;") && s.contains(r"IB 200: X\x1b]2;PWNED")
    });
    term.assert_intact("the panes");

    // The detail of the first pending row (ibq's own) and of the newest failed row (a
    // hostile one, a rejection or the FAILED row); enter opens and closes it.
    for pane in ["1", "3"] {
        term.keys(pane);
        term.keys("\r");
        term.wait_screen("the detail view", Duration::from_secs(10), |s| {
            s.contains("History (oldest first)")
        });
        term.assert_intact(&format!("the detail in pane {pane}"));
        if pane == "3" {
            let s = term.screen();
            assert!(
                s.contains(r"X\x1b]2;PWNED"),
                "the escaped text is shown:\n{s}"
            );
        }
        term.keys("\r");
        term.wait_screen("the detail closed", Duration::from_secs(10), |s| {
            !s.contains("History (oldest first)")
        });
    }

    // The whole symbol, visibly escaped, in the detail of the request that carries it:
    // in the pending pane if the engine took it as a request, in the failed pane if it
    // rejected it.
    let id = uuid::Uuid::parse_str(SYMBOL_ROW).unwrap();
    let state = ibq::queue::store::read_state(&lake).await.unwrap();
    let pane = match state.get(&id).map(|r| r.status) {
        Some(ibq::queue::Status::Pending) => "1",
        Some(ibq::queue::Status::Failed) => "3",
        other => panic!("the hostile-symbol row is {other:?}"),
    };
    term.keys(pane);
    term.keys(&format!("/{SYMBOL_ROW}\r"));
    term.keys("\r");
    term.wait_screen("the symbol row's detail", Duration::from_secs(10), |s| {
        s.contains(EVIL_SEEN)
    });
    term.assert_intact("the detail of the hostile symbol");
    term.keys("\r");

    // The engine's complaint about the bad parameter key, in the logs pane's detail.
    term.keys("5");
    term.keys("/pwned\r");
    term.keys("\r");
    term.wait_screen(
        "the rejection in the log detail",
        Duration::from_secs(10),
        |s| s.contains(r"X\x1b]2;PWNED\x07"),
    );
    term.assert_intact("the log detail");
    term.keys("\r");

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
    // No row's title was ever shown; ibq's own is taken back off the terminal's title
    // stack (`CSI 23;0t`) after the last one it set.
    let title = term.parser.lock().unwrap().screen().title().to_string();
    assert!(
        title.is_empty() || (title.starts_with("ibq ") && !title.contains("PWNED")),
        "{title:?}"
    );
    let raw = term.raw.lock().unwrap().clone();
    let last_title = raw.windows(2).rposition(|w| w == b"\x1b]");
    let pop = raw.windows(7).rposition(|w| w == b"\x1b[23;0t");
    assert!(
        pop.is_some() && pop > last_title,
        "the terminal's title was restored after ibq's last ({last_title:?}, {pop:?})"
    );

    // The log file holds the same complaint, escaped, one line per event.
    let mut log = String::new();
    for entry in std::fs::read_dir(dir.path().join("logs")).unwrap() {
        log.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert_printable("the log file", &log);
    assert!(
        log.contains(r"\x1b]2;PWNED"),
        "the rejection is logged:\n{log}"
    );
}
