//! The queue's upkeep on real tables, with time moved on the store's clock (no sleeps): the
//! files a compaction removed and the expired `_delta_log` entries of `ib_request_queue`
//! and its history leave the disk while nothing is written, only past their retention; a
//! file another program appended is never touched; every row stays readable by ibq and by
//! Python `deltalake`. `ibq upkeep` does the same on a lake no engine holds, and leaves the
//! queue to the engine that holds one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration as StdDuration, SystemTime};

use chrono::{DateTime, Duration, Utc};
use ibq::config::QueueConfig;
use ibq::lake::upkeep::{disk_usage, DiskUsage};
use ibq::lake::LakeTable;
use ibq::market::clock::Clock;
use ibq::queue::rows::{HISTORY_COLUMNS, HISTORY_TABLE, QUEUE_COLUMNS, QUEUE_TABLE};
use ibq::queue::store::{OwnerLock, QueueStore};
use ibq::queue::{service, Status};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{ibq, python, stderr, stdout};
use crate::queue_rig::{bars, stored_rows, Moved};

/// Compactions every 6 files; finished requests kept a day.
fn config() -> QueueConfig {
    QueueConfig {
        keep_finished_days: 1,
        compact_at_files: 6,
        ..QueueConfig::default()
    }
}

/// `n` requests made, claimed and finished a minute apart from `t`, each step its own
/// commit (compactions follow as files pile up). Returns the moment of the last change.
async fn requests(
    store: &mut QueueStore,
    clock: &Moved,
    t: DateTime<Utc>,
    n: usize,
) -> DateTime<Utc> {
    let mut at = t;
    for i in 0..n {
        at = t + Duration::minutes(i as i64);
        clock.set(at);
        let id = store
            .enqueue_many_at(vec![bars(&format!("S{i}"))], at)
            .await
            .unwrap()
            .remove(0)
            .unwrap()
            .request()
            .request_id;
        assert_eq!(store.claim(1, "w", at).await.unwrap()[0].request_id, id);
        store
            .change_each(&[id], |q, id| q.prepare_succeed(id, json!({"rows": 1}), at))
            .await
            .unwrap()
            .remove(0)
            .unwrap();
    }
    at
}

/// A PENDING row appended by Python `deltalake` the way users' scripts do.
fn append_by_python(lake: &Path, id: Uuid) {
    python(&format!(
        r#"
import datetime, pyarrow as pa
from deltalake import write_deltalake
now = datetime.datetime.now(datetime.timezone.utc)
ts = pa.timestamp("us", tz="UTC")
t = pa.table({{
  "request_id": ["{id}"],
  "request_type": ["market_bars"],
  "symbol": ["QQQ"],
  "priority": pa.array([2], pa.int64()),
  "status": ["PENDING"],
  "parameters": ['{{"bar_size": "1 day"}}'],
  "result_table": ["market_bars"],
  "created_at": pa.array([now], ts),
  "updated_at": pa.array([now], ts),
  "result_data": pa.array([None], pa.string()),
  "error_message": pa.array([None], pa.string()),
}})
write_deltalake("{table}", t, mode="append", schema_mode="merge")
"#,
        table = lake.join(QUEUE_TABLE).display(),
    ));
}

async fn usage(lake: &Path, name: &str) -> DiskUsage {
    let cols = if name == QUEUE_TABLE {
        QUEUE_COLUMNS
    } else {
        HISTORY_COLUMNS
    };
    let table = LakeTable::open_existing(lake, name, cols)
        .await
        .unwrap()
        .unwrap();
    disk_usage(&table).await.unwrap()
}

/// Commit and checkpoint files in a table's `_delta_log`.
fn log_entries(lake: &Path, name: &str) -> usize {
    std::fs::read_dir(lake.join(name).join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "parquet"))
        .count()
}

/// Rows of a table as Python `deltalake` reads them.
fn python_rows(lake: &Path, name: &str) -> usize {
    python(&format!(
        "from deltalake import DeltaTable\nprint(DeltaTable({:?}).to_pyarrow_table().num_rows)",
        lake.join(name).display().to_string()
    ))
    .trim()
    .parse()
    .unwrap()
}

#[tokio::test]
async fn removed_files_and_old_log_entries_leave_while_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let t0 = Utc::now();
    let clock = Moved::starting_at(t0);
    let mut store = QueueStore::open(&lake, config()).await.unwrap();
    store.set_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let last = requests(&mut store, &clock, t0, 20).await;
    let open = store
        .enqueue_many_at(vec![bars("OPEN")], last)
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .request()
        .request_id;
    // Another program's row, taken in, and one appended after the owner last looked.
    let (theirs, later) = (Uuid::new_v4(), Uuid::new_v4());
    append_by_python(&lake, theirs);
    assert_eq!(store.poll_external().await.unwrap(), 1);
    append_by_python(&lake, later);
    let queue_before = usage(&lake, QUEUE_TABLE).await;
    assert!(queue_before.removed_files >= 6, "{queue_before:?}");
    let log_before = log_entries(&lake, QUEUE_TABLE);
    assert!(log_before > 60, "{log_before} queue log entries");
    let history_log_before = log_entries(&lake, HISTORY_TABLE);
    let live_before: Vec<String> = {
        let t = LakeTable::open_existing(&lake, QUEUE_TABLE, QUEUE_COLUMNS)
            .await
            .unwrap()
            .unwrap();
        t.files()
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect()
    };

    // Half an hour later nothing written: files removed within the hour stay for readers.
    clock.set(last + Duration::minutes(30));
    let r = store.upkeep().await.unwrap();
    assert_eq!(r.queue.files_vacuumed, 0, "{r:?}");
    assert_eq!(
        usage(&lake, QUEUE_TABLE).await.removed_files,
        queue_before.removed_files
    );

    // Two hours later they are gone; every live file stays, the other program's included.
    clock.set(last + Duration::hours(2));
    let r = store.upkeep().await.unwrap();
    assert_eq!(r.queue.files_vacuumed, queue_before.removed_files, "{r:?}");
    let queue_after = usage(&lake, QUEUE_TABLE).await;
    assert_eq!(queue_after.removed_files, 0, "{queue_after:?}");
    for f in &live_before {
        assert!(
            lake.join(QUEUE_TABLE).join(f).exists(),
            "live file {f} deleted"
        );
    }
    assert_eq!(
        r.queue.usage, queue_after,
        "the report shows the disk as it is"
    );
    drop(store);

    // Three days on, through the engine's queue service: the work day is closed, so the
    // history merges it; the log entries older than a day before a checkpoint leave.
    let mut store = QueueStore::open(&lake, config()).await.unwrap();
    store.set_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let queue = service::start(store, StdDuration::from_secs(3600));
    clock.set(t0 + Duration::days(3));
    let r = queue.upkeep().await.unwrap();
    let h = r.history.clone().expect("the history table exists");
    assert!(h.files_merged >= 2, "{h:?}");
    assert!(r.queue.log_files_deleted > 50, "{r:?}");
    let log_after = log_entries(&lake, QUEUE_TABLE);
    assert!(
        log_after < 10,
        "{log_before} queue log entries before, {log_after} after"
    );
    assert!(h.log_files_deleted > 0, "{h:?}");
    assert!(
        log_entries(&lake, HISTORY_TABLE) < history_log_before,
        "history log {history_log_before} entries before, {} after",
        log_entries(&lake, HISTORY_TABLE)
    );
    // What the history merged away waits a day on disk.
    let merged = usage(&lake, HISTORY_TABLE).await;
    assert_eq!(merged.removed_files, h.files_merged, "{merged:?}");
    clock.set(t0 + Duration::days(3) + Duration::hours(12));
    let r = queue.upkeep().await.unwrap();
    assert_eq!(r.history.unwrap().files_vacuumed, 0);
    clock.set(t0 + Duration::days(4) + Duration::hours(2));
    let r = queue.upkeep().await.unwrap();
    let h = r.history.unwrap();
    assert_eq!(h.files_vacuumed, merged.removed_files, "{h:?}");
    assert_eq!(h.usage.removed_files, 0, "{h:?}");
    queue.stop().await;

    // No row was lost or doubled: three per request over the two tables, the other
    // program's two once each; a restart holds the open request and both of theirs, and
    // Python reads both tables whole.
    let rows = stored_rows(&lake).await;
    assert!(rows.values().all(|n| *n == 1), "a row is stored twice");
    assert!(rows.contains_key(&(theirs.to_string(), -1)));
    assert!(rows.contains_key(&(later.to_string(), -1)));
    let store = QueueStore::open(&lake, config()).await.unwrap();
    for id in [open, theirs, later] {
        assert_eq!(
            store.state().get(&id).map(|r| r.status),
            Some(Status::Pending),
            "{id}"
        );
    }
    drop(store);
    let total = python_rows(&lake, QUEUE_TABLE) + python_rows(&lake, HISTORY_TABLE);
    assert_eq!(total, stored_rows(&lake).await.len());
}

#[tokio::test]
async fn ibq_upkeep_keeps_the_queue_unless_an_engine_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // Two days ago: the compactions' removals are older than the retention by now.
    let t0 = Utc::now() - Duration::days(2);
    let clock = Moved::starting_at(t0);
    // Finished requests kept a week, as `ibq upkeep`'s default configuration keeps them.
    let config = QueueConfig {
        keep_finished_days: 7,
        ..config()
    };
    let mut store = QueueStore::open(&lake, config).await.unwrap();
    store.set_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    requests(&mut store, &clock, t0, 12).await;
    drop(store);
    let removed = usage(&lake, QUEUE_TABLE).await.removed_files;
    assert!(removed >= 3, "{removed} removed files");
    // The log's files as written two days ago.
    let aged = SystemTime::now() - StdDuration::from_secs(2 * 86_400);
    for e in std::fs::read_dir(lake.join(QUEUE_TABLE).join("_delta_log")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(aged).unwrap();
        }
    }

    // An engine holds the lake: the queue is left to it, the command still succeeds.
    let held = OwnerLock::acquire(&lake).unwrap();
    let out = ibq(&lake, &["upkeep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ib_request_queue: kept up by the ibq engine running on"),
        "{}",
        stdout(&out)
    );
    assert_eq!(usage(&lake, QUEUE_TABLE).await.removed_files, removed);
    drop(held);

    let out = ibq(&lake, &["upkeep", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["queue_kept_by_engine"], json!(false), "{v}");
    let tables = v["tables"].as_array().unwrap();
    let queue = tables
        .iter()
        .find(|t| t["table"] == QUEUE_TABLE)
        .unwrap_or_else(|| panic!("no {QUEUE_TABLE} in {v}"));
    assert_eq!(queue["files_vacuumed"], json!(removed), "{queue}");
    assert_eq!(queue["usage"]["removed_files"], json!(0), "{queue}");
    assert!(queue["log_files_deleted"].as_u64().unwrap() > 20, "{queue}");
    assert!(
        tables.iter().any(|t| t["table"] == HISTORY_TABLE),
        "the history table is kept too: {v}"
    );
    assert_eq!(usage(&lake, QUEUE_TABLE).await.removed_files, 0);
    // Every request is still there.
    let listed = ibq(&lake, &["list", "--status", "SUCCESS", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let n = serde_json::from_str::<Value>(&stdout(&listed)).unwrap();
    assert_eq!(n.as_array().map(Vec::len), Some(12), "{n}");
}
