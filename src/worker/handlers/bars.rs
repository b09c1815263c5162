//! Historical bars: only bars whose period has ended are written.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use ibapi::market_data::historical::{BarSize, BarTimestamp, Duration as IbDuration, WhatToShow};

use super::contracts_data::front_month;
use super::{id_col, ny_date};
use crate::lake::columns::BatchBuilder;
use crate::queue::params::MarketBarsParams;
use crate::queue::Request;
use crate::worker::errors::WorkError;
use crate::worker::ib::Ib;
use crate::worker::results::*;

/// Whether a bar starting at `t` has ended by `now`. A daily bar (`daily`, stamped with its
/// date at 00:00 UTC) ends at 20:00 New York on that date, after the extended session and
/// the futures close; an intraday bar ends at its start plus its size.
pub(crate) fn bar_finished(
    t: DateTime<Utc>,
    daily: bool,
    bar_size: &str,
    now: DateTime<Utc>,
) -> bool {
    let end = if daily {
        let d = t.date_naive();
        match d
            .and_hms_opt(20, 0, 0)
            .map(|n| New_York.from_local_datetime(&n).earliest())
        {
            Some(Some(e)) => e.with_timezone(&Utc),
            _ => return false,
        }
    } else {
        match bar_seconds(bar_size) {
            Some(s) => t + chrono::Duration::seconds(s),
            None => return false,
        }
    };
    end <= now
}

/// The length of an intraday bar size in seconds.
fn bar_seconds(s: &str) -> Option<i64> {
    let (n, unit) = s.split_once(' ')?;
    let n: i64 = n.parse().ok()?;
    let per = match unit {
        "sec" | "secs" => 1,
        "min" | "mins" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(n * per)
}

fn ib_bar_size(s: &str) -> Option<BarSize> {
    let name = match s {
        "1 secs" => "SEC",
        "5 secs" => "SEC5",
        "10 secs" => "SEC10",
        "15 secs" => "SEC15",
        "30 secs" => "SEC30",
        "1 min" => "MIN",
        "2 mins" => "MIN2",
        "3 mins" => "MIN3",
        "5 mins" => "MIN5",
        "10 mins" => "MIN10",
        "15 mins" => "MIN15",
        "20 mins" => "MIN20",
        "30 mins" => "MIN30",
        "1 hour" => "HOUR",
        "2 hours" => "HOUR2",
        "3 hours" => "HOUR3",
        "4 hours" => "HOUR4",
        "8 hours" => "HOUR8",
        "1 day" => "DAY",
        "1 week" => "WEEK",
        "1 month" => "MONTH",
        _ => return None,
    };
    BarSize::from_str(name).ok()
}

/// The contract a symbol means (see [`super::contracts`]); for a futures root, its front month.
async fn resolve_any(
    ib: &Ib,
    sym: &str,
    now: DateTime<Utc>,
) -> Result<ibapi::contracts::Contract, WorkError> {
    match crate::worker::contracts::any(ib, sym).await? {
        crate::worker::contracts::Resolved::One(d) => Ok(d.contract),
        crate::worker::contracts::Resolved::Months(listed) => front_month(listed, ny_date(now))
            .map(|d| d.contract)
            .ok_or_else(|| WorkError::Invalid(format!("no {sym} futures month outside the roll"))),
    }
}

pub(super) async fn market_bars(
    ib: &Ib,
    results: &ResultTables,
    req: &Request,
    p: &MarketBarsParams,
    now: DateTime<Utc>,
) -> Result<Written, WorkError> {
    let sym = req.symbol.as_str();
    let bar_size = ib_bar_size(&p.bar_size)
        .ok_or_else(|| WorkError::Invalid(format!("bar size `{}` unsupported", p.bar_size)))?;
    let duration =
        IbDuration::from_str(&p.duration).map_err(|e| WorkError::Invalid(e.to_string()))?;
    let what =
        WhatToShow::from_str(&p.what_to_show).map_err(|e| WorkError::Invalid(e.to_string()))?;
    let contract = resolve_any(ib, sym, now).await?;
    let data = ib
        .bars(&contract, bar_size, duration, what, p.use_rth)
        .await?;
    let key = (sym.to_string(), p.bar_size.clone(), p.what_to_show.clone());
    let bars: Vec<(DateTime<Utc>, &ibapi::market_data::historical::Bar)> = data
        .bars
        .iter()
        .map(|b| {
            let t = match b.date {
                BarTimestamp::Date(d) => {
                    let nd = NaiveDate::from_ymd_opt(d.year(), d.month() as u32, d.day() as u32)
                        .unwrap_or_default();
                    Utc.from_utc_datetime(&nd.and_hms_opt(0, 0, 0).unwrap_or_default())
                }
                BarTimestamp::DateTime(dt) => {
                    DateTime::from_timestamp(dt.unix_timestamp(), 0).unwrap_or_default()
                }
            };
            (t, b)
        })
        // A bar whose period has not ended at the engine's clock is still forming: it is
        // not stored, so the finished bar is written by a later request.
        .filter(|(t, b)| {
            bar_finished(
                *t,
                matches!(b.date, BarTimestamp::Date(_)),
                &p.bar_size,
                now,
            )
        })
        .collect();
    // The duplicate check reads only the days these bars fall on.
    let days: BTreeSet<NaiveDate> = bars.iter().map(|(t, _)| bar_day(&p.bar_size, *t)).collect();
    let stored = results.stored_bar_times(&key, &days).await?;
    let bars: Vec<_> = bars
        .into_iter()
        .filter(|(t, _)| !stored.contains(&t.timestamp()))
        .collect();
    let n = bars.len();
    let batch = BatchBuilder::new(MARKET_BAR_COLUMNS)
        .utf8(id_col(req, n))
        .utf8(vec![Some(sym); n])
        .i64(vec![Some(contract.contract_id as i64); n])
        .utf8(vec![Some(p.bar_size.as_str()); n])
        .utf8(vec![Some(p.what_to_show.as_str()); n])
        .timestamp(bars.iter().map(|(t, _)| Some(*t)))
        .f64(bars.iter().map(|(_, b)| Some(b.open)))
        .f64(bars.iter().map(|(_, b)| Some(b.high)))
        .f64(bars.iter().map(|(_, b)| Some(b.low)))
        .f64(bars.iter().map(|(_, b)| Some(b.close)))
        .f64(bars.iter().map(|(_, b)| Some(b.volume)))
        .f64(bars.iter().map(|(_, b)| Some(b.wap)))
        .i64(bars.iter().map(|(_, b)| Some(b.count as i64)))
        .timestamp(vec![Some(now); n])
        .finish();
    let written = results
        .write(MARKET_BARS, Some(req.request_id), batch)
        .await?;
    results
        .add_bar_times(&key, bars.iter().map(|(t, _)| t.timestamp()))
        .await;
    Ok(written)
}

#[cfg(test)]
mod bar_tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_forming_intraday_bar_is_not_finished() {
        let t = at("2026-11-24T20:00:00Z");
        assert!(!bar_finished(
            t,
            false,
            "5 mins",
            at("2026-11-24T20:04:59Z")
        ));
        assert!(bar_finished(t, false, "5 mins", at("2026-11-24T20:05:00Z")));
        assert!(!bar_finished(
            t,
            false,
            "1 hour",
            at("2026-11-24T20:30:00Z")
        ));
        assert!(bar_finished(t, false, "1 hour", at("2026-11-24T21:00:00Z")));
    }

    #[test]
    fn a_daily_bar_ends_at_20_new_york() {
        let t = at("2026-11-24T00:00:00Z");
        // 15:00 New York (EST, UTC-5): the day's bar is still forming.
        assert!(!bar_finished(t, true, "1 day", at("2026-11-24T20:00:00Z")));
        assert!(!bar_finished(t, true, "1 day", at("2026-11-25T00:59:59Z")));
        assert!(bar_finished(t, true, "1 day", at("2026-11-25T01:00:00Z")));
        // Summer time (EDT, UTC-4).
        let t = at("2026-07-15T00:00:00Z");
        assert!(!bar_finished(t, true, "1 day", at("2026-07-15T23:59:59Z")));
        assert!(bar_finished(t, true, "1 day", at("2026-07-16T00:00:00Z")));
    }

    #[test]
    fn an_unknown_bar_size_is_never_finished() {
        let t = at("2026-11-24T00:00:00Z");
        assert!(!bar_finished(
            t,
            false,
            "7 fortnights",
            at("2027-01-01T00:00:00Z")
        ));
    }
}
