//! The gateway's data farms and its link to IB's servers, as the simulator models them: the
//! farm notices a gateway sends (at connect, and when a farm breaks or comes back), and the
//! gate that holds answers while the market-data farm or the link is down (docs/SIM.md,
//! *Farms* and *Nightly reset*).

use std::str::FromStr;

use tokio::sync::watch;

/// The farms a gateway reports on: one of each kind, named as IB names its US farms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Farm {
    /// Live market data (`usfarm`).
    MarketData,
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

impl Farm {
    pub const ALL: [Farm; 3] = [Farm::MarketData, Farm::Historical, Farm::SecDef];

    /// The name the CLI and the control channel use.
    pub fn name(self) -> &'static str {
        match self {
            Farm::MarketData => "market_data",
            Farm::Historical => "historical",
            Farm::SecDef => "sec_def",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The code a gateway sends for this farm in `status`; `None` where IB has none (only
    /// the market-data farm reports "connecting"; the sec-def farm is never "inactive").
    pub fn code(self, status: FarmStatus) -> Option<i32> {
        use FarmStatus::*;
        match (self, status) {
            (Farm::MarketData, Ok) => Some(2104),
            (Farm::MarketData, Broken) => Some(2103),
            (Farm::MarketData, Inactive) => Some(2108),
            (Farm::MarketData, Connecting) => Some(2119),
            (Farm::Historical, Ok) => Some(2106),
            (Farm::Historical, Broken) => Some(2105),
            (Farm::Historical, Inactive) => Some(2107),
            (Farm::SecDef, Ok) => Some(2158),
            (Farm::SecDef, Broken) => Some(2157),
            _ => None,
        }
    }
}

impl FromStr for Farm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Farm::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown farm {s:?} (expected market_data, historical or sec_def)")
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
    pub farms: [FarmStatus; 3],
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

    /// Whether market data flows: its farm is connected, or idle and connected on demand.
    pub fn market_data_up(&self) -> bool {
        matches!(
            self.farm(Farm::MarketData),
            FarmStatus::Ok | FarmStatus::Inactive
        )
    }

    /// Whether an answer (a market-data one when `market_data`) may go now.
    pub fn open(&self, market_data: bool) -> bool {
        !self.silent && (!market_data || self.market_data_up())
    }
}

/// Waits until an answer may go; false when a restore that lost data (1101) came meanwhile,
/// and the answer is never sent.
pub async fn wait_open(mut rx: watch::Receiver<Availability>, market_data: bool) -> bool {
    let epoch = rx.borrow().data_lost;
    match rx.wait_for(|a| a.open(market_data)).await {
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
        for farm in Farm::ALL {
            assert_eq!(farm.name().parse::<Farm>(), Ok(farm));
        }
        assert!("usfarm".parse::<Farm>().is_err());
    }

    #[tokio::test]
    async fn answers_wait_for_the_market_data_farm_and_a_lossy_restore_drops_them() {
        let (tx, _) = watch::channel(Availability::default());
        tx.send_modify(|a| a.set_farm(Farm::MarketData, FarmStatus::Broken));
        assert!(tx.borrow().open(false) && !tx.borrow().open(true));
        let held = tokio::spawn(wait_open(tx.subscribe(), true));
        tx.send_modify(|a| a.set_farm(Farm::MarketData, FarmStatus::Ok));
        assert!(held.await.unwrap());

        tx.send_modify(|a| a.silent = true);
        let held = tokio::spawn(wait_open(tx.subscribe(), false));
        tokio::task::yield_now().await;
        tx.send_modify(|a| {
            a.silent = false;
            a.data_lost += 1;
        });
        assert!(!held.await.unwrap(), "held across a 1101: never answered");
    }
}
