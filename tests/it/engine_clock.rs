//! Under a fast clock, the result rows are stamped with the engine's time, not the wall's.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use ibq::engine::runtime::{Engine, EngineOptions};
use ibq::lake::columns::BatchReader;
use ibq::lake::LakeTable;
use ibq::queue::{RequestType, Status};
use ibq::scheduler::clock::FastClock;
use ibq::sim::{SimConfig, Simulator};
use ibq::worker::results::columns_of;
use serde_json::json;

use crate::worker::{config, enqueue, new, settle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_rows_carry_the_engine_clock() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        lines: 100,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    // Years ahead of the wall: every bar the gateway returns has ended by then.
    let start = Utc.with_ymd_and_hms(2031, 3, 4, 15, 0, 0).unwrap();
    let engine = Engine::start(
        &config(&root, &sim),
        EngineOptions {
            clock: Arc::new(FastClock::new(start, 1.0)),
        },
    )
    .await
    .expect("the engine starts");
    let ids = enqueue(
        &engine,
        vec![new(
            RequestType::MarketBars,
            "SPY",
            json!({"duration": "5 D", "bar_size": "1 day"}),
        )],
    )
    .await;
    for r in settle(&engine, &ids, Duration::from_secs(60)).await {
        assert_eq!(r.status, Status::Success, "{r:?}");
    }
    let t = LakeTable::open_existing(&root, "market_bars", columns_of("market_bars"))
        .await
        .unwrap()
        .expect("market_bars exists");
    let mut stamps = Vec::new();
    for b in t.read_all().await.unwrap() {
        stamps.extend(BatchReader::new(&b).timestamp("written_at").unwrap());
    }
    assert!(!stamps.is_empty(), "bars were written");
    for s in stamps {
        let s = s.expect("written_at set");
        assert!(
            s >= start && s < start + chrono::Duration::hours(1),
            "written_at {s}"
        );
    }
}
