//! The runner: wakes at each due slot and hands the occurrences to a sink (the queue).
//!
//! Idempotence comes from the sink: an occurrence whose key the sink already has is skipped,
//! so a restart (or two runners) never enqueues a slot twice. What a runner enqueues:
//! - on its first tick (a start), only the latest slot of the current New York day per job
//!   (one occurrence per symbol): older slots are stale polls and are dropped, not replayed;
//! - afterwards, every slot in `(previous tick, now]`, so a slow wake-up or a fast clock loses
//!   nothing;
//! - after a failed submission, or when the process was not scheduled for [`RESUME_GAP`] of
//!   real time (suspend, debugger), it catches up again as on a start rather than bursting
//!   every missed slot.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::calendar::MarketCalendar;
use super::clock::Clock;
use super::schedule::{Occurrence, Schedule};

/// Longest real sleep: the clock is re-read at least this often, so a clock that is changed
/// (or a fast clock) is followed closely.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// A real-time gap between ticks longer than this means the process was frozen; the next tick
/// catches up like a start instead of enqueueing everything that was missed.
pub const RESUME_GAP: Duration = Duration::from_secs(30);

/// Where due occurrences go; the engine implements it with the request queue.
///
/// Implementations may write `async fn` for both methods. `has_key` followed by `submit` is
/// not atomic: if several runners can share one queue, `submit` itself must refuse a key the
/// queue already holds.
pub trait OccurrenceSink: Send + Sync {
    /// Whether a request with this occurrence key was already enqueued (in any state).
    fn has_key(&self, key: &str) -> impl Future<Output = bool> + Send;
    /// Enqueues the occurrence. An error is logged and the slot retried by the next catch-up.
    fn submit(&self, occ: Occurrence) -> impl Future<Output = anyhow::Result<()>> + Send;
}

impl<T: OccurrenceSink> OccurrenceSink for Arc<T> {
    fn has_key(&self, key: &str) -> impl Future<Output = bool> + Send {
        (**self).has_key(key)
    }

    fn submit(&self, occ: Occurrence) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).submit(occ)
    }
}

/// The runner's state between ticks; [`run`] drives it from a clock, tests drive it by hand.
#[derive(Debug)]
pub struct Runner<S> {
    schedule: Schedule,
    calendar: MarketCalendar,
    sink: S,
    /// The `now` of the last successful tick; `None` until the first one (catch-up mode).
    cursor: Option<DateTime<Utc>>,
}

impl<S: OccurrenceSink> Runner<S> {
    /// A runner that has not ticked yet: its first tick catches up.
    pub fn new(schedule: Schedule, calendar: MarketCalendar, sink: S) -> Self {
        Self {
            schedule,
            calendar,
            sink,
            cursor: None,
        }
    }

    /// The sink occurrences go to.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Forgets the last tick: the next one catches up as after a start.
    pub fn resume(&mut self) {
        self.cursor = None;
    }

    /// Submits what is due at `now` and returns how many occurrences were submitted.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> usize {
        if !self.schedule.is_enabled() {
            return 0;
        }
        let due = match self.cursor {
            None => self.schedule.latest_due_today(now, &self.calendar),
            // A clock that went back (or did not move) has nothing new to give.
            Some(cursor) if now <= cursor => return 0,
            Some(cursor) => self
                .schedule
                .occurrences_between(cursor, now, &self.calendar),
        };
        let mut submitted = 0;
        let mut failed = false;
        for occ in due {
            if self.sink.has_key(&occ.key).await {
                tracing::debug!(key = %occ.key, "already enqueued");
                continue;
            }
            let key = occ.key.clone();
            match self.sink.submit(occ).await {
                Ok(()) => {
                    tracing::debug!(%key, "enqueued");
                    submitted += 1;
                }
                Err(e) => {
                    tracing::warn!(%key, error = %e, "the scheduler could not enqueue this occurrence into ib_request_queue; it catches it up later");
                    failed = true;
                }
            }
        }
        // After a failure, catch up next time: the failed slot is retried if it is still the
        // latest of its job, and a sink outage does not turn into a burst when it ends.
        self.cursor = if failed { None } else { Some(now) };
        submitted
    }

    /// The earliest slot of any job strictly after `t`.
    pub fn next_slot_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.next_slot_after(t, &self.calendar)
    }
}

/// Runs the schedule until `shutdown` completes: ticks, then sleeps the real time until the next
/// slot (simulated wait / clock speed, at most [`MAX_SLEEP`]). Returns at once when the
/// scheduler is disabled.
pub async fn run<S: OccurrenceSink>(
    schedule: Schedule,
    calendar: MarketCalendar,
    clock: Arc<dyn Clock>,
    sink: S,
    shutdown: impl Future<Output = ()>,
) {
    if !schedule.is_enabled() {
        tracing::info!("scheduler disabled ([scheduler] enabled = false)");
        return;
    }
    tracing::info!(
        jobs = schedule.jobs().len(),
        now = %crate::market::et::stamp(clock.now()),
        speed = clock.speed(),
        "scheduler started"
    );
    let mut runner = Runner::new(schedule, calendar, sink);
    tokio::pin!(shutdown);
    let mut last_tick = Instant::now();
    loop {
        if last_tick.elapsed() > RESUME_GAP {
            tracing::warn!(
                gap_secs = last_tick.elapsed().as_secs(),
                "scheduler was not running for a while; catching up only the latest slots"
            );
            runner.resume();
        }
        let now = clock.now();
        runner.tick(now).await;
        last_tick = Instant::now();
        let wait = runner
            .next_slot_after(now)
            .map_or(MAX_SLEEP, |next| clock.real_duration(next - clock.now()))
            .min(MAX_SLEEP);
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("scheduler stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::clock::FastClock;
    use crate::scheduler::config::SchedulerConfig;
    use crate::scheduler::test_support::{defaults, utc};
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// Remembers every submission (duplicates included, so tests can see them).
    #[derive(Default)]
    struct MemorySink {
        submitted: Mutex<Vec<Occurrence>>,
        failing: AtomicBool,
        /// Fires when an occurrence of this job arrives.
        stop_after_job: Option<(&'static str, tokio::sync::Notify)>,
    }

    impl MemorySink {
        fn keys(&self) -> Vec<String> {
            let s = self.submitted.lock().unwrap();
            s.iter().map(|o| o.key.clone()).collect()
        }
    }

    impl OccurrenceSink for MemorySink {
        async fn has_key(&self, key: &str) -> bool {
            self.submitted.lock().unwrap().iter().any(|o| o.key == key)
        }

        async fn submit(&self, occ: Occurrence) -> anyhow::Result<()> {
            if self.failing.load(Ordering::SeqCst) {
                anyhow::bail!("queue unavailable");
            }
            if let Some((job, notify)) = &self.stop_after_job {
                if occ.job == *job {
                    notify.notify_one();
                }
            }
            self.submitted.lock().unwrap().push(occ);
            Ok(())
        }
    }

    /// Ticks `runner` every `step` seconds from `from` to `to` inclusive.
    async fn step<S: OccurrenceSink>(
        runner: &mut Runner<S>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: i64,
    ) {
        let mut t = from;
        while t <= to {
            runner.tick(t).await;
            t += chrono::Duration::seconds(step);
        }
    }

    /// A whole day through `run` and a fast clock: exactly the day's plan, in order, once.
    async fn fast_day(date: &str, start: &str) {
        let (schedule, cal) = defaults();
        let expected = schedule.occurrences_on(date.parse().unwrap(), &cal);
        let sink = Arc::new(MemorySink {
            stop_after_job: Some(("derived_stats_close", tokio::sync::Notify::new())),
            ..Default::default()
        });
        // 12.5 simulated hours in about a quarter of a real second.
        let clock = Arc::new(FastClock::new(utc(start), 200_000.0));
        let stop = {
            let sink = sink.clone();
            async move { sink.stop_after_job.as_ref().unwrap().1.notified().await }
        };
        // The timeout only guards against a hang; the assertions do not depend on timing.
        tokio::time::timeout(
            Duration::from_secs(120),
            run(schedule, cal, clock, sink.clone(), stop),
        )
        .await
        .expect("the day's last job (16:30 derived_stats) was never submitted");
        let got = sink.submitted.lock().unwrap().clone();
        assert_eq!(got.len(), expected.len(), "{date}");
        assert_eq!(got, expected, "{date}");
    }

    #[tokio::test]
    async fn a_fast_clock_day_enqueues_exactly_the_plan() {
        // 03:59 New York on Monday 2026-11-23.
        fast_day("2026-11-23", "2026-11-23T08:59:00Z").await;
    }

    #[tokio::test]
    async fn a_fast_clock_early_close_day_enqueues_exactly_the_shortened_plan() {
        fast_day("2026-11-27", "2026-11-27T08:59:00Z").await;
    }

    #[tokio::test]
    async fn a_restart_neither_duplicates_nor_bursts() {
        let (schedule, cal) = defaults();
        let sink = Arc::new(MemorySink::default());
        // First process: 08:00 to 11:00:05 New York, then it dies.
        let mut a = Runner::new(schedule.clone(), cal.clone(), sink.clone());
        step(
            &mut a,
            utc("2026-11-23T13:00:00Z"),
            utc("2026-11-23T16:00:05Z"),
            13,
        )
        .await;
        let before = sink.keys().len();
        // 3+3 morning, 19 slots of chains and futures (09:30..=11:00) x3, 181 position polls.
        assert_eq!(before, 6 + 19 * 3 * 2 + 181);

        // Restarted at once: everything due is already enqueued.
        let mut b = Runner::new(schedule.clone(), cal.clone(), sink.clone());
        assert_eq!(b.tick(utc("2026-11-23T16:00:06Z")).await, 0);

        // Restarted 17 minutes later: only the latest slot of each job and symbol.
        let mut c = Runner::new(schedule.clone(), cal.clone(), sink.clone());
        assert_eq!(c.tick(utc("2026-11-23T16:17:10Z")).await, 3 + 3 + 1);
        let keys: HashSet<String> = sink.keys().into_iter().collect();
        assert!(keys.contains("option_chain_regular@2026-11-23T16:15:00Z#SPY"));
        assert!(!keys.contains("option_chain_regular@2026-11-23T16:10:00Z#SPY"));
        assert!(keys.contains("positions_regular@2026-11-23T16:17:00Z"));
        assert!(!keys.contains("positions_regular@2026-11-23T16:16:30Z"));

        // It then runs to the end of the day.
        step(
            &mut c,
            utc("2026-11-23T16:17:23Z"),
            utc("2026-11-24T05:00:00Z"),
            13,
        )
        .await;
        let all = sink.keys();
        let unique: HashSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "no key enqueued twice");
        // The full day (1255) minus the skipped slots: chains and futures 11:05 and 11:10
        // (2 x 3 each) and position polls 11:00:30..=11:16:30 (33).
        assert_eq!(all.len(), 1255 - 6 - 6 - 33);
    }

    #[tokio::test]
    async fn holidays_and_weekends_enqueue_nothing() {
        let (schedule, cal) = defaults();
        let mut r = Runner::new(schedule, cal, MemorySink::default());
        // Thanksgiving 2026 (Thursday, 00:00 New York) to Friday 00:00, then Saturday to Monday.
        step(
            &mut r,
            utc("2026-11-26T05:00:00Z"),
            utc("2026-11-27T04:59:59Z"),
            29,
        )
        .await;
        // Skip the (early-close) Friday: restart on Saturday.
        r.resume();
        step(
            &mut r,
            utc("2026-11-28T05:00:00Z"),
            utc("2026-11-30T04:59:59Z"),
            29,
        )
        .await;
        assert_eq!(r.sink().keys(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_failed_submission_is_retried_by_catching_up() {
        let (schedule, cal) = defaults();
        let mut r = Runner::new(schedule, cal, MemorySink::default());
        // 09:29:50 New York: catches up the 08:30 jobs.
        assert_eq!(r.tick(utc("2026-11-23T14:29:50Z")).await, 6);
        r.sink().failing.store(true, Ordering::SeqCst);
        assert_eq!(r.tick(utc("2026-11-23T14:30:10Z")).await, 0);
        r.sink().failing.store(false, Ordering::SeqCst);
        // The 09:30 slots are retried; the 09:30:30 poll is superseded by 09:31:00.
        assert_eq!(r.tick(utc("2026-11-23T14:31:10Z")).await, 3 + 3 + 1);
        let keys = r.sink().keys();
        assert!(keys.contains(&"option_chain_regular@2026-11-23T14:30:00Z#QQQ".to_string()));
        assert!(keys.contains(&"positions_regular@2026-11-23T14:31:00Z".to_string()));
        assert!(!keys.contains(&"positions_regular@2026-11-23T14:30:30Z".to_string()));
    }

    #[tokio::test]
    async fn a_disabled_scheduler_enqueues_nothing() {
        let config = SchedulerConfig {
            enabled: false,
            ..SchedulerConfig::default()
        };
        let schedule = Schedule::from_config(&config).unwrap();
        let sink = Arc::new(MemorySink::default());
        let clock = Arc::new(FastClock::new(utc("2026-11-23T15:00:00Z"), 1.0));
        // Returns by itself although shutdown never comes.
        run(
            schedule,
            MarketCalendar::default(),
            clock,
            sink.clone(),
            std::future::pending(),
        )
        .await;
        assert!(sink.keys().is_empty());
    }
}
