//! The `[scheduler]` section of `ibq.toml`.
//!
//! This is the file format only: strings stay strings here so that a bad job is reported by
//! [`super::schedule::Schedule::from_config`] with the job's name, rather than as a bare
//! serde type error. The documented defaults live in `assets/ibq.default.toml` and must equal
//! the `Default` impls below (a config test checks it).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The scheduler: whether it runs, the exchange-decided calendar exceptions and the jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// When false nothing is enqueued (the plan can still be printed).
    pub enabled: bool,
    /// Full closures decided by the exchange, not computable by rule ("YYYY-MM-DD", New York).
    pub extra_closures: Vec<NaiveDate>,
    /// 13:00 early closes decided by the exchange outside the rules.
    pub extra_early_closes: Vec<NaiveDate>,
    /// The jobs, `[[scheduler.jobs]]`.
    pub jobs: Vec<JobConfig>,
}

/// One `[[scheduler.jobs]]` entry, unvalidated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Unique name; part of every occurrence key, so renaming a job re-enqueues its slots.
    pub name: String,
    /// Request type: option_chain, futures_snapshot, market_bars, position_update, derived_stats.
    #[serde(rename = "type")]
    pub request_type: String,
    /// One request per symbol; may be empty for position_update and derived_stats.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Copied into each request as a JSON object.
    #[serde(default)]
    pub parameters: toml::Table,
    /// 1 immediate, 2 normal, 3 background.
    #[serde(default = "normal_priority")]
    pub priority: i64,
    /// Time of day, New York ("08:30" or "08:30:15"), on every trading day. Excludes `every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Interval ("30s", "5m", "1h") within the phase named by `during`. Excludes `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// The phase an `every` job runs in: pre_market, regular or post_market.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<String>,
}

fn normal_priority() -> i64 {
    2
}

impl crate::market::calendar::MarketCalendar {
    /// The calendar described by the `[scheduler]` section.
    pub fn from_config(config: &SchedulerConfig) -> Self {
        Self::new(
            config.extra_closures.iter().copied(),
            config.extra_early_closes.iter().copied(),
        )
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        let indices = ["SPY", "QQQ", "IWM"];
        let futures = ["ES", "NQ", "RTY"];
        let table = |pairs: &[(&str, toml::Value)]| -> toml::Table {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let job = |name: &str, ty: &str, symbols: &[&str], priority: i64| JobConfig {
            name: name.into(),
            request_type: ty.into(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            parameters: toml::Table::new(),
            priority,
            at: None,
            every: None,
            during: None,
        };
        let at = |mut j: JobConfig, time: &str| {
            j.at = Some(time.into());
            j
        };
        let every = |mut j: JobConfig, interval: &str| {
            j.every = Some(interval.into());
            j.during = Some("regular".into());
            j
        };
        let mut bars = at(job("bars_morning", "market_bars", &indices, 3), "08:30");
        bars.parameters = table(&[("duration", "5 D".into()), ("bar_size", "1 day".into())]);
        let mut chains = every(
            job("option_chain_regular", "option_chain", &indices, 2),
            "5m",
        );
        chains.parameters = table(&[("target_dte", 45.into())]);
        Self {
            enabled: true,
            // The one exchange-decided closure known when this was written; add new ones here.
            extra_closures: vec![NaiveDate::from_ymd_opt(2025, 1, 9).expect("valid date")],
            extra_early_closes: Vec::new(),
            jobs: vec![
                bars,
                at(
                    job("futures_morning", "futures_snapshot", &futures, 2),
                    "08:30",
                ),
                chains,
                every(
                    job("futures_regular", "futures_snapshot", &futures, 2),
                    "5m",
                ),
                every(job("positions_regular", "position_update", &[], 2), "30s"),
                at(job("derived_stats_close", "derived_stats", &[], 3), "16:30"),
            ],
        }
    }
}
