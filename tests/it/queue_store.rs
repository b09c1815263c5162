//! The durable store on real Delta tables: other writers, crashes, leases, compaction.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chrono::Utc;
use ibq::config::QueueConfig;
use ibq::queue::store::{QueueStore, StoreError};
use ibq::queue::{Actor, Enqueued, NewRequest, Priority, RequestType, Status};
use serde_json::json;

use crate::common::{ibq_bin, python};

fn new(symbol: &str, dte: u32) -> NewRequest {
    NewRequest {
        request_type: RequestType::OptionChain,
        symbol: symbol.into(),
        priority: Priority::NORMAL,
        parameters: json!({"target_dte": dte}),
        changed_by: Actor::Operator,
        schedule_key: None,
        during: Default::default(),
    }
}

#[tokio::test]
async fn rows_appended_by_python_deltalake_become_requests_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut store = QueueStore::open(&root, QueueConfig::default())
        .await
        .unwrap();
    store.enqueue(new("SPY", 45)).await.unwrap();

    // Another program appends rows with only the seed columns, as the replaced system did:
    // one valid request and one with a bad parameter.
    let table = root.join("ib_request_queue");
    python(&format!(
        r#"
import datetime, pyarrow as pa
from deltalake import write_deltalake
now = datetime.datetime.now(datetime.timezone.utc)
ts = pa.timestamp("us", tz="UTC")
t = pa.table({{
  "request_id": ["6f1c2b1e-0000-4000-8000-000000000001", "6f1c2b1e-0000-4000-8000-000000000002"],
  "request_type": ["market_bars", "market_bars"],
  "symbol": ["IWM", "QQQ"],
  "priority": pa.array([1, 2], pa.int64()),
  "status": ["PENDING", "PENDING"],
  "parameters": ['{{"duration": "5 D", "bar_size": "1 day"}}', '{{"bar_size": "7 mins"}}'],
  "result_table": ["market_bars", "market_bars"],
  "created_at": pa.array([now, now], ts),
  "updated_at": pa.array([now, now], ts),
  "result_data": pa.array([None, None], pa.string()),
  "error_message": pa.array([None, None], pa.string()),
}})
write_deltalake("{}", t, mode="append", schema_mode="merge")
"#,
        table.display()
    ));

    let added = store.poll_external().await.unwrap();
    assert_eq!(added, 2);
    let good = uuid::Uuid::parse_str("6f1c2b1e-0000-4000-8000-000000000001").unwrap();
    let bad = uuid::Uuid::parse_str("6f1c2b1e-0000-4000-8000-000000000002").unwrap();
    let r = store.state().get(&good).unwrap();
    assert_eq!(
        (r.status, r.priority, r.changed_by),
        (Status::Pending, Priority::IMMEDIATE, Actor::External)
    );
    let r = store.state().get(&bad).unwrap();
    assert_eq!(
        r.status,
        Status::Failed,
        "a bad external row is rejected visibly, not dropped"
    );
    assert!(r.error_message.as_deref().unwrap().contains("bar_size"));

    // The external request is served first (priority 1) and survives a restart, which
    // releases it (the process that claimed it is gone).
    let claimed = store.claim(1, "w", Utc::now()).await.unwrap();
    assert_eq!(claimed[0].request_id, good);
    drop(store);
    let store = QueueStore::open(&root, QueueConfig::default())
        .await
        .unwrap();
    let r = store.state().get(&good).unwrap();
    assert_eq!(
        (r.status, r.event),
        (Status::Pending, ibq::queue::Event::Released)
    );
    assert_eq!(store.state().len(), 3);

    // Python reads the current state back: the newest row per request.
    let out = python(&format!(
        r#"
from deltalake import DeltaTable
t = DeltaTable("{}").to_pyarrow_table().to_pylist()
newest = {{}}
for r in t:
    k = r["request_id"]
    if k not in newest or (r["seq"] or -1) > (newest[k]["seq"] or -1):
        newest[k] = r
print(sorted(r["status"] for r in newest.values()))
"#,
        table.display()
    ));
    assert_eq!(out.trim(), "['FAILED', 'PENDING', 'PENDING']");
}

#[tokio::test]
async fn only_one_process_owns_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let _owner = QueueStore::open(&root, QueueConfig::default())
        .await
        .unwrap();
    match QueueStore::open(&root, QueueConfig::default()).await {
        Err(e @ StoreError::Locked(..)) => assert!(e.to_string().contains("another ibq process")),
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn processing_requests_go_back_to_pending_on_start_whatever_their_lease() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let config = QueueConfig::default();
    let mut store = QueueStore::open(&root, config.clone()).await.unwrap();
    let Enqueued::Added(r) = store.enqueue(new("SPY", 45)).await.unwrap() else {
        panic!()
    };
    store.claim(10, "w", Utc::now()).await.unwrap();
    assert_eq!(
        store.state().get(&r.request_id).unwrap().status,
        Status::Processing
    );
    drop(store);
    let store = QueueStore::open(&root, config).await.unwrap();
    let back = store.state().get(&r.request_id).unwrap();
    assert_eq!((back.status, back.attempts), (Status::Pending, 0));
}

#[tokio::test]
async fn compaction_bounds_files_and_keeps_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let config = QueueConfig {
        compact_at_files: 8,
        ..QueueConfig::default()
    };
    let mut store = QueueStore::open(&root, config.clone()).await.unwrap();
    for i in 0..30 {
        store.enqueue(new("SPY", 10 + i)).await.unwrap();
        assert!(
            store.live_files().await.unwrap() <= 8,
            "live files stay bounded"
        );
    }
    let n = store.state().len();
    assert_eq!(n, 30);
    drop(store);
    let store = QueueStore::open(&root, config.clone()).await.unwrap();
    assert_eq!(store.state().len(), 30);
    assert!(store.state().pending().all(|r| r.status == Status::Pending));
    drop(store);

    // Files compacted away can be deleted from disk; the table reads the same afterwards.
    let on_disk = |root: &std::path::Path| {
        std::fs::read_dir(root.join("ib_request_queue"))
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
    let before = on_disk(&root);
    let mut table = ibq::lake::LakeTable::open_existing(
        &root,
        "ib_request_queue",
        ibq::queue::rows::QUEUE_COLUMNS,
    )
    .await
    .unwrap()
    .unwrap();
    let deleted = table
        .vacuum(chrono::Duration::zero(), chrono::Utc::now())
        .await
        .unwrap();
    assert!(
        deleted > 0 && on_disk(&root) == before - deleted,
        "{deleted} deleted of {before}"
    );
    let store = QueueStore::open(&root, config).await.unwrap();
    assert_eq!(store.state().len(), 30);
}

/// Kills `ibq` with SIGKILL in the middle of a burst of enqueues: every id it acknowledged
/// (printed after its commit) is in the queue after a restart.
#[tokio::test]
async fn kill_9_during_a_burst_loses_no_acknowledged_request() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut child = Command::new(ibq_bin())
        .args([
            "debug",
            "enqueue-burst",
            "--count",
            "100000",
            "--per-commit",
            "7",
            "--lake",
        ])
        .arg(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(id) = line.strip_prefix("ack ") {
            acked.push(uuid::Uuid::parse_str(id).unwrap());
        }
        if acked.len() >= 300 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Whatever the pipe still held was acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Some(id) = line.strip_prefix("ack ") {
            acked.push(uuid::Uuid::parse_str(id).unwrap());
        }
    }
    assert!(acked.len() >= 300);
    let store = QueueStore::open(&root, QueueConfig::default())
        .await
        .unwrap();
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| store.state().get(id).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged ids lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
