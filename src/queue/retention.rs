//! Which requests leave the live queue: finished ones (SUCCESS, FAILED past their retries,
//! CANCELLED) whose last change is older than the retention. Pure logic; the store moves
//! their rows to `ib_request_queue_history` and forgets them.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::model::Status;
use super::state::QueueState;

/// The instant before which a finished request is archived, `keep_days` before `now`.
pub fn cutoff(now: DateTime<Utc>, keep_days: u32) -> DateTime<Utc> {
    now - Duration::days(i64::from(keep_days))
}

/// Requests finished (no longer open) and last changed before `cutoff`, oldest first.
/// A FAILED request is final here: a retry would have left it PENDING.
pub fn finished_before(state: &QueueState, cutoff: DateTime<Utc>) -> Vec<Uuid> {
    let mut out: Vec<(DateTime<Utc>, Uuid)> = state
        .all()
        .filter(|r| {
            matches!(
                r.status,
                Status::Success | Status::Failed | Status::Cancelled
            ) && r.updated_at < cutoff
        })
        .map(|r| (r.updated_at, r.request_id))
        .collect();
    out.sort();
    out.into_iter().map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::model::{Actor, Priority, RequestType};
    use crate::queue::state::{Enqueued, NewRequest, RetryPolicy};
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn add(q: &mut QueueState, sym: &str, key: Option<&str>, t: DateTime<Utc>) -> Uuid {
        let n = NewRequest {
            request_type: RequestType::MarketBars,
            symbol: sym.into(),
            priority: Priority::try_from(2).unwrap(),
            parameters: json!({}),
            changed_by: Actor::Operator,
            during: Default::default(),
            schedule_key: key.map(String::from),
        };
        match q.prepare_enqueue(n, t).unwrap() {
            Enqueued::Added(r) => q.apply(r).0.request_id,
            Enqueued::Duplicate(_) => panic!("unexpected duplicate"),
        }
    }

    fn claim(q: &mut QueueState, id: Uuid, t: DateTime<Utc>) {
        let r = q
            .prepare_claim(100, "w", Duration::minutes(5), t)
            .into_iter()
            .find(|r| r.request_id == id)
            .expect("claimable");
        q.apply(r);
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            max_age: Duration::hours(1),
            backoff_base: Duration::seconds(5),
            backoff_max: Duration::seconds(60),
        }
    }

    #[test]
    fn only_finished_requests_older_than_the_cutoff_are_archived() {
        let old = at("2026-11-10T15:00:00Z");
        let mut q = QueueState::new();
        let done = add(&mut q, "SPY", Some("k1"), old);
        claim(&mut q, done, old);
        q.apply(q.prepare_succeed(done, json!({}), old).unwrap());
        let failed = add(&mut q, "QQQ", None, old);
        claim(&mut q, failed, old);
        q.apply(
            q.prepare_fail(failed, "bad", false, &policy(), 0.0, old)
                .unwrap(),
        );
        let retrying = add(&mut q, "IWM", None, old);
        claim(&mut q, retrying, old);
        q.apply(
            q.prepare_fail(retrying, "busy", true, &policy(), 0.0, old)
                .unwrap(),
        );
        let cancelled = add(&mut q, "VIX", None, old);
        q.apply(q.prepare_cancel(cancelled, Actor::Operator, old).unwrap());
        let pending = add(&mut q, "ES", None, old);
        let recent = add(&mut q, "NQ", None, at("2026-11-24T15:00:00Z"));
        claim(&mut q, recent, at("2026-11-24T15:00:00Z"));
        q.apply(
            q.prepare_succeed(recent, json!({}), at("2026-11-24T15:00:01Z"))
                .unwrap(),
        );

        let c = cutoff(at("2026-11-25T12:00:00Z"), 7);
        assert_eq!(c, at("2026-11-18T12:00:00Z"));
        let mut want = vec![done, failed, cancelled];
        want.sort_by_key(|id| (q.get(id).unwrap().updated_at, *id));
        assert_eq!(finished_before(&q, c), want);
        assert!(!want.contains(&retrying) && !want.contains(&pending));

        // Forgetting them leaves the open and recent requests, with counts to match.
        for id in &want {
            assert_eq!(q.forget(id).unwrap().request_id, *id);
        }
        assert!(q.forget(&done).is_none(), "forgotten once");
        assert_eq!(q.len(), 3);
        assert_eq!(q.counts().total(), 3);
        assert_eq!(q.counts().get(Status::Pending), 2);
        assert_eq!(q.counts().get(Status::Success), 1);
        assert_eq!(q.counts().get(Status::Failed), 0);
        assert!(q.failed().next().is_none());
        assert!(q.get(&recent).is_some() && q.get(&pending).is_some());
        // `forget` alone keeps the archived occurrence's key known...
        assert!(q.has_schedule_key("k1"));
        assert!(finished_before(&q, c).is_empty());
    }

    #[test]
    fn forget_all_drops_the_keys_only_archived_requests_held() {
        let old = at("2026-11-10T15:00:00Z");
        let mut q = QueueState::new();
        let a = add(&mut q, "SPY", Some("job:2026-11-10"), old);
        q.apply(q.prepare_cancel(a, Actor::Operator, old).unwrap());
        // Another request carries the same key (an operator copy of the occurrence).
        let b = add(&mut q, "QQQ", Some("job:2026-11-10"), old);
        let c = add(&mut q, "IWM", Some("job:2026-11-11"), old);
        q.apply(q.prepare_cancel(c, Actor::Operator, old).unwrap());
        assert_eq!(q.forget_all(&[a, c, Uuid::new_v4()]), 2);
        assert!(q.has_schedule_key("job:2026-11-10"), "still held by {b}");
        assert!(
            !q.has_schedule_key("job:2026-11-11"),
            "held only by an archived request"
        );
        assert_eq!((q.len(), q.counts().total()), (1, 1));
    }
}
