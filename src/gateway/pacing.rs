//! Historical-data pacing as IB defines it, kept on our side so the gateway never has to
//! refuse us with error 162: no identical request within 15 s, at most 5 requests for one
//! contract/exchange/tick type within 2 s, at most 60 requests in any 10 minutes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

// Each window carries a margin over IB's, and a request counts from when its answer came
// (see `answered`), so requests never reach the gateway closer together than paced here.
const IDENTICAL_WINDOW: Duration = Duration::from_secs(16);
const SAME_CONTRACT_WINDOW: Duration = Duration::from_secs(3);
const SAME_CONTRACT_MAX: usize = 5;
const TOTAL_WINDOW: Duration = Duration::from_secs(605);
const TOTAL_MAX: usize = 60;

/// One historical request as pacing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoricalKey {
    /// Contract, exchange and tick type (what_to_show).
    pub contract: String,
    /// Everything else that makes two requests identical (end, duration, bar size, rth).
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct HistoricalPacer {
    sent: VecDeque<(Instant, HistoricalKey)>,
}

impl HistoricalPacer {
    /// How long to wait before `key` may be sent at `now` (zero when it may go now).
    pub fn wait_for(&mut self, key: &HistoricalKey, now: Instant) -> Duration {
        self.sent
            .retain(|(t, _)| now.duration_since(*t) < TOTAL_WINDOW);
        let mut wait = Duration::ZERO;
        let elapsed = |t: &Instant| now.duration_since(*t);
        if let Some((t, _)) = self.sent.iter().rev().find(|(_, k)| k == key) {
            wait = wait.max(IDENTICAL_WINDOW.saturating_sub(elapsed(t)));
        }
        let recent_same: Vec<&Instant> = self
            .sent
            .iter()
            .filter(|(t, k)| k.contract == key.contract && elapsed(t) < SAME_CONTRACT_WINDOW)
            .map(|(t, _)| t)
            .collect();
        if recent_same.len() >= SAME_CONTRACT_MAX {
            let oldest = recent_same[recent_same.len() - SAME_CONTRACT_MAX];
            wait = wait.max(SAME_CONTRACT_WINDOW.saturating_sub(elapsed(oldest)));
        }
        if self.sent.len() >= TOTAL_MAX {
            let mut times: Vec<Instant> = self.sent.iter().map(|(t, _)| *t).collect();
            times.sort();
            let oldest = times[times.len() - TOTAL_MAX];
            wait = wait.max(TOTAL_WINDOW.saturating_sub(elapsed(&oldest)));
        }
        wait
    }

    /// Records that `key` was sent at `now`; returns a ticket for [`Self::answered`].
    pub fn record(&mut self, key: HistoricalKey, now: Instant) -> Instant {
        self.sent.push_back((now, key));
        now
    }

    /// Moves a request's time from when it was handed to the client to when its answer
    /// came: the gateway saw it somewhere in between (the client's rate limiter may have held
    /// it back and let later messages pass), so the later time is the safe one to pace by.
    pub fn answered(&mut self, key: &HistoricalKey, ticket: Instant, now: Instant) {
        if let Some(entry) = self.sent.iter_mut().find(|(t, k)| *t == ticket && k == key) {
            entry.0 = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str, d: &str) -> HistoricalKey {
        HistoricalKey {
            contract: c.into(),
            detail: d.into(),
        }
    }

    #[test]
    fn identical_requests_wait_15_seconds_plus_a_margin() {
        let mut p = HistoricalPacer::default();
        let t = Instant::now();
        assert_eq!(p.wait_for(&key("SPY", "5 D"), t), Duration::ZERO);
        p.record(key("SPY", "5 D"), t);
        assert_eq!(
            p.wait_for(&key("SPY", "5 D"), t + Duration::from_secs(5)),
            Duration::from_secs(11)
        );
        assert_eq!(
            p.wait_for(&key("SPY", "2 D"), t + Duration::from_secs(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_sixth_request_for_one_contract_within_2s_waits_plus_a_margin() {
        let mut p = HistoricalPacer::default();
        let t = Instant::now();
        for i in 0..5 {
            let k = key("SPY", &i.to_string());
            assert_eq!(p.wait_for(&k, t), Duration::ZERO);
            p.record(k, t);
        }
        assert_eq!(
            p.wait_for(&key("SPY", "x"), t + Duration::from_millis(500)),
            Duration::from_millis(2500)
        );
        assert_eq!(p.wait_for(&key("QQQ", "x"), t), Duration::ZERO);
    }

    #[test]
    fn sixty_in_ten_minutes_is_the_ceiling() {
        let mut p = HistoricalPacer::default();
        let t = Instant::now();
        for i in 0..60 {
            let at = t + Duration::from_secs(i * 3);
            let k = key(&format!("C{i}"), "d");
            assert_eq!(p.wait_for(&k, at), Duration::ZERO);
            p.record(k, at);
        }
        let at = t + Duration::from_secs(180);
        assert_eq!(p.wait_for(&key("new", "d"), at), Duration::from_secs(425));
        assert_eq!(
            p.wait_for(&key("new", "d"), t + Duration::from_secs(605)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_request_counts_from_its_answer() {
        let mut p = HistoricalPacer::default();
        let t = Instant::now();
        let k = key("SPY", "5 D");
        let ticket = p.record(k.clone(), t);
        // Answered 3 s later: the identical request waits 16 s from then, not from t.
        p.answered(&k, ticket, t + Duration::from_secs(3));
        assert_eq!(
            p.wait_for(&k, t + Duration::from_secs(10)),
            Duration::from_secs(9)
        );
    }
}
