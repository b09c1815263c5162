//! `ibq dismiss` on a real lake: failures another program recorded (Python `deltalake`, as
//! any writer would) are put aside as CANCELLED with the operator's reason, leave the failed
//! list, and stay in the table and in each request's history.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{ibq, python, stderr, stdout};

const BAD_SYMBOL: &str = "d15e0001-0000-4000-8000-000000000000";
const NO_DATA: &str = "d15e0002-0000-4000-8000-000000000000";
const NOT_SUBSCRIBED: &str = "d15e0003-0000-4000-8000-000000000000";

/// A lake whose queue holds one PENDING request of ibq's and three FAILED requests.
fn lake_with_failures(dir: &Path) -> (PathBuf, String) {
    let lake = dir.join("lake");
    let out = ibq(&lake, &["enqueue", "futures_snapshot", "ES", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pending: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let pending = pending["request_id"].as_str().unwrap().to_string();
    python(&format!(
        r#"
import datetime, json, pyarrow as pa
from deltalake import write_deltalake
now = datetime.datetime.now(datetime.timezone.utc)
ts = pa.timestamp("us", tz="UTC")
n = 3
t = pa.table({{
  "request_id": ["{BAD_SYMBOL}", "{NO_DATA}", "{NOT_SUBSCRIBED}"],
  "request_type": ["futures_snapshot", "market_bars", "option_chain"],
  "symbol": ["ZZZQ", "IWM", "SPY"],
  "priority": pa.array([2] * n, pa.int64()),
  "status": ["FAILED"] * n,
  "parameters": [json.dumps({{"month": "front"}}), json.dumps({{}}), json.dumps({{"target_dte": 30}})],
  "result_table": ["futures_snapshots", "market_bars", "option_snapshots"],
  "created_at": pa.array([now] * n, ts),
  "updated_at": pa.array([now] * n, ts),
  "result_data": pa.array([None] * n, pa.string()),
  "error_message": [
    "IB 200: No security definition has been found for the request",
    "IB 162: Historical Market Data Service error message:HMDS query returned no data",
    "IB 354: Requested market data is not subscribed",
  ],
}})
write_deltalake("{}", t, mode="append", schema_mode="merge")
"#,
        lake.join("ib_request_queue").display()
    ));
    (lake, pending)
}

fn list(lake: &Path, status: &str) -> Vec<Value> {
    let out = ibq(
        lake,
        &["list", "--json", "--limit", "0", "--status", status],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn ids(rows: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn dismiss_one_then_all_failed_keeps_reason_error_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, pending) = lake_with_failures(dir.path());
    assert_eq!(list(&lake, "FAILED").len(), 3);

    // One, by prefix, with a reason.
    let out = ibq(
        &lake,
        &["dismiss", &BAD_SYMBOL[..8], "--reason", "bad symbol"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("dismissed {BAD_SYMBOL}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(ids(&list(&lake, "FAILED")), vec![NO_DATA, NOT_SUBSCRIBED]);
    let cancelled = list(&lake, "CANCELLED");
    assert_eq!(ids(&cancelled), vec![BAD_SYMBOL]);
    let r = &cancelled[0];
    assert_eq!(r["changed_by"], "operator");
    assert_eq!(r["event"], "dismissed");
    assert_eq!(r["result_data"]["dismiss_reason"], "bad symbol");
    assert!(
        r["error_message"].as_str().unwrap().starts_with("IB 200"),
        "the failure's error is kept: {r}"
    );

    // History keeps the failure and the dismissal.
    let out = ibq(&lake, &["show", BAD_SYMBOL, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let text = v.to_string();
    assert!(
        text.contains("\"FAILED\""),
        "history holds the failure: {text}"
    );
    assert!(
        text.contains("\"dismissed\""),
        "history holds the dismissal: {text}"
    );

    // The rest at once, with the default reason; the PENDING request is not touched.
    let out = ibq(&lake, &["dismiss", "--all-failed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(list(&lake, "FAILED").is_empty());
    let cancelled = list(&lake, "CANCELLED");
    assert_eq!(ids(&cancelled), vec![BAD_SYMBOL, NO_DATA, NOT_SUBSCRIBED]);
    assert!(cancelled
        .iter()
        .filter(|r| r["request_id"] != BAD_SYMBOL)
        .all(|r| r["result_data"]["dismiss_reason"] == "dismissed by the operator"));
    assert_eq!(ids(&list(&lake, "PENDING")), vec![pending.clone()]);

    // The table itself holds the rows, as any reader sees them.
    let seen = python(&format!(
        r#"
from deltalake import DeltaTable
t = DeltaTable("{}").to_pyarrow_table().to_pylist()
rows = sorted((r["updated_at"], r["status"], r["event"] or "", r["changed_by"] or "") for r in t if r["request_id"] == "{NO_DATA}")
print(rows[-1][1], rows[-1][2], rows[-1][3])
"#,
        lake.join("ib_request_queue").display()
    ));
    assert_eq!(seen.trim(), "CANCELLED dismissed operator");

    // Nothing left to dismiss is said, not an error.
    let out = ibq(&lake, &["dismiss", "--all-failed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no FAILED requests"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn dismissing_what_is_not_failed_or_without_a_reason_is_a_clear_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, pending) = lake_with_failures(dir.path());

    let out = ibq(&lake, &["dismiss", &pending]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("dismiss") && err.contains("it is PENDING") && err.contains("FAILED"),
        "{err}"
    );

    let out = ibq(&lake, &["dismiss", NO_DATA, "--reason", "  "]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--reason is empty"),
        "{}",
        stderr(&out)
    );

    let out = ibq(&lake, &["dismiss"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("<ID>"), "{}", stderr(&out));

    // Nothing changed.
    assert_eq!(list(&lake, "FAILED").len(), 3);
    assert_eq!(ids(&list(&lake, "PENDING")), vec![pending]);
}
