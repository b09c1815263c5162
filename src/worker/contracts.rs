//! Which contract a symbol means: `[contracts]` in `ibq.toml` names each symbol's security
//! type, exchange, primary exchange and currency (for futures the root), because one symbol
//! can be several contracts (`ES` is Eversource Energy on NYSE as a stock and the E-mini
//! S&P 500 on CME as a future). A symbol not in the table is looked up at the gateway; when
//! more than one contract matches, the request fails at once with the candidates and the
//! line that would settle it.

use std::collections::BTreeMap;

use ibapi::contracts::{Contract, ContractDetails, Currency, Exchange, SecurityType, Symbol};
use serde::{Deserialize, Deserializer, Serialize};

use super::errors::WorkError;
use super::ib::Ib;

/// IB's security type of a configured symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SecType {
    /// A stock or ETF.
    #[serde(rename = "STK")]
    Stock,
    /// An index (quotes and bars only).
    #[serde(rename = "IND")]
    Index,
    /// A futures root: the worker picks the month.
    #[serde(rename = "FUT")]
    Future,
}

impl SecType {
    pub fn code(self) -> &'static str {
        match self {
            Self::Stock => "STK",
            Self::Index => "IND",
            Self::Future => "FUT",
        }
    }

    fn ib(self) -> SecurityType {
        match self {
            Self::Stock => SecurityType::Stock,
            Self::Index => SecurityType::Index,
            Self::Future => SecurityType::Future,
        }
    }

    fn of(t: &SecurityType) -> Option<Self> {
        match t {
            SecurityType::Stock => Some(Self::Stock),
            SecurityType::Index => Some(Self::Index),
            SecurityType::Future => Some(Self::Future),
            _ => None,
        }
    }
}

/// One symbol's contract, as written in `[contracts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractSpec {
    /// "STK", "IND" or "FUT".
    #[serde(rename = "type")]
    pub sec_type: SecType,
    /// Where IB routes it: SMART for stocks, the listing exchange for indexes and futures.
    pub exchange: String,
    /// The stock's listing exchange (NYSE, NASDAQ, ARCA, ...), which tells same-named
    /// stocks apart under SMART.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_exchange: Option<String>,
    #[serde(default = "usd")]
    pub currency: String,
    /// A future's root symbol when it differs from the symbol used in requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

fn usd() -> String {
    "USD".into()
}

impl ContractSpec {
    fn new(sec_type: SecType, exchange: &str, primary: Option<&str>) -> Self {
        Self {
            sec_type,
            exchange: exchange.into(),
            primary_exchange: primary.map(str::to_string),
            currency: usd(),
            root: None,
        }
    }

    /// The contract description sent to the gateway (a future without its month).
    pub fn contract(&self, symbol: &str) -> Contract {
        Contract {
            symbol: Symbol(self.root.clone().unwrap_or_else(|| symbol.to_string())),
            security_type: self.sec_type.ib(),
            exchange: Exchange(self.exchange.clone()),
            primary_exchange: Exchange(self.primary_exchange.clone().unwrap_or_default()),
            currency: Currency(self.currency.clone()),
            ..Default::default()
        }
    }

    /// The `[contracts]` line that names this contract for `symbol`.
    pub fn config_line(&self, symbol: &str) -> String {
        let mut parts = vec![
            format!("type = \"{}\"", self.sec_type.code()),
            format!("exchange = \"{}\"", self.exchange),
        ];
        if let Some(p) = &self.primary_exchange {
            parts.push(format!("primary_exchange = \"{p}\""));
        }
        parts.push(format!("currency = \"{}\"", self.currency));
        if let Some(r) = &self.root {
            parts.push(format!("root = \"{r}\""));
        }
        format!("{symbol} = {{ {} }}", parts.join(", "))
    }
}

/// `[contracts]`: symbol → contract. The defaults stay unless the file names the symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ContractTable(pub BTreeMap<String, ContractSpec>);

impl Default for ContractTable {
    fn default() -> Self {
        use SecType::*;
        let s = |t, e, p| ContractSpec::new(t, e, p);
        Self(BTreeMap::from([
            ("SPY".into(), s(Stock, "SMART", Some("ARCA"))),
            ("QQQ".into(), s(Stock, "SMART", Some("NASDAQ"))),
            ("IWM".into(), s(Stock, "SMART", Some("ARCA"))),
            ("VIX".into(), s(Index, "CBOE", None)),
            ("ES".into(), s(Future, "CME", None)),
            ("NQ".into(), s(Future, "CME", None)),
            ("RTY".into(), s(Future, "CME", None)),
        ]))
    }
}

impl<'de> Deserialize<'de> for ContractTable {
    /// The file's entries over the defaults: naming one symbol keeps the others.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let given = BTreeMap::<String, ContractSpec>::deserialize(d)?;
        let mut table = Self::default();
        for (symbol, spec) in given {
            let Ok(key) = crate::queue::state::normalize_symbol(&symbol) else {
                return Err(serde::de::Error::custom(format!(
                    "`{symbol}` is not a symbol (1-12 letters, digits, '.', '/' or '-')"
                )));
            };
            if spec.exchange.trim().is_empty() {
                return Err(serde::de::Error::custom(format!(
                    "{symbol}: exchange is empty (SMART for stocks, e.g. CBOE or CME otherwise)"
                )));
            }
            table.0.insert(key, spec);
        }
        Ok(table)
    }
}

impl ContractTable {
    pub fn get(&self, symbol: &str) -> Option<&ContractSpec> {
        self.0.get(&symbol.to_ascii_uppercase())
    }
}

/// A contract the gateway listed for a symbol not in the table: its description, one line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    pub spec_line: String,
    pub sec_type: SecType,
    pub exchange: String,
    pub primary_exchange: String,
    pub currency: String,
    pub long_name: String,
}

/// The candidates among the gateway's answers for `symbol`: one per stock listing, one per
/// index exchange, one per futures root and exchange (its months are one contract to ibq).
pub fn candidates(symbol: &str, listed: &[ContractDetails]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for d in listed {
        let c = &d.contract;
        let Some(sec_type) = SecType::of(&c.security_type) else {
            continue;
        };
        let (exchange, primary) = match sec_type {
            SecType::Stock => ("SMART".to_string(), c.primary_exchange.0.clone()),
            _ => (c.exchange.0.clone(), String::new()),
        };
        let spec = ContractSpec {
            sec_type,
            exchange: exchange.clone(),
            primary_exchange: (!primary.is_empty()).then(|| primary.clone()),
            currency: if c.currency.0.is_empty() {
                usd()
            } else {
                c.currency.0.clone()
            },
            root: (sec_type == SecType::Future && !c.symbol.0.eq_ignore_ascii_case(symbol))
                .then(|| c.symbol.0.clone()),
        };
        let candidate = Candidate {
            spec_line: spec.config_line(symbol),
            sec_type,
            exchange,
            primary_exchange: primary,
            currency: spec.currency.clone(),
            long_name: d.long_name.clone(),
        };
        if !out.iter().any(|o| o.spec_line == candidate.spec_line) {
            out.push(candidate);
        }
    }
    out.sort();
    out
}

/// The error of a symbol that names several contracts: each candidate, and the line of
/// `[contracts]` that would choose it.
pub fn ambiguous(symbol: &str, found: &[Candidate]) -> WorkError {
    let listed: Vec<String> = found
        .iter()
        .map(|c| {
            let place = if c.primary_exchange.is_empty() {
                c.exchange.as_str()
            } else {
                c.primary_exchange.as_str()
            };
            let name = if c.long_name.is_empty() {
                String::new()
            } else {
                format!("{}, ", c.long_name)
            };
            format!("`{}` ({name}{} on {place})", c.spec_line, c.sec_type.code())
        })
        .collect();
    WorkError::Invalid(format!(
        "{symbol} names {} contracts at the gateway; put the line of the one meant under [contracts] in ibq.toml: {}",
        found.len(),
        listed.join("; ")
    ))
}

/// What a symbol resolved to: one contract, or a futures root's listed months.
#[derive(Debug)]
pub enum Resolved {
    One(Box<ContractDetails>),
    Months(Vec<ContractDetails>),
}

fn not_found(e: &WorkError) -> bool {
    matches!(e, WorkError::Ib { code: 200, .. })
}

fn wrong_type(symbol: &str, spec: &ContractSpec, needed: &str) -> WorkError {
    WorkError::Invalid(format!(
        "{symbol} is {} on {} under [contracts] in ibq.toml; this request needs {needed}",
        spec.sec_type.code(),
        spec.exchange
    ))
}

/// The gateway's answer for a configured symbol, refused when it still names several
/// contracts (a stock configured without its primary exchange that trades on two).
async fn lookup(
    ib: &Ib,
    symbol: &str,
    contract: &Contract,
) -> Result<Vec<ContractDetails>, WorkError> {
    let listed = ib.details(contract).await?;
    let found = candidates(symbol, &listed);
    if found.len() > 1 {
        return Err(ambiguous(symbol, &found));
    }
    Ok(listed)
}

/// The stock a symbol means (the underlying of an option chain).
pub async fn stock(ib: &Ib, symbol: &str) -> Result<ContractDetails, WorkError> {
    let contract = match ib.contracts.get(symbol) {
        Some(spec) if spec.sec_type == SecType::Stock => spec.contract(symbol),
        Some(spec) => return Err(wrong_type(symbol, spec, "a stock (STK)")),
        None => ContractSpec {
            currency: String::new(),
            ..ContractSpec::new(SecType::Stock, "SMART", None)
        }
        .contract(symbol),
    };
    Ok(lookup(ib, symbol, &contract).await?.remove(0))
}

/// The listed months of the futures root a symbol means (`month` empty for all of them,
/// else `YYYYMM`).
pub async fn future_months(
    ib: &Ib,
    symbol: &str,
    month: &str,
) -> Result<Vec<ContractDetails>, WorkError> {
    let mut contract = match ib.contracts.get(symbol) {
        Some(spec) if spec.sec_type == SecType::Future => spec.contract(symbol),
        Some(spec) => return Err(wrong_type(symbol, spec, "a futures root (FUT)")),
        None => ContractSpec {
            currency: String::new(),
            ..ContractSpec::new(SecType::Future, "", None)
        }
        .contract(symbol),
    };
    contract.last_trade_date_or_contract_month = month.to_string();
    lookup(ib, symbol, &contract).await
}

/// Whatever a symbol means: the configured contract, else the one contract the gateway
/// lists for it among stocks, indexes and futures.
pub async fn any(ib: &Ib, symbol: &str) -> Result<Resolved, WorkError> {
    if let Some(spec) = ib.contracts.get(symbol) {
        let mut listed = lookup(ib, symbol, &spec.contract(symbol)).await?;
        return Ok(match spec.sec_type {
            SecType::Future => Resolved::Months(listed),
            _ => Resolved::One(Box::new(listed.remove(0))),
        });
    }
    let mut listed = Vec::new();
    for t in [SecType::Stock, SecType::Index, SecType::Future] {
        let exchange = if t == SecType::Stock { "SMART" } else { "" };
        let probe = ContractSpec {
            currency: String::new(),
            ..ContractSpec::new(t, exchange, None)
        };
        match ib.details(&probe.contract(symbol)).await {
            Ok(d) => listed.extend(d),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let found = candidates(symbol, &listed);
    match found.len() {
        0 => Err(WorkError::Ib {
            code: 200,
            message: format!("No security definition has been found for {symbol}"),
        }),
        1 if found[0].sec_type == SecType::Future => Ok(Resolved::Months(listed)),
        1 => Ok(Resolved::One(Box::new(listed.remove(0)))),
        _ => Err(ambiguous(symbol, &found)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(
        symbol: &str,
        t: SecurityType,
        exchange: &str,
        primary: &str,
        name: &str,
    ) -> ContractDetails {
        ContractDetails {
            contract: Contract {
                symbol: Symbol(symbol.into()),
                security_type: t,
                exchange: Exchange(exchange.into()),
                primary_exchange: Exchange(primary.into()),
                currency: Currency("USD".into()),
                ..Default::default()
            },
            long_name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn futures_months_are_one_candidate_and_stocks_one_per_listing() {
        let listed = vec![
            details(
                "ES",
                SecurityType::Stock,
                "SMART",
                "NYSE",
                "EVERSOURCE ENERGY",
            ),
            details("ES", SecurityType::Future, "CME", "", "E-mini S&P 500"),
            details("ES", SecurityType::Future, "CME", "", "E-mini S&P 500"),
        ];
        let found = candidates("ES", &listed);
        assert_eq!(found.len(), 2, "{found:?}");
        let err = ambiguous("ES", &found).to_string();
        assert!(err.contains("ES names 2 contracts"), "{err}");
        assert!(
            err.contains(
                "`ES = { type = \"STK\", exchange = \"SMART\", primary_exchange = \"NYSE\", currency = \"USD\" }` (EVERSOURCE ENERGY, STK on NYSE)"
            ),
            "{err}"
        );
        assert!(
            err.contains(
                "`ES = { type = \"FUT\", exchange = \"CME\", currency = \"USD\" }` (E-mini S&P 500, FUT on CME)"
            ),
            "{err}"
        );
        assert!(!WorkError::Invalid(err).retryable());
    }

    #[test]
    fn a_config_line_parses_back_into_the_same_contract() {
        let spec = ContractSpec {
            root: Some("MES".into()),
            ..ContractSpec::new(SecType::Future, "CME", None)
        };
        let line = spec.config_line("MICRO");
        let table: BTreeMap<String, ContractSpec> = toml::from_str(&line).unwrap();
        assert_eq!(table["MICRO"], spec);
        assert_eq!(spec.contract("MICRO").symbol.0, "MES");
    }
}
