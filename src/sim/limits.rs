//! The limits a gateway enforces: market-data lines, historical pacing, message rate.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Market-data lines shared by every connection (they belong to the account).
#[derive(Debug)]
pub struct LineBudget {
    limit: u32,
    in_use: u32,
    max_in_use: u32,
    /// Line-seconds held so far, up to `changed`.
    held: f64,
    changed: Instant,
}

impl LineBudget {
    /// A budget of `limit` lines.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            in_use: 0,
            max_in_use: 0,
            held: 0.0,
            changed: Instant::now(),
        }
    }

    /// Takes a line; false when all are in use (the request gets error 101).
    pub fn try_acquire(&mut self) -> bool {
        if self.in_use >= self.limit {
            return false;
        }
        self.account();
        self.in_use += 1;
        self.max_in_use = self.max_in_use.max(self.in_use);
        true
    }

    /// Gives a line back.
    pub fn release(&mut self, lines: u32) {
        self.account();
        self.in_use = self.in_use.saturating_sub(lines);
    }

    /// Lines in use now.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    /// Most lines ever in use at once.
    pub fn max_in_use(&self) -> u32 {
        self.max_in_use
    }

    /// Line-seconds held since start: the lines in use integrated over time.
    pub fn line_seconds(&self) -> f64 {
        self.held + self.in_use as f64 * self.changed.elapsed().as_secs_f64()
    }

    /// The account's limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    fn account(&mut self) {
        let now = Instant::now();
        self.held += self.in_use as f64 * (now - self.changed).as_secs_f64();
        self.changed = now;
    }
}

/// Why a historical request breaks IB's pacing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacingViolation {
    /// The same request within 15 seconds.
    #[error("Historical Market Data Service error message:Historical data request pacing violation: identical request within 15 seconds")]
    Identical,
    /// Six or more requests for one contract/exchange/tick type within 2 seconds.
    #[error("Historical Market Data Service error message:Historical data request pacing violation: 6 or more requests for the same contract within 2 seconds")]
    SameContractBurst,
    /// More than 60 requests within 10 minutes.
    #[error("Historical Market Data Service error message:Historical data request pacing violation: more than 60 requests within 10 minutes")]
    TooMany,
}

const IDENTICAL_WINDOW: Duration = Duration::from_secs(15);
const BURST_WINDOW: Duration = Duration::from_secs(2);
const BURST_MAX: usize = 5;
const LONG_WINDOW: Duration = Duration::from_secs(600);
const LONG_MAX: usize = 60;

/// IB's historical pacing rules over real (wall) time, as a gateway applies them per account.
#[derive(Debug, Default)]
pub struct HistoricalPacing {
    /// Accepted requests: when, the whole request, the contract/exchange/tick-type group.
    accepted: VecDeque<(Instant, String, String)>,
}

impl HistoricalPacing {
    /// Records a request if it keeps to the rules. `request` identifies the whole request,
    /// `group` its contract, exchange and tick type.
    pub fn check(
        &mut self,
        now: Instant,
        request: &str,
        group: &str,
    ) -> Result<(), PacingViolation> {
        while self
            .accepted
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) > LONG_WINDOW)
        {
            self.accepted.pop_front();
        }
        let within = |t: &Instant, w: Duration| now.saturating_duration_since(*t) <= w;
        if self
            .accepted
            .iter()
            .any(|(t, r, _)| r == request && within(t, IDENTICAL_WINDOW))
        {
            return Err(PacingViolation::Identical);
        }
        let burst = self
            .accepted
            .iter()
            .filter(|(t, _, g)| g == group && within(t, BURST_WINDOW))
            .count();
        if burst >= BURST_MAX {
            return Err(PacingViolation::SameContractBurst);
        }
        if self.accepted.len() >= LONG_MAX {
            return Err(PacingViolation::TooMany);
        }
        self.accepted
            .push_back((now, request.to_string(), group.to_string()));
        Ok(())
    }
}

/// What the message-rate limiter says about one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the limit: process it.
    Ok,
    /// Over the limit: reject it with error 100.
    Exceeded,
    /// A sustained flood: disconnect the client.
    Disconnect,
}

/// Per-connection message rate, judged over every one-second window (a sliding window, the
/// same bound `ibapi`'s limiter keeps: "at most `n` messages in any one-second window").
/// A message that finds `limit` others within the second before it is answered with error
/// 100; more than twice the limit within a second, again a second or more after such a
/// flood began (without a pause of two seconds between), disconnects.
#[derive(Debug)]
pub struct MessageRate {
    limit: u32,
    /// Arrival times within the last second.
    recent: VecDeque<Instant>,
    /// When the current flood began, and when it was last over twice the limit.
    flood: Option<(Instant, Instant)>,
}

const RATE_WINDOW: Duration = Duration::from_secs(1);
/// A flood that lasts this long disconnects.
const FLOOD_LASTS: Duration = Duration::from_secs(1);
/// A pause this long ends a flood.
const FLOOD_PAUSE: Duration = Duration::from_secs(2);

impl MessageRate {
    /// `limit` messages per second (0 = unlimited).
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            recent: VecDeque::new(),
            flood: None,
        }
    }

    /// Counts one message arriving at `now` (every message the client sent counts, refused
    /// or not: the limit is on what the client sends).
    pub fn on_message(&mut self, now: Instant) -> RateVerdict {
        if self.limit == 0 {
            return RateVerdict::Ok;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            self.recent.pop_front();
        }
        let before = self.recent.len();
        self.recent.push_back(now);
        if before >= self.limit.saturating_mul(2) as usize {
            let began = match self.flood {
                Some((began, last)) if now.saturating_duration_since(last) < FLOOD_PAUSE => began,
                _ => now,
            };
            self.flood = Some((began, now));
            if now.saturating_duration_since(began) >= FLOOD_LASTS {
                return RateVerdict::Disconnect;
            }
        }
        if before >= self.limit as usize {
            RateVerdict::Exceeded
        } else {
            RateVerdict::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded() {
        let mut lines = LineBudget::new(2);
        assert!(lines.try_acquire() && lines.try_acquire());
        assert!(!lines.try_acquire());
        lines.release(1);
        assert!(lines.try_acquire());
        assert_eq!(lines.max_in_use(), 2);
    }

    #[test]
    fn pacing_rules() {
        let t0 = Instant::now();
        let mut p = HistoricalPacing::default();
        assert_eq!(p.check(t0, "a", "spy"), Ok(()));
        assert_eq!(p.check(t0, "a", "spy"), Err(PacingViolation::Identical));
        for i in 0..4 {
            assert_eq!(p.check(t0, &format!("b{i}"), "spy"), Ok(()));
        }
        assert_eq!(
            p.check(t0, "c", "spy"),
            Err(PacingViolation::SameContractBurst)
        );
        assert_eq!(p.check(t0 + Duration::from_secs(3), "c", "spy"), Ok(()));
        let mut p = HistoricalPacing::default();
        for i in 0..60 {
            assert_eq!(
                p.check(
                    t0 + Duration::from_secs(i * 3),
                    &i.to_string(),
                    &i.to_string()
                ),
                Ok(())
            );
        }
        assert_eq!(
            p.check(t0 + Duration::from_secs(200), "x", "x"),
            Err(PacingViolation::TooMany)
        );
    }

    #[test]
    fn rate_then_flood() {
        let t0 = Instant::now();
        let mut r = MessageRate::new(50);
        let verdicts: Vec<_> = (0..150).map(|_| r.on_message(t0)).collect();
        assert_eq!(verdicts[49], RateVerdict::Ok);
        assert_eq!(verdicts[50], RateVerdict::Exceeded);
        assert!(!verdicts.contains(&RateVerdict::Disconnect));
        let t1 = t0 + Duration::from_millis(1100);
        let later: Vec<_> = (0..150).map(|_| r.on_message(t1)).collect();
        assert_eq!(later.last(), Some(&RateVerdict::Disconnect));
    }

    #[test]
    fn any_one_second_window_is_judged_not_fixed_seconds() {
        // 40 messages late in one second and 40 early in the next: 80 within half a
        // second, which fixed windows starting at t0 would let through.
        let t0 = Instant::now();
        let mut r = MessageRate::new(50);
        let late: Vec<_> = (0..40)
            .map(|i| r.on_message(t0 + Duration::from_millis(700 + i * 5)))
            .collect();
        assert!(late.iter().all(|v| *v == RateVerdict::Ok));
        let early: Vec<_> = (0..40)
            .map(|i| r.on_message(t0 + Duration::from_millis(1_000 + i * 5)))
            .collect();
        assert_eq!(early[9], RateVerdict::Ok);
        assert_eq!(early[10], RateVerdict::Exceeded);
    }

    #[test]
    fn an_even_pace_at_the_limit_is_never_refused() {
        let t0 = Instant::now();
        let mut r = MessageRate::new(50);
        // 50 a second, one every 20 ms, for ten seconds.
        assert!((0..500)
            .map(|i| r.on_message(t0 + Duration::from_millis(i * 20)))
            .all(|v| v == RateVerdict::Ok));
        // One more within the same 20 ms is the 51st in a second.
        assert_eq!(
            r.on_message(t0 + Duration::from_millis(499 * 20 + 1)),
            RateVerdict::Exceeded
        );
    }
}
