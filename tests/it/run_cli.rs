//! `ibq run` as a real process against `ibq sim`: kill -9 mid-batch loses nothing, SIGTERM
//! stops it cleanly, and commands from another process reach it.

use std::process::Command;
use std::time::Duration;

use ibq::queue::Status;
use ibq::sim::{RequestKind, SimConfig, Simulator};

use crate::common::{ibq, spawn_run, stderr, stdout, test_config, wait_until};
use crate::worker::rows_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_then_restart_recovers_every_request() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.set_latency(RequestKind::MarketData, Duration::from_millis(400));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // The default five-minute lease: the restart frees the requests, not lease expiry.
    let cfg = test_config(dir.path(), "");
    let mut ids = Vec::new();
    for (i, sym) in ["SPY", "QQQ", "IWM"].iter().cycle().take(9).enumerate() {
        let out = ibq(
            &lake,
            &[
                "enqueue",
                "option_chain",
                sym,
                "--param",
                &format!("target_dte={}", 20 + i),
                "--param",
                "strikes=1",
                "--json",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        ids.push(uuid::Uuid::parse_str(v["request_id"].as_str().unwrap()).unwrap());
    }

    let mut run = spawn_run(&cfg, &lake, &sim.address());
    wait_until("a request in flight", Duration::from_secs(30), async || {
        let s = ibq::queue::store::read_state(&lake).await.unwrap();
        s.counts().processing > 0
    })
    .await;
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    let s = ibq::queue::store::read_state(&lake).await.unwrap();
    assert!(s.counts().processing > 0, "killed with requests PROCESSING");
    assert_eq!(s.len(), 9);

    // A new engine holds the owner lock, so it takes them back at once and finishes them.
    let mut run = spawn_run(&cfg, &lake, &sim.address());
    wait_until("every request done", Duration::from_secs(120), async || {
        let s = ibq::queue::store::read_state(&lake).await.unwrap();
        ids.iter()
            .all(|id| s.get(id).is_some_and(|r| r.status == Status::Success))
    })
    .await;

    // A request enqueued by another process while the engine runs is picked up and served.
    let out = ibq(&lake, &["enqueue", "futures_snapshot", "ES", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let guest = uuid::Uuid::parse_str(v["request_id"].as_str().unwrap()).unwrap();
    wait_until(
        "the guest request done",
        Duration::from_secs(60),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            s.get(&guest).is_some_and(|r| r.status == Status::Success)
        },
    )
    .await;

    // A change from another process reaches the running engine.
    let out = ibq(&lake, &["status"]);
    assert!(stdout(&out).contains("engine pid"), "{}", stdout(&out));
    // The tmux segment: connected, lines, pending, failed and stale legs, in tmux colours.
    let out = ibq(&lake, &["status", "--tmux"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with("#[fg=green]ibq ●#[default] · "), "{line}");
    for part in [" pend · ", "0 fail", "0 stale"] {
        assert!(line.contains(part), "{part} in {line}");
    }
    let out = ibq(&lake, &["cancel", &ids[0].to_string()]);
    assert!(
        !out.status.success(),
        "cancelling a SUCCESS request is refused"
    );
    assert!(stderr(&out).contains("it is SUCCESS"), "{}", stderr(&out));

    // SIGTERM: a clean stop with exit code 0.
    let pid = run.id() as i32;
    let rc = send_sigterm(pid);
    assert_eq!(rc, 0);
    let status = run.wait().unwrap();
    assert!(status.success(), "ibq run exited with {status}");
    // No engine: a grey `ibq off`, not an error.
    let out = ibq(&lake, &["status", "--tmux"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "#[fg=colour244]ibq off#[default]\n");

    for id in &ids {
        assert_eq!(
            rows_for(&lake, "option_snapshots", *id).await,
            6,
            "request {id} written exactly once"
        );
    }
}

/// Sends SIGTERM through the `kill` command (no libc binding in this crate).
fn send_sigterm(pid: i32) -> i32 {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map(|s| s.code().unwrap_or(1))
        .unwrap_or(1)
}

/// A first start on an empty lake creates its tables without the Delta library logging an
/// error about the not-yet-existing logs: the log holds no context-free library errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_on_a_fresh_lake_logs_no_library_errors() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let cfg = test_config(dir.path(), "");
    // A served request creates a result table too, not only the queue.
    let out = ibq(&lake, &["enqueue", "futures_snapshot", "ES", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = uuid::Uuid::parse_str(v["request_id"].as_str().unwrap()).unwrap();
    let mut run = spawn_run(&cfg, &lake, &sim.address());
    wait_until("the request done", Duration::from_secs(60), async || {
        let s = ibq::queue::store::read_state(&lake).await.unwrap();
        s.get(&id).is_some_and(|r| r.status == Status::Success)
    })
    .await;
    assert_eq!(send_sigterm(run.id() as i32), 0);
    run.wait().unwrap();

    let mut log = String::new();
    for e in std::fs::read_dir(dir.path().join("logs")).unwrap() {
        log.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    assert!(!log.is_empty(), "ibq run wrote its log");
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("delta kernel error"))
        .collect();
    assert!(bad.is_empty(), "errors in the log: {bad:#?}");
}
