//! Upkeep of a Delta table as it grows: small files merged per partition, checkpoints,
//! removed files deleted from disk after a retention (vacuum), old commit files cleaned
//! past the last checkpoint, and the one-time rewrite of an unpartitioned table into a
//! partitioned one. Every operation keeps Delta protocol reader 1 / writer 2 and never
//! changes the rows a reader sees.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow as _;
use deltalake::kernel::{Action, MetadataExt as _, Remove, StructType};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};

use super::columns::{delta_fields, Col};
use super::table::{DataFile, LakeError, LakeTable};

/// What upkeep does and keeps.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Files under this size are merged; larger ones are left as they are, so a merge never
    /// rewrites the bulk of a long-lived table.
    pub small_file_bytes: i64,
    /// A partition still being written (its value at or after `open_from`) is merged only
    /// once it holds this many small files; a closed partition as soon as it holds two.
    pub open_partition_max_files: usize,
    /// Removed data files stay on disk this long, so a reader that loaded an older version
    /// still finds its files. Delta's own default is 7 days; see docs/TABLES.md.
    pub vacuum_retention: Duration,
    /// Commit files older than this and older than the newest checkpoint before that age
    /// are deleted. Delta's own default is 30 days.
    pub log_retention: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            small_file_bytes: 16 * 1024 * 1024,
            open_partition_max_files: 128,
            vacuum_retention: Duration::days(1),
            log_retention: Duration::days(2),
        }
    }
}

/// Files and bytes of a table on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskUsage {
    pub live_files: usize,
    pub live_bytes: u64,
    /// Data files on disk that no longer belong to the table (waiting for vacuum).
    pub removed_files: usize,
    pub removed_bytes: u64,
    /// Files in `_delta_log` (commits, checkpoints) and their size.
    pub log_files: usize,
    pub log_bytes: u64,
}

/// What one upkeep of a table did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub table: String,
    pub partition_columns: Vec<String>,
    pub version: i64,
    pub partitions_merged: usize,
    pub files_merged: usize,
    /// The version a checkpoint was written for, when one was.
    pub checkpoint: Option<i64>,
    pub files_vacuumed: usize,
    pub log_files_deleted: usize,
    pub usage: DiskUsage,
}

fn partition_key(f: &DataFile) -> BTreeMap<String, Option<String>> {
    f.partition.clone()
}

/// Merges `files` (live files of the table) into one file per partition, in one commit
/// marked like Delta's OPTIMIZE (`dataChange: false`): readers see the same rows before
/// and after, and other writers' appends never conflict with it. Partitions with a single
/// file among `files` are left alone. Returns how many files were merged away.
pub async fn merge_files(table: &mut LakeTable, files: &[DataFile]) -> Result<usize, LakeError> {
    let mut groups: BTreeMap<_, Vec<DataFile>> = BTreeMap::new();
    for f in files {
        groups.entry(partition_key(f)).or_default().push(f.clone());
    }
    let merge: Vec<DataFile> = groups
        .into_values()
        .filter(|g| g.len() >= 2)
        .flatten()
        .collect();
    if merge.is_empty() {
        return Ok(0);
    }
    let batches = table.read(&merge).await?;
    table.replace(&merge, &batches).await?;
    Ok(merge.len())
}

/// Whether a partition is closed (no more writes expected): its first partition value is
/// before `open_from`. A table without partitions is always open.
fn closed(
    key: &BTreeMap<String, Option<String>>,
    first: Option<&str>,
    open_from: Option<&str>,
) -> bool {
    let Some(first) = first else {
        return false;
    };
    match (key.get(first), open_from) {
        (_, None) => true,
        (Some(Some(v)), Some(open)) => v.as_str() < open,
        // Rows without a partition value are never written again as a day is.
        (Some(None), Some(_)) => true,
        (None, Some(_)) => false,
    }
}

/// Merges the small files of each partition that needs it, one commit per partition so a
/// merge holds one partition's rows in memory: a closed partition (see `Policy`) with two
/// small files or more, an open one once it holds `open_partition_max_files`. Returns
/// (partitions merged, files merged away).
pub async fn merge_small_files(
    table: &mut LakeTable,
    policy: &Policy,
    open_from: Option<&str>,
) -> Result<(usize, usize), LakeError> {
    let first = table.partition_columns().into_iter().next();
    let mut groups: BTreeMap<_, Vec<DataFile>> = BTreeMap::new();
    for f in table.files().await? {
        if f.size < policy.small_file_bytes {
            groups.entry(partition_key(&f)).or_default().push(f);
        }
    }
    let (mut partitions, mut files) = (0, 0);
    for (key, group) in groups {
        let due = if closed(&key, first.as_deref(), open_from) {
            group.len() >= 2
        } else {
            group.len() >= policy.open_partition_max_files.max(2)
        };
        if due {
            files += merge_files(table, &group).await?;
            partitions += 1;
        }
    }
    Ok((partitions, files))
}

/// The version of the table's newest checkpoint, from `_delta_log/_last_checkpoint`.
pub fn last_checkpoint_version(table_path: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(table_path.join("_delta_log/_last_checkpoint")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()?
        .get("version")?
        .as_i64()
}

/// Writes a checkpoint of the loaded version unless one exists for it. Returns the
/// version checkpointed, if one was written.
pub async fn checkpoint(table: &LakeTable) -> Result<Option<i64>, LakeError> {
    let version = table.version();
    if version < 0 || last_checkpoint_version(table.path()).is_some_and(|v| v >= version) {
        return Ok(None);
    }
    table.checkpoint().await?;
    Ok(Some(version))
}

/// Deletes from disk the data files that left the table more than `retention` before
/// `now` (and stray files no version lists, written before that: see `LakeTable::vacuum`).
/// Live files and files removed within the retention stay.
pub async fn vacuum(
    table: &mut LakeTable,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<usize, LakeError> {
    table.vacuum(retention, now).await
}

/// Deletes commit files of `_delta_log` older than `retention` before `now` and older than
/// a checkpoint that is itself past the retention, as Delta's log cleanup does: a reader
/// opens the table from that checkpoint. Returns how many files were deleted.
pub async fn cleanup_log(
    table: &LakeTable,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<usize, LakeError> {
    table
        .cleanup_expired_log(retention, table.version(), now)
        .await
}

/// Live and removed data files and the log of a table, as on disk.
pub async fn disk_usage(table: &LakeTable) -> Result<DiskUsage, LakeError> {
    let live: HashSet<String> = table.files().await?.into_iter().map(|f| f.path).collect();
    let root = table.path();
    let mut usage = DiskUsage::default();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.map_err(|e| table.error(format!("listing the table folder: {e}")))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        if rel.starts_with("_delta_log") {
            usage.log_files += 1;
            usage.log_bytes += bytes;
        } else if !rel_text.ends_with(".parquet") {
            continue;
        } else if live.contains(&rel_text) {
            usage.live_files += 1;
            usage.live_bytes += bytes;
        } else {
            usage.removed_files += 1;
            usage.removed_bytes += bytes;
        }
    }
    Ok(usage)
}

/// The whole upkeep of one table: load new commits, merge small files (`open_from`: the
/// first partition value still being written, e.g. today's date), write a checkpoint,
/// vacuum removed files and clean the log, all by `policy`, with `now` as the time.
pub async fn run(
    table: &mut LakeTable,
    policy: &Policy,
    open_from: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Report, LakeError> {
    table.refresh().await?;
    let (partitions_merged, files_merged) = merge_small_files(table, policy, open_from).await?;
    let checkpoint = checkpoint(table).await?;
    let files_vacuumed = vacuum(table, policy.vacuum_retention, now).await?;
    table.refresh().await?;
    let log_files_deleted = cleanup_log(table, policy.log_retention, now).await?;
    Ok(Report {
        table: table.name().to_string(),
        partition_columns: table.partition_columns(),
        version: table.version(),
        partitions_merged,
        files_merged,
        checkpoint,
        files_vacuumed,
        log_files_deleted,
        usage: disk_usage(table).await?,
    })
}

/// What a repartition did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Repartitioned {
    pub table: String,
    pub rows: usize,
    pub files_before: usize,
    pub files_after: usize,
    pub version: i64,
}

/// Rewrites an unpartitioned table as a table partitioned by `by`, in one commit: a new
/// metadata action (the columns `cols`, partitioned by `by`, the table's id and settings
/// kept), the removal of every live file and the same rows written again, each batch
/// given its `by` values by `stamp`. Readers see the old files or the new ones, never a
/// mix; the old files stay on disk until a vacuum after the retention, so older versions
/// remain readable meanwhile. The commit is refused (and the new files deleted) when any
/// other commit reached the table since it was read, so no row another writer added
/// meanwhile can be lost: run it while nothing else writes the table.
pub async fn repartition(
    table: &mut LakeTable,
    cols: &[Col],
    by: &str,
    stamp: impl Fn(RecordBatch) -> Result<RecordBatch, String>,
) -> Result<Repartitioned, LakeError> {
    table.refresh().await?;
    if !cols.iter().any(|c| c.name == by) {
        return Err(table.error(format!("`{by}` is not one of the table's columns")));
    }
    if table.partition_columns().iter().any(|c| c == by) {
        return Err(table.error(format!("the table is already partitioned by `{by}`")));
    }
    let files = table.files().await?;
    let old = table
        .delta()
        .snapshot()
        .map_err(|e| table.error(e))?
        .metadata()
        .clone();
    // The table's columns (another program's extras kept) plus any of `cols` it lacks.
    let mut fields: Vec<_> = old
        .parse_schema()
        .map_err(|e| table.error(e))?
        .fields()
        .cloned()
        .collect();
    for f in delta_fields(cols) {
        if !fields.iter().any(|g| g.name() == f.name()) {
            fields.push(f);
        }
    }
    let schema = StructType::try_new(fields).map_err(|e| table.error(e))?;
    let metadata = deltalake::kernel::new_metadata(&schema, [by], old.configuration().clone())
        .and_then(|m| m.with_table_id(old.id().to_string()))
        .and_then(|m| match old.name() {
            Some(n) => m.with_name(n.to_string()),
            None => Ok(m),
        })
        .map_err(|e| table.error(format!("the new metadata: {e}")))?;
    let arrow: deltalake::arrow::datatypes::Schema =
        (&schema).try_into_arrow().map_err(|e| table.error(e))?;
    let arrow = Arc::new(arrow);

    let mut rows = 0;
    let abs = std::path::absolute(table.path()).map_err(|e| table.error(e))?;
    let url = url::Url::from_directory_path(abs).map_err(|_| table.error("not a usable path"))?;
    let mut writer = RecordBatchWriter::try_new(
        url.as_str(),
        arrow.clone(),
        Some(vec![by.to_string()]),
        None,
    )
    .map_err(|e| table.error(e))?;
    for f in &files {
        for b in table.read(std::slice::from_ref(f)).await? {
            let b = stamp(b).map_err(|e| table.error(format!("{}: {e}", f.path)))?;
            let b = crate::lake::table::conform(&b, &arrow)
                .map_err(|e| table.error(format!("{}: {e}", f.path)))?;
            rows += b.num_rows();
            writer.write(b).await.map_err(|e| table.error(e))?;
        }
    }
    let adds = writer.flush().await.map_err(|e| table.error(e))?;
    let written: usize = adds
        .iter()
        .filter_map(|a| a.get_stats().ok().flatten().map(|s| s.num_records as usize))
        .sum();
    if written != rows {
        delete_files(table, &adds).await;
        return Err(table.error(format!(
            "the rewrite wrote {written} rows of {rows}; the table is unchanged"
        )));
    }
    let now = table.now().timestamp_millis();
    let files_after = adds.len();
    let mut actions = vec![Action::Metadata(metadata)];
    actions.extend(adds.iter().cloned().map(Action::Add));
    actions.extend(files.iter().map(|f| {
        Action::Remove(Remove {
            path: f.path.clone(),
            data_change: true,
            deletion_timestamp: Some(now),
            extended_file_metadata: Some(true),
            partition_values: Some(f.partition.clone().into_iter().collect()),
            size: Some(f.size),
            ..Default::default()
        })
    }));
    let op = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(vec![by.to_string()]),
        predicate: None,
    };
    let version = match table.commit_actions(actions, op, 0).await {
        Ok(v) => v,
        Err(e) => {
            delete_files(table, &adds).await;
            return Err(e);
        }
    };
    table.refresh().await?;
    checkpoint(table).await?;
    Ok(Repartitioned {
        table: table.name().to_string(),
        rows,
        files_before: files.len(),
        files_after,
        version,
    })
}

/// Deletes files a failed rewrite wrote (never part of a commit).
async fn delete_files(table: &LakeTable, adds: &[deltalake::kernel::Add]) {
    for a in adds {
        let _ = std::fs::remove_file(table.path().join(&a.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: Option<&str>) -> BTreeMap<String, Option<String>> {
        BTreeMap::from([("date".to_string(), v.map(str::to_string))])
    }

    #[test]
    fn days_before_the_open_one_are_closed_and_an_unpartitioned_table_is_open() {
        let open = Some("2026-11-24");
        assert!(closed(&key(Some("2026-11-23")), Some("date"), open));
        assert!(!closed(&key(Some("2026-11-24")), Some("date"), open));
        assert!(!closed(&key(Some("2026-11-25")), Some("date"), open));
        assert!(closed(&key(None), Some("date"), open));
        assert!(closed(&key(Some("2026-11-24")), Some("date"), None));
        assert!(!closed(&BTreeMap::new(), None, open));
        assert!(!closed(&BTreeMap::new(), None, None));
    }

    #[test]
    fn the_default_policy_keeps_a_day_of_removed_files_and_two_days_of_log() {
        let p = Policy::default();
        assert_eq!(p.vacuum_retention, Duration::hours(24));
        assert_eq!(p.log_retention, Duration::hours(48));
        assert!(p.log_retention >= p.vacuum_retention);
    }
}
