//! The gateway requests the handlers are made of, each within the limits: contract lookup,
//! a snapshot that holds one market-data line until its data is in, and historical bars
//! paced as IB requires. Each message is counted in the request's [`Progress`]; lookups an
//! earlier attempt made are answered from the request's [`Memo`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use ibapi::contracts::{
    Contract, ContractDetails, Currency, Exchange, OptionRight, SecurityType, Symbol,
};
use ibapi::market_data::realtime::Quote;
use ibapi::market_data::MarketDataType;
use ibapi::Client;
use tokio::sync::Mutex;

use super::admission::Progress;
use super::errors::WorkError;
use super::market_data::{missing_subscription, MarketDataChoice, NO_LIVE_CODES, PERMISSION_CODES};
use super::memo::Memo;
use crate::gateway::pacing::{HistoricalKey, HistoricalPacer};
use crate::gateway::quote::{Fill, NoQuote, QuoteNeeds};
use crate::gateway::LineBudget;

/// What every handler may use.
pub struct Ib {
    pub client: Arc<Client>,
    pub lines: LineBudget,
    pub pacer: Arc<Mutex<HistoricalPacer>>,
    /// How long one snapshot may take.
    pub snapshot_timeout: Duration,
    /// The request's messages, for the worker's in-flight budget.
    pub progress: Progress,
    /// What an earlier attempt of the request already fetched.
    pub memo: Arc<Memo>,
    /// Live or delayed market data, per exchange.
    pub market_data: Arc<MarketDataChoice>,
    /// `[contracts]`: which contract each symbol means.
    pub contracts: Arc<super::contracts::ContractTable>,
    /// The gateway's data farms: a quote waits while the market-data farm is down.
    pub farms: tokio::sync::watch::Receiver<crate::gateway::FarmsView>,
}

/// A refusal of market data as the trader reads it: IB's code and words, and what is missing.
fn permission_error(code: i32, message: &str, exchange: &str) -> WorkError {
    WorkError::Ib {
        code,
        message: format!("{message} ({})", missing_subscription(code, exchange)),
    }
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

/// How long a quote whose prices are in waits for the fields that may never come (the last
/// trade of an option that has not traded today).
const QUOTE_SETTLE: Duration = Duration::from_millis(500);

pub fn right_text(r: Option<OptionRight>) -> Option<String> {
    r.map(|r| match r {
        OptionRight::Call => "C".to_string(),
        OptionRight::Put => "P".to_string(),
    })
}

/// A quote's streaming request while the gateway holds it, with its line. Its cancel is
/// paced like every message, also when the quote is dropped half-way (another quote of the
/// request failed, the request timed out): dropping the subscription itself would make the
/// client send the cancel at once, and a request's dropped quotes would all go together,
/// past the gateway's rate. The line is given back once the cancel is sent.
struct OpenQuote<S: Send + 'static> {
    subscription: Option<S>,
    line: Option<crate::gateway::SnapshotLine>,
    progress: Progress,
}

impl<S: Send + 'static> OpenQuote<S> {
    /// Sends the cancel in its turn (dropping the subscription sends it).
    async fn cancel(mut self) {
        if let Some(subscription) = self.subscription.take() {
            let mut cancel = self.progress.urgent_message().await;
            drop(subscription);
            cancel.sent();
        }
        self.line.take();
    }

    /// The gateway ended the request: nothing to cancel.
    fn ended(mut self) {
        self.subscription.take();
        self.line.take();
    }
}

impl<S: Send + 'static> Drop for OpenQuote<S> {
    fn drop(&mut self) {
        let Some(subscription) = self.subscription.take() else {
            return;
        };
        let (line, progress) = (self.line.take(), self.progress.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let mut cancel = progress.urgent_message().await;
                    drop(subscription);
                    cancel.sent();
                    drop(line);
                });
            }
            Err(_) => drop((subscription, line)),
        }
    }
}

impl Ib {
    /// Contract lookup (kept for a later attempt of the request: listings do not change
    /// within a trading day).
    pub async fn details(&self, contract: &Contract) -> Result<Vec<ContractDetails>, WorkError> {
        let key = format!("{contract:?}");
        if let Some(kept) = self.memo.details(&key) {
            self.progress.skipped();
            return Ok(kept);
        }
        let details = {
            let _m = self.progress.message().await;
            self.client.contract_details(contract).await?
        };
        if details.is_empty() {
            return Err(WorkError::Ib {
                code: 200,
                message: format!(
                    "No security definition has been found for {}",
                    contract.symbol.0
                ),
            });
        }
        self.memo.keep_details(key, &details);
        Ok(details)
    }

    /// The expiries of `symbol`'s options (SMART's list, else the first exchange's); kept
    /// for a later attempt of the request like a contract lookup.
    pub async fn option_expirations(
        &self,
        symbol: &str,
        underlying_conid: i32,
    ) -> Result<Vec<String>, WorkError> {
        use futures::TryStreamExt;
        use ibapi::subscriptions::SubscriptionItemStreamExt;
        let key = format!("{symbol}|{underlying_conid}");
        if let Some(kept) = self.memo.expirations(&key) {
            self.progress.skipped();
            return Ok(kept);
        }
        let chains: Vec<_> = {
            let _m = self.progress.message().await;
            self.client
                .option_chain(symbol, SecurityType::Stock, underlying_conid)
                .subscribe()
                .await?
                .filter_data()
                .try_collect()
                .await?
        };
        let chain = chains
            .iter()
            .find(|c| c.exchange == "SMART")
            .or(chains.first())
            .ok_or_else(|| WorkError::Invalid(format!("{symbol} has no listed options")))?;
        self.memo.keep_expirations(key, &chain.expirations);
        Ok(chain.expirations.clone())
    }

    /// Every position of the account (live data: never kept).
    pub async fn positions(&self) -> Result<Vec<ibapi::accounts::Position>, WorkError> {
        use futures::StreamExt;
        use ibapi::accounts::PositionUpdate;
        use ibapi::subscriptions::SubscriptionItemStreamExt;
        let request = self.progress.message().await;
        let mut positions = Vec::new();
        let mut sub = self.client.positions().await?.filter_data();
        let mut ended = Ok(());
        while let Some(update) = sub.next().await {
            match update {
                Ok(PositionUpdate::Position(pos)) => positions.push(pos),
                Ok(PositionUpdate::PositionEnd) => break,
                Err(e) => {
                    ended = Err(e);
                    break;
                }
            }
        }
        drop(request);
        // Dropping the subscription sends its cancel (cancelPositions): a message like any
        // other, it keeps the pace rather than go out at once.
        let mut cancel = self.progress.urgent_message().await;
        drop(sub);
        cancel.sent();
        ended?;
        Ok(positions)
    }

    /// A quote, holding one line from the budget until it is in. A gateway sends a snapshot's
    /// data at once but its end (TickSnapshotEnd) about 11 s later, holding the line all that
    /// time; so the quote is taken with a streaming request, cancelled as soon as the fields
    /// it needs are in (see [`QuoteNeeds`]). A lost connection, an error or the timeout fail
    /// it rather than leave a quote without its prices.
    pub async fn snapshot(&self, contract: Contract) -> Result<Quote, WorkError> {
        let exchange = if contract.exchange.0.is_empty() {
            "SMART".to_string()
        } else {
            contract.exchange.0.clone()
        };
        let delayed = self.market_data.delayed_for(&exchange);
        let first = self.quote_once(&contract, delayed).await;
        let (code, message) = match first {
            Err(WorkError::Ib { code, message }) if PERMISSION_CODES.contains(&code) => {
                (code, message)
            }
            Ok(quote) => {
                // Once the connection asks for delayed data, an exchange without a live
                // subscription is served delayed data at once: it is on delayed data too.
                let served_delayed = matches!(
                    quote.market_data_type,
                    Some(MarketDataType::Delayed | MarketDataType::DelayedFrozen)
                );
                if served_delayed && self.market_data.switch_to_delayed(&exchange) {
                    tracing::warn!(
                        exchange = %exchange,
                        "no live market data for {exchange}: this session takes delayed data for {exchange}"
                    );
                }
                return Ok(quote);
            }
            other => return other,
        };
        if !delayed
            && NO_LIVE_CODES.contains(&code)
            && self.market_data.switch_to_delayed(&exchange)
        {
            tracing::warn!(
                exchange = %exchange,
                "no live market data for {exchange} (IB {code}: {message}): this session takes delayed data for {exchange}"
            );
        }
        if !delayed && self.market_data.delayed_for(&exchange) {
            return self.quote_once(&contract, true).await.map_err(|e| match e {
                WorkError::Ib { code, message } if PERMISSION_CODES.contains(&code) => {
                    permission_error(code, &message, &exchange)
                }
                e => e,
            });
        }
        Err(permission_error(code, &message, &exchange))
    }

    /// One quote, asking for delayed data first when `delayed`.
    async fn quote_once(&self, contract: &Contract, delayed: bool) -> Result<Quote, WorkError> {
        use futures::StreamExt;
        use ibapi::subscriptions::SubscriptionItem;
        let needs = QuoteNeeds::of(&contract.security_type);
        let sec_type = contract.security_type.to_string();
        if self
            .farms
            .borrow()
            .market_data_down_for(&sec_type, &contract.currency.0)
        {
            // The gateway holds market data while the farm serving it is down: wait for the
            // farm (the request's timeout bounds the wait) rather than spend the quote's own
            // timeout. A farm serving other markets holds nothing here.
            let _waiting = self.progress.waiting();
            crate::gateway::farms::wait_market_data(&self.farms, &sec_type, &contract.currency.0)
                .await;
        }
        let client_id = Arc::as_ptr(&self.client) as usize;
        if delayed && self.market_data.needs_type_sent(client_id) {
            // The data type is the connection's: live data still comes where subscribed.
            let _m = self.progress.message().await;
            self.client
                .switch_market_data_type(MarketDataType::Delayed)
                .await?;
            self.market_data.type_sent(client_id);
        }
        // The turn, then a line if one is free; else the turn goes back until a line is
        // freed. A quote waiting for a line holds no turn: the quotes holding the lines need
        // turns for their cancels, and with every turn held by a quote waiting for a line
        // neither would ever move. A line is held only from the turn on, and the freed line
        // goes to whichever waiting quote gets the next turn, the earliest request's first.
        let (mut message, line) = loop {
            let freed = self.lines.freed();
            let turn = self.progress.turn().await;
            if let Some(line) = self.lines.try_snapshot() {
                break (self.progress.message_on(turn).await, line);
            }
            drop(turn);
            freed.await;
        };
        let subscription = self.client.market_data(contract).subscribe().await?;
        message.sent();
        let mut quote_request = OpenQuote {
            subscription: Some(subscription),
            line: Some(line),
            progress: self.progress.clone(),
        };
        let subscription = quote_request.subscription.as_mut().expect("just set");
        let deadline = tokio::time::Instant::now() + self.snapshot_timeout;
        let mut quote = Quote::default();
        let mut no_quote = NoQuote::default();
        let mut settle: Option<tokio::time::Instant> = None;
        // The last notice the gateway sent about this quote (10090, 10167, ...).
        let mut notice: Option<(i32, String)> = None;
        // Whether the gateway still holds the request (and so is sent a cancel).
        let mut open = true;
        let outcome = loop {
            let until = settle.map_or(deadline, |s| s.min(deadline));
            match tokio::time::timeout_at(until, subscription.next()).await {
                Ok(Some(Ok(SubscriptionItem::Data(tick)))) => {
                    quote.apply(&tick);
                    // A -1 bid or ask is no price: it must not count as one below, but it
                    // says there is no quote on that side (nothing to wait for).
                    no_quote.note(&quote);
                    quote = crate::gateway::quote::without_sentinels(std::mem::take(&mut quote));
                    match needs.state(&quote, no_quote) {
                        Fill::Complete => break Ok(()),
                        Fill::Priced if settle.is_none() => {
                            settle = Some(tokio::time::Instant::now() + QUOTE_SETTLE)
                        }
                        _ => {}
                    }
                }
                // 10089 (no live subscription, delayed available) is an advisory to the
                // client, but no data follows it: the quote fails with it at once.
                Ok(Some(Ok(SubscriptionItem::Notice(n)))) if n.code == 10089 => {
                    break Err(WorkError::Ib {
                        code: n.code,
                        message: n.message,
                    })
                }
                Ok(Some(Ok(SubscriptionItem::Notice(n)))) => notice = Some((n.code, n.message)),
                Ok(Some(Err(e))) => {
                    open = false;
                    break Err(e.into());
                }
                Ok(None) => {
                    open = false;
                    break Err(ibapi::Error::UnexpectedEndOfStream.into());
                }
                Err(_) if settle.is_some() => break Ok(()),
                // No price in time: the gateway's own word when it said something.
                Err(_) => {
                    break Err(match notice.take() {
                        Some((code, message)) => WorkError::Ib { code, message },
                        None => WorkError::Timeout(self.snapshot_timeout.as_secs()),
                    })
                }
            }
        };
        // The cancel is a message too, paced like the request; it goes before other
        // messages waiting for a turn, as it frees the line the next quote waits for. A
        // request the gateway ended has no line there and is sent no cancel.
        if open {
            quote_request.cancel().await;
        } else {
            quote_request.ended();
        }
        outcome.map(|()| quote)
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
            let _waiting = self.progress.waiting();
            tokio::time::sleep(wait).await;
        };
        let hours = if use_rth {
            ibapi::market_data::TradingHours::Regular
        } else {
            ibapi::market_data::TradingHours::Extended
        };
        let _m = self.progress.message().await;
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
