//! The result tables and their writer. Every row carries the id of the request that wrote
//! it; before writing, the worker asks whether a request's rows are already there, so a
//! request re-run after a crash or a lost connection is never written twice.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::RecordBatch;
use tokio::sync::Mutex;
use uuid::Uuid;

mod schema;

pub use schema::*;

use super::written::WrittenIds;
use crate::lake::columns::BatchReader;
use crate::lake::table::DataFile;
use crate::lake::upkeep;
use crate::lake::{LakeError, LakeTable};

/// What one write did, for the request's `result_data`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    pub table: String,
    pub rows: usize,
    pub version: i64,
    /// For an option chain: milliseconds between its first and last quote, how far the chain
    /// is from one picture of the market.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote_spread_ms: Option<u64>,
    /// Data files the request read (only requests that read the lake say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_read: Option<u64>,
}

struct Open {
    table: LakeTable,
    /// Request ids with rows in the table, loaded as far back as requests need.
    written: WrittenIds,
    /// Commits since the files this process added were last merged.
    commits: usize,
    /// Files this process added since then.
    fresh: Vec<DataFile>,
}

/// After this many commits the files they added are merged into one per partition, so a
/// trading day of small commits does not leave thousands of files to open on every read.
/// Only those files are merged (each row is rewritten once here), the rest of a day's
/// partition by the upkeep once the day is over (`lake::upkeep`).
const MERGE_EVERY_COMMITS: usize = 64;

/// Bar times already stored, by series, loaded one day partition at a time.
#[derive(Default)]
struct BarTimes {
    /// Days whose partition was read (every day when the table is not partitioned).
    days: HashSet<NaiveDate>,
    all: bool,
    /// (symbol, bar size, what to show) → bar times (epoch seconds).
    times: HashMap<(String, String, String), HashSet<i64>>,
}

/// The result tables of one lake, opened on first use.
/// A write waiting for the next group commit of its table.
type PendingWrite = (
    Option<Uuid>,
    RecordBatch,
    tokio::sync::oneshot::Sender<Result<i64, String>>,
);

pub struct ResultTables {
    root: PathBuf,
    /// The engine's clock: removals are stamped with it, as its rows are.
    clock: std::sync::Arc<dyn crate::market::clock::Clock>,
    open: Mutex<HashMap<String, Open>>,
    /// Writes queued per table; whoever holds `open` next commits them all at once.
    pending: std::sync::Mutex<HashMap<String, Vec<PendingWrite>>>,
    bars: Mutex<BarTimes>,
}

/// Batches to append to one table in one commit, each on behalf of its request.
pub type Writes = Vec<(Option<Uuid>, RecordBatch)>;

impl ResultTables {
    pub fn new(root: PathBuf) -> Self {
        Self::with_clock(root, std::sync::Arc::new(crate::market::clock::SystemClock))
    }

    /// Result tables whose rows are stamped on `clock` (the engine's clock): their
    /// removals are stamped on it too, so the upkeep measures retention on that clock.
    pub fn with_clock(
        root: PathBuf,
        clock: std::sync::Arc<dyn crate::market::clock::Clock>,
    ) -> Self {
        Self {
            root,
            clock,
            open: Mutex::new(HashMap::new()),
            pending: std::sync::Mutex::new(HashMap::new()),
            bars: Mutex::new(BarTimes::default()),
        }
    }

    async fn with_table<T>(
        &self,
        name: &str,
        f: impl AsyncFnOnce(&mut Open) -> Result<T, LakeError>,
    ) -> Result<T, LakeError> {
        let mut open = self.open.lock().await;
        if !open.contains_key(name) {
            let table = LakeTable::open_partitioned(
                &self.root,
                name,
                &stored_columns(name),
                &[PARTITION_COLUMN],
            )
            .await?;
            if !table
                .partition_columns()
                .iter()
                .any(|c| c == PARTITION_COLUMN)
            {
                tracing::warn!(
                    table = name,
                    "table {name} is not partitioned by `{PARTITION_COLUMN}` (an older ibq created it): ibq keeps writing it as it is, and a one-day read reads every file; stop ibq and run `ibq upkeep --migrate` to rewrite it partitioned by day (no row is lost)"
                );
            }
            let mut table = table;
            table.set_clock(std::sync::Arc::clone(&self.clock));
            open.insert(
                name.to_string(),
                Open {
                    table,
                    written: WrittenIds::default(),
                    commits: 0,
                    fresh: Vec::new(),
                },
            );
        }
        f(open.get_mut(name).expect("inserted above")).await
    }

    /// True when rows of `request_id` written at or after `since` are already in `table`
    /// (see `worker::written`: only files that may hold rows written since then are read).
    pub async fn already_written(
        &self,
        table: &str,
        request_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<bool, LakeError> {
        self.with_table(table, async |o| {
            if !o.written.contains(&request_id) {
                o.table.refresh().await?;
                o.written.load_since(&o.table, since).await?;
            }
            Ok(o.written.contains(&request_id))
        })
        .await
    }

    /// Appends `batch` to `table` on behalf of `request_id` and returns once it is committed.
    /// Writes that arrive while a commit is under way are grouped into the next one (group
    /// commit), so concurrent requests share commits instead of queueing for one each.
    pub async fn write(
        &self,
        table: &str,
        request_id: Option<Uuid>,
        batch: RecordBatch,
    ) -> Result<Written, LakeError> {
        let rows = batch.num_rows();
        let version = self
            .write_together(table, vec![(request_id, batch)])
            .await?;
        Ok(Written {
            table: table.to_string(),
            rows,
            version,
            quote_spread_ms: None,
            files_read: None,
        })
    }

    /// Appends every batch of `writes` to `table`, each on behalf of its request, in one
    /// commit (with any other writes queued for the table meanwhile), and returns that
    /// commit's version once it is done.
    pub async fn write_together(&self, table: &str, writes: Writes) -> Result<i64, LakeError> {
        let failed = |message: String| LakeError::Table {
            name: table.into(),
            path: self.root.join(table),
            message,
        };
        if writes.is_empty() {
            return Err(failed("no rows to write".into()));
        }
        let mut replies = Vec::with_capacity(writes.len());
        {
            // Queued at once, so one commit takes them all.
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let queue = pending.entry(table.to_string()).or_default();
            for (request_id, batch) in writes {
                let (tx, rx) = tokio::sync::oneshot::channel();
                queue.push((request_id, batch, tx));
                replies.push(rx);
            }
        }
        // Whoever gets the table next commits everything queued for it, ours included
        // unless an earlier holder already did.
        self.with_table(table, async |o| {
            let group = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(table)
                .unwrap_or_default();
            if group.is_empty() {
                return Ok(());
            }
            let path = o.table.path().to_path_buf();
            let batches: Result<Vec<RecordBatch>, LakeError> = group
                .iter()
                .map(|(_, b, _)| {
                    with_date(table, b.clone()).map_err(|message| LakeError::Table {
                        name: table.into(),
                        path: path.clone(),
                        message,
                    })
                })
                .collect();
            let outcome = match batches {
                Ok(batches) => o.table.append(&batches).await,
                Err(e) => Err(e),
            };
            let outcome = outcome.map(|(v, added)| {
                o.fresh.extend(added);
                o.commits += 1;
                v
            });
            if outcome.is_ok() && o.commits >= MERGE_EVERY_COMMITS {
                o.commits = 0;
                let fresh = std::mem::take(&mut o.fresh);
                // A failed merge leaves the files as they were, nothing is lost; the
                // upkeep merges them later.
                match upkeep::merge_files(&mut o.table, &fresh).await {
                    Ok(n) => tracing::debug!(table, files = n, "merged small result files"),
                    Err(e) => {
                        tracing::warn!(table, error = %e, "merging small result files failed; the table keeps its small files and merging is tried again later")
                    }
                }
            }
            if outcome.is_ok() {
                o.written.extend(group.iter().filter_map(|(id, _, _)| *id));
            }
            for (_, _, reply) in group {
                let _ = reply.send(outcome.as_ref().map(|v| *v).map_err(|e| match e {
                    LakeError::Table { message, .. } => message.clone(),
                    other => other.to_string(),
                }));
            }
            Ok(())
        })
        .await?;
        let mut version = -1;
        for rx in replies {
            version = rx
                .await
                .map_err(|_| failed("the write was dropped before its commit".into()))?
                .map_err(failed)?;
        }
        Ok(version)
    }

    /// The version of `table` this process last loaded or committed (the table is
    /// created when it does not exist).
    pub async fn version(&self, table: &str) -> Result<i64, LakeError> {
        self.with_table(table, async |o| Ok(o.table.version()))
            .await
    }

    /// Writes `batch` to `derived_stats` for `request_id` in place of the rows already
    /// stored for `date` and, when `symbol` is given, that symbol only (every symbol when
    /// `None`). One commit removes the files holding such rows and adds `batch` plus the
    /// other rows of those files, so a reader sees either the old rows or the new ones.
    pub async fn replace_derived_stats(
        &self,
        request_id: Uuid,
        date: chrono::NaiveDate,
        symbol: Option<&str>,
        batch: RecordBatch,
    ) -> Result<Written, LakeError> {
        use deltalake::arrow::array::{Array, BooleanArray, Date32Array};
        use deltalake::arrow::compute::filter_record_batch;
        let rows = batch.num_rows();
        let day =
            (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
        let version = self
            .with_table(DERIVED_STATS, async |o| {
                o.table.refresh().await?;
                let bad = |m: String| LakeError::Table {
                    name: DERIVED_STATS.into(),
                    path: o.table.path().to_path_buf(),
                    message: m,
                };
                let mut remove = Vec::new();
                let mut batches = vec![batch];
                let text = date.to_string();
                let files = match o
                    .table
                    .files_where(PARTITION_COLUMN, |v| v == Some(text.as_str()))
                    .await?
                {
                    Some(files) => files,
                    None => o.table.files().await?,
                };
                for f in files {
                    let mut hit = false;
                    let mut kept = Vec::new();
                    for b in o.table.read(std::slice::from_ref(&f)).await? {
                        let syms = BatchReader::new(&b).utf8("symbol").map_err(bad)?;
                        let dates = b
                            .column_by_name("date")
                            .and_then(|c| c.as_any().downcast_ref::<Date32Array>())
                            .ok_or_else(|| bad(format!("{}: no date column", f.path)))?;
                        let keep: BooleanArray = (0..b.num_rows())
                            .map(|i| {
                                let same_day = dates.is_valid(i) && dates.value(i) == day;
                                let same_sym = symbol.is_none_or(|s| syms[i].as_deref() == Some(s));
                                Some(!(same_day && same_sym))
                            })
                            .collect();
                        hit |= keep.false_count() > 0;
                        kept.push(filter_record_batch(&b, &keep).map_err(|e| bad(e.to_string()))?);
                    }
                    if hit {
                        remove.push(f);
                        batches.extend(kept.into_iter().filter(|b| b.num_rows() > 0));
                    }
                }
                let version = if remove.is_empty() {
                    o.table.append(&batches).await?.0
                } else {
                    let which = match symbol {
                        Some(s) => format!("date = '{date}' AND symbol = '{s}'"),
                        None => format!("date = '{date}'"),
                    };
                    o.table.replace_rows(&remove, &batches, which).await?.0
                };
                o.written.insert(request_id);
                Ok(version)
            })
            .await?;
        Ok(Written {
            table: DERIVED_STATS.to_string(),
            rows,
            version,
            quote_spread_ms: None,
            files_read: None,
        })
    }

    /// Every row of `table`.
    pub async fn read_all(&self, table: &str) -> Result<Vec<RecordBatch>, LakeError> {
        self.with_table(table, async |o| {
            o.table.refresh().await?;
            o.table.read_all().await
        })
        .await
    }

    /// The rows of `table` on the days `days` and how many data files were read: only
    /// those days' partitions (every file of a table not partitioned by day; the caller
    /// filters rows by day anyway).
    pub async fn read_days(
        &self,
        table: &str,
        days: &BTreeSet<NaiveDate>,
    ) -> Result<(Vec<RecordBatch>, usize), LakeError> {
        let wanted: HashSet<String> = days.iter().map(|d| d.to_string()).collect();
        self.with_table(table, async |o| {
            o.table.refresh().await?;
            let files = match o
                .table
                .files_where(PARTITION_COLUMN, |v| v.is_some_and(|v| wanted.contains(v)))
                .await?
            {
                Some(files) => files,
                None => o.table.files().await?,
            };
            Ok((o.table.read(&files).await?, files.len()))
        })
        .await
    }

    /// Data files of `table` read through this process since it opened the table.
    pub async fn files_read(&self, table: &str) -> Result<u64, LakeError> {
        self.with_table(table, async |o| Ok(o.table.files_read()))
            .await
    }

    /// Runs the upkeep (`lake::upkeep::run`) of every result table that exists: partitions
    /// before `today` are closed and merged to one file each. Upkeep of one table holds
    /// its writes until it ends; a failure is reported for that table only.
    pub async fn upkeep(
        &self,
        policy: &upkeep::Policy,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Vec<Result<upkeep::Report, LakeError>> {
        let open_from = today.to_string();
        let mut reports = Vec::new();
        for name in RESULT_TABLES {
            if !self.root.join(name).join("_delta_log").is_dir() {
                continue;
            }
            reports.push(
                self.with_table(name, async |o| {
                    o.fresh.clear();
                    o.commits = 0;
                    upkeep::run(&mut o.table, policy, Some(&open_from), now).await
                })
                .await,
            );
        }
        reports
    }

    /// Bar times (epoch seconds) already stored for a series on the days `days` (see
    /// `bar_day`), read from those days' partitions only, each once.
    pub async fn stored_bar_times(
        &self,
        key: &(String, String, String),
        days: &BTreeSet<NaiveDate>,
    ) -> Result<HashSet<i64>, LakeError> {
        let mut bars = self.bars.lock().await;
        let missing: BTreeSet<NaiveDate> = if bars.all {
            BTreeSet::new()
        } else {
            days.iter()
                .filter(|d| !bars.days.contains(d))
                .copied()
                .collect()
        };
        if !missing.is_empty() {
            let partitioned = self
                .with_table(MARKET_BARS, async |o| {
                    Ok(o.table
                        .partition_columns()
                        .iter()
                        .any(|c| c == PARTITION_COLUMN))
                })
                .await?;
            let (batches, _) = self.read_days(MARKET_BARS, &missing).await?;
            load_bar_times(&mut bars, &batches, &self.root)?;
            bars.days.extend(missing);
            bars.all |= !partitioned;
        }
        Ok(bars.times.get(key).cloned().unwrap_or_default())
    }

    /// Remembers bar times just written.
    pub async fn add_bar_times(
        &self,
        key: &(String, String, String),
        times: impl IntoIterator<Item = i64>,
    ) {
        self.bars
            .lock()
            .await
            .times
            .entry(key.clone())
            .or_default()
            .extend(times);
    }
}

/// Adds the bar times of `batches` (rows of `market_bars`) to `bars`.
fn load_bar_times(
    bars: &mut BarTimes,
    batches: &[RecordBatch],
    root: &Path,
) -> Result<(), LakeError> {
    {
        for batch in batches {
            let r = BatchReader::new(batch);
            let err = |m| LakeError::Table {
                name: MARKET_BARS.into(),
                path: root.join(MARKET_BARS),
                message: m,
            };
            let sym = r.utf8("symbol").map_err(err)?;
            let size = r.utf8("bar_size").map_err(err)?;
            let what = r.utf8("what_to_show").map_err(err)?;
            let at = r.timestamp("bar_time").map_err(err)?;
            for i in 0..r.len() {
                if let (Some(s), Some(z), Some(w), Some(t)) = (&sym[i], &size[i], &what[i], at[i]) {
                    bars.times
                        .entry((s.clone(), z.clone(), w.clone()))
                        .or_default()
                        .insert(t.timestamp());
                }
            }
        }
    }
    Ok(())
}

/// Rewrites every result table that is not partitioned by `date` as a partitioned one
/// (`lake::upkeep::repartition`), each row given its day as when it is written. Run it
/// while no engine writes the lake. Tables already partitioned, or absent, are skipped.
pub async fn repartition_all(root: &Path) -> Vec<Result<upkeep::Repartitioned, LakeError>> {
    let mut out = Vec::new();
    for name in RESULT_TABLES {
        let cols = stored_columns(name);
        let result = async {
            let Some(mut table) = LakeTable::open_existing(root, name, &cols).await? else {
                return Ok(None);
            };
            if table
                .partition_columns()
                .iter()
                .any(|c| c == PARTITION_COLUMN)
            {
                return Ok(None);
            }
            upkeep::repartition(&mut table, &cols, PARTITION_COLUMN, |b| with_date(name, b))
                .await
                .map(Some)
        }
        .await;
        match result {
            Ok(None) => {}
            Ok(Some(r)) => out.push(Ok(r)),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::columns::BatchBuilder;

    #[tokio::test]
    async fn many_small_commits_are_merged_and_no_row_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let results = ResultTables::new(dir.path().to_path_buf());
        let n = MERGE_EVERY_COMMITS * 2 + 5;
        for i in 0..n {
            let batch = BatchBuilder::new(FUTURES_SNAPSHOT_COLUMNS)
                .utf8([Some(Uuid::new_v4().to_string())])
                .timestamp([Some(chrono::Utc::now())])
                .utf8([Some("ES")])
                .i64([Some(i as i64)])
                .utf8([Some("ESZ6")])
                .utf8([Some("202612")])
                .date([chrono::NaiveDate::from_ymd_opt(2026, 12, 18)])
                .timestamp([None])
                .f64([Some(1.0)])
                .f64([Some(1.0)])
                .f64([Some(1.0)])
                .f64([Some(1.0)])
                .f64([Some(1.0)])
                .f64([Some(1.0)])
                .f64([Some(1.0)])
                .f64([Some(1.0)])
                .f64([Some(1.0)])
                .i64([Some(1)])
                .finish();
            results.write(FUTURES_SNAPSHOTS, None, batch).await.unwrap();
        }
        let table =
            LakeTable::open_existing(dir.path(), FUTURES_SNAPSHOTS, FUTURES_SNAPSHOT_COLUMNS)
                .await
                .unwrap()
                .unwrap();
        let files = table.files().await.unwrap().len();
        assert!(
            files <= MERGE_EVERY_COMMITS,
            "{files} files after {n} commits"
        );
        let rows: usize = table
            .read_all()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, n);
    }
}
