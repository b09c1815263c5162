//! Retention on real tables: finished requests past `keep_finished_days` leave the live
//! queue with their whole history for the date-partitioned history table; `show` still
//! finds them, a restart loads only live ones, a crash in between loses and duplicates
//! nothing, rows of other programs cannot reopen them, and the queue's log is cleaned.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration as StdDuration, SystemTime};

use chrono::{DateTime, Duration, Utc};
use ibq::config::QueueConfig;
use ibq::queue::store::{self, QueueStore};
use ibq::queue::{Actor, RetryPolicy, Status};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{ibq, ibq_bin, python, stderr, stdout};
use crate::queue_rig::bars;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        max_age: Duration::hours(1),
        backoff_base: Duration::seconds(5),
        backoff_max: Duration::seconds(60),
    }
}

async fn enqueue(store: &mut QueueStore, symbol: &str) -> Uuid {
    store
        .enqueue(bars(symbol))
        .await
        .unwrap()
        .request()
        .request_id
}

async fn claim(store: &mut QueueStore, id: Uuid) {
    let claimed = store.claim(10, "w", Utc::now()).await.unwrap();
    assert!(claimed.iter().any(|r| r.request_id == id), "{id} claimed");
}

async fn succeed(store: &mut QueueStore, id: Uuid) {
    claim(store, id).await;
    let now = Utc::now();
    store
        .change_each(&[id], |q, id| {
            q.prepare_succeed(id, json!({"rows": 1}), now)
        })
        .await
        .unwrap()
        .remove(0)
        .unwrap();
}

async fn fail_for_good(store: &mut QueueStore, id: Uuid) {
    claim(store, id).await;
    let now = Utc::now();
    let r = store
        .change_each(&[id], |q, id| {
            q.prepare_fail(id, "no such contract", false, &policy(), 0.0, now)
        })
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(r.status, Status::Failed);
}

async fn cancel(store: &mut QueueStore, id: Uuid) {
    let now = Utc::now();
    store
        .change_each(&[id], |q, id| q.prepare_cancel(id, Actor::Operator, now))
        .await
        .unwrap()
        .remove(0)
        .unwrap();
}

/// Rows of a table as Python `deltalake` reads them: (request_id, event, seq, date).
fn rows_by_python(table: &std::path::Path) -> Vec<(String, String, Option<i64>, Option<String>)> {
    let out = python(&format!(
        r#"
import json
from deltalake import DeltaTable
t = DeltaTable({path:?})
rows = t.to_pyarrow_table().to_pylist()
print(json.dumps([[r["request_id"], r["event"], r["seq"], str(r["date"]) if r.get("date") is not None else None] for r in rows]))
"#,
        path = table.display().to_string()
    ));
    serde_json::from_str(out.trim()).unwrap()
}

fn events_of(rows: &[(String, String, Option<i64>, Option<String>)], id: Uuid) -> Vec<String> {
    let mut mine: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == id.to_string())
        .map(|r| (r.2, r.1.clone()))
        .collect();
    mine.sort();
    mine.into_iter().map(|(_, e)| e).collect()
}

fn show_json(lake: &std::path::Path, id: &str) -> Value {
    let out = ibq(lake, &["show", id, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Old finished requests (SUCCESS, FAILED for good, CANCELLED) leave with every row of
/// their history; a recent finished one and the open ones stay; `show` finds an archived
/// one; a restart loads only the live ones and numbers on past the archived rows.
#[tokio::test]
async fn old_finished_requests_leave_whole_and_recent_and_live_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let config = QueueConfig::default();
    assert_eq!(config.keep_finished_days, 7);
    let mut store = QueueStore::open(&lake, config.clone()).await.unwrap();
    let done = enqueue(&mut store, "SPY").await;
    succeed(&mut store, done).await;
    let failed = enqueue(&mut store, "QQQ").await;
    fail_for_good(&mut store, failed).await;
    let cancelled = enqueue(&mut store, "IWM").await;
    cancel(&mut store, cancelled).await;
    let highest_archived_seq = store.state().next_seq() - 1;

    // Everything above finished before `mid`; one more finishes after it.
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    let mid = Utc::now();
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    let recent = enqueue(&mut store, "GLD").await;
    succeed(&mut store, recent).await;
    let pending = enqueue(&mut store, "DIA").await;

    // Seven days after `mid`, the three finished before it are past their retention.
    let report = store.compact_at(mid + Duration::days(7)).await.unwrap();
    assert_eq!(report.requests_archived, 3, "{report:?}");
    assert_eq!(store.state().len(), 2);
    for id in [done, failed, cancelled] {
        assert!(store.state().get(&id).is_none(), "{id} left the state");
    }
    assert_eq!(store.state().get(&pending).unwrap().status, Status::Pending);
    assert_eq!(store.state().get(&recent).unwrap().status, Status::Success);
    drop(store);

    // The live table holds one row of each live request, nothing of the archived ones.
    let live = rows_by_python(&lake.join("ib_request_queue"));
    let mut live_ids: Vec<&str> = live.iter().map(|r| r.0.as_str()).collect();
    live_ids.sort();
    let mut want = vec![pending.to_string(), recent.to_string()];
    want.sort();
    assert_eq!(live_ids, want);
    // The history table holds the whole history of each archived request, once, filed
    // under the New York date of each row's change.
    let history = rows_by_python(&lake.join("ib_request_queue_history"));
    assert_eq!(
        events_of(&history, done),
        ["enqueued", "claimed", "succeeded"]
    );
    assert_eq!(
        events_of(&history, failed),
        ["enqueued", "claimed", "failed"]
    );
    assert_eq!(events_of(&history, cancelled), ["enqueued", "cancelled"]);
    let today = ibq::market::calendar::new_york_date(Utc::now()).to_string();
    let yesterday =
        ibq::market::calendar::new_york_date(Utc::now() - Duration::minutes(5)).to_string();
    for r in &history {
        let d = r.3.as_deref().expect("every history row has a date");
        assert!(d == today || d == yesterday, "{d}");
    }
    let partitioned = python(&format!(
        "from deltalake import DeltaTable\nprint(DeltaTable({:?}).metadata().partition_columns)",
        lake.join("ib_request_queue_history").display().to_string()
    ));
    assert_eq!(partitioned.trim(), "['date']");
    // The documented recipe for one day of history reads that day's partition only.
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/TABLES.md")).unwrap();
    let section = &doc[doc.find("## `ib_request_queue_history`").unwrap()..];
    let start = section.find("```python\n").unwrap() + "```python\n".len();
    let recipe = &section[start..start + section[start..].find("```").unwrap()];
    let recipe = recipe
        .replace(
            "data/lake/ib_request_queue_history",
            &lake.join("ib_request_queue_history").display().to_string(),
        )
        .replace("2026-11-24", &today);
    let out = python(&format!(
        "{recipe}\nprint(day.num_rows, len(files), all('date={today}' in f for f in files))\n"
    ));
    let want_rows = history
        .iter()
        .filter(|r| r.3.as_deref() == Some(&today))
        .count();
    assert_eq!(out.trim(), format!("{want_rows} 1 True"), "{recipe}");

    // `show` finds the archived request and says so; `list` shows only live ones, and
    // `list --archived` the archived ones.
    let v = show_json(&lake, &done.to_string()[..8]);
    assert_eq!(v["archived"], true);
    assert_eq!(v["request"]["status"], "SUCCESS");
    let events: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["enqueued", "claimed", "succeeded"]);
    let out = ibq(&lake, &["show", &cancelled.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("archived "), "{}", stdout(&out));
    assert!(stdout(&out).contains("CANCELLED"), "{}", stdout(&out));
    let v = show_json(&lake, &recent.to_string());
    assert_eq!(v["archived"], false);
    let list = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["list", "--json"];
        args.extend_from_slice(extra);
        let out = ibq(&lake, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(list(&[]), want);
    let mut archived = vec![done.to_string(), failed.to_string(), cancelled.to_string()];
    archived.sort();
    assert_eq!(list(&["--archived"]), archived);
    // An archived request cannot be changed; the refusal says why.
    for verb in ["retry", "cancel"] {
        let out = ibq(&lake, &[verb, &failed.to_string()[..8]]);
        assert!(!out.status.success(), "{verb}");
        assert!(
            stderr(&out).contains("is archived"),
            "{verb}: {}",
            stderr(&out)
        );
    }
    let out = ibq(&lake, &["show", &Uuid::new_v4().to_string()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not found") || stderr(&out).contains("no request"),
        "{}",
        stderr(&out)
    );

    // A restart replays only the live requests and numbers past the archived rows.
    let mut store = QueueStore::open(&lake, config).await.unwrap();
    assert_eq!(store.state().len(), 2);
    assert!(store.state().get(&done).is_none());
    let next = store
        .enqueue(bars("XLE"))
        .await
        .unwrap()
        .request()
        .seq
        .unwrap();
    assert!(
        next > highest_archived_seq,
        "{next} > {highest_archived_seq}"
    );
}

fn archive_counts(lake: &std::path::Path) -> (usize, usize) {
    let out = python(&format!(
        r#"
from deltalake import DeltaTable
from collections import Counter
rows = DeltaTable({path:?}).to_pyarrow_table().to_pylist()
c = Counter((r["request_id"], r["seq"], r["event"], str(r["updated_at"])) for r in rows)
print(len(rows), sum(1 for v in c.values() if v > 1))
"#,
        path = lake.join("ib_request_queue_history").display().to_string()
    ));
    let mut it = out.split_whitespace().map(|n| n.parse().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// A crash between the history append and the rewrite of the live table, while archiving:
/// the requests are still all in the live queue after the restart, and the next compaction
/// archives them without writing any history row twice.
#[tokio::test]
async fn a_crash_while_archiving_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut store = QueueStore::open(&lake, QueueConfig::default())
        .await
        .unwrap();
    let mut finished = Vec::new();
    for s in ["SPY", "QQQ", "IWM"] {
        let id = enqueue(&mut store, s).await;
        succeed(&mut store, id).await;
        finished.push(id);
    }
    let id = enqueue(&mut store, "DIA").await;
    cancel(&mut store, id).await;
    finished.push(id);
    let open = enqueue(&mut store, "GLD").await;
    drop(store);
    let later = (Utc::now() + Duration::days(8)).to_rfc3339();

    let out = Command::new(ibq_bin())
        .args(["debug", "compact-at", &later, "--lake"])
        .arg(&lake)
        .env("IBQ_FAULT", "after-history-append")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault point ends the process");
    assert!(stderr(&out).contains("IBQ_FAULT"), "{}", stderr(&out));
    // 3 × (enqueued, claimed, succeeded) + (enqueued, cancelled), appended once.
    assert_eq!(archive_counts(&lake), (11, 0));

    // Nothing is lost: the restart holds every request with its newest row.
    let store = QueueStore::open(&lake, QueueConfig::default())
        .await
        .unwrap();
    assert_eq!(store.state().len(), 5);
    for id in &finished {
        let status = store.state().get(id).unwrap().status;
        assert!(
            matches!(status, Status::Success | Status::Cancelled),
            "{status:?}"
        );
    }
    drop(store);

    let out = ibq(&lake, &["debug", "compact-at", &later]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["requests_archived"], 4, "{report}");
    assert_eq!(report["rows_already_in_history"], 11, "{report}");
    assert_eq!(archive_counts(&lake), (11, 0), "no history row twice");
    let store = QueueStore::open(&lake, QueueConfig::default())
        .await
        .unwrap();
    assert_eq!(store.state().len(), 1);
    assert!(store.state().get(&open).is_some());
    drop(store);
    let v = show_json(&lake, &finished[0].to_string());
    assert_eq!(v["archived"], true);
    assert_eq!(v["history"].as_array().unwrap().len(), 3);
}

/// Rows another program appends for an archived request (a CANCELLED row, a copy of its
/// old PENDING row) are refused with a message naming the archived request: they do not
/// reopen it, also not for `ibq list` before the owner takes them in. A new request from
/// the same program is taken in.
#[tokio::test]
async fn rows_of_other_programs_cannot_reopen_an_archived_request() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut store = QueueStore::open(&lake, QueueConfig::default())
        .await
        .unwrap();
    let a = enqueue(&mut store, "SPY").await;
    succeed(&mut store, a).await;
    let b = enqueue(&mut store, "QQQ").await;
    cancel(&mut store, b).await;
    let report = store
        .compact_at(Utc::now() + Duration::days(8))
        .await
        .unwrap();
    assert_eq!(report.requests_archived, 2);
    drop(store);

    let fresh = Uuid::new_v4();
    let old: DateTime<Utc> = Utc::now() - Duration::days(10);
    python(&format!(
        r#"
import datetime, pyarrow as pa
from deltalake import write_deltalake
now = datetime.datetime.now(datetime.timezone.utc)
old = datetime.datetime.fromtimestamp({old}, datetime.timezone.utc)
rows = [
  dict(request_id="{a}", request_type="market_bars", symbol="SPY", priority=2, status="CANCELLED", parameters='{{"bar_size": "1 day"}}', created_at=now),
  dict(request_id="{b}", request_type="market_bars", symbol="QQQ", priority=2, status="PENDING", parameters='{{"bar_size": "1 day"}}', created_at=old),
  dict(request_id="{fresh}", request_type="market_bars", symbol="XLE", priority=2, status="PENDING", parameters='{{"bar_size": "1 day"}}', created_at=now),
]
schema = pa.schema([("request_id", pa.string()), ("request_type", pa.string()), ("symbol", pa.string()), ("priority", pa.int64()), ("status", pa.string()), ("parameters", pa.string()), ("created_at", pa.timestamp("us", tz="UTC"))])
write_deltalake({table:?}, pa.Table.from_pylist(rows, schema=schema), mode="append", schema_mode="merge")
"#,
        old = old.timestamp(),
        table = lake.join("ib_request_queue").display().to_string(),
    ));

    // A reader without the lock already shows the refusals, not half requests.
    let seen = store::read_state(&lake).await.unwrap();
    assert!(seen.get(&a).is_none() && seen.get(&b).is_none());
    assert!(seen.get(&fresh).is_some());

    let store = QueueStore::open(&lake, QueueConfig::default())
        .await
        .unwrap();
    assert!(store.state().get(&a).is_none(), "not reopened");
    assert!(store.state().get(&b).is_none(), "not reopened");
    assert_eq!(store.state().get(&fresh).unwrap().status, Status::Pending);
    let rejections: HashMap<String, String> = store
        .state()
        .all()
        .filter(|r| r.status == Status::Failed)
        .map(|r| {
            (
                r.symbol.clone(),
                r.error_message.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(rejections.len(), 2, "{rejections:?}");
    for (symbol, id) in [("SPY", a), ("QQQ", b)] {
        let m = &rejections[symbol];
        assert!(
            m.contains(&format!("request {id} is archived"))
                && m.contains("ib_request_queue_history"),
            "{m}"
        );
    }
    drop(store);
    // The refused rows left the live table at once; the archived requests read as before.
    let live = rows_by_python(&lake.join("ib_request_queue"));
    assert!(live
        .iter()
        .all(|r| r.0 != a.to_string() && r.0 != b.to_string()));
    let v = show_json(&lake, &a.to_string());
    assert_eq!(
        (v["archived"].clone(), v["request"]["status"].clone()),
        (json!(true), json!("SUCCESS"))
    );
    // A second start does not reject them again.
    let store = QueueStore::open(&lake, QueueConfig::default())
        .await
        .unwrap();
    assert_eq!(store.state().counts().failed, 2);
}

fn log_files(lake: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(lake.join("ib_request_queue/_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "parquet"))
        .collect()
}

/// The queue's `_delta_log` is cleaned past its checkpoints once its entries are older than
/// the log retention (a day): the files are aged instead of waiting. The table still opens,
/// for ibq and Python, with every request.
#[tokio::test]
async fn the_queue_log_is_cleaned_past_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let config = QueueConfig {
        checkpoint_every: 10,
        compact_at_files: 100_000,
        ..QueueConfig::default()
    };
    let mut store = QueueStore::open(&lake, config.clone()).await.unwrap();
    for i in 0..60 {
        enqueue(&mut store, &format!("S{i}")).await;
    }
    let before = log_files(&lake).len();
    assert!(before > 60, "{before} log files");
    // Two days pass for the log.
    let aged = SystemTime::now() - StdDuration::from_secs(2 * 86_400);
    for p in log_files(&lake) {
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(aged)
            .unwrap();
    }
    let report = store.compact().await.unwrap();
    let after = log_files(&lake).len();
    assert!(report.log_files_deleted > 50, "{report:?}");
    assert!(after < 10, "{before} log files before, {after} after");
    drop(store);

    let store = QueueStore::open(&lake, config).await.unwrap();
    assert_eq!(store.state().len(), 60);
    drop(store);
    let n = python(&format!(
        "from deltalake import DeltaTable\nprint(DeltaTable({:?}).to_pyarrow_table().num_rows)",
        lake.join("ib_request_queue").display().to_string()
    ));
    assert_eq!(n.trim(), "60");
}

/// A history table an older ibq created (not partitioned, without `date`) keeps working:
/// ibq adds the column, appends archived requests with their date, and finds them again.
#[tokio::test]
async fn an_unpartitioned_history_table_of_an_older_ibq_takes_archived_requests() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut store = QueueStore::open(&lake, QueueConfig::default())
        .await
        .unwrap();
    let superseded = enqueue(&mut store, "SPY").await;
    cancel(&mut store, superseded).await;
    // The older ibq's history table: the queue's columns, no partitions, one row in it.
    let mut old = ibq::lake::LakeTable::open_or_create(
        &lake,
        "ib_request_queue_history",
        ibq::queue::rows::QUEUE_COLUMNS,
    )
    .await
    .unwrap();
    assert!(old.partition_columns().is_empty());
    let first = store::history(&lake, superseded).await.unwrap().remove(0);
    old.append(&[ibq::queue::rows::encode(std::slice::from_ref(&first))])
        .await
        .unwrap();
    drop(old);
    let done = enqueue(&mut store, "QQQ").await;
    succeed(&mut store, done).await;

    let report = store
        .compact_at(Utc::now() + Duration::days(8))
        .await
        .unwrap();
    assert_eq!(report.requests_archived, 2, "{report:?}");
    drop(store);
    let history = rows_by_python(&lake.join("ib_request_queue_history"));
    assert_eq!(
        events_of(&history, done),
        ["enqueued", "claimed", "succeeded"]
    );
    let today = ibq::market::calendar::new_york_date(Utc::now());
    let dates = [today.to_string(), today.pred_opt().unwrap().to_string()];
    let dated: Vec<&str> = history.iter().filter_map(|r| r.3.as_deref()).collect();
    assert_eq!(dated.len(), 4, "{history:?}");
    assert!(
        dated.iter().all(|d| dates.iter().any(|t| t == d)),
        "{dated:?}"
    );
    assert_eq!(
        history.iter().filter(|r| r.3.is_none()).count(),
        1,
        "only the older ibq's row has no date"
    );
    let v = show_json(&lake, &done.to_string());
    assert_eq!(v["archived"], true);
    assert_eq!(v["history"].as_array().unwrap().len(), 3);
}

/// The history table, appended by every compaction, gets a checkpoint every ten versions
/// and opens from it.
#[tokio::test]
async fn the_history_table_gets_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut store = QueueStore::open(&lake, QueueConfig::default())
        .await
        .unwrap();
    for i in 0..11 {
        let id = enqueue(&mut store, &format!("S{i}")).await;
        cancel(&mut store, id).await;
        store.compact().await.unwrap();
    }
    drop(store);
    let log = lake.join("ib_request_queue_history/_delta_log");
    let checkpoints: Vec<String> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".checkpoint."))
        .collect();
    assert_eq!(
        checkpoints,
        ["00000000000000000010.checkpoint.parquet"],
        "{checkpoints:?}"
    );
    let rows = rows_by_python(&lake.join("ib_request_queue_history"));
    assert_eq!(rows.len(), 11, "one superseded row per cancelled request");
}
