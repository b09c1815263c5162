//! Faults injected on demand: error rates, latency and "fail the next N" per request kind.

use std::str::FromStr;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The kinds of request a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// RequestContractData.
    ContractDetails,
    /// RequestMarketData (streaming and snapshot).
    MarketData,
    /// RequestHistoricalData.
    HistoricalData,
    /// RequestPositions.
    Positions,
    /// RequestSecDefOptParams.
    SecDefOptParams,
    /// RequestCurrentTime.
    CurrentTime,
}

impl RequestKind {
    /// Every kind, in a stable order.
    pub const ALL: [RequestKind; 6] = [
        Self::ContractDetails,
        Self::MarketData,
        Self::HistoricalData,
        Self::Positions,
        Self::SecDefOptParams,
        Self::CurrentTime,
    ];

    /// The snake_case name used by the CLI and the control channel.
    pub fn name(self) -> &'static str {
        match self {
            Self::ContractDetails => "contract_details",
            Self::MarketData => "market_data",
            Self::HistoricalData => "historical_data",
            Self::Positions => "positions",
            Self::SecDefOptParams => "sec_def_opt_params",
            Self::CurrentTime => "current_time",
        }
    }

    /// The error code a random fault of this kind sends (the one a gateway sends most often).
    pub fn default_error_code(self) -> i32 {
        match self {
            Self::ContractDetails | Self::SecDefOptParams => 200,
            Self::MarketData => 10197,
            Self::HistoricalData => 162,
            Self::Positions | Self::CurrentTime => 322,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A request kind name that is not one of [`RequestKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown request kind {0:?} (expected contract_details, market_data, historical_data, positions, sec_def_opt_params or current_time)")]
pub struct UnknownKind(pub String);

impl FromStr for RequestKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// The gateway's text for the error codes the simulator sends.
pub fn error_text(code: i32) -> &'static str {
    match code {
        100 => "Max rate of messages per second has been exceeded:max=50",
        101 => "Max number of tickers has been reached",
        162 => "Historical Market Data Service error message:API historical data query cancelled",
        200 => "No security definition has been found for the request",
        300 => "Can't find EId with tickerId",
        320 => "Server error when reading an API client request.",
        321 => "Error validating request.",
        322 => "Error processing request.",
        326 => {
            "Unable to connect as the client id is already in use. Retry with a unique client id."
        }
        354 => "Requested market data is not subscribed.",
        1100 => "Connectivity between IB and Trader Workstation has been lost.",
        1101 => "Connectivity between IB and Trader Workstation has been restored - data lost.",
        1102 => {
            "Connectivity between IB and Trader Workstation has been restored - data maintained."
        }
        2103 => "Market data farm connection is broken:usfarm",
        2104 => "Market data farm connection is OK:usfarm",
        2105 => "HMDS data farm connection is broken:ushmds",
        2106 => "HMDS data farm connection is OK:ushmds",
        2107 => "HMDS data farm connection is inactive but should be available upon demand.ushmds",
        2108 => {
            "Market data farm connection is inactive but should be available upon demand.usfarm"
        }
        2119 => "Market data farm is connecting:usfarm",
        2157 => "Sec-def data farm connection is broken:secdefnj",
        2158 => "Sec-def data farm connection is OK:secdefnj",
        10197 => "No market data during competing live session",
        _ => "Simulated gateway error",
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct KindFaults {
    error_rate: f64,
    latency: Duration,
    fail_next: u32,
    fail_code: i32,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Answer with this error code instead of data.
    pub error: Option<i32>,
    /// Delay the answer this long.
    pub latency: Duration,
}

/// The fault settings of every kind, and the seeded dice for error rates.
#[derive(Debug)]
pub struct Faults {
    kinds: [KindFaults; 6],
    rng: ChaCha8Rng,
}

impl Faults {
    /// No faults; error-rate dice seeded from `seed` so runs repeat.
    pub fn new(seed: u64) -> Self {
        Self {
            kinds: [KindFaults::default(); 6],
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xFA17),
        }
    }

    /// Fails each request of `kind` with probability `rate` (clamped to 0..=1).
    pub fn set_error_rate(&mut self, kind: RequestKind, rate: f64) {
        self.kinds[kind.index()].error_rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
    }

    /// Delays every answer of `kind`.
    pub fn set_latency(&mut self, kind: RequestKind, latency: Duration) {
        self.kinds[kind.index()].latency = latency;
    }

    /// Fails the next `count` requests of `kind` with `code`.
    pub fn fail_next(&mut self, kind: RequestKind, count: u32, code: i32) {
        let k = &mut self.kinds[kind.index()];
        k.fail_next = count;
        k.fail_code = code;
    }

    /// Decides the fate of one request of `kind`.
    pub fn decide(&mut self, kind: RequestKind) -> Verdict {
        let k = &mut self.kinds[kind.index()];
        let error = if k.fail_next > 0 {
            k.fail_next -= 1;
            Some(k.fail_code)
        } else if k.error_rate > 0.0 && self.rng.gen_bool(k.error_rate) {
            Some(kind.default_error_code())
        } else {
            None
        };
        Verdict {
            error,
            latency: k.latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_counts_down() {
        let mut f = Faults::new(1);
        f.fail_next(RequestKind::HistoricalData, 2, 162);
        assert_eq!(f.decide(RequestKind::HistoricalData).error, Some(162));
        assert_eq!(f.decide(RequestKind::MarketData).error, None);
        assert_eq!(f.decide(RequestKind::HistoricalData).error, Some(162));
        assert_eq!(f.decide(RequestKind::HistoricalData).error, None);
        f.set_error_rate(RequestKind::Positions, 1.0);
        assert_eq!(f.decide(RequestKind::Positions).error, Some(322));
    }

    #[test]
    fn kinds_parse_by_name() {
        for kind in RequestKind::ALL {
            assert_eq!(kind.name().parse::<RequestKind>(), Ok(kind));
        }
        assert!("orders".parse::<RequestKind>().is_err());
    }
}
