//! `ibq bench year`: how the engine and the lake fare after N trading days of the schedule,
//! against the same figures after one day, measured in the same run.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use super::bench_year_build::{build, trading_days_before, Plan};
use super::bench_year_measure::measure;
use crate::config::Config;
use crate::market::calendar::{new_york_date, new_york_instant, MarketCalendar};

/// One lake's size on disk, per table.
#[derive(Debug, Clone, Serialize)]
pub struct TableFigures {
    pub live_files: usize,
    pub live_bytes: u64,
    /// Data files on disk that are no longer part of the table.
    pub removed_files: usize,
    pub removed_bytes: u64,
    /// Files and bytes of `_delta_log`.
    pub log_files: usize,
    pub log_bytes: u64,
    /// Bytes of the files the table removed in the 24 hours before the lake's moment (one
    /// day's churn), from the removals its log keeps.
    pub churn_24h_bytes: u64,
    /// Seconds to open the table and list its files through `deltalake`, median of three.
    pub open_s: f64,
}

/// The figures of one lake.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub days: usize,
    /// The last days written at the engine's commit sizes (the earlier ones grouped).
    pub exact_days: usize,
    /// Hourly upkeeps the build ran, as the engine would have.
    pub upkeeps: usize,
    pub requests: usize,
    pub build_s: f64,
    pub queue_commits: i64,
    pub startup_s: f64,
    pub peak_rss_mb: f64,
    pub derived_stats_s: f64,
    pub day_query_s: f64,
    pub day_query_files: usize,
    pub day_query_total_files: usize,
    pub day_query_rows: usize,
    pub tables: BTreeMap<String, TableFigures>,
}

/// Runs the benchmark: builds both lakes, measures them and prints the comparison.
pub async fn year(
    config: &Config,
    days: usize,
    json: bool,
    lake: Option<&Path>,
    session_secs: u64,
    window_secs: u64,
    exact_days: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(days >= 1, "--days must be at least 1");
    anyhow::ensure!(
        window_secs >= 1 || exact_days >= days,
        "--commit-window must be at least 1 second for the days before the last --exact-days"
    );
    let window_secs = i64::try_from(window_secs)
        .ok()
        .filter(|w| *w <= 86_400)
        .ok_or_else(|| anyhow::anyhow!("--commit-window must be 1 to 86400 seconds"))?;
    let work = super::bench::tempfile_dir()?;
    let root = match lake {
        Some(dir) => {
            let used = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
            anyhow::ensure!(
                !used,
                "--lake {}: the folder is not empty; bench year builds its lake in a new or empty folder",
                dir.display()
            );
            dir.to_path_buf()
        }
        None => work.join("year"),
    };
    let load_before = load_average();
    let outcome = run_both(
        config,
        days,
        &root,
        &work,
        session_secs,
        window_secs,
        exact_days,
    )
    .await;
    std::fs::remove_dir_all(&work).ok();
    let (year, day) = outcome?;
    let load = (load_before, load_average());
    if json {
        let mut v = serde_json::to_value(&year)?;
        v["commit_window_s"] = serde_json::json!(window_secs);
        v["load_average"] = serde_json::json!({"before": load.0, "after": load.1});
        v["baseline"] = serde_json::to_value(&day)?;
        v["lake"] = serde_json::json!(lake.map(|p| p.display().to_string()));
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print!("{}", render(&year, &day));
        println!(
            "\nload average (1 min) {:.1} before, {:.1} after; {} cores",
            load.0,
            load.1,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    Ok(())
}

/// The machine's one-minute load average, from `/proc/loadavg` (0 where there is none).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

async fn run_both(
    config: &Config,
    days: usize,
    root: &Path,
    work: &Path,
    session_secs: u64,
    window_secs: i64,
    exact_days: usize,
) -> anyhow::Result<(Figures, Figures)> {
    let calendar = MarketCalendar::from_config(&config.scheduler);
    // Both lakes are left as the engine would leave them now, after their days.
    let until = Utc::now();
    let today = new_york_date(until);
    let all = trading_days_before(today, days, &calendar);
    let last = *all
        .last()
        .ok_or_else(|| anyhow::anyhow!("no trading day found"))?;
    // Sessions run on the first trading day after the last one built, at 09:35.
    let next = last
        .iter_days()
        .skip(1)
        .find(|d| calendar.day(*d).is_trading_day())
        .unwrap_or(today);
    let session_at = new_york_instant(next, NaiveTime::from_hms_opt(9, 35, 0).expect("time"));

    let baseline_root = work.join("one-day");
    eprintln!("building 1 day ({last})…");
    let plan = |days: &[NaiveDate]| Plan {
        days: days.to_vec(),
        exact_days,
        window_secs,
        until,
    };
    let one = build(&baseline_root, config, &plan(&all[all.len() - 1..])).await?;
    eprintln!("  {:.1} s", one.secs);
    eprintln!(
        "building {days} days ({} to {last}) in {}…",
        all[0],
        root.display()
    );
    let many = build(root, config, &plan(&all)).await?;
    eprintln!("  {:.1} s", many.secs);
    let day = measure(
        config,
        &baseline_root,
        work,
        last,
        session_at,
        session_secs,
        &one,
    )
    .await?;
    let year = measure(config, root, work, last, session_at, session_secs, &many).await?;
    Ok((year, day))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The comparison as a table.
pub fn render(year: &Figures, day: &Figures) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let n = year.days;
    let _ = writeln!(
        out,
        "ibq bench year: {n} trading days ({} requests, built in {:.1} s) against 1 day ({} requests)\n",
        year.requests, year.build_s, day.requests
    );
    let _ = writeln!(
        out,
        "{:<34} {:>12} {:>12} {:>8}",
        "",
        "1 day",
        format!("{n} days"),
        "ratio"
    );
    let rows: [(&str, f64, f64, &str); 6] = [
        (
            "engine start-up (s)",
            day.startup_s,
            year.startup_s,
            "{:.3}",
        ),
        (
            "peak memory of ibq run (MB)",
            day.peak_rss_mb,
            year.peak_rss_mb,
            "{:.1}",
        ),
        (
            "derived_stats (s)",
            day.derived_stats_s,
            year.derived_stats_s,
            "{:.3}",
        ),
        (
            "one-day option query (s)",
            day.day_query_s,
            year.day_query_s,
            "{:.3}",
        ),
        (
            "  files read",
            day.day_query_files as f64,
            year.day_query_files as f64,
            "{:.0}",
        ),
        (
            "  of live files",
            day.day_query_total_files as f64,
            year.day_query_total_files as f64,
            "{:.0}",
        ),
    ];
    for (label, a, b, fmt) in rows {
        let (a_s, b_s) = match fmt {
            "{:.3}" => (format!("{a:.3}"), format!("{b:.3}")),
            "{:.1}" => (format!("{a:.1}"), format!("{b:.1}")),
            _ => (format!("{a:.0}"), format!("{b:.0}")),
        };
        let _ = writeln!(out, "{label:<34} {a_s:>12} {b_s:>12} {:>8}", ratio(b, a));
    }
    let _ = writeln!(
        out,
        "\n{:<26} {:>17} {:>19} {:>15} {:>19} {:>15}",
        "table (1 day → N days)",
        "live files / MiB",
        "removed files / MiB",
        "24h churn MiB",
        "log files / MiB",
        "open s"
    );
    for (name, y) in &year.tables {
        let d = day.tables.get(name);
        let pair = |f: &dyn Fn(&TableFigures) -> String| {
            format!("{} → {}", d.map(f).unwrap_or_else(|| "-".into()), f(y))
        };
        let _ = writeln!(
            out,
            "{name:<26} {:>17} {:>19} {:>15} {:>19} {:>15}",
            pair(&|t| format!("{}/{:.1}", t.live_files, mib(t.live_bytes))),
            pair(&|t| format!("{}/{:.1}", t.removed_files, mib(t.removed_bytes))),
            pair(&|t| format!("{:.1}", mib(t.churn_24h_bytes))),
            pair(&|t| format!("{}/{:.1}", t.log_files, mib(t.log_bytes))),
            pair(&|t| format!("{:.3}", t.open_s)),
        );
    }
    let _ = writeln!(
        out,
        "\nbuilt: {} of {n} days at the engine's commit sizes, {} hourly upkeeps",
        year.exact_days, year.upkeeps
    );
    out
}
