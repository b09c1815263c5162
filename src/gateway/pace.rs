//! The one pace of every message sent on the gateway connection: the worker's requests and
//! cancels, the streaming manager's subscriptions and cancels, a position poll's cancel.
//!
//! `ibapi`'s rate limiter holds requests back but sends a cancel at once (ibapi 5.5
//! `transport/rate_limiter.rs`: "Cancels ... count against the budget but are sent at
//! once"); were requests queued in it, a cancel would go out ahead of them and the gateway
//! would count more than its 50 a second (error 100). So every sender hands the client no
//! more than the limiter sends in steady state, through this one pace.

use std::time::Duration;

/// Messages spaced as the client's rate limiter sends them in steady state. ibapi's limiter
/// for `n` a second admits a burst of `n / 10` and then `n - n / 10 + 1` a second; handed
/// messages no faster than that, it never holds one back, so the cancels it sends at once
/// never pass requests waiting in it. Each message goes one interval after the one before
/// it actually went: after a stall (a busy machine, a slow disk write) the messages that
/// waited go one by one, not all at once as fixed time slots would send them.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    last: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pace {
    pub fn new(per_second: u32) -> Self {
        let n = per_second.max(1);
        let rate = (n + 1).saturating_sub((n / 10).max(1)).max(1);
        Self {
            interval: Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(rate))),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The time between two messages.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits until one interval has passed since the last message went (first come, first
    /// served; a caller that gives up while waiting takes no slot). Returns the time the
    /// message was let go, the one the next waits an interval from.
    pub async fn wait(&self) -> tokio::time::Instant {
        let mut last = self.last.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until(at + self.interval).await;
        }
        let now = tokio::time::Instant::now();
        *last = Some(now);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn paced_messages_go_one_interval_apart_even_after_a_stall() {
        let pace = Arc::new(Pace::new(45));
        // ibapi's limiter for 45 a second: a burst of 4, then 42 a second.
        assert_eq!(
            pace.interval(),
            Duration::from_nanos(1_000_000_000u64.div_ceil(42))
        );
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (pace, sent) = (Arc::clone(&pace), Arc::clone(&sent));
            tasks.push(tokio::spawn(async move {
                // The time the pace let it go: when the task itself runs next is up to a
                // loaded machine, not the pace.
                let at = pace.wait().await;
                sent.lock().unwrap().push(at);
            }));
        }
        // The waiters are waiting; then a stall of the whole thread: those it kept waiting
        // do not catch up in a burst afterwards.
        tokio::time::sleep(Duration::from_millis(5)).await;
        std::thread::sleep(Duration::from_millis(150));
        for t in tasks {
            t.await.unwrap();
        }
        let mut sent = sent.lock().unwrap().clone();
        sent.sort();
        assert_eq!(sent.len(), 12);
        for w in sent.windows(2) {
            assert!(w[1] - w[0] >= pace.interval(), "{:?} apart", w[1] - w[0]);
        }
    }
}
