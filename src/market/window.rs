//! Market-hours windows a request may be held to: `regular` (09:30–16:00 New York, 13:00 on
//! early closes), `extended` (pre-market 04:00 through post-market 20:00, 17:00 on early
//! closes) or `any`. The hours are those of [`SessionHours`] on the NYSE calendar.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::{new_york_date, MarketCalendar, SessionHours};

/// When a request may run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum During {
    /// At any time (the default).
    #[default]
    Any,
    /// The regular session only.
    Regular,
    /// Pre-market through post-market.
    Extended,
}

/// Trading days are never further apart than this (the longest closure runs of the rules
/// are four days; exchange-decided closures add a few).
const SEARCH_DAYS: i64 = 30;

impl During {
    pub const ALL: [During; 3] = [During::Any, During::Regular, During::Extended];

    pub fn as_str(self) -> &'static str {
        match self {
            During::Any => "any",
            During::Regular => "regular",
            During::Extended => "extended",
        }
    }

    /// The window's span on one trading day.
    fn span(self, h: &SessionHours) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            During::Any | During::Regular => (h.open, h.close),
            During::Extended => (h.pre_open, h.post_close),
        }
    }

    /// `None` when a request held to this window may run at `now`; otherwise the instant the
    /// window next opens on the calendar.
    pub fn waits_until(
        self,
        calendar: &MarketCalendar,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if self == During::Any {
            return None;
        }
        // Start one day back: a New York date's session never spans midnight, but the UTC
        // instant may sit on the previous New York date's evening.
        let today = new_york_date(now);
        for offset in -1..=SEARCH_DAYS {
            let date = today + Duration::days(offset);
            let Some(hours) = calendar.hours(date) else {
                continue;
            };
            let (start, end) = self.span(&hours);
            if now < start {
                return Some(start);
            }
            if now < end {
                return None;
            }
        }
        // Unreachable with the rule calendar; a configured closure run longer than the search
        // leaves the request waiting a search span at a time rather than running it.
        Some(now + Duration::days(SEARCH_DAYS))
    }
}

impl fmt::Display for During {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for During {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        During::ALL
            .into_iter()
            .find(|d| d.as_str() == t)
            .ok_or_else(|| {
                format!(
                    "unknown market-hours window `{}` (expected regular, extended or any)",
                    crate::text::clean(s)
                )
            })
    }
}

/// "09:30 ET", or "Mon 09:30 ET" when `at` is not on the New York date of `now`: how the
/// console and the CLI say when a waiting request's window opens.
pub fn waits_for_text(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let ny = at.with_timezone(&super::calendar::NEW_YORK);
    if ny.date_naive() == new_york_date(now) {
        format!("waits for {} ET", ny.format("%H:%M"))
    } else if ny.date_naive() - new_york_date(now) < Duration::days(7)
        && ny.date_naive() > new_york_date(now)
    {
        format!("waits for {} ET", ny.format("%a %H:%M"))
    } else {
        format!("waits for {} ET", ny.format("%Y-%m-%d %H:%M"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::calendar::{new_york_instant, NEW_YORK};
    use chrono::{NaiveDate, NaiveTime, TimeZone};

    /// A New York wall-clock time as a UTC instant.
    fn ny(date: &str, hm: &str) -> DateTime<Utc> {
        let date: NaiveDate = date.parse().unwrap();
        let time = NaiveTime::parse_from_str(hm, "%H:%M").unwrap();
        let t = new_york_instant(date, time);
        assert_eq!(
            t.with_timezone(&NEW_YORK).time(),
            time,
            "{date} {hm} exists"
        );
        t
    }

    fn cal() -> MarketCalendar {
        MarketCalendar::default()
    }

    #[test]
    fn any_never_waits() {
        // Sunday night, a holiday, the middle of the night: always runs.
        for t in [
            ny("2026-11-29", "23:00"),
            ny("2026-12-25", "12:00"),
            ny("2026-11-24", "02:00"),
        ] {
            assert_eq!(During::Any.waits_until(&cal(), t), None, "{t}");
        }
    }

    #[test]
    fn inside_and_outside_the_regular_session() {
        // Tuesday 2026-11-24, an ordinary trading day.
        let c = cal();
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-11-24", "08:00")),
            Some(ny("2026-11-24", "09:30"))
        );
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-11-24", "09:30")),
            None
        );
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-11-24", "15:59")),
            None
        );
        // At 16:00 the session is over: the next one is Wednesday's.
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-11-24", "16:00")),
            Some(ny("2026-11-25", "09:30"))
        );
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-11-24", "23:30")),
            Some(ny("2026-11-25", "09:30"))
        );
    }

    #[test]
    fn extended_runs_from_pre_market_to_post_market() {
        let c = cal();
        assert_eq!(
            During::Extended.waits_until(&c, ny("2026-11-24", "03:59")),
            Some(ny("2026-11-24", "04:00"))
        );
        assert_eq!(
            During::Extended.waits_until(&c, ny("2026-11-24", "04:00")),
            None
        );
        assert_eq!(
            During::Extended.waits_until(&c, ny("2026-11-24", "19:59")),
            None
        );
        assert_eq!(
            During::Extended.waits_until(&c, ny("2026-11-24", "20:00")),
            Some(ny("2026-11-25", "04:00"))
        );
    }

    #[test]
    fn weekends_skip_to_monday() {
        let c = cal();
        // Friday 2026-11-20 after post-market, Saturday and Sunday: Monday 2026-11-23.
        for t in [
            ny("2026-11-20", "20:30"),
            ny("2026-11-21", "12:00"),
            ny("2026-11-22", "22:00"),
        ] {
            assert_eq!(
                During::Regular.waits_until(&c, t),
                Some(ny("2026-11-23", "09:30")),
                "{t}"
            );
            assert_eq!(
                During::Extended.waits_until(&c, t),
                Some(ny("2026-11-23", "04:00")),
                "{t}"
            );
        }
    }

    #[test]
    fn holidays_are_skipped_and_early_closes_end_the_window_early() {
        let c = cal();
        // Thanksgiving Thursday 2026-11-26 is closed; Friday 11-27 closes at 13:00 (17:00
        // post-market); the next session is Monday 11-30.
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-11-25", "17:00")),
            Some(ny("2026-11-27", "09:30"))
        );
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-11-27", "12:59")),
            None
        );
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-11-27", "13:00")),
            Some(ny("2026-11-30", "09:30"))
        );
        assert_eq!(
            During::Extended.waits_until(&c, ny("2026-11-27", "16:59")),
            None
        );
        assert_eq!(
            During::Extended.waits_until(&c, ny("2026-11-27", "17:00")),
            Some(ny("2026-11-30", "04:00"))
        );
        // Christmas Day 2026 is a Friday: Thursday 12-24 closes early, next is Monday 12-28.
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-12-24", "14:00")),
            Some(ny("2026-12-28", "09:30"))
        );
        // An exchange-decided closure is skipped as well.
        let closed = MarketCalendar::new(["2026-11-25".parse().unwrap()], []);
        assert_eq!(
            During::Regular.waits_until(&closed, ny("2026-11-24", "17:00")),
            Some(ny("2026-11-27", "09:30"))
        );
    }

    #[test]
    fn the_window_follows_new_york_across_daylight_saving() {
        let c = cal();
        // Spring forward on Sunday 2026-03-08: Friday's open is 14:30 UTC, Monday's 13:30 UTC.
        assert_eq!(
            ny("2026-03-06", "09:30"),
            Utc.with_ymd_and_hms(2026, 3, 6, 14, 30, 0).unwrap()
        );
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-03-06", "18:00")),
            Some(Utc.with_ymd_and_hms(2026, 3, 9, 13, 30, 0).unwrap())
        );
        // Fall back on Sunday 2026-11-01: Monday's open is 14:30 UTC again.
        assert_eq!(
            During::Regular.waits_until(&c, ny("2026-10-30", "18:00")),
            Some(Utc.with_ymd_and_hms(2026, 11, 2, 14, 30, 0).unwrap())
        );
        // 13:45 UTC on Monday 2026-03-09 is 09:45 EDT: inside; on 2026-03-06 it was 08:45 EST.
        assert_eq!(
            During::Regular.waits_until(&c, Utc.with_ymd_and_hms(2026, 3, 9, 13, 45, 0).unwrap()),
            None
        );
        assert_eq!(
            During::Regular.waits_until(&c, Utc.with_ymd_and_hms(2026, 3, 6, 13, 45, 0).unwrap()),
            Some(Utc.with_ymd_and_hms(2026, 3, 6, 14, 30, 0).unwrap())
        );
    }

    #[test]
    fn names_parse_and_bad_ones_are_named() {
        assert_eq!("regular".parse::<During>(), Ok(During::Regular));
        assert_eq!(" Extended ".parse::<During>(), Ok(During::Extended));
        assert_eq!("any".parse::<During>(), Ok(During::Any));
        let err = "lunch".parse::<During>().unwrap_err();
        assert!(
            err.contains("`lunch`") && err.contains("regular, extended or any"),
            "{err}"
        );
    }

    #[test]
    fn the_wait_is_said_in_new_york_time() {
        let now = ny("2026-11-24", "08:00");
        assert_eq!(
            waits_for_text(ny("2026-11-24", "09:30"), now),
            "waits for 09:30 ET"
        );
        assert_eq!(
            waits_for_text(ny("2026-11-25", "09:30"), now),
            "waits for Wed 09:30 ET"
        );
        assert_eq!(
            waits_for_text(ny("2026-12-24", "09:30"), now),
            "waits for 2026-12-24 09:30 ET"
        );
    }
}
