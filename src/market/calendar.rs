//! The NYSE trading calendar, computed by rule for any year.
//!
//! Full holidays and 13:00 early closes follow NYSE Rule 7.2 as applied since Juneteenth was
//! added in 2022 (earlier years get the modern rules too, which is wrong only for history the
//! console never schedules). Closures the exchange decides case by case (national days of
//! mourning, storms) cannot be computed: they come from `[scheduler] extra_closures`.
//!
//! All session times are New York wall-clock times converted through `chrono-tz`, so the UTC
//! instants move by an hour across the daylight-saving transitions as the exchange's do.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// The exchange's time zone.
pub const NEW_YORK: Tz = chrono_tz::America::New_York;

/// A full-day holiday by NYSE rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    /// The holiday's name as NYSE publishes it, e.g. "Washington's Birthday".
    pub name: &'static str,
    /// True when the date is not the holiday itself but the weekday it is observed on.
    pub observed: bool,
}

impl fmt::Display for Holiday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.observed {
            write!(f, "{} (observed)", self.name)
        } else {
            f.write_str(self.name)
        }
    }
}

/// What kind of day a New York calendar date is for the market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// Saturday or Sunday.
    Weekend,
    /// A full holiday by rule.
    Holiday(Holiday),
    /// Closed by an exchange decision listed in `[scheduler] extra_closures`.
    ExchangeClosure,
    /// A trading day whose regular session ends at 13:00; the reason is NYSE's wording.
    EarlyClose(&'static str),
    /// An ordinary trading day.
    Full,
}

impl DayKind {
    /// True when the market opens at all that day.
    pub fn is_trading_day(self) -> bool {
        matches!(self, DayKind::EarlyClose(_) | DayKind::Full)
    }
}

impl fmt::Display for DayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DayKind::Weekend => f.write_str("weekend"),
            DayKind::Holiday(h) => h.fmt(f),
            DayKind::ExchangeClosure => {
                f.write_str("exchange closure ([scheduler] extra_closures)")
            }
            DayKind::EarlyClose(reason) => write!(f, "early close at 13:00 ({reason})"),
            DayKind::Full => f.write_str("trading day"),
        }
    }
}

/// The session boundaries of one trading day, as UTC instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionHours {
    /// Pre-market opens (04:00 New York).
    pub pre_open: DateTime<Utc>,
    /// Regular session opens (09:30 New York).
    pub open: DateTime<Utc>,
    /// Regular session closes (16:00, or 13:00 on early closes).
    pub close: DateTime<Utc>,
    /// Post-market ends (20:00, or 17:00 on early closes).
    pub post_close: DateTime<Utc>,
}

/// The NYSE calendar: rules plus the exchange-decided dates from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketCalendar {
    extra_closures: BTreeSet<NaiveDate>,
    extra_early_closes: BTreeSet<NaiveDate>,
}

impl MarketCalendar {
    /// A calendar with the rule-based holidays plus exchange-decided closures and early closes.
    pub fn new(
        extra_closures: impl IntoIterator<Item = NaiveDate>,
        extra_early_closes: impl IntoIterator<Item = NaiveDate>,
    ) -> Self {
        Self {
            extra_closures: extra_closures.into_iter().collect(),
            extra_early_closes: extra_early_closes.into_iter().collect(),
        }
    }

    /// What the market does on `date` (a New York date).
    pub fn day(&self, date: NaiveDate) -> DayKind {
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            return DayKind::Weekend;
        }
        if let Some(h) = rule_holiday(date) {
            return DayKind::Holiday(h);
        }
        if self.extra_closures.contains(&date) {
            return DayKind::ExchangeClosure;
        }
        if let Some(reason) = rule_early_close(date) {
            return DayKind::EarlyClose(reason);
        }
        if self.extra_early_closes.contains(&date) {
            return DayKind::EarlyClose("early close decided by the exchange");
        }
        DayKind::Full
    }

    /// The session times of `date`, or `None` when the market is closed all day.
    pub fn hours(&self, date: NaiveDate) -> Option<SessionHours> {
        let (close, post_close) = match self.day(date) {
            DayKind::Full => ((16, 0), (20, 0)),
            DayKind::EarlyClose(_) => ((13, 0), (17, 0)),
            _ => return None,
        };
        let at = |(h, m): (u32, u32)| {
            new_york_instant(date, NaiveTime::from_hms_opt(h, m, 0).expect("valid time"))
        };
        Some(SessionHours {
            pre_open: at((4, 0)),
            open: at((9, 30)),
            close: at(close),
            post_close: at(post_close),
        })
    }
}

/// The New York calendar date of an instant.
pub fn new_york_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&NEW_YORK).date_naive()
}

/// The instant of a New York wall-clock time. A time that does not exist (the spring-forward
/// gap, 02:00–03:00) is taken one hour later; an ambiguous one (fall-back) is the earlier.
pub fn new_york_instant(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    NEW_YORK
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            NEW_YORK
                .from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .expect("New York has no gap longer than an hour")
        .with_timezone(&Utc)
}

/// The rule-based full holiday on `date`, if any (weekends are not holidays).
pub fn rule_holiday(date: NaiveDate) -> Option<Holiday> {
    holidays(date.year())
        .into_iter()
        .find(|(d, _)| *d == date)
        .map(|(_, h)| h)
}

/// The rule-based early close (13:00) on `date`, with NYSE's wording of the reason.
pub fn rule_early_close(date: NaiveDate) -> Option<&'static str> {
    let year = date.year();
    let weekday_mon_to_thu = !matches!(date.weekday(), Weekday::Fri | Weekday::Sat | Weekday::Sun);
    // The day after Thanksgiving is always a Friday and always closes early.
    if date == nth_weekday(year, 11, Weekday::Thu, 4) + Duration::days(1) {
        return Some("day after Thanksgiving");
    }
    // July 3 and December 24 close early only Monday to Thursday: on a Friday they are the
    // observed Saturday holiday itself, and no earlier day is shortened instead.
    if weekday_mon_to_thu && date == ymd(year, 7, 3) {
        return Some("day before Independence Day");
    }
    if weekday_mon_to_thu && date == ymd(year, 12, 24) {
        return Some("Christmas Eve");
    }
    None
}

/// The full holidays of `year`, on the dates the market is closed for them.
pub fn holidays(year: i32) -> Vec<(NaiveDate, Holiday)> {
    let mut out = Vec::with_capacity(10);
    let mut push = |date: NaiveDate, name: &'static str, observed: bool| {
        out.push((date, Holiday { name, observed }))
    };
    let fixed = |month: u32, day: u32| -> (NaiveDate, bool) {
        let d = ymd(year, month, day);
        match d.weekday() {
            Weekday::Sat => (d - Duration::days(1), true),
            Weekday::Sun => (d + Duration::days(1), true),
            _ => (d, false),
        }
    };

    // New Year's Day on a Saturday is NOT moved to Friday December 31: the exchange keeps the
    // year-end session open (NYSE Rule 7.2 exception).
    let new_year = ymd(year, 1, 1);
    match new_year.weekday() {
        Weekday::Sat => {}
        Weekday::Sun => push(new_year + Duration::days(1), "New Year's Day", true),
        _ => push(new_year, "New Year's Day", false),
    }
    push(
        nth_weekday(year, 1, Weekday::Mon, 3),
        "Martin Luther King Jr. Day",
        false,
    );
    push(
        nth_weekday(year, 2, Weekday::Mon, 3),
        "Washington's Birthday",
        false,
    );
    push(
        easter_sunday(year) - Duration::days(2),
        "Good Friday",
        false,
    );
    push(last_weekday(year, 5, Weekday::Mon), "Memorial Day", false);
    if year >= 2022 {
        let (d, observed) = fixed(6, 19);
        push(d, "Juneteenth", observed);
    }
    let (d, observed) = fixed(7, 4);
    push(d, "Independence Day", observed);
    push(nth_weekday(year, 9, Weekday::Mon, 1), "Labor Day", false);
    push(
        nth_weekday(year, 11, Weekday::Thu, 4),
        "Thanksgiving Day",
        false,
    );
    let (d, observed) = fixed(12, 25);
    push(d, "Christmas Day", observed);
    out
}

/// Easter Sunday of `year` (Gregorian computus, anonymous algorithm of Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    ymd(year, month as u32, day as u32)
}

fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("valid calendar date")
}

/// The `n`th (1-based) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n).expect("every month has 4")
}

/// The last `weekday` of a month.
fn last_weekday(year: i32, month: u32, weekday: Weekday) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, 5)
        .unwrap_or_else(|| nth_weekday(year, month, weekday, 4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::test_support::{d, utc};
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// The exchange's published list: the expected answer, never an input of the calendar.
    fn published() -> Vec<(NaiveDate, String, String)> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/nyse-calendar.tsv");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let rows: Vec<_> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                assert!(
                    cols.len() >= 3,
                    "malformed row in {}: {l:?}",
                    path.display()
                );
                (d(cols[0]), cols[1].to_string(), cols[2].to_string())
            })
            .collect();
        assert!(rows.len() > 30, "{} has too few rows", path.display());
        rows
    }

    #[test]
    fn easter_matches_known_dates() {
        assert_eq!(easter_sunday(2025), d("2025-04-20"));
        assert_eq!(easter_sunday(2026), d("2026-04-05"));
        assert_eq!(easter_sunday(2027), d("2027-03-28"));
        assert_eq!(easter_sunday(2038), d("2038-04-25"));
        assert_eq!(easter_sunday(2285), d("2285-03-22"));
    }

    #[test]
    fn every_published_row_of_2025_to_2027_matches_the_rules() {
        let configured = MarketCalendar::new([d("2025-01-09")], []);
        let rules_only = MarketCalendar::default();
        for (date, kind, note) in published() {
            let got = configured.day(date);
            match kind.as_str() {
                "holiday" => match got {
                    DayKind::Holiday(h) => assert!(
                        note.starts_with(h.name),
                        "{date}: computed {h}, published {note:?}"
                    ),
                    other => panic!("{date}: published holiday {note:?}, computed {other}"),
                },
                "special" => {
                    assert_eq!(got, DayKind::ExchangeClosure, "{date} ({note})");
                    assert_eq!(rules_only.day(date), DayKind::Full, "{date} is not a rule");
                }
                "early" => match got {
                    DayKind::EarlyClose(reason) => assert_eq!(reason, note, "{date}"),
                    other => panic!("{date}: published early close {note:?}, computed {other}"),
                },
                "open" => assert_eq!(got, DayKind::Full, "{date} ({note})"),
                other => panic!("unknown kind {other:?} for {date}"),
            }
        }
    }

    #[test]
    fn no_other_weekday_of_2025_to_2027_is_closed_or_short() {
        let published: HashMap<NaiveDate, String> =
            published().into_iter().map(|(d, k, _)| (d, k)).collect();
        let cal = MarketCalendar::new([d("2025-01-09")], []);
        let mut date = d("2025-01-01");
        let mut trading_days = 0;
        while date <= d("2027-12-31") {
            let kind = cal.day(date);
            if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
                assert_eq!(kind, DayKind::Weekend, "{date}");
            } else if !published.contains_key(&date) {
                assert_eq!(kind, DayKind::Full, "{date} is not in the published list");
            }
            trading_days += kind.is_trading_day() as u32;
            date = date.succ_opt().unwrap();
        }
        // 2025 had 250 sessions (with the day of mourning), 2026 and 2027 have 251 each.
        assert_eq!(trading_days, 250 + 251 + 251);
    }

    #[test]
    fn new_year_on_sunday_is_observed_monday() {
        // 2023-01-01 was a Sunday: closed Monday January 2.
        assert_eq!(
            rule_holiday(d("2023-01-02")),
            Some(Holiday {
                name: "New Year's Day",
                observed: true
            })
        );
        // 2022-01-01 was a Saturday: Friday 2021-12-31 stayed open.
        assert_eq!(rule_holiday(d("2021-12-31")), None);
        // Juneteenth starts in 2022.
        assert_eq!(rule_holiday(d("2021-06-18")), None);
        assert!(rule_holiday(d("2022-06-20")).is_some());
    }

    #[test]
    fn the_open_follows_daylight_saving_in_utc() {
        let cal = MarketCalendar::default();
        let open = |s: &str| cal.hours(d(s)).unwrap().open;
        // Spring forward on Sunday 2026-03-08.
        assert_eq!(open("2026-03-06"), utc("2026-03-06T14:30:00Z"));
        assert_eq!(open("2026-03-09"), utc("2026-03-09T13:30:00Z"));
        // Fall back on Sunday 2026-11-01.
        assert_eq!(open("2026-10-30"), utc("2026-10-30T13:30:00Z"));
        assert_eq!(open("2026-11-02"), utc("2026-11-02T14:30:00Z"));
        let h = cal.hours(d("2026-11-02")).unwrap();
        assert_eq!(h.pre_open, utc("2026-11-02T09:00:00Z"));
        assert_eq!(h.close, utc("2026-11-02T21:00:00Z"));
        assert_eq!(h.post_close, utc("2026-11-03T01:00:00Z"));
    }

    #[test]
    fn early_closes_end_at_13_and_17() {
        let h = MarketCalendar::default().hours(d("2026-11-27")).unwrap();
        assert_eq!(h.close, utc("2026-11-27T18:00:00Z"));
        assert_eq!(h.post_close, utc("2026-11-27T22:00:00Z"));
        let configured = MarketCalendar::new([], [d("2026-08-14")]);
        assert!(matches!(
            configured.day(d("2026-08-14")),
            DayKind::EarlyClose(_)
        ));
    }

    #[test]
    fn a_nonexistent_local_time_moves_past_the_gap() {
        let t = new_york_instant(d("2026-03-08"), NaiveTime::from_hms_opt(2, 30, 0).unwrap());
        assert_eq!(t, utc("2026-03-08T07:30:00Z"));
        let t = new_york_instant(d("2026-11-01"), NaiveTime::from_hms_opt(1, 30, 0).unwrap());
        assert_eq!(
            t,
            utc("2026-11-01T05:30:00Z"),
            "the earlier of the two 01:30s"
        );
    }
}
