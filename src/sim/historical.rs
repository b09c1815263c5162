//! Historical bars cut from the same price paths that drive the quotes.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::America::New_York;

use super::pricing::{self, mix, Market};
use super::proto;
use super::universe::{Instrument, Kind};

/// `bar_secs` of a `1 month` bar (a marker: months differ in length).
const MONTH_BAR: i64 = 31 * 86_400;

/// Most bars one request may return (a gateway refuses larger queries).
const MAX_BARS: usize = 100_000;

/// Why a historical request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoricalError {
    /// A parameter a gateway would refuse (error 321).
    #[error("Error validating request.-'bH' : cause - {0}")]
    Invalid(String),
    /// More data than a gateway serves in one request (error 162).
    #[error("Historical Market Data Service error message:Time length exceed max.")]
    TooLong,
    /// The window holds no bars: a gateway answers 162 with this text, not an empty list.
    #[error("Historical Market Data Service error message:HMDS query returned no data: {0}")]
    NoData(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Trades,
    Midpoint,
    Bid,
    Ask,
}

/// A parsed RequestHistoricalData.
#[derive(Debug, Clone)]
pub struct BarRequest {
    bar_secs: i64,
    daily: bool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    use_rth: bool,
    what: What,
    epoch_dates: bool,
}

fn invalid(msg: impl Into<String>) -> HistoricalError {
    HistoricalError::Invalid(msg.into())
}

fn parse_bar_size(text: &str) -> Result<(i64, bool), HistoricalError> {
    let (n, unit) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| invalid(format!("invalid bar size {text:?}")))?;
    let n: i64 = n
        .parse()
        .map_err(|_| invalid(format!("invalid bar size {text:?}")))?;
    let unit_secs = match unit.trim().trim_end_matches('s') {
        "sec" => 1,
        "min" => 60,
        "hour" => 3600,
        "day" if n == 1 => return Ok((86_400, true)),
        "week" if n == 1 => return Ok((7 * 86_400, true)),
        "month" if n == 1 => return Ok((MONTH_BAR, true)),
        _ => return Err(invalid(format!("unsupported bar size {text:?}"))),
    };
    if !(1..=480).contains(&n) || 86_400 % (n * unit_secs) != 0 {
        return Err(invalid(format!("unsupported bar size {text:?}")));
    }
    Ok((n * unit_secs, false))
}

/// A duration as IB counts it ("Historical Data Limitations", "Duration"): `S` seconds and
/// `D` days count trading time (N D is N trading sessions), `W`, `M` and `Y` calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    TradingSecs(i64),
    Sessions(i64),
    CalendarDays(i64),
    Months(u32),
}

/// Most seconds an `S` duration may ask for, and most days a `D` duration (beyond them IB
/// answers 321 and asks for the next larger unit).
const MAX_SECONDS: i64 = 86_400;
const MAX_DAYS: i64 = 365;

fn parse_duration(text: &str) -> Result<Span, HistoricalError> {
    let bad = || invalid(format!("invalid duration {text:?}"));
    let (n, unit) = text.trim().split_once(' ').ok_or_else(bad)?;
    let n: i64 = n.trim().parse().map_err(|_| bad())?;
    if n < 1 {
        return Err(bad());
    }
    match unit.trim().to_ascii_uppercase().as_str() {
        "S" if n > MAX_SECONDS => Err(invalid(format!(
            "duration {text:?}: more than {MAX_SECONDS} seconds; ask in days"
        ))),
        "S" => Ok(Span::TradingSecs(n)),
        "D" if n > MAX_DAYS => Err(invalid(format!(
            "duration {text:?}: more than {MAX_DAYS} days; ask in weeks, months or years"
        ))),
        "D" => Ok(Span::Sessions(n)),
        "W" if n <= 52 * 20 => Ok(Span::CalendarDays(7 * n)),
        "M" if n <= 12 * 20 => Ok(Span::Months(n as u32)),
        "Y" if n <= 20 => Ok(Span::Months(12 * n as u32)),
        _ => Err(bad()),
    }
}

/// The start of a window of `span` ending at `end`, counting `inst`'s sessions on the
/// exchange calendar (weekends and NYSE holidays have none).
fn window_start(inst: &Instrument, use_rth: bool, end: DateTime<Utc>, span: Span) -> DateTime<Utc> {
    let mut date = pricing::ny_date(end);
    match span {
        Span::CalendarDays(d) => end - Duration::days(d),
        Span::Months(m) => end
            .checked_sub_months(chrono::Months::new(m))
            .unwrap_or(end),
        Span::Sessions(n) => {
            let mut left = n;
            for _ in 0..(2 * MAX_DAYS) {
                if pricing::is_trading_day(date)
                    && at_minute(date, sessions(inst, use_rth, date)[0].0) < end
                {
                    left -= 1;
                    if left == 0 {
                        return pricing::ny_instant(date, 0, 0);
                    }
                }
                date = date.pred_opt().unwrap_or(date);
            }
            pricing::ny_instant(date, 0, 0)
        }
        Span::TradingSecs(secs) => {
            let mut left = secs;
            for _ in 0..30 {
                if pricing::is_trading_day(date) {
                    for (o, c) in sessions(inst, use_rth, date).iter().rev() {
                        let (open, close) = (at_minute(date, *o), at_minute(date, *c).min(end));
                        if close <= open {
                            continue;
                        }
                        let len = (close - open).num_seconds();
                        if len >= left {
                            return close - Duration::seconds(left);
                        }
                        left -= len;
                    }
                }
                date = date.pred_opt().unwrap_or(date);
            }
            end - Duration::seconds(secs)
        }
    }
}

/// Parses `YYYYMMDD HH:MM:SS UTC`, `YYYYMMDD-HH:MM:SS` (UTC), `YYYYMMDD HH:MM:SS <IANA zone>`
/// or a bare `YYYYMMDD HH:MM:SS` (New York time, the gateway's zone).
pub fn parse_end(text: &str) -> Result<Option<DateTime<Utc>>, HistoricalError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || invalid(format!("invalid end date/time {text:?}"));
    if let Ok(dt) = NaiveDateTime::parse_from_str(text, "%Y%m%d-%H:%M:%S") {
        return Ok(Some(Utc.from_utc_datetime(&dt)));
    }
    let mut parts = text.splitn(3, ' ');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return Err(bad());
    };
    let naive = NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y%m%d %H:%M:%S")
        .map_err(|_| bad())?;
    let zone = parts.next().map(str::trim).unwrap_or("US/Eastern");
    let tz: chrono_tz::Tz = if zone.eq_ignore_ascii_case("UTC") || zone.eq_ignore_ascii_case("GMT")
    {
        chrono_tz::UTC
    } else {
        zone.parse().map_err(|_| bad())?
    };
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|d| Some(d.with_timezone(&Utc)))
        .ok_or_else(bad)
}

impl BarRequest {
    /// Validates a request against the clock time `now` (a later end is clamped to now).
    pub fn parse(
        req: &proto::HistoricalDataRequest,
        inst: &Instrument,
        now: DateTime<Utc>,
    ) -> Result<Self, HistoricalError> {
        let (bar_secs, daily) = parse_bar_size(req.bar_size_setting.as_deref().unwrap_or(""))?;
        let duration = parse_duration(req.duration.as_deref().unwrap_or(""))?;
        let end = parse_end(req.end_date_time.as_deref().unwrap_or(""))?
            .unwrap_or(now)
            .min(now);
        let what = match req
            .what_to_show
            .as_deref()
            .unwrap_or("TRADES")
            .to_ascii_uppercase()
            .as_str()
        {
            "TRADES" | "ADJUSTED_LAST" | "" => What::Trades,
            "MIDPOINT" | "BID_ASK" => What::Midpoint,
            "BID" => What::Bid,
            "ASK" => What::Ask,
            other => return Err(invalid(format!("unsupported whatToShow {other:?}"))),
        };
        let use_rth = req.use_rth.unwrap_or(false);
        let start = window_start(inst, use_rth, end, duration);
        if !daily && (end - start).num_seconds() / bar_secs > MAX_BARS as i64 {
            return Err(HistoricalError::TooLong);
        }
        Ok(Self {
            bar_secs,
            daily,
            start,
            end,
            use_rth,
            what,
            epoch_dates: req.format_date.unwrap_or(1) == 2,
        })
    }

    /// Start and end of the window as HistoricalDataEnd carries them by default: wall clock
    /// and zone, `20261123 09:30:00 US/Eastern` (the gateway's "instrument time zone"
    /// setting; ibapi 5.5 `market_data/historical/common/decoders.rs`).
    pub fn window_text(&self) -> (String, String) {
        let f = |t: DateTime<Utc>| {
            t.with_timezone(&New_York)
                .format("%Y%m%d %H:%M:%S US/Eastern")
                .to_string()
        };
        (f(self.start), f(self.end))
    }
}

/// The sessions of a trading day in New York minutes (open, close). On NYSE's early-close
/// days (the crate's calendar: the day after Thanksgiving, July 3 and December 24 from
/// Monday to Thursday) stocks and their options trade until 13:00 and after hours until
/// 17:00 (NYSE *Holidays and Trading Hours*: "each market will close early at 1:00 p.m."
/// and "Crossing Session orders will be accepted ... until 5:00 p.m."), and the equity
/// index futures and the indices stop at 13:15 (CME's holiday calendar: 12:15 CT), without
/// the evening session. See docs/SIM.md.
fn sessions(inst: &Instrument, use_rth: bool, date: NaiveDate) -> &'static [(u32, u32)] {
    let early = crate::market::calendar::rule_early_close(date).is_some();
    match (inst.kind, use_rth, early) {
        (Kind::Stock, false, false) => &[(240, 1200)],
        (Kind::Stock, false, true) => &[(240, 1020)],
        (Kind::Future { .. }, false, false) => &[(0, 1020), (1080, 1440)],
        (Kind::Future { .. }, false, true) => &[(0, 795)],
        (Kind::Future { .. } | Kind::Index, _, false) => &[(570, 975)],
        (Kind::Future { .. } | Kind::Index, _, true) => &[(570, 795)],
        (_, _, false) => &[(570, 960)],
        (_, _, true) => &[(570, 780)],
    }
}

fn at_minute(date: NaiveDate, minute: u32) -> DateTime<Utc> {
    if minute >= 1440 {
        return pricing::ny_instant(date.succ_opt().unwrap_or(date), 0, 0);
    }
    pricing::ny_instant(date, minute / 60, minute % 60)
}

struct Ohlc {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
}

/// Open/high/low/close of `inst` over [from, to], sampled often enough for the bar size.
fn ohlc(
    market: &Market,
    inst: &Instrument,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    shift: f64,
) -> Ohlc {
    let span = (to - from).num_seconds().max(1);
    let step = (span / 8).clamp(1, 300);
    let mut t = from;
    let first = market.mid(inst, from) + shift;
    let mut o = Ohlc {
        open: first,
        high: first,
        low: first,
        close: first,
    };
    while t < to {
        t = (t + Duration::seconds(step)).min(to);
        let p = market.mid(inst, t) + shift;
        o.high = o.high.max(p);
        o.low = o.low.min(p);
        o.close = p;
    }
    o
}

fn round(x: f64, tick: f64) -> f64 {
    ((x / tick).round() * tick * 1e6).round() / 1e6
}

/// The bars of a request, oldest first.
pub fn bars(
    market: &Market,
    inst: &Instrument,
    req: &BarRequest,
) -> Result<Vec<proto::HistoricalDataBar>, HistoricalError> {
    let tick = inst.min_tick();
    let shift = match req.what {
        What::Trades | What::Midpoint => 0.0,
        What::Bid => -tick / 2.0,
        What::Ask => tick / 2.0,
    };
    let daily_volume = match inst.kind {
        Kind::Stock => [60e6, 40e6, 30e6, 0.0, 2e6][inst.underlying as usize],
        Kind::Future { root, .. } => [1.5e6, 6e5, 1.5e5][root as usize],
        Kind::Option { .. } => 5_000.0,
        Kind::Index => 0.0,
    };
    let mut out = Vec::new();
    // An index has no bid or ask, so it has no BID or ASK history either.
    let no_quotes = matches!(inst.kind, Kind::Index) && matches!(req.what, What::Bid | What::Ask);
    let mut date = if no_quotes {
        pricing::ny_date(req.end).succ_opt().unwrap_or_default()
    } else {
        pricing::ny_date(req.start)
    };
    let last_date = pricing::ny_date(req.end);
    while date <= last_date {
        if pricing::is_trading_day(date) {
            let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sessions(inst, req.use_rth, date)
                .iter()
                .map(|(o, c)| (at_minute(date, *o), at_minute(date, *c)))
                .collect();
            let expired = |t: DateTime<Utc>| {
                inst.expiry()
                    .is_some_and(|e| t > pricing::expiry_instant(e) + Duration::hours(1))
            };
            if req.daily {
                let (open, close) = (windows[0].0, windows[windows.len() - 1].1.min(req.end));
                if open < req.end && close > req.start && !expired(open) {
                    push_bar(
                        &mut out,
                        market,
                        inst,
                        req,
                        (open, close),
                        date.format("%Y%m%d").to_string(),
                        daily_volume,
                        shift,
                        tick,
                    );
                }
            } else {
                let midnight = pricing::ny_instant(date, 0, 0);
                for (open, close) in windows {
                    let first = (open - midnight).num_seconds() / req.bar_secs;
                    let mut k = first;
                    loop {
                        let start = (midnight + Duration::seconds(k * req.bar_secs)).max(open);
                        let stop = (midnight + Duration::seconds((k + 1) * req.bar_secs))
                            .min(close)
                            .min(req.end);
                        if start >= close || start >= req.end {
                            break;
                        }
                        if start >= req.start && stop > start && !expired(start) {
                            let label = if req.epoch_dates {
                                start.timestamp().to_string()
                            } else {
                                start
                                    .with_timezone(&New_York)
                                    .format("%Y%m%d %H:%M:%S US/Eastern")
                                    .to_string()
                            };
                            let share =
                                daily_volume * (stop - start).num_seconds() as f64 / 23_400.0;
                            push_bar(
                                &mut out,
                                market,
                                inst,
                                req,
                                (start, stop),
                                label,
                                share,
                                shift,
                                tick,
                            );
                            if out.len() > MAX_BARS {
                                return Err(HistoricalError::TooLong);
                            }
                        }
                        k += 1;
                    }
                }
            }
        }
        date = match date.succ_opt() {
            Some(d) => d,
            None => break,
        };
    }
    if req.daily && req.bar_secs > 86_400 {
        out = group_days(out, req.bar_secs == MONTH_BAR);
    }
    if out.is_empty() {
        let what = match req.what {
            What::Trades => "Trades",
            What::Midpoint => "Midpoint",
            What::Bid => "Bid",
            What::Ask => "Ask",
        };
        return Err(HistoricalError::NoData(format!(
            "{}@{} {what}",
            inst.local_symbol(),
            inst.to_proto("").exchange.unwrap_or_default()
        )));
    }
    Ok(out)
}

/// Daily bars folded into weekly (ISO weeks) or monthly bars, each labelled with its
/// first trading day.
fn group_days(days: Vec<proto::HistoricalDataBar>, monthly: bool) -> Vec<proto::HistoricalDataBar> {
    let key = |b: &proto::HistoricalDataBar| {
        let d = NaiveDate::parse_from_str(b.date.as_deref().unwrap_or(""), "%Y%m%d")
            .unwrap_or_default();
        if monthly {
            (d.year(), d.month())
        } else {
            (d.iso_week().year(), d.iso_week().week())
        }
    };
    let num = |s: &Option<String>| {
        s.as_deref()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut out: Vec<proto::HistoricalDataBar> = Vec::new();
    let mut last_key = None;
    for b in days {
        let k = key(&b);
        match out.last_mut() {
            Some(g) if last_key == Some(k) => {
                let (v0, v1) = (num(&g.volume), num(&b.volume));
                let wap = if v0 + v1 > 0.0 {
                    (num(&g.wap) * v0 + num(&b.wap) * v1) / (v0 + v1)
                } else {
                    num(&b.wap)
                };
                g.high = match (g.high, b.high) {
                    (Some(a), Some(c)) => Some(a.max(c)),
                    (a, c) => a.or(c),
                };
                g.low = match (g.low, b.low) {
                    (Some(a), Some(c)) => Some(a.min(c)),
                    (a, c) => a.or(c),
                };
                g.close = b.close;
                g.volume = Some(format!("{}", v0 + v1));
                g.wap = Some(format!("{:.4}", wap));
                g.bar_count = Some(g.bar_count.unwrap_or(0) + b.bar_count.unwrap_or(0));
            }
            _ => out.push(b),
        }
        last_key = Some(k);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn push_bar(
    out: &mut Vec<proto::HistoricalDataBar>,
    market: &Market,
    inst: &Instrument,
    req: &BarRequest,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    label: String,
    volume: f64,
    shift: f64,
    tick: f64,
) {
    let o = ohlc(market, inst, from, to, shift);
    let noise =
        0.5 + (mix(inst.conid as u64 ^ mix(from.timestamp() as u64)) % 1000) as f64 / 1000.0;
    let volume = if req.what == What::Trades {
        (volume * noise).floor()
    } else {
        -1.0
    };
    let wap = (o.open + o.high + o.low + o.close) / 4.0;
    out.push(proto::HistoricalDataBar {
        date: Some(label),
        open: Some(round(o.open, tick)),
        high: Some(round(o.high, tick)),
        low: Some(round(o.low, tick)),
        close: Some(round(o.close, tick)),
        volume: Some(format!("{volume}")),
        wap: Some(format!(
            "{:.4}",
            if req.what == What::Trades { wap } else { -1.0 }
        )),
        bar_count: Some(if req.what == What::Trades {
            (volume / 100.0).max(1.0) as i32
        } else {
            -1
        }),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ibapi_formats() {
        let t = parse_end("20261123 15:00:00 UTC").ok().flatten();
        assert_eq!(
            t.map(|t| t.to_rfc3339()),
            Some("2026-11-23T15:00:00+00:00".into())
        );
        let t = parse_end("20261123-15:00:00").ok().flatten();
        assert_eq!(
            t.map(|t| t.to_rfc3339()),
            Some("2026-11-23T15:00:00+00:00".into())
        );
        let t = parse_end("20261123 10:00:00 US/Eastern").ok().flatten();
        assert_eq!(
            t.map(|t| t.to_rfc3339()),
            Some("2026-11-23T15:00:00+00:00".into())
        );
        assert!(parse_end("yesterday").is_err());
        assert_eq!(parse_bar_size("5 mins"), Ok((300, false)));
        assert_eq!(parse_bar_size("1 day"), Ok((86_400, true)));
        assert!(parse_bar_size("7 mins").is_err());
        assert_eq!(parse_duration("2 D"), Ok(Span::Sessions(2)));
        assert!(parse_duration("9223372036854775807 Y").is_err());
        assert!(parse_duration("86401 S").is_err());
        assert!(parse_duration("366 D").is_err());
        assert_eq!(parse_duration("86400 S"), Ok(Span::TradingSecs(86_400)));
    }
}
