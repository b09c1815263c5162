//! The queue in memory: the newest row of every request, the claim order and the duplicate
//! index. Pure logic: every change is checked here and returns the row to persist.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::model::{Actor, DedupKey, During, Event, Priority, Request, RequestType, Status};
use super::params::Params;
use crate::market::calendar::MarketCalendar;

/// A change the queue refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueueError {
    #[error("no request with id {0}")]
    NotFound(Uuid),
    #[error("cannot {action} request {id}: it is {status} (allowed from {allowed})")]
    IllegalTransition {
        id: Uuid,
        action: &'static str,
        status: Status,
        allowed: &'static str,
    },
    #[error(transparent)]
    InvalidParams(#[from] super::params::ParamError),
    #[error("invalid symbol `{}`: expected 1-12 letters, digits, '.', '/' or '-'", crate::text::clean(.0))]
    InvalidSymbol(String),
}

/// A request to add, before it has an id.
/// The key of `result_data` on a request's first row that keeps parameters given under
/// old names (`{"dte": 45}`) as they were given.
pub const GIVEN_PARAMETERS: &str = "given_parameters";
/// The key of `result_data` that holds the operator's reason for dismissing a failure.
pub const DISMISS_REASON: &str = "dismiss_reason";
/// What a request the operator released says of itself (`error_message`).
pub const RELEASED_BY_OPERATOR: &str = "released by the operator";

#[derive(Debug, Clone)]
pub struct NewRequest {
    pub request_type: RequestType,
    pub symbol: String,
    pub priority: Priority,
    pub parameters: serde_json::Value,
    pub changed_by: Actor,
    pub schedule_key: Option<String>,
    /// The market-hours window it may run in.
    pub during: During,
}

/// What enqueue did.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    Added(Request),
    /// An identical request is still open; nothing was added.
    Duplicate(Request),
}

impl Enqueued {
    pub fn request(&self) -> &Request {
        match self {
            Enqueued::Added(r) | Enqueued::Duplicate(r) => r,
        }
    }
}

/// When a failed attempt is retried automatically.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub max_age: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// Backoff before automatic retry number `failures` (1-based): base·2^(n-1), capped,
    /// then stretched by `jitter` (0..1 → up to +20%) so retries of a burst spread out.
    pub fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        let exp = 2i64.saturating_pow(failures.saturating_sub(1).min(30));
        let base = self.backoff_base.num_milliseconds().saturating_mul(exp);
        let capped = base.min(self.backoff_max.num_milliseconds());
        let jittered = capped as f64 * (1.0 + 0.2 * jitter.clamp(0.0, 1.0));
        Duration::milliseconds(jittered as i64)
    }
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusCounts {
    pub pending: usize,
    pub processing: usize,
    pub success: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl StatusCounts {
    fn slot(&mut self, s: Status) -> &mut usize {
        match s {
            Status::Pending => &mut self.pending,
            Status::Processing => &mut self.processing,
            Status::Success => &mut self.success,
            Status::Failed => &mut self.failed,
            Status::Cancelled => &mut self.cancelled,
        }
    }
    pub fn get(&self, s: Status) -> usize {
        match s {
            Status::Pending => self.pending,
            Status::Processing => self.processing,
            Status::Success => self.success,
            Status::Failed => self.failed,
            Status::Cancelled => self.cancelled,
        }
    }
    pub fn total(&self) -> usize {
        self.pending + self.processing + self.success + self.failed + self.cancelled
    }
}

type OrderKey = (Priority, DateTime<Utc>, Uuid);

fn order_key(r: &Request) -> OrderKey {
    (r.priority, r.created_at, r.request_id)
}

/// The newest row of every request, indexed for claiming and duplicate checks.
#[derive(Debug, Default, Clone)]
pub struct QueueState {
    requests: HashMap<Uuid, Arc<Request>>,
    /// PENDING requests in order of service: priority, then age.
    pending: BTreeSet<OrderKey>,
    processing: BTreeSet<OrderKey>,
    failed: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// SUCCESS requests by the time they finished, for the console's done view.
    succeeded: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// PENDING requests held to a market-hours window other than `any`.
    windowed: HashSet<Uuid>,
    open: HashMap<DedupKey, Uuid>,
    /// Scheduler occurrence keys and the request that carries each.
    schedule_keys: HashMap<String, Uuid>,
    counts: StatusCounts,
    next_seq: i64,
    /// Bumped on every change so readers can tell whether to redraw.
    generation: u64,
}

impl QueueState {
    pub fn new() -> Self {
        Self {
            next_seq: 1,
            ..Default::default()
        }
    }

    pub fn get(&self, id: &Uuid) -> Option<&Arc<Request>> {
        self.requests.get(id)
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    pub fn counts(&self) -> StatusCounts {
        self.counts
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// Numbers the next row `seq` or later (the number a queue rewrite recorded: rows with
    /// higher numbers may have left for the history table).
    pub fn continue_seq_from(&mut self, seq: i64) {
        self.next_seq = self.next_seq.max(seq);
    }

    pub fn has_schedule_key(&self, key: &str) -> bool {
        self.schedule_keys.contains_key(key)
    }

    /// Records that a scheduler occurrence was answered by an open identical request (its
    /// enqueue returned that request instead of adding one): the slot's outcome is that
    /// request's, and the runner does not submit it again. Held in memory only; after a
    /// restart such a slot of the day shows as missed.
    pub fn cover_schedule_key(&mut self, key: String, id: Uuid) {
        self.schedule_keys.entry(key).or_insert(id);
    }

    /// The status of the request carrying a scheduler occurrence key, if one does.
    pub fn schedule_status(&self, key: &str) -> Option<Status> {
        let id = self.schedule_keys.get(key)?;
        self.requests.get(id).map(|r| r.status)
    }

    /// Every request, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Request>> {
        self.requests.values()
    }

    /// PENDING requests in order of service.
    pub fn pending(&self) -> impl DoubleEndedIterator<Item = &Arc<Request>> + '_ {
        self.pending.iter().map(|k| &self.requests[&k.2])
    }

    pub fn processing(&self) -> impl DoubleEndedIterator<Item = &Arc<Request>> + '_ {
        self.processing.iter().map(|k| &self.requests[&k.2])
    }

    /// FAILED requests, newest failure first.
    pub fn failed(&self) -> impl Iterator<Item = &Arc<Request>> + '_ {
        self.failed.iter().rev().map(|k| &self.requests[&k.1])
    }

    /// SUCCESS requests, the most recently finished first.
    pub fn succeeded(&self) -> impl Iterator<Item = &Arc<Request>> + '_ {
        self.succeeded.iter().rev().map(|k| &self.requests[&k.1])
    }

    /// The earliest time a PENDING request becomes due, if any is waiting on a backoff.
    pub fn next_due_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.pending()
            .filter_map(|r| r.next_attempt_at.filter(|t| *t > now))
            .min()
    }

    /// Is a PENDING priority-1 request due now? (It wakes the worker at once.) Requests held
    /// to a window are left to the worker's poll: whether one is due depends on the engine's
    /// clock, and a wake that claims nothing would wake it again at once.
    pub fn has_due_immediate(&self, now: DateTime<Utc>) -> bool {
        self.pending()
            .take_while(|r| r.priority == Priority::IMMEDIATE)
            .any(|r| r.during == During::Any && r.is_due(now))
    }

    /// Installs `row` as the newest row of its request and returns the row it replaced.
    /// The row gets the next sequence number of this process here.
    pub fn apply(&mut self, mut row: Request) -> (Request, Option<Arc<Request>>) {
        row.seq = Some(self.next_seq);
        self.next_seq += 1;
        let previous = self.install(Arc::new(row.clone()));
        (row, previous)
    }

    /// Puts back `previous` (or removes the request) after a commit that failed.
    pub fn undo(&mut self, id: Uuid, previous: Option<Arc<Request>>) {
        self.remove_indexes(&id);
        match previous {
            Some(p) => {
                self.add_indexes(&p);
                self.requests.insert(id, p);
            }
            None => {
                self.requests.remove(&id);
                // The occurrence keys it carried or answered were never committed: the
                // runner must submit them again.
                self.schedule_keys.retain(|_, held_by| *held_by != id);
            }
        }
        self.generation += 1;
    }

    /// Replays a stored row: it wins when it is newer than what is known for its request.
    /// Rows without a sequence number (other writers) are older than any numbered row.
    pub fn replay(&mut self, row: Request) {
        if let Some(seq) = row.seq {
            self.next_seq = self.next_seq.max(seq + 1);
        }
        let newer = match self.requests.get(&row.request_id) {
            None => true,
            Some(known) => row.seq > known.seq,
        };
        if newer {
            self.install(Arc::new(row));
        }
    }

    /// Drops a request from the state (its rows have left the live table for the history
    /// table) and returns its newest row. Its schedule key stays known until
    /// `forget_all` or a restart; see there.
    pub fn forget(&mut self, id: &Uuid) -> Option<Arc<Request>> {
        self.remove_indexes(id);
        let gone = self.requests.remove(id);
        if gone.is_some() {
            self.generation += 1;
        }
        gone
    }

    /// Drops requests from the state and the schedule keys only they held, so the state
    /// is what a restart would replay: memory does not grow with archived requests. Only
    /// finished requests at least a day old are archived, and the scheduler asks only for
    /// the keys of today's occurrences, so a forgotten key is never submitted again.
    /// Returns how many were dropped.
    pub fn forget_all(&mut self, ids: &[Uuid]) -> usize {
        let mut keys = HashSet::new();
        let mut n = 0;
        for id in ids {
            if let Some(gone) = self.forget(id) {
                n += 1;
                keys.extend(gone.schedule_key.clone());
            }
        }
        // Keys covered by a forgotten request without being its own.
        let requests = &self.requests;
        keys.extend(
            self.schedule_keys
                .iter()
                .filter(|(_, id)| !requests.contains_key(id))
                .map(|(k, _)| k.clone()),
        );
        if !keys.is_empty() {
            for k in &keys {
                self.schedule_keys.remove(k);
            }
            // A key another request still carries stays known, under that request.
            let holders: Vec<(String, Uuid)> = self
                .requests
                .values()
                .filter_map(|r| Some((r.schedule_key.clone()?, r.request_id)))
                .filter(|(k, _)| keys.contains(k))
                .collect();
            for (k, id) in holders {
                self.schedule_keys.entry(k).or_insert(id);
            }
        }
        n
    }

    fn install(&mut self, row: Arc<Request>) -> Option<Arc<Request>> {
        let id = row.request_id;
        self.remove_indexes(&id);
        self.add_indexes(&row);
        self.generation += 1;
        self.requests.insert(id, row)
    }

    fn remove_indexes(&mut self, id: &Uuid) {
        let Some(old) = self.requests.get(id).cloned() else {
            return;
        };
        *self.counts.slot(old.status) -= 1;
        match old.status {
            Status::Pending => {
                self.pending.remove(&order_key(&old));
                self.windowed.remove(id);
            }
            Status::Processing => {
                self.processing.remove(&order_key(&old));
            }
            Status::Failed => {
                self.failed.remove(&(old.updated_at, old.request_id));
            }
            Status::Success => {
                self.succeeded.remove(&(old.updated_at, old.request_id));
            }
            Status::Cancelled => {}
        }
        if old.status.is_open() {
            let key = old.dedup_key();
            if self.open.get(&key) == Some(id) {
                self.open.remove(&key);
            }
        }
    }

    fn add_indexes(&mut self, r: &Arc<Request>) {
        *self.counts.slot(r.status) += 1;
        match r.status {
            Status::Pending => {
                self.pending.insert(order_key(r));
                if r.during != During::Any {
                    self.windowed.insert(r.request_id);
                }
            }
            Status::Processing => {
                self.processing.insert(order_key(r));
            }
            Status::Failed => {
                self.failed.insert((r.updated_at, r.request_id));
            }
            Status::Success => {
                self.succeeded.insert((r.updated_at, r.request_id));
            }
            Status::Cancelled => {}
        }
        if r.status.is_open() {
            self.open.entry(r.dedup_key()).or_insert(r.request_id);
        }
        if let Some(k) = &r.schedule_key {
            self.schedule_keys.entry(k.clone()).or_insert(r.request_id);
        }
    }

    /// Checks a new request and builds its first row, or finds the open duplicate.
    pub fn prepare_enqueue(
        &self,
        new: NewRequest,
        now: DateTime<Utc>,
    ) -> Result<Enqueued, QueueError> {
        let symbol = normalize_symbol(&new.symbol)?;
        let params = Params::parse(new.request_type, &new.parameters)?;
        let parameters = params.to_json();
        // Parameters given under the replaced system's names are kept as given, so `show`
        // and the detail view can say what each was taken to mean.
        let given = (!crate::queue::params::taken_as(new.request_type, &new.parameters).is_empty())
            .then(|| serde_json::json!({ GIVEN_PARAMETERS: new.parameters }));
        let key = DedupKey::new(new.request_type, &symbol, &parameters);
        if let Some(existing) = self.open.get(&key) {
            return Ok(Enqueued::Duplicate((*self.requests[existing]).clone()));
        }
        Ok(Enqueued::Added(Request {
            request_id: Uuid::new_v4(),
            request_type: new.request_type,
            symbol,
            priority: new.priority,
            status: Status::Pending,
            parameters,
            result_table: new.request_type.result_table().to_string(),
            created_at: now,
            updated_at: now,
            result_data: given,
            error_message: None,
            attempts: 0,
            failures: 0,
            next_attempt_at: None,
            changed_by: new.changed_by,
            event: Event::Enqueued,
            seq: None,
            lease_owner: None,
            lease_expires_at: None,
            schedule_key: new.schedule_key,
            during: new.during,
        }))
    }

    /// [`Self::prepare_enqueue`] for a request held to a market-hours window: when the
    /// window is closed at `market_now` (the engine's clock), the new row waits for its next
    /// start.
    pub fn prepare_enqueue_at(
        &self,
        new: NewRequest,
        now: DateTime<Utc>,
        calendar: &MarketCalendar,
        market_now: DateTime<Utc>,
    ) -> Result<Enqueued, QueueError> {
        Ok(match self.prepare_enqueue(new, now)? {
            Enqueued::Added(mut r) => {
                r.next_attempt_at = r.during.waits_until(calendar, market_now);
                Enqueued::Added(r)
            }
            dup => dup,
        })
    }

    fn transition(
        &self,
        id: Uuid,
        action: &'static str,
        allowed: &'static [Status],
        allowed_text: &'static str,
    ) -> Result<Request, QueueError> {
        let current = self.requests.get(&id).ok_or(QueueError::NotFound(id))?;
        if !allowed.contains(&current.status) {
            return Err(QueueError::IllegalTransition {
                id,
                action,
                status: current.status,
                allowed: allowed_text,
            });
        }
        Ok((**current).clone())
    }

    /// FAILED → PENDING by the operator; the retry limit starts over.
    pub fn prepare_retry(
        &self,
        id: Uuid,
        by: Actor,
        now: DateTime<Utc>,
    ) -> Result<Request, QueueError> {
        let mut r = self.transition(id, "retry", &[Status::Failed], "FAILED")?;
        r.status = Status::Pending;
        r.failures = 0;
        r.next_attempt_at = None;
        r.error_message = None;
        r.event = Event::Retried;
        r.changed_by = by;
        r.updated_at = now;
        Ok(r)
    }

    /// New priority for a PENDING or FAILED request.
    pub fn prepare_reprioritize(
        &self,
        id: Uuid,
        priority: Priority,
        by: Actor,
        now: DateTime<Utc>,
    ) -> Result<Request, QueueError> {
        let mut r = self.transition(
            id,
            "reprioritize",
            &[Status::Pending, Status::Failed],
            "PENDING or FAILED",
        )?;
        r.priority = priority;
        r.event = Event::Reprioritized;
        r.changed_by = by;
        r.updated_at = now;
        Ok(r)
    }

    /// PENDING → CANCELLED.
    pub fn prepare_cancel(
        &self,
        id: Uuid,
        by: Actor,
        now: DateTime<Utc>,
    ) -> Result<Request, QueueError> {
        let mut r = self.transition(id, "cancel", &[Status::Pending], "PENDING")?;
        r.status = Status::Cancelled;
        r.event = Event::Cancelled;
        r.changed_by = by;
        r.updated_at = now;
        Ok(r)
    }

    /// FAILED → CANCELLED by the operator, keeping the error and recording `reason` as
    /// `result_data.dismiss_reason`. It leaves the failed count and stays in history.
    pub fn prepare_dismiss(
        &self,
        id: Uuid,
        reason: &str,
        by: Actor,
        now: DateTime<Utc>,
    ) -> Result<Request, QueueError> {
        let mut r = self.transition(id, "dismiss", &[Status::Failed], "FAILED")?;
        r.status = Status::Cancelled;
        let mut data = match r.result_data.take() {
            Some(serde_json::Value::Object(m)) => m,
            Some(other) => {
                let mut m = serde_json::Map::new();
                m.insert("result_data".into(), other);
                m
            }
            None => serde_json::Map::new(),
        };
        data.insert(
            DISMISS_REASON.into(),
            serde_json::Value::String(reason.into()),
        );
        r.result_data = Some(serde_json::Value::Object(data));
        r.next_attempt_at = None;
        r.event = Event::Dismissed;
        r.changed_by = by;
        r.updated_at = now;
        Ok(r)
    }

    /// Up to `limit` due PENDING requests in order of service, as PROCESSING rows leased to
    /// `owner` until `now + lease`. Requests held to a window never run (see
    /// [`Self::prepare_claim_at`]).
    pub fn prepare_claim(
        &self,
        limit: usize,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Vec<Request> {
        self.prepare_claim_at(limit, owner, lease, now, &MarketCalendar::default(), now)
    }

    /// Is `r` held by its window at `market_now`? `None` when it may run; otherwise when its
    /// window opens.
    fn held_until(
        r: &Request,
        calendar: &MarketCalendar,
        market_now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        r.during.waits_until(calendar, market_now)
    }

    /// True when the worker may claim `r`: due by its backoff (`now`, the wall clock) and
    /// inside its window (`market_now`, the engine's clock). A windowed request's
    /// `next_attempt_at` from an earlier hold is the window's start on the engine's clock and
    /// is superseded by the window check; only a retry's backoff still counts.
    fn claimable(
        r: &Request,
        now: DateTime<Utc>,
        calendar: &MarketCalendar,
        market_now: DateTime<Utc>,
    ) -> bool {
        if r.status != Status::Pending {
            return false;
        }
        if r.during == During::Any {
            return r.is_due(now);
        }
        Self::held_until(r, calendar, market_now).is_none()
            && (r.event != Event::RetryScheduled || r.is_due(now))
    }

    /// [`Self::prepare_claim`] with the market-hours windows checked on the NYSE `calendar`
    /// at `market_now`, the engine's clock (fast in tests and demos).
    pub fn prepare_claim_at(
        &self,
        limit: usize,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
        calendar: &MarketCalendar,
        market_now: DateTime<Utc>,
    ) -> Vec<Request> {
        self.pending()
            .filter(|r| Self::claimable(r, now, calendar, market_now))
            .take(limit)
            .map(|r| {
                let mut r = (**r).clone();
                r.status = Status::Processing;
                r.event = Event::Claimed;
                r.changed_by = Actor::Worker;
                r.updated_at = now;
                r.lease_owner = Some(owner.to_string());
                r.lease_expires_at = Some(later(now, lease));
                r
            })
            .collect()
    }

    /// PENDING requests outside their window whose `next_attempt_at` is not yet the window's
    /// next start: rows that set it (event `held`), so every reader sees when they run.
    pub fn prepare_holds(
        &self,
        now: DateTime<Utc>,
        calendar: &MarketCalendar,
        market_now: DateTime<Utc>,
    ) -> Vec<Request> {
        self.windowed
            .iter()
            .filter_map(|id| self.requests.get(id))
            .filter(|r| r.status == Status::Pending)
            .filter_map(|r| {
                let start = Self::held_until(r, calendar, market_now)?;
                if r.next_attempt_at == Some(start) {
                    return None;
                }
                let mut r = (**r).clone();
                r.next_attempt_at = Some(start);
                r.event = Event::Held;
                r.changed_by = Actor::Worker;
                r.updated_at = now;
                Some(r)
            })
            .collect()
    }

    /// PROCESSING → SUCCESS with a summary of what was written.
    pub fn prepare_succeed(
        &self,
        id: Uuid,
        result_data: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Request, QueueError> {
        let mut r = self.transition(id, "complete", &[Status::Processing], "PROCESSING")?;
        r.status = Status::Success;
        r.event = Event::Succeeded;
        r.changed_by = Actor::Worker;
        r.attempts += 1;
        r.result_data = Some(result_data);
        r.error_message = None;
        r.next_attempt_at = None;
        r.lease_owner = None;
        r.lease_expires_at = None;
        r.updated_at = now;
        Ok(r)
    }

    /// PROCESSING → PENDING after a backoff when the error is retryable and the limits
    /// allow, else FAILED.
    pub fn prepare_fail(
        &self,
        id: Uuid,
        error: &str,
        retryable: bool,
        policy: &RetryPolicy,
        jitter: f64,
        now: DateTime<Utc>,
    ) -> Result<Request, QueueError> {
        let mut r = self.transition(id, "fail", &[Status::Processing], "PROCESSING")?;
        r.attempts += 1;
        r.failures += 1;
        r.error_message = Some(error.to_string());
        r.changed_by = Actor::Worker;
        r.updated_at = now;
        r.lease_owner = None;
        r.lease_expires_at = None;
        let young_enough = now - r.created_at < policy.max_age;
        if retryable && r.failures < policy.max_attempts && young_enough {
            r.status = Status::Pending;
            r.event = Event::RetryScheduled;
            r.next_attempt_at = Some(later(now, policy.backoff(r.failures, jitter)));
        } else {
            r.status = Status::Failed;
            r.event = Event::Failed;
            r.next_attempt_at = None;
        }
        Ok(r)
    }

    /// PROCESSING → PENDING without counting an attempt (lost connection, shutdown).
    pub fn prepare_release(
        &self,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Request, QueueError> {
        self.prepare_release_by(id, reason, Actor::Worker, now)
    }

    /// PROCESSING → PENDING without counting an attempt, by `by`: the worker (a lost
    /// connection, a shutdown) or the operator (a run that is stuck or too slow).
    pub fn prepare_release_by(
        &self,
        id: Uuid,
        reason: &str,
        by: Actor,
        now: DateTime<Utc>,
    ) -> Result<Request, QueueError> {
        let mut r = self.transition(id, "release", &[Status::Processing], "PROCESSING")?;
        r.status = Status::Pending;
        r.event = Event::Released;
        r.changed_by = by;
        r.error_message = Some(reason.to_string());
        r.lease_owner = None;
        r.lease_expires_at = None;
        r.updated_at = now;
        Ok(r)
    }
}

/// `now + d`, or the last representable instant when that is past it: a huge configured
/// lease or backoff means "not in this lifetime", never a panic.
fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now.checked_add_signed(d)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Symbols are upper case; anything else a gateway would not know is refused.
pub fn normalize_symbol(symbol: &str) -> Result<String, QueueError> {
    let s = symbol.trim().to_ascii_uppercase();
    let ok = !s.is_empty()
        && s.len() <= 12
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-'));
    if ok {
        Ok(s)
    } else {
        Err(QueueError::InvalidSymbol(symbol.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t0() -> DateTime<Utc> {
        "2026-11-23T15:00:00Z".parse().unwrap()
    }

    fn new(ty: RequestType, sym: &str, prio: u8) -> NewRequest {
        NewRequest {
            request_type: ty,
            symbol: sym.into(),
            priority: Priority::try_from(prio as i64).unwrap(),
            parameters: json!({}),
            changed_by: Actor::Operator,
            schedule_key: None,
            during: Default::default(),
        }
    }

    fn add(q: &mut QueueState, n: NewRequest, at: DateTime<Utc>) -> Uuid {
        match q.prepare_enqueue(n, at).unwrap() {
            Enqueued::Added(r) => q.apply(r).0.request_id,
            Enqueued::Duplicate(_) => panic!("unexpected duplicate"),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            max_age: Duration::hours(1),
            backoff_base: Duration::seconds(5),
            backoff_max: Duration::seconds(60),
        }
    }

    /// A New York wall-clock time on Tuesday 2026-11-24 (EST) as a UTC instant.
    fn ny(hm: &str) -> DateTime<Utc> {
        format!("2026-11-24T{hm}:00-05:00").parse().unwrap()
    }

    #[test]
    fn a_schedule_key_gives_the_status_of_the_request_carrying_it() {
        let mut q = QueueState::new();
        let key = "option_chain_regular@2026-11-23T14:30:00Z#SPY";
        assert_eq!(q.schedule_status(key), None);
        let mut n = new(RequestType::OptionChain, "SPY", 2);
        n.schedule_key = Some(key.into());
        let id = add(&mut q, n, t0());
        assert_eq!(q.schedule_status(key), Some(Status::Pending));
        let claimed = q.prepare_claim(10, "w", Duration::minutes(5), t0());
        assert_eq!(claimed[0].request_id, id);
        q.apply(claimed[0].clone());
        assert_eq!(q.schedule_status(key), Some(Status::Processing));
        assert_eq!(q.schedule_status("another@2026-11-23T14:30:00Z"), None);
    }

    #[test]
    fn a_slot_answered_by_its_open_poll_takes_that_polls_status_until_it_is_forgotten() {
        let mut q = QueueState::new();
        let first = "positions_regular@2026-11-23T14:30:00Z";
        let second = "positions_regular@2026-11-23T14:30:30Z";
        let mut n = new(RequestType::PositionUpdate, "ALL", 2);
        n.schedule_key = Some(first.into());
        let id = add(&mut q, n.clone(), t0());
        // The next slot comes while the first poll still waits: enqueue answers with it.
        n.schedule_key = Some(second.into());
        let Enqueued::Duplicate(open) = q.prepare_enqueue(n, t0()).unwrap() else {
            panic!("an identical open request answers")
        };
        assert_eq!(q.schedule_status(second), None);
        q.cover_schedule_key(second.into(), open.request_id);
        assert!(q.has_schedule_key(second));
        assert_eq!(q.schedule_status(second), Some(Status::Pending));
        let claimed = q.prepare_claim(1, "w", Duration::minutes(5), t0());
        q.apply(claimed[0].clone());
        assert_eq!(q.schedule_status(second), Some(Status::Processing));
        q.apply(q.prepare_succeed(id, json!({}), t0()).unwrap());
        assert_eq!(q.schedule_status(second), Some(Status::Success));
        // Archived with its request, like the key it carries.
        assert_eq!(q.forget_all(&[id]), 1);
        assert!(!q.has_schedule_key(first) && !q.has_schedule_key(second));
    }

    #[test]
    fn a_request_whose_commit_failed_leaves_its_keys_to_be_submitted_again() {
        let mut q = QueueState::new();
        let key = "futures_regular@2026-11-23T14:30:00Z#ES";
        let covered = "futures_regular@2026-11-23T14:35:00Z#ES";
        let mut n = new(RequestType::FuturesSnapshot, "ES", 2);
        n.schedule_key = Some(key.into());
        let Enqueued::Added(r) = q.prepare_enqueue(n, t0()).unwrap() else {
            panic!("added")
        };
        let (r, previous) = q.apply(r);
        q.cover_schedule_key(covered.into(), r.request_id);
        q.undo(r.request_id, previous);
        assert!(!q.has_schedule_key(key), "the runner submits it again");
        assert!(!q.has_schedule_key(covered));
        assert!(q.is_empty());
    }

    #[test]
    fn old_parameter_names_are_kept_as_given_on_the_first_row() {
        let q = QueueState::new();
        let mut n = new(RequestType::OptionChain, "SPY", 2);
        n.parameters = json!({"dte": 45});
        let Enqueued::Added(r) = q.prepare_enqueue(n, t0()).unwrap() else {
            panic!("unexpected duplicate")
        };
        assert_eq!(r.parameters["target_dte"], json!(45));
        assert_eq!(r.result_data.unwrap()[GIVEN_PARAMETERS], json!({"dte": 45}));
        // Parameters under ibq's own names keep nothing extra.
        let mut n = new(RequestType::OptionChain, "QQQ", 2);
        n.parameters = json!({"target_dte": 45});
        let Enqueued::Added(r) = q.prepare_enqueue(n, t0()).unwrap() else {
            panic!("unexpected duplicate")
        };
        assert_eq!(r.result_data, None);
    }

    #[test]
    fn a_request_outside_its_window_is_held_until_it_opens() {
        let cal = MarketCalendar::default();
        let mut q = QueueState::new();
        let mut n = new(RequestType::MarketBars, "SPY", 1);
        n.during = During::Regular;
        // Made at 08:00 New York: it waits for 09:30.
        let r = match q.prepare_enqueue_at(n, t0(), &cal, ny("08:00")).unwrap() {
            Enqueued::Added(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(r.next_attempt_at, Some(ny("09:30")));
        let id = q.apply(r).0.request_id;
        // A wall clock past the hold does not wake the worker: only its poll, which checks
        // the window on the engine's clock, claims a windowed request.
        assert!(!q.has_due_immediate(t0() + Duration::days(2)));
        let any = add(&mut q, new(RequestType::MarketBars, "QQQ", 2), t0());
        // Before the open only the request without a window is claimed, and no hold is due
        // (it already waits for 09:30).
        let claimed = q.prepare_claim_at(10, "w", Duration::minutes(5), t0(), &cal, ny("09:29"));
        assert_eq!(
            claimed.iter().map(|r| r.request_id).collect::<Vec<_>>(),
            vec![any]
        );
        assert!(q.prepare_holds(t0(), &cal, ny("09:29")).is_empty());
        // At the open it runs, whatever the wall clock (`t0`) says.
        let claimed = q.prepare_claim_at(10, "w", Duration::minutes(5), t0(), &cal, ny("09:30"));
        assert!(claimed.iter().any(|r| r.request_id == id), "{claimed:?}");
        // Still due at 16:00, the close: it is held again, for Wednesday's open.
        let holds = q.prepare_holds(t0(), &cal, ny("16:00"));
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].event, Event::Held);
        assert_eq!(holds[0].status, Status::Pending);
        assert_eq!(
            holds[0].next_attempt_at,
            Some("2026-11-25T14:30:00Z".parse().unwrap())
        );
        assert!(q
            .prepare_claim_at(10, "w", Duration::minutes(5), t0(), &cal, ny("16:00"))
            .iter()
            .all(|r| r.request_id != id));
        q.apply(holds[0].clone());
        assert_eq!(
            q.get(&id).unwrap().window_wait(),
            Some("2026-11-25T14:30:00Z".parse().unwrap())
        );
        assert!(
            q.prepare_holds(t0(), &cal, ny("17:00")).is_empty(),
            "held once"
        );
    }

    #[test]
    fn a_windowed_retry_keeps_its_backoff_inside_the_window() {
        let cal = MarketCalendar::default();
        let mut q = QueueState::new();
        let mut n = new(RequestType::MarketBars, "SPY", 2);
        n.during = During::Regular;
        let id = add(&mut q, n, t0());
        for r in q.prepare_claim_at(1, "w", Duration::minutes(5), t0(), &cal, ny("10:00")) {
            q.apply(r);
        }
        let failed = q
            .prepare_fail(id, "timeout", true, &policy(), 0.0, t0())
            .unwrap();
        q.apply(failed);
        let claim = |wall: DateTime<Utc>| {
            q.prepare_claim_at(1, "w", Duration::minutes(5), wall, &cal, ny("10:01"))
        };
        assert!(claim(t0()).is_empty(), "backoff not over");
        assert_eq!(claim(t0() + Duration::minutes(2)).len(), 1);
    }

    #[test]
    fn claims_by_priority_then_age() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::MarketBars, "SPY", 3), t0());
        let b = add(
            &mut q,
            new(RequestType::MarketBars, "QQQ", 2),
            t0() + Duration::seconds(1),
        );
        let c = add(
            &mut q,
            new(RequestType::MarketBars, "IWM", 2),
            t0() + Duration::seconds(2),
        );
        let d = add(
            &mut q,
            new(RequestType::OptionChain, "SPY", 1),
            t0() + Duration::seconds(3),
        );
        let claimed: Vec<_> = q
            .prepare_claim(10, "w", Duration::minutes(5), t0() + Duration::seconds(10))
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(claimed, vec![d, b, c, a]);
        let two = q.prepare_claim(2, "w", Duration::minutes(5), t0() + Duration::seconds(10));
        assert_eq!(two.len(), 2);
    }

    #[test]
    fn never_claimed_before_its_next_attempt() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::MarketBars, "SPY", 1), t0());
        for r in q.prepare_claim(1, "w", Duration::minutes(5), t0()) {
            q.apply(r);
        }
        let failed = q
            .prepare_fail(a, "162 pacing", true, &policy(), 0.0, t0())
            .unwrap();
        assert_eq!(failed.status, Status::Pending);
        assert_eq!(failed.next_attempt_at, Some(t0() + Duration::seconds(5)));
        q.apply(failed);
        assert!(q
            .prepare_claim(1, "w", Duration::minutes(5), t0() + Duration::seconds(4))
            .is_empty());
        assert!(!q.has_due_immediate(t0() + Duration::seconds(4)));
        assert_eq!(
            q.prepare_claim(1, "w", Duration::minutes(5), t0() + Duration::seconds(5))
                .len(),
            1
        );
    }

    #[test]
    fn duplicates_of_open_requests_return_the_existing_one() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::OptionChain, "spy", 2), t0());
        // Same type, symbol (case folded) and parameters once defaults are filled in.
        let mut again = new(RequestType::OptionChain, "SPY", 1);
        again.parameters = json!({"target_dte": 45});
        match q.prepare_enqueue(again.clone(), t0()).unwrap() {
            Enqueued::Duplicate(r) => assert_eq!(r.request_id, a),
            other => panic!("expected duplicate, got {other:?}"),
        }
        // Different parameters are a different request.
        let mut other = again.clone();
        other.parameters = json!({"target_dte": 30});
        assert!(matches!(
            q.prepare_enqueue(other, t0()).unwrap(),
            Enqueued::Added(_)
        ));
        // Once done, the same request may be added again.
        for r in q.prepare_claim(1, "w", Duration::minutes(5), t0()) {
            q.apply(r);
        }
        let done = q.prepare_succeed(a, json!({}), t0()).unwrap();
        q.apply(done);
        assert!(matches!(
            q.prepare_enqueue(again, t0()).unwrap(),
            Enqueued::Added(_)
        ));
    }

    #[test]
    fn transitions_are_checked() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::MarketBars, "SPY", 2), t0());
        // retry needs FAILED
        let e = q.prepare_retry(a, Actor::Operator, t0()).unwrap_err();
        assert!(matches!(
            e,
            QueueError::IllegalTransition {
                action: "retry",
                status: Status::Pending,
                ..
            }
        ));
        assert!(e.to_string().contains("it is PENDING"), "{e}");
        // succeed needs PROCESSING
        assert!(q.prepare_succeed(a, json!({}), t0()).is_err());
        // reprioritize works on PENDING
        let r = q
            .prepare_reprioritize(a, Priority::IMMEDIATE, Actor::Operator, t0())
            .unwrap();
        q.apply(r);
        assert_eq!(q.get(&a).unwrap().priority, Priority::IMMEDIATE);
        // cancel works on PENDING, then nothing but reads
        let r = q.prepare_cancel(a, Actor::Operator, t0()).unwrap();
        q.apply(r);
        assert!(q.prepare_cancel(a, Actor::Operator, t0()).is_err());
        assert!(q
            .prepare_reprioritize(a, Priority::NORMAL, Actor::Operator, t0())
            .is_err());
        assert!(q
            .prepare_claim(5, "w", Duration::minutes(1), t0())
            .is_empty());
        assert!(matches!(
            q.prepare_cancel(Uuid::new_v4(), Actor::Operator, t0()),
            Err(QueueError::NotFound(_))
        ));
    }

    #[test]
    fn permanent_errors_and_exhausted_retries_fail_and_manual_retry_starts_over() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::MarketBars, "SPY", 2), t0());
        let mut now = t0();
        for _ in 0..3 {
            now += Duration::minutes(2);
            for r in q.prepare_claim(1, "w", Duration::minutes(5), now) {
                q.apply(r);
            }
            let r = q
                .prepare_fail(a, "162 pacing", true, &policy(), 0.5, now)
                .unwrap();
            q.apply(r);
        }
        let r = q.get(&a).unwrap();
        assert_eq!((r.status, r.attempts, r.failures), (Status::Failed, 3, 3));
        let r = q.prepare_retry(a, Actor::Operator, now).unwrap();
        assert_eq!((r.status, r.failures, r.attempts), (Status::Pending, 0, 3));
        q.apply(r);
        for r in q.prepare_claim(1, "w", Duration::minutes(5), now) {
            q.apply(r);
        }
        let r = q
            .prepare_fail(a, "200 no security definition", false, &policy(), 0.0, now)
            .unwrap();
        assert_eq!(r.status, Status::Failed);
    }

    #[test]
    fn dismiss_moves_a_failure_to_cancelled_with_its_reason_and_error_kept() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::MarketBars, "SPY", 2), t0());
        // Only a FAILED request can be dismissed.
        let e = q
            .prepare_dismiss(a, "bad symbol", Actor::Operator, t0())
            .unwrap_err();
        assert!(e.to_string().contains("it is PENDING"), "{e}");
        for r in q.prepare_claim(1, "w", Duration::minutes(5), t0()) {
            q.apply(r);
        }
        let r = q
            .prepare_fail(
                a,
                "IB 200: no security definition",
                false,
                &policy(),
                0.0,
                t0(),
            )
            .unwrap();
        q.apply(r);
        assert_eq!(q.counts().failed, 1);
        let r = q
            .prepare_dismiss(a, "bad symbol", Actor::Operator, t0())
            .unwrap();
        assert_eq!(r.status, Status::Cancelled);
        assert_eq!(r.event, Event::Dismissed);
        assert_eq!(r.changed_by, Actor::Operator);
        assert_eq!(
            r.result_data.as_ref().unwrap()[DISMISS_REASON],
            json!("bad symbol")
        );
        assert_eq!(
            r.error_message.as_deref(),
            Some("IB 200: no security definition")
        );
        q.apply(r);
        assert_eq!(q.counts().failed, 0);
        assert_eq!(q.failed().count(), 0);
        // Dismissed is final: no retry, no second dismissal.
        assert!(q.prepare_retry(a, Actor::Operator, t0()).is_err());
        assert!(q
            .prepare_dismiss(a, "again", Actor::Operator, t0())
            .is_err());
    }

    #[test]
    fn the_operator_releases_a_running_request_without_counting_an_attempt() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::FuturesSnapshot, "ES", 2), t0());
        // Only a PROCESSING request can be released.
        let e = q
            .prepare_release_by(a, RELEASED_BY_OPERATOR, Actor::Operator, t0())
            .unwrap_err();
        assert!(e.to_string().contains("it is PENDING"), "{e}");
        for r in q.prepare_claim(1, "w", Duration::minutes(5), t0()) {
            q.apply(r);
        }
        let claimed = q.get(&a).unwrap().clone();
        assert_eq!(claimed.status, Status::Processing);
        let r = q
            .prepare_release_by(a, RELEASED_BY_OPERATOR, Actor::Operator, t0())
            .unwrap();
        assert_eq!(r.status, Status::Pending);
        assert_eq!(r.event, Event::Released);
        assert_eq!(r.changed_by, Actor::Operator);
        assert_eq!(
            (r.attempts, r.failures),
            (claimed.attempts, claimed.failures)
        );
        assert_eq!((r.lease_owner.as_deref(), r.lease_expires_at), (None, None));
        assert_eq!(r.error_message.as_deref(), Some(RELEASED_BY_OPERATOR));
        q.apply(r);
        assert_eq!(q.counts().processing, 0);
        assert_eq!(q.counts().pending, 1);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy();
        assert_eq!(p.backoff(1, 0.0), Duration::seconds(5));
        assert_eq!(p.backoff(2, 0.0), Duration::seconds(10));
        assert_eq!(p.backoff(10, 0.0), Duration::seconds(60));
        assert_eq!(p.backoff(1, 1.0), Duration::seconds(6));
    }

    #[test]
    fn replay_keeps_the_newest_row() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::MarketBars, "SPY", 2), t0());
        let claimed = q
            .prepare_claim(1, "w", Duration::minutes(5), t0())
            .remove(0);
        let (claimed, _) = q.apply(claimed);
        let first = (**q.get(&a).unwrap()).clone();
        let mut replayed = QueueState::new();
        replayed.replay(claimed.clone());
        let mut enq = first.clone();
        enq.status = Status::Pending;
        enq.seq = Some(1);
        replayed.replay(enq);
        assert_eq!(replayed.get(&a).unwrap().status, Status::Processing);
    }

    #[test]
    fn undo_restores_indexes() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::MarketBars, "SPY", 2), t0());
        let r = q.prepare_cancel(a, Actor::Operator, t0()).unwrap();
        let (_, prev) = q.apply(r);
        assert_eq!(q.counts().cancelled, 1);
        q.undo(a, prev);
        assert_eq!(q.counts().pending, 1);
        assert_eq!(q.counts().cancelled, 0);
        assert_eq!(q.pending().count(), 1);
    }

    #[test]
    fn a_lease_or_backoff_past_the_end_of_time_saturates() {
        let mut q = QueueState::new();
        add(&mut q, new(RequestType::MarketBars, "SPY", 2), t0());
        let claimed = q.prepare_claim(1, "w", Duration::seconds(10_000_000_000_000), t0());
        assert_eq!(claimed[0].lease_expires_at, Some(DateTime::<Utc>::MAX_UTC));
        assert_eq!(later(t0(), Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            later(t0(), Duration::seconds(1)),
            t0() + Duration::seconds(1)
        );
    }

    #[test]
    fn successes_are_listed_most_recently_finished_first_and_leave_when_forgotten() {
        let mut q = QueueState::new();
        let ids: Vec<Uuid> = ["SPY", "QQQ", "IWM"]
            .iter()
            .map(|s| add(&mut q, new(RequestType::MarketBars, s, 2), t0()))
            .collect();
        for r in q.prepare_claim(3, "w", Duration::minutes(5), t0()) {
            q.apply(r);
        }
        // They finish in the order QQQ, SPY, IWM.
        for (i, id) in [ids[1], ids[0], ids[2]].into_iter().enumerate() {
            let at = t0() + Duration::seconds(10 + i as i64);
            let r = q.prepare_succeed(id, json!({"rows": i}), at).unwrap();
            q.apply(r);
        }
        let shown: Vec<Uuid> = q.succeeded().map(|r| r.request_id).collect();
        assert_eq!(shown, vec![ids[2], ids[0], ids[1]]);
        assert_eq!(q.succeeded().count(), q.counts().success);
        // A request that leaves SUCCESS (forgotten after archiving) leaves the list.
        q.forget(&ids[0]);
        let shown: Vec<Uuid> = q.succeeded().map(|r| r.request_id).collect();
        assert_eq!(shown, vec![ids[2], ids[1]]);
    }

    #[test]
    fn symbols_are_checked() {
        assert_eq!(normalize_symbol(" spy ").unwrap(), "SPY");
        assert!(normalize_symbol("").is_err());
        assert!(normalize_symbol("SP Y").is_err());
        assert!(normalize_symbol("ABCDEFGHIJKLMN").is_err());
        let e = normalize_symbol("SP\x1bY").unwrap_err().to_string();
        assert!(e.contains("`SP\\x1bY`") && !e.contains('\x1b'), "{e}");
    }
}
