//! Reading the state: single requests, counts, the change generation, and each status's
//! requests in the order the console and the worker need them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{QueueState, StatusCounts};
use crate::queue::model::{During, Priority, Request};

impl QueueState {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use serde_json::json;

    use crate::queue::model::RequestType;
    use crate::queue::state::test_support::{add, new, t0};

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
}
