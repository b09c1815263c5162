//! The worker: claims due requests from the queue in order of service and runs them over
//! the one gateway connection, within the gateway's limits, writing results to Delta.
//!
//! It keeps in flight only what the message rate finishes within a few seconds (see
//! [`admission`]), never more than `batch_size` requests, and tops up as messages are
//! answered, so a backlog runs at the pace the limits allow (lines, message rate,
//! historical pacing) and requests finish in order of service, each soon after it starts.
//! It claims nothing while paused or disconnected; a request that loses its connection
//! goes back to PENDING without counting an attempt, and its next attempt uses the
//! contract lookups the lost one made (see [`memo`]).

pub mod admission;
pub mod contracts;
pub mod errors;
pub mod handlers;
pub mod ib;
pub mod market_data;
pub mod memo;
mod release;
pub mod results;
pub mod written;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinSet};
use uuid::Uuid;

use crate::engine::{GatewayState, WorkerStats};
use crate::gateway::pacing::HistoricalPacer;
use crate::gateway::{Gateway, LineBudget};
use crate::queue::service::{Change, QueueHandle};
use crate::queue::{Actor, QueueError, Request, RetryPolicy};
use admission::Ledger;
use errors::WorkError;
use handlers::ActiveLegs;
use memo::Memos;
use release::{release_all, release_by, started, ReleaseOrder};
use results::ResultTables;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub poll: Duration,
    pub batch_size: usize,
    pub policy: RetryPolicy,
    pub request_timeout: Duration,
    pub snapshot_timeout: Duration,
    /// Names this worker in the lease of the rows it claims.
    pub owner: String,
    /// How long a graceful stop waits for in-flight requests before releasing them.
    pub stop_deadline: Duration,
    /// `[market_data] type` and the session's choice per exchange, shared with the
    /// streaming manager.
    pub market_data: Arc<market_data::MarketDataChoice>,
    /// `[contracts]`: which contract each symbol means.
    pub contracts: Arc<contracts::ContractTable>,
    /// The engine's clock: stamps result rows and dates their work (fast under `--clock`).
    pub now: WorkerClock,
}

/// A source of the current time for the worker.
#[derive(Clone)]
pub struct WorkerClock(pub Arc<dyn Fn() -> chrono::DateTime<Utc> + Send + Sync>);

impl std::fmt::Debug for WorkerClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerClock({})", (self.0)())
    }
}

/// Counters shared with the engine's snapshot.
#[derive(Debug, Default)]
struct Counters {
    stats: WorkerStats,
    /// Completion times within the last hour, for requests per minute.
    completed: VecDeque<chrono::DateTime<Utc>>,
    /// When each running request's run started (its timeout counts from there).
    started: BTreeMap<Uuid, chrono::DateTime<Utc>>,
}

#[derive(Clone)]
pub struct WorkerHandle {
    paused: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    counters: Arc<Mutex<Counters>>,
    finished: watch::Receiver<bool>,
    market_data: Arc<market_data::MarketDataChoice>,
    releases: mpsc::Sender<ReleaseOrder>,
    queue: QueueHandle,
}

impl WorkerHandle {
    /// Abandons the runs of `ids` (their tasks are aborted, so their market-data lines are
    /// freed and their subscriptions cancelled) and puts them back to PENDING without
    /// counting an attempt, as `by`. An id this worker does not run is still released if it
    /// is PROCESSING, and refused with the reason otherwise.
    pub async fn release(
        &self,
        ids: Vec<Uuid>,
        by: Actor,
    ) -> Result<Vec<Result<Request, QueueError>>, String> {
        let (reply, answer) = oneshot::channel();
        let order = ReleaseOrder {
            ids: ids.clone(),
            by,
            reply,
        };
        if self.releases.send(order).await.is_err() {
            // The worker has stopped: nothing runs, the queue alone decides.
            let reason = crate::queue::state::RELEASED_BY_OPERATOR.to_string();
            return self.queue.change(ids, Change::ReleaseBy(reason, by)).await;
        }
        answer
            .await
            .map_err(|_| "the worker stopped before releasing".to_string())?
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    pub fn stats(&self) -> WorkerStats {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = c.stats.clone();
        s.paused = self.is_paused();
        s.started = c.started.clone();
        let now = Utc::now();
        let mut per_minute = vec![0u64; 60];
        for t in &c.completed {
            let age = (now - *t).num_minutes();
            if (0..60).contains(&age) {
                per_minute[59 - age as usize] += 1;
            }
        }
        s.completed_per_minute = per_minute;
        s.delayed_exchanges = self.market_data.delayed_exchanges();
        s
    }

    /// Stops claiming, waits for in-flight requests up to the deadline, releases the rest.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let mut finished = self.finished.clone();
        while !*finished.borrow_and_update() {
            if finished.changed().await.is_err() {
                break;
            }
        }
    }
}

struct Shared {
    queue: QueueHandle,
    gateway: Arc<Gateway>,
    lines: LineBudget,
    pacer: Arc<tokio::sync::Mutex<HistoricalPacer>>,
    results: Arc<ResultTables>,
    legs: Arc<dyn ActiveLegs>,
    settings: WorkerSettings,
    counters: Arc<Mutex<Counters>>,
    /// Messages of the requests in flight.
    ledger: Arc<Ledger>,
    /// Most messages the requests in flight may still have to send.
    budget: u32,
    /// Messages the last poll of every position took (0 = none ran yet).
    polled_positions: AtomicU32,
    /// Live or delayed market data, per exchange, for the session.
    market_data: Arc<market_data::MarketDataChoice>,
    memos: Memos,
}

/// What became of one request.
enum Outcome {
    Done(serde_json::Value),
    Failed(WorkError),
}

pub fn start(
    queue: QueueHandle,
    gateway: Arc<Gateway>,
    lines: LineBudget,
    results: Arc<ResultTables>,
    legs: Arc<dyn ActiveLegs>,
    settings: WorkerSettings,
) -> WorkerHandle {
    let (paused, paused_rx) = watch::channel(false);
    let (stop, stop_rx) = watch::channel(false);
    let (finished_tx, finished) = watch::channel(false);
    let (releases, releases_rx) = mpsc::channel(16);
    let counters = Arc::new(Mutex::new(Counters::default()));
    counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .stats
        .request_timeout_secs = settings.request_timeout.as_secs();
    let queue_handle = queue.clone();
    let gateway_rate = gateway.max_messages_per_sec();
    let pace = Arc::clone(gateway.pace());
    let budget = admission::budget(gateway_rate);
    let market_data = Arc::clone(&settings.market_data);
    let shared = Arc::new(Shared {
        queue,
        gateway,
        lines,
        pacer: Arc::new(tokio::sync::Mutex::new(HistoricalPacer::default())),
        results,
        legs,
        settings,
        counters: Arc::clone(&counters),
        budget,
        ledger: Arc::new(Ledger::new(admission::turns(gateway_rate), pace)),
        polled_positions: AtomicU32::new(0),
        market_data: Arc::clone(&market_data),
        memos: Memos::default(),
    });
    tokio::spawn(async move {
        run(shared, paused_rx, stop_rx, releases_rx).await;
        finished_tx.send_replace(true);
    });
    WorkerHandle {
        paused,
        stop,
        counters,
        finished,
        market_data,
        releases,
        queue: queue_handle,
    }
}

async fn run(
    shared: Arc<Shared>,
    mut paused: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    mut releases: mpsc::Receiver<ReleaseOrder>,
) {
    let s = &shared.settings;
    let immediate = shared.queue.immediate();
    let mut gateway_state = shared.gateway.state();
    let mut tick = tokio::time::interval(s.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Leases of running requests are renewed three times per lease, so the queue's sweep
    // frees only requests nobody runs.
    let renew_every = (shared.queue.lease() / 3).max(Duration::from_secs(1));
    let mut renew =
        tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight: JoinSet<(Uuid, Outcome)> = JoinSet::new();
    let mut running: HashMap<Uuid, Request> = HashMap::new();
    let mut aborts: HashMap<Uuid, AbortHandle> = HashMap::new();
    // True while the last claim came back full: more is due, top up as requests finish.
    let mut backlog = false;
    let mut batch_started: Option<(Instant, usize)> = None;
    let mut typical = admission::Typical::default();
    shared
        .counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .stats
        .running = true;

    loop {
        let room = admission::room(
            shared.ledger.load(),
            shared.budget,
            running.len(),
            s.batch_size,
            typical.get(),
        );
        // Not while IB's own connectivity is lost (1100): nothing would be answered.
        let want_claim = !*paused.borrow()
            && shared.gateway.client().is_some()
            && shared.gateway.current_state().is_connected()
            && room > 0;
        if want_claim && (backlog || running.is_empty()) {
            match shared.queue.claim(room, &s.owner).await {
                Ok(claimed) => {
                    backlog = claimed.len() == room;
                    if !claimed.is_empty() {
                        batch_started.get_or_insert((Instant::now(), 0)).1 += claimed.len();
                    }
                    for r in claimed {
                        let cost = admission::estimate(&r, known(&shared.polled_positions));
                        typical.observe(cost);
                        shared.ledger.open(r.request_id, cost);
                        aborts.insert(r.request_id, spawn_request(&shared, &mut in_flight, &r));
                        started(&shared, r.request_id, true);
                        running.insert(r.request_id, r);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming requests from ib_request_queue failed; nothing was claimed, the worker tries again at its next poll");
                    backlog = false;
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() {
                    break;
                }
            }
            _ = tick.tick() => {}
            _ = renew.tick(), if !running.is_empty() => {
                let ids: Vec<Uuid> = running.keys().copied().collect();
                let renewal = Change::RenewLease(s.owner.clone());
                if let Err(e) = shared.queue.change(ids, renewal).await {
                    tracing::warn!(error = %e, "renewing the leases of running requests in ib_request_queue failed; they keep running and the renewal is tried again");
                }
            }
            _ = immediate.notified() => backlog = true,
            _ = paused.changed() => {}
            _ = gateway_state.changed() => {
                // IB's connectivity lost (1100, a nightly reset): nothing in flight is
                // answered until 1101/1102, so what runs goes back to PENDING uncounted.
                let lost = match &*gateway_state.borrow_and_update() {
                    GatewayState::Degraded { code, .. } => Some(*code),
                    _ => None,
                };
                if let Some(code) = lost.filter(|_| !running.is_empty()) {
                    in_flight.abort_all();
                    aborts.clear();
                    release_all(
                        &shared,
                        &mut running,
                        format!("IB connectivity lost (IB {code}); released until it is restored"),
                    )
                    .await;
                }
            }
            _ = shared.ledger.lighter(), if backlog => {}
            Some(order) = releases.recv() => {
                release_by(&shared, &mut running, &mut aborts, order).await;
            }
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok((id, outcome)) = joined {
                    aborts.remove(&id);
                    if let Some(req) = running.remove(&id) {
                        finish(&shared, &req, outcome).await;
                    }
                }
                if running.is_empty() {
                    if let Some((t, n)) = batch_started.take() {
                        let mut c = shared.counters.lock().unwrap_or_else(|p| p.into_inner());
                        c.stats.last_batch_at = Some(Utc::now());
                        c.stats.last_batch_size = n;
                        c.stats.last_batch_ms = t.elapsed().as_millis() as u64;
                    }
                }
            }
        }
    }

    // Graceful stop: let what runs finish within the deadline, release the rest.
    let deadline = tokio::time::sleep(s.stop_deadline);
    tokio::pin!(deadline);
    while !in_flight.is_empty() {
        tokio::select! {
            _ = &mut deadline => break,
            Some(joined) = in_flight.join_next() => {
                if let Ok((id, outcome)) = joined {
                    if let Some(req) = running.remove(&id) {
                        finish(&shared, &req, outcome).await;
                    }
                }
            }
        }
    }
    in_flight.abort_all();
    if !running.is_empty() {
        let ids: Vec<Uuid> = running.keys().copied().collect();
        tracing::info!(
            count = ids.len(),
            "releasing in-flight requests at shutdown"
        );
        if let Err(e) = shared
            .queue
            .change(
                ids,
                Change::Release("worker stopped before finishing".into()),
            )
            .await
        {
            tracing::error!(error = %e, "releasing in-flight requests in ib_request_queue failed; they go back to PENDING when their leases expire");
        }
    }
    shared
        .counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .stats
        .running = false;
    shared
        .counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .started
        .clear();
}

fn spawn_request(
    shared: &Arc<Shared>,
    set: &mut JoinSet<(Uuid, Outcome)>,
    req: &Request,
) -> AbortHandle {
    let shared = Arc::clone(shared);
    let req = req.clone();
    set.spawn(async move {
        let id = req.request_id;
        let timeout = shared.settings.request_timeout;
        let outcome = match shared.gateway.client() {
            None => Outcome::Failed(WorkError::ConnectionLost("not connected".into())),
            Some(client) => {
                let now = (shared.settings.now.0)();
                let today = now.with_timezone(&chrono_tz::America::New_York);
                let ib = ib::Ib {
                    client,
                    lines: shared.lines.clone(),
                    pacer: Arc::clone(&shared.pacer),
                    snapshot_timeout: shared.settings.snapshot_timeout,
                    progress: shared.ledger.progress(id),
                    memo: shared
                        .memos
                        .for_request(id, today.date_naive(), Instant::now()),
                    market_data: Arc::clone(&shared.market_data),
                    contracts: Arc::clone(&shared.settings.contracts),
                    farms: shared.gateway.farms(),
                };
                let work = handlers::run(&ib, &shared.results, shared.legs.as_ref(), &req, now);
                match tokio::time::timeout(timeout, work).await {
                    Ok(Ok(data)) => Outcome::Done(data),
                    Ok(Err(e)) => Outcome::Failed(e),
                    Err(_) => Outcome::Failed(WorkError::Timeout(timeout.as_secs())),
                }
            }
        };
        (id, outcome)
    })
}

fn known(n: &AtomicU32) -> Option<u32> {
    Some(n.load(Ordering::Relaxed)).filter(|n| *n > 0)
}

async fn finish(shared: &Shared, req: &Request, outcome: Outcome) {
    let sent = shared.ledger.close(req.request_id);
    started(shared, req.request_id, false);
    match &outcome {
        Outcome::Done(_) => {
            shared.memos.forget(req.request_id);
            if admission::learns_cost(req) {
                shared.polled_positions.store(sent, Ordering::Relaxed);
            }
        }
        Outcome::Failed(e) if !e.retryable() => shared.memos.forget(req.request_id),
        // Released or retried: the next attempt may use what this one fetched.
        Outcome::Failed(_) => {}
    }
    // The IB code as its own field, so a grep of the log file finds every 162 or 200.
    let code = match &outcome {
        Outcome::Failed(WorkError::Ib { code, .. }) => Some(*code),
        _ => None,
    };
    let done = match &outcome {
        Outcome::Done(data) => written_text(data),
        Outcome::Failed(_) => String::new(),
    };
    let (change, label) = match outcome {
        Outcome::Done(mut data) => {
            // How long the successful attempt ran, claim to result, for the done view.
            let ran = (Utc::now() - req.updated_at).num_milliseconds().max(0);
            if let Some(fields) = data.as_object_mut() {
                fields.insert("duration_ms".into(), ran.into());
            }
            (Change::Succeed(data), "succeeded")
        }
        Outcome::Failed(WorkError::ConnectionLost(m)) => {
            (Change::Release(format!("connection lost: {m}")), "released")
        }
        Outcome::Failed(e) => {
            let retryable = e.retryable();
            (
                Change::Fail {
                    error: e.to_string(),
                    retryable,
                    policy: shared.settings.policy,
                },
                if retryable {
                    "failed (will retry)"
                } else {
                    "failed"
                },
            )
        }
    };
    let result = shared.queue.change(vec![req.request_id], change).await;
    let stored = match result {
        Ok(mut rows) => rows.pop().and_then(|r| r.ok()),
        Err(e) => {
            tracing::error!(request_id = %req.request_id, error = %e, "recording the outcome failed; the request goes back to PENDING when its lease expires and runs again");
            None
        }
    };
    let mut c = shared.counters.lock().unwrap_or_else(|p| p.into_inner());
    match label {
        "succeeded" => {
            c.stats.processed += 1;
            c.stats.succeeded += 1;
            let now = Utc::now();
            c.completed.push_back(now);
            while c
                .completed
                .front()
                .is_some_and(|t| (now - *t).num_minutes() >= 60)
            {
                c.completed.pop_front();
            }
        }
        "released" => c.stats.released += 1,
        _ => {
            c.stats.processed += 1;
            if stored
                .as_ref()
                .is_some_and(|r| r.status == crate::queue::Status::Pending)
            {
                c.stats.retried += 1;
            } else {
                c.stats.failed += 1;
            }
        }
    }
    drop(c);
    if let Some(r) = stored {
        // What happened to what first, the id after: a cut log line still tells the trader.
        let took = (Utc::now() - req.updated_at).num_milliseconds().max(0) as f64 / 1000.0;
        let what = format!("{} {}", r.request_type, crate::text::Clean(&r.symbol));
        let line = outcome_line(&what, r.error_message.as_deref(), label, &done, took);
        match r.status {
            crate::queue::Status::Failed => {
                tracing::warn!(request_id = %r.request_id, code, "{line}")
            }
            _ => tracing::info!(request_id = %r.request_id, code, status = %r.status, "{line}"),
        }
    }
}

/// What a result says was written: `84 rows → option_snapshots v123`.
fn written_text(data: &serde_json::Value) -> String {
    let table = data.get("table").and_then(|t| t.as_str()).unwrap_or("");
    match (data.get("rows"), data.get("version")) {
        (Some(rows), Some(v)) => {
            let s = if rows.as_u64() == Some(1) { "" } else { "s" };
            format!("{rows} row{s} → {table} v{v}")
        }
        _ => match data.get("note").and_then(|n| n.as_str()) {
            Some(note) => format!("{table}: {note}"),
            None => table.to_string(),
        },
    }
}

/// A log line about a finished request, leading with its type and symbol:
/// `option_chain SPY ok: 84 rows → option_snapshots v123 in 2.3s`.
fn outcome_line(what: &str, error: Option<&str>, label: &str, done: &str, took: f64) -> String {
    match label {
        "succeeded" => format!("{what} ok: {done} in {took:.1}s"),
        _ => match error {
            Some(e) => format!("{what} {label}: {}", crate::text::Clean(e)),
            None => format!("{what} {label}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_lines_lead_with_type_and_symbol() {
        let data = serde_json::json!({"table": "option_snapshots", "rows": 84, "version": 123});
        assert_eq!(
            outcome_line(
                "option_chain SPY",
                None,
                "succeeded",
                &written_text(&data),
                2.34
            ),
            "option_chain SPY ok: 84 rows → option_snapshots v123 in 2.3s"
        );
        assert_eq!(
            outcome_line(
                "market_bars IWM",
                Some("IB 162: no data"),
                "failed",
                "",
                0.0
            ),
            "market_bars IWM failed: IB 162: no data"
        );
        let one = serde_json::json!({"table": "futures_snapshots", "rows": 1, "version": 4});
        assert_eq!(written_text(&one), "1 row → futures_snapshots v4");
        let again = serde_json::json!({"table": "market_bars", "note": "already written"});
        assert_eq!(written_text(&again), "market_bars: already written");
    }
}
