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

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ingest;
use super::model::Request;
use super::retention;
use super::rows::{self, RawRow, HISTORY_COLUMNS, HISTORY_PARTITION, HISTORY_TABLE, QUEUE_TABLE};
use super::store::{QueueStore, StoreError};
use super::upkeep::{log_retention, merge_history, vacuum_history, QUEUE_VACUUM_RETENTION};
use crate::lake::table::DataFile;
use crate::lake::LakeTable;

/// The application id under which a queue rewrite records the history version it
/// completed.
pub const HISTORY_DONE: &str = "ibq.history_version";

/// The application id under which a queue rewrite records the next sequence number, so
/// numbering goes on from there after a restart even when the rows with the highest
/// numbers were archived.
pub const NEXT_SEQ: &str = "ibq.next_seq";

/// The history table gets a checkpoint once it is this many versions past the last one.
const HISTORY_CHECKPOINT_EVERY: i64 = 10;

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
    /// Finished requests older than `keep_finished_days` that left the queue table (with
    /// every row of their history) for the history table.
    pub requests_archived: usize,
    /// Files of closed days of the history table merged into one per day.
    pub history_files_merged: usize,
    /// Data files of the history table deleted from disk (merged away more than a day
    /// earlier).
    pub history_files_deleted: usize,
    /// Data files deleted from disk (removed from the table more than an hour earlier).
    pub files_deleted: usize,
    /// `_delta_log` entries of the queue table deleted (older than the log retention and
    /// covered by a later checkpoint).
    pub log_files_deleted: usize,
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
    /// files this commit does not remove, so they stay. Finished requests whose last change
    /// is older than `keep_finished_days` leave the table whole: every row of theirs goes
    /// to history and the state forgets them.
    pub async fn compact(&mut self) -> Result<CompactReport, StoreError> {
        self.compact_at(self.clock.now()).await
    }

    /// `compact` with `now` as the time retention counts from.
    pub async fn compact_at(&mut self, now: DateTime<Utc>) -> Result<CompactReport, StoreError> {
        let started = Instant::now();
        let cutoff = retention::cutoff(now, self.config.keep_finished_days);
        let mut archive: HashSet<Uuid> = retention::finished_before(&self.state, cutoff)
            .into_iter()
            .collect();
        // Archived requests whose newest row was read here (only those leave the table).
        let mut archive_found: HashSet<Uuid> = HashSet::new();
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
                    Ok(r) if archive.contains(&r.request_id) => {
                        if self
                            .state
                            .get(&r.request_id)
                            .is_some_and(|n| n.seq == r.seq)
                        {
                            archive_found.insert(r.request_id);
                        }
                        to_history.push(raw);
                    }
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

        // A request whose newest row is not in the files read here stays (its older rows,
        // superseded anyway, still go to history).
        archive.retain(|id| archive_found.contains(id));
        let mut history = LakeTable::open_partitioned(
            &self.root,
            HISTORY_TABLE,
            HISTORY_COLUMNS,
            &[HISTORY_PARTITION],
        )
        .await?;
        history.set_clock(std::sync::Arc::clone(&self.clock));
        let done = self.table.txn_version(HISTORY_DONE).await?;
        let already = self
            .unfinished_history(&history, done, &to_history, now)
            .await?;
        // The history table's upkeep runs only while no compaction is unfinished, and before
        // this one appends, so the version the rewrite records covers it.
        let history_upkeep = if done == Some(history.version()) {
            self.history_upkeep(&mut history, now).await
        } else {
            HistoryUpkeep::default()
        };
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
        let appended = !to_history.is_empty();
        if appended {
            history
                .append(&[rows::encode_history(&to_history, now)])
                .await?;
            fault_point("after-history-append");
        }

        let mut current: Vec<Request> = self
            .state
            .all()
            .filter(|r| !archive.contains(&r.request_id))
            .map(|r| (**r).clone())
            .collect();
        current.sort_by_key(|r| r.seq);
        let mut batches = vec![rows::encode(&current)];
        if !kept_raw.is_empty() {
            batches.push(rows::encode_raw(&kept_raw));
        }
        let (version, added) = self
            .table
            .replace_tagged(
                &mine,
                &batches,
                &[
                    (HISTORY_DONE, history.version()),
                    (NEXT_SEQ, self.state.next_seq()),
                ],
            )
            .await?;
        self.seen.clear();
        self.seen.extend(added.into_iter().map(|f| f.path));
        let archived: Vec<Uuid> = archive.iter().copied().collect();
        self.state.forget_all(&archived);
        if !archive.is_empty() {
            tracing::info!(
                count = archive.len(),
                "archived {} finished requests older than {} days to {HISTORY_TABLE}",
                archive.len(),
                self.config.keep_finished_days
            );
        }
        self.table.checkpoint().await?;
        self.commits_since_checkpoint = 0;
        // The handle adopts the checkpoint it just wrote, so the log entries cleaned next
        // are none it still reads (the vacuum reads the removals through it).
        if let Err(e) = self.table.refresh().await {
            tracing::warn!(error = %e, "reloading ib_request_queue after its checkpoint failed; it is reloaded at the next poll");
        }
        let log_files_deleted = self.clean_logs(&history, now).await;
        // Files compacted away more than an hour ago are no longer read by anyone.
        let files_deleted = match self.table.vacuum(QUEUE_VACUUM_RETENTION, now).await {
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
            requests_archived: archive.len(),
            history_files_merged: history_upkeep.files_merged,
            history_files_deleted: history_upkeep.files_deleted,
            files_deleted,
            log_files_deleted,
            rows_read: total,
            version,
            millis: started.elapsed().as_millis() as u64,
        })
    }

    /// Deletes expired `_delta_log` entries of the queue table (right after its checkpoint)
    /// and, once the history table is ten versions past its last checkpoint, checkpoints
    /// it and cleans its log up to the version the rewrite just recorded (a later
    /// compaction may need to read that one). Upkeep: a failure is logged, never an error.
    /// Returns the queue's deleted entries.
    async fn clean_logs(&self, history: &LakeTable, now: DateTime<Utc>) -> usize {
        let queue = match self
            .table
            .cleanup_expired_log(log_retention(&self.table), self.table.version(), now)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cleaning the queue's _delta_log failed; old log files stay");
                0
            }
        };
        let v = history.version();
        let last = crate::lake::upkeep::last_checkpoint_version(history.path()).unwrap_or(0);
        if v - last >= HISTORY_CHECKPOINT_EVERY {
            let cleaned = match history.checkpoint().await {
                Ok(()) => {
                    history
                        .cleanup_expired_log(log_retention(history), v, now)
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = cleaned {
                tracing::warn!(error = %e, "checkpoint or log cleanup of the history table failed");
            }
        }
        queue
    }

    /// The history table's upkeep in a compaction (`queue::upkeep`): closed days merged,
    /// files merged away more than a day ago deleted from disk. Upkeep: a failure is
    /// logged, never an error.
    async fn history_upkeep(&self, history: &mut LakeTable, now: DateTime<Utc>) -> HistoryUpkeep {
        let mut out = HistoryUpkeep::default();
        match merge_history(history, self.config.keep_finished_days, now).await {
            Ok((_, files)) => out.files_merged = files,
            Err(e) => {
                tracing::warn!(error = %e, "merging the history table's small files failed; they are merged at a later compaction")
            }
        }
        match vacuum_history(history, now).await {
            Ok(n) => out.files_deleted = n,
            Err(e) => {
                tracing::warn!(error = %e, "vacuum of the history table failed; merged-away files stay on disk until a later compaction")
            }
        }
        out
    }

    /// History rows appended after the version the last finished rewrite recorded: rows of
    /// compactions that crashed before their rewrite. Every history row when no rewrite
    /// recorded a version yet (a lake compacted by an older ibq).
    ///
    /// When the history's log no longer reaches that version (Delta's own log cleanup,
    /// which runs at a checkpoint, deletes entries older than its log retention, whatever
    /// version a reader recorded), the rows of the days `candidates` fall on are returned
    /// instead: a candidate equal to one of them is in history already. Without this, every
    /// later compaction would fail and the queue would grow unbounded.
    async fn unfinished_history(
        &self,
        history: &LakeTable,
        done: Option<i64>,
        candidates: &[RawRow],
        now: DateTime<Utc>,
    ) -> Result<Vec<RawRow>, StoreError> {
        if done == Some(history.version()) {
            return Ok(Vec::new());
        }
        let new = match files_after(history, done).await {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "the history table's log no longer holds the version the last compaction recorded; rows already in history are recognised by their content"
                );
                let days: HashSet<String> = candidates
                    .iter()
                    .map(|r| rows::history_date(r, now).to_string())
                    .collect();
                match history
                    .files_where(HISTORY_PARTITION, |d| d.is_some_and(|d| days.contains(d)))
                    .await?
                {
                    Some(files) => files,
                    None => history.files().await?,
                }
            }
        };
        let mut out = Vec::new();
        for batch in history.read(&new).await? {
            out.extend(rows::decode_raw(&batch).map_err(|m| corrupt(HISTORY_TABLE, m))?);
        }
        Ok(out)
    }
}

/// The history files appended after version `done` by commits that removed nothing (every
/// live file when `done` is `None`). A commit after `done` that removed files is the history
/// upkeep's merge (it runs only while nothing is unfinished, so it never merges an
/// unfinished append): the files it added hold rows that were there before.
async fn files_after(
    history: &LakeTable,
    done: Option<i64>,
) -> Result<Vec<DataFile>, crate::lake::LakeError> {
    let now = history.files().await?;
    let mut before: HashSet<String> = match done {
        Some(v) => history
            .files_at(v)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect(),
        None => Default::default(),
    };
    if let Some(v0) = done {
        let mut prev = before.clone();
        for v in v0 + 1..=history.version() {
            let at: HashSet<String> = history
                .files_at(v)
                .await?
                .into_iter()
                .map(|f| f.path)
                .collect();
            if prev.iter().any(|p| !at.contains(p)) {
                before.extend(at.difference(&prev).cloned());
            }
            prev = at;
        }
    }
    Ok(now
        .into_iter()
        .filter(|f| !before.contains(&f.path))
        .collect())
}

/// What the history table's upkeep did in one compaction.
#[derive(Debug, Default)]
struct HistoryUpkeep {
    files_merged: usize,
    files_deleted: usize,
}
