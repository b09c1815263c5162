//! Market-data requests: entitlement, market-data lines, streaming subscriptions and
//! snapshots, the first burst a gateway sends, the ticks that follow, and cancels.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{error_frame, lock, Conn, Reply, Subscription, Subscriptions};
use crate::sim::farms::{wait_open, Farm};
use crate::sim::faults::RequestKind;
use crate::sim::market_data::{self, Quote};
use crate::sim::pricing;
use crate::sim::proto;
use crate::sim::server::Shared;
use crate::sim::universe::{Instrument, Kind};

impl Conn {
    pub(super) fn drop_market_data(&self) {
        let n = lock(&self.subs).drain().count();
        lock(&self.shared.lines).release(n as u32);
    }

    pub(super) fn market_data(&mut self, r: proto::MarketDataRequest) -> Reply {
        let req_id = r.req_id.unwrap_or(-1);
        let v = self.verdict(RequestKind::MarketData);
        // Every answer, refusals included, comes through the farm that serves the contract.
        self.hold = Some(Farm::MarketData);
        let Some(inst) = self.resolve_one(r.contract.as_ref()) else {
            return Reply::error(req_id, 200, v.latency);
        };
        let farm = Farm::serving(&inst.kind);
        self.hold = Some(farm);
        if lock(&self.subs).contains_key(&req_id) {
            return Reply::error_text(
                req_id,
                322,
                "Error processing request:-'bW' : cause - Duplicate ticker id",
                v.latency,
            );
        }
        if let Some(code) = v.error {
            return Reply::error(req_id, code, v.latency);
        }
        let exchange = r
            .contract
            .as_ref()
            .and_then(|c| c.exchange.clone())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "SMART".to_string());
        let delayed = match market_data::entitlement(
            self.shared.config.permissions,
            self.shared.config.competing_session,
            self.market_data_type,
            inst.symbol(),
            &exchange,
        ) {
            market_data::Entitlement::Live => false,
            market_data::Entitlement::Delayed => true,
            market_data::Entitlement::Refused(code, text) => {
                return Reply::error_text(req_id, code, &text, v.latency)
            }
        };
        if !lock(&self.shared.lines).try_acquire() {
            return Reply::error(req_id, 101, v.latency);
        }
        let snapshot = r.snapshot.unwrap_or(false) || r.regulatory_snapshot.unwrap_or(false);
        let frozen = self.shared.market_closed.load(Ordering::SeqCst)
            && !matches!(inst.kind, Kind::Future { .. });
        let shared = Arc::clone(&self.shared);
        if snapshot {
            // The data goes at once; the end (TickSnapshotEnd) follows `snapshot_end` later,
            // and the line is held until then, as a gateway does (docs/SIM.md).
            let end_after = shared.config.snapshot_end;
            if end_after.is_zero() {
                let burst = move || {
                    let (mut frames, _) = first_burst(&shared, req_id, &inst, frozen, delayed);
                    frames.push(market_data::snapshot_end(req_id));
                    lock(&shared.lines).release(1);
                    frames
                };
                return Reply::later(v.latency, burst);
            }
            let tx = self.tx.clone();
            let ender = Arc::clone(&shared);
            tokio::spawn(async move {
                // The data waits for the farm (see `deliver`), and so does its end.
                let answered = wait_open(ender.avail.subscribe(), Some(farm)).await;
                if answered {
                    tokio::time::sleep(v.latency + end_after).await;
                }
                lock(&ender.lines).release(1);
                if answered {
                    let _ = tx.send(market_data::snapshot_end(req_id)).await;
                }
            });
            return Reply::later(v.latency, move || {
                first_burst(&shared, req_id, &inst, frozen, delayed).0
            });
        }
        lock(&self.subs).insert(
            req_id,
            Subscription {
                inst: inst.clone(),
                last: None,
                frozen,
                delayed,
            },
        );
        let subs = Arc::clone(&self.subs);
        Reply::later(v.latency, move || {
            let (frames, quote) = first_burst(&shared, req_id, &inst, frozen, delayed);
            match lock(&subs).get_mut(&req_id) {
                Some(sub) => sub.last = Some(quote),
                // Cancelled while the latency ran.
                None => return Vec::new(),
            }
            frames
        })
    }

    pub(super) fn cancel_market_data(&self, req_id: i32) {
        if lock(&self.subs).remove(&req_id).is_some() {
            lock(&self.shared.lines).release(1);
        }
    }
}

/// What a gateway sends first for a market-data request: the request parameters, the market
/// data type, session statistics and the full quote.
fn first_burst(
    shared: &Shared,
    req_id: i32,
    inst: &Instrument,
    frozen: bool,
    delayed: bool,
) -> (Vec<Bytes>, Quote) {
    let now = shared.clock.now();
    let at = if frozen {
        pricing::last_close_before(now)
    } else if delayed {
        now - market_data::DELAY
    } else {
        now
    };
    // 1 live, 2 frozen, 3 delayed, 4 delayed frozen; delayed data is announced by 10167.
    let data_type = match (delayed, frozen) {
        (false, false) => 1,
        (false, true) => 2,
        (true, false) => 3,
        (true, true) => 4,
    };
    let mut frames = Vec::new();
    if delayed {
        let (code, text) = market_data::DELAYED_NOTICE;
        shared.count_error(code);
        frames.push(error_frame(req_id, code, text));
    }
    frames.extend(market_data::preamble(req_id, data_type, inst));
    frames.extend(market_data::stats_ticks(
        req_id,
        &market_data::session_stats(&shared.market, inst, at),
        delayed,
    ));
    let mut quote = market_data::quote(&shared.market, inst, at);
    if frozen {
        quote = market_data::after_the_close(quote);
    }
    frames.extend(market_data::ticks(req_id, None, &quote, delayed));
    (frames, quote)
}

/// Sends quote changes of every live subscription of one connection, every tick interval.
pub(super) async fn tick_loop(shared: Arc<Shared>, subs: Subscriptions, tx: mpsc::Sender<Bytes>) {
    let mut interval = tokio::time::interval(shared.config.tick_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        if shared.outage.load(Ordering::SeqCst) {
            continue;
        }
        let avail = *shared.avail.borrow();
        let now = shared.clock.now();
        let mut frames = Vec::new();
        for (req_id, sub) in lock(&subs).iter_mut() {
            // A stream pauses while the farm serving its contract is down.
            if sub.frozen || !avail.farm(Farm::serving(&sub.inst.kind)).serves() {
                continue;
            }
            let Some(prev) = &sub.last else { continue };
            let at = if sub.delayed {
                now - market_data::DELAY
            } else {
                now
            };
            let quote = market_data::quote(&shared.market, &sub.inst, at);
            frames.extend(market_data::ticks(*req_id, Some(prev), &quote, sub.delayed));
            sub.last = Some(quote);
        }
        for f in frames {
            match tx.try_send(f) {
                Ok(()) => {}
                // A client that does not read loses ticks rather than stalling the simulator.
                Err(mpsc::error::TrySendError::Full(_)) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}
