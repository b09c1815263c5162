//! The universe as of the sim clock: what a contract-details request matches and the ids
//! and listings a connection answers with.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::*;
use crate::sim::clock::SimClock;
use crate::sim::pricing::{self, Market};
use crate::sim::proto;

/// How a request names expiries: any, a month (`YYYYMM`) or a day (`YYYYMMDD`).
enum ExpirySpec {
    Any,
    Month(i32, u32),
    Day(NaiveDate),
}

impl ExpirySpec {
    fn parse(text: &str) -> Option<Self> {
        // A future's full form `20261218 08:30:00 US/Central` names its date first.
        let text = text.split_whitespace().next().unwrap_or("");
        match text.len() {
            0 => Some(Self::Any),
            6 => {
                let year = text.get(..4)?.parse().ok()?;
                let month = text.get(4..)?.parse().ok()?;
                Some(Self::Month(year, month))
            }
            8 => NaiveDate::parse_from_str(text, "%Y%m%d")
                .ok()
                .map(Self::Day),
            _ => None,
        }
    }

    fn matches(&self, d: NaiveDate) -> bool {
        match self {
            Self::Any => true,
            Self::Month(y, m) => d.year() == *y && d.month() == *m,
            Self::Day(day) => d == *day,
        }
    }
}

/// The universe as of the sim clock: which contracts exist now and their ids.
#[derive(Clone)]
pub struct Universe {
    market: Arc<Market>,
    clock: SimClock,
}

impl std::fmt::Debug for Universe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Universe").finish_non_exhaustive()
    }
}

impl Universe {
    pub(crate) fn new(market: Arc<Market>, clock: SimClock) -> Self {
        Self { market, clock }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// New York date of the sim clock: the listing date.
    pub fn today(&self) -> NaiveDate {
        pricing::ny_date(self.now())
    }

    /// Contract id of a stock/ETF or index symbol (SPY, QQQ, IWM, VIX, ES the stock).
    pub fn conid_of(&self, symbol: &str) -> Option<i32> {
        Underlying::from_symbol(&symbol.to_ascii_uppercase()).map(Underlying::conid)
    }

    /// The futures of a root (ES, NQ, RTY) listed now, nearest first.
    pub fn futures(&self, root: &str) -> Vec<Instrument> {
        FutureRoot::from_symbol(&root.to_ascii_uppercase())
            .map_or_else(Vec::new, |r| listed_futures(r, self.today()))
    }

    /// The front-month future of a root now (rolled eight days before expiry).
    pub fn front_future(&self, root: &str) -> Option<Instrument> {
        FutureRoot::from_symbol(&root.to_ascii_uppercase())
            .and_then(|r| front_future(r, self.today()))
    }

    /// Option expiries listed now for SPY, QQQ or IWM.
    pub fn option_expiries(&self, symbol: &str) -> Vec<NaiveDate> {
        match self.optionable(symbol) {
            Some(_) => listed_expiries(self.today()),
            None => Vec::new(),
        }
    }

    /// Strikes listed now for SPY, QQQ or IWM (around the previous close).
    pub fn option_strikes(&self, symbol: &str) -> Vec<f64> {
        self.optionable(symbol)
            .map_or_else(Vec::new, |u| self.strikes(u))
    }

    /// Contract id of a listed option (`right` is `C`/`P`/`CALL`/`PUT`).
    pub fn option_conid(
        &self,
        symbol: &str,
        expiry: NaiveDate,
        strike: f64,
        right: &str,
    ) -> Option<i32> {
        let u = self.optionable(symbol)?;
        let right = Right::parse(right)?;
        self.listed_option(u, expiry, strike, right)
            .map(|i| i.conid)
    }

    /// The price of an underlying (SPY, QQQ, IWM, VIX) on the sim clock now.
    pub fn price_of(&self, symbol: &str) -> Option<f64> {
        Underlying::from_symbol(&symbol.to_ascii_uppercase())
            .map(|u| self.market.underlying(u, self.now()))
    }

    fn optionable(&self, symbol: &str) -> Option<Underlying> {
        Underlying::from_symbol(&symbol.to_ascii_uppercase())
            .filter(|u| Underlying::OPTIONABLE.contains(u))
    }

    fn strikes(&self, u: Underlying) -> Vec<f64> {
        listed_strikes(self.market.previous_close(u, self.now()))
    }

    fn listed_option(
        &self,
        u: Underlying,
        expiry: NaiveDate,
        strike: f64,
        right: Right,
    ) -> Option<Instrument> {
        if !listed_expiries(self.today()).contains(&expiry) || !self.strikes(u).contains(&strike) {
            return None;
        }
        Some(Instrument {
            conid: option_conid(u, expiry, strike, right)?,
            underlying: u,
            kind: Kind::Option {
                expiry,
                strike,
                right,
            },
        })
    }

    /// The contract with this id, if it is listed now.
    pub fn by_conid(&self, conid: i32) -> Option<Instrument> {
        if let Some(u) = Underlying::LISTED.into_iter().find(|u| u.conid() == conid) {
            let kind = if u == Underlying::Vix {
                Kind::Index
            } else {
                Kind::Stock
            };
            return Some(Instrument {
                conid,
                underlying: u,
                kind,
            });
        }
        if (FUTURE_BASE..FUTURE_BASE + 300_000).contains(&conid) {
            let today = self.today();
            return FutureRoot::ALL
                .into_iter()
                .flat_map(|r| listed_futures(r, today))
                .find(|f| f.conid == conid);
        }
        let (u, expiry, strike, right) = decode_option_conid(conid)?;
        self.listed_option(u, expiry, strike, right)
    }

    /// Every listed contract matching a request's contract, as a gateway matches them: by id
    /// alone when there is one, else by symbol, type, exchange, currency, expiry, strike, right.
    pub fn resolve(&self, c: &proto::Contract) -> Vec<Instrument> {
        if let Some(conid) = c.con_id.filter(|id| *id > 0) {
            return self.by_conid(conid).into_iter().collect();
        }
        let upper = |s: &Option<String>| s.as_deref().unwrap_or("").trim().to_ascii_uppercase();
        let (symbol, sec_type, exchange, currency) = (
            upper(&c.symbol),
            upper(&c.sec_type),
            upper(&c.exchange),
            upper(&c.currency),
        );
        let local = upper(&c.local_symbol);
        let primary = upper(&c.primary_exch);
        if !currency.is_empty() && currency != "USD" {
            return Vec::new();
        }
        let Some(expiry) =
            ExpirySpec::parse(c.last_trade_date_or_contract_month.as_deref().unwrap_or(""))
        else {
            return Vec::new();
        };
        let exchange_ok =
            |allowed: &[&str]| exchange.is_empty() || allowed.contains(&exchange.as_str());
        match sec_type.as_str() {
            "STK" => Underlying::from_symbol(&symbol)
                .filter(|u| *u != Underlying::Vix)
                .filter(|u| primary.is_empty() || primary == u.primary_exchange())
                .filter(|_| {
                    exchange_ok(&[
                        "SMART", "ARCA", "NASDAQ", "ISLAND", "NYSE", "AMEX", "BATS", "IEX", "CBOE",
                    ])
                })
                .map(|u| Instrument {
                    conid: u.conid(),
                    underlying: u,
                    kind: Kind::Stock,
                })
                .into_iter()
                .collect(),
            "IND" => (symbol == "VIX" && exchange_ok(&["CBOE", "SMART"]))
                .then(|| Instrument {
                    conid: Underlying::Vix.conid(),
                    underlying: Underlying::Vix,
                    kind: Kind::Index,
                })
                .into_iter()
                .collect(),
            "FUT" => {
                let root = FutureRoot::from_symbol(&symbol).or_else(|| {
                    FutureRoot::ALL
                        .into_iter()
                        .find(|r| !local.is_empty() && local.starts_with(r.symbol()))
                });
                let Some(root) = root.filter(|_| exchange_ok(&["CME", "GLOBEX"])) else {
                    return Vec::new();
                };
                listed_futures(root, self.today())
                    .into_iter()
                    .filter(|f| f.expiry().is_some_and(|e| expiry.matches(e)))
                    .filter(|f| local.is_empty() || f.local_symbol() == local)
                    .filter(|f| c.multiplier.is_none_or(|m| m == 0.0 || m == f.multiplier()))
                    .collect()
            }
            "OPT" => {
                let Some(u) = self.optionable(&symbol) else {
                    return Vec::new();
                };
                if !exchange_ok(&[
                    "SMART", "CBOE", "AMEX", "ISE", "PHLX", "BOX", "ARCA", "BATS", "MIAX",
                    "NASDAQOM",
                ]) {
                    return Vec::new();
                }
                let rights: Vec<Right> = match c.right.as_deref().map(str::trim).unwrap_or("") {
                    "" | "?" => vec![Right::Call, Right::Put],
                    r => Right::parse(r).into_iter().collect(),
                };
                let strike = c.strike.filter(|k| *k > 0.0 && *k != f64::MAX);
                let strikes: Vec<f64> = self
                    .strikes(u)
                    .into_iter()
                    .filter(|k| strike.is_none_or(|s| s == *k))
                    .collect();
                let mut out = Vec::new();
                for e in listed_expiries(self.today())
                    .into_iter()
                    .filter(|e| expiry.matches(*e))
                {
                    for k in &strikes {
                        for r in &rights {
                            if let Some(i) = self.listed_option(u, e, *k, *r) {
                                out.push(i);
                            }
                        }
                    }
                }
                out
            }
            _ => Vec::new(),
        }
    }

    /// Option-chain parameters of an underlying (by contract id or symbol): trading class,
    /// expirations and strikes listed now.
    pub(crate) fn chain(
        &self,
        conid: i32,
        symbol: &str,
    ) -> Option<(Underlying, Vec<NaiveDate>, Vec<f64>)> {
        let u = Underlying::OPTIONABLE.into_iter().find(|u| {
            (conid > 0 && u.conid() == conid)
                || (conid <= 0 && u.symbol() == symbol.to_ascii_uppercase())
        })?;
        Some((u, listed_expiries(self.today()), self.strikes(u)))
    }
}
