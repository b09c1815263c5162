//! The gateway's data farms and its link to IB's servers, as the simulator models them: the
//! farm notices a gateway sends (at connect, and when a farm breaks or comes back), and the
//! gate that holds answers while the market-data farm or the link is down (docs/SIM.md,
//! *Farms* and *Nightly reset*).

use std::str::FromStr;

use tokio::sync::watch;

use super::universe::Kind;

/// The farms a gateway reports on, named as IB names its farms: the market-data farms of US
/// stocks and indices (`usfarm`), US options (`usopt`), US futures (`usfuture`) and one that
/// serves none of the simulated contracts (`eufarm`, European listings), the historical farm
/// and the sec-def farm (docs/SIM.md, *Data farms*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Farm {
    /// Live market data of US stocks, ETFs and indices (`usfarm`).
    MarketData,
    /// Live market data of US options (`usopt`).
    Options,
    /// Live market data of US futures (`usfuture`).
    Futures,
    /// Live market data of European listings (`eufarm`): none of the simulated contracts.
    Europe,
    /// Historical data (HMDS, `ushmds`).
    Historical,
    /// Security definitions (`secdefnj`).
    SecDef,
}

/// The state a farm notice reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FarmStatus {
    #[default]
    Ok,
    Broken,
    /// Idle, connected again on demand.
    Inactive,
    Connecting,
}

impl FarmStatus {
    /// Whether the farm answers: connected, or idle and connected on demand.
    pub fn serves(self) -> bool {
        matches!(self, FarmStatus::Ok | FarmStatus::Inactive)
    }
}

impl Farm {
    pub const ALL: [Farm; 6] = [
        Farm::MarketData,
        Farm::Options,
        Farm::Futures,
        Farm::Europe,
        Farm::Historical,
        Farm::SecDef,
    ];

    /// The name the CLI and the control channel use (IB's own name is accepted too).
    pub fn name(self) -> &'static str {
        match self {
            Farm::MarketData => "market_data",
            Farm::Options => "usopt",
            Farm::Futures => "usfuture",
            Farm::Europe => "eufarm",
            Farm::Historical => "historical",
            Farm::SecDef => "sec_def",
        }
    }

    /// The farm's name as its notices end (`…is OK:usfarm`).
    pub fn ib_name(self) -> &'static str {
        match self {
            Farm::MarketData => "usfarm",
            Farm::Options => "usopt",
            Farm::Futures => "usfuture",
            Farm::Europe => "eufarm",
            Farm::Historical => "ushmds",
            Farm::SecDef => "secdefnj",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether it is a market-data farm.
    pub fn market_data(self) -> bool {
        matches!(
            self,
            Farm::MarketData | Farm::Options | Farm::Futures | Farm::Europe
        )
    }

    /// The market-data farm that serves an instrument of `kind`.
    pub fn serving(kind: &Kind) -> Farm {
        match kind {
            Kind::Option { .. } => Farm::Options,
            Kind::Future { .. } => Farm::Futures,
            _ => Farm::MarketData,
        }
    }

    /// The code a gateway sends for this farm in `status`; `None` where IB has none (only
    /// a market-data farm reports "connecting"; the sec-def farm is never "inactive").
    pub fn code(self, status: FarmStatus) -> Option<i32> {
        use FarmStatus::*;
        match (self, status) {
            (f, Ok) if f.market_data() => Some(2104),
            (f, Broken) if f.market_data() => Some(2103),
            (f, Inactive) if f.market_data() => Some(2108),
            (f, Connecting) if f.market_data() => Some(2119),
            (Farm::Historical, Ok) => Some(2106),
            (Farm::Historical, Broken) => Some(2105),
            (Farm::Historical, Inactive) => Some(2107),
            (Farm::SecDef, Ok) => Some(2158),
            (Farm::SecDef, Broken) => Some(2157),
            _ => None,
        }
    }

    /// The notice a gateway sends with `code` for this farm: IB's text for the code, ending
    /// with the farm's name.
    pub fn notice(self, code: i32) -> String {
        let text = super::faults::error_text(code);
        let stem = match text.rsplit_once("demand.") {
            Some((stem, _)) => format!("{stem}demand."),
            None => text
                .rsplit_once(':')
                .map_or(text.to_string(), |(stem, _)| format!("{stem}:")),
        };
        format!("{stem}{}", self.ib_name())
    }
}

impl FromStr for Farm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Farm::ALL
            .into_iter()
            .find(|f| f.name() == s || f.ib_name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown farm {s:?} (expected market_data or usfarm, usopt, usfuture, eufarm, historical or sec_def)"
                )
            })
    }
}

impl FromStr for FarmStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(FarmStatus::Ok),
            "broken" => Ok(FarmStatus::Broken),
            "inactive" => Ok(FarmStatus::Inactive),
            "connecting" => Ok(FarmStatus::Connecting),
            _ => Err(format!(
                "unknown farm state {s:?} (expected ok, broken, inactive or connecting)"
            )),
        }
    }
}

/// What may be answered now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Availability {
    pub farms: [FarmStatus; 6],
    /// A silent nightly reset: nothing is answered until the restore notice.
    pub silent: bool,
    /// Restores that lost data (1101) so far: answers held across one are never sent.
    pub data_lost: u64,
}

impl Availability {
    pub fn farm(&self, farm: Farm) -> FarmStatus {
        self.farms[farm.index()]
    }

    pub fn set_farm(&mut self, farm: Farm, status: FarmStatus) {
        self.farms[farm.index()] = status;
    }

    /// Whether an answer may go now: one held by a market-data farm (`farm`) waits for it.
    pub fn open(&self, farm: Option<Farm>) -> bool {
        !self.silent && farm.is_none_or(|f| self.farm(f).serves())
    }
}

/// Waits until an answer (held by `farm`, if any) may go; false when a restore that lost
/// data (1101) came meanwhile, and the answer is never sent.
pub async fn wait_open(mut rx: watch::Receiver<Availability>, farm: Option<Farm>) -> bool {
    let epoch = rx.borrow().data_lost;
    match rx.wait_for(|a| a.open(farm)).await {
        Ok(a) => a.data_lost == epoch,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_farm_has_its_ok_and_broken_codes() {
        assert_eq!(Farm::MarketData.code(FarmStatus::Broken), Some(2103));
        assert_eq!(Farm::Historical.code(FarmStatus::Broken), Some(2105));
        assert_eq!(Farm::SecDef.code(FarmStatus::Broken), Some(2157));
        assert_eq!(Farm::MarketData.code(FarmStatus::Connecting), Some(2119));
        assert_eq!(Farm::SecDef.code(FarmStatus::Inactive), None);
        assert_eq!(Farm::Options.code(FarmStatus::Broken), Some(2103));
        for farm in Farm::ALL {
            assert_eq!(farm.name().parse::<Farm>(), Ok(farm));
            assert_eq!(farm.ib_name().parse::<Farm>(), Ok(farm));
        }
        assert!("jfarm".parse::<Farm>().is_err());
        assert_eq!(
            Farm::Europe.notice(2103),
            "Market data farm connection is broken:eufarm"
        );
        assert_eq!(
            Farm::Options.notice(2108),
            "Market data farm connection is inactive but should be available upon demand.usopt"
        );
        assert_eq!(
            Farm::Futures.notice(2119),
            "Market data farm is connecting:usfuture"
        );
    }

    #[tokio::test]
    async fn answers_wait_for_the_market_data_farm_and_a_lossy_restore_drops_them() {
        let (tx, _) = watch::channel(Availability::default());
        tx.send_modify(|a| a.set_farm(Farm::MarketData, FarmStatus::Broken));
        assert!(tx.borrow().open(None) && !tx.borrow().open(Some(Farm::MarketData)));
        assert!(
            tx.borrow().open(Some(Farm::Options)),
            "other farms still serve"
        );
        let held = tokio::spawn(wait_open(tx.subscribe(), Some(Farm::MarketData)));
        tx.send_modify(|a| a.set_farm(Farm::MarketData, FarmStatus::Ok));
        assert!(held.await.unwrap());

        tx.send_modify(|a| a.silent = true);
        let held = tokio::spawn(wait_open(tx.subscribe(), None));
        tokio::task::yield_now().await;
        tx.send_modify(|a| {
            a.silent = false;
            a.data_lost += 1;
        });
        assert!(!held.await.unwrap(), "held across a 1101: never answered");
    }
}
