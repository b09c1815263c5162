//! `ibq schedule`: print a day's plan (phases and every job's slots) without enqueueing.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};

use super::calendar::{new_york_date, MarketCalendar, NEW_YORK};
use super::clock::{Clock, SystemClock};
use super::schedule::{Schedule, Timing};

/// Arguments of `ibq schedule`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    /// The day to plan (YYYY-MM-DD, New York); today when absent.
    #[arg(long)]
    pub date: Option<chrono::NaiveDate>,
    /// List every slot of interval jobs, not only the first, last and count.
    #[arg(long)]
    pub all: bool,
}

/// Validates `[scheduler]` (a bad job is an error naming it) and prints the plan.
pub fn run(args: ScheduleArgs, config: &crate::config::Config) -> anyhow::Result<()> {
    let schedule = Schedule::from_config(&config.scheduler)?;
    let calendar = MarketCalendar::from_config(&config.scheduler);
    let date = args
        .date
        .unwrap_or_else(|| new_york_date(SystemClock.now()));
    print!("{}", render_plan(date, &schedule, &calendar, args.all));
    Ok(())
}

/// The plan of the New York date `date` as printed by `ibq schedule`.
pub fn render_plan(
    date: NaiveDate,
    schedule: &Schedule,
    calendar: &MarketCalendar,
    all: bool,
) -> String {
    let mut out = String::new();
    let kind = calendar.day(date);
    let head = format!("{} {date}", date.format("%A"));
    if !schedule.is_enabled() {
        out.push_str(
            "scheduler disabled ([scheduler] enabled = false): nothing will be enqueued\n",
        );
    }
    let Some(hours) = calendar.hours(date) else {
        let _ = writeln!(out, "{head}: closed: {kind}");
        out.push_str("No jobs run.\n");
        let start_of_day =
            crate::scheduler::calendar::new_york_instant(date, chrono::NaiveTime::MIN);
        if let Some((at, phase)) = calendar.next_change(start_of_day) {
            let _ = writeln!(out, "Next: {phase} from {}", stamp_with_date(at));
        }
        return out;
    };
    let _ = writeln!(out, "{head}: {kind}");
    out.push_str("Times are New York time (ET).\n\nPhases\n");
    for (name, from, to) in [
        ("pre_market", hours.pre_open, hours.open),
        ("regular", hours.open, hours.close),
        ("post_market", hours.close, hours.post_close),
    ] {
        let _ = writeln!(out, "  {name:<12} {} - {}", stamp(from), stamp(to));
    }

    out.push_str("\nJobs\n");
    let mut total = 0;
    for job in schedule.jobs() {
        let slots = job.slots_on(date, calendar);
        let per_slot = job.symbols.len().max(1);
        total += slots.len() * per_slot;
        let symbols = if job.symbols.is_empty() {
            "-".to_string()
        } else {
            job.symbols.join(" ")
        };
        let _ = writeln!(
            out,
            "  {:<22} {:<16} P{}  {:<26} {}",
            job.name,
            job.request_type.as_str(),
            job.priority,
            job.timing.to_string(),
            symbols
        );
        let when = match (slots.first(), slots.last()) {
            (None, _) | (_, None) => "no slot this day".to_string(),
            (Some(first), Some(_)) if slots.len() == 1 => stamp(*first),
            (Some(first), Some(last)) => format!(
                "{} slots, first {}, last {}",
                slots.len(),
                stamp(*first),
                stamp(*last)
            ),
        };
        let _ = writeln!(out, "      {when} -> {} request(s)", slots.len() * per_slot);
        if all && matches!(job.timing, Timing::Every { .. }) {
            for slot in &slots {
                let _ = writeln!(out, "        {}", stamp(*slot));
            }
        }
    }
    let _ = writeln!(out, "\nTotal: {total} requests");
    out
}

/// `09:30 ET`, with seconds only when they are not zero.
fn stamp(t: DateTime<Utc>) -> String {
    crate::market::et::clock_slot(t)
}

/// `Friday 2026-11-27 04:00 ET`.
fn stamp_with_date(t: DateTime<Utc>) -> String {
    format!(
        "{} {}",
        t.with_timezone(&NEW_YORK).format("%A %Y-%m-%d"),
        stamp(t)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::config::SchedulerConfig;

    fn plan(date: &str, all: bool) -> String {
        let config = SchedulerConfig::default();
        render_plan(
            date.parse().unwrap(),
            &Schedule::from_config(&config).unwrap(),
            &MarketCalendar::from_config(&config),
            all,
        )
    }

    #[test]
    fn an_early_close_plan_shows_short_sessions_and_counts() {
        let p = plan("2026-11-27", false);
        assert!(
            p.starts_with("Friday 2026-11-27: early close at 13:00 (day after Thanksgiving)"),
            "{p}"
        );
        assert!(p.contains("regular      09:30 ET - 13:00 ET"), "{p}");
        assert!(p.contains("post_market  13:00 ET - 17:00 ET"), "{p}");
        assert!(
            p.contains("42 slots, first 09:30 ET, last 12:55 ET -> 126 request(s)"),
            "{p}"
        );
        assert!(
            p.contains("420 slots, first 09:30 ET, last 12:59:30 ET -> 420 request(s)"),
            "{p}"
        );
        assert!(p.contains("16:30 ET -> 1 request(s)"), "{p}");
        assert!(p.contains("Total: 679 requests"), "{p}");
    }

    #[test]
    fn a_holiday_plan_says_closed_and_why() {
        let p = plan("2026-11-26", false);
        assert!(
            p.starts_with("Thursday 2026-11-26: closed: Thanksgiving Day\nNo jobs run.\n"),
            "{p}"
        );
        assert!(
            p.contains("Next: pre_market from Friday 2026-11-27 04:00 ET"),
            "{p}"
        );
        assert!(plan("2026-11-28", false).contains("closed: weekend"));
    }

    #[test]
    fn all_lists_every_interval_slot() {
        let p = plan("2026-11-23", true);
        assert!(p.contains("\n        15:59:30 ET\n"), "{p}");
        assert_eq!(
            p.matches("\n        15:55 ET\n").count(),
            3,
            "chains, futures and positions"
        );
    }
}
