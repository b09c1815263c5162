//! Crash recovery and other writers: kill -9 mid-drain, a crash inside compaction, other
//! writers' rows ibq cannot read, and compaction racing another writer's appends.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use ibq::config::QueueConfig;
use ibq::queue::store::{self, QueueStore};
use ibq::queue::{Actor, Event, NewRequest, Priority, RequestType, Status};
use ibq::sim::{SimConfig, Simulator};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{ibq, ibq_bin, python, spawn_run, stderr, stdout, wait_until, PY_EXIT};
use crate::queue_rig::{burst_by_cli, cancel_by_cli};

fn chain(symbol: &str, dte: u32) -> NewRequest {
    NewRequest {
        request_type: RequestType::OptionChain,
        symbol: symbol.into(),
        priority: Priority::NORMAL,
        parameters: json!({"target_dte": dte, "strikes": 1}),
        changed_by: Actor::Operator,
        schedule_key: None,
        during: Default::default(),
    }
}

/// The recipes of docs/TABLES.md "Reading the current state", run as documented against
/// `table`: the number of PENDING requests by the Python recipe and by the DuckDB query
/// (over the table's rows as `deltalake` reads them, since DuckDB's delta extension is not
/// installed here).
fn pending_by_documented_recipes(table: &std::path::Path) -> (usize, usize) {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/TABLES.md")).unwrap();
    let section = &doc[doc.find("### Reading the current state").unwrap()..];
    let block = |lang: &str| {
        let start = section.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
        let len = section[start..].find("```").unwrap();
        section[start..start + len].to_string()
    };
    let recipe =
        block("python").replace("data/lake/ib_request_queue", &table.display().to_string());
    let sql = block("sql").replace("delta_scan('data/lake/ib_request_queue')", "rows_now");
    let out = python(&format!(
        "{recipe}\nprint(len(pending))\nimport duckdb\nrows_now = DeltaTable({path:?}).to_pyarrow_table()\ncur = duckdb.sql({sql:?}).fetchall()\ncols = [d[0] for d in duckdb.sql({sql:?}).description]\nprint(sum(1 for r in cur if r[cols.index('status')] == 'PENDING'))\n",
        path = table.display().to_string(),
    ));
    let mut lines = out.lines();
    (
        lines.next().unwrap().trim().parse().unwrap(),
        lines.next().unwrap().trim().parse().unwrap(),
    )
}

/// Ten kill -9 at random moments while 150 option chains drain (the default five-minute
/// lease), then one restart: the owner lock frees the orphans at once and every request
/// ends SUCCESS exactly once, with no result row written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_kill_9_while_150_chains_drain_then_one_restart_finish_each_once() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // Ten requests in flight, so chains finish between the kills.
    let cfg = dir.path().join("ibq.toml");
    std::fs::write(
        &cfg,
        format!(
            "[queue]\npoll_external_secs = 1\n[worker]\npoll_secs = 1\nbatch_size = 10\n[scheduler]\nenabled = false\n[logging]\ndir = {:?}\n",
            dir.path().join("logs").display().to_string()
        ),
    )
    .unwrap();
    let mut ids = Vec::new();
    {
        let mut store = QueueStore::open(&lake, QueueConfig::default())
            .await
            .unwrap();
        assert_eq!(store.lease_secs(), 300, "the default lease");
        let news = ["SPY", "QQQ", "IWM"]
            .iter()
            .flat_map(|s| (1..=50).map(move |dte| chain(s, dte)))
            .collect();
        for o in store.enqueue_many(news).await.unwrap() {
            ids.push(o.unwrap().request().request_id);
        }
    }
    assert_eq!(ids.len(), 150);

    let started = Instant::now();
    let mut killed_while_processing = 0;
    for _ in 0..10 {
        let mut run = spawn_run(&cfg, &lake, &sim.address());
        let wait = Duration::from_millis(rand::random::<u64>() % 2500 + 1000);
        tokio::time::sleep(wait).await;
        run.kill().unwrap(); // SIGKILL
        run.wait().unwrap();
        let s = store::read_state(&lake).await.unwrap();
        if s.counts().processing > 0 {
            killed_while_processing += 1;
        }
    }
    let s = store::read_state(&lake).await.unwrap();
    let done_before = s.counts().success;
    assert!(
        killed_while_processing > 0,
        "at least one kill left requests PROCESSING"
    );
    assert!(
        done_before > 0 && done_before < 150,
        "killed while the chains drained ({done_before} done)"
    );

    let restart = Instant::now();
    let mut run = spawn_run(&cfg, &lake, &sim.address());
    wait_until(
        "every request SUCCESS after the restart",
        Duration::from_secs(240),
        async || {
            let s = store::read_state(&lake).await.unwrap();
            s.counts().success == 150
        },
    )
    .await;
    eprintln!(
        "drain: 150 chains with 10 kill -9 in {:.1} s; {done_before} done before the last start, the rest in {:.1} s after it",
        started.elapsed().as_secs_f64(),
        restart.elapsed().as_secs_f64()
    );
    run.kill().unwrap();
    run.wait().unwrap();

    let s = store::read_state(&lake).await.unwrap();
    assert_eq!(s.counts().processing, 0, "nothing stays PROCESSING");
    assert!(ids
        .iter()
        .all(|id| s.get(id).unwrap().status == Status::Success));
    // Each request succeeded once: one `succeeded` row across the queue and its history.
    let out = python(&format!(
        r#"
from deltalake import DeltaTable
from collections import Counter
rows = []
for t in ["ib_request_queue", "ib_request_queue_history"]:
    try:
        rows += DeltaTable("{lake}/" + t).to_pyarrow_table(columns=["request_id", "event"]).to_pylist()
    except Exception as e:
        if "history" not in t:
            raise
c = Counter(r["request_id"] for r in rows if r["event"] == "succeeded")
print(len(c), sum(1 for v in c.values() if v != 1))
"#,
        lake = lake.display()
    ));
    assert_eq!(out.trim(), "150 0", "every request succeeded exactly once");
    // No (request, contract) row twice, and every request wrote its rows.
    let out = python(&format!(
        r#"
from deltalake import DeltaTable
from collections import Counter
rows = DeltaTable("{}").to_pyarrow_table(columns=["request_id", "conid"]).to_pylist()
c = Counter((r["request_id"], r["conid"]) for r in rows)
print(sum(1 for v in c.values() if v > 1), len(set(r["request_id"] for r in rows)), len(rows))
"#,
        lake.join("option_snapshots").display()
    ));
    let v: Vec<usize> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(v[0], 0, "no (request, contract) row written twice: {out}");
    assert_eq!(v[1], 150, "every request wrote its rows: {out}");
    // The log says how many orphans each start released and how soon they ran again.
    let mut log = String::new();
    for e in std::fs::read_dir(dir.path().join("logs")).unwrap() {
        log += &std::fs::read_to_string(e.unwrap().path()).unwrap();
    }
    let released: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("orphaned PROCESSING requests in"))
        .collect();
    assert!(!released.is_empty(), "the log names the released orphans");
    for l in log
        .lines()
        .filter(|l| l.contains("every orphaned request is running again"))
    {
        eprintln!("{l}");
    }
}

/// Orphans are freed by the owner lock, not by lease expiry: a new owner releases every
/// PROCESSING row at once, counting no attempt, with the reason in the history.
#[tokio::test]
async fn a_new_owner_releases_every_orphan_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut store = QueueStore::open(&root, QueueConfig::default())
        .await
        .unwrap();
    let news = (1..=50).map(|d| chain("SPY", d)).collect();
    store.enqueue_many(news).await.unwrap();
    let claimed = store.claim(50, "ibq-dead", Utc::now()).await.unwrap();
    assert_eq!(claimed.len(), 50);
    drop(store); // as kill -9 leaves it: nothing released
    let mut store = QueueStore::open(&root, QueueConfig::default())
        .await
        .unwrap();
    assert_eq!(store.orphaned(), 50);
    assert_eq!(store.state().counts().processing, 0);
    assert_eq!(store.state().counts().pending, 50);
    let id = claimed[0].request_id;
    let r = store.state().get(&id).unwrap();
    assert_eq!((r.event, r.attempts), (Event::Released, 0));
    assert!(r.error_message.as_deref().unwrap().contains("ibq-dead"));
    // They run again at once; the time until then is measured.
    assert!(store.orphans_running_after.is_none());
    assert_eq!(store.claim(50, "w", Utc::now()).await.unwrap().len(), 50);
    assert!(store.orphans_running_after.is_some());
    drop(store);
    let events: Vec<Event> = store::history(&root, id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(
        events,
        [
            Event::Enqueued,
            Event::Claimed,
            Event::Released,
            Event::Claimed
        ]
    );
}

/// The running owner's sweep frees a request whose lease ended (its outcome could not be
/// recorded), without a restart.
#[tokio::test]
async fn the_sweep_frees_expired_leases_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut store = QueueStore::open(&root, QueueConfig::default())
        .await
        .unwrap();
    store.enqueue_many(vec![chain("SPY", 30)]).await.unwrap();
    let t = Utc::now();
    let r = store.claim(1, "w", t).await.unwrap().remove(0);
    assert_eq!(store.sweep_expired_leases(t).await.unwrap(), 0);
    let later = t + chrono::Duration::seconds(301);
    assert_eq!(store.sweep_expired_leases(later).await.unwrap(), 1);
    let back = store.state().get(&r.request_id).unwrap();
    assert_eq!((back.status, back.attempts), (Status::Pending, 0));
    assert!(back.error_message.as_deref().unwrap().contains("expired"));
}

fn parquet_rows_by_key(lake: &std::path::Path, table: &str) -> String {
    python(&format!(
        r#"
from deltalake import DeltaTable
from collections import Counter
rows = DeltaTable("{}").to_pyarrow_table().to_pylist()
c = Counter((r["request_id"], r["seq"], r["event"], str(r["updated_at"])) for r in rows)
print(len(rows), sum(1 for v in c.values() if v > 1))
"#,
        lake.join(table).display()
    ))
}

/// A crash inside compaction, between the history append and the rewrite of the queue:
/// nothing is lost and no history row is duplicated, also after a second crash.
#[tokio::test]
async fn a_crash_between_history_append_and_rewrite_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let ids = burst_by_cli(&lake, 20);
    let cancel = |some: &[String]| cancel_by_cli(&lake, some);
    let crashing_compact = || {
        let out = Command::new(ibq_bin())
            .args(["compact", "--lake"])
            .arg(&lake)
            .env("IBQ_FAULT", "after-history-append")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "the fault point ends the process");
        assert!(stderr(&out).contains("IBQ_FAULT"), "{}", stderr(&out));
    };

    // A compaction crashes right after its history append...
    cancel(&ids[..5]);
    crashing_compact();
    assert_eq!(
        parquet_rows_by_key(&lake, "ib_request_queue_history").trim(),
        "5 0"
    );
    // ...and so does the next one, with more superseded rows: it appends only those.
    cancel(&ids[5..8]);
    crashing_compact();
    assert_eq!(
        parquet_rows_by_key(&lake, "ib_request_queue_history").trim(),
        "8 0",
        "the second attempt does not append the first one's rows again"
    );
    // Nothing is lost meanwhile: the queue still has every request and its newest row.
    let s = store::read_state(&lake).await.unwrap();
    assert_eq!((s.len(), s.counts().cancelled), (20, 8));

    let out = ibq(&lake, &["compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        parquet_rows_by_key(&lake, "ib_request_queue_history").trim(),
        "8 0",
        "each superseded row is in history once"
    );
    assert_eq!(
        parquet_rows_by_key(&lake, "ib_request_queue").trim(),
        "20 0",
        "the queue keeps the newest row of each request"
    );
    let s = store::read_state(&lake).await.unwrap();
    assert_eq!(
        (s.len(), s.counts().cancelled, s.counts().pending),
        (20, 8, 12)
    );
    for id in [&ids[0], &ids[6]] {
        let out = ibq(&lake, &["show", id, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let events: Vec<&str> = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, ["enqueued", "cancelled"]);
    }

    // A later compaction appends only what is new.
    cancel(&ids[8..10]);
    let out = ibq(&lake, &["compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        parquet_rows_by_key(&lake, "ib_request_queue_history").trim(),
        "10 0"
    );
}

/// A compaction that crashed after its history append, then Delta's own log cleanup (at a
/// checkpoint, of entries past the log retention) removing the history version the last
/// finished compaction recorded: the next compaction still succeeds, and appends no row
/// twice.
#[tokio::test]
async fn a_compaction_after_deltas_log_cleanup_removed_the_recorded_history_version_doubles_nothing(
) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let ids = burst_by_cli(&lake, 12);
    let cancel = |some: &[String]| cancel_by_cli(&lake, some);
    cancel(&ids[..4]);
    let out = ibq(&lake, &["compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The next compaction crashes right after appending its rows to history.
    cancel(&ids[4..7]);
    let out = Command::new(ibq_bin())
        .args(["compact", "--lake"])
        .arg(&lake)
        .env("IBQ_FAULT", "after-history-append")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault point ends the process");
    assert_eq!(
        parquet_rows_by_key(&lake, "ib_request_queue_history").trim(),
        "7 0"
    );
    // Delta's log cleanup as another program runs it: a checkpoint of the newest version,
    // and every log entry before it gone.
    python(&format!(
        r#"
import os
from deltalake import DeltaTable
path = "{path}"
t = DeltaTable(path)
t.create_checkpoint()
log = os.path.join(path, "_delta_log")
for f in os.listdir(log):
    if f.endswith(".json") and int(f.split(".")[0]) < t.version():
        os.remove(os.path.join(log, f))
print(t.version())
"#,
        path = lake.join("ib_request_queue_history").display()
    ));

    let out = ibq(&lake, &["compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        parquet_rows_by_key(&lake, "ib_request_queue_history").trim(),
        "7 0",
        "each superseded row is in history once"
    );
    let s = store::read_state(&lake).await.unwrap();
    assert_eq!((s.len(), s.counts().cancelled), (12, 7));
    // And compactions go on as before.
    cancel(&ids[7..9]);
    let out = ibq(&lake, &["compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        parquet_rows_by_key(&lake, "ib_request_queue_history").trim(),
        "9 0"
    );
}

/// (request_id, request_type, symbol, priority, status, parameters) of a row another
/// program appends.
type ExternalRow = (
    Option<String>,
    &'static str,
    &'static str,
    i64,
    &'static str,
    &'static str,
);

/// Every kind of row another writer can append that ibq cannot run becomes a visible
/// FAILED rejection, stays in the lake through compactions, and stops counting as
/// pending in both documented recipes.
#[tokio::test]
async fn rows_ibq_cannot_run_become_visible_rejections_and_are_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let table = lake.join("ib_request_queue");
    let out = ibq(&lake, &["enqueue", "futures_snapshot", "ES"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let uuid = |n: u32| format!("6f1c2b1e-0000-4000-8000-{n:012}");
    // (request_id, request_type, symbol, priority, status, parameters): one row per kind.
    let rows: Vec<ExternalRow> = vec![
        (Some(uuid(1)), "moon_shot", "AAA", 2, "PENDING", "{}"),
        (Some(uuid(2)), "market_bars", "BBB", 2, "PENDING", "{oops"),
        (Some(uuid(3)), "market_bars", "CCC", 2, "DONE", "{}"),
        (Some(uuid(4)), "market_bars", "DDD", 0, "PENDING", "{}"),
        (Some(uuid(5)), "market_bars", "EEE", 4, "PENDING", "{}"),
        (
            Some("row-17".into()),
            "market_bars",
            "FFF",
            2,
            "PENDING",
            "{}",
        ),
        (None, "market_bars", "GGG", 2, "PENDING", "{}"),
        (
            Some(uuid(8)),
            "market_bars",
            "SP\u{1b}[2JY",
            2,
            "PENDING",
            "{}",
        ),
        (Some(uuid(9)), "market_bars", "hhh", 2, "PENDING", "{}"),
    ];
    let col = |f: &dyn Fn(&ExternalRow) -> String| {
        format!("[{}]", rows.iter().map(f).collect::<Vec<_>>().join(", "))
    };
    let py_str = |s: &str| format!("{s:?}").replace("\\u{1b}", "\\x1b");
    python(&format!(
        r#"
import datetime, pyarrow as pa
from deltalake import write_deltalake
now = datetime.datetime.now(datetime.timezone.utc)
ts = pa.timestamp("us", tz="UTC")
n = {n}
t = pa.table({{
  "request_id": pa.array({ids}, pa.string()),
  "request_type": {types},
  "symbol": {symbols},
  "priority": pa.array({prios}, pa.int64()),
  "status": {statuses},
  "parameters": {params},
  "created_at": pa.array([now] * n, ts),
  "updated_at": pa.array([now] * n, ts),
}})
write_deltalake("{table}", t, mode="append", schema_mode="merge")
"#,
        n = rows.len(),
        ids = col(&|r| r.0.as_deref().map(py_str).unwrap_or("None".into())),
        types = col(&|r| py_str(r.1)),
        symbols = col(&|r| py_str(r.2)),
        prios = col(&|r| r.3.to_string()),
        statuses = col(&|r| py_str(r.4)),
        params = col(&|r| py_str(r.5)),
        table = table.display(),
    ));
    // Before ibq has seen them, the recipes count every PENDING-looking row (so the check
    // below can fail).
    assert_eq!(pending_by_documented_recipes(&table), (9, 9));

    // An owner takes them in; several compactions follow.
    for i in 0..3 {
        let out = ibq(
            &lake,
            &[
                "enqueue",
                "market_bars",
                "QQQ",
                "--param",
                &format!("duration={} D", i + 1),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let out = ibq(&lake, &["compact"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    let out = ibq(&lake, &["list", "--json", "--limit", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let rejected: Vec<&Value> = listed.iter().filter(|r| r["event"] == "rejected").collect();
    assert_eq!(rejected.len(), 8, "{listed:#?}");
    for r in &rejected {
        assert_eq!(r["status"], "FAILED");
        let m = r["error_message"].as_str().unwrap();
        assert!(!m.contains('\u{1b}'), "no raw control bytes stored: {m}");
    }
    let by_id = |id: &str| {
        listed
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    let msg = |id: &str| by_id(id)["error_message"].as_str().unwrap().to_string();
    assert!(msg(&uuid(1)).contains("unknown request type \"moon_shot\""));
    assert_eq!(by_id(&uuid(1))["request_type"], "unknown");
    assert!(msg(&uuid(2)).contains("not JSON"));
    assert!(msg(&uuid(3)).contains("unknown status \"DONE\""));
    assert!(msg(&uuid(4)).contains("got 0"));
    assert!(msg(&uuid(5)).contains("got 4"));
    assert!(
        msg(&uuid(8)).contains("invalid symbol `SP\\x1b[2JY`"),
        "{}",
        msg(&uuid(8))
    );
    assert!(rejected.iter().any(|r| r["error_message"]
        .as_str()
        .unwrap()
        .contains("request_id was \"row-17\"")));
    assert!(rejected.iter().any(|r| r["error_message"]
        .as_str()
        .unwrap()
        .contains("no request_id")));
    // A lower-case symbol is a request, upper-cased like the CLI's.
    let ok = by_id(&uuid(9));
    assert_eq!(
        (ok["status"].as_str(), ok["symbol"].as_str()),
        (Some("PENDING"), Some("HHH"))
    );

    let out = ibq(&lake, &["show", &uuid(1), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["request"]["status"], "FAILED");
    assert_eq!(
        v["request"]["result_data"]["rejected_row"]["request_type"],
        "moon_shot"
    );

    // Every row the other program wrote is still in the lake, once.
    let out = python(&format!(
        r#"
from deltalake import DeltaTable
rows = []
for t in ["ib_request_queue", "ib_request_queue_history"]:
    rows += DeltaTable("{lake}/" + t).to_pyarrow_table().to_pylist()
ext = [r for r in rows if r["seq"] is None and r["changed_by"] in (None, "external")]
for s in ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "SP\x1b[2JY", "HHH"]:
    print(sum(1 for r in ext if (r["symbol"] or "").upper() == s))
"#,
        lake = lake.display()
    ));
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1"; 9],
        "{out}"
    );

    // Pending by both recipes: ES, the three QQQ bars and the one good external row.
    assert_eq!(pending_by_documented_recipes(&table), (5, 5));

    // Opening again adds no second rejection.
    let before = store::read_state(&lake).await.unwrap().len();
    let out = ibq(&lake, &["compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(store::read_state(&lake).await.unwrap().len(), before);
}

/// Compaction racing another writer: 2,000 requests appended by Python `deltalake` in 200
/// commits, without retry, while the owner takes them in, runs them and compacts after
/// every round (the writer waits for one compaction every 20 commits, so at least ten
/// race it). No append fails; every request is taken in once and completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_racing_2000_appends_fails_none_and_sees_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let table = root.join("ib_request_queue");
    let mut store = QueueStore::open(&root, QueueConfig::default())
        .await
        .unwrap();
    // How many compactions have run, for the writer to pace itself by.
    let compacted = dir.path().join("compacted");
    std::fs::write(&compacted, "0").unwrap();
    let mut writer = Command::new("python3")
        .arg("-c")
        .arg(format!(
            r#"
import datetime, json, time, uuid, pyarrow as pa
from deltalake import write_deltalake
ts = pa.timestamp("us", tz="UTC")
for c in range(200):
    now = datetime.datetime.now(datetime.timezone.utc)
    t = pa.table({{
        "request_id": [str(uuid.uuid4()) for _ in range(10)],
        "request_type": ["position_update"] * 10,
        "symbol": ["ALL"] * 10,
        "priority": pa.array([2] * 10, pa.int64()),
        "status": ["PENDING"] * 10,
        "parameters": [json.dumps({{"conid": c * 10 + i + 1}}) for i in range(10)],
        "created_at": pa.array([now] * 10, ts),
        "updated_at": pa.array([now] * 10, ts),
    }})
    write_deltalake("{}", t, mode="append", schema_mode="merge")
    if c % 20 == 19:
        # Every 20 commits, wait for a compaction since the last wait, so the two race
        # throughout however loaded the machine is.
        waited = 0
        while int(open("{}").read() or 0) < c // 20 + 1:
            time.sleep(0.01)
            waited += 1
            if waited > 12000:
                raise SystemExit("no compaction in 120 s")
print("appended", 200)
{PY_EXIT}"#,
            table.display(),
            compacted.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut taken = 0usize;
    let mut compactions = 0usize;
    let mut done = 0usize;
    let mut finished = None;
    let mut rounds_after = 0;
    loop {
        if finished.is_none() {
            finished = writer.try_wait().unwrap();
        }
        taken += store.poll_external().await.unwrap();
        let claimed = store.claim(1000, "w", Utc::now()).await.unwrap();
        let ids: Vec<Uuid> = claimed.iter().map(|r| r.request_id).collect();
        let now = Utc::now();
        for r in store
            .change_each(&ids, |q, id| q.prepare_succeed(id, json!({"rows": 1}), now))
            .await
            .unwrap()
        {
            r.unwrap();
            done += 1;
        }
        if finished.is_none() {
            store.compact().await.unwrap();
            compactions += 1;
            std::fs::write(&compacted, compactions.to_string()).unwrap();
        } else {
            rounds_after += 1;
            if taken >= 2000 || rounds_after > 100 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = writer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "an append failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("appended 200"));
    assert!(
        compactions >= 10,
        "compaction ran throughout ({compactions})"
    );
    assert_eq!(taken, 2000, "each appended request taken in once");
    assert_eq!(done, 2000, "each completed once");
    assert_eq!(store.state().len(), 2000);
    assert_eq!(store.state().counts().success, 2000);
    drop(store);
    let out = python(&format!(
        r#"
from deltalake import DeltaTable
rows = DeltaTable("{}").to_pyarrow_table().to_pylist()
newest = {{}}
for r in rows:
    k = r["request_id"]
    if k not in newest or (r["seq"] or -1) > (newest[k]["seq"] or -1):
        newest[k] = r
print(len(newest), sum(1 for r in newest.values() if r["status"] == "SUCCESS"))
"#,
        table.display()
    ));
    assert_eq!(out.trim(), "2000 2000");
}

/// A request that runs longer than its lease keeps it: the worker renews the lease, so
/// the running engine's sweep never frees (and runs a second time) a request still at work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_running_past_its_lease_is_renewed_not_swept() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // The snapshot takes 5 s; the lease is 3 s, renewed every second.
    sim.set_latency(ibq::sim::RequestKind::MarketData, Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut config = crate::worker::config(&root, &sim);
    config.queue.lease_secs = 3;
    let engine = ibq::engine::runtime::Engine::start(&config, crate::worker::options())
        .await
        .unwrap();
    let ids = crate::worker::enqueue(
        &engine,
        vec![crate::worker::new(
            RequestType::FuturesSnapshot,
            "ES",
            json!({}),
        )],
    )
    .await;
    let rows = crate::worker::settle(&engine, &ids, Duration::from_secs(60)).await;
    assert_eq!(
        rows[0].status,
        Status::Success,
        "{:?}",
        rows[0].error_message
    );
    engine.shutdown().await;
    let events: Vec<Event> = store::history(&root, ids[0])
        .await
        .unwrap()
        .iter()
        .map(|r| r.event)
        .collect();
    assert!(
        !events.contains(&Event::Released),
        "never released while it ran: {events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| **e == Event::Claimed).count(),
        1,
        "claimed once: {events:?}"
    );
    assert!(
        events.contains(&Event::LeaseRenewed),
        "the lease was renewed: {events:?}"
    );
    assert_eq!(events.last(), Some(&Event::Succeeded));
}
