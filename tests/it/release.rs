//! Releasing a request that is stuck or too slow, against `ibq sim` through the real `ibapi`
//! client: the gateway holds a quote's answer (its latency fault), so a futures snapshot sits
//! on its market-data line; the operator releases it (from the engine's command channel, and
//! from another process through `ib_operator_actions`). The worker abandons the run, the line
//! is freed at both ends, the request is PENDING again by the operator with no attempt
//! counted, and its next attempt runs normally.

use std::sync::Arc;
use std::time::Duration;

use ibq::engine::runtime::Engine;
use ibq::engine::{Command, Reply, Snapshot};
use ibq::queue::{Actor, Event, Request, RequestType, Status};
use ibq::sim::{RequestKind, SimHandle, Simulator};
use serde_json::json;
use uuid::Uuid;

use crate::common::{ibq, stderr, stdout, wait_until};
use crate::connlife::sim_config;
use crate::worker::{config, enqueue, new, options, settle};

/// A futures snapshot held by the gateway (every quote's answer delayed two minutes), on
/// its line at both ends. The tests pause the worker so that a released request stays
/// PENDING instead of being claimed again at once.
struct Held {
    sim: SimHandle,
    engine: Engine,
    root: std::path::PathBuf,
    id: Uuid,
    _dir: tempfile::TempDir,
}

async fn held() -> Held {
    let sim = Simulator::start(sim_config()).await.unwrap();
    sim.set_latency(RequestKind::MarketData, Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut cfg = config(&root, &sim);
    cfg.worker.request_timeout_secs = 300;
    let engine = Engine::start(&cfg, options()).await.unwrap();
    let ids = enqueue(
        &engine,
        vec![new(RequestType::FuturesSnapshot, "ES", json!({}))],
    )
    .await;
    held_on_its_line(&engine, &sim, ids[0]).await;
    Held {
        sim,
        engine,
        root,
        id: ids[0],
        _dir: dir,
    }
}

fn snap(engine: &Engine) -> Arc<Snapshot> {
    engine.handle().snapshot().borrow().clone()
}

async fn row(root: &std::path::Path, id: Uuid) -> Arc<Request> {
    let state = ibq::queue::store::read_state(root).await.unwrap();
    state.get(&id).cloned().expect("the request exists")
}

/// Waits until `id` runs with its quote on a line the gateway counts too.
async fn held_on_its_line(engine: &Engine, sim: &SimHandle, id: Uuid) {
    wait_until(
        "the quote holds a line at both ends",
        Duration::from_secs(30),
        async || {
            let s = snap(engine);
            s.processing.iter().any(|r| r.request_id == id)
                && s.lines.snapshots == 1
                && sim.stats().lines_in_use == 1
        },
    )
    .await;
}

/// Waits until no run holds a line, at the engine and at the gateway.
async fn lines_freed(engine: &Engine, sim: &SimHandle, id: Uuid) {
    wait_until(
        "the line freed at both ends",
        Duration::from_secs(15),
        async || {
            let s = snap(engine);
            s.lines.snapshots == 0
                && sim.stats().lines_in_use == 0
                && s.processing.is_empty()
                && !s.worker.started.contains_key(&id)
        },
    )
    .await;
}

fn assert_released_by_the_operator(r: &Request) {
    assert_eq!(r.status, Status::Pending, "{r:?}");
    assert_eq!(r.event, Event::Released, "{r:?}");
    assert_eq!(r.changed_by, Actor::Operator, "{r:?}");
    assert_eq!((r.attempts, r.failures), (0, 0), "no attempt counted");
    assert_eq!((r.lease_owner.as_deref(), r.lease_expires_at), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_request_released_by_the_operator_is_pending_again_uncounted_with_its_line_freed() {
    let Held {
        sim,
        engine,
        root,
        id,
        _dir,
    } = held().await;
    // The console's elapsed time and colours count from the worker's start of the run.
    let s = snap(&engine);
    assert!(s.worker.started.contains_key(&id), "{:?}", s.worker.started);
    assert_eq!(s.worker.request_timeout_secs, 300);

    engine.handle().send(Command::PauseWorker).await.unwrap();
    match engine.handle().send(Command::Release(vec![id])).await {
        Ok(Reply::Done(m)) => assert_eq!(m, "released 1 request"),
        other => panic!("{other:?}"),
    }
    assert_released_by_the_operator(&*row(&root, id).await);
    lines_freed(&engine, &sim, id).await;
    assert_eq!(snap(&engine).worker.released, 1);
    // Only a PROCESSING request can be released: the second time is refused, saying why.
    match engine.handle().send(Command::Release(vec![id])).await {
        Err(e) => assert!(e.contains("it is PENDING"), "{e}"),
        other => panic!("{other:?}"),
    }

    // With the gateway answering again, the next attempt is the first one counted.
    sim.set_latency(RequestKind::MarketData, Duration::ZERO);
    engine.handle().send(Command::ResumeWorker).await.unwrap();
    let done = settle(&engine, &[id], Duration::from_secs(60)).await;
    assert_eq!(
        (done[0].status, done[0].attempts, done[0].failures),
        (Status::Success, 1, 0),
        "{:?}",
        done[0].error_message
    );
    engine.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ibq_release_from_another_process_goes_through_the_actions_table() {
    let Held {
        sim,
        engine,
        root,
        id,
        _dir,
    } = held().await;
    engine.handle().send(Command::PauseWorker).await.unwrap();

    let lake = root.clone();
    let prefix = id.to_string()[..8].to_string();
    let out = tokio::task::spawn_blocking(move || ibq(&lake, &["release", &prefix]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("released 1 request (applied by the running engine)"),
        "{}",
        stdout(&out)
    );
    assert_released_by_the_operator(&*row(&root, id).await);
    lines_freed(&engine, &sim, id).await;

    // A request that is not running is refused in one line naming its status.
    let lake = root.clone();
    let full = id.to_string();
    let out = tokio::task::spawn_blocking(move || ibq(&lake, &["release", &full]))
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("release") && err.contains("it is PENDING"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    engine.shutdown().await;

    // No engine runs: nothing runs the request, and the command says so.
    let lake = root.clone();
    let full = id.to_string();
    let out = tokio::task::spawn_blocking(move || ibq(&lake, &["release", &full]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is PENDING: no engine runs on"),
        "{}",
        stdout(&out)
    );
    sim.shutdown().await;
}
