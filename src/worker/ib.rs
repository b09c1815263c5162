//! The gateway requests the handlers are made of, each within the limits: contract lookup,
//! a snapshot that holds one market-data line until its data is in, and historical bars
//! paced as IB requires.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ibapi::contracts::{
    Contract, ContractDetails, Currency, Exchange, OptionRight, SecurityType, Symbol,
};
use ibapi::market_data::realtime::Quote;
use ibapi::Client;
use tokio::sync::Mutex;

use super::errors::WorkError;
use crate::gateway::pacing::{HistoricalKey, HistoricalPacer};
use crate::gateway::LineBudget;

/// What every handler may use.
pub struct Ib {
    pub client: Arc<Client>,
    pub lines: LineBudget,
    pub pacer: Arc<Mutex<HistoricalPacer>>,
    /// How long one snapshot may take.
    pub snapshot_timeout: Duration,
}

pub fn stock(symbol: &str) -> Contract {
    Contract {
        symbol: Symbol(symbol.to_string()),
        security_type: SecurityType::Stock,
        exchange: Exchange("SMART".into()),
        currency: Currency("USD".into()),
        ..Default::default()
    }
}

pub fn index(symbol: &str) -> Contract {
    Contract {
        symbol: Symbol(symbol.to_string()),
        security_type: SecurityType::Index,
        exchange: Exchange("CBOE".into()),
        currency: Currency("USD".into()),
        ..Default::default()
    }
}

pub fn futures(symbol: &str, month: &str) -> Contract {
    Contract {
        symbol: Symbol(symbol.to_string()),
        security_type: SecurityType::Future,
        exchange: Exchange("CME".into()),
        currency: Currency("USD".into()),
        last_trade_date_or_contract_month: month.to_string(),
        ..Default::default()
    }
}

/// Every option of `symbol` on one expiry (strike 0 and no right match all).
pub fn options_of(symbol: &str, expiry: &str) -> Contract {
    Contract {
        symbol: Symbol(symbol.to_string()),
        security_type: SecurityType::Option,
        exchange: Exchange("SMART".into()),
        currency: Currency("USD".into()),
        last_trade_date_or_contract_month: expiry.to_string(),
        ..Default::default()
    }
}

/// A contract by conid alone, routed SMART (enough for market data).
pub fn by_conid(conid: i32, exchange: &str) -> Contract {
    Contract {
        contract_id: conid,
        exchange: Exchange(if exchange.is_empty() {
            "SMART".into()
        } else {
            exchange.to_string()
        }),
        ..Default::default()
    }
}

pub fn right_text(r: Option<OptionRight>) -> Option<String> {
    r.map(|r| match r {
        OptionRight::Call => "C".to_string(),
        OptionRight::Put => "P".to_string(),
    })
}

impl Ib {
    pub async fn details(&self, contract: &Contract) -> Result<Vec<ContractDetails>, WorkError> {
        let details = self.client.contract_details(contract).await?;
        if details.is_empty() {
            return Err(WorkError::Ib {
                code: 200,
                message: format!(
                    "No security definition has been found for {}",
                    contract.symbol.0
                ),
            });
        }
        Ok(details)
    }

    /// A one-time snapshot, holding one line from the budget until it is done.
    pub async fn snapshot(&self, contract: Contract) -> Result<Quote, WorkError> {
        let _line = self.lines.snapshot().await;
        let ticks = self
            .client
            .market_data(&contract)
            .snapshot_once(self.snapshot_timeout)
            .await?;
        Ok(Quote::from_ticks(&ticks))
    }

    /// Historical bars, waiting first as long as IB's pacing rules require.
    pub async fn bars(
        &self,
        contract: &Contract,
        bar_size: ibapi::market_data::historical::BarSize,
        duration: ibapi::market_data::historical::Duration,
        what: ibapi::market_data::historical::WhatToShow,
        use_rth: bool,
    ) -> Result<ibapi::market_data::historical::HistoricalData, WorkError> {
        let key = HistoricalKey {
            contract: format!("{}|{}|{}", contract.contract_id, contract.exchange.0, what),
            detail: format!("{bar_size:?}|{duration:?}|{use_rth}"),
        };
        let ticket = loop {
            let mut pacer = self.pacer.lock().await;
            let wait = pacer.wait_for(&key, Instant::now());
            if wait.is_zero() {
                break pacer.record(key.clone(), Instant::now());
            }
            drop(pacer);
            tokio::time::sleep(wait).await;
        };
        let hours = if use_rth {
            ibapi::market_data::TradingHours::Regular
        } else {
            ibapi::market_data::TradingHours::Extended
        };
        let result = self
            .client
            .historical_data(contract, bar_size)
            .what_to_show(what)
            .duration(duration)
            .trading_hours(hours)
            .fetch()
            .await;
        self.pacer
            .lock()
            .await
            .answered(&key, ticket, Instant::now());
        Ok(result?)
    }
}
