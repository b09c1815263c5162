//! What the scheduler shows a front end: each job, its next run, and how each of today's
//! slots went, taken from the queue's requests with the slot's occurrence key.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::calendar::{new_york_date, MarketCalendar};
use super::schedule::Schedule;
use crate::queue::Status;

/// A slot due less than this long ago with no request yet is still being enqueued (the
/// runner wakes at the slot), not missed.
const GRACE_SECS: i64 = 60;

/// How one occurrence (or one slot, all its symbols together) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its slot has not come yet.
    Upcoming,
    /// Its request succeeded.
    Done,
    /// Its request was cancelled.
    Cancelled,
    /// Its request waits in the queue (or its slot just came).
    Pending,
    /// Its request runs now.
    Running,
    /// Its slot passed and no request carries its key (the engine was not running).
    Missed,
    /// Its request failed.
    Failed,
}

impl Outcome {
    /// The word the console shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Upcoming => "upcoming",
            Outcome::Done => "done",
            Outcome::Cancelled => "cancelled",
            Outcome::Pending => "pending",
            Outcome::Running => "running",
            Outcome::Missed => "missed",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome of an occurrence whose slot is `slot`, from what the queue holds under
    /// its key (`None`: no request has it).
    pub fn of(status: Option<Status>, slot: DateTime<Utc>, now: DateTime<Utc>) -> Outcome {
        match status {
            Some(Status::Success) => Outcome::Done,
            Some(Status::Cancelled) => Outcome::Cancelled,
            Some(Status::Pending) => Outcome::Pending,
            Some(Status::Processing) => Outcome::Running,
            Some(Status::Failed) => Outcome::Failed,
            None if slot > now => Outcome::Upcoming,
            None if (now - slot).num_seconds() < GRACE_SECS => Outcome::Pending,
            None => Outcome::Missed,
        }
    }
}

/// One of today's slots of a job: when, and how each of its occurrences went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotView {
    pub at: DateTime<Utc>,
    /// The worst of its occurrences (failed before missed before pending … before done).
    pub outcome: Outcome,
    /// Per symbol (empty symbol for a job without symbols), in the job's order.
    pub occurrences: Vec<(String, Outcome)>,
}

/// A scheduler job as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub name: String,
    /// The queue's request type name, e.g. `option_chain`.
    pub request_type: String,
    pub symbols: Vec<String>,
    /// `at 08:30` or `every 5m during regular`.
    pub timing: String,
    pub priority: u8,
    /// Its first slot strictly after now; none within 400 days leaves it empty.
    pub next_run: Option<DateTime<Utc>>,
    /// Every slot of the current New York day, in order.
    pub today: Vec<SlotView>,
}

impl JobView {
    /// How many of today's slots ended each way, in [`Outcome`] order, only those with any.
    pub fn tally(&self) -> Vec<(Outcome, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for s in &self.today {
            *counts.entry(s.outcome).or_insert(0usize) += 1;
        }
        counts.into_iter().collect()
    }
}

/// The occurrence keys of every slot of `now`'s New York day, to ask the queue about.
pub fn today_keys(
    schedule: &Schedule,
    calendar: &MarketCalendar,
    now: DateTime<Utc>,
) -> Vec<String> {
    let today = new_york_date(now);
    schedule
        .jobs()
        .iter()
        .flat_map(|job| {
            job.slots_on(today, calendar)
                .into_iter()
                .flat_map(move |slot| job.occurrences_at(slot))
        })
        .map(|o| o.key)
        .collect()
}

/// Every job with its next run and today's slots; `status` says what the queue holds under
/// an occurrence key.
pub fn job_views(
    schedule: &Schedule,
    calendar: &MarketCalendar,
    now: DateTime<Utc>,
    status: impl Fn(&str) -> Option<Status>,
) -> Vec<JobView> {
    let today = new_york_date(now);
    schedule
        .jobs()
        .iter()
        .map(|job| {
            let slots = job
                .slots_on(today, calendar)
                .into_iter()
                .map(|slot| {
                    let occurrences: Vec<(String, Outcome)> = job
                        .occurrences_at(slot)
                        .into_iter()
                        .map(|o| (o.symbol, Outcome::of(status(&o.key), slot, now)))
                        .collect();
                    let outcome = occurrences
                        .iter()
                        .map(|(_, o)| *o)
                        .max()
                        .unwrap_or(Outcome::Upcoming);
                    SlotView {
                        at: slot,
                        outcome,
                        occurrences,
                    }
                })
                .collect();
            JobView {
                name: job.name.clone(),
                request_type: job.request_type.as_str().to_string(),
                symbols: job.symbols.clone(),
                timing: job.timing.to_string(),
                priority: job.priority,
                next_run: job.next_slot_after(now, calendar),
                today: slots,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::test_support::{defaults, utc};
    use std::collections::HashMap;

    #[test]
    fn each_slot_takes_its_outcome_from_the_queue_by_key() {
        let (schedule, cal) = defaults();
        // Monday 2026-11-23, 09:40:30 New York.
        let now = utc("2026-11-23T14:40:30Z");
        let mut held = HashMap::new();
        held.insert(
            "option_chain_regular@2026-11-23T14:30:00Z#SPY".to_string(),
            Status::Success,
        );
        held.insert(
            "option_chain_regular@2026-11-23T14:30:00Z#QQQ".to_string(),
            Status::Failed,
        );
        held.insert(
            "option_chain_regular@2026-11-23T14:35:00Z#SPY".to_string(),
            Status::Success,
        );
        held.insert(
            "option_chain_regular@2026-11-23T14:35:00Z#QQQ".to_string(),
            Status::Success,
        );
        held.insert(
            "option_chain_regular@2026-11-23T14:35:00Z#IWM".to_string(),
            Status::Processing,
        );
        let views = job_views(&schedule, &cal, now, |k| held.get(k).copied());
        let chains = views
            .iter()
            .find(|j| j.name == "option_chain_regular")
            .unwrap();
        assert_eq!(chains.today.len(), 78);
        let at = |t: &str| chains.today.iter().find(|s| s.at == utc(t)).unwrap();
        // One symbol failed: the slot failed, each symbol keeps its own outcome.
        let s930 = at("2026-11-23T14:30:00Z");
        assert_eq!(s930.outcome, Outcome::Failed);
        assert_eq!(
            s930.occurrences,
            vec![
                ("SPY".to_string(), Outcome::Done),
                ("QQQ".to_string(), Outcome::Failed),
                ("IWM".to_string(), Outcome::Missed),
            ]
        );
        assert_eq!(at("2026-11-23T14:35:00Z").outcome, Outcome::Running);
        // The 09:40 slot is half a minute old with nothing in the queue yet: pending.
        assert_eq!(at("2026-11-23T14:40:00Z").outcome, Outcome::Pending);
        assert_eq!(at("2026-11-23T14:45:00Z").outcome, Outcome::Upcoming);
        assert_eq!(chains.next_run, Some(utc("2026-11-23T14:45:00Z")));
        assert_eq!(
            chains.tally(),
            vec![
                (Outcome::Upcoming, 75),
                (Outcome::Pending, 1),
                (Outcome::Running, 1),
                (Outcome::Failed, 1),
            ]
        );
        // The keys asked about are exactly the day's occurrences.
        assert_eq!(
            today_keys(&schedule, &cal, now).len(),
            schedule.occurrences_on(new_york_date(now), &cal).len()
        );
    }

    #[test]
    fn a_job_run_now_is_its_occurrence_at_this_second_at_priority_1() {
        let (schedule, _) = defaults();
        let now = utc("2026-11-23T15:31:07.250Z");
        let occ = schedule.run_now("option_chain_regular", now).unwrap();
        assert_eq!(occ.len(), 3);
        assert!(occ
            .iter()
            .all(|o| o.priority == 1 && o.slot == utc("2026-11-23T15:31:07Z")));
        assert_eq!(occ[0].key, "option_chain_regular@2026-11-23T15:31:07Z#SPY");
        // A key of its own: not one of the job's slots, so the 10:35 slot still runs.
        let day = schedule.occurrences_on(new_york_date(now), &MarketCalendar::default());
        assert!(day.iter().all(|o| o.key != occ[0].key));
        assert!(schedule.run_now("no_such_job", now).is_none());
    }

    #[test]
    fn a_closed_day_has_no_slots_but_a_next_run() {
        let (schedule, cal) = defaults();
        // Thanksgiving 2026.
        let now = utc("2026-11-26T15:00:00Z");
        let views = job_views(&schedule, &cal, now, |_| None);
        assert!(views.iter().all(|j| j.today.is_empty()));
        assert!(views.iter().all(|j| j.next_run.unwrap() > now));
    }
}
