//! Option chains and futures snapshots: the contracts resolved, their quotes taken and
//! written, one row a contract.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use ibapi::contracts::{ContractDetails, SecurityType};
use ibapi::market_data::realtime::Quote;

use super::{id_col, mark, ny_date, timed_snapshots};
use crate::gateway::quote::market_data_type;
use crate::lake::columns::BatchBuilder;
use crate::queue::params::{FuturesSnapshotParams, OptionChainParams};
use crate::queue::Request;
use crate::worker::errors::WorkError;
use crate::worker::ib::{by_conid, options_of, right_text, Ib};
use crate::worker::results::*;

/// The futures roll: the front month becomes the next one this many days before expiry.
const FUTURES_ROLL_DAYS: i64 = 8;

pub(super) async fn option_chain(
    ib: &Ib,
    results: &ResultTables,
    req: &Request,
    p: &OptionChainParams,
    now: DateTime<Utc>,
) -> Result<Written, WorkError> {
    let sym = req.symbol.as_str();
    let underlying = crate::worker::contracts::stock(ib, sym).await?.contract;
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
pub(super) fn front_month(
    mut months: Vec<ContractDetails>,
    today: NaiveDate,
) -> Option<ContractDetails> {
    let expiry = |d: &ContractDetails| {
        parse_expiry(&d.contract.last_trade_date_or_contract_month).map(|(date, _)| date)
    };
    months.sort_by_key(|d| expiry(d));
    months
        .into_iter()
        .find(|d| expiry(d).is_some_and(|e| (e - today).num_days() > FUTURES_ROLL_DAYS))
}

pub(super) async fn futures_snapshot(
    ib: &Ib,
    results: &ResultTables,
    req: &Request,
    p: &FuturesSnapshotParams,
    now: DateTime<Utc>,
) -> Result<Written, WorkError> {
    let sym = req.symbol.as_str();
    let contract = if p.month == "front" {
        let listed = crate::worker::contracts::future_months(ib, sym, "").await?;
        front_month(listed, ny_date(now))
            .ok_or_else(|| WorkError::Invalid(format!("no {sym} futures month outside the roll")))?
    } else {
        crate::worker::contracts::future_months(ib, sym, &p.month)
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
