//! `ibq doctor`: the trader's check of a gateway before the open. It connects with the
//! configured client id and reports the server version, the accounts, the data farms' state,
//! for every configured contract which market data (live, delayed or none) and whether
//! historical data the account gets, and the market-data lines ibq will use; then `ready`, or
//! the list of what to fix. The probing is in [`probe`]; what follows from its findings is
//! decided here, by pure functions.

use serde::Serialize;

use crate::gateway::farms::{FarmKind, FarmState, FarmView};
use crate::worker::market_data::MarketDataMode;

pub mod probe;

/// The lowest server version ibq's client (`ibapi` 5.5, protobuf only) can talk to.
pub const MIN_SERVER_VERSION: i32 = 213;

/// IB's base allowance of market-data lines ("All clients initially receive 100 concurrent
/// lines of real-time market data", IB's market data pricing page).
pub const BASE_LINES: u32 = 100;

/// What a gateway is refused for being too old, or nothing.
pub fn version_problem(server_version: i32) -> Option<String> {
    (server_version < MIN_SERVER_VERSION).then(|| {
        format!(
            "the gateway speaks API server version {server_version}; ibq needs {MIN_SERVER_VERSION} or later \
             (its client, ibapi 5.5, speaks the TWS API's protobuf messages only): update IB Gateway or TWS \
             to 10.43 or newer (server version 219 and up; ibapi's changelog), i.e. IB's current stable or latest release"
        )
    })
}

/// How the report names what a farm serves.
fn kind_label(kind: FarmKind) -> &'static str {
    match kind {
        FarmKind::MarketData => "market data",
        FarmKind::Historical => "historical",
        FarmKind::SecDef => "security definitions",
    }
}

/// Which market data the account gets for a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataAccess {
    Live,
    Delayed,
    None,
    /// The check could not tell (the note says why).
    Unknown,
}

/// Whether the account may have historical bars of a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryAccess {
    Permitted,
    Refused,
    Unknown,
}

/// One configured contract's findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContractCheck {
    pub symbol: String,
    /// "STK SMART/ARCA", "FUT CME ESZ6", ...; empty when the lookup failed.
    pub contract: String,
    pub conid: Option<i32>,
    /// Why the contract could not be looked up, if it could not.
    pub lookup_error: Option<String>,
    pub market_data: DataAccess,
    /// The exchange the market data is permissioned by (for the advice).
    pub exchange: String,
    pub market_data_note: Option<String>,
    pub historical: HistoryAccess,
    pub historical_note: Option<String>,
}

/// Market-data lines ibq will use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LineUse {
    pub limit: u32,
    pub margin: u32,
    pub usable: u32,
}

/// Everything `ibq doctor` found, and what follows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub gateway: String,
    pub client_id: i32,
    pub server_version: i32,
    pub accounts: Vec<String>,
    /// The farms as the gateway's notices left them (folded by [`crate::gateway::Farms`]).
    pub farms: Vec<FarmView>,
    pub market_data_type: MarketDataMode,
    pub contracts: Vec<ContractCheck>,
    pub lines: LineUse,
    pub warnings: Vec<String>,
    pub fixes: Vec<String>,
    pub ready: bool,
}

fn note(n: &Option<String>) -> String {
    n.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
}

/// Fills in the warnings, the fixes and whether ibq can do its work.
pub fn judge(r: &mut Report) {
    let mut warnings = Vec::new();
    let mut fixes = Vec::new();
    if let Some(p) = version_problem(r.server_version) {
        fixes.push(p);
    }
    if r.accounts.is_empty() {
        fixes.push(
            "the gateway named no account: log in to IB Gateway or TWS with the user whose data ibq uses"
                .into(),
        );
    }
    for f in &r.farms {
        let what = format!("{} farm {} (IB {})", kind_label(f.kind), f.name, f.code);
        match f.state {
            FarmState::Broken => fixes.push(format!(
                "{what} is broken: the gateway has lost IB's servers for this data; wait for its OK notice or restart the gateway"
            )),
            FarmState::Connecting => warnings.push(format!("{what} is still connecting")),
            FarmState::Ok | FarmState::Inactive => {}
        }
    }
    if !r.farms.iter().any(|f| f.kind == FarmKind::MarketData) {
        warnings.push(
            "the gateway announced no market-data farm (a gateway sends 2104, 2106, 2158 on connect)"
                .into(),
        );
    }
    for c in &r.contracts {
        let sym = &c.symbol;
        if let Some(e) = &c.lookup_error {
            fixes.push(format!(
                "{sym}: {e}; check its line under [contracts] in ibq.toml"
            ));
            continue;
        }
        let ex = &c.exchange;
        match c.market_data {
            DataAccess::Live => {}
            DataAccess::Delayed if r.market_data_type == MarketDataMode::Live => fixes.push(format!(
                "{sym}: only delayed market data{} and [market_data] type = \"live\": subscribe to live data for {ex} in IB's Account Management, or set type = \"auto\"",
                note(&c.market_data_note)
            )),
            DataAccess::Delayed => warnings.push(format!(
                "{sym}: delayed market data only (about 15 minutes late){}: subscribe to live data for {ex} in IB's Account Management for live quotes",
                note(&c.market_data_note)
            )),
            DataAccess::None => fixes.push(format!(
                "{sym}: no market data{}: subscribe to {ex} data in IB's Account Management, or enable delayed data there",
                note(&c.market_data_note)
            )),
            DataAccess::Unknown => fixes.push(format!(
                "{sym}: market data could not be checked{}",
                note(&c.market_data_note)
            )),
        }
        match c.historical {
            HistoryAccess::Permitted => {}
            HistoryAccess::Refused => warnings.push(format!(
                "{sym}: no historical data{}: market_bars requests for it will fail (IB serves history only with live subscriptions)",
                note(&c.historical_note)
            )),
            HistoryAccess::Unknown => warnings.push(format!(
                "{sym}: historical data could not be checked{}",
                note(&c.historical_note)
            )),
        }
    }
    if r.lines.limit > BASE_LINES {
        warnings.push(format!(
            "[lines] limit = {} is above IB's base allowance of {BASE_LINES} lines: the gateway does not tell the account's allowance, so make sure it has that many, or requests past it get 101",
            r.lines.limit
        ));
    }
    r.ready = fixes.is_empty();
    r.warnings = warnings;
    r.fixes = fixes;
}

/// The report as text; its last line is `ready`, or the last of the fixes.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "ibq doctor: gateway {}, client id {}",
        r.gateway, r.client_id
    ));
    line(format!(
        "server version  {} (ibq needs {MIN_SERVER_VERSION} or later)",
        r.server_version
    ));
    line(format!(
        "accounts        {}",
        if r.accounts.is_empty() {
            "none".to_string()
        } else {
            r.accounts.join(", ")
        }
    ));
    let farms: Vec<String> = r
        .farms
        .iter()
        .map(|f| {
            let state = match f.state {
                FarmState::Ok => "OK",
                FarmState::Broken => "BROKEN",
                FarmState::Inactive => "inactive (available on demand)",
                FarmState::Connecting => "connecting",
            };
            format!("{} {} {state}", kind_label(f.kind), f.name)
        })
        .collect();
    line(format!(
        "farms           {}",
        if farms.is_empty() {
            "none announced".to_string()
        } else {
            farms.join("; ")
        }
    ));
    let mode = match r.market_data_type {
        MarketDataMode::Live => "live",
        MarketDataMode::Delayed => "delayed",
        MarketDataMode::Auto => "auto",
    };
    line(format!(
        "market data     [market_data] type = \"{mode}\"; per configured contract:"
    ));
    for c in &r.contracts {
        if let Some(e) = &c.lookup_error {
            line(format!("  {:<6} not found: {e}", c.symbol));
            continue;
        }
        let md = match c.market_data {
            DataAccess::Live => "live",
            DataAccess::Delayed => "delayed",
            DataAccess::None => "none",
            DataAccess::Unknown => "unknown",
        };
        let hist = match c.historical {
            HistoryAccess::Permitted => "historical permitted",
            HistoryAccess::Refused => "historical refused",
            HistoryAccess::Unknown => "historical unknown",
        };
        let conid = c.conid.map(|i| format!("conid {i}")).unwrap_or_default();
        line(format!(
            "  {:<6} {:<22} {:<16} {md:<8} {hist}",
            c.symbol, c.contract, conid
        ));
    }
    line(format!(
        "lines           {} ([lines] limit), {} kept free: {} for ibq",
        r.lines.limit, r.lines.margin, r.lines.usable
    ));
    for w in &r.warnings {
        line(format!("warning: {w}"));
    }
    if r.ready {
        line("ready".into());
    } else {
        line(format!("not ready: {} to fix", r.fixes.len()));
        for f in &r.fixes {
            line(format!("  - {f}"));
        }
    }
    out
}

/// The error `ibq doctor` ends with when the gateway is not ready: the report said why, so
/// it prints nothing more and only sets the exit status.
#[derive(Debug, thiserror::Error)]
#[error("not ready")]
pub struct NotReady;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::farms::Farms;

    /// The farms after these notices, in order, as `ibq doctor` folds them.
    fn farms(notices: &[(i32, &str)]) -> Vec<FarmView> {
        let mut farms = Farms::default();
        for (code, text) in notices {
            farms.apply(*code, text, chrono::DateTime::UNIX_EPOCH);
        }
        farms.view().farms.clone()
    }

    fn report() -> Report {
        Report {
            gateway: "127.0.0.1:4002".into(),
            client_id: 100,
            server_version: 226,
            accounts: vec!["DU1234567".into()],
            farms: farms(&[
                (2104, "Market data farm connection is OK:usfarm"),
                (2106, "HMDS data farm connection is OK:ushmds"),
                (2158, "Sec-def data farm connection is OK:secdefnyc"),
            ]),
            market_data_type: MarketDataMode::Auto,
            contracts: vec![ContractCheck {
                symbol: "SPY".into(),
                contract: "STK SMART/ARCA".into(),
                conid: Some(756733),
                lookup_error: None,
                market_data: DataAccess::Live,
                exchange: "SMART".into(),
                market_data_note: None,
                historical: HistoryAccess::Permitted,
                historical_note: None,
            }],
            lines: LineUse {
                limit: 100,
                margin: 2,
                usable: 98,
            },
            warnings: vec![],
            fixes: vec![],
            ready: false,
        }
    }

    #[test]
    fn the_last_notice_of_a_farm_wins() {
        let farms = farms(&[
            (2104, "Market data farm connection is OK:usfarm"),
            (2103, "Market data farm connection is broken:usfarm"),
            (2108, "Market data farm connection is inactive but should be available upon demand.cashfarm"),
            (2105, "HMDS data farm connection is broken:ushmds"),
            (2106, "HMDS data farm connection is OK:ushmds"),
            (2119, "Market data farm is connecting:usfuture"),
            (1102, "Connectivity between IB and Trader Workstation has been restored"),
        ]);
        let state = |n: &str| {
            farms
                .iter()
                .find(|f| f.name == n)
                .map(|f| (f.state, f.code))
        };
        assert_eq!(state("usfarm"), Some((FarmState::Broken, 2103)));
        assert_eq!(state("cashfarm"), Some((FarmState::Inactive, 2108)));
        assert_eq!(state("ushmds"), Some((FarmState::Ok, 2106)));
        assert_eq!(state("usfuture"), Some((FarmState::Connecting, 2119)));
        assert_eq!(farms.len(), 4, "{farms:?}");
    }

    #[test]
    fn a_version_below_213_is_refused_naming_the_upgrade() {
        assert_eq!(version_problem(213), None);
        assert_eq!(version_problem(226), None);
        let p = version_problem(187).unwrap();
        assert!(p.contains("187") && p.contains("213"), "{p}");
        assert!(
            p.contains("IB Gateway or TWS") && p.contains("10.43"),
            "{p}"
        );
        let mut r = report();
        r.server_version = 187;
        judge(&mut r);
        assert!(!r.ready);
        assert!(render(&r).lines().last().unwrap().contains("213"));
    }

    #[test]
    fn live_everywhere_is_ready_and_says_so_last() {
        let mut r = report();
        judge(&mut r);
        assert!(r.ready, "{:?}", r.fixes);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let text = render(&r);
        assert_eq!(text.lines().last(), Some("ready"));
        assert!(text.contains("market data usfarm OK"), "{text}");
    }

    #[test]
    fn delayed_only_is_ready_with_a_warning_unless_live_is_required() {
        let mut r = report();
        r.contracts[0].market_data = DataAccess::Delayed;
        r.contracts[0].historical = HistoryAccess::Refused;
        judge(&mut r);
        assert!(r.ready, "{:?}", r.fixes);
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("SPY: delayed market data only")));
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("SPY: no historical data")));
        r.market_data_type = MarketDataMode::Live;
        judge(&mut r);
        assert!(!r.ready);
        assert!(r.fixes[0].contains("type = \"live\""), "{:?}", r.fixes);
        let text = render(&r);
        assert!(
            text.lines().last().unwrap().starts_with("  - SPY"),
            "{text}"
        );
    }

    #[test]
    fn no_data_a_broken_farm_or_no_account_is_not_ready() {
        let mut r = report();
        r.contracts[0].market_data = DataAccess::None;
        judge(&mut r);
        assert!(!r.ready);
        let mut r = report();
        r.farms = farms(&[(2103, "Market data farm connection is broken:usfarm")]);
        judge(&mut r);
        assert!(!r.ready && r.fixes[0].contains("usfarm"), "{:?}", r.fixes);
        let mut r = report();
        r.accounts.clear();
        judge(&mut r);
        assert!(!r.ready);
        let mut r = report();
        r.lines.limit = 150;
        judge(&mut r);
        assert!(r.ready && r.warnings[0].contains("150"), "{:?}", r.warnings);
    }
}
