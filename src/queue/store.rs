//! The durable queue: the in-memory state backed by the append-only `ib_request_queue`
//! table. Every change is a full row; a group of changes is one commit; a change counts
//! only once its commit is done. Compaction (compact.rs) keeps the table to the newest row
//! per request and moves superseded rows to `ib_request_queue_history`; what other writers'
//! rows become is decided in ingest.rs; leases in lease.rs.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

pub use super::compact::CompactReport;
use super::ingest;
use super::lookup::archived_among;
pub use super::lookup::{archived_ids, history, read_archived, read_state};
use super::model::{Request, Status};
use super::retention;
use super::rows::{self, BadRow, QUEUE_COLUMNS, QUEUE_TABLE};
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
    pub(super) state: QueueState,
    pub(super) table: LakeTable,
    pub(super) root: PathBuf,
    pub(super) config: QueueConfig,
    /// Data files whose rows are in `state` (ours, or other writers' already ingested).
    pub(super) seen: HashSet<String>,
    pub(super) commits_since_checkpoint: u64,
    /// Rows applied to the state but not yet committed, with what they replaced.
    staged: Vec<(Request, Uuid, Option<std::sync::Arc<Request>>)>,
    /// Time the last open took to replay the table.
    pub recovery: std::time::Duration,
    /// PROCESSING requests a previous owner left, released on open, until each is
    /// claimed again (or otherwise leaves PENDING).
    orphans: HashSet<Uuid>,
    /// How many requests were orphaned on open, and when the open began.
    orphaned: usize,
    opened_at: Instant,
    /// Time from the start of the open until every orphan was claimed again.
    pub orphans_running_after: Option<std::time::Duration>,
    /// The calendar and clock market-hours windows are checked against.
    market: crate::market::Market,
    /// The clock the queue's rows are stamped with (the wall clock unless the caller stamps
    /// its rows on another and says so with `set_clock`): retention, removal stamps,
    /// vacuum and log cleanup measure ages on it.
    pub(super) clock: std::sync::Arc<dyn crate::market::clock::Clock>,
    _lock: OwnerLock,
}

/// Rows another writer appended that could not be accepted, with the reason.
pub type Rejections = Vec<BadRow>;

impl QueueStore {
    /// Opens (or creates) the queue under `root` as its owner: replays the table, records
    /// a rejection for rows other writers appended that are not valid requests, and sends
    /// every PROCESSING request back to PENDING: the owner lock proves that the engine
    /// that claimed it has stopped, so it is an orphan whatever its lease says.
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
            orphans: HashSet::new(),
            orphaned: 0,
            market: Default::default(),
            clock: std::sync::Arc::new(crate::market::clock::SystemClock),
            opened_at: started,
            orphans_running_after: None,
            _lock: lock,
        };
        // Numbering goes on past archived rows, also for rejections committed while the
        // table is taken in.
        if let Some(next) = store.table.txn_version(super::compact::NEXT_SEQ).await? {
            store.state.continue_seq_from(next);
        }
        store.ingest_new_files().await?;
        let orphans = store.state.prepare_release_orphans(Utc::now());
        if !orphans.is_empty() {
            let ids: HashSet<Uuid> = orphans.iter().map(|r| r.request_id).collect();
            store.commit(orphans).await?;
            store.orphaned = ids.len();
            store.orphans = ids;
            tracing::info!(
                count = store.orphaned,
                ms = started.elapsed().as_millis() as u64,
                "released {} orphaned PROCESSING requests in {} ms (the engine that claimed them stopped without an outcome)",
                store.orphaned,
                started.elapsed().as_millis()
            );
        }
        // A lake last run long ago (or by an ibq without retention) may hold finished
        // requests past their retention: they leave at once, so the state holds only live
        // and recent requests from now on.
        let cutoff = retention::cutoff(Utc::now(), store.config.keep_finished_days);
        if !retention::finished_before(&store.state, cutoff).is_empty() {
            if let Err(e) = store.compact().await {
                tracing::warn!(error = %e, "archiving finished requests at start failed; they stay in the queue until the next compaction");
            }
        }
        store.recovery = started.elapsed();
        Ok(store)
    }

    /// How many PROCESSING requests the open found orphaned and released.
    pub fn orphaned(&self) -> usize {
        self.orphaned
    }

    /// Releases PROCESSING requests whose lease ended (their worker stopped renewing, or
    /// their outcome could not be recorded). Returns how many.
    /// Checks market-hours windows on `market` (the engine's calendar and clock) from now on.
    pub fn set_market(&mut self, market: crate::market::Market) {
        self.market = market;
    }

    pub fn market(&self) -> &crate::market::Market {
        &self.market
    }

    /// Measures the queue's upkeep (retention, vacuum, log cleanup) and stamps its removals
    /// on `clock` from now on: for a caller that stamps the rows it commits with that clock
    /// (`enqueue_many_at` and the `prepare_*` times), such as a replay of past days.
    pub fn set_clock(&mut self, clock: std::sync::Arc<dyn crate::market::clock::Clock>) {
        self.table.set_clock(std::sync::Arc::clone(&clock));
        self.clock = clock;
    }

    /// Commits a `held` row for every PENDING request outside its market-hours window whose
    /// `next_attempt_at` is not yet the window's next start. Returns how many.
    pub async fn hold_outside_windows(&mut self) -> Result<usize, StoreError> {
        let rows = self
            .state
            .prepare_holds(Utc::now(), &self.market.calendar, self.market.now());
        let n = rows.len();
        if n > 0 {
            self.commit(rows).await?;
        }
        Ok(n)
    }

    pub async fn sweep_expired_leases(&mut self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let expired = self.state.prepare_expired_leases(now);
        if expired.is_empty() {
            return Ok(0);
        }
        let n = expired.len();
        self.commit(expired).await?;
        tracing::warn!(
            count = n,
            "released PROCESSING requests whose lease expired"
        );
        Ok(n)
    }

    /// Notes orphans that left PENDING; logs once every one is running again.
    fn track_orphans(&mut self, rows: &[Request]) {
        if self.orphans.is_empty() {
            return;
        }
        for r in rows {
            if r.status != Status::Pending {
                self.orphans.remove(&r.request_id);
            }
        }
        if self.orphans.is_empty() {
            let after = self.opened_at.elapsed();
            self.orphans_running_after = Some(after);
            tracing::info!(
                count = self.orphaned,
                ms = after.as_millis() as u64,
                "every orphaned request is running again {} ms after start ({} requests)",
                after.as_millis(),
                self.orphaned
            );
        }
    }

    pub fn state(&self) -> &QueueState {
        &self.state
    }

    /// See [`QueueState::cover_schedule_key`].
    pub fn cover_schedule_key(&mut self, key: String, id: Uuid) {
        self.state.cover_schedule_key(key, id);
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
                self.track_orphans(&rows);
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
                tracing::warn!(error = %e, "compacting ib_request_queue failed; the queue keeps working uncompacted and compaction is tried again");
            }
        } else if self.commits_since_checkpoint >= self.config.checkpoint_every {
            match self.table.checkpoint().await {
                Ok(()) => self.commits_since_checkpoint = 0,
                Err(e) => {
                    tracing::warn!(error = %e, "checkpointing ib_request_queue failed; the queue keeps working and checkpoints again after more commits")
                }
            }
        }
    }

    /// Enqueues one request (or returns the open duplicate) and commits it.
    pub async fn enqueue(&mut self, new: NewRequest) -> Result<Enqueued, StoreError> {
        let outcome = self.state.prepare_enqueue_at(
            new,
            Utc::now(),
            &self.market.calendar,
            self.market.now(),
        )?;
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
        self.enqueue_many_at(news, Utc::now()).await
    }

    /// `enqueue_many` with `now` as the time the requests are made (a replayed day).
    pub async fn enqueue_many_at(
        &mut self,
        news: Vec<NewRequest>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Enqueued, QueueError>>, StoreError> {
        let market_now = self.market.now();
        let mut outcomes = Vec::with_capacity(news.len());
        let mut added = Vec::new();
        let mut batch_keys = std::collections::HashMap::new();
        for new in news {
            let schedule_key = new.schedule_key.clone();
            match self
                .state
                .prepare_enqueue_at(new, now, &self.market.calendar, market_now)
            {
                Ok(Enqueued::Duplicate(r)) => {
                    if let Some(key) = schedule_key {
                        self.state.cover_schedule_key(key, r.request_id);
                    }
                    outcomes.push(Ok(Enqueued::Duplicate(r)));
                }
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
        let market_now = self.market.now();
        let rows = self.state.prepare_claim_at(
            limit,
            owner,
            lease,
            now,
            &self.market.calendar,
            market_now,
        );
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
        let (numbered, external, bad) = split(&batches, QUEUE_TABLE)?;
        for row in numbered {
            self.state.replay(row);
        }
        let now = Utc::now();
        let archived = archived_among(&self.root, &self.state, &external, now).await?;
        let triage = ingest::triage(&self.state, external, bad, &archived, now);
        for row in triage.accepted {
            self.state.replay(row);
        }
        for r in &triage.rejections {
            tracing::warn!(request_id = %r.request_id, reason = r.error_message.as_deref().unwrap_or(""), "a row another program appended to {QUEUE_TABLE} is not a valid request; recorded as a FAILED rejection");
        }
        // The files count as taken in only once their rejections are committed.
        if !triage.rejections.is_empty() {
            self.commit(triage.rejections).await?;
        }
        self.seen.extend(new.into_iter().map(|f| f.path));
        if triage.unreadable + triage.archived > 0 {
            // Rows that are not requests (or would reopen an archived one) leave the queue
            // table for the history table at once, so the documented readers never count
            // them as pending.
            match self.compact().await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "compacting ib_request_queue after a rejection failed; it is retried later")
                }
            }
        }
        Ok(self.state.len().saturating_sub(before))
    }
}

/// Decoded rows: numbered rows (this process) in order, other writers' rows, bad rows.
pub(super) type Split = (Vec<Request>, Vec<Request>, Vec<BadRow>);

pub(super) fn split(
    batches: &[deltalake::arrow::array::RecordBatch],
    table: &str,
) -> Result<Split, StoreError> {
    let mut numbered = Vec::new();
    let mut external = Vec::new();
    let mut bad = Vec::new();
    for batch in batches {
        let decoded = rows::decode(batch).map_err(|message| StoreError::Corrupt {
            table: table.into(),
            message,
        })?;
        for row in decoded {
            match row {
                Ok(r) if r.seq.is_some() => numbered.push(r),
                Ok(r) => external.push(r),
                Err(b) => bad.push(b),
            }
        }
    }
    numbered.sort_by_key(|r| r.seq);
    Ok((numbered, external, bad))
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
