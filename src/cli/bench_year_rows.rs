//! The gateway's answers `ibq bench year` makes up, as the worker's handlers would write
//! them: plausible prices that wander from day to day, never a sentinel.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use deltalake::arrow::array::RecordBatch;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::lake::columns::BatchBuilder;
use crate::market::calendar::{new_york_date, new_york_instant};
use crate::queue::Request;
use crate::worker::results::*;

/// Rows one position poll writes: the demo account's positions that do not stream.
const POLLED_POSITIONS: usize = 3;

/// A streamed leg's rows at the times `at` with the prices `prices`, as the streaming
/// manager writes them.
pub(super) fn leg_rows(at: &[DateTime<Utc>], prices: &[f64]) -> RecordBatch {
    let k = at.len();
    BatchBuilder::new(POSITION_UPDATE_COLUMNS)
        .utf8(vec![None::<&str>; k])
        .utf8(vec![Some("stream"); k])
        .timestamp(at.iter().map(|t| Some(*t)))
        .utf8(vec![None::<&str>; k])
        .i64(vec![Some(700_000_001); k])
        .utf8(vec![Some("SPY"); k])
        .utf8(vec![Some("OPT"); k])
        .utf8(vec![Some("20261218"); k])
        .f64(vec![Some(600.0); k])
        .utf8(vec![Some("C"); k])
        .f64(vec![Some(2.0); k])
        .f64(vec![None; k])
        .f64(prices.iter().map(|p| Some(*p)))
        .f64(prices.iter().map(|p| Some(p * 2.0 * 100.0)))
        .i64(vec![Some(1); k])
        .finish()
}

/// The generator of a request's answers, seeded by what the request asks (its type,
/// symbol, parameters and scheduler occurrence, not its random id) and the moment, so two
/// builds of the same days get the same answers however their commits are cut.
pub(super) fn rng_for(req: &Request, now: DateTime<Utc>) -> ChaCha8Rng {
    // FNV-1a: a hash that stays the same from one build of ibq to the next.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let what = [
        req.request_type.as_str(),
        req.symbol.as_str(),
        &req.parameters.to_string(),
        req.schedule_key.as_deref().unwrap_or(""),
    ];
    for b in what.iter().flat_map(|s| s.bytes().chain([0])) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(now.timestamp() as u64 ^ h)
}

/// The next price of a leg that moves at most 0.2% a step.
pub(super) fn step_price(price: f64, rng: &mut ChaCha8Rng) -> f64 {
    (price * (1.0 + rng.gen_range(-0.002..0.002))).max(0.05)
}

pub(super) fn base_price(symbol: &str) -> f64 {
    match symbol {
        "SPY" => 600.0,
        "QQQ" => 520.0,
        "IWM" => 230.0,
        "ES" => 6000.0,
        "NQ" => 21000.0,
        "RTY" => 2300.0,
        _ => 100.0,
    }
}

/// A price that wanders a little from day to day and within the day.
pub(super) fn price_at(symbol: &str, now: DateTime<Utc>, rng: &mut ChaCha8Rng) -> f64 {
    let day = now.num_days_from_ce() as f64;
    let drift = 1.0 + 0.05 * (day / 40.0).sin();
    let p = base_price(symbol) * drift * (1.0 + rng.gen_range(-0.003..0.003));
    (p * 100.0).round() / 100.0
}

pub(super) fn id(req: &Request, n: usize) -> Vec<Option<String>> {
    vec![Some(req.request_id.to_string()); n]
}

/// The Friday on or after `day + dte`: a listed monthly-style expiry.
pub(super) fn expiry_near(today: NaiveDate, dte: u32) -> NaiveDate {
    let mut d = today + Duration::days(dte as i64);
    while d.weekday() != chrono::Weekday::Fri {
        d += Duration::days(1);
    }
    d
}

pub(super) fn option_chain(
    req: &Request,
    target_dte: u32,
    strikes_each_side: usize,
    now: DateTime<Utc>,
    rng: &mut ChaCha8Rng,
) -> RecordBatch {
    let sym = req.symbol.as_str();
    let price = price_at(sym, now, rng);
    let today = new_york_date(now);
    let expiry = expiry_near(today, target_dte);
    let exp = expiry.format("%Y%m%d").to_string();
    let dte = (expiry - today).num_days();
    let step = if price > 300.0 { 5.0 } else { 1.0 };
    let atm = (price / step).round() * step;
    let k = strikes_each_side as i64;
    let mut rows: Vec<(f64, &str)> = Vec::new();
    for i in -k..=k {
        for right in ["C", "P"] {
            rows.push((atm + i as f64 * step, right));
        }
    }
    let n = rows.len();
    let quote: Vec<(f64, f64, f64)> = rows
        .iter()
        .map(|(strike, right)| {
            let intrinsic = if *right == "C" {
                (price - strike).max(0.0)
            } else {
                (strike - price).max(0.0)
            };
            let mid = intrinsic + price * 0.02 * (dte as f64 / 45.0).sqrt() + 0.05;
            let spread = (mid * 0.01).max(0.01);
            let iv = 0.15 + rng.gen_range(0.0..0.05);
            (
                ((mid - spread) * 100.0).round() / 100.0,
                ((mid + spread) * 100.0).round() / 100.0,
                iv,
            )
        })
        .collect();
    let delta = |strike: f64, right: &str| {
        let d = (0.5 - (strike - price) / (price * 0.1)).clamp(0.01, 0.99);
        if right == "C" {
            d
        } else {
            d - 1.0
        }
    };
    BatchBuilder::new(OPTION_SNAPSHOT_COLUMNS)
        .utf8(id(req, n))
        .timestamp(vec![Some(now); n])
        .utf8(vec![Some(sym); n])
        .f64(vec![Some(price); n])
        .i64(
            rows.iter()
                .map(|(s, r)| Some(600_000_000 + (*s * 10.0) as i64 * 2 + i64::from(*r == "P"))),
        )
        .utf8(rows.iter().map(|(s, r)| {
            Some(format!(
                "{sym:<6}{}{r}{:08}",
                &exp[2..],
                (*s * 1000.0) as i64
            ))
        }))
        .utf8(vec![Some(exp.as_str()); n])
        .i64(vec![Some(dte); n])
        .f64(rows.iter().map(|(s, _)| Some(*s)))
        .utf8(rows.iter().map(|(_, r)| Some(*r)))
        .f64(quote.iter().map(|q| Some(q.0)))
        .f64(quote.iter().map(|q| Some(q.1)))
        .f64(
            quote
                .iter()
                .map(|q| Some(((q.0 + q.1) / 2.0 * 100.0).round() / 100.0)),
        )
        .f64((0..n).map(|i| Some(10.0 + i as f64)))
        .f64((0..n).map(|i| Some(12.0 + i as f64)))
        .f64((0..n).map(|i| Some(100.0 * (1 + i % 7) as f64)))
        .f64(quote.iter().map(|q| Some(q.2)))
        .f64(rows.iter().map(|(s, r)| Some(delta(*s, r))))
        .f64(vec![Some(0.01); n])
        .f64(vec![Some(0.3); n])
        .f64(vec![Some(-0.2); n])
        .f64(quote.iter().map(|q| Some((q.0 + q.1) / 2.0)))
        .i64(vec![Some(1); n])
        .finish()
}

pub(super) fn futures_snapshot(
    req: &Request,
    now: DateTime<Utc>,
    rng: &mut ChaCha8Rng,
) -> RecordBatch {
    let sym = req.symbol.as_str();
    let price = price_at(sym, now, rng);
    // The quarterly month after the roll.
    let today = new_york_date(now);
    let mut month =
        NaiveDate::from_ymd_opt(today.year(), 3 * today.month().div_ceil(3), 1).unwrap_or(today);
    let third_friday = |m: NaiveDate| {
        let mut d = m.with_day(15).unwrap_or(m);
        while d.weekday() != chrono::Weekday::Fri {
            d += Duration::days(1);
        }
        d
    };
    if (third_friday(month) - today).num_days() <= 8 {
        month = (month + Duration::days(95)).with_day(1).unwrap_or(month);
    }
    let expiry = third_friday(month);
    let code = ["H", "M", "U", "Z"][(month.month() as usize / 3).saturating_sub(1) % 4];
    BatchBuilder::new(FUTURES_SNAPSHOT_COLUMNS)
        .utf8(id(req, 1))
        .timestamp([Some(now)])
        .utf8([Some(sym)])
        .i64([Some(500_000_000 + month.num_days_from_ce() as i64)])
        .utf8([Some(format!("{sym}{code}{}", month.year() % 10))])
        .utf8([Some(month.format("%Y%m").to_string())])
        .date([Some(expiry)])
        .timestamp([Some(new_york_instant(
            expiry,
            NaiveTime::from_hms_opt(9, 30, 0).unwrap_or_default(),
        ))])
        .f64([Some(price - 0.25)])
        .f64([Some(price + 0.25)])
        .f64([Some(price)])
        .f64([Some(20.0)])
        .f64([Some(18.0)])
        .f64([Some(150_000.0)])
        .f64([Some(price * 1.004)])
        .f64([Some(price * 0.996)])
        .f64([Some(price * 0.999)])
        .i64([Some(1)])
        .finish()
}

/// The dates (at 00:00 UTC, as IB stamps daily bars) of the `n` weekdays up to `now`'s
/// New York date.
pub(super) fn daily_bar_times(now: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let today = new_york_date(now);
    let mut out: Vec<DateTime<Utc>> = today
        .iter_days()
        .rev()
        .filter(|d| d.weekday().num_days_from_monday() < 5)
        .take(n)
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        .collect();
    out.reverse();
    out
}

pub(super) fn bars(
    req: &Request,
    bar_size: &str,
    what: &str,
    times: &[DateTime<Utc>],
    now: DateTime<Utc>,
    rng: &mut ChaCha8Rng,
) -> RecordBatch {
    let sym = req.symbol.as_str();
    let n = times.len();
    let ohlc: Vec<(f64, f64, f64, f64)> = times
        .iter()
        .map(|t| {
            let o = price_at(sym, *t, rng);
            let c = price_at(sym, *t + Duration::hours(20), rng);
            (o, o.max(c) * 1.003, o.min(c) * 0.997, c)
        })
        .collect();
    BatchBuilder::new(MARKET_BAR_COLUMNS)
        .utf8(id(req, n))
        .utf8(vec![Some(sym); n])
        .i64(vec![Some(756_733); n])
        .utf8(vec![Some(bar_size); n])
        .utf8(vec![Some(what); n])
        .timestamp(times.iter().map(|t| Some(*t)))
        .f64(ohlc.iter().map(|b| Some(b.0)))
        .f64(ohlc.iter().map(|b| Some(b.1)))
        .f64(ohlc.iter().map(|b| Some(b.2)))
        .f64(ohlc.iter().map(|b| Some(b.3)))
        .f64(vec![Some(60_000_000.0); n])
        .f64(ohlc.iter().map(|b| Some((b.0 + b.3) / 2.0)))
        .i64(vec![Some(400_000); n])
        .timestamp(vec![Some(now); n])
        .finish()
}

pub(super) fn positions(req: &Request, now: DateTime<Utc>, rng: &mut ChaCha8Rng) -> RecordBatch {
    let n = POLLED_POSITIONS;
    let held = [
        ("SPY", "STK", 100.0),
        ("QQQ", "STK", 50.0),
        ("ES", "FUT", 1.0),
    ];
    let prices: Vec<f64> = held.iter().map(|h| price_at(h.0, now, rng)).collect();
    BatchBuilder::new(POSITION_UPDATE_COLUMNS)
        .utf8(id(req, n))
        .utf8(vec![Some("poll"); n])
        .timestamp(vec![Some(now); n])
        .utf8(vec![Some("DU1234567"); n])
        .i64((0..n).map(|i| Some(756_733 + i as i64)))
        .utf8(held.iter().map(|h| Some(h.0)))
        .utf8(held.iter().map(|h| Some(h.1)))
        .utf8(held.iter().map(|h| (h.1 == "FUT").then_some("20261218")))
        .f64(vec![None; n])
        .utf8(vec![None::<&str>; n])
        .f64(held.iter().map(|h| Some(h.2)))
        .f64(prices.iter().map(|p| Some(p * 0.95)))
        .f64(prices.iter().map(|p| Some(*p)))
        .f64(
            held.iter()
                .zip(&prices)
                .map(|(h, p)| Some(p * h.2 * if h.1 == "FUT" { 50.0 } else { 1.0 })),
        )
        .i64(vec![Some(1); prices.len()])
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Actor, NewRequest, Priority, RequestType};
    use serde_json::json;

    #[test]
    fn a_chain_of_five_strikes_each_side_has_22_quotes_with_prices() {
        let now = Utc::now();
        let new = NewRequest {
            request_type: RequestType::OptionChain,
            symbol: "SPY".into(),
            priority: Priority::NORMAL,
            parameters: json!({}),
            changed_by: Actor::Scheduler,
            schedule_key: None,
            during: Default::default(),
        };
        let crate::queue::Enqueued::Added(req) = crate::queue::QueueState::new()
            .prepare_enqueue(new, now)
            .unwrap()
        else {
            panic!("an empty queue has no duplicate")
        };
        let b = option_chain(&req, 45, 5, now, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(b.num_rows(), 22);
        let r = crate::lake::columns::BatchReader::new(&b);
        let (bid, ask) = (r.f64("bid").unwrap(), r.f64("ask").unwrap());
        for i in 0..22 {
            let (b, a) = (bid[i].unwrap(), ask[i].unwrap());
            assert!(b > 0.0 && a > b, "row {i}: bid {b} ask {a}");
        }
    }
}
