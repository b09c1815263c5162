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
