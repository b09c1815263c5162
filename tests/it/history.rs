//! The history table's upkeep on real tables: a day no compaction writes any more is merged
//! into one file, merged-away files leave the disk a day later, and no row is lost or
//! doubled, also when a compaction stopped after merging and before its rewrite.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ibq::config::QueueConfig;
use ibq::lake::upkeep::{self, Policy};
use ibq::lake::LakeTable;
use ibq::market::clock::Clock;
use ibq::queue::rows::{HISTORY_COLUMNS, HISTORY_TABLE};
use ibq::queue::store::{self, QueueStore};
use serde_json::json;
use uuid::Uuid;

use crate::queue_rig::{bars, new_york, stored_rows, Moved};

/// `n` requests made, claimed and finished at `t` and the minutes after it, each step its
/// own commit (compactions follow as files pile up). Returns their ids.
async fn day_of_requests(
    store: &mut QueueStore,
    clock: &Moved,
    t: DateTime<Utc>,
    n: usize,
) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let t = t + Duration::minutes(i as i64);
        clock.set(t);
        let id = store
            .enqueue_many_at(vec![bars(&format!("S{i}"))], t)
            .await
            .unwrap()
            .remove(0)
            .unwrap()
            .request()
            .request_id;
        let claimed = store.claim(1, "w", t).await.unwrap();
        assert_eq!(claimed[0].request_id, id);
        store
            .change_each(&[id], |q, id| q.prepare_succeed(id, json!({"rows": 1}), t))
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        ids.push(id);
    }
    ids
}

/// Live files of the history table per day.
async fn history_files_by_day(lake: &Path) -> BTreeMap<String, usize> {
    let table = LakeTable::open_existing(lake, HISTORY_TABLE, HISTORY_COLUMNS)
        .await
        .unwrap()
        .unwrap();
    let mut out = BTreeMap::new();
    for f in table.files().await.unwrap() {
        let day = f
            .partition
            .get("date")
            .cloned()
            .flatten()
            .unwrap_or_default();
        *out.entry(day).or_default() += 1;
    }
    out
}

/// The six days before today (within a week: Delta's checkpoints keep removals that long).
fn last_days() -> Vec<NaiveDate> {
    let today = ibq::market::calendar::new_york_date(Utc::now());
    (1..=6).rev().map(|k| today - Duration::days(k)).collect()
}

#[tokio::test]
async fn closed_days_are_merged_into_one_file_and_merged_files_leave_a_day_later() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let config = QueueConfig {
        keep_finished_days: 1,
        compact_at_files: 6,
        ..QueueConfig::default()
    };
    let days = last_days();
    let clock = Moved::starting_at(new_york(days[0], 9, 0));
    let mut store = QueueStore::open(&lake, config).await.unwrap();
    store.set_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let mut made = Vec::new();
    for d in &days {
        made.push(day_of_requests(&mut store, &clock, new_york(*d, 10, 0), 8).await);
        // The evening's compaction (a restart, a pile of files) closes the day's work.
        clock.set(new_york(*d, 18, 0));
        store.compact().await.unwrap();
    }
    drop(store);
    let last = *days.last().unwrap();

    // Days before the last one's `keep_finished_days` + 1 are closed: one file each; the
    // later ones still take rows (superseded today, archived a day later).
    let by_day = history_files_by_day(&lake).await;
    for d in &days[..days.len() - 3] {
        assert_eq!(by_day.get(&d.to_string()), Some(&1), "{d}: {by_day:?}");
    }
    assert!(
        by_day.get(&last.to_string()).is_some_and(|n| *n >= 2),
        "the last day is open: {by_day:?}"
    );
    // Files merged away on earlier days left the disk a day later; the latest merge's
    // stay for readers of older versions.
    let on_disk = |d: NaiveDate| {
        std::fs::read_dir(lake.join(HISTORY_TABLE).join(format!("date={d}")))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "parquet")
            })
            .count()
    };
    assert_eq!((on_disk(days[0]), on_disk(days[1])), (1, 1));
    assert!(on_disk(days[2]) > 1, "merged today, kept a day");
    let history = LakeTable::open_existing(&lake, HISTORY_TABLE, HISTORY_COLUMNS)
        .await
        .unwrap()
        .unwrap();
    let usage = upkeep::disk_usage(&history).await.unwrap();
    assert_eq!(usage.removed_files, on_disk(days[2]) - 1, "{usage:?}");

    // Every row ever committed is stored once: three per request.
    let rows = stored_rows(&lake).await;
    assert_eq!(rows.len(), 6 * 8 * 3, "{} rows", rows.len());
    assert!(rows.values().all(|n| *n == 1), "a row is stored twice");
    // `show` still finds a request of the first day, archived and merged since.
    let first = made[0][0];
    let h = store::history(&lake, first).await.unwrap();
    assert_eq!(h.len(), 3, "{h:?}");
}

#[tokio::test]
async fn a_compaction_that_stopped_after_merging_history_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let config = QueueConfig {
        keep_finished_days: 1,
        compact_at_files: 6,
        ..QueueConfig::default()
    };
    let days = last_days();
    let clock = Moved::starting_at(new_york(days[0], 9, 0));
    let mut store = QueueStore::open(&lake, config.clone()).await.unwrap();
    store.set_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    for d in &days[..2] {
        day_of_requests(&mut store, &clock, new_york(*d, 10, 0), 8).await;
    }
    drop(store);
    let before = history_files_by_day(&lake).await;
    assert!(
        before.get(&days[0].to_string()).is_some_and(|n| *n >= 2),
        "{before:?}"
    );
    // Three days later a compaction merged the closed days and stopped before its rewrite.
    let later = new_york(days[4], 10, 0);
    let mut history = LakeTable::open_existing(&lake, HISTORY_TABLE, HISTORY_COLUMNS)
        .await
        .unwrap()
        .unwrap();
    let open_from = (days[4] - Duration::days(2)).to_string();
    let (_, files) = upkeep::merge_small_files(&mut history, &Policy::default(), Some(&open_from))
        .await
        .unwrap();
    assert!(files >= 2, "{files} merged");
    drop(history);

    // The next compaction finds the merge after the version the last rewrite recorded: its
    // rows were in history before, none is appended again or left out.
    clock.set(later);
    let keep = QueueConfig {
        keep_finished_days: 30,
        ..config
    };
    let mut store = QueueStore::open(&lake, keep).await.unwrap();
    store.set_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let r = store.compact_at(later).await.unwrap();
    assert_eq!(r.rows_already_in_history, 0, "{r:?}");
    day_of_requests(&mut store, &clock, later, 8).await;
    store.compact_at(later + Duration::hours(1)).await.unwrap();
    drop(store);
    let rows = stored_rows(&lake).await;
    assert_eq!(rows.len(), 3 * 8 * 3, "{} rows", rows.len());
    assert!(rows.values().all(|n| *n == 1), "a row is stored twice");
}
