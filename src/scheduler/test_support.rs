//! Helpers the scheduler's unit tests share.

use chrono::{DateTime, NaiveDate, Utc};

use super::calendar::MarketCalendar;
use super::config::SchedulerConfig;
use super::schedule::Schedule;

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The default schedule and calendar.
pub fn defaults() -> (Schedule, MarketCalendar) {
    let config = SchedulerConfig::default();
    (
        Schedule::from_config(&config).unwrap(),
        MarketCalendar::from_config(&config),
    )
}
