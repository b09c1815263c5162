//! Where the output goes: a reader that closes the pipe, a file instead of a terminal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{config_file, seeded_lake};
use crate::common::{ibq_bin, stderr};

#[test]
fn a_reader_that_stops_early_ends_the_listing_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    seeded_lake(&lake);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // `| head -0`: nobody reads, the first write meets a closed pipe.
    let out = Command::new(ibq_bin())
        .args(["list", "--limit", "0", "--lake"])
        .arg(&lake)
        .env_remove("IBQ_LAKE")
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "ended by {:?}: {err}",
        out.status
    );
}

#[test]
fn the_engine_writes_no_colour_codes_into_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config_file(d, "quiet.toml", "[scheduler]\nenabled = false\n");
    let log = d.join("run.out");
    let mut child = Command::new(ibq_bin())
        .args([
            "run",
            "--config",
            &cfg,
            "--gateway",
            "127.0.0.1:9",
            "--lake",
        ])
        .arg(d.join("lake"))
        .env_remove("IBQ_LAKE")
        .env_remove("NO_COLOR")
        .current_dir(d)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("engine running")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60) && child.try_wait().unwrap().is_none(),
            "the engine did not report running: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in the file: {text:?}"
    );
}
