//! The queue's upkeep between compactions: the engine runs it every hour (with the result
//! tables'), `ibq upkeep` on demand. A compaction runs only when the queue is written, so
//! without this the files a compaction removed and the expired `_delta_log` entries would
//! stay on disk through every idle stretch (a weekend, a holiday) until the next write.
//!
//! It follows the compaction's rules and changes no row:
//! - the queue table: a checkpoint of the loaded version when the last one is behind, the
//!   `_delta_log` entries past the log retention and before that checkpoint deleted, and
//!   the data files removed more than [`QUEUE_VACUUM_RETENTION`] earlier deleted from disk.
//!   Live files are never touched, so a file another writer added stays until the
//!   compaction that has taken its rows in rewrites it.
//! - the history table: the closed days' small files merged (only while no compaction is
//!   unfinished, as the compaction's own history upkeep), a checkpoint, its log cleaned up
//!   to the version the last rewrite recorded (a later compaction may read that one), and
//!   files merged away more than a day earlier deleted.
//!
//! Every age is measured on the store's clock, the one its rows and removals are stamped
//! with: the wall clock in the engine, the replayed moment in `ibq bench year`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::compact::HISTORY_DONE;
use super::rows::{HISTORY_COLUMNS, HISTORY_TABLE};
use super::store::{QueueStore, StoreError};
use crate::lake::upkeep::{self, Policy, Report};
use crate::lake::{LakeError, LakeTable};

/// Data files a compaction removed from the queue table stay on disk this long, for
/// readers that loaded the version before it.
pub const QUEUE_VACUUM_RETENTION: Duration = Duration::hours(1);

/// How long `_delta_log` entries of the queue and history tables stay once a later
/// checkpoint covers them, unless the table states its own `delta.logRetentionDuration`.
pub const LOG_RETENTION: Duration = Duration::days(1);

/// Small files a day of the history table still written may hold before they are merged.
const HISTORY_OPEN_DAY_MAX_FILES: usize = 16;

/// What one upkeep of the queue's tables did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueUpkeep {
    pub queue: Report,
    /// `None` while no compaction has created the history table.
    pub history: Option<Report>,
}

/// The log retention of a table: its own `delta.logRetentionDuration` when it states one,
/// else [`LOG_RETENTION`].
pub(super) fn log_retention(table: &LakeTable) -> Duration {
    table
        .stated_log_retention()
        .and_then(|d| Duration::from_std(d).ok())
        .unwrap_or(LOG_RETENTION)
}

/// The history table's policy: a day still written gets a file per compaction (dozens a
/// day), merged once it holds 16, so a reader of recent history opens a few files.
fn history_policy() -> Policy {
    Policy {
        open_partition_max_files: HISTORY_OPEN_DAY_MAX_FILES,
        ..Default::default()
    }
}

/// Merges the history table's small files: days no compaction writes any more (before
/// `keep_finished_days` + 1 days ago: a day's rows arrive as they are superseded, then as
/// their requests are archived) into one file each, a day still written once it holds 16.
/// Run it only while no compaction is unfinished (the version the last rewrite recorded is
/// the table's), so a merge never takes in rows a compaction has not finished with.
/// Returns (partitions merged, files merged away).
pub(super) async fn merge_history(
    history: &mut LakeTable,
    keep_finished_days: u32,
    now: DateTime<Utc>,
) -> Result<(usize, usize), LakeError> {
    let open_from = crate::market::calendar::new_york_date(now)
        - Duration::days(i64::from(keep_finished_days) + 1);
    upkeep::merge_small_files(history, &history_policy(), Some(&open_from.to_string())).await
}

/// Deletes from disk the history files merged away more than the vacuum retention (a day)
/// before `now`.
pub(super) async fn vacuum_history(
    history: &mut LakeTable,
    now: DateTime<Utc>,
) -> Result<usize, LakeError> {
    history.vacuum(history_policy().vacuum_retention, now).await
}

/// The queue table's upkeep on the owner's handle: checkpoint, vacuum, log cleanup. The
/// handle first loads every commit, so the vacuum counts each file other writers committed
/// as live (the owner takes their rows in at its next poll, as ever), and then adopts the
/// new checkpoint, so the log entries the cleanup deletes are none it still reads.
async fn keep_queue(table: &mut LakeTable, now: DateTime<Utc>) -> Result<Report, LakeError> {
    table.refresh().await?;
    let checkpoint = upkeep::checkpoint(table).await?;
    table.refresh().await?;
    let files_vacuumed = table.vacuum(QUEUE_VACUUM_RETENTION, now).await?;
    let log_files_deleted = table
        .cleanup_expired_log(log_retention(table), table.version(), now)
        .await?;
    Ok(Report {
        table: table.name().to_string(),
        partition_columns: table.partition_columns(),
        version: table.version(),
        partitions_merged: 0,
        files_merged: 0,
        checkpoint,
        files_vacuumed,
        log_files_deleted,
        usage: upkeep::disk_usage(table).await?,
    })
}

/// The history table's upkeep, when the table exists. `done` is the history version the
/// queue's last rewrite recorded: merges and a new checkpoint only while it is the
/// table's version (no compaction unfinished, and none has to read versions after it);
/// the log is cleaned only up to it.
async fn keep_history(
    store: &QueueStore,
    done: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Option<Report>, LakeError> {
    let Some(mut history) =
        LakeTable::open_existing(&store.root, HISTORY_TABLE, HISTORY_COLUMNS).await?
    else {
        return Ok(None);
    };
    history.set_clock(Arc::clone(&store.clock));
    let (mut checkpoint, mut log_files_deleted) = (None, 0);
    let (mut partitions_merged, mut files_merged) = (0, 0);
    if done == Some(history.version()) {
        checkpoint = upkeep::checkpoint(&history).await?;
        history.refresh().await?;
        (partitions_merged, files_merged) =
            merge_history(&mut history, store.config.keep_finished_days, now).await?;
    }
    let files_vacuumed = vacuum_history(&mut history, now).await?;
    if let Some(done) = done {
        log_files_deleted = history
            .cleanup_expired_log(log_retention(&history), done, now)
            .await?;
    }
    Ok(Some(Report {
        table: history.name().to_string(),
        partition_columns: history.partition_columns(),
        version: history.version(),
        partitions_merged,
        files_merged,
        checkpoint,
        files_vacuumed,
        log_files_deleted,
        usage: upkeep::disk_usage(&history).await?,
    }))
}

impl QueueStore {
    /// Keeps the queue and history tables up without writing a row (see the module): what
    /// a compaction does to old files and old log entries, for the hours no compaction
    /// runs. Ages are measured on the store's clock.
    pub async fn upkeep(&mut self) -> Result<QueueUpkeep, StoreError> {
        let now = self.clock.now();
        let queue = keep_queue(&mut self.table, now).await?;
        if queue.checkpoint.is_some() {
            self.commits_since_checkpoint = 0;
        }
        let done = self.table.txn_version(HISTORY_DONE).await?;
        let history = keep_history(self, done, now).await?;
        Ok(QueueUpkeep { queue, history })
    }
}
