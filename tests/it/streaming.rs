//! Streaming legs and the line budget against `ibq sim` with a 10-line limit.

use std::time::Duration;

use ibq::engine::runtime::Engine;
use ibq::engine::{Command, LegState, Reply};
use ibq::queue::{RequestType, Status};
use ibq::sim::{SimConfig, Simulator};
use serde_json::json;

use crate::worker::{config, enqueue, new, options, settle};

pub async fn promote(engine: &Engine, conid: i32) -> Result<String, String> {
    match engine
        .handle()
        .send(Command::Promote {
            conid,
            strategy: Some("test".into()),
        })
        .await?
    {
        Reply::Done(m) => Ok(m),
        Reply::History(_) => unreachable!(),
    }
}

/// Promotes `conid` once the engine is connected: "not connected" is retried for 30 s, any
/// other refusal fails the test.
pub async fn promote_when_connected(engine: &Engine, conid: i32) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match promote(engine, conid).await {
            Ok(m) => return m,
            Err(e) if e.contains("not connected") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Waits until every leg streams and has ticked after `since`.
async fn all_streaming(engine: &Engine, n: usize, since: chrono::DateTime<chrono::Utc>) {
    let mut snap = engine.handle().snapshot();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let legs = snap.borrow_and_update().legs.clone();
        let live = legs
            .iter()
            .filter(|l| l.state == LegState::Streaming && l.last_tick_at.is_some_and(|t| t > since))
            .count();
        if legs.len() == n && live == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "legs not all streaming: {:?}",
            legs.iter()
                .map(|l| (l.conid, &l.state, l.last_tick_at))
                .collect::<Vec<_>>()
        );
        let _ = tokio::time::timeout(Duration::from_millis(500), snap.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legs_share_ten_lines_with_snapshots_and_survive_restarts() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        lines: 10,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut cfg = config(&root, &sim);
    cfg.lines.limit = 10;
    cfg.lines.margin = 0;
    let engine = Engine::start(&cfg, options()).await.unwrap();

    let u = sim.universe();
    let mut conids: Vec<i32> = ["SPY", "QQQ", "IWM", "VIX"]
        .iter()
        .map(|s| u.conid_of(s).unwrap())
        .collect();
    for root in ["ES", "NQ", "RTY"] {
        conids.extend(u.futures(root).iter().map(|f| f.conid));
    }
    assert!(conids.len() >= 11);

    // An unknown conid is refused with a clear message and takes no line.
    let err = promote(&engine, 424242).await.unwrap_err();
    assert!(err.contains("unknown conid 424242"), "{err}");

    // Wait for the connection, then stream 8 legs.
    promote_when_connected(&engine, conids[0]).await;
    for c in &conids[1..8] {
        promote(&engine, *c).await.unwrap();
    }
    all_streaming(
        &engine,
        8,
        chrono::Utc::now() - chrono::Duration::seconds(60),
    )
    .await;

    // An option chain of 14 snapshots fits in the 2 lines the streams leave free.
    let ids = enqueue(
        &engine,
        vec![new(
            RequestType::OptionChain,
            "SPY",
            json!({"target_dte": 20, "strikes": 3}),
        )],
    )
    .await;
    let done = settle(&engine, &ids, Duration::from_secs(90)).await;
    assert_eq!(
        done[0].status,
        Status::Success,
        "{:?}",
        done[0].error_message
    );
    assert_eq!(done[0].result_data.as_ref().unwrap()["rows"], 14);
    let stats = sim.stats();
    assert!(
        !stats.errors.contains_key(&101),
        "the gateway refused a line: {:?}",
        stats.errors
    );
    assert!(
        stats.max_lines_in_use <= 10,
        "{} lines used",
        stats.max_lines_in_use
    );
    assert!(
        stats.max_lines_in_use >= 9,
        "snapshots did use the free lines"
    );

    // Two more legs fill the budget; the 11th is refused and says how the lines are used.
    promote(&engine, conids[8]).await.unwrap();
    promote(&engine, conids[9]).await.unwrap();
    let err = promote(&engine, conids[10]).await.unwrap_err();
    assert!(
        err.contains("no free market-data line") && err.contains("10 held by streams"),
        "{err}"
    );

    // A gateway restart: every leg streams again.
    let before = chrono::Utc::now();
    sim.restart(Duration::from_millis(1000));
    all_streaming(&engine, 10, before + chrono::Duration::milliseconds(1000)).await;

    // The nightly reset: 1100, then 1101 (market data lost): every leg is resubscribed.
    let before = chrono::Utc::now();
    sim.nightly_reset(1101, Duration::from_millis(500));
    all_streaming(&engine, 10, before + chrono::Duration::milliseconds(600)).await;

    // Demote frees the line: the 11th now fits.
    match engine
        .handle()
        .send(Command::Demote(vec![conids[9]]))
        .await
        .unwrap()
    {
        Reply::Done(m) => assert!(m.contains("line freed"), "{m}"),
        Reply::History(_) => unreachable!(),
    }
    promote(&engine, conids[10]).await.unwrap();
    engine.shutdown().await;

    // The registry survives a restart of ibq and the streams resume.
    let engine = Engine::start(&cfg, options()).await.unwrap();
    let since = chrono::Utc::now();
    all_streaming(&engine, 10, since).await;
    let legs = engine.handle().snapshot().borrow().legs.clone();
    assert!(
        legs.iter().all(|l| l.conid != conids[9]),
        "the demoted leg stays demoted"
    );
    assert!(legs.iter().any(|l| l.conid == conids[10]));

    // Streamed legs land in position_updates.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let table = ibq::lake::LakeTable::open_existing(
        &root,
        "position_updates",
        ibq::worker::results::POSITION_UPDATE_COLUMNS,
    )
    .await
    .unwrap()
    .expect("position_updates exists");
    let mut streamed = 0;
    for b in table.read_all().await.unwrap() {
        let r = ibq::lake::columns::BatchReader::new(&b);
        let sources = r.utf8("source").unwrap();
        let types = r.i64("market_data_type").unwrap();
        for (source, data_type) in sources.iter().zip(types) {
            if source.as_deref() == Some("stream") {
                streamed += 1;
                assert_eq!(data_type, Some(1), "a streamed row says it holds live data");
            }
        }
    }
    assert!(streamed >= 10, "{streamed} streamed rows");
    engine.shutdown().await;
    sim.shutdown().await;
}
