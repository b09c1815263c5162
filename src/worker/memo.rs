//! What a request already fetched that its next attempt may use: contract lookups and the
//! option chain definition (expiries), which do not change during a trading day. A request
//! released by a lost connection, or retried after a passing error, starts again without
//! asking for them twice.
//!
//! Quotes are never kept. A snapshot row carries one time and one underlying price for the
//! whole chain, and quotes from before a gateway restart belong to a session IB has dropped:
//! mixing them with quotes taken after it would write a chain that never existed at one
//! moment. Each attempt takes all of its quotes anew.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use ibapi::contracts::ContractDetails;
use uuid::Uuid;

/// How long what one attempt fetched is offered to the next (well inside a trading day).
pub const KEEP_FOR: Duration = Duration::from_secs(600);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update is one insert or remove: a poisoned map is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one request fetched, by the question asked.
#[derive(Debug)]
pub struct Memo {
    since: Instant,
    /// The New York trading day it was fetched on.
    day: NaiveDate,
    details: Mutex<HashMap<String, Vec<ContractDetails>>>,
    expirations: Mutex<HashMap<String, Vec<String>>>,
}

impl Memo {
    fn new(day: NaiveDate, now: Instant) -> Self {
        Self {
            since: now,
            day,
            details: Mutex::default(),
            expirations: Mutex::default(),
        }
    }

    fn usable(&self, day: NaiveDate, now: Instant) -> bool {
        self.day == day && now.duration_since(self.since) < KEEP_FOR
    }

    pub fn details(&self, key: &str) -> Option<Vec<ContractDetails>> {
        lock(&self.details).get(key).cloned()
    }

    pub fn keep_details(&self, key: String, details: &[ContractDetails]) {
        lock(&self.details).insert(key, details.to_vec());
    }

    pub fn expirations(&self, key: &str) -> Option<Vec<String>> {
        lock(&self.expirations).get(key).cloned()
    }

    pub fn keep_expirations(&self, key: String, expirations: &[String]) {
        lock(&self.expirations).insert(key, expirations.to_vec());
    }
}

/// The memos of requests that may run again.
#[derive(Debug, Default)]
pub struct Memos {
    by_request: Mutex<HashMap<Uuid, Arc<Memo>>>,
}

impl Memos {
    /// The memo of request `id`: what an earlier attempt fetched on the same trading day
    /// within [`KEEP_FOR`], else an empty one.
    pub fn for_request(&self, id: Uuid, day: NaiveDate, now: Instant) -> Arc<Memo> {
        let mut m = lock(&self.by_request);
        m.retain(|_, memo| memo.usable(day, now));
        Arc::clone(m.entry(id).or_insert_with(|| Arc::new(Memo::new(day, now))))
    }

    /// The request will not run again (it succeeded or failed for good).
    pub fn forget(&self, id: Uuid) {
        lock(&self.by_request).remove(&id);
    }

    pub fn len(&self) -> usize {
        lock(&self.by_request).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(conid: i32) -> ContractDetails {
        let mut d = ContractDetails::default();
        d.contract.contract_id = conid;
        d
    }

    #[test]
    fn a_later_attempt_on_the_same_day_sees_what_an_earlier_one_fetched() {
        let memos = Memos::default();
        let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let t = Instant::now();
        let first = memos.for_request(id, day, t);
        assert!(first.details("SPY").is_none());
        first.keep_details("SPY".into(), &[details(756733)]);
        first.keep_expirations("SPY".into(), &["20261218".into()]);

        let again = memos.for_request(id, day, t + Duration::from_secs(30));
        assert_eq!(
            again.details("SPY").unwrap()[0].contract.contract_id,
            756733
        );
        assert_eq!(again.expirations("SPY").unwrap(), vec!["20261218"]);
        // Another request has its own.
        assert!(memos.for_request(other, day, t).details("SPY").is_none());

        // Not on the next day, nor after KEEP_FOR.
        let next_day = day.succ_opt().unwrap();
        assert!(memos.for_request(id, next_day, t).details("SPY").is_none());
        let later = memos.for_request(Uuid::new_v4(), day, t + KEEP_FOR);
        assert!(later.details("SPY").is_none());

        memos.forget(id);
        assert!(memos
            .for_request(id, day, t + KEEP_FOR)
            .details("SPY")
            .is_none());
    }

    #[test]
    fn stale_memos_are_dropped() {
        let memos = Memos::default();
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let t = Instant::now();
        for _ in 0..5 {
            memos.for_request(Uuid::new_v4(), day, t);
        }
        assert_eq!(memos.len(), 5);
        memos.for_request(Uuid::new_v4(), day, t + KEEP_FOR + Duration::from_secs(1));
        assert_eq!(memos.len(), 1);
    }
}
