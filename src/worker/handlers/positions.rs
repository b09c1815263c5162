//! Position updates: the account's positions, marked from quotes, active legs left to the
//! streaming manager.

use chrono::{DateTime, Utc};
use ibapi::contracts::SecurityType;

use super::{id_col, mark, snapshots, ActiveLegs};
use crate::gateway::quote::market_data_type;
use crate::lake::columns::BatchBuilder;
use crate::queue::params::PositionUpdateParams;
use crate::queue::Request;
use crate::worker::errors::WorkError;
use crate::worker::ib::{by_conid, right_text, Ib};
use crate::worker::results::*;

pub(super) async fn position_update(
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
