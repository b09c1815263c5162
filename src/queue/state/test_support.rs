//! What the state's unit tests share: a fixed instant, a new request, a retry policy.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{Enqueued, NewRequest, QueueState, RetryPolicy};
use crate::queue::model::{Actor, Priority, RequestType};

pub(super) fn t0() -> DateTime<Utc> {
    "2026-11-23T15:00:00Z".parse().unwrap()
}

pub(super) fn new(ty: RequestType, sym: &str, prio: u8) -> NewRequest {
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

pub(super) fn add(q: &mut QueueState, n: NewRequest, at: DateTime<Utc>) -> Uuid {
    match q.prepare_enqueue(n, at).unwrap() {
        Enqueued::Added(r) => q.apply(r).0.request_id,
        Enqueued::Duplicate(_) => panic!("unexpected duplicate"),
    }
}

pub(super) fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        max_age: Duration::hours(1),
        backoff_base: Duration::seconds(5),
        backoff_max: Duration::seconds(60),
    }
}
