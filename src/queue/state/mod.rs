//! The queue in memory: the newest row of every request, the claim order and the duplicate
//! index. Pure logic: every change is checked here and returns the row to persist.
//!
//! `index` installs rows and keeps the indexes in step, `views` reads them, `enqueue` checks
//! a new request (its symbol, its duplicate, its schedule key), `claim` picks what runs
//! next, `transitions` checks every later change of one request.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::model::{Actor, DedupKey, During, Event, Priority, Request, RequestType, Status};

mod claim;
mod enqueue;
mod index;
#[cfg(test)]
mod test_support;
mod transitions;
mod views;

pub use enqueue::normalize_symbol;

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

/// The key of `result_data` on a request's first row that keeps parameters given under
/// old names (`{"dte": 45}`) as they were given.
pub const GIVEN_PARAMETERS: &str = "given_parameters";
/// The key of `result_data` that holds the operator's reason for dismissing a failure.
pub const DISMISS_REASON: &str = "dismiss_reason";
/// What a request the operator released says of itself (`error_message`).
pub const RELEASED_BY_OPERATOR: &str = "released by the operator";

/// A request to add, before it has an id.
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

/// Records on `r` what changed it, who did and when: the three columns every new row of a
/// request carries.
fn stamp(r: &mut Request, event: Event, by: Actor, now: DateTime<Utc>) {
    r.event = event;
    r.changed_by = by;
    r.updated_at = now;
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
}

/// `now + d`, or the last representable instant when that is past it: a huge configured
/// lease or backoff means "not in this lifetime", never a panic.
fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now.checked_add_signed(d)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::test_support::policy;
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy();
        assert_eq!(p.backoff(1, 0.0), Duration::seconds(5));
        assert_eq!(p.backoff(2, 0.0), Duration::seconds(10));
        assert_eq!(p.backoff(10, 0.0), Duration::seconds(60));
        assert_eq!(p.backoff(1, 1.0), Duration::seconds(6));
    }
}
