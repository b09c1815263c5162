//! `ibq bench year`: builds its lakes through the engine's writers and reports figures for
//! both, as JSON with the documented keys.

use crate::common::{ibq_bin, stderr, stdout};

const KEYS: [&str; 6] = [
    "days",
    "startup_s",
    "peak_rss_mb",
    "derived_stats_s",
    "day_query_s",
    "day_query_files",
];

fn check(v: &serde_json::Value, days: u64) {
    for k in KEYS {
        assert!(v.get(k).is_some(), "key {k} missing in {v}");
    }
    assert_eq!(v["days"], days, "{v}");
    for k in ["startup_s", "derived_stats_s", "day_query_s"] {
        let s = v[k].as_f64().unwrap_or(-1.0);
        assert!(s > 0.0 && s.is_finite(), "{k} = {s}");
    }
    // A real process holds its runtime, deltalake and the queue: more than a few MB, and a
    // figure read from /proc, not a default.
    let rss = v["peak_rss_mb"].as_f64().unwrap();
    assert!(rss > 5.0 && rss < 100_000.0, "peak_rss_mb = {rss}");
    // The one-day query reads at least one file and never more than the table has.
    let read = v["day_query_files"].as_u64().unwrap();
    let total = v["day_query_total_files"].as_u64().unwrap();
    assert!(read >= 1 && read <= total, "{read} of {total} files");
    // A day of five-strike chains: 22 quotes per chain, 3 symbols every 5 minutes.
    let rows = v["day_query_rows"].as_u64().unwrap();
    assert!(rows >= 22 * 3 * 70, "{rows} option rows for the day");
    // About 1,250 requests a trading day.
    let requests = v["requests"].as_u64().unwrap();
    assert!(
        (1_000 * days..=1_300 * days).contains(&requests),
        "{requests} requests"
    );
    let tables = v["tables"].as_object().unwrap();
    // The upkeep ran on the build's clock: removed files wait for their vacuum a day at
    // most, so they never weigh more than the live data and one day's churn.
    for (t, f) in tables {
        let bytes = |k: &str| f[k].as_u64().unwrap();
        assert!(
            bytes("removed_bytes") <= bytes("live_bytes") + bytes("churn_24h_bytes"),
            "{t}: {f}"
        );
        let open = f["open_s"].as_f64().unwrap();
        assert!(open > 0.0 && open.is_finite(), "{t}: {f}");
    }
    assert!(v["upkeeps"].as_u64().unwrap() >= days, "{v}");
    for t in [
        "ib_request_queue",
        "option_snapshots",
        "futures_snapshots",
        "market_bars",
        "position_updates",
        "derived_stats",
    ] {
        let f = &tables[t];
        assert!(f["live_files"].as_u64().unwrap() >= 1, "{t}: {f}");
        assert!(f["log_files"].as_u64().unwrap() >= 1, "{t}: {f}");
    }
}

#[test]
fn bench_year_reports_every_figure_for_n_days_and_one() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("year");
    let out = std::process::Command::new(ibq_bin())
        .args([
            "bench",
            "year",
            "--days",
            "2",
            "--json",
            "--session-secs",
            "2",
            // Rows as the engine writes them, in fewer commits: at the engine's commit
            // sizes a day is about 9,700 commits, minutes of a test.
            "--exact-days",
            "0",
            "--commit-window",
            "3600",
        ])
        .arg("--lake")
        .arg(&lake)
        .env_remove("IBQ_LAKE")
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    check(&v, 2);
    check(&v["baseline"], 1);
    // Two days hold twice the requests of one (bytes are no measure: merged files
    // compress better than a day of small ones).
    assert_eq!(
        v["requests"].as_u64().unwrap(),
        2 * v["baseline"]["requests"].as_u64().unwrap()
    );
    // The N-day lake stays where --lake said, readable by the engine's own tools.
    assert!(lake.join("ib_request_queue").join("_delta_log").is_dir());
    let listed = crate::common::ibq(&lake, &["list", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
}

#[test]
fn bench_year_refuses_a_lake_folder_in_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("something"), "x").unwrap();
    let out = crate::common::ibq(dir.path(), &["bench", "year", "--days", "1"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(dir.path().join("something").exists());
}

/// A small schedule whose day is a few hundred commits, so a test can build days exactly.
const SMALL: &str = r#"
[streaming]
write_interval_secs = 300

[[scheduler.jobs]]
name = "futures"
type = "futures_snapshot"
symbols = ["ES"]
every = "30m"
during = "regular"

[[scheduler.jobs]]
name = "positions"
type = "position_update"
every = "30m"
during = "regular"

[[scheduler.jobs]]
name = "chains"
type = "option_chain"
symbols = ["SPY"]
parameters = { target_dte = 45 }
every = "2h"
during = "regular"

[[scheduler.jobs]]
name = "bars"
type = "market_bars"
symbols = ["SPY"]
parameters = { duration = "5 D", bar_size = "1 day" }
at = "16:05"

[[scheduler.jobs]]
name = "stats"
type = "derived_stats"
at = "16:30"
"#;

/// Per table of a lake: live files, rows per `date` partition, removed files, log files.
type Shape = std::collections::BTreeMap<String, (usize, Vec<(String, usize)>, usize, usize)>;

/// Per table of a lake: every row as text, sorted, down to what does not depend on the
/// order requests of one slot run in. They share a priority and a creation time, so their
/// order is their random ids' (`QueueState`'s claim order): which of them runs at which
/// second of the slot differs from build to build, and with it the prices drawn for that
/// second. So a row's text leaves out its prices (every float column), keeps its moments to
/// the hour, and leaves out the columns a build fills differently anyway (request ids are
/// random; `result_data` names commit versions; `seq` numbers and leases follow the
/// commits). What is left says: the same requests, with the same changes, the same rows
/// for the same symbols, contracts and days, in the same hours. An option chain's strikes
/// are those around the price of its second, so its contracts are left out too
/// ([`CHAIN_STRIKE`]).
type Rows = std::collections::BTreeMap<String, Vec<String>>;

/// The columns `rows` leaves out.
const VARYING: [&str; 5] = [
    "request_id",
    "result_data",
    "seq",
    "lease_owner",
    "lease_expires_at",
];

/// The columns of `option_snapshots` that name the strike.
const CHAIN_STRIKE: [&str; 3] = ["conid", "strike", "local_symbol"];

/// A row's value as `shape` compares it: a moment to its hour.
fn compared(field: &deltalake::arrow::datatypes::Field, text: String) -> String {
    match field.data_type() {
        deltalake::arrow::datatypes::DataType::Timestamp(..) => text.chars().take(13).collect(),
        _ => text,
    }
}

async fn shape(root: &std::path::Path) -> (Shape, Rows) {
    use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
    use ibq::lake::upkeep::disk_usage;
    use ibq::lake::LakeTable;
    let mut out = Shape::new();
    let mut texts = Rows::new();
    for e in std::fs::read_dir(root).unwrap() {
        let dir = e.unwrap().path();
        if !dir.join("_delta_log").is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let table = LakeTable::open_existing(root, &name, &[])
            .await
            .unwrap()
            .unwrap();
        let usage = disk_usage(&table).await.unwrap();
        let mut rows = std::collections::BTreeMap::<String, usize>::new();
        let mut all = Vec::new();
        for f in table.files().await.unwrap() {
            let day = f
                .partition
                .get("date")
                .cloned()
                .flatten()
                .unwrap_or_default();
            for b in table.read(std::slice::from_ref(&f)).await.unwrap() {
                *rows.entry(day.clone()).or_default() += b.num_rows();
                let schema = b.schema();
                let mut cols: Vec<(deltalake::arrow::datatypes::FieldRef, ArrayFormatter)> =
                    Vec::new();
                for (i, field) in schema.fields().iter().enumerate() {
                    let price = matches!(
                        field.data_type(),
                        deltalake::arrow::datatypes::DataType::Float32
                            | deltalake::arrow::datatypes::DataType::Float64
                    );
                    let strike =
                        name == "option_snapshots" && CHAIN_STRIKE.contains(&field.name().as_str());
                    if !price && !strike && !VARYING.contains(&field.name().as_str()) {
                        let fmt = ArrayFormatter::try_new(
                            b.column(i).as_ref(),
                            &FormatOptions::default(),
                        )
                        .unwrap();
                        cols.push((field.clone(), fmt));
                    }
                }
                cols.sort_by(|x, y| x.0.name().cmp(y.0.name()));
                for i in 0..b.num_rows() {
                    let row: Vec<String> = cols
                        .iter()
                        .map(|(n, f)| {
                            format!("{}={}", n.name(), compared(n, f.value(i).to_string()))
                        })
                        .collect();
                    all.push(row.join(" "));
                }
            }
        }
        all.sort();
        texts.insert(name.clone(), all);
        out.insert(
            name,
            (
                usage.live_files,
                rows.into_iter().collect(),
                usage.removed_files,
                usage.log_files,
            ),
        );
    }
    (out, texts)
}

/// Days built with larger commits and one upkeep a day, followed by days at the engine's
/// commit sizes with its hourly upkeep, leave the lake a build of every day at the
/// engine's sizes leaves: the same live files, rows per day and removed files in every
/// result table, the same rows over the queue and its history; the logs differ only by
/// where Delta's checkpoints fall (every 100 versions), the queue's live files only by
/// where its compactions fall (every 64 files).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_built_with_larger_commits_before_its_last_days_ends_as_an_exact_one() {
    use ibq::cli::bench_year_build::{build, trading_days_before, Plan};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ibq.toml");
    std::fs::write(&cfg, SMALL).unwrap();
    let config = ibq::config::Config::load(Some(&cfg)).unwrap();
    assert_eq!(
        config.scheduler.jobs.len(),
        5,
        "the small schedule replaces the default"
    );
    let calendar = ibq::market::calendar::MarketCalendar::from_config(&config.scheduler);
    let until = chrono::Utc::now();
    let days = trading_days_before(ibq::market::calendar::new_york_date(until), 4, &calendar);
    let plan = |exact_days| Plan {
        days: days.clone(),
        exact_days,
        window_secs: 3600,
        until,
    };
    let exact = build(&dir.path().join("exact"), &config, &plan(4))
        .await
        .unwrap();
    let mixed = build(&dir.path().join("mixed"), &config, &plan(3))
        .await
        .unwrap();
    assert_eq!((exact.exact_days, mixed.exact_days), (4, 3));
    assert_eq!(exact.requests, mixed.requests);
    assert_eq!(exact.stream_rows, mixed.stream_rows);
    assert!(
        mixed.queue_commits < exact.queue_commits,
        "{} commits against {}",
        mixed.queue_commits,
        exact.queue_commits
    );
    let ((a, a_rows), (b, b_rows)) = (
        shape(&dir.path().join("exact")).await,
        shape(&dir.path().join("mixed")).await,
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, x) in &a {
        let y = &b[name];
        let rows = |s: &(usize, Vec<(String, usize)>, usize, usize)| -> usize {
            s.1.iter().map(|(_, n)| n).sum()
        };
        eprintln!("{name}: exact {x:?}\n{name}: mixed {y:?}");
        if name.starts_with("ib_request_queue") {
            continue;
        }
        assert_eq!(x.0, y.0, "{name}: live files");
        assert_eq!(x.1, y.1, "{name}: rows per day");
        assert_eq!(x.2, y.2, "{name}: removed files");
        assert!(
            x.3.abs_diff(y.3) <= 100,
            "{name}: log files {} and {}",
            x.3,
            y.3
        );
        assert!(rows(x) > 0, "{name} has rows");
        // The same rows, down to the order within a slot (see `Rows`).
        assert!(a_rows[name] == b_rows[name], "{name}: the rows differ");
    }
    let queue_rows = |s: &Shape| -> usize {
        ["ib_request_queue", "ib_request_queue_history"]
            .iter()
            .map(|t| s[*t].1.iter().map(|(_, n)| n).sum::<usize>())
            .sum()
    };
    assert_eq!(queue_rows(&a), queue_rows(&b));
    assert_eq!(queue_rows(&a), 3 * exact.requests);
    // The same queue rows over the queue and its history: each request's changes at the
    // same moments, whichever table holds them.
    let queue_texts = |r: &Rows| -> Vec<String> {
        let mut v: Vec<String> = ["ib_request_queue", "ib_request_queue_history"]
            .iter()
            .flat_map(|t| r[*t].iter())
            // The history's `date` partition is the day of `updated_at`, in both.
            .map(|row| {
                row.split(' ')
                    .filter(|c| !c.starts_with("date="))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        v.sort();
        v
    };
    assert!(
        queue_texts(&a_rows) == queue_texts(&b_rows),
        "the queue rows differ"
    );
    let live = |s: &Shape| s["ib_request_queue"].0;
    assert!(
        live(&a).abs_diff(live(&b)) <= 64,
        "{} and {}",
        live(&a),
        live(&b)
    );
}
