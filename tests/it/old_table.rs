//! A queue table the replaced Python system created: its 11 seed columns (tests/data/
//! old_queue_columns.txt) with naive timestamps. ibq adopts it on open, processes the old
//! rows, and Python `deltalake` still reads the table afterwards.

use std::time::Duration;

use ibq::queue::store;
use ibq::queue::Status;
use ibq::sim::{SimConfig, Simulator};

use crate::common::{python, spawn_run, test_config, wait_until};

const SEED_COLUMNS: &str = include_str!("../data/old_queue_columns.txt");

/// Python code building the old system's table at `path` with `rows` (Python dict literals).
fn old_writer(path: &str, rows: &str) -> String {
    let cols: Vec<&str> = SEED_COLUMNS.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(cols.len(), 11, "the seed's 11 columns");
    format!(
        r#"
import datetime, pyarrow as pa
from deltalake import write_deltalake
types = {{"priority": pa.int64(), "created_at": pa.timestamp("us"), "updated_at": pa.timestamp("us")}}
schema = pa.schema([(c, types.get(c, pa.string())) for c in {cols:?}])
now = datetime.datetime(2026, 1, 5, 15, 0, 0)
rows = {rows}
for r in rows:
    r.setdefault("created_at", now); r.setdefault("updated_at", now)
write_deltalake("{path}", pa.Table.from_pylist(rows, schema=schema), mode="append")
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_the_old_system_created_is_adopted_and_its_rows_processed() {
    let sim = Simulator::start(SimConfig {
        port: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let queue = lake.join("ib_request_queue");
    let q = queue.display().to_string();
    let id = "5f0c7d9e-8a1b-4c2d-9e3f-0a1b2c3d4e5f";
    python(&old_writer(
        &q,
        &format!(
            r#"[{{"request_id": "{id}", "request_type": "option_chain", "symbol": "SPY", "priority": 2,
  "status": "PENDING", "parameters": '{{"target_dte": 45}}', "result_table": "option_snapshots"}}]"#
        ),
    ));
    let version_before: i64 = python(&format!(
        "from deltalake import DeltaTable\nprint(DeltaTable({q:?}).version())"
    ))
    .trim()
    .parse()
    .unwrap();

    let cfg = test_config(dir.path(), "");
    let mut run = spawn_run(&cfg, &lake, &sim.address());
    wait_until(
        "the old row processed SUCCESS",
        // A whole chain against the sim: seconds alone, over a minute once under a
        // loaded machine. The deadline only says when to give up.
        Duration::from_secs(180),
        async || {
            store::read_state(&lake)
                .await
                .ok()
                .and_then(|s| {
                    s.get(&id.parse().unwrap())
                        .map(|r| r.status == Status::Success)
                })
                .unwrap_or(false)
        },
    )
    .await;
    run.kill().unwrap();
    run.wait().unwrap();

    // The columns were added in one metadata commit right after the old system's version.
    let out = python(&format!(
        r#"
from deltalake import DeltaTable
t = DeltaTable({q:?})
h = [c for c in t.history() if c.get("operation") == "ADD COLUMN"]
print(len(h), h[0]["version"] if h else None)
rows = t.to_pyarrow_table().to_pylist()
print(sorted(set(r["status"] for r in rows if r["request_id"] == "{id}")))
import pyarrow.compute as pc
print(DeltaTable({lake:?} + "/option_snapshots").to_pyarrow_table().num_rows > 0)
"#,
        lake = lake.display().to_string()
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("1 {}", version_before + 1), "{out}");
    assert!(lines[1].contains("'SUCCESS'"), "{out}");
    assert_eq!(lines[2], "True", "option_snapshots has rows: {out}");
}

#[test]
fn a_table_with_a_column_of_another_type_stops_ibq_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let q = lake.join("ib_request_queue").display().to_string();
    python(&format!(
        r#"
import pyarrow as pa
from deltalake import write_deltalake
t = pa.table({{"request_id": ["5f0c7d9e-8a1b-4c2d-9e3f-0a1b2c3d4e5f"], "priority": [True]}})
write_deltalake({q:?}, t)
"#
    ));
    let cfg = test_config(dir.path(), "");
    let out = std::process::Command::new(crate::common::ibq_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--lake")
        .arg(&lake)
        .args(["--gateway", "127.0.0.1:1"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = crate::common::stderr(&out);
    assert!(!out.status.success(), "ibq run refuses the table: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].contains("ib_request_queue") && lines[0].contains("`priority`"),
        "names the table and the column: {err}"
    );
}
