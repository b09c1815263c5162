//! The durable queue: the in-memory state backed by the append-only `ib_request_queue`
//! table. Every change is a full row; a group of changes is one commit; a change counts
//! only once its commit is done. Compaction keeps the table to the newest row per request
//! and moves superseded rows to `ib_request_queue_history`.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::model::{Actor, Event, Request, Status};
use super::params::Params;
use super::rows::{self, BadRow, HISTORY_TABLE, QUEUE_COLUMNS, QUEUE_TABLE};
use super::state::{Enqueued, NewRequest, QueueError, QueueState};
use crate::config::QueueConfig;
use crate::lake::table::DataFile;
use crate::lake::{LakeError, LakeTable};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("table {table}: {message}")]
    Corrupt { table: String, message: String },
    #[error("the lake {0} is in use by another ibq process that owns the queue (lock file {1}); open a console on it with `ibq --observe`")]
    Locked(PathBuf, PathBuf),
    #[error("cannot lock the lake: {0}")]
    Lock(std::io::Error),
}

/// What a compaction did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompactReport {
    pub files_before: usize,
    pub files_after: usize,
    pub rows_kept: usize,
    pub rows_moved_to_history: usize,
    pub rows_read: usize,
    /// Data files deleted from disk (removed from the table more than an hour earlier).
    pub files_deleted: usize,
    pub version: i64,
}

/// The lock file that makes one process the owner of the queue (the one that claims,
/// compacts and applies changes). The OS drops it when the process dies, even by kill -9.
pub struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    pub fn path(root: &Path) -> PathBuf {
        root.join(".ibq-owner.lock")
    }

    /// Takes the lock or says who holds the lake.
    pub fn acquire(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root).map_err(|source| {
            StoreError::Lake(LakeError::Folder {
                path: root.to_path_buf(),
                source,
            })
        })?;
        let path = Self::path(root);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::Lock)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(StoreError::Locked(root.to_path_buf(), path))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Lock(e)),
        }
    }
}

pub struct QueueStore {
    state: QueueState,
    table: LakeTable,
    root: PathBuf,
    config: QueueConfig,
    /// Data files whose rows are in `state` (ours, or other writers' already ingested).
    seen: HashSet<String>,
    commits_since_checkpoint: u64,
    /// Rows applied to the state but not yet committed, with what they replaced.
    staged: Vec<(Request, Uuid, Option<std::sync::Arc<Request>>)>,
    /// Time the last open took to replay the table.
    pub recovery: std::time::Duration,
    _lock: OwnerLock,
}

/// Rows another writer appended that could not be accepted, with the reason.
pub type Rejections = Vec<BadRow>;

impl QueueStore {
    /// Opens (or creates) the queue under `root` as its owner: replays the table, records
    /// a rejection for rows other writers appended that are not valid requests, and sends
    /// PROCESSING requests whose lease expired back to PENDING.
    pub async fn open(root: &Path, config: QueueConfig) -> Result<Self, StoreError> {
        let started = Instant::now();
        let lock = OwnerLock::acquire(root)?;
        let table = LakeTable::open_or_create(root, QUEUE_TABLE, QUEUE_COLUMNS).await?;
        let mut store = Self {
            state: QueueState::new(),
            table,
            root: root.to_path_buf(),
            config,
            seen: HashSet::new(),
            commits_since_checkpoint: 0,
            staged: Vec::new(),
            recovery: Default::default(),
            _lock: lock,
        };
        store.ingest_new_files().await?;
        let now = Utc::now();
        let expired = store.state.prepare_expired_leases(now);
        if !expired.is_empty() {
            tracing::info!(
                count = expired.len(),
                "released PROCESSING requests whose lease expired"
            );
            store.commit(expired).await?;
        }
        store.recovery = started.elapsed();
        Ok(store)
    }

    pub fn state(&self) -> &QueueState {
        &self.state
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lease_secs(&self) -> u64 {
        self.config.lease_secs
    }

    pub fn table_version(&self) -> i64 {
        self.table.version()
    }

    pub async fn live_files(&self) -> Result<usize, StoreError> {
        Ok(self.table.files().await?.len())
    }

    /// Applies `rows` (each already checked against the state) and commits them as one
    /// Delta commit. On a failed commit the state is rolled back and nothing is
    /// acknowledged. Returns the rows as stored (with their sequence numbers).
    pub async fn commit(&mut self, rows: Vec<Request>) -> Result<Vec<Request>, StoreError> {
        let stored: Vec<Request> = rows.into_iter().map(|r| self.stage(r)).collect();
        self.flush().await?;
        Ok(stored)
    }

    /// Applies one checked row to the state and holds it for the next `flush`, so later
    /// changes in the same group see it.
    pub fn stage(&mut self, row: Request) -> Request {
        let id = row.request_id;
        let (row, previous) = self.state.apply(row);
        self.staged.push((row.clone(), id, previous));
        row
    }

    /// Commits every staged row as one Delta commit; on failure the state is rolled back.
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut self.staged);
        let rows: Vec<Request> = staged.iter().map(|(r, _, _)| r.clone()).collect();
        match self.table.append(&[rows::encode(&rows)]).await {
            Ok((_, added)) => {
                self.seen.extend(added.into_iter().map(|f| f.path));
                self.after_commit().await;
                Ok(())
            }
            Err(e) => {
                for (_, id, previous) in staged.into_iter().rev() {
                    self.state.undo(id, previous);
                }
                Err(e.into())
            }
        }
    }

    /// Checkpoints and compaction are upkeep: their failure is logged, never lost data.
    async fn after_commit(&mut self) {
        self.commits_since_checkpoint += 1;
        if self.seen.len() >= self.config.compact_at_files {
            if let Err(e) = self.compact().await {
                tracing::warn!(error = %e, "compaction failed; the queue keeps working uncompacted");
            }
        } else if self.commits_since_checkpoint >= self.config.checkpoint_every {
            match self.table.checkpoint().await {
                Ok(()) => self.commits_since_checkpoint = 0,
                Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
            }
        }
    }

    /// Enqueues one request (or returns the open duplicate) and commits it.
    pub async fn enqueue(&mut self, new: NewRequest) -> Result<Enqueued, StoreError> {
        let outcome = self.state.prepare_enqueue(new, Utc::now())?;
        match outcome {
            Enqueued::Duplicate(r) => Ok(Enqueued::Duplicate(r)),
            Enqueued::Added(r) => {
                let mut stored = self.commit(vec![r]).await?;
                Ok(Enqueued::Added(stored.remove(0)))
            }
        }
    }

    /// Enqueues many requests in one commit; duplicates (also within the batch) are
    /// reported, not added.
    pub async fn enqueue_many(
        &mut self,
        news: Vec<NewRequest>,
    ) -> Result<Vec<Result<Enqueued, QueueError>>, StoreError> {
        let now = Utc::now();
        let mut outcomes = Vec::with_capacity(news.len());
        let mut added = Vec::new();
        let mut batch_keys = std::collections::HashMap::new();
        for new in news {
            match self.state.prepare_enqueue(new, now) {
                Ok(Enqueued::Added(r)) => {
                    let key = r.dedup_key();
                    if let Some(i) = batch_keys.get(&key) {
                        let first: &Request = &added[*i];
                        outcomes.push(Ok(Enqueued::Duplicate(first.clone())));
                    } else {
                        batch_keys.insert(key, added.len());
                        outcomes.push(Ok(Enqueued::Added(r.clone())));
                        added.push(r);
                    }
                }
                other => outcomes.push(other),
            }
        }
        let stored = self.commit(added).await?;
        let mut stored = stored.into_iter();
        for o in outcomes.iter_mut() {
            if let Ok(Enqueued::Added(r)) = o {
                *r = stored.next().expect("one stored row per added request");
            }
        }
        Ok(outcomes)
    }

    /// Applies one checked change per id; ids whose change is illegal get their error
    /// and the rest are committed together.
    pub async fn change_each(
        &mut self,
        ids: &[Uuid],
        prepare: impl Fn(&QueueState, Uuid) -> Result<Request, QueueError>,
    ) -> Result<Vec<Result<Request, QueueError>>, StoreError> {
        let mut results: Vec<Result<Request, QueueError>> = Vec::with_capacity(ids.len());
        let mut rows = Vec::new();
        for id in ids {
            match prepare(&self.state, *id) {
                Ok(r) => {
                    rows.push(r.clone());
                    results.push(Ok(r));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let mut stored = self.commit(rows).await?.into_iter();
        for r in results.iter_mut().flatten() {
            *r = stored.next().expect("one stored row per change");
        }
        Ok(results)
    }

    /// Claims up to `limit` due requests for `owner` and commits the claim.
    pub async fn claim(
        &mut self,
        limit: usize,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Request>, StoreError> {
        let lease = Duration::seconds(self.config.lease_secs as i64);
        let rows = self.state.prepare_claim(limit, owner, lease, now);
        self.commit(rows).await
    }

    /// Looks for data files other writers appended and takes their rows in. Returns how
    /// many requests were added.
    pub async fn poll_external(&mut self) -> Result<usize, StoreError> {
        self.table.refresh().await?;
        self.ingest_new_files().await
    }

    async fn ingest_new_files(&mut self) -> Result<usize, StoreError> {
        let files = self.table.files().await?;
        let new: Vec<DataFile> = files
            .into_iter()
            .filter(|f| !self.seen.contains(&f.path))
            .collect();
        if new.is_empty() {
            return Ok(0);
        }
        let batches = self.table.read(&new).await?;
        let before = self.state.len();
        let mut rejected = Vec::new();
        let mut rows = Vec::new();
        for batch in &batches {
            let decoded = rows::decode(batch).map_err(|message| StoreError::Corrupt {
                table: QUEUE_TABLE.into(),
                message,
            })?;
            for row in decoded {
                match row {
                    Ok(r) => rows.push(r),
                    Err(bad) => rejected.push(bad),
                }
            }
        }
        // Numbered rows (this process) in order; other writers' rows first.
        rows.sort_by_key(|r| r.seq);
        let now = Utc::now();
        let mut fix = Vec::new();
        for row in rows {
            let external_new = row.seq.is_none() && self.state.get(&row.request_id).is_none();
            if external_new {
                // Another program's request: its parameters are checked like ours.
                if let Err(e) = Params::parse(row.request_type, &row.parameters) {
                    rejected.push(BadRow {
                        request_id: Some(row.request_id),
                        raw: Default::default(),
                        message: e.to_string(),
                    });
                    self.state.replay(row.clone());
                    let mut r = row;
                    r.status = Status::Failed;
                    r.event = Event::Rejected;
                    r.error_message = Some(format!("rejected: {e}"));
                    r.updated_at = now;
                    r.changed_by = Actor::Worker;
                    fix.push(r);
                    continue;
                }
            }
            self.state.replay(row);
        }
        for bad in &rejected {
            tracing::warn!(request_id = ?bad.request_id, reason = %bad.message, "a row in {QUEUE_TABLE} is not a valid request");
        }
        self.seen.extend(new.into_iter().map(|f| f.path));
        if !fix.is_empty() {
            self.commit(fix).await?;
        }
        Ok(self.state.len().saturating_sub(before))
    }

    /// Rewrites the table to the newest row per request in one commit, after appending the
    /// superseded rows to the history table. Rows other writers append meanwhile are in
    /// files this commit does not remove, so they stay.
    pub async fn compact(&mut self) -> Result<CompactReport, StoreError> {
        let files = self.table.files().await?;
        let mine: Vec<DataFile> = files
            .iter()
            .filter(|f| self.seen.contains(&f.path))
            .cloned()
            .collect();
        let batches = self.table.read(&mine).await?;
        let mut superseded = Vec::new();
        let mut total = 0usize;
        for batch in &batches {
            for row in rows::decode(batch).map_err(|message| StoreError::Corrupt {
                table: QUEUE_TABLE.into(),
                message,
            })? {
                total += 1;
                if let Ok(r) = row {
                    let newest = self
                        .state
                        .get(&r.request_id)
                        .is_some_and(|n| n.seq == r.seq);
                    if !newest {
                        superseded.push(r);
                    }
                }
            }
        }
        if !superseded.is_empty() {
            let mut history =
                LakeTable::open_or_create(&self.root, HISTORY_TABLE, QUEUE_COLUMNS).await?;
            history.append(&[rows::encode(&superseded)]).await?;
        }
        let mut current: Vec<Request> = self.state.all().map(|r| (**r).clone()).collect();
        current.sort_by_key(|r| r.seq);
        let (version, added) = self.table.replace(&mine, &[rows::encode(&current)]).await?;
        self.seen.clear();
        self.seen.extend(added.into_iter().map(|f| f.path));
        self.table.checkpoint().await?;
        self.commits_since_checkpoint = 0;
        // Files compacted away more than an hour ago are no longer read by anyone.
        let files_deleted = match self.table.vacuum(Duration::hours(1)).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "vacuum of the queue table failed; old files stay on disk");
                0
            }
        };
        let files_after = self.table.files().await?.len();
        Ok(CompactReport {
            files_before: files.len(),
            files_after,
            rows_kept: current.len(),
            rows_moved_to_history: superseded.len(),
            files_deleted,
            rows_read: total,
            version,
        })
    }
}

/// Every stored row of one request, oldest first: its superseded rows from the history
/// table and the rows still in the queue table. Read-only; needs no lock.
pub async fn history(root: &Path, id: Uuid) -> Result<Vec<Request>, StoreError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for name in [HISTORY_TABLE, QUEUE_TABLE] {
        let Some(table) = LakeTable::open_existing(root, name, QUEUE_COLUMNS).await? else {
            continue;
        };
        for batch in table.read_all().await? {
            let decoded = rows::decode(&batch).map_err(|message| StoreError::Corrupt {
                table: name.into(),
                message,
            })?;
            for r in decoded.into_iter().flatten() {
                // A crash between the history append and the compaction commit can leave a
                // row in both tables; show it once.
                if r.request_id == id && seen.insert((r.seq, r.updated_at, r.event.as_str())) {
                    out.push(r);
                }
            }
        }
    }
    out.sort_by_key(|r| (r.seq, r.updated_at));
    Ok(out)
}

/// The current state of the queue without owning it (for `ibq list` while an engine runs).
pub async fn read_state(root: &Path) -> Result<QueueState, StoreError> {
    let mut state = QueueState::new();
    let Some(table) = LakeTable::open_existing(root, QUEUE_TABLE, QUEUE_COLUMNS).await? else {
        return Ok(state);
    };
    for batch in table.read_all().await? {
        let decoded = rows::decode(&batch).map_err(|message| StoreError::Corrupt {
            table: QUEUE_TABLE.into(),
            message,
        })?;
        for r in decoded.into_iter().flatten() {
            state.replay(r);
        }
    }
    Ok(state)
}

/// Appends a PENDING request as another writer would (no sequence number), for when a
/// running engine owns the queue: it picks the row up within its poll interval.
pub async fn append_as_guest(
    root: &Path,
    state: &QueueState,
    new: NewRequest,
) -> Result<Enqueued, StoreError> {
    let outcome = state.prepare_enqueue(new, Utc::now())?;
    if let Enqueued::Added(r) = &outcome {
        let mut table = LakeTable::open_or_create(root, QUEUE_TABLE, QUEUE_COLUMNS).await?;
        table
            .append(&[rows::encode(std::slice::from_ref(r))])
            .await?;
    }
    Ok(outcome)
}
