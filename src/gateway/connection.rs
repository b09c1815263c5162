//! The supervisor of the one `ibapi` connection: connects (with a timeout, since `ibapi`
//! has none), publishes the connection state, follows IB's connectivity notices (1100
//! degraded, 1101 restored with data lost, 1102 restored) and the data farms' notices
//! (see [`super::farms`]), notices `ibapi`'s own reconnects, and connects anew when `ibapi`
//! gives up or the operator asks.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use ibapi::Client;
use tokio::sync::{broadcast, watch, Notify};

use super::farms::{Farms, FarmsView};
use super::pace::Pace;
use crate::engine::GatewayState;

/// How the connection is made.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub address: String,
    pub client_id: i32,
    pub max_messages_per_sec: u32,
    pub connect_timeout: Duration,
    /// Longest wait between two connection attempts.
    pub max_backoff: Duration,
}

/// Why subscriptions must be placed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resubscribe {
    /// `ibapi` reconnected the socket (gateway restart).
    Reconnected,
    /// IB restored connectivity but dropped market data (1101).
    DataLost,
    /// A new client replaced the old one.
    NewClient,
}

pub struct Gateway {
    settings: GatewaySettings,
    state: watch::Sender<GatewayState>,
    client: RwLock<Option<Arc<Client>>>,
    resubscribe: broadcast::Sender<Resubscribe>,
    reconnect_now: Notify,
    shutdown: Notify,
    farms: std::sync::Mutex<Farms>,
    farms_view: watch::Sender<FarmsView>,
    pace: Arc<Pace>,
}

impl Gateway {
    /// Starts the supervisor task; the connection is made in the background.
    pub fn start(settings: GatewaySettings) -> Arc<Self> {
        let (state, _) = watch::channel(GatewayState::Connecting {
            address: settings.address.clone(),
        });
        let (resubscribe, _) = broadcast::channel(16);
        let gateway = Arc::new(Self {
            state,
            client: RwLock::new(None),
            resubscribe,
            reconnect_now: Notify::new(),
            shutdown: Notify::new(),
            farms: std::sync::Mutex::new(Farms::default()),
            farms_view: watch::Sender::new(FarmsView::default()),
            pace: Arc::new(Pace::new(settings.max_messages_per_sec.max(1))),
            settings,
        });
        tokio::spawn(Arc::clone(&gateway).supervise());
        gateway
    }

    pub fn address(&self) -> &str {
        &self.settings.address
    }

    /// The message rate the client keeps to (its rate limiter's).
    pub fn max_messages_per_sec(&self) -> u32 {
        self.settings.max_messages_per_sec.max(1)
    }

    /// The pace every message on the connection keeps (see [`super::pace`]).
    pub fn pace(&self) -> &Arc<Pace> {
        &self.pace
    }

    /// The client while connected (not while `ibapi` is reconnecting or IB is degraded
    /// the client is still returned: requests then fail and are retried).
    pub fn client(&self) -> Option<Arc<Client>> {
        let c = self
            .client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        c.is_connected().then_some(c)
    }

    pub fn state(&self) -> watch::Receiver<GatewayState> {
        self.state.subscribe()
    }

    pub fn current_state(&self) -> GatewayState {
        self.state.borrow().clone()
    }

    /// The data farms as the gateway last reported them.
    pub fn farms(&self) -> watch::Receiver<FarmsView> {
        self.farms_view.subscribe()
    }

    pub fn current_farms(&self) -> FarmsView {
        self.farms_view.borrow().clone()
    }

    /// Takes a farm notice (any other code is ignored) and publishes a change.
    fn farm_notice(&self, code: i32, message: &str) {
        let mut farms = self.farms.lock().unwrap_or_else(|p| p.into_inner());
        if farms.apply(code, message, Utc::now()) {
            let view = farms.view().clone();
            let down: Vec<String> = view.down().map(|f| f.name.clone()).collect();
            if down.is_empty() {
                tracing::info!(code, "data farms: every farm serves");
            } else {
                tracing::warn!(code, down = %down.join(","), "data farm down");
            }
            self.farms_view.send_replace(view);
        }
    }

    /// A new session reports its own farms.
    fn forget_farms(&self) {
        let mut farms = self.farms.lock().unwrap_or_else(|p| p.into_inner());
        farms.clear();
        self.farms_view.send_replace(farms.view().clone());
    }

    /// Wakes on every event after which streaming subscriptions must be placed again.
    pub fn resubscribe_events(&self) -> broadcast::Receiver<Resubscribe> {
        self.resubscribe.subscribe()
    }

    /// Drops the connection and connects again now.
    pub fn reconnect(&self) {
        self.reconnect_now.notify_one();
    }

    /// Stops the supervisor and disconnects.
    pub async fn shutdown(&self) {
        self.shutdown.notify_one();
        let client = self
            .client
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(c) = client {
            c.disconnect().await;
        }
    }

    fn set(&self, s: GatewayState) {
        if *self.state.borrow() != s {
            tracing::info!(gateway = ?s, "gateway state");
            self.state.send_replace(s);
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        // 1, 1, 2, 3, 5, 8 ... seconds, like ibapi's own reconnects, capped.
        let (mut a, mut b) = (1u64, 1u64);
        for _ in 1..attempt.min(30) {
            (a, b) = (b, a + b);
        }
        Duration::from_secs(a).min(self.settings.max_backoff)
    }

    async fn supervise(self: Arc<Self>) {
        let address = self.settings.address.clone();
        let mut attempt = 0u32;
        let mut first = true;
        loop {
            let connect = Client::builder()
                .address(address.as_str())
                .client_id(self.settings.client_id)
                .rate_limiter(ibapi::RateLimiter::per_second(
                    self.settings.max_messages_per_sec.max(1),
                ))
                .connect_with_notice_stream();
            let outcome = tokio::select! {
                _ = self.shutdown.notified() => return,
                r = tokio::time::timeout(self.settings.connect_timeout, connect) => r,
            };
            let reason = match outcome {
                Ok(Ok((client, notices))) => {
                    attempt = 0;
                    self.forget_farms();
                    let client = Arc::new(client);
                    *self.client.write().unwrap_or_else(|p| p.into_inner()) =
                        Some(Arc::clone(&client));
                    self.set_connected(&client);
                    if !first {
                        let _ = self.resubscribe.send(Resubscribe::NewClient);
                    }
                    first = false;
                    let reason = self.follow(&client, notices).await;
                    *self.client.write().unwrap_or_else(|p| p.into_inner()) = None;
                    client.disconnect().await;
                    match reason {
                        None => return, // shutdown
                        Some(r) => r,
                    }
                }
                Ok(Err(e)) => format!("cannot connect to {address}: {e}"),
                // The port may well accept the socket: a gateway still starting, or one
                // whose API thread hangs, never answers the handshake.
                Err(_) => format!(
                    "cannot connect to {address}: no API handshake within {} s",
                    self.settings.connect_timeout.as_secs_f64()
                ),
            };
            attempt += 1;
            let wait = self.backoff(attempt);
            tracing::warn!(%reason, attempt, retry_in_s = wait.as_secs(), "gateway connection");
            self.set(GatewayState::Reconnecting {
                address: address.clone(),
                attempt,
                next_try_at: Some(
                    Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                ),
                reason,
            });
            tokio::select! {
                _ = self.shutdown.notified() => return,
                _ = self.reconnect_now.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn set_connected(&self, client: &Client) {
        self.set(GatewayState::Connected {
            address: self.settings.address.clone(),
            server_version: client.server_version(),
            account: client
                .handshake_managed_accounts()
                .first()
                .cloned()
                .unwrap_or_default(),
            since: Utc::now(),
        });
    }

    /// Follows one client until it is lost (returns why) or shutdown (returns None).
    async fn follow(
        &self,
        client: &Client,
        mut notices: ibapi::subscriptions::NoticeStream,
    ) -> Option<String> {
        let address = self.settings.address.clone();
        let mut was_connected = true;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = self.shutdown.notified() => return None,
                _ = self.reconnect_now.notified() => return Some("reconnect requested by the operator".into()),
                notice = notices.next() => {
                    let Some(n) = notice else {
                        return Some("the connection ended (ibapi stopped reconnecting)".into());
                    };
                    match n.code {
                        1100 => self.set(GatewayState::Degraded {
                            address: address.clone(),
                            code: n.code,
                            message: n.message.clone(),
                            since: Utc::now(),
                        }),
                        1101 | 1102 => {
                            self.set_connected(client);
                            if n.code == 1101 {
                                let _ = self.resubscribe.send(Resubscribe::DataLost);
                            }
                        }
                        ibapi::TRANSPORT_RECONNECT_CODE => {
                            self.set_connected(client);
                            was_connected = true;
                            let _ = self.resubscribe.send(Resubscribe::Reconnected);
                        }
                        code => self.farm_notice(code, &n.message),
                    }
                    tracing::info!(code = n.code, message = %n.message, "gateway notice");
                }
                _ = tick.tick() => {
                    let connected = client.is_connected();
                    if !connected && was_connected {
                        self.set(GatewayState::Reconnecting {
                            address: address.clone(),
                            attempt: 1,
                            next_try_at: None,
                            reason: "connection lost; ibapi is reconnecting".into(),
                        });
                    } else if connected && !was_connected {
                        self.set_connected(client);
                        let _ = self.resubscribe.send(Resubscribe::Reconnected);
                    }
                    was_connected = connected;
                }
            }
        }
    }
}
