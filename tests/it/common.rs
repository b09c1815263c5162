//! Helpers shared by the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// The `ibq` binary cargo built for these tests.
pub fn ibq_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ibq")
}

/// Runs `ibq` with `--lake <lake>` and the given arguments, isolated from any ibq.toml.
pub fn ibq(lake: &Path, args: &[&str]) -> Output {
    Command::new(ibq_bin())
        .args(args)
        .arg("--lake")
        .arg(lake)
        .env_remove("IBQ_LAKE")
        .env("NO_COLOR", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the ibq binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Ends a Python snippet once its work is done: `deltalake`'s runtime threads can abort the
/// interpreter while it shuts down ("terminate called without an active exception") after
/// every write has committed, which would fail a test whose script succeeded.
pub const PY_EXIT: &str = "\nimport os, sys\nsys.stdout.flush()\nsys.stderr.flush()\nos._exit(0)\n";

/// Runs a Python snippet with the `deltalake` package (installed by `.ci/run`). A missing
/// interpreter or package fails the test: it never skips. An exception still fails it (the
/// snippet stops before its exit line).
pub fn python(script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{script}{PY_EXIT}"))
        .output()
        .expect("python3 runs (installed with the toolchain; .ci/run installs deltalake)");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` until it holds; fails the test naming `what` once `within` has passed.
pub async fn wait_until(what: &str, within: std::time::Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Writes an `ibq.toml` for a test lake in `dir`: fast polling, no scheduler, logs in the
/// test folder, plus `extra` lines.
pub fn test_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("ibq.toml");
    let text = format!(
        "[queue]\npoll_external_secs = 1\n{extra}\n[worker]\npoll_secs = 1\n[scheduler]\nenabled = false\n[logging]\ndir = \"{}\"\n",
        dir.join("logs").display()
    );
    std::fs::write(&cfg, text).expect("the test config is written");
    cfg
}

/// Starts `ibq run` on `lake` with `cfg` against `gateway`, its output discarded.
pub fn spawn_run(cfg: &Path, lake: &Path, gateway: &str) -> std::process::Child {
    Command::new(ibq_bin())
        .args(["run", "--config"])
        .arg(cfg)
        .arg("--lake")
        .arg(lake)
        .args(["--gateway", gateway])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ibq run starts")
}

/// `n` option snapshot rows of request `id` taken at `at`, conids from `first`: a chain as
/// the worker writes it, prices made up.
pub fn option_rows(
    id: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
    first: i64,
    n: usize,
) -> deltalake::arrow::array::RecordBatch {
    let mut b =
        ibq::lake::columns::BatchBuilder::new(ibq::worker::results::OPTION_SNAPSHOT_COLUMNS)
            .utf8(vec![Some(id.to_string()); n])
            .timestamp(vec![Some(at); n])
            .utf8(vec![Some("SPY"); n])
            .f64(vec![Some(600.0); n])
            .i64((0..n).map(|i| Some(first + i as i64)))
            .utf8(vec![Some("SPY 261218C00600000"); n])
            .utf8(vec![Some("20261218"); n])
            .i64(vec![Some(30); n])
            .f64(vec![Some(600.0); n])
            .utf8(vec![Some("C"); n]);
    for _ in 0..12 {
        b = b.f64(vec![Some(1.5); n]);
    }
    b.i64(vec![Some(1); n]).finish()
}
