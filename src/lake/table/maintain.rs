//! Keeping a table small and quick to open: checkpoints, the vacuum of removed files and
//! the cleanup of expired log entries.

use std::sync::Arc;

use super::*;

impl LakeTable {
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
}

/// A vacuum's "now".
#[derive(Debug)]
struct At(i64);

impl deltalake::operations::vacuum::Clock for At {
    fn current_timestamp_millis(&self) -> i64 {
        self.0
    }
}
