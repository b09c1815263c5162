//! Prices a gateway sends that are not prices.

use ibapi::market_data::realtime::Quote;

/// IB's "no price" value: a bid or ask of -1 means there is none (market closed, no
/// quote on that side). `ibapi` 5.5 keeps it as a number; a row must hold null.
const NO_PRICE: f64 = -1.0;

/// The quote with every "no price" sentinel turned into `None`. The Greeks' "not
/// computed" sentinels (-1 for prices and volatility, -2 for delta, gamma, vega and
/// theta) are already `None`: `ibapi` 5.5 drops them when it decodes the computation.
pub fn without_sentinels(mut q: Quote) -> Quote {
    for p in [&mut q.bid, &mut q.ask, &mut q.last] {
        if *p == Some(NO_PRICE) {
            *p = None;
        }
    }
    q
}

/// The quote's market data type as a row records it: IB's number (1 live, 2 frozen,
/// 3 delayed, 4 delayed frozen), none when the gateway did not say.
pub fn market_data_type(q: &Quote) -> Option<i64> {
    use ibapi::market_data::MarketDataType as T;
    match q.market_data_type? {
        T::Realtime => Some(1),
        T::Frozen => Some(2),
        T::Delayed => Some(3),
        T::DelayedFrozen => Some(4),
        T::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_market_data_type_is_ibs_number() {
        use ibapi::market_data::MarketDataType as T;
        let mut q = Quote::default();
        assert_eq!(market_data_type(&q), None);
        for (t, n) in [
            (T::Realtime, 1),
            (T::Frozen, 2),
            (T::Delayed, 3),
            (T::DelayedFrozen, 4),
        ] {
            q.market_data_type = Some(t);
            assert_eq!(market_data_type(&q), Some(n));
        }
    }

    #[test]
    fn a_bid_or_ask_of_minus_one_is_no_price() {
        let mut q = Quote::default();
        q.bid = Some(-1.0);
        q.ask = Some(-1.0);
        q.last = Some(101.5);
        let q = without_sentinels(q);
        assert_eq!((q.bid, q.ask, q.last), (None, None, Some(101.5)));
    }
}
