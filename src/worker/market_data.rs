//! Which market data the worker asks for: `[market_data] type` live, delayed or auto. Under
//! auto it asks for live data; an exchange the account has no live subscription for (IB's
//! 10089, 354 or 10168) switches to delayed data for the rest of the session, said once in
//! the log and shown in the console header.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// `[market_data] type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketDataMode {
    /// Live data only; an exchange without a live subscription fails its requests.
    Live,
    /// Delayed data wherever live data is not subscribed (reqMarketDataType(3)).
    Delayed,
    /// Live data, switching an exchange to delayed when the account has no live subscription.
    #[default]
    Auto,
}

/// Codes that say the account has no live subscription for a request's market data.
pub const NO_LIVE_CODES: &[i32] = &[10089, 354, 10168];

/// Codes that say a subscription is missing: no retry can help.
pub const PERMISSION_CODES: &[i32] = &[10089, 354, 10168, 10090];

/// The session's choice of market data.
#[derive(Debug, Default)]
pub struct MarketDataChoice {
    pub mode: MarketDataMode,
    /// Exchanges switched to delayed under auto.
    delayed: Mutex<BTreeSet<String>>,
    /// The connection (client address) reqMarketDataType(3) was sent on.
    sent_on: Mutex<Option<usize>>,
}

impl MarketDataChoice {
    pub fn new(mode: MarketDataMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// Whether quotes on `exchange` ask for delayed data.
    pub fn delayed_for(&self, exchange: &str) -> bool {
        match self.mode {
            MarketDataMode::Delayed => true,
            MarketDataMode::Live => false,
            MarketDataMode::Auto => lock(&self.delayed).contains(exchange),
        }
    }

    /// Under auto, switches `exchange` to delayed; true the first time (and then only).
    pub fn switch_to_delayed(&self, exchange: &str) -> bool {
        self.mode == MarketDataMode::Auto && lock(&self.delayed).insert(exchange.to_string())
    }

    /// Exchanges on delayed data (every one under `delayed`, shown as `*`).
    pub fn delayed_exchanges(&self) -> Vec<String> {
        match self.mode {
            MarketDataMode::Delayed => vec!["*".to_string()],
            MarketDataMode::Live => Vec::new(),
            MarketDataMode::Auto => lock(&self.delayed).iter().cloned().collect(),
        }
    }

    /// True when reqMarketDataType(3) still has to be sent on the connection `client`.
    pub fn needs_type_sent(&self, client: usize) -> bool {
        *lock(&self.sent_on) != Some(client)
    }

    pub fn type_sent(&self, client: usize) {
        *lock(&self.sent_on) = Some(client);
    }
}

/// What a refusal means for the trader: the subscription that is missing.
pub fn missing_subscription(code: i32, exchange: &str) -> String {
    match code {
        10089 => format!(
            "no live market-data subscription for {exchange} (delayed data is available: set [market_data] type = \"auto\" or \"delayed\")"
        ),
        354 => format!("no market-data subscription for {exchange}"),
        10168 => format!(
            "no live market-data subscription for {exchange}, and delayed market data is not enabled for the account"
        ),
        10090 => format!("part of the market data for {exchange} is not subscribed"),
        _ => format!("market data for {exchange} is not permitted"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_switches_an_exchange_once_and_live_never() {
        let auto = MarketDataChoice::new(MarketDataMode::Auto);
        assert!(!auto.delayed_for("SMART"));
        assert!(auto.switch_to_delayed("SMART"));
        assert!(!auto.switch_to_delayed("SMART"), "said once");
        assert!(auto.delayed_for("SMART") && !auto.delayed_for("CME"));
        assert_eq!(auto.delayed_exchanges(), vec!["SMART".to_string()]);
        let live = MarketDataChoice::new(MarketDataMode::Live);
        assert!(!live.switch_to_delayed("SMART") && !live.delayed_for("SMART"));
        assert!(MarketDataChoice::new(MarketDataMode::Delayed).delayed_for("CME"));
        let parsed: MarketDataMode = serde_json::from_str("\"auto\"").unwrap();
        assert_eq!(parsed, MarketDataMode::Auto);
        assert!(missing_subscription(10168, "CME").contains("delayed market data is not enabled"));
    }
}
