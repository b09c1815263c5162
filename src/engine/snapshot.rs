//! What the console draws: an immutable picture of the engine, published on a `watch`
//! channel whenever something changed (coalesced, so a burst of changes is one picture).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::journal::ActionEntry;
use crate::gateway::FarmsView;
use crate::queue::{Request, StatusCounts};

/// The state of the one gateway connection.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GatewayState {
    Connecting {
        address: String,
    },
    Connected {
        address: String,
        server_version: i32,
        account: String,
        since: DateTime<Utc>,
    },
    /// IB lost its own connectivity (1100); the socket is still open.
    Degraded {
        address: String,
        code: i32,
        message: String,
        since: DateTime<Utc>,
    },
    Reconnecting {
        address: String,
        attempt: u32,
        next_try_at: Option<DateTime<Utc>>,
        reason: String,
    },
    Disconnected {
        address: String,
        reason: String,
    },
}

impl GatewayState {
    pub fn is_connected(&self) -> bool {
        matches!(self, GatewayState::Connected { .. })
    }
}

/// The market phase (closed, pre-market, regular, post-market) and when it changes.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MarketView {
    pub phase: String,
    pub next_phase: String,
    pub next_change_at: Option<DateTime<Utc>>,
}

/// Worker counters since start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct WorkerStats {
    pub running: bool,
    pub paused: bool,
    pub processed: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retried: u64,
    pub released: u64,
    pub last_batch_at: Option<DateTime<Utc>>,
    pub last_batch_size: usize,
    pub last_batch_ms: u64,
    /// Requests completed in each of the last 60 minutes, oldest first.
    pub completed_per_minute: Vec<u64>,
    /// Exchanges served delayed market data this session (`*`: every one).
    #[serde(default)]
    pub delayed_exchanges: Vec<String>,
    /// When the worker started each request it runs now: its elapsed time and its timeout
    /// count from there (the row's own time moves with every lease renewal).
    #[serde(default)]
    pub started: std::collections::BTreeMap<uuid::Uuid, DateTime<Utc>>,
    /// `[worker] request_timeout_secs`: a run is abandoned after this long (0: unknown).
    #[serde(default)]
    pub request_timeout_secs: u64,
}

/// The market-data line budget shared by streams and snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LineBudgetView {
    pub limit: u32,
    pub margin: u32,
    pub streams: u32,
    pub snapshots: u32,
}

impl LineBudgetView {
    /// Lines anything may still take: limit less margin less what is held.
    pub fn free(&self) -> u32 {
        self.limit
            .saturating_sub(self.margin)
            .saturating_sub(self.streams + self.snapshots)
    }
}

/// Whether a leg's stream is live.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LegState {
    Subscribing,
    Streaming,
    /// The gateway ended the subscription or the connection dropped.
    Stalled {
        reason: String,
    },
}

/// One active leg with its latest quote.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LegView {
    pub conid: i32,
    pub symbol: String,
    pub sec_type: String,
    pub expiry: Option<String>,
    pub strike: Option<f64>,
    pub right: Option<String>,
    pub strategy: Option<String>,
    pub quantity: f64,
    pub bid: Option<f64>,
    pub ask: Option<f64>,
    pub last: Option<f64>,
    pub bid_size: Option<f64>,
    pub ask_size: Option<f64>,
    pub volume: Option<f64>,
    pub last_tick_at: Option<DateTime<Utc>>,
    pub state: LegState,
}

pub use crate::scheduler::view::JobView;

/// The engine's clock (the scheduler's and the market phase's) when a snapshot was taken:
/// the wall clock in production, faster under `--clock`/`--speed` and in the demo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct ClockView {
    pub now: DateTime<Utc>,
    pub speed: f64,
}

impl ClockView {
    /// The wall clock at `t`.
    pub fn wall(t: DateTime<Utc>) -> Self {
        Self { now: t, speed: 1.0 }
    }

    /// The engine's clock at wall time `wall`, for a snapshot taken at wall time `taken_at`.
    pub fn at(&self, taken_at: DateTime<Utc>, wall: DateTime<Utc>) -> DateTime<Utc> {
        let real = (wall - taken_at).num_milliseconds() as f64;
        self.now + chrono::Duration::milliseconds((real * self.speed) as i64)
    }
}

/// Everything the console shows, as of `taken_at`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub taken_at: DateTime<Utc>,
    /// The engine's clock at `taken_at`.
    pub clock: ClockView,
    pub lake: PathBuf,
    /// True when this console only observes a lake whose worker runs elsewhere.
    pub observer: bool,
    pub gateway: GatewayState,
    pub market: MarketView,
    pub worker: WorkerStats,
    pub counts: StatusCounts,
    /// PENDING requests in order of service.
    pub pending: Arc<[Arc<Request>]>,
    pub processing: Arc<[Arc<Request>]>,
    /// FAILED requests, newest first.
    pub failed: Arc<[Arc<Request>]>,
    /// The latest SUCCESS requests, newest first (`counts.success` counts them all).
    pub done: Arc<[Arc<Request>]>,
    /// What operators did, newest first (`ib_operator_actions` and this console).
    pub actions: Arc<[ActionEntry]>,
    pub lines: LineBudgetView,
    pub legs: Arc<[LegView]>,
    pub jobs: Arc<[JobView]>,
    /// A problem the engine wants the operator to see (a background task that died).
    pub alert: Option<String>,
    /// The gateway's data farms as it last reported them.
    pub farms: FarmsView,
}

impl Snapshot {
    /// An empty picture, before the engine has published anything.
    pub fn empty(lake: PathBuf, gateway_address: &str) -> Self {
        let now = Utc::now();
        Self {
            taken_at: now,
            clock: ClockView::wall(now),
            lake,
            observer: false,
            gateway: GatewayState::Connecting {
                address: gateway_address.to_string(),
            },
            market: MarketView {
                phase: "closed".into(),
                next_phase: "pre-market".into(),
                next_change_at: None,
            },
            worker: WorkerStats::default(),
            counts: StatusCounts::default(),
            pending: Arc::from(Vec::new()),
            processing: Arc::from(Vec::new()),
            failed: Arc::from(Vec::new()),
            done: Arc::from(Vec::new()),
            actions: Arc::from(Vec::new()),
            lines: LineBudgetView::default(),
            legs: Arc::from(Vec::new()),
            jobs: Arc::from(Vec::new()),
            alert: None,
            farms: FarmsView::default(),
        }
    }
}
