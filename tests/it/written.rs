//! The worker's check that a request's rows are already there (a crash between the result
//! commit and the queue commit), on real tables: the next attempt writes nothing twice, and
//! the check reads only the files that may hold rows written since the request was made.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use deltalake::arrow::array::RecordBatch;
use ibq::engine::runtime::Engine;
use ibq::lake::columns::BatchBuilder;
use ibq::queue::store::QueueStore;
use ibq::queue::{Enqueued, RequestType, Status};
use ibq::sim::{SimConfig, Simulator};
use ibq::worker::results::{
    ResultTables, FUTURES_SNAPSHOTS, FUTURES_SNAPSHOT_COLUMNS, MARKET_BARS, MARKET_BAR_COLUMNS,
    OPTION_SNAPSHOTS,
};
use ibq::worker::written::earliest_write;
use serde_json::json;
use uuid::Uuid;

use crate::worker::{config, new, options, rows_for, settle};

fn at(d: NaiveDate, h: u32) -> DateTime<Utc> {
    New_York
        .from_local_datetime(&d.and_hms_opt(h, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn futures_row(id: Uuid, t: DateTime<Utc>) -> RecordBatch {
    let mut b = BatchBuilder::new(FUTURES_SNAPSHOT_COLUMNS)
        .utf8([Some(id.to_string())])
        .timestamp([Some(t)])
        .utf8([Some("ES")])
        .i64([Some(495_512_563)])
        .utf8([Some("ESZ6")])
        .utf8([Some("202612")])
        .date([NaiveDate::from_ymd_opt(2026, 12, 18)])
        .timestamp([None]);
    for _ in 0..9 {
        b = b.f64([Some(6000.0)]);
    }
    b.i64([Some(1)]).finish()
}

fn option_rows(id: Uuid, t: DateTime<Utc>, n: usize) -> RecordBatch {
    crate::common::option_rows(id, t, 600_000, n)
}

/// Daily bars of `days` for `id`, written at `written`.
fn bar_rows(id: Uuid, days: &[NaiveDate], written: DateTime<Utc>) -> RecordBatch {
    let n = days.len();
    let mut b = BatchBuilder::new(MARKET_BAR_COLUMNS)
        .utf8(vec![Some(id.to_string()); n])
        .utf8(vec![Some("SPY"); n])
        .i64(vec![Some(756_733); n])
        .utf8(vec![Some("1 day"); n])
        .utf8(vec![Some("TRADES"); n])
        .timestamp(
            days.iter()
                .map(|d| Some(d.and_hms_opt(0, 0, 0).unwrap().and_utc())),
        );
    for _ in 0..6 {
        b = b.f64(vec![Some(600.0); n]);
    }
    b.i64(vec![Some(1000); n])
        .timestamp(vec![Some(written); n])
        .finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_committed_before_a_crash_are_not_written_again_by_the_next_attempt() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        lines: 100,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let cfg = config(&root, &sim);
    // An engine made the request and committed its row, then stopped before its success.
    let id = {
        let mut store = QueueStore::open(&root, cfg.queue.clone()).await.unwrap();
        let Enqueued::Added(r) = store
            .enqueue(new(RequestType::FuturesSnapshot, "ES", json!({})))
            .await
            .unwrap()
        else {
            panic!("an empty queue has no duplicate")
        };
        r.request_id
    };
    let results = ResultTables::new(root.clone());
    results
        .write(FUTURES_SNAPSHOTS, Some(id), futures_row(id, Utc::now()))
        .await
        .unwrap();
    drop(results);

    let engine = Engine::start(&cfg, options())
        .await
        .expect("the engine starts");
    let done = settle(&engine, &[id], Duration::from_secs(60)).await;
    engine.shutdown().await;
    assert_eq!(done[0].status, Status::Success, "{:?}", done[0]);
    let data = done[0].result_data.clone().unwrap_or_default();
    assert_eq!(
        data["note"], "rows were already written by an earlier attempt",
        "{data}"
    );
    assert_eq!(rows_for(&root, FUTURES_SNAPSHOTS, id).await, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_check_reads_only_the_files_written_since_the_request_was_made() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let results = ResultTables::new(root.clone());
    // Twenty trading days of chains, one file a day, then today's chain.
    let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let days: Vec<NaiveDate> = (1..=28)
        .rev()
        .map(|k| today - chrono::Duration::days(k))
        .filter(|d| chrono::Datelike::weekday(d).number_from_monday() <= 5)
        .take(20)
        .collect();
    let mut old = Vec::new();
    for d in &days {
        let id = Uuid::new_v4();
        results
            .write(OPTION_SNAPSHOTS, Some(id), option_rows(id, at(*d, 12), 22))
            .await
            .unwrap();
        old.push((*d, id));
    }
    let made = at(today, 10);
    let fresh = Uuid::new_v4();
    results
        .write(OPTION_SNAPSHOTS, Some(fresh), option_rows(fresh, made, 22))
        .await
        .unwrap();

    // A second process (the engine after a restart) asks about today's request.
    let reader = ResultTables::new(root.clone());
    let since = earliest_write(made, made + chrono::Duration::hours(1));
    assert!(reader
        .already_written(OPTION_SNAPSHOTS, fresh, since)
        .await
        .unwrap());
    let read = reader.files_read(OPTION_SNAPSHOTS).await.unwrap();
    // Today's file, and the day before's (the day's margin); never the twenty days.
    assert!((1..=2).contains(&read), "{read} files read of 21");
    // A request of today is not among the rows of days before it was made.
    assert!(!reader
        .already_written(OPTION_SNAPSHOTS, Uuid::new_v4(), since)
        .await
        .unwrap());
    assert_eq!(reader.files_read(OPTION_SNAPSHOTS).await.unwrap(), read);
    // A request made ten days ago (held since) has its rows found, reading back to its day
    // only, and no file twice.
    let (day, id) = old[old.len() - 10];
    assert!(reader
        .already_written(OPTION_SNAPSHOTS, id, earliest_write(at(day, 9), made))
        .await
        .unwrap());
    let more = reader.files_read(OPTION_SNAPSHOTS).await.unwrap() - read;
    assert!(
        (9..=11).contains(&more),
        "{more} more files read for a request of ten days ago"
    );

    // Bars are filed under their own day: a request of today that stored bars of old days
    // is found by the time they were written, in those files only.
    let bars_id = Uuid::new_v4();
    for d in &days {
        let id = Uuid::new_v4();
        results
            .write(MARKET_BARS, Some(id), bar_rows(id, &[*d], at(*d, 17)))
            .await
            .unwrap();
    }
    let late: BTreeSet<NaiveDate> = days[days.len() - 5..].iter().copied().collect();
    let late: Vec<NaiveDate> = late.into_iter().collect();
    results
        .write(MARKET_BARS, Some(bars_id), bar_rows(bars_id, &late, made))
        .await
        .unwrap();
    assert!(reader
        .already_written(MARKET_BARS, bars_id, since)
        .await
        .unwrap());
    let bars_read = reader.files_read(MARKET_BARS).await.unwrap();
    // The five files today's write added (one per bar day) and the bars written the evening
    // before (within the day's margin); not the nineteen older ones.
    assert_eq!(bars_read, 6, "{bars_read} bar files read of 25");
}
