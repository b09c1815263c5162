//! The result tables and their writer. Every row carries the id of the request that wrote
//! it; before writing, the worker asks whether a request's rows are already there, so a
//! request re-run after a crash or a lost connection is never written twice.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use deltalake::arrow::array::RecordBatch;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::lake::columns::{col, BatchReader, Col, ColumnKind::*};
use crate::lake::{LakeError, LakeTable};

pub const OPTION_SNAPSHOTS: &str = "option_snapshots";
pub const FUTURES_SNAPSHOTS: &str = "futures_snapshots";
pub const MARKET_BARS: &str = "market_bars";
pub const POSITION_UPDATES: &str = "position_updates";
pub const DERIVED_STATS: &str = "derived_stats";

pub const OPTION_SNAPSHOT_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("snapshot_at", Timestamp),
    col("underlying", Utf8),
    col("underlying_price", Float64),
    col("conid", Int64),
    col("local_symbol", Utf8),
    col("expiry", Utf8),
    col("dte", Int64),
    col("strike", Float64),
    col("right", Utf8),
    col("bid", Float64),
    col("ask", Float64),
    col("last", Float64),
    col("bid_size", Float64),
    col("ask_size", Float64),
    col("volume", Float64),
    col("implied_vol", Float64),
    col("delta", Float64),
    col("gamma", Float64),
    col("vega", Float64),
    col("theta", Float64),
    col("model_price", Float64),
];

pub const FUTURES_SNAPSHOT_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("snapshot_at", Timestamp),
    col("symbol", Utf8),
    col("conid", Int64),
    col("local_symbol", Utf8),
    col("contract_month", Utf8),
    col("last_trade_date", Date),
    col("last_trade_time", Timestamp),
    col("bid", Float64),
    col("ask", Float64),
    col("last", Float64),
    col("bid_size", Float64),
    col("ask_size", Float64),
    col("volume", Float64),
    col("high", Float64),
    col("low", Float64),
    col("close", Float64),
];

pub const MARKET_BAR_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("symbol", Utf8),
    col("conid", Int64),
    col("bar_size", Utf8),
    col("what_to_show", Utf8),
    col("bar_time", Timestamp),
    col("open", Float64),
    col("high", Float64),
    col("low", Float64),
    col("close", Float64),
    col("volume", Float64),
    col("wap", Float64),
    col("bar_count", Int64),
    col("written_at", Timestamp),
];

pub const POSITION_UPDATE_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("source", Utf8),
    col("updated_at", Timestamp),
    col("account", Utf8),
    col("conid", Int64),
    col("symbol", Utf8),
    col("sec_type", Utf8),
    col("expiry", Utf8),
    col("strike", Float64),
    col("right", Utf8),
    col("quantity", Float64),
    col("avg_cost", Float64),
    col("market_price", Float64),
    col("market_value", Float64),
];

pub const DERIVED_STATS_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("date", Date),
    col("symbol", Utf8),
    col("open", Float64),
    col("high", Float64),
    col("low", Float64),
    col("close", Float64),
    col("daily_range", Float64),
    col("daily_return", Float64),
    col("atm_implied_vol", Float64),
    col("put_call_volume_ratio", Float64),
    col("computed_at", Timestamp),
];

pub fn columns_of(table: &str) -> &'static [Col] {
    match table {
        OPTION_SNAPSHOTS => OPTION_SNAPSHOT_COLUMNS,
        FUTURES_SNAPSHOTS => FUTURES_SNAPSHOT_COLUMNS,
        MARKET_BARS => MARKET_BAR_COLUMNS,
        POSITION_UPDATES => POSITION_UPDATE_COLUMNS,
        _ => DERIVED_STATS_COLUMNS,
    }
}

/// What one write did, for the request's `result_data`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    pub table: String,
    pub rows: usize,
    pub version: i64,
}

struct Open {
    table: LakeTable,
    /// Request ids with rows in the table (loaded on first use).
    written: HashSet<Uuid>,
    /// Commits since the small files were last merged.
    commits: usize,
}

/// After this many commits the small files of a table are merged into one, so a trading
/// day of small commits does not leave thousands of files to open on every read.
const MERGE_EVERY_COMMITS: usize = 64;
/// Files below this size count as small; larger ones are left as they are, so merging never
/// rewrites the bulk of a long-lived table.
const SMALL_FILE_BYTES: i64 = 16 * 1024 * 1024;

impl Open {
    async fn merge_small_files(&mut self) -> Result<usize, LakeError> {
        let small: Vec<_> = self
            .table
            .files()
            .await?
            .into_iter()
            .filter(|f| f.size < SMALL_FILE_BYTES)
            .collect();
        if small.len() < 2 {
            return Ok(0);
        }
        let batches = self.table.read(&small).await?;
        self.table.replace(&small, &batches).await?;
        Ok(small.len())
    }
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
    open: Mutex<HashMap<String, Open>>,
    /// Writes queued per table; whoever holds `open` next commits them all at once.
    pending: std::sync::Mutex<HashMap<String, Vec<PendingWrite>>>,
    /// (symbol, bar size, what to show) → bar times already stored.
    bars: Mutex<HashMap<(String, String, String), HashSet<i64>>>,
}

impl ResultTables {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            open: Mutex::new(HashMap::new()),
            pending: std::sync::Mutex::new(HashMap::new()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    async fn with_table<T>(
        &self,
        name: &str,
        f: impl AsyncFnOnce(&mut Open) -> Result<T, LakeError>,
    ) -> Result<T, LakeError> {
        let mut open = self.open.lock().await;
        if !open.contains_key(name) {
            let table = LakeTable::open_or_create(&self.root, name, columns_of(name)).await?;
            let mut written = HashSet::new();
            for batch in table.read_all().await? {
                let ids =
                    BatchReader::new(&batch)
                        .utf8("request_id")
                        .map_err(|m| LakeError::Table {
                            name: name.into(),
                            path: table.path().to_path_buf(),
                            message: m,
                        })?;
                written.extend(
                    ids.into_iter()
                        .flatten()
                        .filter_map(|s| Uuid::parse_str(&s).ok()),
                );
            }
            open.insert(
                name.to_string(),
                Open {
                    table,
                    written,
                    commits: 0,
                },
            );
        }
        f(open.get_mut(name).expect("inserted above")).await
    }

    /// True when rows of `request_id` are already in `table`.
    pub async fn already_written(&self, table: &str, request_id: Uuid) -> Result<bool, LakeError> {
        self.with_table(table, async |o| Ok(o.written.contains(&request_id)))
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
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(table.to_string())
            .or_default()
            .push((request_id, batch, tx));
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
            let batches: Vec<RecordBatch> = group.iter().map(|(_, b, _)| b.clone()).collect();
            let outcome = o.table.append(&batches).await.map(|(v, _)| v);
            o.commits += 1;
            if outcome.is_ok() && o.commits >= MERGE_EVERY_COMMITS {
                o.commits = 0;
                // Upkeep: a failed merge leaves the files as they were, nothing is lost.
                match o.merge_small_files().await {
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
        let version = rx
            .await
            .map_err(|_| LakeError::Table {
                name: table.into(),
                path: self.root.join(table),
                message: "the write was dropped before its commit".into(),
            })?
            .map_err(|message| LakeError::Table {
                name: table.into(),
                path: self.root.join(table),
                message,
            })?;
        Ok(Written {
            table: table.to_string(),
            rows,
            version,
        })
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
                for f in o.table.files().await? {
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
        })
    }

    /// Every row of `table` (for derived statistics).
    pub async fn read_all(&self, table: &str) -> Result<Vec<RecordBatch>, LakeError> {
        self.with_table(table, async |o| {
            o.table.refresh().await?;
            o.table.read_all().await
        })
        .await
    }

    /// Bar times (epoch seconds) already stored for a series, loaded once from the table.
    pub async fn stored_bar_times(
        &self,
        key: &(String, String, String),
    ) -> Result<HashSet<i64>, LakeError> {
        let mut bars = self.bars.lock().await;
        if let Some(known) = bars.get(key) {
            return Ok(known.clone());
        }
        let mut times = HashSet::new();
        for batch in self.read_all(MARKET_BARS).await? {
            let r = BatchReader::new(&batch);
            let err = |m| LakeError::Table {
                name: MARKET_BARS.into(),
                path: self.root.join(MARKET_BARS),
                message: m,
            };
            let sym = r.utf8("symbol").map_err(err)?;
            let size = r.utf8("bar_size").map_err(err)?;
            let what = r.utf8("what_to_show").map_err(err)?;
            let at = r.timestamp("bar_time").map_err(err)?;
            for i in 0..r.len() {
                if sym[i].as_deref() == Some(&key.0)
                    && size[i].as_deref() == Some(&key.1)
                    && what[i].as_deref() == Some(&key.2)
                {
                    if let Some(t) = at[i] {
                        times.insert(t.timestamp());
                    }
                }
            }
        }
        bars.insert(key.clone(), times.clone());
        Ok(times)
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
            .entry(key.clone())
            .or_default()
            .extend(times);
    }
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
