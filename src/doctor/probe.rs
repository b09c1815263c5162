//! What `ibq doctor` asks the gateway, through `ibapi` on a connection of its own: the
//! handshake (server version, accounts, farm notices), each configured contract's details,
//! a quote (live first; delayed where live is refused) and a few daily bars.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ibapi::contracts::{Contract, ContractDetails};
use ibapi::market_data::historical::{BarSize, Duration as IbDuration, WhatToShow};
use ibapi::market_data::realtime::TickTypes;
use ibapi::market_data::MarketDataType;
use ibapi::subscriptions::SubscriptionItem;
use ibapi::Client;

use super::{judge, version_problem, ContractCheck, DataAccess, HistoryAccess, LineUse, Report};
use crate::config::Config;
use crate::gateway::farms::Farms;
use crate::worker::contracts::SecType;
use crate::worker::errors::{hmds_kind, Hmds};

/// How long the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one answer (details, a quote, bars) may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection that could not be made, as one line for the trader.
pub fn connect_error(address: &str, client_id: i32, e: &ibapi::Error) -> String {
    match e {
        ibapi::Error::ServerVersion(_, got, _) => version_problem(*got)
            .unwrap_or_else(|| format!("the gateway at {address} refused the API version: {e}")),
        ibapi::Error::ClientIdInUse { .. } => format!(
            "client id {client_id} is in use on the gateway at {address} (IB 326): another ibq or API client holds it; stop it or set another [gateway] client_id"
        ),
        ibapi::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "cannot connect to {address}: connection refused. No IB Gateway or TWS listens there: start it and enable its API socket (ports 4001 Gateway live, 4002 Gateway paper, 7496 TWS live, 7497 TWS paper)"
        ),
        e => format!("cannot connect to the gateway at {address}: {e}"),
    }
}

/// Connects, checks, and returns the report.
pub async fn examine(config: &Config) -> anyhow::Result<Report> {
    let address = config.gateway.address.clone();
    let client_id = config.gateway.client_id;
    let connecting = Client::builder()
        .address(address.clone())
        .client_id(client_id)
        .connect_with_notice_stream();
    let (client, mut notices) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => anyhow::bail!(
            "the gateway at {address} accepted the connection but did not finish the API handshake within {} s: is the API enabled (Configure > API > Settings) and 127.0.0.1 a trusted IP?",
            CONNECT_TIMEOUT.as_secs()
        ),
        Ok(Err(e)) => anyhow::bail!("{}", connect_error(&address, client_id, &e)),
        Ok(Ok(c)) => c,
    };
    // The farms as the session's notices report them (they come right after the
    // handshake; the last notice of a farm wins).
    let farms: Arc<Mutex<Farms>> = Arc::default();
    let collector = {
        let farms = Arc::clone(&farms);
        tokio::spawn(async move {
            while let Some(n) = notices.next().await {
                farms.lock().unwrap_or_else(|p| p.into_inner()).apply(
                    n.code,
                    &n.message,
                    chrono::Utc::now(),
                );
            }
        })
    };
    let server_version = client.server_version();
    let mut accounts = client.handshake_managed_accounts().to_vec();
    if accounts.is_empty() {
        if let Ok(Ok(a)) = tokio::time::timeout(ANSWER_TIMEOUT, client.managed_accounts()).await {
            accounts = a;
        }
    }
    accounts.retain(|a| !a.trim().is_empty());

    let mut checks = Vec::new();
    let mut targets: Vec<Option<Contract>> = Vec::new();
    for (symbol, spec) in &config.contracts.0 {
        let (check, target) = look_up(&client, symbol, spec).await;
        checks.push(check);
        targets.push(target);
    }
    // Live first, as the worker asks; then delayed for those refused live.
    let mut retry_delayed = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let Some(c) = target else { continue };
        match quote(&client, c).await {
            Answer::Data(t) => checks[i].market_data = access_of(t),
            Answer::Refused(code, text) if matches!(code, 10089 | 354 | 10168) => {
                checks[i].market_data = DataAccess::None;
                checks[i].market_data_note = Some(format!("live: IB {code} {text}"));
                retry_delayed.push(i);
            }
            Answer::Refused(code, text) => {
                checks[i].market_data = DataAccess::Unknown;
                checks[i].market_data_note = Some(refusal_note(code, &text));
            }
            Answer::Silent => {
                checks[i].market_data = DataAccess::Unknown;
                checks[i].market_data_note =
                    Some(format!("no price within {} s", ANSWER_TIMEOUT.as_secs()));
            }
        }
    }
    if !retry_delayed.is_empty() {
        client
            .switch_market_data_type(MarketDataType::Delayed)
            .await?;
        for i in retry_delayed {
            let Some(c) = &targets[i] else { continue };
            match quote(&client, c).await {
                Answer::Data(t) => {
                    checks[i].market_data = match access_of(t) {
                        DataAccess::Live => DataAccess::Live,
                        _ => DataAccess::Delayed,
                    }
                }
                Answer::Refused(code, text) => {
                    checks[i].market_data = DataAccess::None;
                    checks[i].market_data_note = Some(format!(
                        "{}; delayed: IB {code} {text}",
                        checks[i].market_data_note.take().unwrap_or_default()
                    ));
                }
                Answer::Silent => {}
            }
        }
    }
    for (i, target) in targets.iter().enumerate() {
        let Some(c) = target else { continue };
        let (access, note) = history(&client, c).await;
        checks[i].historical = access;
        checks[i].historical_note = note;
    }
    // A moment for notices still on their way, then the farms as they stand.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(client);
    collector.abort();
    let farms = farms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .view()
        .farms
        .clone();
    let mut report = Report {
        gateway: address,
        client_id,
        server_version,
        accounts,
        farms,
        market_data_type: config.market_data.kind,
        contracts: checks,
        lines: LineUse {
            limit: config.lines.limit,
            margin: config.lines.margin,
            usable: config.lines.limit.saturating_sub(config.lines.margin),
        },
        warnings: Vec::new(),
        fixes: Vec::new(),
        ready: false,
    };
    judge(&mut report);
    Ok(report)
}

fn refusal_note(code: i32, text: &str) -> String {
    match code {
        10197 => format!(
            "IB {code} {text}: another session of this user (TWS, the mobile app, another gateway) holds live data; log it out"
        ),
        _ => format!("IB {code} {text}"),
    }
}

fn access_of(t: Option<MarketDataType>) -> DataAccess {
    match t {
        Some(MarketDataType::Delayed | MarketDataType::DelayedFrozen) => DataAccess::Delayed,
        _ => DataAccess::Live,
    }
}

fn empty_check(symbol: &str, exchange: &str) -> ContractCheck {
    ContractCheck {
        symbol: symbol.to_string(),
        contract: String::new(),
        conid: None,
        lookup_error: None,
        market_data: DataAccess::Unknown,
        exchange: exchange.to_string(),
        market_data_note: None,
        historical: HistoryAccess::Unknown,
        historical_note: None,
    }
}

/// The configured contract as the gateway lists it (a future's nearest month).
async fn look_up(
    client: &Client,
    symbol: &str,
    spec: &crate::worker::contracts::ContractSpec,
) -> (ContractCheck, Option<Contract>) {
    let mut check = empty_check(symbol, &spec.exchange);
    let asked = spec.contract(symbol);
    let listed: Result<Vec<ContractDetails>, String> =
        match tokio::time::timeout(ANSWER_TIMEOUT, client.contract_details(&asked)).await {
            Err(_) => Err(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())),
            Ok(Err(ibapi::Error::Notice(n))) => Err(format!("IB {} {}", n.code, n.message)),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(d)) if d.is_empty() => Err("no security definition has been found".into()),
            Ok(Ok(d)) => Ok(d),
        };
    let mut listed = match listed {
        Ok(l) => l,
        Err(e) => {
            check.lookup_error = Some(e);
            return (check, None);
        }
    };
    if spec.sec_type != SecType::Future {
        let found = crate::worker::contracts::candidates(symbol, &listed);
        if found.len() > 1 {
            check.lookup_error =
                Some(crate::worker::contracts::ambiguous(symbol, &found).to_string());
            return (check, None);
        }
    }
    listed.sort_by(|a, b| {
        a.contract
            .last_trade_date_or_contract_month
            .cmp(&b.contract.last_trade_date_or_contract_month)
    });
    let d = &listed[0].contract;
    let place = if d.primary_exchange.0.is_empty() {
        d.exchange.0.clone()
    } else {
        format!("{}/{}", d.exchange.0, d.primary_exchange.0)
    };
    check.contract = match spec.sec_type {
        SecType::Future => format!("FUT {place} {}", d.local_symbol),
        t => format!("{} {place}", t.code()),
    };
    check.conid = Some(d.contract_id);
    // A stock's data is permissioned by its listing exchange, not by SMART.
    if !d.primary_exchange.0.is_empty() {
        check.exchange = d.primary_exchange.0.clone();
    }
    let target = Contract {
        contract_id: d.contract_id,
        security_type: d.security_type.clone(),
        exchange: ibapi::contracts::Exchange(if d.exchange.0.is_empty() {
            spec.exchange.clone()
        } else {
            d.exchange.0.clone()
        }),
        ..Default::default()
    };
    (check, Some(target))
}

enum Answer {
    /// A price came, with the market data type the gateway announced.
    Data(Option<MarketDataType>),
    Refused(i32, String),
    Silent,
}

/// One streaming request until its first price or its refusal, then cancelled.
async fn quote(client: &Client, contract: &Contract) -> Answer {
    let mut sub = match client.market_data(contract).subscribe().await {
        Ok(s) => s,
        Err(ibapi::Error::Notice(n)) => return Answer::Refused(n.code, n.message),
        Err(e) => return Answer::Refused(0, e.to_string()),
    };
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    let mut kind = None;
    loop {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(Ok(SubscriptionItem::Data(t)))) => match t {
                TickTypes::MarketDataType(k) => kind = Some(k),
                TickTypes::Price(p) if p.price > 0.0 => return Answer::Data(kind),
                TickTypes::PriceSize(p) if p.price > 0.0 => return Answer::Data(kind),
                _ => {}
            },
            // A refusal arrives as a notice (10089, an advisory to ibapi) or as the stream's
            // error (354, 10168, 10197); 10167 announces delayed data that follows.
            Ok(Some(Ok(SubscriptionItem::Notice(n)))) if n.code == 10089 => {
                return Answer::Refused(n.code, n.message)
            }
            Ok(Some(Ok(SubscriptionItem::Notice(_)))) => {}
            Ok(Some(Err(ibapi::Error::Notice(n)))) => return Answer::Refused(n.code, n.message),
            Ok(Some(Err(e))) => return Answer::Refused(0, e.to_string()),
            Ok(None) | Err(_) => return Answer::Silent,
        }
    }
}

/// A few daily bars: whether the account may have history of the contract.
async fn history(client: &Client, contract: &Contract) -> (HistoryAccess, Option<String>) {
    let asked = client
        .historical_data(contract, BarSize::Day)
        .what_to_show(WhatToShow::Trades)
        .duration(IbDuration::days(5))
        .trading_hours(ibapi::market_data::TradingHours::Regular)
        .fetch();
    match tokio::time::timeout(ANSWER_TIMEOUT, asked).await {
        Ok(Ok(_)) => (HistoryAccess::Permitted, None),
        Ok(Err(ibapi::Error::Notice(n))) if n.code == 162 => match hmds_kind(&n.message) {
            // An empty window still says the data is permitted.
            Hmds::NoData => (HistoryAccess::Permitted, None),
            Hmds::NoPermission => (
                HistoryAccess::Refused,
                Some(format!("IB {} {}", n.code, n.message)),
            ),
            Hmds::Other => (
                HistoryAccess::Unknown,
                Some(format!("IB {} {}", n.code, n.message)),
            ),
        },
        Ok(Err(ibapi::Error::Notice(n))) => (
            HistoryAccess::Unknown,
            Some(format!("IB {} {}", n.code, n.message)),
        ),
        Ok(Err(e)) => (HistoryAccess::Unknown, Some(e.to_string())),
        Err(_) => (
            HistoryAccess::Unknown,
            Some(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())),
        ),
    }
}

/// `ibq doctor`: prints the report (text or JSON); an error when ibq cannot work.
pub async fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let report = examine(config).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", super::render(&report));
    }
    if report.ready {
        Ok(())
    } else {
        Err(super::NotReady.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_name_the_cause() {
        let refused = ibapi::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let line = connect_error("127.0.0.1:4002", 100, &refused);
        assert!(
            line.contains("127.0.0.1:4002") && line.contains("connection refused"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let old = ibapi::Error::ServerVersion(213, 187, "protobuf".into());
        let line = connect_error("h:1", 100, &old);
        assert!(line.contains("187") && line.contains("213"), "{line}");
        let held = ibapi::Error::ClientIdInUse { client_id: 100 };
        assert!(connect_error("h:1", 100, &held).contains("client id 100"));
    }
}
