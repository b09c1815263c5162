//! The reading recipes of docs/TABLES.md run as written (Python `deltalake`, polars,
//! DuckDB) on tables ibq wrote: one day of option snapshots and one day of the queue's
//! history. DuckDB's `delta` extension cannot be installed without a network, so its
//! queries run with `delta_scan(PATH)` replaced by `read_parquet` over the table's live
//! files as `deltalake` lists them, partition folders read as columns (what `delta_scan`
//! reads); the SQL after it is the documented one.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use ibq::config::QueueConfig;
use ibq::queue::store::QueueStore;
use ibq::queue::{Actor, NewRequest, Priority, RequestType};
use ibq::worker::results::{ResultTables, OPTION_SNAPSHOTS};
use serde_json::json;
use uuid::Uuid;

use crate::common::python;

/// The fenced blocks of `lang` in the section of docs/TABLES.md that starts at `heading`
/// (up to the next heading of any level), in order.
fn blocks(heading: &str, lang: &str) -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/TABLES.md")).unwrap();
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} in TABLES.md"));
    let rest = &doc[start + heading.len()..];
    let end = ["\n## ", "\n### "]
        .iter()
        .filter_map(|h| rest.find(h))
        .min()
        .unwrap_or(rest.len());
    let section = &rest[..end];
    let mut out = Vec::new();
    let fence = format!("```{lang}\n");
    let mut from = 0;
    while let Some(i) = section[from..].find(&fence) {
        let body = from + i + fence.len();
        let len = section[body..].find("```").unwrap();
        out.push(section[body..body + len].to_string());
        from = body + len + 3;
    }
    out
}

/// A documented SQL query over `table` as DuckDB runs it here (see the module doc).
fn duckdb_script(sql: &str, doc_path: &str, table: &str) -> String {
    let sql = sql.replace(
        &format!("delta_scan('{doc_path}')"),
        "read_parquet(__FILES__, hive_partitioning = true)",
    );
    assert!(
        sql.contains("__FILES__"),
        "the query reads {doc_path}: {sql}"
    );
    format!(
        "import duckdb\nfrom deltalake import DeltaTable\n_files = DeltaTable({table:?}).file_uris()\n_sql = {sql:?}.replace('__FILES__', '[' + ','.join(repr(f) for f in _files) + ']')\nprint(len(duckdb.sql(_sql).fetchall()))\n"
    )
}

fn at(d: NaiveDate, h: u32) -> DateTime<Utc> {
    New_York
        .from_local_datetime(&d.and_hms_opt(h, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn chain(t: DateTime<Utc>, n: usize) -> deltalake::arrow::array::RecordBatch {
    crate::common::option_rows(Uuid::new_v4(), t, 1000, n)
}

#[tokio::test]
async fn one_day_of_option_snapshots_by_python_polars_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let results = ResultTables::new(root.clone());
    // The documented day, 2026-11-24, between two others; two commits a day.
    let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    for (d, n) in [
        (day - Duration::days(1), 5),
        (day, 11),
        (day + Duration::days(1), 7),
    ] {
        for h in [10, 14] {
            results
                .write(OPTION_SNAPSHOTS, None, chain(at(d, h), n))
                .await
                .unwrap();
        }
    }
    let table = root.join(OPTION_SNAPSHOTS).display().to_string();
    let doc_path = "data/lake/option_snapshots";
    let py = blocks("### Reading one day", "python");
    assert_eq!(py.len(), 2, "the deltalake and the polars recipe");
    let out = python(&format!(
        "{}\nprint(day.num_rows, len(files))\n",
        py[0].replace(doc_path, &table)
    ));
    assert_eq!(out.trim(), "22 2", "deltalake: {out}");
    let out = python(&format!(
        "{}\nprint(day.height)\n",
        py[1].replace(doc_path, &table)
    ));
    assert_eq!(out.trim(), "22", "polars: {out}");
    let sql = blocks("### Reading one day", "sql");
    assert_eq!(sql.len(), 1);
    let out = python(&duckdb_script(&sql[0], doc_path, &table));
    assert_eq!(out.trim(), "22", "duckdb: {out}");
}

#[tokio::test]
async fn one_day_of_history_by_python_polars_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut store = QueueStore::open(&lake, QueueConfig::default())
        .await
        .unwrap();
    // Three requests made and cancelled: their enqueued rows are superseded and go to
    // history at compaction, under today's New York date.
    for s in ["SPY", "QQQ", "IWM"] {
        let id = store
            .enqueue(NewRequest {
                request_type: RequestType::MarketBars,
                symbol: s.into(),
                priority: Priority::NORMAL,
                parameters: json!({}),
                changed_by: Actor::Operator,
                schedule_key: None,
                during: Default::default(),
            })
            .await
            .unwrap()
            .request()
            .request_id;
        store
            .change_each(&[id], |q, id| {
                q.prepare_cancel(id, Actor::Operator, Utc::now())
            })
            .await
            .unwrap()
            .remove(0)
            .unwrap();
    }
    // One more made and cancelled the day before: history holds two days.
    let before = Utc::now() - Duration::days(1);
    let id = store
        .enqueue_many_at(
            vec![NewRequest {
                request_type: RequestType::MarketBars,
                symbol: "DIA".into(),
                priority: Priority::NORMAL,
                parameters: json!({}),
                changed_by: Actor::Operator,
                schedule_key: None,
                during: Default::default(),
            }],
            before,
        )
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .request()
        .request_id;
    store
        .change_each(&[id], |q, id| q.prepare_cancel(id, Actor::Operator, before))
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    store.compact().await.unwrap();
    drop(store);
    let today = ibq::market::calendar::new_york_date(Utc::now());
    let table = lake.join("ib_request_queue_history").display().to_string();
    let doc_path = "data/lake/ib_request_queue_history";
    let dated = |s: &str| {
        s.replace("2026-11-24", &today.to_string()).replace(
            "datetime.date(2026, 11, 24)",
            &format!(
                "datetime.date({}, {}, {})",
                chrono::Datelike::year(&today),
                chrono::Datelike::month(&today),
                chrono::Datelike::day(&today)
            ),
        )
    };
    let heading = "Reading one day of history";
    let py = blocks(heading, "python");
    assert_eq!(py.len(), 2, "the deltalake and the polars recipe");
    let out = python(&format!(
        "{}\nprint(day.num_rows, len(files))\n",
        dated(&py[0]).replace(doc_path, &table)
    ));
    assert_eq!(out.trim(), "3 1", "deltalake: {out}");
    let out = python(&format!(
        "{}\nprint(day.height)\n",
        dated(&py[1]).replace(doc_path, &table)
    ));
    assert_eq!(out.trim(), "3", "polars: {out}");
    let sql = blocks(heading, "sql");
    assert_eq!(sql.len(), 1);
    let out = python(&duckdb_script(&dated(&sql[0]), doc_path, &table));
    assert_eq!(out.trim(), "3", "duckdb: {out}");
}
