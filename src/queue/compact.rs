//! Compaction: the queue table rewritten to the newest row per request, in one commit,
//! after every other row has been appended to the history table. No row is ever deleted:
//! superseded rows and unreadable rows (each answered by a rejection) move to history;
//! an unreadable row without a rejection stays in the queue table as it was.
//!
//! The two tables cannot change in one commit, so a crash can fall between the history
//! append and the queue rewrite. Each rewrite records the history table's version it
//! completed (`txn` action, app id [`HISTORY_DONE`]); a compaction first reads the history
//! rows appended after that version (by attempts that never finished) and does not append
//! them again.

use std::collections::HashMap;
use std::time::Instant;

use chrono::Duration;

use super::ingest;
use super::model::Request;
use super::rows::{self, RawRow, HISTORY_TABLE, QUEUE_COLUMNS, QUEUE_TABLE};
use super::store::{QueueStore, StoreError};
use crate::lake::table::DataFile;
use crate::lake::LakeTable;

/// The application id under which a queue rewrite records the history version it
/// completed.
pub const HISTORY_DONE: &str = "ibq.history_version";

/// What a compaction did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompactReport {
    pub files_before: usize,
    pub files_after: usize,
    pub rows_kept: usize,
    pub rows_moved_to_history: usize,
    /// Rows an interrupted compaction had already appended to history (not appended again).
    pub rows_already_in_history: usize,
    pub rows_read: usize,
    /// Data files deleted from disk (removed from the table more than an hour earlier).
    pub files_deleted: usize,
    pub version: i64,
    pub millis: u64,
}

/// Ends the process at a named point when `IBQ_FAULT` names it, so tests can crash ibq
/// exactly there. Unset in normal use.
fn fault_point(name: &str) {
    if std::env::var("IBQ_FAULT").is_ok_and(|v| v == name) {
        eprintln!("IBQ_FAULT={name}: aborting");
        std::process::abort();
    }
}

fn corrupt(table: &str, message: String) -> StoreError {
    StoreError::Corrupt {
        table: table.into(),
        message,
    }
}

impl QueueStore {
    /// Rewrites the table to the newest row per request in one commit, after appending the
    /// superseded rows to the history table. Rows other writers append meanwhile are in
    /// files this commit does not remove, so they stay.
    pub async fn compact(&mut self) -> Result<CompactReport, StoreError> {
        let started = Instant::now();
        let files = self.table.files().await?;
        let mine: Vec<DataFile> = files
            .iter()
            .filter(|f| self.seen.contains(&f.path))
            .cloned()
            .collect();
        let rejected = ingest::rejected_rows(&self.state);
        let mut to_history: Vec<RawRow> = Vec::new();
        let mut kept_raw: Vec<RawRow> = Vec::new();
        let mut total = 0usize;
        // Ids whose unnumbered (other writer's) row the state already stands for: a second
        // unnumbered row with the same id is superseded, not kept.
        let mut unnumbered_kept = std::collections::HashSet::new();
        for batch in self.table.read(&mine).await? {
            for raw in rows::decode_raw(&batch).map_err(|m| corrupt(QUEUE_TABLE, m))? {
                total += 1;
                match rows::to_request(&raw) {
                    Ok(r) => {
                        let newest = self
                            .state
                            .get(&r.request_id)
                            .is_some_and(|n| n.seq == r.seq)
                            && (r.seq.is_some() || unnumbered_kept.insert(r.request_id));
                        if !newest {
                            to_history.push(raw);
                        }
                    }
                    Err(_) if rejected.contains(&raw.to_json().to_string()) => to_history.push(raw),
                    Err(_) => kept_raw.push(raw),
                }
            }
        }

        let mut history =
            LakeTable::open_or_create(&self.root, HISTORY_TABLE, QUEUE_COLUMNS).await?;
        let done = self.table.txn_version(HISTORY_DONE).await?;
        let already = self.unfinished_history(&history, done).await?;
        let mut already_count: HashMap<String, usize> = HashMap::new();
        for r in &already {
            *already_count.entry(r.to_json().to_string()).or_default() += 1;
        }
        let mut skipped = 0usize;
        to_history.retain(|r| match already_count.get_mut(&r.to_json().to_string()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                skipped += 1;
                false
            }
            _ => true,
        });
        if !to_history.is_empty() {
            history.append(&[rows::encode_raw(&to_history)]).await?;
            fault_point("after-history-append");
        }

        let mut current: Vec<Request> = self.state.all().map(|r| (**r).clone()).collect();
        current.sort_by_key(|r| r.seq);
        let mut batches = vec![rows::encode(&current)];
        if !kept_raw.is_empty() {
            batches.push(rows::encode_raw(&kept_raw));
        }
        let (version, added) = self
            .table
            .replace_tagged(&mine, &batches, Some((HISTORY_DONE, history.version())))
            .await?;
        self.seen.clear();
        self.seen.extend(added.into_iter().map(|f| f.path));
        self.table.checkpoint().await?;
        self.commits_since_checkpoint = 0;
        // Files compacted away more than an hour ago are no longer read by anyone.
        let files_deleted = match self.table.vacuum(Duration::hours(1)).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "vacuum of ib_request_queue failed; old files stay on disk until the next compaction");
                0
            }
        };
        let files_after = self.table.files().await?.len();
        Ok(CompactReport {
            files_before: files.len(),
            files_after,
            rows_kept: current.len() + kept_raw.len(),
            rows_moved_to_history: to_history.len() + skipped,
            rows_already_in_history: skipped,
            files_deleted,
            rows_read: total,
            version,
            millis: started.elapsed().as_millis() as u64,
        })
    }

    /// History rows appended after the version the last finished rewrite recorded: rows of
    /// compactions that crashed before their rewrite. Every history row when no rewrite
    /// recorded a version yet (a lake compacted by an older ibq).
    async fn unfinished_history(
        &self,
        history: &LakeTable,
        done: Option<i64>,
    ) -> Result<Vec<RawRow>, StoreError> {
        if done == Some(history.version()) {
            return Ok(Vec::new());
        }
        let now = history.files().await?;
        let before: std::collections::HashSet<String> = match done {
            Some(v) => history
                .files_at(v)
                .await?
                .into_iter()
                .map(|f| f.path)
                .collect(),
            None => Default::default(),
        };
        let new: Vec<DataFile> = now
            .into_iter()
            .filter(|f| !before.contains(&f.path))
            .collect();
        let mut out = Vec::new();
        for batch in history.read(&new).await? {
            out.extend(rows::decode_raw(&batch).map_err(|m| corrupt(HISTORY_TABLE, m))?);
        }
        Ok(out)
    }
}
