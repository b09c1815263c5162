//! The streaming manager: promote (validate with the gateway, take a line, persist, stream),
//! demote (cancel, free the line, persist), resubscribe after reconnects and 1101, write
//! streamed legs to `position_updates` at an interval.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use ibapi::accounts::PositionUpdate;
use ibapi::market_data::realtime::{Quote, TickTypes};
use ibapi::subscriptions::{SubscriptionItem, SubscriptionItemStreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::registry::{Leg, Registry};
use crate::config::StreamingConfig;
use crate::engine::{LegState, LegView};
use crate::gateway::connection::Resubscribe;
use crate::gateway::pace::Pace;
use crate::gateway::quote::market_data_type;
use crate::gateway::{Gateway, LineBudget};
use crate::lake::columns::BatchBuilder;
use crate::lake::LakeError;
use crate::queue::Actor;
use crate::worker::handlers::ActiveLegs;
use crate::worker::ib::{by_conid, right_text};
use crate::worker::market_data::{MarketDataChoice, MarketDataMode, NO_LIVE_CODES};
use crate::worker::results::{ResultTables, POSITION_UPDATES, POSITION_UPDATE_COLUMNS};

/// A leg's live state.
#[derive(Debug, Clone)]
struct Live {
    leg: Leg,
    quote: Quote,
    last_tick_at: Option<DateTime<Utc>>,
    state: LegState,
}

/// A leg's stream task and the switch that stops it.
type StreamTask = (watch::Sender<bool>, JoinHandle<()>);

struct Inner {
    registry: tokio::sync::Mutex<Registry>,
    live: RwLock<HashMap<i32, Live>>,
    streams: Mutex<HashMap<i32, StreamTask>>,
    gateway: Arc<Gateway>,
    lines: LineBudget,
    results: Arc<ResultTables>,
    config: StreamingConfig,
    /// The session's choice of live or delayed data per exchange, shared with the worker.
    market_data: Arc<MarketDataChoice>,
    stop: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct Streaming {
    inner: Arc<Inner>,
}

impl ActiveLegs for Streaming {
    fn is_active(&self, conid: i32) -> bool {
        self.inner
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&conid)
    }
}

impl Streaming {
    /// Loads the registry and starts a stream for every active leg.
    pub async fn start(
        root: &Path,
        gateway: Arc<Gateway>,
        lines: LineBudget,
        results: Arc<ResultTables>,
        config: StreamingConfig,
        market_data: Arc<MarketDataChoice>,
    ) -> Result<Self, LakeError> {
        let registry = Registry::open(root).await?;
        let legs: Vec<Leg> = registry.active().cloned().collect();
        let (stop, _) = watch::channel(false);
        let s = Self {
            inner: Arc::new(Inner {
                registry: tokio::sync::Mutex::new(registry),
                live: RwLock::new(HashMap::new()),
                streams: Mutex::new(HashMap::new()),
                gateway,
                lines,
                results,
                config,
                market_data,
                stop,
            }),
        };
        for leg in legs {
            let state = match s.inner.lines.take_stream(leg.conid, &describe(&leg)) {
                Ok(()) => LegState::Subscribing,
                Err(e) => LegState::Stalled {
                    reason: e.to_string(),
                },
            };
            let streaming = matches!(state, LegState::Subscribing);
            s.insert_live(leg.clone(), state);
            if streaming {
                s.spawn_stream(leg);
            }
        }
        tokio::spawn(s.clone().write_positions());
        Ok(s)
    }

    /// Waits for the connection's pace: the legs' messages share the gateway's rate with the
    /// worker's (see [`crate::gateway::pace`]).
    async fn paced(&self) {
        self.inner.gateway.pace().wait().await;
    }

    fn insert_live(&self, leg: Leg, state: LegState) {
        let live = Live {
            leg,
            quote: Quote::default(),
            last_tick_at: None,
            state,
        };
        self.inner
            .live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(live.leg.conid, live);
    }

    fn update(&self, conid: i32, f: impl FnOnce(&mut Live)) {
        if let Some(l) = self
            .inner
            .live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&conid)
        {
            f(l);
        }
    }

    /// The legs for the console, ordered by strategy then conid.
    pub fn legs(&self) -> Vec<LegView> {
        let live = self.inner.live.read().unwrap_or_else(|p| p.into_inner());
        let mut legs: Vec<LegView> = live
            .values()
            .map(|l| LegView {
                conid: l.leg.conid,
                symbol: l.leg.symbol.clone(),
                sec_type: l.leg.sec_type.clone(),
                expiry: l.leg.expiry.clone(),
                strike: l.leg.strike,
                right: l.leg.right.clone(),
                strategy: l.leg.strategy.clone(),
                quantity: l.leg.quantity,
                bid: l.quote.bid,
                ask: l.quote.ask,
                last: l.quote.last,
                bid_size: l.quote.bid_size,
                ask_size: l.quote.ask_size,
                volume: l.quote.volume,
                last_tick_at: l.last_tick_at,
                state: l.state.clone(),
            })
            .collect();
        legs.sort_by(|a, b| a.strategy.cmp(&b.strategy).then(a.conid.cmp(&b.conid)));
        legs
    }

    /// Validates `conid` with the gateway, takes a line, records the leg and streams it.
    pub async fn promote(
        &self,
        conid: i32,
        strategy: Option<String>,
        by: Actor,
    ) -> Result<String, String> {
        if self.is_active(conid) {
            return Ok(format!("{conid} is already an active leg"));
        }
        let client = self
            .inner
            .gateway
            .client()
            .ok_or_else(|| format!("cannot promote {conid}: not connected to the gateway"))?;
        self.paced().await;
        let details = match client.contract_details(&by_conid(conid, "")).await {
            Ok(d) if !d.is_empty() => d,
            Ok(_) => {
                return Err(format!(
                    "unknown conid {conid}: the gateway has no contract with this id"
                ))
            }
            Err(ibapi::Error::Notice(n)) if n.code == 200 => {
                return Err(format!(
                    "unknown conid {conid}: the gateway has no contract with this id"
                ));
            }
            Err(e) => return Err(format!("cannot look up conid {conid}: {e}")),
        };
        let c = &details[0].contract;
        // The quantity held, so the legs pane and position_updates show it.
        let quantity = held_quantity(&client, self.inner.gateway.pace(), conid).await;
        let now = Utc::now();
        let leg = Leg {
            conid,
            symbol: c.symbol.0.clone(),
            sec_type: c.security_type.to_string(),
            expiry: Some(c.last_trade_date_or_contract_month.clone()).filter(|s| !s.is_empty()),
            strike: Some(c.strike).filter(|s| *s > 0.0),
            right: right_text(c.right),
            exchange: c.exchange.0.clone(),
            multiplier: c.multiplier.parse().unwrap_or(1.0),
            strategy: strategy.filter(|s| !s.trim().is_empty()),
            quantity,
            promoted_at: now,
            promoted_by: by.as_str().to_string(),
            active: true,
            changed_at: now,
            seq: 0,
        };
        let label = describe(&leg);
        self.inner.lines.take_stream(conid, &label).map_err(|e| {
            let holders: Vec<String> = self
                .inner
                .lines
                .streams()
                .into_iter()
                .map(|(_, l)| l)
                .collect();
            format!(
                "cannot promote {label}: {e} (streaming: {})",
                holders.join(", ")
            )
        })?;
        let recorded = self.inner.registry.lock().await.record(leg).await;
        let leg = match recorded {
            Ok(l) => l,
            Err(e) => {
                self.inner.lines.release_stream(conid);
                return Err(format!("cannot record the leg: {e}"));
            }
        };
        self.insert_live(leg.clone(), LegState::Subscribing);
        self.spawn_stream(leg);
        tracing::info!(conid, leg = %label, "promoted to streaming");
        Ok(format!("promoted {label}: streaming"))
    }

    /// Cancels the leg's stream, frees its line and records it inactive (history kept).
    pub async fn demote(&self, conid: i32, by: Actor) -> Result<String, String> {
        let leg = {
            let reg = self.inner.registry.lock().await;
            reg.get(conid).filter(|l| l.active).cloned()
        }
        .ok_or_else(|| format!("{conid} is not an active leg"))?;
        let stream = self
            .inner
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conid);
        if let Some((stop, task)) = stream {
            stop.send_replace(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.inner.lines.release_stream(conid);
        self.inner
            .live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conid);
        let label = describe(&leg);
        let now = Utc::now();
        let mut row = leg;
        row.active = false;
        row.changed_at = now;
        row.promoted_by = by.as_str().to_string();
        self.inner
            .registry
            .lock()
            .await
            .record(row)
            .await
            .map_err(|e| format!("the stream stopped but recording the demotion failed: {e}"))?;
        tracing::info!(conid, leg = %label, "demoted");
        Ok(format!("demoted {label}: line freed"))
    }

    /// Cancels every stream (registry rows stay active, so they resume on the next start).
    pub async fn stop(&self) {
        self.inner.stop.send_replace(true);
        let streams: Vec<_> = self
            .inner
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (conid, (stop, task)) in streams {
            stop.send_replace(true);
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
            self.inner.lines.release_stream(conid);
        }
    }

    fn spawn_stream(&self, leg: Leg) {
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(self.clone().stream(leg.clone(), stop_rx));
        self.inner
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(leg.conid, (stop, task));
    }

    /// Streams one leg until demoted; resubscribes after every reconnect and 1101.
    async fn stream(self, leg: Leg, mut stop: watch::Receiver<bool>) {
        let conid = leg.conid;
        let contract = by_conid(conid, &leg.exchange);
        let exchange = if leg.exchange.is_empty() {
            "SMART".to_string()
        } else {
            leg.exchange.clone()
        };
        let mut resubscribe = self.inner.gateway.resubscribe_events();
        let mut gateway_state = self.inner.gateway.state();
        loop {
            if *stop.borrow() {
                return;
            }
            let Some(client) = self.inner.gateway.client() else {
                self.update(conid, |l| {
                    l.state = LegState::Stalled {
                        reason: "not connected to the gateway".into(),
                    }
                });
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = gateway_state.changed() => continue,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            };
            // Delayed data where the session takes it for the leg's exchange: the data type
            // is the connection's, asked for once per connection (the worker's quotes share
            // it); live data still comes where the account subscribes.
            let delayed = self.inner.market_data.delayed_for(&exchange);
            let client_key = Arc::as_ptr(&client) as usize;
            if delayed && self.inner.market_data.needs_type_sent(client_key) {
                self.paced().await;
                if let Err(e) = client
                    .switch_market_data_type(ibapi::market_data::MarketDataType::Delayed)
                    .await
                {
                    self.update(conid, |l| {
                        l.state = LegState::Stalled {
                            reason: format!("cannot ask for delayed data: {e}"),
                        }
                    });
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = resubscribe.recv() => continue,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
                self.inner.market_data.type_sent(client_key);
            }
            self.paced().await;
            let sub = match client.market_data(&contract).subscribe().await {
                Ok(s) => s,
                Err(e) => {
                    self.update(conid, |l| {
                        l.state = LegState::Stalled {
                            reason: e.to_string(),
                        }
                    });
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = resubscribe.recv() => continue,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            };
            self.update(conid, |l| l.state = LegState::Streaming);
            let mut items = sub;
            let mut refused: Option<i32> = None;
            let reason: String = loop {
                tokio::select! {
                    _ = stop.changed() => {
                        self.paced().await;
                        items.cancel().await;
                        return;
                    }
                    ev = resubscribe.recv() => {
                        if matches!(ev, Ok(Resubscribe::DataLost | Resubscribe::NewClient | Resubscribe::Reconnected)) {
                            self.paced().await;
                        items.cancel().await;
                            break "resubscribing after a reconnect".into();
                        }
                    }
                    item = items.next() => match item {
                        Some(Ok(SubscriptionItem::Data(tick))) => {
                            // Not prices: the data type is kept for the rows, nothing else.
                            if let TickTypes::MarketDataType(_) = tick {
                                self.update(conid, |l| l.quote.apply(&tick));
                                continue;
                            }
                            if matches!(tick, TickTypes::RequestParameters(_)) {
                                continue;
                            }
                            self.update(conid, |l| {
                                l.quote.apply(&tick);
                                l.quote = crate::gateway::quote::without_sentinels(std::mem::take(&mut l.quote));
                                l.last_tick_at = Some(Utc::now());
                                l.state = LegState::Streaming;
                            });
                        }
                        // A refusal of the leg's market data (no subscription, a competing
                        // session): no price follows, so the leg says why it has none.
                        Some(Ok(SubscriptionItem::Notice(n))) if REFUSAL_CODES.contains(&n.code) => {
                            tracing::warn!(conid, code = n.code, message = %n.message, "leg's market data refused");
                            self.update(conid, |l| {
                                l.quote = Quote::default();
                                l.last_tick_at = None;
                            });
                            self.paced().await;
                        items.cancel().await;
                            refused = Some(n.code);
                            break format!("IB {}: {}", n.code, n.message);
                        }
                        Some(Ok(SubscriptionItem::Notice(n))) => {
                            tracing::info!(conid, code = n.code, message = %n.message, "stream notice");
                        }
                        Some(Err(ibapi::Error::Notice(n))) if REFUSAL_CODES.contains(&n.code) => {
                            tracing::warn!(conid, code = n.code, message = %n.message, "leg's market data refused");
                            self.update(conid, |l| {
                                l.quote = Quote::default();
                                l.last_tick_at = None;
                            });
                            refused = Some(n.code);
                            break format!("IB {}: {}", n.code, n.message);
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "the gateway ended the subscription".into(),
                    }
                }
            };
            // Under auto, an exchange without a live subscription switches to delayed data
            // for the session (as the worker's quotes do; said once) and the leg asks again
            // at once, for delayed data.
            if refused.is_some_and(|c| {
                !delayed
                    && NO_LIVE_CODES.contains(&c)
                    && self.inner.market_data.mode == MarketDataMode::Auto
            }) {
                if self.inner.market_data.switch_to_delayed(&exchange) {
                    tracing::warn!(
                        exchange = %exchange,
                        "no live market data for {exchange} ({reason}): this session takes delayed data for {exchange}"
                    );
                }
                self.update(conid, |l| l.state = LegState::Subscribing);
                continue;
            }
            self.update(conid, |l| {
                l.state = LegState::Stalled {
                    reason: reason.clone(),
                }
            });
            tracing::warn!(conid, %reason, "leg stream stopped");
            // Give the connection a moment (a refusal longer); a resubscribe event or a state
            // change wakes us.
            let pause = if refused.is_some() {
                REFUSED_RETRY
            } else {
                Duration::from_secs(2)
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = resubscribe.recv() => {}
                _ = gateway_state.changed() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Writes streamed legs with a quote to `position_updates` every interval.
    async fn write_positions(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(
            self.inner.config.write_interval_secs.max(1),
        ));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            // Only legs with a price: a leg whose ticks carry none yet (or whose data was
            // refused) writes no row of nulls.
            let rows: Vec<Live> = self
                .inner
                .live
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .filter(|l| l.last_tick_at.is_some() && price(&l.quote).is_some())
                .cloned()
                .collect();
            if rows.is_empty() {
                continue;
            }
            let now = Utc::now();
            let n = rows.len();
            let batch = BatchBuilder::new(POSITION_UPDATE_COLUMNS)
                .utf8(vec![None::<&str>; n])
                .utf8(vec![Some("stream"); n])
                .timestamp(rows.iter().map(|l| l.last_tick_at.or(Some(now))))
                .utf8(vec![None::<&str>; n])
                .i64(rows.iter().map(|l| Some(l.leg.conid as i64)))
                .utf8(rows.iter().map(|l| Some(l.leg.symbol.as_str())))
                .utf8(rows.iter().map(|l| Some(l.leg.sec_type.as_str())))
                .utf8(rows.iter().map(|l| l.leg.expiry.as_deref()))
                .f64(rows.iter().map(|l| l.leg.strike))
                .utf8(rows.iter().map(|l| l.leg.right.as_deref()))
                .f64(rows.iter().map(|l| Some(l.leg.quantity)))
                .f64(vec![None; n])
                .f64(rows.iter().map(|l| price(&l.quote)))
                .f64(rows.iter().map(|l| {
                    price(&l.quote).map(|p| p * l.leg.quantity * l.leg.multiplier.max(1.0))
                }))
                .i64(rows.iter().map(|l| market_data_type(&l.quote)))
                .finish();
            if let Err(e) = self
                .inner
                .results
                .write(POSITION_UPDATES, None, batch)
                .await
            {
                tracing::warn!(error = %e, "writing streamed legs to position_updates failed; these quotes are not stored, the next interval writes the legs again");
            }
        }
    }
}

/// Codes that refuse a leg's market data, with no data following: no live subscription
/// (10089, 354), delayed data not enabled (10168), a competing live session (10197). (10090,
/// part of the data not subscribed, still sends the rest.)
const REFUSAL_CODES: &[i32] = &[10089, 354, 10168, 10197];

/// How long a refused leg waits before asking again (a reconnect asks at once).
const REFUSED_RETRY: Duration = Duration::from_secs(60);

/// A streamed leg's price: the last trade, else the mid.
fn price(q: &Quote) -> Option<f64> {
    q.last.or(match (q.bid, q.ask) {
        (Some(b), Some(a)) => Some((a + b) / 2.0),
        _ => None,
    })
}

/// `SPY 20261218 600 C` style description of a leg.
pub fn describe(leg: &Leg) -> String {
    let mut parts = vec![leg.symbol.clone()];
    parts.extend(leg.expiry.clone());
    parts.extend(leg.strike.map(|s| format!("{s}")));
    parts.extend(leg.right.clone());
    format!("{} ({})", parts.join(" "), leg.conid)
}

/// The account's position in `conid`, 0 when none (a leg may be watched before trading it).
async fn held_quantity(client: &ibapi::Client, pace: &Pace, conid: i32) -> f64 {
    pace.wait().await;
    let Ok(sub) = client.positions().await else {
        return 0.0;
    };
    let mut sub = sub.filter_data();
    let mut quantity = 0.0;
    let collect = async {
        while let Some(Ok(update)) = sub.next().await {
            match update {
                PositionUpdate::Position(p) if p.contract.contract_id == conid => {
                    quantity += p.position
                }
                PositionUpdate::Position(_) => {}
                PositionUpdate::PositionEnd => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), collect).await;
    // Dropping the subscription sends its cancel: it keeps the pace too.
    pace.wait().await;
    drop(sub);
    quantity
}
