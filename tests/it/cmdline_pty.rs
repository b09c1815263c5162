//! The `:` command line in a real terminal against `ibq sim` (its own process, with
//! injected failures): `:pause`, then `:retry --all-failed` after one confirmation puts
//! the failed rows back to PENDING in the table; `:resume` lets them run, the done view
//! shows them, the actions view and `ib_operator_actions` hold what the console did, a
//! refusal reads as the CLI's, and the history file keeps the commands.

use std::time::Duration;

use ibq::queue::{Actor, Event, Status};

use crate::common::{ibq, stderr, stdout, test_config, wait_until};
use crate::console_pty::{spawn_sim_with, spawn_term};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_all_failed_typed_on_the_command_line_puts_the_failures_back_to_pending() {
    // The first two historical-data requests fail for good (IB 200).
    let (mut sim, address) = spawn_sim_with(&["--fail-next", "historical_data=2:200"]);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let history = dir.path().join("state").join("history");
    let cfg = test_config(
        dir.path(),
        &format!("[console]\nhistory_file = \"{}\"\n", history.display()),
    );
    let mut ids = Vec::new();
    for sym in ["SPY", "QQQ"] {
        let out = ibq(&lake, &["enqueue", "market_bars", sym, "--json"]);
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
            &address,
        ],
        36,
        140,
    );
    let state = async || ibq::queue::store::read_state(&lake).await.unwrap();
    wait_until(
        "both requests failed",
        Duration::from_secs(60),
        async || {
            let s = state().await;
            ids.iter()
                .all(|id| s.get(id).is_some_and(|r| r.status == Status::Failed))
        },
    )
    .await;
    term.wait_screen("the failed count", Duration::from_secs(10), |s| {
        s.contains("failed 2")
    })
    .await;

    // A refusal, in the CLI's words, in the status line.
    term.keys(":retry\r");
    term.wait_screen("the refusal", Duration::from_secs(5), |s| {
        s.contains("the following required arguments were not provided")
    })
    .await;

    // Pause, so the retried requests stay PENDING for the check.
    term.keys(":pause\r");
    term.wait_screen("the worker paused", Duration::from_secs(10), |s| {
        s.contains("pause worker: done")
    })
    .await;
    term.keys(":retry --all-failed\r");
    term.wait_screen("one confirmation", Duration::from_secs(5), |s| {
        s.contains("Put all 2 failed requests back to PENDING?")
    })
    .await;
    assert!(
        state().await.failed().count() == 2,
        "nothing before the yes"
    );
    term.keys("y");
    wait_until(
        "both retried to PENDING by the operator",
        Duration::from_secs(30),
        async || {
            let s = state().await;
            ids.iter().all(|id| {
                s.get(id).is_some_and(|r| {
                    r.status == Status::Pending
                        && r.event == Event::Retried
                        && r.changed_by == Actor::Operator
                })
            })
        },
    )
    .await;
    term.wait_screen("the failed count drops", Duration::from_secs(10), |s| {
        s.contains("failed 0")
    })
    .await;

    // Resume: they run, and the done view shows what they wrote.
    term.keys(":resume\r");
    wait_until("both succeeded", Duration::from_secs(60), async || {
        let s = state().await;
        ids.iter()
            .all(|id| s.get(id).is_some_and(|r| r.status == Status::Success))
    })
    .await;
    term.keys("7");
    term.wait_screen("the done view", Duration::from_secs(10), |s| {
        s.contains("7 Done") && s.matches("market_bars").count() >= 2
    })
    .await;
    // The actions view: what this console did, answered.
    term.keys("8");
    term.wait_screen("the actions view", Duration::from_secs(10), |s| {
        s.contains("retry all failed") && s.contains("pause worker") && s.contains("applied")
    })
    .await;

    let status = term.quit().await;
    assert!(status.success(), "exit status {status:?}");
    sim.kill().unwrap();
    sim.wait().unwrap();

    // The table is the journal: the console's commands, answered, by the console.
    let mut reader = ibq::engine::actions::NewRows::open(&lake).await.unwrap();
    let rows = reader.next().await.unwrap();
    let retry = rows
        .iter()
        .find(|r| r.action == "retry_all_failed")
        .unwrap_or_else(|| panic!("retry_all_failed recorded: {rows:?}"));
    assert_eq!(retry.status, "applied");
    assert!(retry.requested_by.starts_with("console pid "), "{retry:?}");
    assert_eq!(retry.message.as_deref(), Some("retried 2 requests"));
    for action in ["pause_worker", "resume_worker"] {
        assert!(
            rows.iter()
                .any(|r| r.action == action && r.status == "applied"),
            "{action} recorded: {rows:?}"
        );
    }
    // The history file keeps what was typed, for the next session.
    let kept = std::fs::read_to_string(&history).unwrap();
    assert_eq!(
        kept.lines().collect::<Vec<_>>(),
        ["retry", "pause", "retry --all-failed", "resume"]
    );
}

/// `ibq pause` and `ibq resume` (which the console's `:pause` and `:resume` mirror) reach
/// the running engine through `ib_operator_actions`; with no engine they say so. The
/// journal pairs each request with its answer, as the actions view shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_from_the_cli_reach_the_running_engine_and_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = ibq(&lake, &["pause"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no ibq engine is running") && err.contains("no worker to pause"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let (mut sim, address) = spawn_sim_with(&[]);
    let cfg = test_config(dir.path(), "");
    let mut run = crate::common::spawn_run(&cfg, &lake, &address);
    let status = async || -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(lake.join(".ibq-status.json")).ok()?;
        serde_json::from_str(&text).ok()
    };
    wait_until(
        "the engine writes its status",
        Duration::from_secs(60),
        async || status().await.is_some(),
    )
    .await;
    let out = ibq(&lake, &["pause"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("worker paused: no new requests are claimed (applied by the running engine)"),
        "{}",
        stdout(&out)
    );
    wait_until(
        "the status says paused",
        Duration::from_secs(10),
        async || {
            status()
                .await
                .is_some_and(|s| s["worker"]["paused"] == true)
        },
    )
    .await;
    let out = ibq(&lake, &["resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(
        "the status says running",
        Duration::from_secs(10),
        async || {
            status()
                .await
                .is_some_and(|s| s["worker"]["paused"] == false)
        },
    )
    .await;
    run.kill().unwrap();
    run.wait().unwrap();
    sim.kill().unwrap();
    sim.wait().unwrap();

    let mut reader = ibq::engine::actions::NewRows::open(&lake).await.unwrap();
    let mut journal = ibq::engine::journal::Journal::default();
    journal.absorb(reader.next().await.unwrap());
    let entries = journal.view(10);
    let said: Vec<(String, &str, String)> = entries
        .iter()
        .map(|e| {
            (
                e.summary(),
                e.outcome.as_str(),
                e.outcome.message().to_string(),
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            ("resume worker".into(), "applied", "worker resumed".into()),
            (
                "pause worker".into(),
                "applied",
                "worker paused: no new requests are claimed".into()
            ),
        ]
    );
    assert!(entries
        .iter()
        .all(|e| e.requested_by.starts_with("ibq cli pid ")
            && e.outcome.answered_at().is_some_and(|t| t >= e.asked_at)));
}
