//! The gateway's data farms as its notices report them (pure logic, no I/O).
//!
//! A gateway reports each farm it uses with a notice (request id -1), at connect and
//! whenever the farm's connection changes: 2104/2106/2158 OK (market data, historical,
//! sec-def), 2103/2105/2157 broken, 2107/2108 inactive (idle, connected again on demand),
//! 2119 connecting; the farm's name ends the text (`…is OK:usfarm`, `…upon demand.ushmds`).
//! The code groups are `ibapi` 5.5's (`src/messages/notice.rs`, `FARM_OK_CODES`,
//! `FARM_BROKEN_CODES`, `FARM_INACTIVE_CODES`, `FARM_CONNECTING_CODES`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What a farm serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FarmKind {
    MarketData,
    Historical,
    SecDef,
}

impl FarmKind {
    /// Short, for the console header.
    pub fn short(self) -> &'static str {
        match self {
            FarmKind::MarketData => "md",
            FarmKind::Historical => "hmds",
            FarmKind::SecDef => "secdef",
        }
    }
}

/// A farm's connection as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FarmState {
    Ok,
    Broken,
    /// Idle; the gateway connects it again on demand.
    Inactive,
    Connecting,
}

impl FarmState {
    /// Whether requests to this farm can be answered now (an idle farm is reached on
    /// demand).
    pub fn serves(self) -> bool {
        matches!(self, FarmState::Ok | FarmState::Inactive)
    }
}

/// One farm: its kind, its name (`usfarm`), its state, the notice that said so, and since
/// when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FarmView {
    pub kind: FarmKind,
    pub name: String,
    pub state: FarmState,
    pub code: i32,
    pub since: DateTime<Utc>,
}

/// Every farm the gateway has reported this session, by kind then name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FarmsView {
    pub farms: Vec<FarmView>,
}

impl FarmsView {
    /// Whether market data waits for its farm: a market-data farm is broken or connecting.
    pub fn market_data_down(&self) -> bool {
        self.farms
            .iter()
            .any(|f| f.kind == FarmKind::MarketData && !f.state.serves())
    }

    /// Whether a quote of `sec_type` in `currency` waits: a market-data farm that may serve
    /// it is broken or connecting (see [`may_serve`]).
    pub fn market_data_down_for(&self, sec_type: &str, currency: &str) -> bool {
        self.farms.iter().any(|f| {
            f.kind == FarmKind::MarketData
                && !f.state.serves()
                && may_serve(&f.name, sec_type, currency)
        })
    }

    /// The farms that cannot serve now.
    pub fn down(&self) -> impl Iterator<Item = &FarmView> {
        self.farms.iter().filter(|f| !f.state.serves())
    }

    /// A short text for the console header: `farms ok`, or the farms that are down
    /// (`md farm usfarm BROKEN`); `None` before any farm was reported.
    pub fn summary(&self) -> Option<String> {
        if self.farms.is_empty() {
            return None;
        }
        let down: Vec<String> = self
            .down()
            .map(|f| {
                let state = match f.state {
                    FarmState::Connecting => "connecting",
                    _ => "BROKEN",
                };
                format!("{} farm {} {state}", f.kind.short(), f.name)
            })
            .collect();
        Some(if down.is_empty() {
            "farms ok".to_string()
        } else {
            down.join(", ")
        })
    }
}

/// The farm kind and state a notice code reports; `None` for any other code.
pub fn classify(code: i32) -> Option<(FarmKind, FarmState)> {
    use FarmKind::*;
    use FarmState::*;
    Some(match code {
        2104 => (MarketData, Ok),
        2103 => (MarketData, Broken),
        2108 => (MarketData, Inactive),
        2119 => (MarketData, Connecting),
        2106 => (Historical, Ok),
        2105 => (Historical, Broken),
        2107 => (Historical, Inactive),
        2158 => (SecDef, Ok),
        2157 => (SecDef, Broken),
        _ => return None,
    })
}

/// The farm's name at the end of a notice: after the last `:` (`…is OK:usfarm`) or after
/// `demand.` (`…available upon demand.usfarm`).
pub fn farm_name(message: &str) -> String {
    let name = match message.rsplit_once("demand.") {
        Some((_, name)) => name,
        None => message.rsplit_once(':').map_or("", |(_, name)| name),
    };
    let name = name.trim();
    if name.is_empty() {
        "?".to_string()
    } else {
        name.to_string()
    }
}

/// Whether the market-data farm `farm` may serve a contract of `sec_type` (IB's code: STK,
/// IND, OPT, FOP, FUT, ...) in `currency`. IB names a farm by the market it serves (names as
/// gateways report them: `usfarm` and `usfarm.nj` for US stocks, `usopt` for US options,
/// `usfuture` for US futures, `cashfarm` for currencies, `eufarm`, `jfarm`, `hfarm`,
/// `cafarm` abroad; docs/SIM.md cites where). Known US farms serve their kinds (an
/// option's model also needs its underlying's price from `usfarm`); farms known to serve
/// other markets serve no US contract. A farm of an unknown name, or a contract outside
/// the US (or of no stated currency but not US either: any non-USD currency), may serve
/// it: the quote waits, as it did before farms were told apart.
pub fn may_serve(farm: &str, sec_type: &str, currency: &str) -> bool {
    let us = currency.is_empty() || currency.eq_ignore_ascii_case("USD");
    if !us {
        return true;
    }
    let base = farm.split('.').next().unwrap_or(farm).to_ascii_lowercase();
    let sec_type = sec_type.to_ascii_uppercase();
    match base.as_str() {
        "usfarm" => matches!(sec_type.as_str(), "STK" | "IND" | "OPT" | "ETF" | ""),
        "usopt" => matches!(sec_type.as_str(), "OPT"),
        "usfuture" => matches!(sec_type.as_str(), "FUT" | "FOP" | "CONTFUT"),
        "cashfarm" | "eufarm" | "euopt" | "jfarm" | "hfarm" | "cafarm" | "afarm" | "eufarmnj" => {
            false
        }
        _ => true,
    }
}

/// Follows the farm notices of one session.
#[derive(Debug, Default)]
pub struct Farms {
    view: FarmsView,
}

impl Farms {
    /// Takes one notice; true when a farm's state changed.
    pub fn apply(&mut self, code: i32, message: &str, now: DateTime<Utc>) -> bool {
        let Some((kind, state)) = classify(code) else {
            return false;
        };
        let name = farm_name(message);
        let farms = &mut self.view.farms;
        match farms.iter_mut().find(|f| f.kind == kind && f.name == name) {
            Some(f) if f.state == state => false,
            Some(f) => {
                f.state = state;
                f.code = code;
                f.since = now;
                true
            }
            None => {
                farms.push(FarmView {
                    kind,
                    name,
                    state,
                    code,
                    since: now,
                });
                farms.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
                true
            }
        }
    }

    /// Forgets every farm: a new session reports its own.
    pub fn clear(&mut self) {
        self.view.farms.clear();
    }

    pub fn view(&self) -> &FarmsView {
        &self.view
    }
}

/// Waits until market data of `sec_type` in `currency` is served (no market-data farm that
/// may serve it broken or connecting); at once when it is, and for ever if the sender is gone
/// (the caller's timeout bounds the wait).
pub async fn wait_market_data(farms: &watch::Receiver<FarmsView>, sec_type: &str, currency: &str) {
    let mut farms = farms.clone();
    if farms
        .borrow_and_update()
        .market_data_down_for(sec_type, currency)
    {
        tracing::info!("market-data farm down: the quote waits for it");
        if farms
            .wait_for(|f| !f.market_data_down_for(sec_type, currency))
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + s, 0).unwrap()
    }

    #[test]
    fn names_are_read_from_both_forms_of_notice() {
        assert_eq!(
            farm_name("Market data farm connection is OK:usfarm.nj"),
            "usfarm.nj"
        );
        assert_eq!(
            farm_name(
                "HMDS data farm connection is inactive but should be available upon demand.ushmds"
            ),
            "ushmds"
        );
        assert_eq!(
            farm_name("Market data farm is connecting:usfuture"),
            "usfuture"
        );
        assert_eq!(farm_name("no name here"), "?");
    }

    #[test]
    fn a_broken_market_data_farm_holds_market_data_until_it_is_ok() {
        let mut farms = Farms::default();
        assert_eq!(farms.view().summary(), None);
        assert!(farms.apply(2104, "Market data farm connection is OK:usfarm", t(0)));
        assert!(farms.apply(2106, "HMDS data farm connection is OK:ushmds", t(0)));
        assert!(farms.apply(2158, "Sec-def data farm connection is OK:secdefnj", t(0)));
        assert!(!farms.apply(2104, "Market data farm connection is OK:usfarm", t(1)));
        assert!(!farms.apply(1102, "Connectivity … restored - data maintained.", t(1)));
        assert_eq!(farms.view().summary().as_deref(), Some("farms ok"));
        assert!(!farms.view().market_data_down());

        assert!(farms.apply(2103, "Market data farm connection is broken:usfarm", t(2)));
        let view = farms.view().clone();
        assert!(view.market_data_down());
        assert_eq!(view.summary().as_deref(), Some("md farm usfarm BROKEN"));
        let md = &view.farms[0];
        assert_eq!(
            (md.state, md.code, md.since),
            (FarmState::Broken, 2103, t(2))
        );

        assert!(farms.apply(2119, "Market data farm is connecting:usfarm", t(3)));
        assert!(farms.view().market_data_down());
        assert_eq!(
            farms.view().summary().as_deref(),
            Some("md farm usfarm connecting")
        );
        assert!(farms.apply(2104, "Market data farm connection is OK:usfarm", t(4)));
        assert!(!farms.view().market_data_down());
    }

    #[test]
    fn idle_farms_serve_and_other_kinds_do_not_hold_market_data() {
        let mut farms = Farms::default();
        farms.apply(
            2108,
            "Market data farm connection is inactive but should be available upon demand.usfarm",
            t(0),
        );
        farms.apply(2105, "HMDS data farm connection is broken:ushmds", t(0));
        farms.apply(
            2157,
            "Sec-def data farm connection is broken:secdefnj",
            t(0),
        );
        let view = farms.view();
        assert!(!view.market_data_down(), "inactive is reached on demand");
        assert_eq!(
            view.summary().as_deref(),
            Some("hmds farm ushmds BROKEN, secdef farm secdefnj BROKEN")
        );
        farms.clear();
        assert_eq!(farms.view().summary(), None);
    }

    #[test]
    fn one_broken_farm_of_several_holds_market_data() {
        let mut farms = Farms::default();
        farms.apply(2104, "Market data farm connection is OK:usfarm", t(0));
        farms.apply(2103, "Market data farm connection is broken:usfuture", t(0));
        assert!(farms.view().market_data_down());
        assert_eq!(farms.view().farms.len(), 2);
    }

    #[tokio::test]
    async fn the_wait_ends_when_the_farm_is_back() {
        let mut farms = Farms::default();
        farms.apply(2103, "Market data farm connection is broken:usfarm", t(0));
        let (tx, rx) = watch::channel(farms.view().clone());
        let waiting = tokio::spawn(async move { wait_market_data(&rx, "STK", "USD").await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        farms.apply(2104, "Market data farm connection is OK:usfarm", t(1));
        tx.send_replace(farms.view().clone());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the wait ends")
            .unwrap();
    }

    #[test]
    fn a_farm_down_holds_only_the_contracts_it_may_serve() {
        let mut farms = Farms::default();
        for name in ["usfarm.nj", "usopt", "usfuture", "eufarm", "cashfarm"] {
            farms.apply(
                2104,
                &format!("Market data farm connection is OK:{name}"),
                t(0),
            );
        }
        farms.apply(2103, "Market data farm connection is broken:eufarm", t(1));
        farms.apply(2103, "Market data farm connection is broken:cashfarm", t(1));
        let view = farms.view().clone();
        assert!(view.market_data_down(), "some farm is down");
        for sec_type in ["STK", "IND", "OPT", "FUT"] {
            assert!(!view.market_data_down_for(sec_type, "USD"), "{sec_type}");
        }
        assert!(
            view.market_data_down_for("STK", "EUR"),
            "a European listing waits"
        );

        farms.apply(2103, "Market data farm connection is broken:usfuture", t(2));
        let view = farms.view().clone();
        assert!(view.market_data_down_for("FUT", "USD"));
        assert!(view.market_data_down_for("FOP", ""));
        assert!(!view.market_data_down_for("STK", "USD"));
        assert!(!view.market_data_down_for("OPT", "USD"));

        farms.apply(2119, "Market data farm is connecting:usfarm.nj", t(3));
        let view = farms.view().clone();
        assert!(view.market_data_down_for("STK", ""));
        assert!(
            view.market_data_down_for("OPT", "USD"),
            "the model needs the underlying"
        );
        assert!(view.market_data_down_for("IND", "USD"));

        // A farm of a name not known here may serve anything: the quote waits.
        let mut farms = Farms::default();
        farms.apply(2103, "Market data farm connection is broken:zzfarm", t(0));
        assert!(farms.view().market_data_down_for("STK", "USD"));
        assert!(may_serve("usopt", "opt", "usd"));
        assert!(!may_serve("usopt", "STK", "USD"));
    }
}
