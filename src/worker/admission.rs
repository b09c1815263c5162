//! How much work the worker keeps in flight: only what the gateway's limits can finish
//! within a short horizon.
//!
//! Every request is estimated in gateway messages before it starts (an option chain is a
//! contract lookup, an underlying snapshot, the chain definition, the option lookup and one
//! snapshot per option). The [`Ledger`] follows each running request's messages as they
//! are answered; its *load* is the messages still to go. The worker claims more only while
//! the load is under what the message rate sends in [`HORIZON`], so a backlog is served a
//! few requests at a time, in order, each finishing within seconds of its start, instead
//! of every request progressing at once and none finishing before a disconnect throws
//! them all back (the client's rate limiter is first come, first served: messages of
//! requests started later queue behind those of requests started earlier).
//!
//! Within that, messages are handed to the client in order of service too: a request's
//! message waits for a [`Turn`], and turns go to the earliest admitted request first, so
//! the oldest request is never held up behind the snapshots of younger ones (the client's
//! rate limiter sends in the order it is called). Only a few turns exist: enough to keep
//! the rate limiter busy, few enough that it never holds a long queue.
//!
//! A historical request waiting for IB's pacing sends nothing meanwhile, so its messages
//! do not count while it waits.
//!
//! Every message, cancels included, then waits for its [`Pace`]: the worker hands the client
//! no more than the client's rate limiter sends in steady state. The limiter holds requests
//! back but sends a cancel at once (ibapi 5.5 `transport/rate_limiter.rs`: "Cancels ... count
//! against the budget but are sent at once"); were requests queued in it, a cancel would go
//! out ahead of them and the gateway would count more than its 50 a second (error 100).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

use crate::gateway::pace::Pace;
use crate::queue::params::Params;
use crate::queue::{Request, RequestType};

/// Work in flight is what the message rate finishes within this long.
pub const HORIZON: Duration = Duration::from_secs(3);

/// Messages of one quote: the streaming request and its cancel.
const QUOTE: u32 = 2;

/// Messages a position poll of every position is assumed to take before one has run.
const POSITIONS_GUESS: u32 = 10;

/// The messages the work in flight may still have to send.
pub fn budget(max_messages_per_sec: u32) -> u32 {
    (max_messages_per_sec.max(1) as f64 * HORIZON.as_secs_f64()).ceil() as u32
}

/// Messages that may be handed to the client at once: a quarter second of the rate, at
/// least four.
pub fn turns(max_messages_per_sec: u32) -> usize {
    (max_messages_per_sec as usize / 4).max(4)
}

/// Gateway messages `req` is expected to send. `polled_positions` is what the last
/// poll of every position took, when one has run.
pub fn estimate(req: &Request, polled_positions: Option<u32>) -> u32 {
    let Ok(params) = Params::parse(req.request_type, &req.parameters) else {
        // It fails before sending anything.
        return 0;
    };
    match params {
        Params::OptionChain(p) => {
            let rights = if matches!(p.rights.as_str(), "C" | "P") {
                1
            } else {
                2
            };
            // Underlying lookup, its quote, the chain definition, the options lookup, then
            // one quote per option (strikes on each side and the one at the money); a quote
            // is two messages, its request and its cancel.
            3 + QUOTE * (1 + (2 * p.strikes + 1) * rights)
        }
        // The month's lookup and its quote.
        Params::FuturesSnapshot(_) => 1 + QUOTE,
        // Up to three lookups (stock, index, futures) and the bars.
        Params::MarketBars(_) => 3,
        Params::PositionUpdate(p) => match p.conid {
            // The positions request and its cancel, and the contract's quote.
            Some(_) => 2 + QUOTE,
            None => polled_positions.unwrap_or(POSITIONS_GUESS).max(1),
        },
        // Reads the lake only.
        Params::DerivedStats(_) => 0,
    }
}

/// How many requests to claim now: none while the load fills the budget or `batch_size`
/// requests run, at least one when nothing runs (a request larger than the budget still
/// runs, alone), else as many as fit if they cost `typical` messages each.
pub fn room(load: u32, budget: u32, running: usize, batch_size: usize, typical: u32) -> usize {
    if running >= batch_size {
        return 0;
    }
    if running == 0 {
        return ((budget / typical.max(1)) as usize).clamp(1, batch_size);
    }
    if load >= budget {
        return 0;
    }
    (((budget - load) / typical.max(1)) as usize).clamp(1, batch_size - running)
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    /// Order of admission: earlier requests get their turns first.
    rank: u64,
    estimate: u32,
    /// Messages handed to the client.
    started: u32,
    /// Messages answered (or abandoned).
    answered: u32,
    /// Waiting for historical pacing: sends nothing meanwhile.
    waiting: bool,
}

impl Entry {
    /// Messages still to go: the rest of the estimate, or at least those sent and not
    /// yet answered (a request may take more than estimated).
    fn outstanding(&self) -> u32 {
        if self.waiting {
            return 0;
        }
        self.estimate
            .saturating_sub(self.answered)
            .max(self.started.saturating_sub(self.answered))
    }
}

/// The messages of every running request.
#[derive(Debug)]
pub struct Ledger {
    entries: Mutex<HashMap<Uuid, Entry>>,
    /// Woken when the load drops.
    lighter: Notify,
    next_rank: AtomicU64,
    turns: Arc<Turns>,
    pace: Arc<Pace>,
}

/// The rank of messages that go before every request's: cancels, which free lines.
const URGENT: u64 = 0;

impl Ledger {
    /// A ledger handing out `turns` turns at once, its messages spaced by `pace` (the
    /// connection's, shared with every other sender of messages).
    pub fn new(turns: usize, pace: Arc<Pace>) -> Self {
        Self {
            entries: Mutex::default(),
            lighter: Notify::new(),
            next_rank: AtomicU64::new(URGENT + 1),
            turns: Turns::new(turns),
            pace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        // Every update is one statement on one entry: a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request starts, expected to send `estimate` messages.
    pub fn open(&self, id: Uuid, estimate: u32) {
        let rank = self.next_rank.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id,
            Entry {
                rank,
                estimate,
                ..Entry::default()
            },
        );
    }

    /// A request ended; returns the messages it sent.
    pub fn close(&self, id: Uuid) -> u32 {
        let sent = self.lock().remove(&id).map_or(0, |e| e.started);
        self.lighter.notify_one();
        sent
    }

    /// Messages the running requests still have to send.
    pub fn load(&self) -> u32 {
        self.lock().values().map(Entry::outstanding).sum()
    }

    /// Notified when the load drops (a message answered, a request ended).
    pub async fn lighter(&self) {
        self.lighter.notified().await
    }

    /// The view of one request's messages, for the code that sends them.
    pub fn progress(self: &Arc<Self>, id: Uuid) -> Progress {
        Progress {
            ledger: Arc::clone(self),
            id,
        }
    }

    fn rank(&self, id: Uuid) -> u64 {
        self.lock().get(&id).map_or(u64::MAX, |e| e.rank)
    }

    fn update(&self, id: Uuid, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.lock().get_mut(&id) {
            f(e);
        }
    }
}

/// One request's messages in the ledger.
#[derive(Debug, Clone)]
pub struct Progress {
    ledger: Arc<Ledger>,
    id: Uuid,
}

impl Progress {
    /// Waits for the request's turn to hand a message to the client. The message counts
    /// as answered when the guard drops (answered, failed or abandoned alike); the turn is
    /// given back then, or at [`Message::sent`].
    pub async fn message(&self) -> Message {
        self.message_ranked(self.ledger.rank(self.id)).await
    }

    /// A message that goes before every request's waiting for a turn: a cancel, which frees
    /// a line the next quote waits for.
    pub async fn urgent_message(&self) -> Message {
        self.message_ranked(URGENT).await
    }

    /// The request's turn alone, for a message that may not go yet (a quote without a
    /// free line gives it back: see [`Progress::message_on`]).
    pub async fn turn(&self) -> Turn {
        self.ledger.turns.take(self.ledger.rank(self.id)).await
    }

    /// A message on a turn taken with [`Progress::turn`].
    pub async fn message_on(&self, turn: Turn) -> Message {
        self.ledger.pace.wait().await;
        self.ledger.update(self.id, |e| e.started += 1);
        Message {
            progress: self.clone(),
            turn: Some(turn),
        }
    }

    async fn message_ranked(&self, rank: u64) -> Message {
        let turn = self.ledger.turns.take(rank).await;
        self.ledger.pace.wait().await;
        self.ledger.update(self.id, |e| e.started += 1);
        Message {
            progress: self.clone(),
            turn: Some(turn),
        }
    }

    /// A message the estimate counted is not needed (its answer was kept from before).
    pub fn skipped(&self) {
        self.ledger
            .update(self.id, |e| e.estimate = e.estimate.saturating_sub(1));
        self.ledger.lighter.notify_one();
    }

    /// The request waits for historical pacing until the guard drops.
    pub fn waiting(&self) -> Waiting {
        self.ledger.update(self.id, |e| e.waiting = true);
        self.ledger.lighter.notify_one();
        Waiting(self.clone())
    }
}

/// A message in flight (see [`Progress::message`]).
#[derive(Debug)]
pub struct Message {
    progress: Progress,
    turn: Option<Turn>,
}

impl Message {
    /// The client has written the message: the turn passes on while its answer comes.
    pub fn sent(&mut self) {
        self.turn = None;
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        self.turn = None;
        let p = &self.progress;
        p.ledger.update(p.id, |e| e.answered += 1);
        p.ledger.lighter.notify_one();
    }
}

#[derive(Debug)]
struct TurnState {
    free: usize,
    next_ticket: u64,
    /// (rank, ticket) → the waiter.
    waiting: BTreeMap<(u64, u64), oneshot::Sender<Turn>>,
}

/// A fixed number of turns, given to the waiter of lowest rank first (then first come).
#[derive(Debug)]
pub struct Turns {
    state: Mutex<TurnState>,
}

impl Turns {
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(TurnState {
                free: n.max(1),
                next_ticket: 0,
                waiting: BTreeMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TurnState> {
        // Updates are single statements on the counters and the map: consistent if poisoned.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a turn (cancel-safe: a turn given to a waiter that is gone passes on).
    pub async fn take(self: &Arc<Self>, rank: u64) -> Turn {
        let rx = {
            let mut s = self.lock();
            if s.free > 0 {
                s.free -= 1;
                return Turn {
                    turns: Some(Arc::clone(self)),
                };
            }
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            let (tx, rx) = oneshot::channel();
            s.waiting.insert((rank, ticket), tx);
            rx
        };
        // Every sender is either sent on or dropped with the map, which this Arc keeps.
        rx.await.unwrap_or(Turn { turns: None })
    }

    /// Turns free now.
    pub fn free(&self) -> usize {
        self.lock().free
    }
}

/// One turn; given back (to the next waiter) when dropped.
#[derive(Debug)]
pub struct Turn {
    turns: Option<Arc<Turns>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(turns) = self.turns.take() else {
            return;
        };
        let mut s = turns.lock();
        while let Some((_, waiter)) = s.waiting.pop_first() {
            match waiter.send(Turn {
                turns: Some(Arc::clone(&turns)),
            }) {
                Ok(()) => return,
                // The waiter is gone: the turn must not come back here while locked.
                Err(mut unwanted) => unwanted.turns = None,
            }
        }
        s.free += 1;
    }
}

/// A wait for pacing (see [`Progress::waiting`]).
#[derive(Debug)]
pub struct Waiting(Progress);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.ledger.update(self.0.id, |e| e.waiting = false);
    }
}

/// The usual cost of requests claimed lately, to size the next claim.
#[derive(Debug, Clone, Copy)]
pub struct Typical(f64);

impl Default for Typical {
    fn default() -> Self {
        // An option chain of five strikes each side, both rights, until others are seen.
        Self(26.0)
    }
}

impl Typical {
    pub fn get(self) -> u32 {
        self.0.round().max(1.0) as u32
    }

    pub fn observe(&mut self, cost: u32) {
        self.0 = 0.7 * self.0 + 0.3 * cost as f64;
    }
}

/// Whether `req`'s cost is learnt from the last run of its kind (a poll of every position:
/// as many snapshots as there are positions).
pub fn learns_cost(req: &Request) -> bool {
    req.request_type == RequestType::PositionUpdate
        && req.parameters.get("conid").is_none_or(|c| c.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Actor, Priority, Status};
    use chrono::Utc;
    use serde_json::json;

    fn req(ty: RequestType, params: serde_json::Value) -> Request {
        let now = Utc::now();
        Request {
            request_id: Uuid::new_v4(),
            request_type: ty,
            symbol: "SPY".into(),
            priority: Priority::NORMAL,
            status: Status::Processing,
            parameters: params,
            result_table: ty.result_table().into(),
            created_at: now,
            updated_at: now,
            result_data: None,
            error_message: None,
            attempts: 0,
            failures: 0,
            next_attempt_at: None,
            changed_by: Actor::Worker,
            event: crate::queue::Event::Claimed,
            seq: None,
            lease_owner: None,
            lease_expires_at: None,
            schedule_key: None,
            during: Default::default(),
        }
    }

    #[test]
    fn an_option_chain_costs_its_lookups_and_one_snapshot_per_option() {
        let default = req(RequestType::OptionChain, json!({}));
        // 5 strikes each side and the one at the money, calls and puts.
        assert_eq!(estimate(&default, None), 3 + 2 * (1 + 22));
        let calls = req(
            RequestType::OptionChain,
            json!({"strikes": 1, "rights": "C"}),
        );
        assert_eq!(estimate(&calls, None), 3 + 2 * (1 + 3));
        assert_eq!(
            estimate(&req(RequestType::FuturesSnapshot, json!({})), None),
            3
        );
        assert_eq!(
            estimate(&req(RequestType::DerivedStats, json!({})), None),
            0
        );
        let all = req(RequestType::PositionUpdate, json!({}));
        assert!(learns_cost(&all));
        assert_eq!(estimate(&all, None), POSITIONS_GUESS);
        assert_eq!(estimate(&all, Some(7)), 7);
        let one = req(RequestType::PositionUpdate, json!({"conid": 5}));
        assert!(!learns_cost(&one));
        assert_eq!(
            estimate(&one, Some(7)),
            4,
            "positions, their cancel, one quote"
        );
        // Parameters that cannot parse fail before any message.
        let bad = req(RequestType::OptionChain, json!({"strikes": "many"}));
        assert_eq!(estimate(&bad, None), 0);
    }

    #[test]
    fn the_budget_is_what_the_rate_sends_within_the_horizon() {
        assert_eq!(budget(45), 135);
        assert_eq!(budget(0), 3);
    }

    #[test]
    fn claims_fill_the_budget_and_never_pass_the_batch_size() {
        // Nothing runs: as many typical requests as the budget holds, at least one.
        assert_eq!(room(0, 135, 0, 50, 26), 5);
        assert_eq!(room(0, 135, 0, 50, 500), 1);
        assert_eq!(room(0, 135, 0, 3, 2), 3);
        // Some run: what is left of the budget.
        assert_eq!(room(100, 135, 4, 50, 26), 1);
        assert_eq!(room(30, 135, 4, 50, 26), 4);
        assert_eq!(room(135, 135, 4, 50, 2), 0);
        assert_eq!(room(200, 135, 1, 50, 2), 0);
        assert_eq!(room(0, 135, 48, 50, 2), 2);
        assert_eq!(room(0, 135, 50, 50, 2), 0);
    }

    #[tokio::test]
    async fn the_load_is_what_running_requests_still_have_to_send() {
        let ledger = Arc::new(Ledger::new(100, Arc::new(Pace::new(10_000))));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        ledger.open(a, 10);
        ledger.open(b, 3);
        assert_eq!(ledger.load(), 13);
        let pa = ledger.progress(a);
        let m1 = pa.message().await;
        let m2 = pa.message().await;
        // Sent but not answered: still to go.
        assert_eq!(ledger.load(), 13);
        drop(m1);
        drop(m2);
        assert_eq!(ledger.load(), 11);
        // A kept answer needs no message.
        pa.skipped();
        assert_eq!(ledger.load(), 10);
        // More messages than estimated: the unanswered ones count.
        let pb = ledger.progress(b);
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(pb.message().await);
        }
        assert_eq!(ledger.load(), 7 + 5);
        drop(held);
        assert_eq!(ledger.load(), 7);
        // Waiting for pacing sends nothing.
        let w = pa.waiting();
        assert_eq!(ledger.load(), 0);
        drop(w);
        assert_eq!(ledger.load(), 7);
        assert_eq!(ledger.close(b), 5);
        assert_eq!(ledger.close(a), 2);
        assert_eq!(ledger.load(), 0);
        // Messages of a closed request change nothing.
        drop(pa.message().await);
        assert_eq!(ledger.load(), 0);
    }

    #[tokio::test]
    async fn turns_go_to_the_earliest_admitted_request_first() {
        let turns = Turns::new(1);
        let held = turns.take(5).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        // Arriving late, rank 1 still goes before ranks 3 and 4 (who came in that order).
        for rank in [4, 3, 3, 1] {
            let (turns, order) = (Arc::clone(&turns), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let _t = turns.take(rank).await;
                order.lock().unwrap().push(rank);
            }));
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(order.lock().unwrap().is_empty());
        drop(held);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 3, 3, 4]);
        assert_eq!(turns.free(), 1);
    }

    #[tokio::test]
    async fn a_turn_for_a_waiter_that_gave_up_passes_on() {
        let turns = Turns::new(1);
        let held = turns.take(0).await;
        // A waiter that is dropped (a request that failed or timed out while waiting).
        let gone = tokio::time::timeout(Duration::from_millis(10), turns.take(1)).await;
        assert!(gone.is_err());
        let t2 = Arc::clone(&turns);
        let next = tokio::spawn(async move { drop(t2.take(2).await) });
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(held);
        next.await.unwrap();
        assert_eq!(turns.free(), 1);
    }

    #[tokio::test]
    async fn a_sent_message_gives_its_turn_back_before_its_answer() {
        let ledger = Arc::new(Ledger::new(1, Arc::new(Pace::new(10_000))));
        let id = Uuid::new_v4();
        ledger.open(id, 3);
        let p = ledger.progress(id);
        let mut first = p.message().await;
        assert_eq!(ledger.turns.free(), 0);
        first.sent();
        assert_eq!(ledger.turns.free(), 1);
        let second = p.message().await;
        assert_eq!(ledger.load(), 3, "both still wait for their answers");
        drop((first, second));
        assert_eq!((ledger.load(), ledger.turns.free()), (1, 1));
    }

    #[test]
    fn the_typical_cost_follows_what_is_claimed() {
        let mut t = Typical::default();
        assert_eq!(t.get(), 26);
        for _ in 0..20 {
            t.observe(2);
        }
        assert_eq!(t.get(), 2);
    }
}
