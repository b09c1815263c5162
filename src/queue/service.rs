//! The queue as a service inside the engine: one task owns the `QueueStore`; the worker,
//! the scheduler and the console send it operations. Operations that arrive together are
//! grouped into one commit (group commit), and every caller hears back only after that
//! commit. A read-only view for the console is republished at most a few times a second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use uuid::Uuid;

use super::model::{Actor, Priority, Request, Status};
use super::state::{Enqueued, NewRequest, QueueError, QueueState, RetryPolicy, StatusCounts};
use super::store::{self, CompactReport, QueueStore};
use super::upkeep::QueueUpkeep;

/// A change to apply to each of a set of requests.
#[derive(Debug, Clone)]
pub enum Change {
    Retry(Actor),
    SetPriority(Priority, Actor),
    /// One step more urgent (`true`) or less urgent.
    Bump(bool, Actor),
    Cancel(Actor),
    /// FAILED → CANCELLED with the operator's reason.
    Dismiss(String, Actor),
    Succeed(serde_json::Value),
    Fail {
        error: String,
        retryable: bool,
        policy: RetryPolicy,
    },
    Release(String),
    /// PROCESSING → PENDING by `Actor`, without counting an attempt, with the reason.
    ReleaseBy(String, Actor),
    /// Extends the lease of requests the named worker still runs.
    RenewLease(String),
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum Op {
    Enqueue(Vec<NewRequest>, Reply<Vec<Result<Enqueued, QueueError>>>),
    Change(Vec<Uuid>, Change, Reply<Vec<Result<Request, QueueError>>>),
    Claim(usize, String, Reply<Vec<Request>>),
    HasScheduleKey(String, oneshot::Sender<bool>),
    ScheduleStatuses(Vec<String>, oneshot::Sender<Vec<Option<Status>>>),
    Compact(Reply<CompactReport>),
    Upkeep(Reply<QueueUpkeep>),
    Stop(oneshot::Sender<()>),
}

/// What the console shows of the queue.
#[derive(Debug, Clone, Default)]
pub struct QueueView {
    pub generation: u64,
    pub counts: StatusCounts,
    pub pending: Arc<[Arc<Request>]>,
    pub processing: Arc<[Arc<Request>]>,
    pub failed: Arc<[Arc<Request>]>,
    /// The most recently finished SUCCESS requests, newest first, at most [`DONE_SHOWN`].
    pub done: Arc<[Arc<Request>]>,
}

/// How many of the latest successes the view carries (the count of all is in `counts`).
pub const DONE_SHOWN: usize = 500;

impl QueueView {
    pub fn of(state: &QueueState) -> Self {
        Self {
            generation: state.generation(),
            counts: state.counts(),
            pending: state.pending().cloned().collect(),
            processing: state.processing().cloned().collect(),
            failed: state.failed().cloned().collect(),
            done: state.succeeded().take(DONE_SHOWN).cloned().collect(),
        }
    }
}

/// A cheap handle to the queue service.
#[derive(Clone)]
pub struct QueueHandle {
    tx: mpsc::Sender<Op>,
    view: watch::Receiver<Arc<QueueView>>,
    /// Notified when a due priority-1 request was committed: the worker claims at once.
    immediate: Arc<Notify>,
    root: PathBuf,
    /// True once the service task has ended and the store (with its owner lock) is gone.
    finished: watch::Receiver<bool>,
    /// Set when commits fail in a way that will not pass by itself (see [`CommitHealth`]).
    broken: watch::Receiver<Option<String>>,
    lease: Duration,
}

const STOPPED: &str = "the queue service has stopped";

impl QueueHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| STOPPED.to_string())?;
        rx.await.map_err(|_| STOPPED.to_string())?
    }

    pub async fn enqueue(
        &self,
        news: Vec<NewRequest>,
    ) -> Result<Vec<Result<Enqueued, QueueError>>, String> {
        self.ask(|r| Op::Enqueue(news, r)).await
    }

    pub async fn change(
        &self,
        ids: Vec<Uuid>,
        change: Change,
    ) -> Result<Vec<Result<Request, QueueError>>, String> {
        self.ask(|r| Op::Change(ids, change, r)).await
    }

    pub async fn claim(&self, limit: usize, owner: &str) -> Result<Vec<Request>, String> {
        let owner = owner.to_string();
        self.ask(|r| Op::Claim(limit, owner, r)).await
    }

    pub async fn compact(&self) -> Result<CompactReport, String> {
        self.ask(Op::Compact).await
    }

    /// Keeps the queue and history tables up (`queue::upkeep`) after what is pending is
    /// committed: old files and expired log entries leave even when nothing is written.
    pub async fn upkeep(&self) -> Result<QueueUpkeep, String> {
        self.ask(Op::Upkeep).await
    }

    pub async fn has_schedule_key(&self, key: &str) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Op::HasScheduleKey(key.to_string(), tx))
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// The status of the request carrying each scheduler occurrence key (`None`: no request
    /// has it), in the order asked; empty when the service has stopped.
    pub async fn schedule_statuses(&self, keys: Vec<String>) -> Vec<Option<Status>> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::ScheduleStatuses(keys, tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The whole stored history of one request (read from the tables, not the service).
    pub async fn history(&self, id: Uuid) -> Result<Vec<Request>, String> {
        store::history(&self.root, id)
            .await
            .map_err(|e| e.to_string())
    }

    pub fn view(&self) -> watch::Receiver<Arc<QueueView>> {
        self.view.clone()
    }

    pub fn immediate(&self) -> Arc<Notify> {
        Arc::clone(&self.immediate)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Completes once commits to the queue table fail in a way that will not pass by itself
    /// (a full disk, a read-only or forbidden folder, or several failures in a row), with
    /// what failed. Nothing acknowledged is lost: a failed commit acknowledges nothing.
    pub async fn broken(&self) -> String {
        let mut broken = self.broken.clone();
        loop {
            if let Some(reason) = broken.borrow_and_update().clone() {
                return reason;
            }
            if broken.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// How long a claim leases a request; a worker renews well within it.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Commits what is pending and stops the service; returns once the store is closed and
    /// its owner lock released, so another owner can open the lake at once.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let mut finished = self.finished.clone();
        while !*finished.borrow_and_update() {
            if finished.changed().await.is_err() {
                break;
            }
        }
    }
}

/// Starts the service on an opened store.
pub fn start(store: QueueStore, poll_external: Duration) -> QueueHandle {
    let (tx, rx) = mpsc::channel(1024);
    let (view_tx, view) = watch::channel(Arc::new(QueueView::of(store.state())));
    let immediate = Arc::new(Notify::new());
    let root = store.root().to_path_buf();
    let (finished_tx, finished) = watch::channel(false);
    let (broken_tx, broken) = watch::channel(None);
    let lease = Duration::from_secs(store.lease_secs());
    let task_immediate = Arc::clone(&immediate);
    tokio::spawn(async move {
        let health = CommitHealth {
            in_row: 0,
            broken: broken_tx,
        };
        // `run` owns the store: when it returns, the store and its lock are dropped.
        run(store, rx, view_tx, task_immediate, poll_external, health).await;
        finished_tx.send_replace(true);
    });
    QueueHandle {
        tx,
        view,
        immediate,
        root,
        finished,
        broken,
        lease,
    }
}

/// Commits failing in a row, after which the queue counts as broken.
const MAX_FAILED_COMMITS: u32 = 3;

/// Watches the outcome of commits: every failure is logged as an error; one whose cause is
/// the storage itself (no space, read-only, forbidden), or [`MAX_FAILED_COMMITS`] in a row,
/// marks the queue broken so the engine can stop instead of running on while every change
/// is refused.
struct CommitHealth {
    in_row: u32,
    broken: watch::Sender<Option<String>>,
}

impl CommitHealth {
    fn record(&mut self, result: &Result<(), String>) {
        match result {
            Ok(()) => {
                if self.in_row > 0 {
                    tracing::info!(failed_before = self.in_row, "queue commits work again");
                }
                self.in_row = 0;
            }
            Err(e) => {
                self.in_row += 1;
                tracing::error!(
                    failures_in_row = self.in_row,
                    error = %e,
                    "a queue commit failed: its changes were refused, nothing acknowledged is lost"
                );
                let storage = crate::lake::table::storage_cause(e).is_some();
                if (storage || self.in_row >= MAX_FAILED_COMMITS) && self.broken.borrow().is_none()
                {
                    self.broken.send_replace(Some(format!(
                        "commits to the queue fail ({} in a row): {e}",
                        self.in_row
                    )));
                }
            }
        }
    }
}

/// Most operations grouped into one commit.
const MAX_GROUP: usize = 512;
/// Times the service yields, finding nothing new, before it commits what it has gathered.
const GATHER_YIELDS: usize = 3;

async fn run(
    mut store: QueueStore,
    mut rx: mpsc::Receiver<Op>,
    view_tx: watch::Sender<Arc<QueueView>>,
    immediate: Arc<Notify>,
    poll_external: Duration,
    mut health: CommitHealth,
) {
    let mut poll = tokio::time::interval(poll_external.max(Duration::from_millis(100)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut publish = tokio::time::interval(Duration::from_millis(200));
    let mut published = store.state().generation();
    loop {
        tokio::select! {
            op = rx.recv() => {
                let Some(op) = op else { break };
                let mut group = vec![op];
                // Callers answered by the last commit are sending their next operations right
                // now; yielding a few times lets them land in this group instead of the next.
                let mut idle_yields = 0;
                while group.len() < MAX_GROUP && idle_yields < GATHER_YIELDS {
                    match rx.try_recv() {
                        Ok(op) => group.push(op),
                        Err(_) => {
                            idle_yields += 1;
                            tokio::task::yield_now().await;
                        }
                    }
                }
                if !serve(&mut store, group, &immediate, &mut health).await {
                    break;
                }
            }
            _ = poll.tick() => {
                if let Err(e) = store.sweep_expired_leases(Utc::now()).await {
                    tracing::warn!(error = %e, "releasing expired leases in ib_request_queue failed; retried at the next poll");
                }
                match store.poll_external().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(count = n, "took in requests other programs appended");
                        if store.state().has_due_immediate(Utc::now()) {
                            immediate.notify_one();
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reading rows other programs appended to ib_request_queue failed; they are read again at the next poll"),
                }
                if let Err(e) = store.hold_outside_windows().await {
                    tracing::warn!(error = %e, "recording in ib_request_queue when held requests' windows open failed; retried at the next poll");
                }
            }
            _ = publish.tick() => {
                let g = store.state().generation();
                if g != published {
                    published = g;
                    view_tx.send_replace(Arc::new(QueueView::of(store.state())));
                }
            }
        }
    }
    if let Err(e) = store.flush().await {
        tracing::error!(error = %e, "the final commit of ib_request_queue failed; its changes were not acknowledged, and requests still marked PROCESSING are released at the next start");
    }
}

/// Serves one group of operations with one commit. Returns false when asked to stop.
async fn serve(
    store: &mut QueueStore,
    group: Vec<Op>,
    immediate: &Notify,
    health: &mut CommitHealth,
) -> bool {
    let now = Utc::now();
    let lease = i64::try_from(store.lease_secs())
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::MAX);
    enum Done {
        Enqueue(
            Reply<Vec<Result<Enqueued, QueueError>>>,
            Vec<Result<Enqueued, QueueError>>,
        ),
        Change(
            Reply<Vec<Result<Request, QueueError>>>,
            Vec<Result<Request, QueueError>>,
        ),
        Claim(Reply<Vec<Request>>, Vec<Request>),
    }
    let mut done = Vec::with_capacity(group.len());
    let mut stop = None;
    let mut compacts = Vec::new();
    let mut upkeeps = Vec::new();
    for op in group {
        match op {
            Op::Enqueue(news, reply) => {
                let mut out = Vec::with_capacity(news.len());
                for new in news {
                    // Checked against the state as this group has already changed it, so
                    // duplicates within one group are caught too.
                    let (calendar, market_now) = (&store.market().calendar, store.market().now());
                    let key = new.schedule_key.clone();
                    out.push(
                        match store
                            .state()
                            .prepare_enqueue_at(new, now, calendar, market_now)
                        {
                            Ok(Enqueued::Added(r)) => Ok(Enqueued::Added(store.stage(r))),
                            Ok(Enqueued::Duplicate(r)) => {
                                // A scheduler slot that comes while its last poll still
                                // waits is served by that poll, not missed.
                                if let Some(key) = key {
                                    store.cover_schedule_key(key, r.request_id);
                                }
                                Ok(Enqueued::Duplicate(r))
                            }
                            other => other,
                        },
                    );
                }
                done.push(Done::Enqueue(reply, out));
            }
            Op::Change(ids, change, reply) => {
                let out = ids
                    .into_iter()
                    .map(|id| {
                        prepare_change(store.state(), id, &change, lease, now)
                            .map(|r| store.stage(r))
                    })
                    .collect();
                done.push(Done::Change(reply, out));
            }
            Op::Claim(limit, owner, reply) => {
                let (calendar, market_now) = (&store.market().calendar, store.market().now());
                let rows = store
                    .state()
                    .prepare_claim_at(limit, &owner, lease, now, calendar, market_now);
                let rows = rows.into_iter().map(|r| store.stage(r)).collect();
                done.push(Done::Claim(reply, rows));
            }
            Op::HasScheduleKey(key, reply) => {
                let _ = reply.send(store.state().has_schedule_key(&key));
            }
            Op::ScheduleStatuses(keys, reply) => {
                let state = store.state();
                let _ = reply.send(keys.iter().map(|k| state.schedule_status(k)).collect());
            }
            Op::Compact(reply) => compacts.push(reply),
            Op::Upkeep(reply) => upkeeps.push(reply),
            Op::Stop(reply) => stop = Some(reply),
        }
    }
    let staged = done.iter().any(|d| match d {
        Done::Enqueue(_, out) => out.iter().any(|o| matches!(o, Ok(Enqueued::Added(_)))),
        Done::Change(_, out) => out.iter().any(Result::is_ok),
        Done::Claim(_, out) => !out.is_empty(),
    });
    let committed = store.flush().await.map_err(|e| e.to_string());
    if staged {
        health.record(&committed);
    }
    if committed.is_ok() && store.state().has_due_immediate(now) {
        immediate.notify_one();
    }
    for d in done {
        match d {
            Done::Enqueue(reply, out) => {
                let _ = reply.send(committed.clone().map(|_| out));
            }
            Done::Change(reply, out) => {
                let _ = reply.send(committed.clone().map(|_| out));
            }
            Done::Claim(reply, out) => {
                let _ = reply.send(committed.clone().map(|_| out));
            }
        }
    }
    for reply in compacts {
        let _ = reply.send(store.compact().await.map_err(|e| e.to_string()));
    }
    for reply in upkeeps {
        let _ = reply.send(store.upkeep().await.map_err(|e| e.to_string()));
    }
    match stop {
        Some(reply) => {
            let _ = reply.send(());
            false
        }
        None => true,
    }
}

fn prepare_change(
    state: &QueueState,
    id: Uuid,
    change: &Change,
    lease: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Request, QueueError> {
    match change {
        Change::Retry(by) => state.prepare_retry(id, *by, now),
        Change::SetPriority(p, by) => state.prepare_reprioritize(id, *p, *by, now),
        Change::Bump(up, by) => {
            let current = state.get(&id).ok_or(QueueError::NotFound(id))?.priority;
            let p = if *up {
                current.raised()
            } else {
                current.lowered()
            };
            state.prepare_reprioritize(id, p, *by, now)
        }
        Change::Cancel(by) => state.prepare_cancel(id, *by, now),
        Change::Dismiss(reason, by) => state.prepare_dismiss(id, reason, *by, now),
        Change::Succeed(data) => state.prepare_succeed(id, data.clone(), now),
        Change::Fail {
            error,
            retryable,
            policy,
        } => state.prepare_fail(id, error, *retryable, policy, rand::random::<f64>(), now),
        Change::Release(reason) => state.prepare_release(id, reason, now),
        Change::ReleaseBy(reason, by) => state.prepare_release_by(id, reason, *by, now),
        Change::RenewLease(owner) => state.prepare_renew(id, owner, lease, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> (CommitHealth, watch::Receiver<Option<String>>) {
        let (broken, rx) = watch::channel(None);
        (CommitHealth { in_row: 0, broken }, rx)
    }

    #[test]
    fn a_storage_failure_breaks_the_queue_at_once() {
        let (mut h, rx) = health();
        h.record(&Err(
            "table ib_request_queue at /x: no space left on device: … (os error 28)".into(),
        ));
        let reason = rx.borrow().clone().expect("broken");
        assert!(reason.contains("no space left on device"), "{reason}");
        assert!(reason.contains("1 in a row"), "{reason}");
    }

    #[test]
    fn other_failures_break_it_only_three_in_a_row() {
        let (mut h, rx) = health();
        let conflict: Result<(), String> = Err("commit failed: version 7 already exists".into());
        h.record(&conflict);
        h.record(&conflict);
        h.record(&Ok(()));
        h.record(&conflict);
        h.record(&conflict);
        assert!(
            rx.borrow().is_none(),
            "a success in between resets the count"
        );
        h.record(&conflict);
        let reason = rx.borrow().clone().expect("broken after three in a row");
        assert!(reason.contains("3 in a row"), "{reason}");
    }
}
