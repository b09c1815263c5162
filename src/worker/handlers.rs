//! What each request type does: the gateway requests it makes and the rows it writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use futures::{StreamExt, TryStreamExt};
use ibapi::contracts::{ContractDetails, SecurityType};
use ibapi::market_data::historical::{BarSize, BarTimestamp, Duration as IbDuration, WhatToShow};
use ibapi::market_data::realtime::Quote;

use super::errors::WorkError;
use super::ib::{by_conid, options_of, right_text, Ib};
use super::results::*;
use crate::gateway::quote::market_data_type;
use crate::lake::columns::{BatchBuilder, BatchReader};
use crate::queue::params::{
    DerivedStatsParams, FuturesSnapshotParams, MarketBarsParams, OptionChainParams, Params,
    PositionUpdateParams,
};
use crate::queue::Request;

/// Most snapshots of one request in flight at once (each also needs a free line).
const SNAPSHOT_CONCURRENCY: usize = 16;
/// The futures roll: the front month becomes the next one this many days before expiry.
const FUTURES_ROLL_DAYS: i64 = 8;

/// Which contracts stream as active legs (their positions are not polled).
pub trait ActiveLegs: Send + Sync {
    fn is_active(&self, conid: i32) -> bool;
}

/// Runs one request and returns its `result_data`.
pub async fn run(
    ib: &Ib,
    results: &ResultTables,
    legs: &dyn ActiveLegs,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, WorkError> {
    let table = req.request_type.result_table();
    let since = super::written::earliest_write(req.created_at, now);
    if results
        .already_written(table, req.request_id, since)
        .await?
    {
        // A run whose rows were committed but whose success was not (crash, lost
        // connection): the rows stand, nothing is written twice.
        return Ok(
            serde_json::json!({"table": table, "note": "rows were already written by an earlier attempt"}),
        );
    }
    let params = Params::parse(req.request_type, &req.parameters)
        .map_err(|e| WorkError::Invalid(e.to_string()))?;
    let written = match params {
        Params::OptionChain(p) => option_chain(ib, results, req, &p, now).await?,
        Params::FuturesSnapshot(p) => futures_snapshot(ib, results, req, &p, now).await?,
        Params::MarketBars(p) => match market_bars(ib, results, req, &p, now).await {
            // IB answers a window without bars with 162 "HMDS query returned no data":
            // the request did what it could, there is nothing to write or to retry.
            Err(e) if e.is_no_data() => {
                return Ok(serde_json::json!({
                    "table": MARKET_BARS,
                    "rows": 0,
                    "note": format!("IB returned no data for this window ({e})"),
                }));
            }
            r => r?,
        },
        Params::PositionUpdate(p) => position_update(ib, results, legs, req, &p, now).await?,
        Params::DerivedStats(p) => derived_stats(results, req, &p, now).await?,
    };
    Ok(serde_json::to_value(written).expect("Written serializes"))
}

fn ny_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&New_York).date_naive()
}

fn mid(q: &Quote) -> Option<f64> {
    match (q.bid, q.ask) {
        (Some(b), Some(a)) if b > 0.0 && a > 0.0 => Some((b + a) / 2.0),
        _ => None,
    }
}

/// The price a trader would mark at: last, else the mid, else the close.
fn mark(q: &Quote) -> Option<f64> {
    q.last
        .filter(|p| *p > 0.0)
        .or_else(|| mid(q))
        .or(q.close.filter(|p| *p > 0.0))
}

/// Snapshots of many contracts, several at a time (each holding a line), in order.
async fn snapshots(
    ib: &Ib,
    contracts: Vec<ibapi::contracts::Contract>,
) -> Result<Vec<Quote>, WorkError> {
    Ok(timed_snapshots(ib, contracts).await?.0)
}

/// Snapshots as [`snapshots`] takes them, and the time between the first and the last quote.
async fn timed_snapshots(
    ib: &Ib,
    contracts: Vec<ibapi::contracts::Contract>,
) -> Result<(Vec<Quote>, std::time::Duration), WorkError> {
    let futs: Vec<_> = contracts
        .into_iter()
        .map(|c| async move {
            let q = ib.snapshot(c).await?;
            Ok::<_, WorkError>((q, std::time::Instant::now()))
        })
        .collect();
    let timed: Vec<_> = futures::stream::iter(futs)
        .buffered(SNAPSHOT_CONCURRENCY)
        .try_collect()
        .await?;
    let first = timed.iter().map(|t| t.1).min();
    let last = timed.iter().map(|t| t.1).max();
    let spread = first.zip(last).map(|(f, l)| l - f).unwrap_or_default();
    Ok((timed.into_iter().map(|t| t.0).collect(), spread))
}

fn id_col(req: &Request, n: usize) -> Vec<Option<String>> {
    vec![Some(req.request_id.to_string()); n]
}

async fn option_chain(
    ib: &Ib,
    results: &ResultTables,
    req: &Request,
    p: &OptionChainParams,
    now: DateTime<Utc>,
) -> Result<Written, WorkError> {
    let sym = req.symbol.as_str();
    let underlying = super::contracts::stock(ib, sym).await?.contract;
    let quote = ib
        .snapshot(by_conid(underlying.contract_id, "SMART"))
        .await?;
    let price = mark(&quote).ok_or_else(|| WorkError::Other(format!("no price for {sym}")))?;

    let expirations = ib.option_expirations(sym, underlying.contract_id).await?;
    let today = ny_date(now);
    let dte = |e: &str| {
        NaiveDate::parse_from_str(e, "%Y%m%d")
            .ok()
            .map(|d| (d - today).num_days())
    };
    let expiry = match &p.expiry {
        Some(e) if expirations.contains(e) => e.clone(),
        Some(e) => {
            return Err(WorkError::Invalid(format!(
                "expiry {e} is not listed for {sym}"
            )));
        }
        None => expirations
            .iter()
            .filter(|e| dte(e).is_some_and(|d| d >= 0))
            .min_by_key(|e| (dte(e).unwrap_or(i64::MAX) - p.target_dte as i64).abs())
            .cloned()
            .ok_or_else(|| WorkError::Invalid(format!("{sym} has no expiry from today on")))?,
    };

    let mut options: Vec<ContractDetails> = ib.details(&options_of(sym, &expiry)).await?;
    options.retain(|d| match p.rights.as_str() {
        "C" => right_text(d.contract.right).as_deref() == Some("C"),
        "P" => right_text(d.contract.right).as_deref() == Some("P"),
        _ => true,
    });
    let mut strikes: Vec<f64> = options.iter().map(|d| d.contract.strike).collect();
    strikes.sort_by(f64::total_cmp);
    strikes.dedup();
    let atm = strikes
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - price).abs().total_cmp(&(b.1 - price).abs()))
        .map(|(i, _)| i)
        .ok_or_else(|| WorkError::Invalid(format!("no strikes listed for {sym} {expiry}")))?;
    let n = p.strikes as usize;
    let chosen: Vec<f64> = match &p.strike {
        // Exactly the strikes asked for; one the gateway does not list is an error, not a
        // silently shorter chain.
        Some(asked) => {
            let same = |a: f64, b: f64| (a - b).abs() < 1e-6;
            let missing: Vec<String> = asked
                .iter()
                .filter(|k| !strikes.iter().any(|s| same(*s, **k)))
                .map(|k| k.to_string())
                .collect();
            if !missing.is_empty() {
                return Err(WorkError::Invalid(format!(
                    "strike {} is not listed for {sym} {expiry}",
                    missing.join(", ")
                )));
            }
            strikes
                .iter()
                .copied()
                .filter(|s| asked.iter().any(|k| same(*s, *k)))
                .collect()
        }
        None => strikes[atm.saturating_sub(n)..(atm + n + 1).min(strikes.len())].to_vec(),
    };
    options.retain(|d| chosen.contains(&d.contract.strike));
    options.sort_by(|a, b| a.contract.strike.total_cmp(&b.contract.strike));

    let (quotes, spread) = timed_snapshots(
        ib,
        options
            .iter()
            .map(|d| ibapi::contracts::Contract {
                security_type: SecurityType::Option,
                ..by_conid(d.contract.contract_id, "SMART")
            })
            .collect(),
    )
    .await?;
    let greeks = |q: &Quote| {
        q.model_greeks
            .clone()
            .or(q.last_greeks.clone())
            .or(q.bid_greeks.clone())
    };
    let n = options.len();
    let g: Vec<_> = quotes.iter().map(greeks).collect();
    let batch = BatchBuilder::new(OPTION_SNAPSHOT_COLUMNS)
        .utf8(id_col(req, n))
        .timestamp(vec![Some(now); n])
        .utf8(vec![Some(sym); n])
        .f64(vec![Some(price); n])
        .i64(options.iter().map(|d| Some(d.contract.contract_id as i64)))
        .utf8(
            options
                .iter()
                .map(|d| Some(d.contract.local_symbol.clone())),
        )
        .utf8(vec![Some(expiry.as_str()); n])
        .i64(vec![dte(&expiry); n])
        .f64(options.iter().map(|d| Some(d.contract.strike)))
        .utf8(options.iter().map(|d| right_text(d.contract.right)))
        .f64(quotes.iter().map(|q| q.bid))
        .f64(quotes.iter().map(|q| q.ask))
        .f64(quotes.iter().map(|q| q.last))
        .f64(quotes.iter().map(|q| q.bid_size))
        .f64(quotes.iter().map(|q| q.ask_size))
        .f64(quotes.iter().map(|q| q.volume))
        .f64(
            g.iter()
                .map(|g| g.as_ref().and_then(|g| g.implied_volatility)),
        )
        .f64(g.iter().map(|g| g.as_ref().and_then(|g| g.delta)))
        .f64(g.iter().map(|g| g.as_ref().and_then(|g| g.gamma)))
        .f64(g.iter().map(|g| g.as_ref().and_then(|g| g.vega)))
        .f64(g.iter().map(|g| g.as_ref().and_then(|g| g.theta)))
        .f64(g.iter().map(|g| g.as_ref().and_then(|g| g.option_price)))
        .i64(quotes.iter().map(market_data_type))
        .finish();
    let mut written = results
        .write(OPTION_SNAPSHOTS, Some(req.request_id), batch)
        .await?;
    written.quote_spread_ms = Some(spread.as_millis() as u64);
    Ok(written)
}

/// A contract's last trade date, and its instant when the text carries a time: a gateway
/// sends a future's as `20261218 08:30:00 US/Central` (time and exchange zone), an
/// option's as `20261218`. A time without a zone is read as New York time.
fn parse_expiry(text: &str) -> Option<(NaiveDate, Option<DateTime<Utc>>)> {
    let mut parts = text.split_whitespace();
    let date = NaiveDate::parse_from_str(parts.next()?, "%Y%m%d").ok()?;
    let Some(time) = parts.next() else {
        return Some((date, None));
    };
    let time = chrono::NaiveTime::parse_from_str(time, "%H:%M:%S")
        .or_else(|_| chrono::NaiveTime::parse_from_str(time, "%H:%M"))
        .ok()?;
    let zone: chrono_tz::Tz = match parts.next() {
        Some(z) => z.parse().ok()?,
        None => New_York,
    };
    let at = zone
        .from_local_datetime(&date.and_time(time))
        .earliest()?
        .with_timezone(&Utc);
    Some((date, Some(at)))
}

/// The contract month a trader means by "front": the nearest expiry not inside the roll.
fn front_month(mut months: Vec<ContractDetails>, today: NaiveDate) -> Option<ContractDetails> {
    let expiry = |d: &ContractDetails| {
        parse_expiry(&d.contract.last_trade_date_or_contract_month).map(|(date, _)| date)
    };
    months.sort_by_key(|d| expiry(d));
    months
        .into_iter()
        .find(|d| expiry(d).is_some_and(|e| (e - today).num_days() > FUTURES_ROLL_DAYS))
}

async fn futures_snapshot(
    ib: &Ib,
    results: &ResultTables,
    req: &Request,
    p: &FuturesSnapshotParams,
    now: DateTime<Utc>,
) -> Result<Written, WorkError> {
    let sym = req.symbol.as_str();
    let contract = if p.month == "front" {
        let listed = super::contracts::future_months(ib, sym, "").await?;
        front_month(listed, ny_date(now))
            .ok_or_else(|| WorkError::Invalid(format!("no {sym} futures month outside the roll")))?
    } else {
        super::contracts::future_months(ib, sym, &p.month)
            .await?
            .remove(0)
    };
    let c = &contract.contract;
    let expiry = parse_expiry(&c.last_trade_date_or_contract_month);
    // The contract's type and currency tell which data farm serves it (a quote waits only
    // for that farm).
    let q = ib
        .snapshot(ibapi::contracts::Contract {
            security_type: c.security_type.clone(),
            currency: c.currency.clone(),
            ..by_conid(c.contract_id, &c.exchange.0)
        })
        .await?;
    let batch = BatchBuilder::new(FUTURES_SNAPSHOT_COLUMNS)
        .utf8(id_col(req, 1))
        .timestamp([Some(now)])
        .utf8([Some(sym)])
        .i64([Some(c.contract_id as i64)])
        .utf8([Some(c.local_symbol.as_str())])
        .utf8([expiry.map(|(d, _)| d.format("%Y%m").to_string())])
        .date([expiry.map(|(d, _)| d)])
        .timestamp([expiry.and_then(|(_, t)| t)])
        .f64([q.bid])
        .f64([q.ask])
        .f64([q.last])
        .f64([q.bid_size])
        .f64([q.ask_size])
        .f64([q.volume])
        .f64([q.high])
        .f64([q.low])
        .f64([q.close])
        .i64([market_data_type(&q)])
        .finish();
    Ok(results
        .write(FUTURES_SNAPSHOTS, Some(req.request_id), batch)
        .await?)
}

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
    match super::contracts::any(ib, sym).await? {
        super::contracts::Resolved::One(d) => Ok(d.contract),
        super::contracts::Resolved::Months(listed) => front_month(listed, ny_date(now))
            .map(|d| d.contract)
            .ok_or_else(|| WorkError::Invalid(format!("no {sym} futures month outside the roll"))),
    }
}

async fn market_bars(
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

async fn position_update(
    ib: &Ib,
    results: &ResultTables,
    legs: &dyn ActiveLegs,
    req: &Request,
    p: &PositionUpdateParams,
    now: DateTime<Utc>,
) -> Result<Written, WorkError> {
    let mut positions = ib.positions().await?;
    match p.conid {
        Some(c) => {
            positions.retain(|pos| pos.contract.contract_id == c);
            if positions.is_empty() {
                return Err(WorkError::Invalid(format!("no position in contract {c}")));
            }
        }
        // Legs that stream are written by the streaming manager; polling them too would
        // spend lines twice.
        None => positions.retain(|pos| !legs.is_active(pos.contract.contract_id)),
    }
    let contracts = positions
        .iter()
        .map(|pos| {
            let exchange = match pos.contract.security_type {
                SecurityType::Future => "CME",
                _ => "SMART",
            };
            ibapi::contracts::Contract {
                security_type: pos.contract.security_type.clone(),
                ..by_conid(pos.contract.contract_id, exchange)
            }
        })
        .collect();
    let quotes = snapshots(ib, contracts).await?;
    let n = positions.len();
    let prices: Vec<Option<f64>> = quotes.iter().map(mark).collect();
    let multiplier = |pos: &ibapi::accounts::Position| {
        pos.contract
            .multiplier
            .parse::<f64>()
            .unwrap_or(1.0)
            .max(1.0)
    };
    let batch = BatchBuilder::new(POSITION_UPDATE_COLUMNS)
        .utf8(id_col(req, n))
        .utf8(vec![Some("poll"); n])
        .timestamp(vec![Some(now); n])
        .utf8(positions.iter().map(|x| Some(x.account.clone())))
        .i64(
            positions
                .iter()
                .map(|x| Some(x.contract.contract_id as i64)),
        )
        .utf8(positions.iter().map(|x| Some(x.contract.symbol.0.clone())))
        .utf8(
            positions
                .iter()
                .map(|x| Some(x.contract.security_type.to_string())),
        )
        .utf8(positions.iter().map(|x| {
            Some(x.contract.last_trade_date_or_contract_month.clone()).filter(|s| !s.is_empty())
        }))
        .f64(
            positions
                .iter()
                .map(|x| Some(x.contract.strike).filter(|s| *s > 0.0)),
        )
        .utf8(positions.iter().map(|x| right_text(x.contract.right)))
        .f64(positions.iter().map(|x| Some(x.position)))
        .f64(positions.iter().map(|x| Some(x.average_cost)))
        .f64(prices.iter().copied())
        .f64(
            positions
                .iter()
                .zip(&prices)
                .map(|(x, pr)| pr.map(|pr| pr * x.position * multiplier(x))),
        )
        .i64(quotes.iter().map(market_data_type))
        .finish();
    Ok(results
        .write(POSITION_UPDATES, Some(req.request_id), batch)
        .await?)
}

#[derive(Default)]
struct DayStats {
    open: Option<(DateTime<Utc>, f64)>,
    close: Option<(DateTime<Utc>, f64)>,
    high: Option<f64>,
    low: Option<f64>,
    atm_iv: Option<f64>,
    put_volume: f64,
    call_volume: f64,
}

/// Computes a `derived_stats` request from the result tables and replaces its date's rows.
pub async fn derived_stats(
    results: &ResultTables,
    req: &Request,
    p: &DerivedStatsParams,
    now: DateTime<Utc>,
) -> Result<Written, WorkError> {
    let date = p.date.unwrap_or_else(|| ny_date(now));
    // The request's symbol, or every symbol for `ALL` (what the scheduler puts on jobs
    // that name no symbol).
    let only = Some(req.symbol.trim()).filter(|s| !s.is_empty() && *s != "ALL");
    let wanted = |s: &str| only.is_none_or(|o| o == s);
    let mut stats: BTreeMap<String, DayStats> = BTreeMap::new();
    let lake = |m: String| WorkError::Lake(m);

    // Daily range and return from the day's bars (daily bars carry the date at 00:00 UTC,
    // intraday bars their New York trading day): only that day's partitions are read.
    let day = BTreeSet::from([date]);
    let (bar_batches, mut files_read) = results.read_days(MARKET_BARS, &day).await?;
    for batch in bar_batches {
        let r = BatchReader::new(&batch);
        let (sym, at) = (
            r.utf8("symbol").map_err(lake)?,
            r.timestamp("bar_time").map_err(lake)?,
        );
        let size = r.utf8("bar_size").map_err(lake)?;
        let (o, h, l, c) = (
            r.f64("open").map_err(lake)?,
            r.f64("high").map_err(lake)?,
            r.f64("low").map_err(lake)?,
            r.f64("close").map_err(lake)?,
        );
        for i in 0..r.len() {
            let (Some(s), Some(t)) = (&sym[i], at[i]) else {
                continue;
            };
            if !wanted(s) {
                continue;
            }
            if bar_day(size[i].as_deref().unwrap_or(""), t) != date {
                continue;
            }
            let e = stats.entry(s.clone()).or_default();
            if let Some(v) = o[i] {
                if e.open.is_none_or(|(t0, _)| t < t0) {
                    e.open = Some((t, v));
                }
            }
            if let Some(v) = c[i] {
                if e.close.is_none_or(|(t0, _)| t >= t0) {
                    e.close = Some((t, v));
                }
            }
            e.high = h[i].map(|v| e.high.map_or(v, |x| x.max(v)));
            e.low = l[i].map(|v| e.low.map_or(v, |x| x.min(v)));
        }
    }

    // ATM implied volatility and put/call volume from the day's last option snapshot per
    // underlying.
    let mut latest: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut rows = Vec::new();
    let (option_batches, n) = results.read_days(OPTION_SNAPSHOTS, &day).await?;
    files_read += n;
    for batch in option_batches {
        let r = BatchReader::new(&batch);
        let und = r.utf8("underlying").map_err(lake)?;
        let at = r.timestamp("snapshot_at").map_err(lake)?;
        let price = r.f64("underlying_price").map_err(lake)?;
        let strike = r.f64("strike").map_err(lake)?;
        let right = r.utf8("right").map_err(lake)?;
        let vol = r.f64("volume").map_err(lake)?;
        let iv = r.f64("implied_vol").map_err(lake)?;
        for i in 0..r.len() {
            let (Some(u), Some(t)) = (&und[i], at[i]) else {
                continue;
            };
            if !wanted(u) {
                continue;
            }
            if ny_date(t) != date {
                continue;
            }
            let l = latest.entry(u.clone()).or_insert(t);
            *l = (*l).max(t);
            rows.push((
                u.clone(),
                t,
                price[i],
                strike[i],
                right[i].clone(),
                vol[i],
                iv[i],
            ));
        }
    }
    for (u, t) in &latest {
        let snap: Vec<_> = rows.iter().filter(|r| &r.0 == u && r.1 == *t).collect();
        let e = stats.entry(u.clone()).or_default();
        let atm = snap
            .iter()
            .filter_map(|r| Some(((r.3? - r.2?).abs(), r.6?)))
            .fold(None::<(f64, Vec<f64>)>, |best, (d, iv)| match best {
                Some((bd, mut ivs)) if (d - bd).abs() < 1e-9 => {
                    ivs.push(iv);
                    Some((bd, ivs))
                }
                Some((bd, ivs)) if bd < d => Some((bd, ivs)),
                _ => Some((d, vec![iv])),
            });
        e.atm_iv = atm.map(|(_, ivs)| ivs.iter().sum::<f64>() / ivs.len() as f64);
        for r in &snap {
            match r.4.as_deref() {
                Some("P") => e.put_volume += r.5.unwrap_or(0.0),
                Some("C") => e.call_volume += r.5.unwrap_or(0.0),
                _ => {}
            }
        }
    }

    let n = stats.len();
    let s: Vec<(&String, &DayStats)> = stats.iter().collect();
    let batch = BatchBuilder::new(DERIVED_STATS_COLUMNS)
        .utf8(id_col(req, n))
        .date(vec![Some(date); n])
        .utf8(s.iter().map(|(k, _)| Some(k.as_str())))
        .f64(s.iter().map(|(_, d)| d.open.map(|x| x.1)))
        .f64(s.iter().map(|(_, d)| d.high))
        .f64(s.iter().map(|(_, d)| d.low))
        .f64(s.iter().map(|(_, d)| d.close.map(|x| x.1)))
        .f64(s.iter().map(|(_, d)| Some(d.high? - d.low?)))
        .f64(s.iter().map(|(_, d)| Some(d.close?.1 / d.open?.1 - 1.0)))
        .f64(s.iter().map(|(_, d)| d.atm_iv))
        .f64(
            s.iter()
                .map(|(_, d)| (d.call_volume > 0.0).then(|| d.put_volume / d.call_volume)),
        )
        .timestamp(vec![Some(now); n])
        .finish();
    let mut written = results
        .replace_derived_stats(req.request_id, date, only, batch)
        .await?;
    written.files_read = Some(files_read as u64);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_parse_with_and_without_time_and_zone() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 18).unwrap();
        assert_eq!(parse_expiry("20261218"), Some((d, None)));
        let at = Utc.with_ymd_and_hms(2026, 12, 18, 14, 30, 0).unwrap();
        assert_eq!(
            parse_expiry("20261218 08:30 US/Central"),
            Some((d, Some(at)))
        );
        assert_eq!(
            parse_expiry("20261218 08:30:00 US/Central"),
            Some((d, Some(at)))
        );
        assert_eq!(parse_expiry("202612"), None);
        assert_eq!(parse_expiry("20261218 08:30 Mars/Olympus"), None);
    }
}
