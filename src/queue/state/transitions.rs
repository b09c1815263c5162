//! The checked transitions of one request after it was added: the worker's outcomes
//! (succeed, fail with or without a retry, release) and the operator's actions (retry,
//! reprioritize, cancel, dismiss, release).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{later, stamp, QueueError, QueueState, RetryPolicy, DISMISS_REASON};
use crate::queue::model::{Actor, Event, Priority, Request, Status};

/// A request leaving PROCESSING holds no lease any more.
fn unlease(r: &mut Request) {
    r.lease_owner = None;
    r.lease_expires_at = None;
}

impl QueueState {
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
        stamp(&mut r, Event::Retried, by, now);
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
        stamp(&mut r, Event::Reprioritized, by, now);
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
        stamp(&mut r, Event::Cancelled, by, now);
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
        stamp(&mut r, Event::Dismissed, by, now);
        Ok(r)
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
        stamp(&mut r, Event::Succeeded, Actor::Worker, now);
        unlease(&mut r);
        r.attempts += 1;
        r.result_data = Some(result_data);
        r.error_message = None;
        r.next_attempt_at = None;
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
        unlease(&mut r);
        let young_enough = now - r.created_at < policy.max_age;
        let event = if retryable && r.failures < policy.max_attempts && young_enough {
            r.status = Status::Pending;
            r.next_attempt_at = Some(later(now, policy.backoff(r.failures, jitter)));
            Event::RetryScheduled
        } else {
            r.status = Status::Failed;
            r.next_attempt_at = None;
            Event::Failed
        };
        stamp(&mut r, event, Actor::Worker, now);
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
        stamp(&mut r, Event::Released, by, now);
        unlease(&mut r);
        r.error_message = Some(reason.to_string());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use serde_json::json;

    use crate::queue::model::RequestType;
    use crate::queue::state::test_support::{add, new, policy, t0};
    use crate::queue::state::RELEASED_BY_OPERATOR;

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
}
