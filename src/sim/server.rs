//! The simulator: shared state, the accept loop, and the handle tests and tools drive it by.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use super::clock::SimClock;
use super::connection;
use super::control;
use super::farms::{Availability, Farm, FarmStatus};
use super::faults::{Faults, RequestKind};
use super::limits::{HistoricalPacing, LineBudget};
use super::portfolio::{self, PositionSpec};
use super::pricing::Market;
use super::universe::Universe;

/// Everything a simulator can be started with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Port on 127.0.0.1; 0 picks any free port.
    pub port: u16,
    /// Seed of prices, fault dice and the demo portfolio.
    pub seed: u64,
    /// Market-data lines of the account.
    pub lines: u32,
    /// Sim time at start; `None` = real time.
    pub clock_start: Option<DateTime<FixedOffset>>,
    /// Sim seconds per real second.
    pub speed: f64,
    /// Start with the market closed (stocks, index and options frozen at the last close).
    pub market_closed: bool,
    /// Control channel port on 127.0.0.1 (0 = any free port); `None` = no control channel.
    pub control_port: Option<u16>,
    /// How long a client may take to send its hello and StartApi.
    pub handshake_timeout: Duration,
    /// Interval between streaming tick updates (real time).
    pub tick_interval: Duration,
    /// Messages per second a client may send before error 100 (0 = unlimited).
    pub max_messages_per_sec: u32,
    /// The managed account id.
    pub account: String,
    /// Positions served by RequestPositions; `None` = the demo portfolio.
    pub portfolio: Option<Vec<PositionSpec>>,
    /// How long after a snapshot's data its end (TickSnapshotEnd) follows, holding the line
    /// meanwhile (real time; a gateway takes about 11 s).
    pub snapshot_end: Duration,
    /// Market-data permissions of the account.
    pub permissions: super::market_data::Permissions,
    /// Another session holds the account's live data: every market-data request gets 10197.
    pub competing_session: bool,
    /// A nightly reset answers nothing from its 1100 until its restore notice.
    pub reset_silent: bool,
    /// Accept connections but never answer their handshake (a gateway still starting).
    pub stall_handshake: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            port: 4002,
            seed: 42,
            lines: 100,
            clock_start: None,
            speed: 1.0,
            market_closed: false,
            control_port: None,
            handshake_timeout: Duration::from_secs(10),
            tick_interval: Duration::from_millis(250),
            max_messages_per_sec: 50,
            account: "DU1234567".to_string(),
            portfolio: None,
            snapshot_end: Duration::from_millis(11_000),
            permissions: super::market_data::Permissions::Live,
            competing_session: false,
            reset_silent: false,
            stall_handshake: false,
        }
    }
}

/// Counters of a running simulator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimStats {
    /// Client connections open now.
    pub connections_open: u64,
    /// Client connections accepted since start.
    pub connections_total: u64,
    /// Requests received per kind.
    pub requests: HashMap<RequestKind, u64>,
    /// Error messages sent per code.
    pub errors: HashMap<i32, u64>,
    /// Market-data lines in use now.
    pub lines_in_use: u32,
    /// Most market-data lines ever in use at once.
    pub max_lines_in_use: u32,
    /// Frames received from clients after their handshake.
    pub messages_received: u64,
    /// Market-data line-seconds held since start (lines in use integrated over time).
    pub line_seconds: f64,
    /// The account's market-data line limit.
    pub lines_limit: u32,
}

/// How many of the latest messages [`SimHandle::arrivals`] keeps.
pub const ARRIVALS_KEPT: usize = 4096;

/// One message as the simulator read it off a client's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// When it was read.
    pub at: std::time::Instant,
    /// The TWS API's outgoing message id (1 reqMktData, 2 cancelMktData, 61 reqPositions,
    /// 64 cancelPositions, ...); -1 for a frame without one.
    pub message: i32,
    /// Refused for the rate (error 100).
    pub over_rate: bool,
}

impl std::fmt::Display for SimStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connections_open={} connections_total={} messages={} lines_in_use={} max_lines={}",
            self.connections_open,
            self.connections_total,
            self.messages_received,
            self.lines_in_use,
            self.max_lines_in_use
        )?;
        for kind in RequestKind::ALL {
            write!(
                f,
                " {}={}",
                kind,
                self.requests.get(&kind).copied().unwrap_or(0)
            )?;
        }
        let mut codes: Vec<_> = self.errors.iter().collect();
        codes.sort();
        for (code, n) in codes {
            write!(f, " error_{code}={n}")?;
        }
        write!(
            f,
            " line_seconds={:.1} lines_limit={}",
            self.line_seconds, self.lines_limit
        )
    }
}

/// What the simulator tells every open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnEvent {
    /// Close the socket (gateway restart or shutdown).
    Close,
    /// Send this system notice (request id -1).
    Notice(i32),
    /// Send this farm notice (request id -1), naming the farm.
    FarmNotice(i32, Farm),
    /// Drop every market-data subscription (connectivity restored, data lost).
    DropMarketData,
}

enum ListenerCmd {
    Restart(Duration),
}

/// State shared by the accept loop, the connections, the control channel and the handle.
pub(crate) struct Shared {
    pub config: SimConfig,
    pub clock: SimClock,
    pub market: Arc<Market>,
    pub universe: Universe,
    pub lines: Mutex<LineBudget>,
    pub pacing: Mutex<HistoricalPacing>,
    pub faults: Mutex<Faults>,
    pub stats: Mutex<SimStats>,
    /// When each of the latest messages arrived, with its message id (see [`Arrival`]).
    pub arrivals: Mutex<std::collections::VecDeque<Arrival>>,
    /// Client ids in use → the connection holding each.
    pub clients: Mutex<HashMap<i32, u64>>,
    pub market_closed: AtomicBool,
    /// Between a 1100 and its restoration: streams pause.
    pub outage: AtomicBool,
    pub events: broadcast::Sender<ConnEvent>,
    /// The farms' states and whether a silent reset holds every answer.
    pub avail: watch::Sender<Availability>,
    /// New connections get no answer to their handshake.
    pub stall_handshake: AtomicBool,
    pub portfolio: Vec<PositionSpec>,
    next_connection: std::sync::atomic::AtomicU64,
}

/// Locks a mutex, recovering the data if a holder panicked (state stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub fn count_error(&self, code: i32) {
        *lock(&self.stats).errors.entry(code).or_default() += 1;
    }

    pub fn count_request(&self, kind: RequestKind) {
        *lock(&self.stats).requests.entry(kind).or_default() += 1;
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds 127.0.0.1:`config.port` (and the control port), then serves in the background
    /// until [`SimHandle::shutdown`].
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        anyhow::ensure!(
            config.speed.is_finite() && config.speed > 0.0,
            "speed must be a positive number, got {}",
            config.speed
        );
        let listener = bind(config.port).await?;
        let port = listener.local_addr()?.port();
        let clock = SimClock::new(config.clock_start, config.speed);
        let market = Arc::new(Market::new(config.seed));
        let universe = Universe::new(Arc::clone(&market), clock.clone());
        let portfolio = config
            .portfolio
            .clone()
            .unwrap_or_else(|| portfolio::demo(&market, clock.start()));
        let (events, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            clock,
            universe,
            lines: Mutex::new(LineBudget::new(config.lines)),
            pacing: Mutex::new(HistoricalPacing::default()),
            faults: Mutex::new(Faults::new(config.seed)),
            stats: Mutex::new(SimStats::default()),
            arrivals: Mutex::default(),
            clients: Mutex::new(HashMap::new()),
            market_closed: AtomicBool::new(config.market_closed),
            outage: AtomicBool::new(false),
            events,
            avail: watch::Sender::new(Availability::default()),
            stall_handshake: AtomicBool::new(config.stall_handshake),
            portfolio,
            next_connection: std::sync::atomic::AtomicU64::new(1),
            market,
            config,
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let mut tasks = vec![tokio::spawn(accept_loop(
            Arc::clone(&shared),
            listener,
            port,
            cmd_rx,
            shutdown_rx.clone(),
        ))];
        let handle_inner = Arc::new(HandleInner {
            shared: Arc::clone(&shared),
            port,
            control: Mutex::new(None),
            commands: cmd_tx,
            shutdown: shutdown_tx,
            tasks: Mutex::new(Vec::new()),
            runtime: tokio::runtime::Handle::current(),
        });
        let handle = SimHandle {
            inner: handle_inner,
        };
        if let Some(control_port) = shared.config.control_port {
            let control_listener = bind(control_port).await?;
            *lock(&handle.inner.control) = Some(control_listener.local_addr()?);
            tasks.push(tokio::spawn(control::serve(
                handle.clone(),
                control_listener,
                shutdown_rx,
            )));
        }
        *lock(&handle.inner.tasks) = tasks;
        tracing::info!(
            port,
            seed = shared.config.seed,
            lines = shared.config.lines,
            "ibq sim listening"
        );
        Ok(handle)
    }
}

async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // A restart rebinds the same port while old sockets sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    Ok(socket.listen(1024)?)
}

async fn accept_loop(
    shared: Arc<Shared>,
    mut listener: TcpListener,
    port: u16,
    mut commands: mpsc::UnboundedReceiver<ListenerCmd>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(ListenerCmd::Restart(down)) = commands.recv() => {
                if down.is_zero() {
                    continue;
                }
                // Refuse connections while "down", like a restarting gateway.
                drop(listener);
                tracing::info!(?down, "gateway restart: refusing connections");
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(down) => {}
                }
                listener = loop {
                    match bind(port).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!("rebinding after restart: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                };
                tracing::info!("gateway restart: accepting connections again");
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move { connection::serve(shared, stream, peer).await });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

struct HandleInner {
    shared: Arc<Shared>,
    port: u16,
    control: Mutex<Option<SocketAddr>>,
    commands: mpsc::UnboundedSender<ListenerCmd>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
}

/// A running simulator. Cheap to clone; every clone drives the same simulator.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("port", &self.inner.port)
            .finish()
    }
}

impl SimHandle {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// `127.0.0.1:PORT`, ready for `ibapi::Client::connect`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.inner.port)
    }

    /// `127.0.0.1:PORT` of the control channel, if one was configured.
    pub fn control_address(&self) -> Option<String> {
        lock(&self.inner.control).map(|a| a.to_string())
    }

    /// Gateway restart: closes every connection, refuses new ones for `down_for`, then
    /// accepts again.
    pub fn restart(&self, down_for: Duration) {
        tracing::info!(?down_for, "gateway restart");
        // Connections free their client ids and lines as they close.
        let _ = self.shared().events.send(ConnEvent::Close);
        let _ = self.inner.commands.send(ListenerCmd::Restart(down_for));
    }

    /// Nightly reset: 1100 on every open socket now, then `restored_code` (1101 = data lost,
    /// subscriptions dropped; 1102 = data kept) after `after`. Streams pause in between.
    /// With `SimConfig::reset_silent`, requests go unanswered meanwhile (see
    /// [`SimHandle::nightly_reset_with`]).
    pub fn nightly_reset(&self, restored_code: i32, after: Duration) {
        let silent = self.shared().config.reset_silent;
        self.nightly_reset_with(restored_code, after, silent);
    }

    /// Nightly reset; when `silent`, no request is answered from the 1100 until the restore
    /// notice: then the held answers go out after a 1102 and are never sent after a 1101
    /// (data lost).
    pub fn nightly_reset_with(&self, restored_code: i32, after: Duration, silent: bool) {
        let shared = Arc::clone(&self.inner.shared);
        shared.outage.store(true, Ordering::SeqCst);
        if silent {
            shared.avail.send_modify(|a| a.silent = true);
        }
        let _ = shared.events.send(ConnEvent::Notice(1100));
        self.inner.runtime.spawn(async move {
            tokio::time::sleep(after).await;
            if restored_code == 1101 {
                let _ = shared.events.send(ConnEvent::DropMarketData);
            }
            shared.outage.store(false, Ordering::SeqCst);
            let _ = shared.events.send(ConnEvent::Notice(restored_code));
            shared.avail.send_modify(|a| {
                if a.silent {
                    a.silent = false;
                    if restored_code == 1101 {
                        a.data_lost += 1;
                    }
                }
            });
        });
    }

    /// Breaks, restores, idles or reconnects a data farm, announcing it on every open
    /// connection with the gateway's code. While the market-data farm is broken or
    /// connecting, streams pause and market-data requests wait for it.
    pub fn set_farm(&self, farm: Farm, status: FarmStatus) -> Result<i32, String> {
        let code = farm.code(status).ok_or_else(|| {
            format!(
                "a gateway sends no notice for the {} farm being {status:?}",
                farm.name()
            )
        })?;
        self.shared()
            .avail
            .send_modify(|a| a.set_farm(farm, status));
        let _ = self.shared().events.send(ConnEvent::FarmNotice(code, farm));
        Ok(code)
    }

    /// New connections from now on get no answer to their handshake (`false`: answered again).
    pub fn set_stall_handshake(&self, stall: bool) {
        self.shared().stall_handshake.store(stall, Ordering::SeqCst);
    }

    /// Fails each request of `kind` with probability `rate` (its usual error code:
    /// contract_details/sec_def_opt_params 200, market_data 10197, historical_data 162,
    /// positions/current_time 322).
    pub fn set_error_rate(&self, kind: RequestKind, rate: f64) {
        lock(&self.shared().faults).set_error_rate(kind, rate);
    }

    /// Delays every answer to requests of `kind`.
    pub fn set_latency(&self, kind: RequestKind, latency: Duration) {
        lock(&self.shared().faults).set_latency(kind, latency);
    }

    /// Fails the next `count` requests of `kind` with error `code`.
    pub fn fail_next(&self, kind: RequestKind, count: u32, code: i32) {
        lock(&self.shared().faults).fail_next(kind, count, code);
    }

    /// Opens or closes the market: closed, stocks, the index and options are frozen at the
    /// last 16:00 close and served with market data type 2 (frozen); futures keep trading.
    pub fn set_market_closed(&self, closed: bool) {
        self.shared().market_closed.store(closed, Ordering::SeqCst);
    }

    /// Counters.
    /// The latest messages clients sent (at most [`ARRIVALS_KEPT`]), oldest first.
    pub fn arrivals(&self) -> Vec<Arrival> {
        lock(&self.shared().arrivals).iter().copied().collect()
    }

    pub fn stats(&self) -> SimStats {
        let mut stats = lock(&self.shared().stats).clone();
        let lines = lock(&self.shared().lines);
        stats.lines_in_use = lines.in_use();
        stats.max_lines_in_use = lines.max_in_use();
        stats.line_seconds = lines.line_seconds();
        stats.lines_limit = lines.limit();
        stats
    }

    /// The sim clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared().clock.now()
    }

    /// The contract universe (conids, listed futures and options) on the sim clock.
    pub fn universe(&self) -> Universe {
        self.shared().universe.clone()
    }

    /// The positions RequestPositions serves.
    pub fn portfolio(&self) -> Vec<PositionSpec> {
        self.shared().portfolio.clone()
    }

    /// Stops listening, closes every connection and waits for the background tasks.
    pub async fn shutdown(self) {
        let _ = self.inner.shutdown.send(true);
        let _ = self.shared().events.send(ConnEvent::Close);
        let tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        for task in tasks {
            let _ = task.await;
        }
    }
}
