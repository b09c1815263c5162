//! Market phases (closed, pre-market, regular, post-market) and when the next one starts.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use super::calendar::{new_york_date, MarketCalendar};

/// How far ahead [`MarketCalendar::next_change`] looks. Weekends and holidays never close the
/// market for more than a few days; only a configuration listing every day could reach this.
const SEARCH_DAYS: i64 = 400;

/// A part of the US equity trading day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// No session (nights, weekends, holidays).
    Closed,
    /// 04:00–09:30 New York.
    PreMarket,
    /// 09:30–16:00 New York (13:00 on early closes).
    Regular,
    /// From the close until 20:00 New York (17:00 on early closes).
    PostMarket,
}

impl Phase {
    /// The name used in `ibq.toml` (`during = "regular"`) and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Closed => "closed",
            Phase::PreMarket => "pre_market",
            Phase::Regular => "regular",
            Phase::PostMarket => "post_market",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase name that is not one of `closed`, `pre_market`, `regular`, `post_market`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown phase `{0}` (expected pre_market, regular or post_market)")]
pub struct UnknownPhase(pub String);

impl FromStr for Phase {
    type Err = UnknownPhase;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "closed" => Ok(Phase::Closed),
            "pre_market" => Ok(Phase::PreMarket),
            "regular" => Ok(Phase::Regular),
            "post_market" => Ok(Phase::PostMarket),
            other => Err(UnknownPhase(other.to_string())),
        }
    }
}

impl MarketCalendar {
    /// The phase in force at `t`. A phase includes its start and excludes its end.
    pub fn phase_at(&self, t: DateTime<Utc>) -> Phase {
        let Some(h) = self.hours(new_york_date(t)) else {
            return Phase::Closed;
        };
        if t < h.pre_open || t >= h.post_close {
            Phase::Closed
        } else if t < h.open {
            Phase::PreMarket
        } else if t < h.close {
            Phase::Regular
        } else {
            Phase::PostMarket
        }
    }

    /// The first phase change strictly after `t` and the phase it starts, possibly days away
    /// across weekends and holidays. `None` only if no trading day exists in the next 400 days.
    pub fn next_change(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, Phase)> {
        let first = new_york_date(t);
        (0..SEARCH_DAYS)
            .filter_map(|i| self.hours(first + Duration::days(i)))
            .flat_map(|h| {
                [
                    (h.pre_open, Phase::PreMarket),
                    (h.open, Phase::Regular),
                    (h.close, Phase::PostMarket),
                    (h.post_close, Phase::Closed),
                ]
            })
            .find(|(at, _)| *at > t)
    }

    /// The start and end of `phase` on the New York date `date`; `None` on closed days and
    /// for [`Phase::Closed`], which is not one span.
    pub fn phase_span(
        &self,
        date: chrono::NaiveDate,
        phase: Phase,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let h = self.hours(date)?;
        match phase {
            Phase::Closed => None,
            Phase::PreMarket => Some((h.pre_open, h.open)),
            Phase::Regular => Some((h.open, h.close)),
            Phase::PostMarket => Some((h.close, h.post_close)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::test_support::utc;

    #[test]
    fn phases_of_an_ordinary_day() {
        let cal = MarketCalendar::default();
        // Monday 2026-11-23, New York is UTC-5.
        assert_eq!(cal.phase_at(utc("2026-11-23T08:59:59Z")), Phase::Closed);
        assert_eq!(cal.phase_at(utc("2026-11-23T09:00:00Z")), Phase::PreMarket);
        assert_eq!(cal.phase_at(utc("2026-11-23T14:30:00Z")), Phase::Regular);
        assert_eq!(cal.phase_at(utc("2026-11-23T21:00:00Z")), Phase::PostMarket);
        assert_eq!(cal.phase_at(utc("2026-11-24T01:00:00Z")), Phase::Closed);
        assert_eq!(
            cal.next_change(utc("2026-11-23T14:30:00Z")),
            Some((utc("2026-11-23T21:00:00Z"), Phase::PostMarket))
        );
    }

    #[test]
    fn next_change_crosses_a_weekend() {
        let cal = MarketCalendar::default();
        // Friday 2026-11-20 after 20:00 New York: nothing until Monday's pre-market.
        let t = utc("2026-11-21T02:00:00Z");
        assert_eq!(cal.phase_at(t), Phase::Closed);
        assert_eq!(
            cal.next_change(t),
            Some((utc("2026-11-23T09:00:00Z"), Phase::PreMarket))
        );
    }

    #[test]
    fn next_change_crosses_a_holiday_and_a_weekend_with_dst() {
        let cal = MarketCalendar::default();
        // Thanksgiving Thursday 2026-11-26 noon: closed; Friday is an early close.
        let t = utc("2026-11-26T17:00:00Z");
        assert_eq!(cal.phase_at(t), Phase::Closed);
        assert_eq!(
            cal.next_change(t),
            Some((utc("2026-11-27T09:00:00Z"), Phase::PreMarket))
        );
        assert_eq!(
            cal.next_change(utc("2026-11-27T15:00:00Z")),
            Some((utc("2026-11-27T18:00:00Z"), Phase::PostMarket))
        );
        assert_eq!(
            cal.next_change(utc("2026-11-27T18:00:00Z")),
            Some((utc("2026-11-27T22:00:00Z"), Phase::Closed))
        );
        // Good Friday 2026-04-03 then the weekend: next is Monday 04:00 EDT (08:00 UTC).
        assert_eq!(
            cal.next_change(utc("2026-04-03T00:30:00Z")),
            Some((utc("2026-04-06T08:00:00Z"), Phase::PreMarket))
        );
        // Friday before spring-forward, evening: Monday's pre-market is 08:00 UTC, not 09:00.
        assert_eq!(
            cal.next_change(utc("2026-03-07T02:00:00Z")),
            Some((utc("2026-03-09T08:00:00Z"), Phase::PreMarket))
        );
    }

    #[test]
    fn phase_names_round_trip() {
        for p in [
            Phase::Closed,
            Phase::PreMarket,
            Phase::Regular,
            Phase::PostMarket,
        ] {
            assert_eq!(p.as_str().parse::<Phase>(), Ok(p));
        }
        assert!("lunch".parse::<Phase>().is_err());
    }
}
