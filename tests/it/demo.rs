//! `ibq demo` in a pseudo-terminal: its first thirty seconds log no ERROR line. The demo's
//! clock runs four times faster than its usual sixty (`--speed 240`), so the half hour of
//! market those seconds cover (09:25 to 09:55 New York: the open, the first option chains,
//! futures and position polls) passes in a few seconds of the test.

use std::time::Duration;

use crate::console_pty::spawn_term;

/// The demo's header clock (`09:41:07 ET market …`) as minutes after midnight.
fn header_minutes(screen: &str) -> Option<u32> {
    let at = screen.find(" ET market ")?;
    let hms = screen.get(at.checked_sub(8)?..at)?;
    let h: u32 = hms.get(0..2)?.parse().ok()?;
    let m: u32 = hms.get(3..5)?.parse().ok()?;
    Some(h * 60 + m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_logs_no_error_line_in_its_first_thirty_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // An empty configuration: the defaults, whatever the machine's user config says.
    let cfg = dir.path().join("ibq.toml");
    std::fs::write(&cfg, "").unwrap();
    // The demo keeps its lake and logs under the temp folder: this test's own (TMPDIR).
    let mut term = spawn_term(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--clock",
            "2026-11-23T09:25:00-05:00",
            "--speed",
            "240",
            "demo",
        ],
        30,
        100,
    );
    term.wait_screen(
        "the demo connected, streaming its condor, past 09:55 ET with requests done",
        Duration::from_secs(90),
        |s| {
            s.contains("● connected")
                && s.contains("streams 4")
                && !s.contains("done 0 ")
                && header_minutes(s).is_some_and(|m| m >= 9 * 60 + 55)
        },
    )
    .await;
    let screen = term.screen();
    let status = term.quit().await;
    assert!(
        status.success(),
        "exit status {status:?}; screen:\n{screen}"
    );

    let logs = dir.path().join("ibq-demo").join("logs");
    let mut text = String::new();
    for entry in std::fs::read_dir(&logs).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(
        text.contains("demo: simulator and lake ready"),
        "the demo's log file is in {}: {text}",
        logs.display()
    );
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "ERROR lines:\n{}", errors.join("\n"));
}
