//! Leases on PROCESSING requests. A claim leases a request to its worker until
//! `lease_expires_at`; the worker renews the lease while the request runs. Two things free
//! a PROCESSING request without counting an attempt:
//!
//! - a new owner of the lake: holding the owner lock proves that no engine that claimed
//!   anything is still running, so every PROCESSING row it finds is an orphan;
//! - the running owner's periodic sweep, for leases that ended (an outcome that could not
//!   be recorded, a worker that stopped renewing).

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::model::{Event, Request, Status};
use super::state::{QueueError, QueueState};

impl QueueState {
    /// PROCESSING requests whose lease ended at or before `now`, released back to PENDING.
    pub fn prepare_expired_leases(&self, now: DateTime<Utc>) -> Vec<Request> {
        self.processing()
            .filter(|r| r.lease_expires_at.is_none_or(|t| t <= now))
            .filter_map(|r| {
                let owner = r.lease_owner.as_deref().unwrap_or("unknown");
                let reason = format!("lease of {owner} expired without an outcome");
                self.prepare_release(r.request_id, &reason, now).ok()
            })
            .collect()
    }

    /// Every PROCESSING request, released back to PENDING: for a new owner of the lake,
    /// whose lock proves that whoever claimed them has stopped.
    pub fn prepare_release_orphans(&self, now: DateTime<Utc>) -> Vec<Request> {
        self.processing()
            .filter_map(|r| {
                let owner = r.lease_owner.as_deref().unwrap_or("unknown");
                let reason = format!(
                    "released on start: {owner}, which claimed it, stopped without an outcome"
                );
                self.prepare_release(r.request_id, &reason, now).ok()
            })
            .collect()
    }

    /// Extends the lease of a PROCESSING request that `owner` holds to `now + lease`.
    pub fn prepare_renew(
        &self,
        id: Uuid,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Request, QueueError> {
        let current = self.get(&id).ok_or(QueueError::NotFound(id))?;
        if current.status != Status::Processing || current.lease_owner.as_deref() != Some(owner) {
            return Err(QueueError::IllegalTransition {
                id,
                action: "renew the lease of",
                status: current.status,
                allowed: "PROCESSING under this worker's lease",
            });
        }
        let mut r = (**current).clone();
        r.event = Event::LeaseRenewed;
        r.updated_at = now;
        r.lease_expires_at = Some(now + lease);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::model::{Actor, Priority, RequestType};
    use crate::queue::state::{Enqueued, NewRequest};
    use serde_json::json;

    fn t0() -> DateTime<Utc> {
        "2026-11-23T15:00:00Z".parse().unwrap()
    }

    /// A queue with `n` requests claimed by `owner` at t0 for five minutes.
    fn claimed(n: usize, owner: &str) -> (QueueState, Vec<Uuid>) {
        let mut q = QueueState::new();
        for i in 0..n {
            let new = NewRequest {
                request_type: RequestType::MarketBars,
                symbol: format!("S{i}"),
                priority: Priority::NORMAL,
                parameters: json!({}),
                changed_by: Actor::Operator,
                schedule_key: None,
                during: Default::default(),
            };
            let Enqueued::Added(r) = q.prepare_enqueue(new, t0()).unwrap() else {
                panic!("distinct symbols are no duplicates")
            };
            q.apply(r);
        }
        let mut ids = Vec::new();
        for r in q.prepare_claim(n, owner, Duration::minutes(5), t0()) {
            ids.push(r.request_id);
            q.apply(r);
        }
        (q, ids)
    }

    #[test]
    fn the_sweep_releases_only_expired_leases_without_counting_an_attempt() {
        let (mut q, ids) = claimed(3, "w");
        // One request's lease is renewed at t0+4m: it runs on past the others' expiry.
        let renewed = q
            .prepare_renew(
                ids[0],
                "w",
                Duration::minutes(5),
                t0() + Duration::minutes(4),
            )
            .unwrap();
        q.apply(renewed);
        assert!(q
            .prepare_expired_leases(t0() + Duration::minutes(4))
            .is_empty());
        let released = q.prepare_expired_leases(t0() + Duration::minutes(5));
        let mut got: Vec<Uuid> = released.iter().map(|r| r.request_id).collect();
        got.sort();
        let mut want = vec![ids[1], ids[2]];
        want.sort();
        assert_eq!(
            got, want,
            "the lease ends at its exact expiry, renewed ones stay"
        );
        for r in &released {
            assert_eq!(
                (r.status, r.event, r.attempts, r.failures),
                (Status::Pending, Event::Released, 0, 0)
            );
            assert!(r.lease_owner.is_none() && r.lease_expires_at.is_none());
            assert!(r
                .error_message
                .as_deref()
                .unwrap()
                .contains("lease of w expired"));
        }
        for r in released {
            q.apply(r);
        }
        // The renewed one expires five minutes after its renewal.
        assert!(q
            .prepare_expired_leases(t0() + Duration::minutes(8))
            .is_empty());
        assert_eq!(
            q.prepare_expired_leases(t0() + Duration::minutes(9))[0].request_id,
            ids[0]
        );
    }

    #[test]
    fn a_lease_is_renewed_only_by_its_holder_while_processing() {
        let (mut q, ids) = claimed(1, "w");
        let now = t0() + Duration::minutes(2);
        let r = q
            .prepare_renew(ids[0], "w", Duration::minutes(5), now)
            .unwrap();
        assert_eq!(r.event, Event::LeaseRenewed);
        assert_eq!(r.lease_expires_at, Some(now + Duration::minutes(5)));
        assert_eq!((r.status, r.attempts), (Status::Processing, 0));
        assert!(matches!(
            q.prepare_renew(ids[0], "other", Duration::minutes(5), now),
            Err(QueueError::IllegalTransition { .. })
        ));
        q.apply(r);
        let done = q.prepare_succeed(ids[0], json!({}), now).unwrap();
        q.apply(done);
        assert!(q
            .prepare_renew(ids[0], "w", Duration::minutes(5), now)
            .is_err());
        assert!(matches!(
            q.prepare_renew(Uuid::new_v4(), "w", Duration::minutes(5), now),
            Err(QueueError::NotFound(_))
        ));
    }

    #[test]
    fn a_new_owner_releases_every_processing_request_whatever_its_lease() {
        let (mut q, ids) = claimed(4, "ibq-41");
        // Long before any lease ends.
        let now = t0() + Duration::seconds(1);
        assert!(q.prepare_expired_leases(now).is_empty());
        let released = q.prepare_release_orphans(now);
        assert_eq!(released.len(), 4);
        for r in &released {
            assert!(ids.contains(&r.request_id));
            assert_eq!((r.status, r.attempts), (Status::Pending, 0));
            assert!(r.error_message.as_deref().unwrap().contains("ibq-41"));
        }
        for r in released {
            q.apply(r);
        }
        assert_eq!(q.counts().processing, 0);
        assert_eq!(q.counts().pending, 4);
        assert!(q.prepare_release_orphans(now).is_empty());
    }
}
