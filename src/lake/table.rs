//! One Delta table: create or open, append a batch in one commit, list and read live files,
//! and replace files in one commit (compaction).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use deltalake::arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafile::reader::ParquetFileReader;
use deltalake::datafile::DataFileReader;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Remove, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};
use deltalake::DeltaTable;
use futures::TryStreamExt;

use super::columns::{delta_fields, Col};
use crate::market::clock::{Clock, SystemClock};

/// A table operation that failed, with the table's name and folder.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("cannot create the lake folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("table {name} at {path}: {message}")]
    Table {
        name: String,
        path: PathBuf,
        message: String,
    },
}

/// A live data file: its path relative to the table root, its size and, in a partitioned
/// table, its partition values (column → value as Delta writes it, `None` for null).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataFile {
    pub path: String,
    pub size: i64,
    pub partition: BTreeMap<String, Option<String>>,
}

/// Whether a table column of type `have` can hold this project's values of type `want`:
/// the same kind of value (an integer for an integer, text for text, a timestamp, naive or
/// not, for a timestamp), which the reader and `conform` cast between.
fn compatible(have: &DataType, want: &DataType) -> bool {
    use DataType::*;
    let kind = |t: &DataType| match t {
        Int8 | Int16 | Int32 | Int64 => "int",
        Utf8 | LargeUtf8 | Utf8View => "text",
        Timestamp(_, _) => "timestamp",
        Float32 | Float64 => "float",
        _ => "",
    };
    have == want || (!kind(have).is_empty() && kind(have) == kind(want))
}

/// A batch of the project's columns laid out as the table's schema: the table's column
/// order, its timestamp kinds, and nulls for columns of the table the project does not
/// write (another program's extra columns).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(a) if a.data_type() == f.data_type() => Ok(a.clone()),
            Some(a) => cast(a, f.data_type()).map_err(|e| format!("column `{}`: {e}", f.name())),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// Attempts of one commit against newer versions by other writers before it fails.
const COMMIT_RETRIES: usize = 100;

pub struct LakeTable {
    name: String,
    path: PathBuf,
    cols: Vec<Col>,
    table: DeltaTable,
    /// Data files read through this handle, for tests and benchmarks of targeted reads.
    files_read: Arc<AtomicU64>,
    /// The clock removals are stamped with (`deletionTimestamp`), the wall clock unless the
    /// owner keeps its rows on another (`set_clock`), so a vacuum measured on that clock
    /// sees the removals' true ages.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LakeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeTable")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

/// The first line of an error: delta-kernel errors append a backtrace to their text when
/// RUST_BACKTRACE is set, which is noise to someone reading one clear message.
fn brief(e: impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// What a storage error means to the operator, when it is one of the few that say the
/// lake cannot be written at all. Library errors bury the OS error under their own words
/// ("Failed to parse parquet: External: …"); this names it first.
pub fn storage_cause(text: &str) -> Option<&'static str> {
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&["os error 28)", "No space left on device"]) {
        Some("no space left on device")
    } else if has(&["os error 122)", "Disk quota exceeded"]) {
        Some("disk quota exceeded")
    } else if has(&["os error 30)", "Read-only file system"]) {
        Some("the file system is read-only")
    } else if has(&["os error 13)", "Permission denied"]) {
        Some("permission denied")
    } else if has(&["os error 1)", "Operation not permitted"]) {
        Some("operation not permitted (is the folder immutable?)")
    } else {
        None
    }
}

/// One line for a failed operation: the storage cause first when there is one.
fn explain(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    let line = brief(&text);
    match storage_cause(&text) {
        Some(cause) if !line.starts_with(cause) => format!("{cause}: {line}"),
        _ => line,
    }
}

/// Checks that a folder takes new files by creating and removing one, so a lake that
/// cannot be written is refused at start rather than at every commit.
pub fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".ibq-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"ibq")?;
    std::fs::remove_file(&probe)
}

fn table_url(path: &Path) -> Result<url::Url, String> {
    let abs = std::path::absolute(path).map_err(|e| e.to_string())?;
    url::Url::from_directory_path(&abs).map_err(|_| format!("not a usable path: {}", abs.display()))
}

impl LakeTable {
    fn err(&self, e: impl std::fmt::Display) -> LakeError {
        LakeError::Table {
            name: self.name.clone(),
            path: self.path.clone(),
            message: explain(e),
        }
    }

    /// Opens `<root>/<name>`, creating it with `cols` when it does not exist yet.
    pub async fn open_or_create(root: &Path, name: &str, cols: &[Col]) -> Result<Self, LakeError> {
        Self::open_partitioned(root, name, cols, &[]).await
    }

    /// `open_or_create`, creating a missing table partitioned by the columns `partition_by`
    /// (each one of `cols`). An existing table keeps the partitioning it has: Delta cannot
    /// change it in place (see `lake::upkeep::repartition`); `partition_columns` says what
    /// it is.
    pub async fn open_partitioned(
        root: &Path,
        name: &str,
        cols: &[Col],
        partition_by: &[&str],
    ) -> Result<Self, LakeError> {
        let path = root.join(name);
        if path.exists() && !path.is_dir() {
            return Err(LakeError::Table {
                name: name.to_string(),
                path,
                message: "is a file, not a table folder".into(),
            });
        }
        std::fs::create_dir_all(&path).map_err(|source| LakeError::Folder {
            path: path.clone(),
            source,
        })?;
        let err = |message: String| LakeError::Table {
            name: name.to_string(),
            path: path.clone(),
            message,
        };
        let url = table_url(&path).map_err(err)?;
        let has_log = path.join("_delta_log").is_dir()
            && std::fs::read_dir(path.join("_delta_log"))
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
        let table = if has_log {
            deltalake::open_table(url).await.map_err(|e| {
                err(format!(
                    "cannot open the table (is its _delta_log damaged?): {}",
                    explain(e)
                ))
            })?
        } else {
            // Built without loading: `DeltaTable::try_from_url` loads first, and on a folder
            // with no log the Delta kernel logs "No files in log segment" at ERROR before
            // deltalake treats it as the expected "not a table yet".
            deltalake::DeltaTableBuilder::from_url(url)
                .and_then(|b| b.build())
                .map_err(|e| err(brief(e)))?
                .create()
                .with_table_name(name)
                .with_columns(delta_fields(cols))
                .with_partition_columns(partition_by.iter().copied())
                .with_save_mode(SaveMode::Ignore)
                .await
                .map_err(|e| err(format!("cannot create the table: {}", explain(e))))?
        };
        let mut me = Self {
            name: name.to_string(),
            path,
            cols: cols.to_vec(),
            table,
            files_read: Arc::new(AtomicU64::new(0)),
            clock: Arc::new(SystemClock),
        };
        if has_log {
            me.adopt().await?;
        }
        Ok(me)
    }

    /// Evolves a table another program created to this table's columns: every column it
    /// lacks is added as nullable in one metadata commit (no data files are rewritten, so
    /// its own readers keep reading it). A column of the same name with a type that cannot
    /// hold ours is refused, naming the column. A naive timestamp column (`timestamp_ntz`,
    /// what Python writes from a tz-less datetime) is kept: its values are read as UTC and
    /// written as UTC wall time.
    async fn adopt(&mut self) -> Result<(), LakeError> {
        let schema = self
            .table
            .snapshot()
            .map_err(|e| self.err(e))?
            .snapshot()
            .arrow_schema();
        let mut missing = Vec::new();
        for (col, field) in self.cols.iter().zip(delta_fields(&self.cols)) {
            match schema.field_with_name(col.name) {
                Err(_) => missing.push(field),
                Ok(have) => {
                    if !compatible(have.data_type(), &col.kind.arrow()) {
                        return Err(LakeError::Table {
                            name: self.name.clone(),
                            path: self.path.clone(),
                            message: format!(
                                "column `{}` is {} but ibq needs {}; the table cannot be adopted",
                                col.name,
                                have.data_type(),
                                col.kind.arrow()
                            ),
                        });
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let table = self
            .table
            .clone()
            .add_columns()
            .with_fields(missing)
            .await
            .map_err(|e| self.err(format!("cannot add ibq's columns: {}", explain(e))))?;
        self.table = table;
        Ok(())
    }

    /// Opens `<root>/<name>` for reading; `None` when the table does not exist.
    pub async fn open_existing(
        root: &Path,
        name: &str,
        cols: &[Col],
    ) -> Result<Option<Self>, LakeError> {
        let path = root.join(name);
        if path.exists() && !path.is_dir() {
            return Err(LakeError::Table {
                name: name.to_string(),
                path,
                message: "is a file, not a table folder".into(),
            });
        }
        if !path.join("_delta_log").is_dir() {
            return Ok(None);
        }
        Self::open_or_create(root, name, cols).await.map(Some)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stamps this handle's removals with `clock` from now on (see the field).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// The time removals are stamped with now.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> i64 {
        self.table.version().map(|v| v as i64).unwrap_or(-1)
    }

    /// Loads commits made since this handle last looked (by any writer). True if any.
    pub async fn refresh(&mut self) -> Result<bool, LakeError> {
        let before = self.version();
        self.table
            .update_incremental(None)
            .await
            .map_err(|e| self.err(e))?;
        Ok(self.version() != before)
    }

    /// The live data files of the loaded version.
    pub async fn files(&self) -> Result<Vec<DataFile>, LakeError> {
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        let log_store = self.table.log_store();
        snapshot
            .snapshot()
            .file_views(log_store.as_ref(), None)
            .map_ok(|v| data_file(&v))
            .try_collect()
            .await
            .map_err(|e| self.err(e))
    }

    /// The live data files of the loaded version, each with its Delta statistics (the
    /// JSON of its add action: `numRecords`, `minValues`, `maxValues`, `nullCount`) when
    /// its writer recorded them.
    pub async fn files_with_stats(&self) -> Result<Vec<(DataFile, Option<String>)>, LakeError> {
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        let log_store = self.table.log_store();
        snapshot
            .snapshot()
            .file_views(log_store.as_ref(), None)
            .map_ok(|v| (data_file(&v), v.stats()))
            .try_collect()
            .await
            .map_err(|e| self.err(e))
    }

    /// The table's partition columns (none for an unpartitioned table).
    pub fn partition_columns(&self) -> Vec<String> {
        self.table
            .snapshot()
            .map(|s| s.metadata().partition_columns().to_vec())
            .unwrap_or_default()
    }

    /// The live files whose value of the partition column `column` passes `keep` (only
    /// those files are read, so a one-day read of a table partitioned by day opens one
    /// day's files). `None` when the table is not partitioned by `column`: the caller then
    /// reads every file and filters rows itself.
    pub async fn files_where(
        &self,
        column: &str,
        keep: impl Fn(Option<&str>) -> bool,
    ) -> Result<Option<Vec<DataFile>>, LakeError> {
        if !self.partition_columns().iter().any(|c| c == column) {
            return Ok(None);
        }
        let files = self.files().await?;
        Ok(Some(
            files
                .into_iter()
                .filter(|f| keep(f.partition.get(column).and_then(|v| v.as_deref())))
                .collect(),
        ))
    }

    /// The (reader, writer) protocol versions of the loaded version.
    pub fn protocol(&self) -> Result<(i32, i32), LakeError> {
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        let p = snapshot.protocol();
        Ok((p.min_reader_version(), p.min_writer_version()))
    }

    /// How many data files were read through this handle since it was opened.
    pub fn files_read(&self) -> u64 {
        self.files_read.load(Ordering::Relaxed)
    }

    /// Reads whole data files (raw parquet, each with the schema its writer used). A
    /// partition column, which Delta keeps in the file's path rather than in the file, is
    /// added to each batch from the file's partition value.
    pub async fn read(&self, files: &[DataFile]) -> Result<Vec<RecordBatch>, LakeError> {
        let reader = ParquetFileReader::new(self.table.log_store().object_store(None));
        let schema = self
            .table
            .snapshot()
            .map_err(|e| self.err(e))?
            .snapshot()
            .arrow_schema();
        let mut batches = Vec::new();
        for f in files {
            self.files_read.fetch_add(1, Ordering::Relaxed);
            let path = deltalake::Path::parse(&f.path)
                .unwrap_or_else(|_| deltalake::Path::from(f.path.as_str()));
            let stream = reader
                .read_file(path)
                .await
                .map_err(|e| self.err(format!("reading {}: {e}", f.path)))?;
            let mut part: Vec<RecordBatch> = stream
                .try_collect()
                .await
                .map_err(|e| self.err(format!("reading {}: {e}", f.path)))?;
            if !f.partition.is_empty() {
                for b in part.iter_mut() {
                    *b = with_partition_values(b, &f.partition, &schema)
                        .map_err(|e| self.err(format!("reading {}: {e}", f.path)))?;
                }
            }
            batches.append(&mut part);
        }
        Ok(batches)
    }

    /// Reads only the named columns of each file (raw parquet; a column a file lacks is
    /// left out of its batches), one list of batches per file, in the order given. For
    /// finding which files hold a key without decoding every column.
    // The object-store reader deltalake's own `ParquetFileReader` uses; deprecated upstream
    // in favour of hand-written readers.
    #[allow(deprecated)]
    pub async fn read_columns(
        &self,
        files: &[DataFile],
        names: &[&str],
    ) -> Result<Vec<Vec<RecordBatch>>, LakeError> {
        use deltalake::parquet::arrow::async_reader::{
            ParquetObjectReader, ParquetRecordBatchStreamBuilder,
        };
        use deltalake::parquet::arrow::ProjectionMask;
        let store = self.table.log_store().object_store(None);
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            self.files_read.fetch_add(1, Ordering::Relaxed);
            let path = deltalake::Path::parse(&f.path)
                .unwrap_or_else(|_| deltalake::Path::from(f.path.as_str()));
            let mut reader = ParquetObjectReader::new(store.clone(), path);
            if let Ok(size) = u64::try_from(f.size) {
                reader = reader.with_file_size(size);
            }
            let fail = |e: &dyn std::fmt::Display| self.err(format!("reading {}: {e}", f.path));
            let builder = ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(|e| fail(&e))?;
            let mask = ProjectionMask::columns(builder.parquet_schema(), names.iter().copied());
            let stream = builder
                .with_projection(mask)
                .build()
                .map_err(|e| fail(&e))?;
            out.push(stream.try_collect().await.map_err(|e| fail(&e))?);
        }
        Ok(out)
    }

    /// Every row of the loaded version.
    pub async fn read_all(&self) -> Result<Vec<RecordBatch>, LakeError> {
        let files = self.files().await?;
        self.read(&files).await
    }

    async fn write_files(&self, batches: &[RecordBatch]) -> Result<Vec<Action>, LakeError> {
        let mut writer = RecordBatchWriter::for_table(&self.table).map_err(|e| self.err(e))?;
        let schema = self
            .table
            .snapshot()
            .map_err(|e| self.err(e))?
            .snapshot()
            .arrow_schema();
        for b in batches.iter().filter(|b| b.num_rows() > 0) {
            let b = conform(b, &schema).map_err(|e| self.err(e))?;
            writer.write(b).await.map_err(|e| self.err(e))?;
        }
        let adds = writer.flush().await.map_err(|e| self.err(e))?;
        Ok(adds.into_iter().map(Action::Add).collect())
    }

    async fn commit(
        &mut self,
        actions: Vec<Action>,
        operation: DeltaOperation,
    ) -> Result<i64, LakeError> {
        self.commit_retrying(actions, operation, COMMIT_RETRIES)
            .await
    }

    async fn commit_retrying(
        &mut self,
        actions: Vec<Action>,
        operation: DeltaOperation,
        retries: usize,
    ) -> Result<i64, LakeError> {
        self.try_commit(actions, operation, retries)
            .await
            .map_err(|(_, e)| e)
    }

    /// One commit; its error says whether the commit failed only because other writers
    /// committed since the loaded version (with `retries` 0: any commit at all).
    async fn try_commit(
        &mut self,
        actions: Vec<Action>,
        operation: DeltaOperation,
        retries: usize,
    ) -> Result<i64, (bool, LakeError)> {
        use deltalake::kernel::transaction::TransactionError;
        use deltalake::DeltaTableError;
        let snapshot = self.table.snapshot().map_err(|e| (false, self.err(e)))?;
        // Another writer appending in a tight loop can take several versions in a row while
        // this commit checks for conflicts; a lost race is retried, not a failure.
        //
        // Every `delta.checkpointInterval` commits (Delta's default, 100) the commit writes a
        // checkpoint, so no reader replays more than that many commits. Old commit files are
        // not cleaned here (that lists the whole log on every commit) but by `lake::upkeep`.
        let properties = CommitProperties::default()
            .with_max_retries(retries)
            .with_create_checkpoint(true)
            .with_cleanup_expired_logs(Some(false));
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), self.table.log_store(), operation)
            .await
            .map_err(|e| {
                let stale = matches!(
                    &e,
                    DeltaTableError::VersionAlreadyExists(_)
                        | DeltaTableError::Transaction {
                            source: TransactionError::MaxCommitAttempts(_)
                        }
                );
                (stale, self.err(format!("commit failed: {e}")))
            })?;
        self.table.state = Some(finalized.snapshot());
        Ok(finalized.version() as i64)
    }

    /// Appends the batches as one commit and returns its version and the files it added.
    /// Nothing is visible to readers until the commit succeeds.
    pub async fn append(
        &mut self,
        batches: &[RecordBatch],
    ) -> Result<(i64, Vec<DataFile>), LakeError> {
        self.append_tagged(batches, None).await
    }

    /// `append`, recording `(app_id, version)` as an application transaction in the same
    /// commit (read back with `txn_version`).
    pub async fn append_tagged(
        &mut self,
        batches: &[RecordBatch],
        txn: Option<(&str, i64)>,
    ) -> Result<(i64, Vec<DataFile>), LakeError> {
        let mut actions = self.write_files(batches).await?;
        let added = added_files(&actions);
        if actions.is_empty() {
            return Ok((self.version(), added));
        }
        if let Some((app, v)) = txn {
            actions.push(Action::Txn(Transaction::new(app, v)));
        }
        let op = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let version = self.commit(actions, op).await?;
        Ok((version, added))
    }

    /// Replaces `remove` with the rows of `batches` in one commit: readers see either all
    /// the old files or the new ones. Files other writers added meanwhile stay untouched.
    ///
    /// The commit is a rewrite, like Delta's OPTIMIZE: its adds and removes are marked
    /// `dataChange: false`, so it never conflicts with other writers' blind appends (the
    /// conflict checker only counts removes that change data). Callers keep the table's
    /// meaning: the rows they write stand for the rows they remove.
    pub async fn replace(
        &mut self,
        remove: &[DataFile],
        batches: &[RecordBatch],
    ) -> Result<(i64, Vec<DataFile>), LakeError> {
        self.replace_tagged(remove, batches, &[]).await
    }

    /// `replace`, recording each `(app_id, version)` as an application transaction in the
    /// same commit.
    pub async fn replace_tagged(
        &mut self,
        remove: &[DataFile],
        batches: &[RecordBatch],
        txns: &[(&str, i64)],
    ) -> Result<(i64, Vec<DataFile>), LakeError> {
        let op = DeltaOperation::Optimize {
            predicate: None,
            target_size: 0,
        };
        self.swap(remove, batches, txns, false, op).await
    }

    /// Replaces rows, not only files: in one commit, removes `remove` and adds `batches`,
    /// both marked as a data change (a rerun that supersedes earlier rows), so readers that
    /// follow changes see it. `predicate` says which rows it replaces, for the commit info.
    pub async fn replace_rows(
        &mut self,
        remove: &[DataFile],
        batches: &[RecordBatch],
        predicate: String,
    ) -> Result<(i64, Vec<DataFile>), LakeError> {
        let op = DeltaOperation::Delete {
            predicate: Some(predicate),
        };
        self.swap(remove, batches, &[], true, op).await
    }

    async fn swap(
        &mut self,
        remove: &[DataFile],
        batches: &[RecordBatch],
        txns: &[(&str, i64)],
        data_change: bool,
        op: DeltaOperation,
    ) -> Result<(i64, Vec<DataFile>), LakeError> {
        let mut actions = self.write_files(batches).await?;
        for a in actions.iter_mut() {
            if let Action::Add(add) = a {
                add.data_change = data_change;
            }
        }
        let added = added_files(&actions);
        for (app, v) in txns {
            actions.push(Action::Txn(Transaction::new(*app, *v)));
        }
        let now = self.clock.now().timestamp_millis();
        actions.extend(remove.iter().map(|f| {
            Action::Remove(Remove {
                path: f.path.clone(),
                data_change,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: Some(f.partition.clone().into_iter().collect()),
                size: Some(f.size),
                ..Default::default()
            })
        }));
        // Delta's conflict check lets two rewrites marked `dataChange: false` remove the same
        // file (another process's upkeep merging the files this one merges), which would
        // leave their rows twice. So the commit is made against the newest version only:
        // when other writers committed meanwhile, it is made again if every file it removes
        // is still live, and given up (its new files deleted, nothing changed) if not.
        let mut attempts = 0;
        loop {
            let live: std::collections::HashSet<String> =
                self.files().await?.into_iter().map(|f| f.path).collect();
            if let Some(gone) = remove.iter().find(|f| !live.contains(&f.path)) {
                for f in &added {
                    let _ = std::fs::remove_file(self.path.join(&f.path));
                }
                return Err(self.err(format!(
                    "{} was replaced by another writer meanwhile; nothing changed",
                    gone.path
                )));
            }
            match self.try_commit(actions.clone(), op.clone(), 0).await {
                Ok(version) => return Ok((version, added)),
                Err((true, _)) if attempts < COMMIT_RETRIES => {
                    attempts += 1;
                    self.refresh().await?;
                }
                Err((_, e)) => return Err(e),
            }
        }
    }

    /// The version an application last recorded with `append_tagged`/`replace_tagged` in
    /// the loaded version of the table.
    pub async fn txn_version(&self, app_id: &str) -> Result<Option<i64>, LakeError> {
        let state = self.table.snapshot().map_err(|e| self.err(e))?;
        state
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| self.err(e))
    }

    /// The data files that were live at `version` (none before the table's first commit).
    pub async fn files_at(&self, version: i64) -> Result<Vec<DataFile>, LakeError> {
        if version < 0 {
            return Ok(Vec::new());
        }
        let url = table_url(&self.path).map_err(|e| self.err(e))?;
        let old = deltalake::open_table_with_version(url, version as _)
            .await
            .map_err(|e| self.err(format!("opening version {version}: {e}")))?;
        let snapshot = old.snapshot().map_err(|e| self.err(e))?;
        let log_store = old.log_store();
        snapshot
            .snapshot()
            .file_views(log_store.as_ref(), None)
            .map_ok(|v| data_file(&v))
            .try_collect()
            .await
            .map_err(|e| self.err(e))
    }

    /// Writes a checkpoint of the loaded version so opening the table reads one file
    /// instead of replaying every commit.
    pub async fn checkpoint(&self) -> Result<(), LakeError> {
        deltalake::checkpoints::create_checkpoint(&self.table, None)
            .await
            .map_err(|e| self.err(format!("checkpoint failed: {e}")))
    }

    /// Deletes from disk the data files that left the table more than `retention` before
    /// `now`, and files in the table's folder that no version lists and that were written
    /// more than `retention` before `now` (a commit that failed after writing its files).
    /// This is Delta's full vacuum: it does not depend on the removals still being listed
    /// in the log (a checkpoint drops those older than the table's
    /// `delta.deletedFileRetentionDuration`). Readers of older versions within the
    /// retention still find their files. Returns how many files were deleted.
    pub async fn vacuum(
        &mut self,
        retention: chrono::Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, LakeError> {
        let vacuum = |dry_run: bool| {
            self.table
                .clone()
                .vacuum()
                .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .with_clock(Arc::new(At(now.timestamp_millis())))
                .with_dry_run(dry_run)
        };
        // A removal stays listed in the log (and its checkpoints) for days after its file
        // is gone, and Delta's vacuum commits twice (start, end) whenever it lists any file
        // to delete, gone or not: an hourly upkeep would add two commits an hour to every
        // table. So it runs only when a file it would delete is still on disk.
        let (_, plan) = vacuum(true)
            .await
            .map_err(|e| self.err(format!("vacuum failed: {e}")))?;
        let on_disk = plan
            .files_deleted
            .iter()
            .filter(|f| self.path.join(f.as_str()).exists())
            .count();
        if on_disk == 0 {
            return Ok(0);
        }
        let (table, _) = vacuum(false)
            .await
            .map_err(|e| self.err(format!("vacuum failed: {e}")))?;
        self.table = table;
        Ok(on_disk)
    }

    /// Deletes `_delta_log` entries (commits and checkpoints) written more than `retention`
    /// before `now` that lie before a checkpoint at or below `keep_version`, Delta's rule
    /// for expired logs: every version from that checkpoint on stays readable. Returns how
    /// many were deleted.
    pub async fn cleanup_expired_log(
        &self,
        retention: chrono::Duration,
        keep_version: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, LakeError> {
        if keep_version < 0 {
            return Ok(0);
        }
        let cutoff = (now - retention).timestamp_millis();
        deltalake::checkpoints::cleanup_expired_logs_for(
            keep_version as _,
            self.table.log_store().as_ref(),
            cutoff,
            None,
        )
        .await
        .map_err(|e| self.err(format!("log cleanup failed: {e}")))
    }

    /// The `delta.logRetentionDuration` the table states, if it states one.
    pub fn stated_log_retention(&self) -> Option<std::time::Duration> {
        self.table
            .snapshot()
            .ok()?
            .table_config()
            .log_retention_duration
    }

    pub fn columns(&self) -> &[Col] {
        &self.cols
    }

    /// The Delta table, for the upkeep operations in `lake::upkeep`.
    pub(super) fn delta(&self) -> &DeltaTable {
        &self.table
    }

    /// The error of an operation on this table.
    pub(super) fn error(&self, e: impl std::fmt::Display) -> LakeError {
        self.err(e)
    }

    /// Commits `actions` as `operation`, attempting again at most `retries` times after
    /// other writers' commits, for `lake::upkeep`.
    pub(super) async fn commit_actions(
        &mut self,
        actions: Vec<Action>,
        operation: DeltaOperation,
        retries: usize,
    ) -> Result<i64, LakeError> {
        self.commit_retrying(actions, operation, retries).await
    }
}

/// A vacuum's "now".
#[derive(Debug)]
struct At(i64);

impl deltalake::operations::vacuum::Clock for At {
    fn current_timestamp_millis(&self) -> i64 {
        self.0
    }
}

fn data_file(v: &deltalake::kernel::LogicalFileView) -> DataFile {
    DataFile {
        path: v.path().to_string(),
        size: v.size(),
        partition: v.partition_values_map().into_iter().collect(),
    }
}

/// `batch` with the partition columns of the table that it lacks, each filled with the
/// file's value cast to the column's type.
fn with_partition_values(
    batch: &RecordBatch,
    values: &BTreeMap<String, Option<String>>,
    schema: &SchemaRef,
) -> Result<RecordBatch, String> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (name, value) in values {
        if batch.column_by_name(name).is_some() {
            continue;
        }
        let field = schema
            .field_with_name(name)
            .map_err(|_| format!("partition column `{name}` is not in the table's schema"))?;
        let text: ArrayRef = Arc::new(StringArray::from(vec![value.as_deref(); batch.num_rows()]));
        let column = cast(&text, field.data_type())
            .map_err(|e| format!("partition value {value:?} of `{name}`: {e}"))?;
        fields.push(Field::new(name, field.data_type().clone(), true));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

fn added_files(actions: &[Action]) -> Vec<DataFile> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Add(add) => Some(DataFile {
                path: add.path.clone(),
                size: add.size,
                partition: add.partition_values.clone().into_iter().collect(),
            }),
            _ => None,
        })
        .collect()
}
