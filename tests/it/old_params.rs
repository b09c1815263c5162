//! Rows written the way the replaced Python system wrote them, with its parameter names and
//! lowercase symbols, processed by `ibq run` against `ibq sim`; and `ibq list --json` giving
//! scripts every request; `expiry` and `strike` limiting a chain.

use std::path::Path;
use std::time::Duration;

use ibq::config::QueueConfig;
use ibq::queue::store::QueueStore;
use ibq::queue::Status;
use ibq::sim::{SimConfig, Simulator};

use crate::common::{ibq, python, spawn_run, stderr, stdout, test_config, wait_until};
use crate::worker::rows_for;

/// One seed-shaped row: (id, request_type, symbol, priority, parameters JSON, result_table).
type OldRow<'a> = (&'a str, &'a str, &'a str, i64, &'a str, &'a str);

/// Appends seed-shaped rows (the old system's 11 columns, UTC timestamps) with Python
/// `deltalake`: each is (id, request_type, symbol, priority, parameters JSON, result_table).
fn append_old_rows(table: &Path, rows: &[OldRow]) {
    let col = |f: &dyn Fn(&OldRow) -> String| rows.iter().map(f).collect::<Vec<_>>().join(", ");
    python(&format!(
        r#"
import datetime, pyarrow as pa
from deltalake import write_deltalake
now = datetime.datetime.now(datetime.timezone.utc)
ts = pa.timestamp("us", tz="UTC")
n = {n}
t = pa.table({{
  "request_id": [{ids}],
  "request_type": [{types}],
  "symbol": [{symbols}],
  "priority": pa.array([{prios}], pa.int64()),
  "status": ["PENDING"] * n,
  "parameters": [{params}],
  "result_table": [{results}],
  "created_at": pa.array([now] * n, ts),
  "updated_at": pa.array([now] * n, ts),
  "result_data": pa.array([None] * n, pa.string()),
  "error_message": pa.array([None] * n, pa.string()),
}})
write_deltalake("{table}", t, mode="append", schema_mode="merge")
"#,
        n = rows.len(),
        ids = col(&|r| format!("{:?}", r.0)),
        types = col(&|r| format!("{:?}", r.1)),
        symbols = col(&|r| format!("{:?}", r.2)),
        prios = col(&|r| r.3.to_string()),
        params = col(&|r| format!("{:?}", r.4)),
        results = col(&|r| format!("{:?}", r.5)),
        table = table.display(),
    ));
}

/// The distinct `underlying` values of `table`'s rows for `id`, read back with Python.
fn underlyings(lake: &Path, table: &str, id: &str) -> String {
    python(&format!(
        r#"
from deltalake import DeltaTable
rows = DeltaTable("{}").to_pyarrow_table().to_pylist()
print(sorted({{r["underlying"] for r in rows if r["request_id"] == "{id}"}}))
"#,
        lake.join(table).display()
    ))
    .trim()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_systems_rows_with_its_parameter_names_run_to_success() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    drop(
        QueueStore::open(&lake, QueueConfig::default())
            .await
            .unwrap(),
    );
    let seed = "6f1c2b1e-0000-4000-8000-0000000000a1";
    let bars = "6f1c2b1e-0000-4000-8000-0000000000a2";
    let lower = "6f1c2b1e-0000-4000-8000-0000000000a3";
    append_old_rows(
        &lake.join("ib_request_queue"),
        &[
            // The seed's own example: queue.insert(request_type="option_chain",
            // symbol="SPY", priority=2, parameters={"dte": 45}, result_table="option_snapshots").
            (
                seed,
                "option_chain",
                "SPY",
                2,
                r#"{"dte": 45}"#,
                "option_snapshots",
            ),
            (
                bars,
                "market_bars",
                "IWM",
                2,
                r#"{"days": 5, "interval": "1 day"}"#,
                "market_bars",
            ),
            (
                lower,
                "option_chain",
                "spy",
                2,
                r#"{"dte": 30}"#,
                "option_snapshots",
            ),
        ],
    );

    let cfg = test_config(dir.path(), "");
    let mut run = spawn_run(&cfg, &lake, &sim.address());
    let ids: Vec<uuid::Uuid> = [seed, bars, lower]
        .iter()
        .map(|s| uuid::Uuid::parse_str(s).unwrap())
        .collect();
    wait_until(
        "the old rows finish",
        Duration::from_secs(120),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            ids.iter().all(|id| {
                s.get(id)
                    .is_some_and(|r| matches!(r.status, Status::Success | Status::Failed))
            })
        },
    )
    .await;

    // `expiry` and `strike` limit a chain to exactly those strikes: two the seed chain got.
    let seen = python(&format!(
        r#"
from deltalake import DeltaTable
rows = DeltaTable("{}").to_pyarrow_table().to_pylist()
rows = [r for r in rows if r["request_id"] == "{seed}"]
ks = sorted({{r["strike"] for r in rows}})
print(rows[0]["expiry"], ks[0], ks[-1])
"#,
        lake.join("option_snapshots").display()
    ));
    let seen: Vec<&str> = seen.split_whitespace().collect();
    let (expiry, k1, k2) = (seen[0], seen[1], seen[2]);
    assert_ne!(k1, k2, "the seed chain has several strikes");
    let enqueue_chain = |strike: &str| {
        let out = ibq(
            &lake,
            &[
                "enqueue",
                "option_chain",
                "SPY",
                "--param",
                &format!("expiry={expiry}"),
                "--param",
                &format!("strike={strike}"),
                "--json",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        uuid::Uuid::parse_str(v["request_id"].as_str().unwrap()).unwrap()
    };
    let two = enqueue_chain(&format!("{k1},{k2}"));
    let unlisted = enqueue_chain("0.5");
    wait_until(
        "the strike chains finish",
        Duration::from_secs(60),
        async || {
            let s = ibq::queue::store::read_state(&lake).await.unwrap();
            [two, unlisted].iter().all(|id| {
                s.get(id)
                    .is_some_and(|r| matches!(r.status, Status::Success | Status::Failed))
            })
        },
    )
    .await;
    run.kill().unwrap();
    run.wait().unwrap();
    let s = ibq::queue::store::read_state(&lake).await.unwrap();
    assert_eq!(s.get(&two).unwrap().status, Status::Success);
    let strikes = python(&format!(
        r#"
from deltalake import DeltaTable
rows = DeltaTable("{}").to_pyarrow_table().to_pylist()
rows = [r for r in rows if r["request_id"] == "{two}"]
print(sorted({{(r["expiry"], r["strike"]) for r in rows}}))
"#,
        lake.join("option_snapshots").display()
    ));
    assert_eq!(
        strikes.trim(),
        format!("[('{expiry}', {k1}), ('{expiry}', {k2})]")
    );
    let r = s.get(&unlisted).unwrap();
    assert_eq!(r.status, Status::Failed);
    assert!(
        r.error_message
            .as_deref()
            .unwrap()
            .contains("strike 0.5 is not listed"),
        "{:?}",
        r.error_message
    );

    let s = ibq::queue::store::read_state(&lake).await.unwrap();
    for id in &ids {
        let r = s.get(id).unwrap();
        assert_eq!(
            r.status,
            Status::Success,
            "{id}: {:?}",
            r.error_message.as_deref()
        );
    }
    assert!(rows_for(&lake, "option_snapshots", ids[0]).await > 0);
    assert!(rows_for(&lake, "market_bars", ids[1]).await > 0);
    assert!(rows_for(&lake, "option_snapshots", ids[2]).await > 0);
    // The lowercase row is stored under the upper-case symbol a filter on SPY finds.
    assert_eq!(s.get(&ids[2]).unwrap().symbol, "SPY");
    assert_eq!(underlyings(&lake, "option_snapshots", lower), "['SPY']");

    // `ibq show` names what each old field was taken to mean.
    let out = ibq(&lake, &["show", seed]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("taken as       dte=45 → target_dte=45"),
        "{}",
        stdout(&out)
    );
    let out = ibq(&lake, &["show", bars]);
    let text = stdout(&out);
    assert!(text.contains("days=5 → duration=5 D"), "{text}");
    assert!(text.contains("interval=1 day → bar_size=1 day"), "{text}");
    // So does `ibq enqueue` with an old name.
    let out = ibq(
        &lake,
        &["enqueue", "option_chain", "qqq", "--param", "dte=30"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(" QQQ "), "{text}");
    assert!(text.contains("taken as dte=30 → target_dte=30"), "{text}");
    // ... and `ibq show` still says so later, though the request was made by ibq itself.
    let id = text
        .split_whitespace()
        .nth(1)
        .expect("enqueue prints the id")
        .to_string();
    let out = ibq(&lake, &["show", &id]);
    let text = stdout(&out);
    assert!(
        text.contains("taken as       dte=30 → target_dte=30"),
        "{text}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn list_json_prints_every_request_past_fifty() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    drop(
        QueueStore::open(&lake, QueueConfig::default())
            .await
            .unwrap(),
    );
    let ids: Vec<String> = (0..57)
        .map(|i| format!("6f1c2b1e-0000-4000-8000-{i:012}"))
        .collect();
    let rows: Vec<_> = ids
        .iter()
        .map(|id| {
            (
                id.as_str(),
                "market_bars",
                "SPY",
                2,
                r#"{"days": 5}"#,
                "market_bars",
            )
        })
        .collect();
    append_old_rows(&lake.join("ib_request_queue"), &rows);

    let out = ibq(&lake, &["list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(listed.len(), 57, "{text}");
    for id in &ids {
        assert!(
            listed.iter().any(|v| v["request_id"] == id.as_str()),
            "{id} missing"
        );
    }

    let out = ibq(&lake, &["list", "--json", "--limit", "10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed.len(), 10);
}
