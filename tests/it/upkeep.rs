//! Partitions and upkeep of the result tables, on real Delta tables: a one-day read opens
//! only that day's files (counted), checkpoints every 100 commits and a table opened from
//! one, vacuum past the retention only, small-file merges that keep every row, the
//! one-time migration of an unpartitioned table, and Python `deltalake` reading one day.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use deltalake::arrow::array::RecordBatch;
use ibq::engine::runtime::{Engine, EngineOptions};
use ibq::lake::columns::{BatchBuilder, BatchReader};
use ibq::lake::upkeep::{self, Policy};
use ibq::lake::LakeTable;
use ibq::queue::{RequestType, Status};
use ibq::scheduler::clock::FastClock;
use ibq::sim::{SimConfig, Simulator};
use ibq::worker::results::{
    stored_columns, ResultTables, MARKET_BARS, OPTION_SNAPSHOTS, OPTION_SNAPSHOT_COLUMNS,
    POSITION_UPDATES, POSITION_UPDATE_COLUMNS,
};
use serde_json::json;
use uuid::Uuid;

use crate::common::{ibq, python, stderr, stdout};
use crate::worker::{config, enqueue, new, settle};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

/// Noon in New York on `d`.
fn noon(d: NaiveDate) -> DateTime<Utc> {
    New_York
        .from_local_datetime(&d.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// `n` option snapshot rows taken at `at`, conids from `first`.
fn options(at: DateTime<Utc>, first: i64, n: usize) -> RecordBatch {
    crate::common::option_rows(Uuid::new_v4(), at, first, n)
}

/// One streamed position row at `at`.
fn position(at: DateTime<Utc>, conid: i64) -> RecordBatch {
    BatchBuilder::new(POSITION_UPDATE_COLUMNS)
        .utf8([None::<&str>])
        .utf8([Some("stream")])
        .timestamp([Some(at)])
        .utf8([Some("DU1")])
        .i64([Some(conid)])
        .utf8([Some("SPY")])
        .utf8([Some("STK")])
        .utf8([None::<&str>])
        .f64([None])
        .utf8([None::<&str>])
        .f64([Some(10.0)])
        .f64([Some(590.0)])
        .f64([Some(600.0)])
        .f64([Some(6000.0)])
        .i64([Some(1)])
        .finish()
}

/// (conid, New York day) of every row, sorted: what a merge or a rewrite must keep.
fn conids_and_days(batches: &[RecordBatch]) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for b in batches {
        let r = BatchReader::new(b);
        let conids = r.i64("conid").unwrap();
        let at = r.timestamp("snapshot_at").unwrap();
        for (c, t) in conids.into_iter().zip(at) {
            out.push((
                c.unwrap(),
                ibq::market::calendar::new_york_date(t.unwrap()).to_string(),
            ));
        }
    }
    out.sort();
    out
}

async fn open(root: &std::path::Path, name: &str) -> LakeTable {
    LakeTable::open_existing(root, name, &stored_columns(name))
        .await
        .unwrap()
        .expect("the table exists")
}

#[tokio::test]
async fn a_one_day_read_opens_only_that_days_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let results = ResultTables::new(root.clone());
    // Five days, three commits a day of four rows each.
    for d in 16..=20 {
        for k in 0..3 {
            let batch = options(noon(day(d)), d as i64 * 100 + k * 4, 4);
            results.write(OPTION_SNAPSHOTS, None, batch).await.unwrap();
        }
    }
    let table = open(&root, OPTION_SNAPSHOTS).await;
    assert_eq!(table.partition_columns(), ["date"]);
    let all = table.files().await.unwrap();
    assert_eq!(all.len(), 15, "{all:?}");
    assert!(
        all.iter().all(|f| f.path.starts_with("date=2026-11-")),
        "{all:?}"
    );

    let before = results.files_read(OPTION_SNAPSHOTS).await.unwrap();
    let (rows, files) = results
        .read_days(OPTION_SNAPSHOTS, &BTreeSet::from([day(18)]))
        .await
        .unwrap();
    let read = results.files_read(OPTION_SNAPSHOTS).await.unwrap() - before;
    assert_eq!((files, read), (3, 3), "one day of five: its three files");
    let got = conids_and_days(&rows);
    assert_eq!(got.len(), 12);
    assert!(got.iter().all(|(_, d)| d == "2026-11-18"), "{got:?}");

    let before = results.files_read(OPTION_SNAPSHOTS).await.unwrap();
    let everything = results.read_all(OPTION_SNAPSHOTS).await.unwrap();
    let read = results.files_read(OPTION_SNAPSHOTS).await.unwrap() - before;
    assert_eq!(read, 15, "a whole-table read opens every file");
    assert_eq!(conids_and_days(&everything).len(), 60);

    // Python deltalake reads one day with a partition filter: only that day's files.
    let out = python(&format!(
        r#"
import datetime
from deltalake import DeltaTable
dt = DeltaTable("{p}")
t = dt.to_pyarrow_table(filters=[("date", "=", datetime.date(2026, 11, 18))])
print(len(dt.file_uris(partition_filters=[("date", "=", "2026-11-18")])), t.num_rows, sorted(set(str(d) for d in t.column("date").to_pylist())))
print(dt.protocol().min_reader_version, dt.protocol().min_writer_version, dt.metadata().partition_columns)
"#,
        p = root.join(OPTION_SNAPSHOTS).display()
    ));
    assert_eq!(
        out.trim(),
        "3 12 ['2026-11-18']\n1 2 ['date']",
        "python: {out}"
    );
}

#[tokio::test]
async fn a_checkpoint_is_written_every_100_commits_and_the_table_opens_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let results = ResultTables::new(root.clone());
    let start = noon(day(24));
    for i in 0..110 {
        let at = start + chrono::Duration::seconds(5 * i);
        results
            .write(POSITION_UPDATES, None, position(at, i))
            .await
            .unwrap();
    }
    let path = root.join(POSITION_UPDATES);
    let log = path.join("_delta_log");
    assert!(
        log.join(format!("{:020}.checkpoint.parquet", 99)).is_file(),
        "a checkpoint at version 99: {:?}",
        std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    assert_eq!(upkeep::last_checkpoint_version(&path), Some(99));

    // Commits before the checkpoint are cleaned once past the log retention (here: all of
    // them, seen from a day later); the table then opens from the checkpoint alone.
    let table = open(&root, POSITION_UPDATES).await;
    assert_eq!(
        table.protocol().unwrap(),
        (1, 2),
        "checkpoints keep reader 1 / writer 2"
    );
    let deleted = upkeep::cleanup_log(
        &table,
        chrono::Duration::hours(1),
        Utc::now() + chrono::Duration::days(1),
    )
    .await
    .unwrap();
    assert!(deleted >= 99, "{deleted} commit files deleted");
    assert!(!log.join(format!("{:020}.json", 0)).exists());
    assert!(!log.join(format!("{:020}.json", 98)).exists());
    let reopened = open(&root, POSITION_UPDATES).await;
    let rows: usize = reopened
        .read_all()
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(
        rows, 110,
        "every row, read from the checkpoint and the commits after it"
    );
    let out = python(&format!(
        r#"
from deltalake import DeltaTable
dt = DeltaTable("{}")
print(dt.to_pyarrow_table().num_rows, dt.protocol().min_reader_version, dt.protocol().min_writer_version)
"#,
        path.display()
    ));
    assert_eq!(out.trim(), "110 1 2", "python: {out}");
}

#[tokio::test]
async fn merges_keep_every_row_and_vacuum_deletes_only_files_removed_past_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let results = ResultTables::new(root.clone());
    // Two closed days with four files each, and today (the 24th) with three.
    for (d, commits) in [(20, 4), (23, 4), (24, 3)] {
        for k in 0..commits {
            let batch = options(noon(day(d)), d as i64 * 100 + k * 2, 2);
            results.write(OPTION_SNAPSHOTS, None, batch).await.unwrap();
        }
    }
    let mut table = open(&root, OPTION_SNAPSHOTS).await;
    let rows_before = conids_and_days(&table.read_all().await.unwrap());
    let live_before = table.files().await.unwrap();
    assert_eq!(live_before.len(), 11);

    let policy = Policy::default();
    let now = Utc::now();
    let report = upkeep::run(&mut table, &policy, Some("2026-11-24"), now)
        .await
        .unwrap();
    assert_eq!(
        (report.partitions_merged, report.files_merged),
        (2, 8),
        "the two closed days merged, today left to fill: {report:?}"
    );
    let live = table.files().await.unwrap();
    assert_eq!(live.len(), 2 + 3, "{live:?}");
    assert_eq!(
        conids_and_days(&table.read_all().await.unwrap()),
        rows_before
    );
    // Within the retention the removed files stay on disk for readers of older versions.
    assert_eq!(report.files_vacuumed, 0);
    assert_eq!(report.usage.removed_files, 8, "{report:?}");
    assert_eq!(report.usage.live_files, 5, "{report:?}");
    for f in &live_before {
        assert!(root.join(OPTION_SNAPSHOTS).join(&f.path).is_file());
    }

    // A day and an hour later, they go; live files stay.
    let later = now + chrono::Duration::hours(25);
    let deleted = upkeep::vacuum(&mut table, policy.vacuum_retention, later)
        .await
        .unwrap();
    assert_eq!(deleted, 8);
    let usage = upkeep::disk_usage(&table).await.unwrap();
    assert_eq!((usage.live_files, usage.removed_files), (5, 0), "{usage:?}");
    for f in &live {
        assert!(root.join(OPTION_SNAPSHOTS).join(&f.path).is_file());
    }
    let reopened = open(&root, OPTION_SNAPSHOTS).await;
    assert_eq!(
        conids_and_days(&reopened.read_all().await.unwrap()),
        rows_before
    );
    assert_eq!(reopened.protocol().unwrap(), (1, 2));
}

#[tokio::test]
async fn an_unpartitioned_table_keeps_working_and_migrates_without_losing_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    // A table as an older ibq wrote it: no `date` column, no partitions.
    {
        let mut old = LakeTable::open_or_create(&root, OPTION_SNAPSHOTS, OPTION_SNAPSHOT_COLUMNS)
            .await
            .unwrap();
        for d in [20, 23, 24] {
            old.append(&[options(noon(day(d)), d as i64 * 100, 3)])
                .await
                .unwrap();
        }
    }
    // Today's ibq keeps writing it as it is (its rows get the `date` column).
    let results = ResultTables::new(root.clone());
    results
        .write(OPTION_SNAPSHOTS, None, options(noon(day(24)), 9000, 2))
        .await
        .unwrap();
    let (rows, _) = results
        .read_days(OPTION_SNAPSHOTS, &BTreeSet::from([day(24)]))
        .await
        .unwrap();
    assert_eq!(
        conids_and_days(&rows).len(),
        11,
        "not partitioned: a day's read reads every file"
    );
    drop(results);
    let before = conids_and_days(
        &open(&root, OPTION_SNAPSHOTS)
            .await
            .read_all()
            .await
            .unwrap(),
    );
    assert_eq!(before.len(), 11);

    // `ibq upkeep` says so, once per table, with the command that fixes it.
    let out = ibq(&root, &["upkeep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("option_snapshots: not partitioned by date")
            && stdout(&out).contains("ibq upkeep --migrate"),
        "{}",
        stdout(&out)
    );

    // Not while an engine owns the lake.
    {
        let _owner = ibq::queue::store::OwnerLock::acquire(&root).unwrap();
        let out = ibq(&root, &["upkeep", "--migrate"]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("an ibq engine is running") && stderr(&out).contains("stop it"),
            "{}",
            stderr(&out)
        );
        assert!(open(&root, OPTION_SNAPSHOTS)
            .await
            .partition_columns()
            .is_empty());
    }

    let out = ibq(&root, &["upkeep", "--migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("option_snapshots: rewritten partitioned by date")
            && stdout(&out).contains("11 rows"),
        "{}",
        stdout(&out)
    );
    let table = open(&root, OPTION_SNAPSHOTS).await;
    assert_eq!(table.partition_columns(), ["date"]);
    assert_eq!(conids_and_days(&table.read_all().await.unwrap()), before);
    assert_eq!(table.protocol().unwrap(), (1, 2));
    let mut days: Vec<_> = table
        .files()
        .await
        .unwrap()
        .iter()
        .map(|f| f.partition["date"].clone().unwrap())
        .collect();
    days.sort();
    assert_eq!(days, ["2026-11-20", "2026-11-23", "2026-11-24"]);
    // Each row's partition is its snapshot's New York day.
    for b in table.read_all().await.unwrap() {
        let r = BatchReader::new(&b);
        let at = r.timestamp("snapshot_at").unwrap();
        let d = b
            .column_by_name("date")
            .unwrap()
            .as_any()
            .downcast_ref::<deltalake::arrow::array::Date32Array>()
            .unwrap()
            .clone();
        for (i, t) in at.iter().enumerate() {
            assert_eq!(
                Some(ibq::market::calendar::new_york_date(t.unwrap())),
                d.value_as_date(i)
            );
        }
    }
    // A second run has nothing to rewrite; Python reads one day.
    let out = ibq(&root, &["upkeep", "--migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("rewritten"), "{}", stdout(&out));
    let out = python(&format!(
        r#"
import datetime
from deltalake import DeltaTable
dt = DeltaTable("{}")
print(dt.to_pyarrow_table(filters=[("date", "=", datetime.date(2026, 11, 24))]).num_rows, dt.to_pyarrow_table().num_rows)
"#,
        root.join(OPTION_SNAPSHOTS).display()
    ));
    assert_eq!(out.trim(), "5 11", "python: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_stats_reads_only_the_days_partitions() {
    // Tuesday 2026-11-24 after 20:00 New York: that day's bars have ended.
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
    // Five days of daily bars (one file per day) and one option chain.
    let ids = enqueue(
        &engine,
        vec![
            new(
                RequestType::MarketBars,
                "SPY",
                json!({"duration": "5 D", "bar_size": "1 day"}),
            ),
            new(
                RequestType::OptionChain,
                "SPY",
                json!({"target_dte": 30, "strikes": 1}),
            ),
        ],
    )
    .await;
    for r in settle(&engine, &ids, Duration::from_secs(90)).await {
        assert_eq!(r.status, Status::Success, "{r:?}");
    }
    let bars = open(&root, MARKET_BARS).await;
    let bar_files = bars.files().await.unwrap();
    let today = |f: &&ibq::lake::table::DataFile| {
        f.partition.get("date").cloned().flatten().as_deref() == Some("2026-11-24")
    };
    assert!(bar_files.len() >= 5, "{bar_files:?}");
    let option_files = open(&root, OPTION_SNAPSHOTS).await.files().await.unwrap();
    let wanted = bar_files.iter().filter(today).count() + option_files.iter().filter(today).count();
    assert_eq!(wanted, 2, "{bar_files:?} {option_files:?}");

    let id = enqueue(
        &engine,
        vec![new(
            RequestType::DerivedStats,
            "SPY",
            json!({ "date": "2026-11-24" }),
        )],
    )
    .await;
    let done = settle(&engine, &id, Duration::from_secs(60)).await;
    assert_eq!(done[0].status, Status::Success, "{done:?}");
    let data = done[0].result_data.clone().unwrap();
    assert_eq!(
        data["files_read"],
        json!(wanted),
        "one day's files of {} in all: {data}",
        bar_files.len() + option_files.len()
    );
    assert_eq!(data["rows"], json!(1), "{data}");
    engine.shutdown().await;
}

#[tokio::test]
async fn the_engines_upkeep_merges_closed_days_and_writes_go_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let results = ResultTables::new(root.clone());
    for d in [20, 23, 24] {
        for k in 0..3 {
            let batch = options(noon(day(d)), d as i64 * 100 + k, 1);
            results.write(OPTION_SNAPSHOTS, None, batch).await.unwrap();
        }
    }
    let reports = results
        .upkeep(&Policy::default(), day(24), Utc::now())
        .await;
    assert_eq!(reports.len(), 1, "only the tables that exist: {reports:?}");
    let r = reports[0].as_ref().unwrap();
    assert_eq!(
        (r.table.as_str(), r.files_merged),
        (OPTION_SNAPSHOTS, 6),
        "{r:?}"
    );
    assert!(r.checkpoint.is_some(), "{r:?}");
    assert_eq!((r.usage.live_files, r.usage.removed_files), (5, 6), "{r:?}");
    // The engine keeps writing through the same handle, and its next merge of new files
    // does not trip over the files the upkeep merged away.
    for k in 0..70 {
        let batch = options(noon(day(24)), 5000 + k, 1);
        results.write(OPTION_SNAPSHOTS, None, batch).await.unwrap();
    }
    let table = open(&root, OPTION_SNAPSHOTS).await;
    assert_eq!(
        conids_and_days(&table.read_all().await.unwrap()).len(),
        9 + 70
    );
    assert!(
        table.files().await.unwrap().len() <= 2 + 3 + 1 + 6,
        "new files merged"
    );
}

#[tokio::test]
async fn an_upkeep_by_another_process_while_the_engine_writes_loses_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let results = ResultTables::new(root.clone());
    results
        .write(OPTION_SNAPSHOTS, None, options(noon(day(24)), 0, 1))
        .await
        .unwrap();
    // `ibq upkeep` on its own handle, merging every partition it finds (as if the day had
    // ended), while the engine appends and merges its own new files.
    let other = {
        let root = root.clone();
        tokio::spawn(async move {
            let mut table = open(&root, OPTION_SNAPSHOTS).await;
            let policy = Policy::default();
            for _ in 0..8 {
                upkeep::run(&mut table, &policy, None, Utc::now())
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    for k in 1..=130 {
        results
            .write(OPTION_SNAPSHOTS, None, options(noon(day(24)), k, 1))
            .await
            .unwrap();
    }
    other.await.unwrap();
    let table = open(&root, OPTION_SNAPSHOTS).await;
    let rows = conids_and_days(&table.read_all().await.unwrap());
    let conids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(conids, (0..=130).collect::<Vec<_>>(), "every row once");
}
