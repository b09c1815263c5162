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

/// An engine clock the test moves by hand, so "mid-session" and "after the close" do not
/// depend on how fast the machine runs the requests.
struct SetClock(std::sync::Mutex<chrono::DateTime<Utc>>);

impl SetClock {
    fn set(&self, t: chrono::DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
}

impl ibq::scheduler::clock::Clock for SetClock {
    fn now(&self) -> chrono::DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// (bar_time, written_at) of every daily SPY bar in `market_bars`.
async fn daily_bars(root: &std::path::Path) -> Vec<(chrono::NaiveDate, chrono::DateTime<Utc>)> {
    let t = LakeTable::open_existing(root, "market_bars", columns_of("market_bars"))
        .await
        .unwrap()
        .expect("market_bars exists");
    let mut out = Vec::new();
    for b in t.read_all().await.unwrap() {
        let r = BatchReader::new(&b);
        let (sym, size) = (r.utf8("symbol").unwrap(), r.utf8("bar_size").unwrap());
        let (at, written) = (
            r.timestamp("bar_time").unwrap(),
            r.timestamp("written_at").unwrap(),
        );
        for i in 0..r.len() {
            if sym[i].as_deref() == Some("SPY") && size[i].as_deref() == Some("1 day") {
                out.push((at[i].unwrap().date_naive(), written[i].unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forming_daily_bar_is_not_stored_and_the_finished_one_is_stored_once() {
    use chrono::{NaiveDate, TimeZone as _};
    use chrono_tz::America::New_York;
    // Tuesday 2026-11-24, 15:00 New York: a trading day, in the sim's past and the engine's.
    // The sim runs an hour per second, so its session is over a few seconds later.
    let mid = New_York.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap();
    let sim = Simulator::start(SimConfig {
        port: 0,
        lines: 100,
        clock_start: Some(mid.fixed_offset()),
        speed: 3600.0,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let clock = Arc::new(SetClock(std::sync::Mutex::new(mid.with_timezone(&Utc))));
    let engine = Engine::start(
        &config(&root, &sim),
        EngineOptions {
            clock: clock.clone(),
        },
    )
    .await
    .expect("the engine starts");
    let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let before = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    // Distinct durations: IB refuses an identical historical request within 15 s.
    let bars = async |duration: &str| {
        let ids = enqueue(
            &engine,
            vec![new(
                RequestType::MarketBars,
                "SPY",
                json!({"duration": duration, "bar_size": "1 day"}),
            )],
        )
        .await;
        for r in settle(&engine, &ids, Duration::from_secs(60)).await {
            assert_eq!(r.status, Status::Success, "{r:?}");
        }
    };

    // Mid-session on the engine's clock: the gateway sends the day's bar, still forming.
    bars("2 D").await;
    let rows = daily_bars(&root).await;
    assert!(
        rows.iter().any(|(d, _)| *d == before),
        "the previous day's finished bar is stored: {rows:?}"
    );
    assert!(
        rows.iter().all(|(d, _)| *d != day),
        "no forming bar for {day}: {rows:?}"
    );

    // After 20:00 New York on both clocks the bar has ended.
    let close = New_York
        .with_ymd_and_hms(2026, 11, 24, 20, 1, 0)
        .unwrap()
        .with_timezone(&Utc);
    crate::common::wait_until(
        "the sim's clock past 20:00",
        Duration::from_secs(30),
        async || sim.now() >= close,
    )
    .await;
    clock.set(close);
    bars("3 D").await;
    let rows = daily_bars(&root).await;
    let today: Vec<_> = rows.iter().filter(|(d, _)| *d == day).collect();
    assert_eq!(today.len(), 1, "the finished bar once: {rows:?}");
    assert_eq!(today[0].1, close, "written after the close: {rows:?}");

    // A later request does not store it again.
    bars("4 D").await;
    let again = daily_bars(&root).await;
    assert_eq!(
        again.iter().filter(|(d, _)| *d == day).count(),
        1,
        "still once: {again:?}"
    );
    assert_eq!(
        again.iter().filter(|(d, _)| *d == before).count(),
        1,
        "the previous day's bar once: {again:?}"
    );
    engine.shutdown().await;
}
