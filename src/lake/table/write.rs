//! Writing a table: files appended or swapped in one commit, retried after other
//! writers' commits, each batch first conformed to the table's schema.

use deltalake::arrow::array::{new_null_array, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Remove, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};

use super::*;

/// A batch of the project's columns laid out as the table's schema: the table's column
/// order, its timestamp kinds, and nulls for columns of the table the project does not
/// write (another program's extra columns).
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
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

impl LakeTable {
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

    /// Commits `actions` as `operation`, attempting again at most `retries` times after
    /// other writers' commits, for `lake::upkeep`.
    pub(in crate::lake) async fn commit_actions(
        &mut self,
        actions: Vec<Action>,
        operation: DeltaOperation,
        retries: usize,
    ) -> Result<i64, LakeError> {
        self.commit_retrying(actions, operation, retries).await
    }
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
