//! The measuring half of `ibq bench year`: each figure of a built lake, taken the way the
//! engine or another program meets it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveTime, Utc};
use futures::TryStreamExt;

use super::bench_year::{Figures, TableFigures};
use super::bench_year_build::Built;
use crate::config::Config;
use crate::market::calendar::new_york_instant;
use crate::queue::params::DerivedStatsParams;
use crate::queue::{Actor, Enqueued, NewRequest, Priority, QueueState, RequestType};
use crate::worker::results::{ResultTables, MARKET_BARS, OPTION_SNAPSHOTS};

pub(super) async fn measure(
    config: &Config,
    root: &Path,
    work: &Path,
    day: NaiveDate,
    session_at: chrono::DateTime<Utc>,
    session_secs: u64,
    built: &Built,
) -> anyhow::Result<Figures> {
    let tables = table_figures(root, built.until).await?;
    let startup_s = startup(config, root).await?;
    let derived_stats_s = derived_stats(root, day).await?;
    let q = day_query(root, day).await?;
    let peak_rss_mb = session_peak_rss(root, work, session_at, session_secs).await?;
    Ok(Figures {
        days: built.days,
        exact_days: built.exact_days,
        upkeeps: built.upkeeps,
        requests: built.requests,
        build_s: built.secs,
        queue_commits: built.queue_commits,
        startup_s,
        peak_rss_mb,
        derived_stats_s,
        day_query_s: q.secs,
        day_query_files: q.files_read,
        day_query_total_files: q.files_total,
        day_query_rows: q.rows,
        tables,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A loopback address nothing listens on: the engine's gateway supervisor keeps retrying
/// it, which start-up does not wait for.
fn closed_port() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(addr.to_string())
}

/// Seconds from the start of `Engine::start` until it returns, median of three, with the
/// scheduler off so the lake is left as it was.
async fn startup(base: &Config, root: &Path) -> anyhow::Result<f64> {
    use crate::engine::runtime::{Engine, EngineOptions};
    let mut config = base.clone();
    config.lake.root = root.to_path_buf();
    config.scheduler.enabled = false;
    config.gateway.address = closed_port()?;
    let mut secs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let engine = Engine::start(
            &config,
            EngineOptions {
                clock: std::sync::Arc::new(crate::scheduler::clock::SystemClock),
            },
        )
        .await?;
        secs.push(started.elapsed().as_secs_f64());
        engine.shutdown().await;
    }
    Ok(median(secs))
}

/// Seconds of the worker's `derived_stats` computation for `day` (every symbol, as the
/// schedule asks), on result tables the engine already has open; median of three.
async fn derived_stats(root: &Path, day: NaiveDate) -> anyhow::Result<f64> {
    let results = ResultTables::new(root.to_path_buf());
    let nobody = uuid::Uuid::nil();
    results
        .already_written(MARKET_BARS, nobody, Utc::now())
        .await?;
    results
        .already_written(OPTION_SNAPSHOTS, nobody, Utc::now())
        .await?;
    let mut secs = Vec::new();
    for _ in 0..3 {
        let new = NewRequest {
            request_type: RequestType::DerivedStats,
            symbol: "ALL".into(),
            priority: Priority::BACKGROUND,
            parameters: serde_json::json!({"date": day.to_string()}),
            changed_by: Actor::Operator,
            schedule_key: None,
            during: Default::default(),
        };
        let Enqueued::Added(req) = QueueState::new().prepare_enqueue(new, Utc::now())? else {
            anyhow::bail!("an empty queue found a duplicate");
        };
        let params = DerivedStatsParams { date: Some(day) };
        let started = Instant::now();
        let w = crate::worker::handlers::derived_stats(&results, &req, &params, Utc::now())
            .await
            .map_err(|e| anyhow::anyhow!("derived_stats: {e}"))?;
        secs.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(w.rows > 0, "derived_stats found nothing for {day}");
    }
    Ok(median(secs))
}

struct DayQuery {
    secs: f64,
    files_read: usize,
    files_total: usize,
    rows: usize,
}

/// Whether a file may hold rows of the New York day `[lo, hi)`: by its `date` partition
/// value when the table is partitioned, else by the `snapshot_at` range of its statistics
/// (Delta keeps them to the millisecond, so the upper bound is widened by one).
fn may_hold(
    partition: Option<Option<String>>,
    stats: Option<String>,
    day: NaiveDate,
    lo: chrono::DateTime<Utc>,
    hi: chrono::DateTime<Utc>,
) -> bool {
    if let Some(value) = partition {
        return value.as_deref() == Some(day.to_string().as_str());
    }
    let Some(stats) = stats.and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok()) else {
        return true;
    };
    let at = |k: &str| {
        stats[k]["snapshot_at"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    match (at("minValues"), at("maxValues")) {
        (Some(min), Some(max)) => min < hi && max + chrono::Duration::milliseconds(1) >= lo,
        _ => true,
    }
}

/// One day's option snapshots as another program reads them through `deltalake`: a
/// snapshot of the table's log (no file list yet), the files of the day through a
/// predicate the log replay prunes with (`date = day` on a partitioned table, else the
/// `snapshot_at` range against file statistics), then those files read and the day's rows
/// counted. The median of five runs; `files_total` is the table's whole file list, taken
/// apart from the timed runs.
async fn day_query(root: &Path, day: NaiveDate) -> anyhow::Result<DayQuery> {
    let path = std::path::absolute(root.join(OPTION_SNAPSHOTS))?;
    let url = url::Url::from_directory_path(&path)
        .map_err(|_| anyhow::anyhow!("not a usable path: {}", path.display()))?;
    let mut secs = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let started = Instant::now();
        let (files_read, rows) = read_one_day(&url, day).await?;
        secs.push(started.elapsed().as_secs_f64());
        last = Some((files_read, rows));
    }
    let (files_read, rows) = last.expect("five runs");
    anyhow::ensure!(rows > 0, "the day query found no option snapshot of {day}");
    let table = deltalake::open_table(url).await?;
    let files_total = table
        .snapshot()?
        .snapshot()
        .file_views(table.log_store().as_ref(), None)
        .try_fold(0, |n, _| async move { Ok(n + 1) })
        .await?;
    Ok(DayQuery {
        secs: median(secs),
        files_read,
        files_total,
        rows,
    })
}

/// One run of the day query: (files read, rows of the day).
async fn read_one_day(url: &url::Url, day: NaiveDate) -> anyhow::Result<(usize, usize)> {
    use buoyant_kernel::expressions::{column_expr, Predicate, Scalar};
    use deltalake::datafile::reader::ParquetFileReader;
    use deltalake::datafile::DataFileReader;
    let lo = new_york_instant(day, NaiveTime::MIN);
    let hi = new_york_instant(day.succ_opt().unwrap_or(day), NaiveTime::MIN);
    let table = deltalake::DeltaTableBuilder::from_url(url.clone())?.build()?;
    let log_store = table.log_store();
    let snapshot = deltalake::kernel::Snapshot::try_new(log_store.as_ref(), None).await?;
    let partitioned = snapshot
        .metadata()
        .partition_columns()
        .iter()
        .any(|c| c == "date");
    let predicate = if partitioned {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
        let days = i32::try_from((day - epoch).num_days())?;
        Predicate::eq(column_expr!("date"), Scalar::Date(days))
    } else {
        Predicate::and(
            column_expr!("snapshot_at").ge(Scalar::Timestamp(lo.timestamp_micros())),
            column_expr!("snapshot_at").lt(Scalar::Timestamp(hi.timestamp_micros())),
        )
    };
    let views: Vec<_> = snapshot
        .file_views(log_store.as_ref(), Some(std::sync::Arc::new(predicate)))
        .try_collect()
        .await?;
    // The predicate is a best effort of the log replay; the same test decides per file.
    let keep: Vec<_> = views
        .iter()
        .filter(|v| {
            let partition = v.partition_values_map().remove("date");
            may_hold(partition, v.stats(), day, lo, hi)
        })
        .collect();
    let reader = ParquetFileReader::new(log_store.object_store(None));
    let mut rows = 0;
    for v in &keep {
        let batches: Vec<_> = reader
            .read_file(v.object_store_path())
            .await?
            .try_collect()
            .await?;
        for b in batches {
            let at = crate::lake::columns::BatchReader::new(&b)
                .timestamp("snapshot_at")
                .map_err(anyhow::Error::msg)?;
            rows += at
                .iter()
                .flatten()
                .filter(|t| **t >= lo && **t < hi)
                .count();
        }
    }
    Ok((keep.len(), rows))
}

/// Every file under `dir` (recursively) with its size, paths relative to `dir`.
fn files_under(dir: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let meta = e.metadata()?;
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir)?.to_string_lossy().into_owned();
                out.push((rel, meta.len()));
            }
        }
    }
    Ok(out)
}

/// Live and removed data files and log size of every table of the lake: live files are the
/// ones the newest version lists, removed ones are data files still on disk that it does
/// not list; with one day's churn (what it removed in the 24 hours before `at`) and the
/// time to open it.
async fn table_figures(
    root: &Path,
    at: chrono::DateTime<Utc>,
) -> anyhow::Result<BTreeMap<String, TableFigures>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(root)? {
        let dir = e?.path();
        if !dir.join("_delta_log").is_dir() {
            continue;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut opens = Vec::new();
        let mut opened = None;
        for _ in 0..3 {
            let started = Instant::now();
            let o = open_and_list(&dir).await?;
            opens.push(started.elapsed().as_secs_f64());
            opened = Some(o);
        }
        let (live, churn) = opened.expect("opened three times");
        let since = (at - chrono::Duration::hours(24)).timestamp_millis();
        let mut f = TableFigures {
            live_files: 0,
            live_bytes: 0,
            removed_files: 0,
            removed_bytes: 0,
            log_files: 0,
            log_bytes: 0,
            churn_24h_bytes: churn
                .iter()
                .filter(|(t, _)| *t >= since)
                .map(|(_, b)| *b)
                .sum(),
            open_s: median(opens),
        };
        for (path, size) in files_under(&dir)? {
            if path.starts_with("_delta_log") {
                f.log_files += 1;
                f.log_bytes += size;
            } else if path.ends_with(".parquet") {
                if live.contains(&path) {
                    f.live_files += 1;
                    f.live_bytes += size;
                } else {
                    f.removed_files += 1;
                    f.removed_bytes += size;
                }
            }
        }
        out.insert(name, f);
    }
    Ok(out)
}

/// Opens a table as another program would and lists its live files (paths relative to the
/// table folder) and the removals its log keeps (deletion time in ms, bytes).
async fn open_and_list(
    dir: &Path,
) -> anyhow::Result<(std::collections::HashSet<String>, Vec<(i64, u64)>)> {
    let path = std::path::absolute(dir)?;
    let url = url::Url::from_directory_path(&path)
        .map_err(|_| anyhow::anyhow!("not a usable path: {}", path.display()))?;
    let table = deltalake::open_table(url).await?;
    let snapshot = table.snapshot()?;
    let views: Vec<_> = snapshot
        .snapshot()
        .file_views(table.log_store().as_ref(), None)
        .try_collect()
        .await?;
    let tombstones: Vec<_> = snapshot
        .all_tombstones(table.log_store().as_ref())
        .try_collect()
        .await?;
    Ok((
        views.iter().map(|v| v.path().into_owned()).collect(),
        tombstones
            .iter()
            .map(|t| {
                (
                    t.deletion_timestamp().unwrap_or(0),
                    t.size().unwrap_or(0).max(0) as u64,
                )
            })
            .collect(),
    ))
}

/// Peak resident memory (VmHWM) of `ibq run` on the lake over a session of `secs` seconds
/// against `ibq sim`, on a clock starting at `at` (the scheduler enqueues that moment's
/// requests and the worker runs them).
async fn session_peak_rss(
    root: &Path,
    work: &Path,
    at: chrono::DateTime<Utc>,
    secs: u64,
) -> anyhow::Result<f64> {
    use crate::sim::{SimConfig, Simulator};
    let at = at.fixed_offset();
    let sim = Simulator::start(SimConfig {
        port: 0,
        clock_start: Some(at),
        ..SimConfig::default()
    })
    .await?;
    let session = work.join(format!("session-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&session)?;
    let cfg = session.join("ibq.toml");
    std::fs::write(
        &cfg,
        format!("[logging]\ndir = \"{}\"\n", session.join("logs").display()),
    )?;
    let stderr = std::fs::File::create(session.join("stderr.txt"))?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(&cfg)
        .arg("--lake")
        .arg(root)
        .args(["--gateway", &sim.address()])
        .args(["--clock", &at.to_rfc3339()])
        .arg("run")
        .env_remove("IBQ_LAKE")
        .env("NO_COLOR", "1")
        .current_dir(&session)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()?;
    let pid = child.id();
    let status_file = root.join(".ibq-status.json");
    let started = Instant::now();
    let mut peak = 0.0f64;
    let mut running_since = None;
    let outcome = loop {
        if let Some(code) = child.try_wait()? {
            let text = std::fs::read_to_string(session.join("stderr.txt")).unwrap_or_default();
            break Err(anyhow::anyhow!(
                "ibq run ended early ({code}): {}",
                text.trim()
            ));
        }
        if let Some(kb) = vm_hwm_kb(pid) {
            peak = peak.max(kb as f64 / 1024.0);
        }
        if running_since.is_none() && status_file.exists() {
            running_since = Some(Instant::now());
        }
        if running_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(secs)) {
            break Ok(peak);
        }
        if running_since.is_none() && started.elapsed() > Duration::from_secs(120) {
            break Err(anyhow::anyhow!("ibq run did not start within 120 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // SAFETY: `pid` is our own child, not yet reaped (try_wait saw it running).
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let stop_by = Instant::now() + Duration::from_secs(20);
    while child.try_wait()?.is_none() {
        if Instant::now() > stop_by {
            child.kill().ok();
            child.wait().ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.shutdown().await;
    outcome
}

/// The peak resident set size of a process in kB, from `/proc/PID/status`.
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> chrono::DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_file_is_kept_by_its_partition_or_by_its_time_range() {
        let day: NaiveDate = "2026-11-24".parse().unwrap();
        let (lo, hi) = (t("2026-11-24T05:00:00Z"), t("2026-11-25T05:00:00Z"));
        assert!(may_hold(Some(Some("2026-11-24".into())), None, day, lo, hi));
        assert!(!may_hold(
            Some(Some("2026-11-23".into())),
            None,
            day,
            lo,
            hi
        ));
        let stats = |min: &str, max: &str| {
            Some(format!(
                r#"{{"numRecords":1,"minValues":{{"snapshot_at":"{min}"}},"maxValues":{{"snapshot_at":"{max}"}}}}"#
            ))
        };
        assert!(may_hold(
            None,
            stats("2026-11-24T14:35:00.000Z", "2026-11-24T20:55:00.000Z"),
            day,
            lo,
            hi
        ));
        assert!(!may_hold(
            None,
            stats("2026-11-23T14:35:00.000Z", "2026-11-23T20:55:00.000Z"),
            day,
            lo,
            hi
        ));
        // A merged file spanning many days may hold the day.
        assert!(may_hold(
            None,
            stats("2026-10-01T14:35:00.000Z", "2026-11-25T20:55:00.000Z"),
            day,
            lo,
            hi
        ));
        // Without statistics nothing can be ruled out.
        assert!(may_hold(None, None, day, lo, hi));
    }

    #[test]
    fn vm_hwm_is_read_from_proc() {
        let kb = vm_hwm_kb(std::process::id()).expect("this process has a VmHWM");
        assert!(kb > 100, "{kb} kB");
    }

    /// A table of two New York days, one commit (one file) a day, partitioned by `date` or
    /// not: the day read keeps one file and counts that day's rows only.
    async fn two_days(partitioned: bool) -> (tempfile::TempDir, url::Url) {
        use crate::lake::columns::{col, BatchBuilder};
        use crate::lake::{ColumnKind, LakeTable};
        let dir = tempfile::tempdir().unwrap();
        let cols = [
            col("snapshot_at", ColumnKind::Timestamp),
            col("date", ColumnKind::Date),
        ];
        let by: &[&str] = if partitioned { &["date"] } else { &[] };
        let mut table = LakeTable::open_partitioned(dir.path(), OPTION_SNAPSHOTS, &cols, by)
            .await
            .unwrap();
        for (day, times) in [
            (
                "2026-11-23",
                &["2026-11-23T15:00:00Z", "2026-11-23T20:59:00Z"][..],
            ),
            (
                "2026-11-24",
                &[
                    "2026-11-24T14:31:00Z",
                    "2026-11-24T18:00:00Z",
                    "2026-11-24T21:00:00Z",
                ][..],
            ),
        ] {
            let d: NaiveDate = day.parse().unwrap();
            let batch = BatchBuilder::new(&cols)
                .timestamp(times.iter().map(|s| Some(t(s))))
                .date(times.iter().map(|_| Some(d)))
                .finish();
            table.append(&[batch]).await.unwrap();
        }
        let url = url::Url::from_directory_path(dir.path().join(OPTION_SNAPSHOTS)).unwrap();
        (dir, url)
    }

    #[tokio::test]
    async fn the_day_read_keeps_one_days_file_by_partition_or_by_statistics() {
        for partitioned in [true, false] {
            let (_dir, url) = two_days(partitioned).await;
            let day: NaiveDate = "2026-11-24".parse().unwrap();
            assert_eq!(
                read_one_day(&url, day).await.unwrap(),
                (1, 3),
                "partitioned: {partitioned}"
            );
            let before: NaiveDate = "2026-11-23".parse().unwrap();
            assert_eq!(
                read_one_day(&url, before).await.unwrap(),
                (1, 2),
                "partitioned: {partitioned}"
            );
        }
    }
}
