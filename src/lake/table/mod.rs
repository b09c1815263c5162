//! One Delta table: create or open it, and adopt one another program created. Reading it
//! (`read`), writing it in single commits (`write`) and keeping it small (`maintain`) are
//! its submodules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use deltalake::arrow::datatypes::DataType;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;

mod maintain;
mod read;
mod write;

pub(crate) use write::conform;

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

/// Attempts of one commit against newer versions by other writers before it fails.
const COMMIT_RETRIES: usize = 100;

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

    /// The table's partition columns (none for an unpartitioned table).
    pub fn partition_columns(&self) -> Vec<String> {
        self.table
            .snapshot()
            .map(|s| s.metadata().partition_columns().to_vec())
            .unwrap_or_default()
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
}
