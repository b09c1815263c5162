//! Choosing what runs: due PENDING requests in order of service, claimed as leased
//! PROCESSING rows, and the holds that tell when a request outside its market-hours window
//! will run.

use chrono::{DateTime, Duration, Utc};

use super::{later, stamp, QueueState};
use crate::market::calendar::MarketCalendar;
use crate::queue::model::{Actor, During, Event, Request, Status};

impl QueueState {
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
                stamp(&mut r, Event::Claimed, Actor::Worker, now);
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
                stamp(&mut r, Event::Held, Actor::Worker, now);
                Some(r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::queue::model::RequestType;
    use crate::queue::state::test_support::{add, new, policy, t0};
    use crate::queue::state::Enqueued;

    /// A New York wall-clock time on Tuesday 2026-11-24 (EST) as a UTC instant.
    fn ny(hm: &str) -> DateTime<Utc> {
        format!("2026-11-24T{hm}:00-05:00").parse().unwrap()
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
}
