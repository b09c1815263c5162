//! The demo account's positions.

use chrono::{DateTime, Datelike, Duration, Utc};

use super::pricing::{self, Market};
use super::universe::{self, FutureRoot, Instrument, Kind, Right, Underlying};

/// One position of the account, by contract id.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionSpec {
    /// Contract id (see [`Universe`](super::Universe) and `docs/SIM.md` for how ids derive).
    pub conid: i32,
    /// Signed quantity (negative = short).
    pub quantity: f64,
    /// Average cost per unit as IB reports it (price × multiplier for derivatives).
    pub avg_cost: f64,
}

fn round5(x: f64) -> f64 {
    (x / 5.0).round() * 5.0
}

fn cost(market: &Market, inst: &Instrument, at: DateTime<Utc>, markup: f64) -> f64 {
    let value = market.mid(inst, at) * inst.multiplier() * markup;
    (value * 100.0).round() / 100.0
}

/// The demo portfolio as of `start`: SPY, QQQ and IWM shares, ES and NQ front months, a
/// 5-lot SPY iron condor on the first monthly expiry at least 30 days out (short puts 5 %
/// below the price, long puts 8 % below, short calls 4 % above, long calls 7 % above, strikes
/// on $5) and 10 QQQ calls 2 % out of the money on the same expiry.
pub fn demo(market: &Market, start: DateTime<Utc>) -> Vec<PositionSpec> {
    let today = pricing::ny_date(start);
    let mut out = Vec::new();
    let mut push = |inst: Instrument, quantity: f64, markup: f64| {
        out.push(PositionSpec {
            conid: inst.conid,
            quantity,
            avg_cost: cost(market, &inst, start, markup),
        });
    };
    let stock = |u: Underlying| Instrument {
        conid: u.conid(),
        underlying: u,
        kind: Kind::Stock,
    };
    push(stock(Underlying::Spy), 200.0, 0.97);
    push(stock(Underlying::Qqq), 100.0, 0.95);
    push(stock(Underlying::Iwm), -150.0, 1.02);
    for (root, qty) in [(FutureRoot::Es, 2.0), (FutureRoot::Nq, -1.0)] {
        if let Some(f) = universe::front_future(root, today) {
            push(f, qty, 0.99);
        }
    }
    let expiry = universe::listed_expiries(today).into_iter().find(|e| {
        *e >= today + Duration::days(30) && universe::third_friday(e.year(), e.month()) == Some(*e)
    });
    let Some(expiry) = expiry else {
        return out;
    };
    let option = |u: Underlying, strike: f64, right: Right| {
        universe::option_conid(u, expiry, strike, right).map(|conid| Instrument {
            conid,
            underlying: u,
            kind: Kind::Option {
                expiry,
                strike,
                right,
            },
        })
    };
    let spy = market.previous_close(Underlying::Spy, start);
    let legs = [
        (0.92, Right::Put, 5.0),
        (0.95, Right::Put, -5.0),
        (1.04, Right::Call, -5.0),
        (1.07, Right::Call, 5.0),
    ];
    for (moneyness, right, qty) in legs {
        if let Some(leg) = option(Underlying::Spy, round5(spy * moneyness), right) {
            push(leg, qty, 1.0);
        }
    }
    let qqq = market.previous_close(Underlying::Qqq, start);
    if let Some(call) = option(Underlying::Qqq, round5(qqq * 1.02), Right::Call) {
        push(call, 10.0, 1.0);
    }
    out
}
