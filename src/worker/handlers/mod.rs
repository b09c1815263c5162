//! What each request type does: the gateway requests it makes and the rows it writes.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::America::New_York;
use futures::{StreamExt, TryStreamExt};
use ibapi::market_data::realtime::Quote;

mod bars;
mod contracts_data;
mod positions;
mod stats;

pub(crate) use bars::bar_finished;
use bars::market_bars;
use contracts_data::{futures_snapshot, option_chain};
use positions::position_update;
pub use stats::derived_stats;

use super::errors::WorkError;
use super::ib::Ib;
use super::results::*;
use crate::queue::params::Params;
use crate::queue::Request;

/// Most snapshots of one request in flight at once (each also needs a free line).
const SNAPSHOT_CONCURRENCY: usize = 16;

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

pub(super) fn ny_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&New_York).date_naive()
}

pub(super) fn mid(q: &Quote) -> Option<f64> {
    match (q.bid, q.ask) {
        (Some(b), Some(a)) if b > 0.0 && a > 0.0 => Some((b + a) / 2.0),
        _ => None,
    }
}

/// The price a trader would mark at: last, else the mid, else the close.
pub(super) fn mark(q: &Quote) -> Option<f64> {
    q.last
        .filter(|p| *p > 0.0)
        .or_else(|| mid(q))
        .or(q.close.filter(|p| *p > 0.0))
}

/// Snapshots of many contracts, several at a time (each holding a line), in order.
pub(super) async fn snapshots(
    ib: &Ib,
    contracts: Vec<ibapi::contracts::Contract>,
) -> Result<Vec<Quote>, WorkError> {
    Ok(timed_snapshots(ib, contracts).await?.0)
}

/// Snapshots as [`snapshots`] takes them, and the time between the first and the last quote.
pub(super) async fn timed_snapshots(
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

pub(super) fn id_col(req: &Request, n: usize) -> Vec<Option<String>> {
    vec![Some(req.request_id.to_string()); n]
}
