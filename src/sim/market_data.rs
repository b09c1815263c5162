//! Level-1 quotes of an instrument and the tick messages that carry them.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};

use super::frame::encode_proto;
use super::pricing::{self, mix, Market, OptionValue};
use super::proto::{self, outbound};
use super::universe::{Instrument, Kind};

/// IB tick types the simulator sends.
mod tick {
    pub const BID_SIZE: i32 = 0;
    pub const BID: i32 = 1;
    pub const ASK: i32 = 2;
    pub const ASK_SIZE: i32 = 3;
    pub const LAST: i32 = 4;
    pub const LAST_SIZE: i32 = 5;
    pub const HIGH: i32 = 6;
    pub const LOW: i32 = 7;
    pub const VOLUME: i32 = 8;
    pub const CLOSE: i32 = 9;
    pub const BID_OPTION: i32 = 10;
    pub const ASK_OPTION: i32 = 11;
    pub const LAST_OPTION: i32 = 12;
    pub const MODEL_OPTION: i32 = 13;
    pub const OPEN: i32 = 14;
    pub const LAST_TIMESTAMP: i32 = 45;
}

/// The delayed tick type of a live one (IB's tick types 66-88: "Delayed Bid" and so on).
pub fn delayed_tick(tick_type: i32) -> i32 {
    match tick_type {
        tick::BID => 66,
        tick::ASK => 67,
        tick::LAST => 68,
        tick::BID_SIZE => 69,
        tick::ASK_SIZE => 70,
        tick::LAST_SIZE => 71,
        tick::HIGH => 72,
        tick::LOW => 73,
        tick::VOLUME => 74,
        tick::CLOSE => 75,
        tick::OPEN => 76,
        tick::BID_OPTION => 80,
        tick::ASK_OPTION => 81,
        tick::LAST_OPTION => 82,
        tick::MODEL_OPTION => 83,
        tick::LAST_TIMESTAMP => 88,
        other => other,
    }
}

/// How far delayed data lags (IB: usually 15 to 20 minutes).
pub const DELAY: Duration = Duration::minutes(15);

/// Market-data permissions of the simulated account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Permissions {
    /// Live subscriptions for everything.
    #[default]
    Live,
    /// No live subscriptions; delayed data available.
    Delayed,
    /// Neither live subscriptions nor delayed data.
    None,
}

/// What a gateway answers a market-data request, by the account's permissions and the market
/// data type the client asked for (reqMarketDataType: 1 live, 2 frozen, 3 delayed, 4 delayed
/// frozen). Texts are IB's (docs/SIM.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entitlement {
    /// Live (or frozen) data.
    Live,
    /// Delayed data, announced by 10167.
    Delayed,
    /// Refused with this code and text; no data follows.
    Refused(i32, String),
}

pub fn entitlement(
    permissions: Permissions,
    competing_session: bool,
    requested_type: i32,
    symbol: &str,
    exchange: &str,
) -> Entitlement {
    if competing_session {
        return Entitlement::Refused(
            10197,
            "No market data during competing live session".to_string(),
        );
    }
    let wants_delayed = matches!(requested_type, 3 | 4);
    match (permissions, wants_delayed) {
        (Permissions::Live, _) => Entitlement::Live,
        (Permissions::Delayed, true) => Entitlement::Delayed,
        (Permissions::Delayed, false) => Entitlement::Refused(
            10089,
            format!(
                "Requested market data requires additional subscription for API. Delayed market data is available.{symbol} {exchange}/TOP/ALL"
            ),
        ),
        (Permissions::None, true) => Entitlement::Refused(
            10168,
            "Requested market data is not subscribed. Delayed market data is not enabled."
                .to_string(),
        ),
        (Permissions::None, false) => Entitlement::Refused(
            354,
            "Requested market data is not subscribed.".to_string(),
        ),
    }
}

/// What a gateway answers a historical request of an account without a market-data
/// subscription for the instrument: IB serves historical data through the API only with live
/// market-data subscriptions (TWS API *Market Data*: "In order to receive real time
/// top-of-book, depth-of-book, or historical market data from the API it is necessary have
/// live market data subscriptions for the requested instruments"), and refuses with 162 and
/// "No market data permissions for <listing> <type>" otherwise (`ibapi` 5.5
/// `src/messages/notice.rs`, `HMDS_ERROR_CODE`; docs/SIM.md). Delayed data does not stand in
/// for a subscription here.
pub fn historical_refusal(
    permissions: Permissions,
    listing: &str,
    sec_type: &str,
) -> Option<String> {
    match permissions {
        Permissions::Live => None,
        Permissions::Delayed | Permissions::None => Some(format!(
            "Historical Market Data Service error message:No market data permissions for {listing} {sec_type}"
        )),
    }
}

/// The advisory that announces delayed data.
pub const DELAYED_NOTICE: (i32, &str) = (
    10167,
    "Requested market data is not subscribed. Displaying delayed market data.",
);

/// One level-1 quote.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// Bid and ask (none for an index).
    pub bid: Option<f64>,
    pub ask: Option<f64>,
    pub last: f64,
    pub bid_size: f64,
    pub ask_size: f64,
    pub last_size: f64,
    /// Volume so far today (none for an index).
    pub volume: Option<f64>,
    /// Unix seconds of the last trade.
    pub last_time: i64,
    /// Model value and greeks, and the implied vols of bid and ask, for options.
    pub option: Option<(OptionValue, Option<f64>, Option<f64>)>,
    /// The option's computations are sent as "not computed" (see [`after_the_close`]).
    pub not_computed: bool,
}

/// An option's quote after the close, as a gateway sends it: no bid and no ask (a price of
/// -1 with a size of 0; ib_async #77 shows an option after hours with `bid=-1.0,
/// bidSize=0.0, ask=-1.0, askSize=0.0`, ib_insync #109 "When the market is closed the bid
/// and ask will return a -1"), the day's last trade (frozen data is "the last data recorded
/// at market close", TWS API *Market Data Types*), and the option computations without
/// their values: TWS sends -1 for a volatility or price and -2 for a Greek it has not
/// computed (`ibapi` 5.5 `market_data/realtime/common/decoders.rs`), and ib_async #77 shows
/// no Greeks after hours. See docs/SIM.md.
pub fn after_the_close(mut q: Quote) -> Quote {
    if q.option.is_some() {
        q.bid = None;
        q.ask = None;
        q.bid_size = 0.0;
        q.ask_size = 0.0;
        q.not_computed = true;
    }
    q
}

fn round_to(x: f64, tick: f64) -> f64 {
    ((x / tick).round() * tick * 1e6).round() / 1e6
}

fn daily_volume(market: &Market, inst: &Instrument, t: DateTime<Utc>) -> f64 {
    match inst.kind {
        Kind::Stock => [60e6, 40e6, 30e6, 0.0, 2e6][inst.underlying as usize],
        Kind::Index => 0.0,
        Kind::Future { root, .. } => [1.5e6, 6e5, 1.5e5][root as usize],
        Kind::Option { expiry, strike, .. } => {
            let s = market.underlying(inst.underlying, t);
            let years = pricing::years_to(expiry, t);
            (20_000.0 * (-20.0 * (strike / s).ln().abs()).exp() / (1.0 + 12.0 * years)).floor()
        }
    }
}

/// The quote of `inst` at `t`.
pub fn quote(market: &Market, inst: &Instrument, t: DateTime<Utc>) -> Quote {
    let h = mix(inst.conid as u64 ^ mix(t.timestamp() as u64));
    let tick = inst.min_tick();
    let (sizes, lot) = match inst.kind {
        Kind::Stock => (40, 100.0),
        Kind::Future { .. } => (60, 1.0),
        _ => (150, 1.0),
    };
    let size = |salt: u64| (1 + (mix(h ^ salt) % sizes)) as f64 * lot;
    let volume = (daily_volume(market, inst, t) * pricing::session_fraction(t)).floor();
    let last_time = t.timestamp() - (h % 3) as i64;
    match inst.kind {
        Kind::Index => Quote {
            bid: None,
            ask: None,
            last: round_to(market.mid(inst, t), tick),
            bid_size: 0.0,
            ask_size: 0.0,
            last_size: 0.0,
            volume: None,
            last_time,
            option: None,
            not_computed: false,
        },
        Kind::Option {
            expiry,
            strike,
            right,
        } => {
            let value = market.option_value(inst.underlying, expiry, strike, right, t);
            let spread = (0.01 + 0.002 * value.price).clamp(0.01, 0.25);
            let bid = round_to((value.price - spread / 2.0).max(0.0), tick);
            let ask = round_to((value.price + spread / 2.0).max(bid + tick), tick);
            let years = pricing::years_to(expiry, t).max(1e-6);
            let q = pricing::dividend_yield(inst.underlying);
            let iv = |p: f64| pricing::implied_vol(p, value.und_price, strike, years, q, right);
            Quote {
                bid: Some(bid),
                ask: Some(ask),
                last: if h.is_multiple_of(2) { bid } else { ask },
                bid_size: size(1),
                ask_size: size(2),
                last_size: size(3).min(20.0),
                volume: Some(volume),
                last_time,
                option: Some((value, iv(bid), iv(ask))),
                not_computed: false,
            }
        }
        _ => {
            let mid = market.mid(inst, t);
            let bid = round_to((mid / tick).floor() * tick, tick);
            let ask = round_to(bid + tick, tick);
            Quote {
                bid: Some(bid),
                ask: Some(ask),
                last: if h.is_multiple_of(2) { bid } else { ask },
                bid_size: size(1),
                ask_size: size(2),
                last_size: size(3).min(5.0 * lot),
                volume: Some(volume),
                last_time,
                option: None,
                not_computed: false,
            }
        }
    }
}

/// Open, high, low of today's session up to `t` and the previous close.
pub struct SessionStats {
    pub open: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub close: f64,
}

/// Session statistics sampled every five minutes from today's 09:30 open.
pub fn session_stats(market: &Market, inst: &Instrument, t: DateTime<Utc>) -> SessionStats {
    let open_at = pricing::ny_instant(pricing::ny_date(t), 9, 30);
    let close = round_to(
        market.mid(inst, pricing::last_close_before(open_at)),
        inst.min_tick(),
    );
    let mut samples = Vec::new();
    let mut s = open_at;
    while s <= t && s < open_at + Duration::hours(7) {
        samples.push(market.mid(inst, s));
        s += Duration::minutes(5);
    }
    if !samples.is_empty() {
        samples.push(market.mid(inst, t));
    }
    let r = |x: f64| round_to(x, inst.min_tick());
    SessionStats {
        open: samples.first().copied().map(r),
        high: samples.iter().copied().reduce(f64::max).map(r),
        low: samples.iter().copied().reduce(f64::min).map(r),
        close,
    }
}

fn price(req_id: i32, tick_type: i32, price: f64) -> Bytes {
    encode_proto(
        outbound::TICK_PRICE,
        &proto::TickPrice {
            req_id: Some(req_id),
            tick_type: Some(tick_type),
            price: Some(price),
            size: None,
            attr_mask: Some(0),
        },
    )
}

fn size(req_id: i32, tick_type: i32, size: f64) -> Bytes {
    encode_proto(
        outbound::TICK_SIZE,
        &proto::TickSize {
            req_id: Some(req_id),
            tick_type: Some(tick_type),
            size: Some(format!("{size}")),
        },
    )
}

/// TWS's "not computed" values: -1 for a volatility or a price, -2 for a Greek.
const NOT_COMPUTED: f64 = -1.0;
const NOT_COMPUTED_GREEK: f64 = -2.0;

fn option_tick(
    req_id: i32,
    tick_type: i32,
    value: &OptionValue,
    iv: Option<f64>,
    opt_price: f64,
    computed: bool,
) -> Bytes {
    let (price, greek) = if computed {
        (None, None)
    } else {
        (Some(NOT_COMPUTED), Some(NOT_COMPUTED_GREEK))
    };
    encode_proto(
        outbound::TICK_OPTION_COMPUTATION,
        &proto::TickOptionComputation {
            req_id: Some(req_id),
            tick_type: Some(tick_type),
            tick_attrib: Some(0),
            implied_vol: price.or(Some(iv.unwrap_or(NOT_COMPUTED))),
            delta: greek.or(Some(value.delta)),
            opt_price: price.or(Some(opt_price)),
            pv_dividend: price.or(Some(value.pv_dividend)),
            gamma: greek.or(Some(value.gamma)),
            vega: greek.or(Some(value.vega)),
            theta: greek.or(Some(value.theta)),
            und_price: Some(value.und_price),
        },
    )
}

/// Ticks for the fields of `q` that differ from `prev` (every field when `prev` is `None`).
pub fn ticks(req_id: i32, prev: Option<&Quote>, q: &Quote, delayed: bool) -> Vec<Bytes> {
    let d = |t: i32| if delayed { delayed_tick(t) } else { t };
    let mut out = Vec::new();
    let changed = |f: fn(&Quote) -> f64| prev.is_none_or(|p| f(p) != f(q));
    if let Some(bid) = q.bid {
        if changed(|x| x.bid.unwrap_or_default()) || changed(|x| x.bid_size) {
            out.push(price(req_id, d(tick::BID), bid));
            out.push(size(req_id, d(tick::BID_SIZE), q.bid_size));
        }
    }
    if let Some(ask) = q.ask {
        if changed(|x| x.ask.unwrap_or_default()) || changed(|x| x.ask_size) {
            out.push(price(req_id, d(tick::ASK), ask));
            out.push(size(req_id, d(tick::ASK_SIZE), q.ask_size));
        }
    }
    // A gateway says "no bid/ask" with a price of -1 and a size of 0 (an index has none;
    // TWS API "Tick Types": -1 means there is no quote on that side).
    if prev.is_none() {
        for (side, side_size, p) in [
            (tick::BID, tick::BID_SIZE, q.bid),
            (tick::ASK, tick::ASK_SIZE, q.ask),
        ] {
            if p.is_none() {
                out.push(price(req_id, side, -1.0));
                out.push(size(req_id, side_size, 0.0));
            }
        }
    }
    if changed(|x| x.last) || prev.is_none_or(|p| p.last_time != q.last_time) {
        out.push(price(req_id, d(tick::LAST), q.last));
        if q.last_size > 0.0 {
            out.push(size(req_id, d(tick::LAST_SIZE), q.last_size));
        }
        out.push(encode_proto(
            outbound::TICK_STRING,
            &proto::TickString {
                req_id: Some(req_id),
                tick_type: Some(d(tick::LAST_TIMESTAMP)),
                value: Some(q.last_time.to_string()),
            },
        ));
    }
    if let Some(volume) = q.volume {
        if changed(|x| x.volume.unwrap_or_default()) {
            out.push(size(req_id, d(tick::VOLUME), volume));
        }
    }
    if let Some((value, bid_iv, ask_iv)) = &q.option {
        if prev.is_none_or(|p| p.option.as_ref().map(|o| o.0) != Some(*value)) {
            out.push(option_tick(
                req_id,
                d(tick::BID_OPTION),
                value,
                *bid_iv,
                q.bid.unwrap_or(NOT_COMPUTED),
                !q.not_computed,
            ));
            out.push(option_tick(
                req_id,
                d(tick::ASK_OPTION),
                value,
                *ask_iv,
                q.ask.unwrap_or(NOT_COMPUTED),
                !q.not_computed,
            ));
            out.push(option_tick(
                req_id,
                d(tick::LAST_OPTION),
                value,
                Some(value.vol),
                q.last,
                !q.not_computed,
            ));
            out.push(option_tick(
                req_id,
                d(tick::MODEL_OPTION),
                value,
                Some(value.vol),
                value.price,
                !q.not_computed,
            ));
        }
    }
    out
}

/// Ticks for the session statistics (sent once, first).
pub fn stats_ticks(req_id: i32, s: &SessionStats, delayed: bool) -> Vec<Bytes> {
    let mut out = Vec::new();
    for (tick_type, value) in [
        (tick::HIGH, s.high),
        (tick::LOW, s.low),
        (tick::OPEN, s.open),
        (tick::CLOSE, Some(s.close)),
    ] {
        if let Some(v) = value {
            out.push(price(
                req_id,
                if delayed {
                    delayed_tick(tick_type)
                } else {
                    tick_type
                },
                v,
            ));
        }
    }
    out
}

/// The MarketDataType (1 live, 2 frozen) and TickReqParams a gateway sends first.
pub fn preamble(req_id: i32, market_data_type: i32, inst: &Instrument) -> Vec<Bytes> {
    vec![
        encode_proto(
            outbound::TICK_REQ_PARAMS,
            &proto::TickReqParams {
                req_id: Some(req_id),
                min_tick: Some(format!("{}", inst.min_tick())),
                bbo_exchange: Some("9c0001".to_string()),
                snapshot_permissions: Some(3),
            },
        ),
        encode_proto(
            outbound::MARKET_DATA_TYPE,
            &proto::MarketDataType {
                req_id: Some(req_id),
                market_data_type: Some(market_data_type),
            },
        ),
    ]
}

/// The end of a snapshot.
pub fn snapshot_end(req_id: i32) -> Bytes {
    encode_proto(
        outbound::TICK_SNAPSHOT_END,
        &proto::ReqIdOnly {
            req_id: Some(req_id),
        },
    )
}
