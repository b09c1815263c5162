//! Every message ibq sends keeps one pace, cancels included: the gateway counts what the
//! client sends (50 a second), and `ibapi`'s limiter sends cancels at once.

use std::time::Duration;

use ibq::engine::runtime::Engine;
use ibq::queue::{RequestType, Status};
use ibq::sim::{SimConfig, Simulator};
use serde_json::json;

use crate::worker::{config, enqueue, new, options, settle};

/// reqPositions and cancelPositions, as the TWS API numbers them.
const REQ_POSITIONS: i32 = 61;
const CANCEL_POSITIONS: i32 = 64;

/// With the rate set to 2 a second (one message each 500 ms), a position poll's cancel
/// comes a pace after its request, as does every other message: ibapi would send the
/// cancel the moment the subscription is dropped, right after the positions came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_polls_cancel_keeps_the_pace_like_every_message() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("lake"), &sim);
    c.worker.max_messages_per_sec = 2;
    let engine = Engine::start(&c, options()).await.unwrap();
    let held = sim.portfolio()[0].conid;
    let ids = enqueue(
        &engine,
        vec![
            new(RequestType::PositionUpdate, "ALL", json!({"conid": held})),
            new(RequestType::PositionUpdate, "ALL", json!({})),
        ],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(90)).await;
    for r in &done {
        assert_eq!(r.status, Status::Success, "{:?}", r.error_message);
    }
    engine.shutdown().await;
    let arrivals = sim.arrivals();
    sim.shutdown().await;
    // ibapi sends cancelPositions when the last positions subscription ends: one or two
    // here, as the polls overlap or not.
    let cancels = arrivals
        .iter()
        .filter(|a| a.message == CANCEL_POSITIONS)
        .count();
    let requests = arrivals
        .iter()
        .filter(|a| a.message == REQ_POSITIONS)
        .count();
    assert!((1..=2).contains(&cancels) && requests == 2, "{arrivals:?}");
    // No two messages of the session closer than the pace allows (500 ms apart as sent;
    // the simulator's reading may shift either by a little).
    for w in arrivals.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(300),
            "messages {} and {} only {gap:?} apart: {arrivals:?}",
            w[0].message,
            w[1].message
        );
    }
    assert!(arrivals.iter().all(|a| !a.over_rate));
}
