//! Adding a request: its symbol and parameters checked, the open duplicate found instead of
//! a second copy, and the scheduler occurrence keys that say which slot a request answers.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Enqueued, NewRequest, QueueError, QueueState, GIVEN_PARAMETERS};
use crate::market::calendar::MarketCalendar;
use crate::queue::model::{DedupKey, Event, Request, Status};
use crate::queue::params::Params;

impl QueueState {
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
    use chrono::Duration;
    use serde_json::json;

    use crate::queue::model::RequestType;
    use crate::queue::state::test_support::{add, new, t0};

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
    fn symbols_are_checked() {
        assert_eq!(normalize_symbol(" spy ").unwrap(), "SPY");
        assert!(normalize_symbol("").is_err());
        assert!(normalize_symbol("SP Y").is_err());
        assert!(normalize_symbol("ABCDEFGHIJKLMN").is_err());
        let e = normalize_symbol("SP\x1bY").unwrap_err().to_string();
        assert!(e.contains("`SP\\x1bY`") && !e.contains('\x1b'), "{e}");
    }
}
