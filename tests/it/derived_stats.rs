//! `derived_stats` for every symbol (`ALL`, what the scheduler puts on jobs that name no
//! symbol): a rerun for a date replaces that date's rows and keeps every symbol with bars.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use ibq::engine::runtime::{Engine, EngineOptions};
use ibq::queue::{RequestType, Status};
use ibq::scheduler::clock::FastClock;
use ibq::sim::{SimConfig, Simulator};
use serde_json::json;

use crate::worker::{config, enqueue, new, settle, stats_rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_symbols_rerun_replaces_the_dates_rows_and_keeps_every_symbol() {
    // Tuesday 2026-11-24 after 20:00 New York on both clocks: that day's bars have ended,
    // whatever the wall date.
    let evening = New_York.with_ymd_and_hms(2026, 11, 24, 21, 0, 0).unwrap();
    let sim = Simulator::start(SimConfig {
        port: 0,
        lines: 100,
        clock_start: Some(evening.fixed_offset()),
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let engine = Engine::start(
        &config(&root, &sim),
        EngineOptions {
            clock: Arc::new(FastClock::new(evening.with_timezone(&Utc), 1.0)),
        },
    )
    .await
    .expect("the engine starts");

    // Daily bars for SPY and QQQ, 5-minute bars for IWM (counted by their New York day).
    let bars = enqueue(
        &engine,
        vec![
            new(
                RequestType::MarketBars,
                "SPY",
                json!({"duration": "5 D", "bar_size": "1 day"}),
            ),
            new(
                RequestType::MarketBars,
                "QQQ",
                json!({"duration": "5 D", "bar_size": "1 day"}),
            ),
            new(
                RequestType::MarketBars,
                "IWM",
                json!({"duration": "2 D", "bar_size": "5 mins"}),
            ),
        ],
    )
    .await;
    for r in settle(&engine, &bars, Duration::from_secs(60)).await {
        assert_eq!(r.status, Status::Success, "{r:?}");
    }

    let stats = async |date: &str| {
        let id = enqueue(
            &engine,
            vec![new(
                RequestType::DerivedStats,
                "ALL",
                json!({ "date": date }),
            )],
        )
        .await;
        let done = settle(&engine, &id, Duration::from_secs(60)).await;
        assert_eq!(done[0].status, Status::Success, "{done:?}");
        id[0].to_string()
    };
    let days = |d: &str| {
        let d = NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
    };
    let (mon, tue) = (days("2026-11-23"), days("2026-11-24"));
    let on = |rows: &[(i32, String, String)], day: i32| -> Vec<(String, String)> {
        rows.iter()
            .filter(|r| r.0 == day)
            .map(|r| (r.1.clone(), r.2.clone()))
            .collect()
    };

    let first_mon = stats("2026-11-23").await;
    let first_tue = stats("2026-11-24").await;
    let rows = stats_rows(&root).await;
    let syms = |v: &[(String, String)]| v.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    assert_eq!(syms(&on(&rows, mon)), ["IWM", "QQQ", "SPY"], "{rows:?}");
    assert_eq!(syms(&on(&rows, tue)), ["IWM", "QQQ", "SPY"], "{rows:?}");
    assert!(on(&rows, tue).iter().all(|r| r.1 == first_tue), "{rows:?}");

    // The rerun for Tuesday: its rows are replaced, every symbol is still there once, and
    // Monday's rows are untouched.
    let rerun = stats("2026-11-24").await;
    let rows = stats_rows(&root).await;
    let tue_rows = on(&rows, tue);
    assert_eq!(syms(&tue_rows), ["IWM", "QQQ", "SPY"], "{rows:?}");
    assert!(
        tue_rows.iter().all(|r| r.1 == rerun),
        "the rerun's rows: {rows:?}"
    );
    let mon_rows = on(&rows, mon);
    assert_eq!(syms(&mon_rows), ["IWM", "QQQ", "SPY"], "{rows:?}");
    assert!(
        mon_rows.iter().all(|r| r.1 == first_mon),
        "Monday's rows kept: {rows:?}"
    );
    assert_eq!(rows.len(), 6, "{rows:?}");
    engine.shutdown().await;
}
