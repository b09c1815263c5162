//! The request as the queue table stores it: the columns of the system ibq replaces plus
//! what the worker and the operator need (attempts, backoff, lease, who changed it last).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::market::window::During;

/// What a request asks the gateway (or the lake) for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    OptionChain,
    FuturesSnapshot,
    MarketBars,
    PositionUpdate,
    DerivedStats,
    /// The type of a row another program appended that names no type ibq knows. Only a
    /// FAILED `rejected` row carries it; it is never enqueued or run.
    Unknown,
}

impl RequestType {
    pub const ALL: [RequestType; 5] = [
        RequestType::OptionChain,
        RequestType::FuturesSnapshot,
        RequestType::MarketBars,
        RequestType::PositionUpdate,
        RequestType::DerivedStats,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::OptionChain => "option_chain",
            RequestType::FuturesSnapshot => "futures_snapshot",
            RequestType::MarketBars => "market_bars",
            RequestType::PositionUpdate => "position_update",
            RequestType::DerivedStats => "derived_stats",
            RequestType::Unknown => "unknown",
        }
    }

    /// The Delta table the worker writes this type's results to.
    pub fn result_table(self) -> &'static str {
        match self {
            RequestType::OptionChain => "option_snapshots",
            RequestType::FuturesSnapshot => "futures_snapshots",
            RequestType::MarketBars => "market_bars",
            RequestType::PositionUpdate => "position_updates",
            RequestType::DerivedStats => "derived_stats",
            RequestType::Unknown => "",
        }
    }
}

impl fmt::Display for RequestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = RequestType::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown request type `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Where a request is in its life. The newest row of a request carries its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    Processing,
    Success,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Processing,
        Status::Success,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Processing => "PROCESSING",
            Status::Success => "SUCCESS",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
        }
    }

    /// PENDING and PROCESSING requests are still to be served.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::Processing)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == upper)
            .ok_or_else(|| {
                format!("unknown status `{s}` (expected PENDING, PROCESSING, SUCCESS, FAILED or CANCELLED)")
            })
    }
}

/// 1 immediate, 2 normal, 3 background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Priority(u8);

impl Priority {
    pub const IMMEDIATE: Priority = Priority(1);
    pub const NORMAL: Priority = Priority(2);
    pub const BACKGROUND: Priority = Priority(3);

    pub fn get(self) -> u8 {
        self.0
    }

    /// One step more urgent (towards 1), saturating.
    pub fn raised(self) -> Priority {
        Priority(self.0.saturating_sub(1).max(1))
    }

    /// One step less urgent (towards 3), saturating.
    pub fn lowered(self) -> Priority {
        Priority((self.0 + 1).min(3))
    }
}

impl TryFrom<i64> for Priority {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        match v {
            1..=3 => Ok(Priority(v as u8)),
            _ => Err(format!(
                "priority must be 1 (immediate), 2 (normal) or 3 (background), got {v}"
            )),
        }
    }
}

impl From<Priority> for i64 {
    fn from(p: Priority) -> i64 {
        p.0 as i64
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: i64 = s
            .trim()
            .parse()
            .map_err(|_| format!("priority must be 1, 2 or 3, got `{s}`"))?;
        Priority::try_from(v)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who made the change a row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Scheduler,
    Operator,
    Worker,
    /// Another Delta writer (a Python script, a notebook) appended the row.
    External,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Scheduler => "scheduler",
            Actor::Operator => "operator",
            Actor::Worker => "worker",
            Actor::External => "external",
        }
    }
}

impl FromStr for Actor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scheduler" => Ok(Actor::Scheduler),
            "operator" => Ok(Actor::Operator),
            "worker" => Ok(Actor::Worker),
            "external" => Ok(Actor::External),
            _ => Err(format!("unknown actor `{s}`")),
        }
    }
}

/// The state change a row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Enqueued,
    Claimed,
    Succeeded,
    Failed,
    /// An automatic retry after a retryable failure: back to PENDING with a backoff.
    RetryScheduled,
    /// A manual retry by the operator: FAILED back to PENDING.
    Retried,
    Reprioritized,
    Cancelled,
    /// FAILED → CANCELLED by the operator: a failure that will never succeed, put aside with
    /// a reason (`result_data.dismiss_reason`).
    Dismissed,
    /// PROCESSING back to PENDING without counting an attempt (lost connection, expired
    /// lease, shutdown).
    Released,
    /// A row another program appended that ibq could not accept (bad type or parameters).
    Rejected,
    /// The worker still runs the request and extended its lease.
    LeaseRenewed,
    /// Due, but outside its market-hours window: it waits PENDING until the window opens
    /// (`next_attempt_at`).
    Held,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Enqueued => "enqueued",
            Event::Claimed => "claimed",
            Event::Succeeded => "succeeded",
            Event::Failed => "failed",
            Event::RetryScheduled => "retry_scheduled",
            Event::Retried => "retried",
            Event::Reprioritized => "reprioritized",
            Event::Cancelled => "cancelled",
            Event::Dismissed => "dismissed",
            Event::Released => "released",
            Event::Rejected => "rejected",
            Event::LeaseRenewed => "lease_renewed",
            Event::Held => "held",
        }
    }
}

impl FromStr for Event {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| format!("unknown event `{s}`"))
    }
}

/// A request as it stands after its newest change; also one row of `ib_request_queue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub request_id: Uuid,
    pub request_type: RequestType,
    pub symbol: String,
    pub priority: Priority,
    pub status: Status,
    /// Canonical JSON of the typed parameters (defaults filled in).
    pub parameters: serde_json::Value,
    pub result_table: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub result_data: Option<serde_json::Value>,
    pub error_message: Option<String>,
    /// Attempts the worker has made (claims that ended in success or failure).
    pub attempts: u32,
    /// Failures counted against the retry limit; a manual retry resets it.
    pub failures: u32,
    /// Not served before this time (backoff after a retryable failure).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub changed_by: Actor,
    pub event: Event,
    /// Order of rows written by the owning process; rows from other writers have none.
    pub seq: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The scheduler occurrence that created this request, so a restart never repeats it.
    pub schedule_key: Option<String>,
    /// The market-hours window the request may run in (`any` when the column is null).
    #[serde(default)]
    pub during: During,
}

impl Request {
    /// True when the worker may claim it at `now`, its window aside.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Pending && self.next_attempt_at.is_none_or(|t| t <= now)
    }

    /// When a PENDING request held to a market-hours window runs at the earliest: the
    /// window's next start as the queue recorded it (a retry's backoff is not a wait for the
    /// window).
    pub fn window_wait(&self) -> Option<DateTime<Utc>> {
        let held = self.status == Status::Pending
            && self.during != During::Any
            && self.event != Event::RetryScheduled;
        self.next_attempt_at.filter(|_| held)
    }

    /// The identity used to refuse duplicates: type, symbol and canonical parameters.
    pub fn dedup_key(&self) -> DedupKey {
        DedupKey::new(self.request_type, &self.symbol, &self.parameters)
    }
}

/// Type, symbol and canonical parameters: two open requests never share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey(String);

impl DedupKey {
    pub fn new(request_type: RequestType, symbol: &str, parameters: &serde_json::Value) -> Self {
        // serde_json keeps object keys sorted (no preserve_order feature), so the text is
        // canonical for equal parameter sets.
        DedupKey(format!("{request_type}|{symbol}|{parameters}"))
    }
}
