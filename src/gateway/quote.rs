//! Prices a gateway sends that are not prices.

use ibapi::contracts::SecurityType;
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

/// The sides the gateway said it has no quote for (a bid or ask of -1: after the close an
/// option has none). Such a side is known to be empty: a quote does not wait for it, and its
/// row holds null there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoQuote {
    pub bid: bool,
    pub ask: bool,
}

impl NoQuote {
    /// Notes the sides `q` (before [`without_sentinels`]) says are empty.
    pub fn note(&mut self, q: &Quote) {
        self.bid |= q.bid == Some(NO_PRICE);
        self.ask |= q.ask == Some(NO_PRICE);
    }
}

/// The fields a quote waits for: bid, ask and last; the last alone for an index (it has no
/// bid or ask); and for an option also the model's option computation. A side the gateway
/// says is empty is not waited for, but a quote needs at least one price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteNeeds {
    Index,
    Plain,
    Option,
}

/// How far a quote has filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Not yet a price to write.
    Missing,
    /// Bid and ask (and the model for an option) are in; the last may follow.
    Priced,
    /// Every field it waits for is in.
    Complete,
}

impl QuoteNeeds {
    pub fn of(security_type: &SecurityType) -> Self {
        match security_type {
            SecurityType::Index => Self::Index,
            SecurityType::Option | SecurityType::FuturesOption => Self::Option,
            _ => Self::Plain,
        }
    }

    /// How far `q` (sentinels already removed) has filled, `none` being the sides the
    /// gateway said are empty.
    pub fn state(self, q: &Quote, none: NoQuote) -> Fill {
        let sides = (q.bid.is_some() || none.bid) && (q.ask.is_some() || none.ask);
        let some_price = q.bid.is_some() || q.ask.is_some() || q.last.is_some();
        let priced = match self {
            Self::Index => q.last.is_some(),
            Self::Plain => sides && some_price,
            Self::Option => sides && some_price && q.model_greeks.is_some(),
        };
        match (priced, q.last.is_some()) {
            (false, _) => Fill::Missing,
            (true, true) => Fill::Complete,
            (true, false) => Fill::Priced,
        }
    }
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

    #[test]
    fn a_side_said_empty_is_not_waited_for_but_a_price_is() {
        let mut raw = Quote::default();
        raw.bid = Some(-1.0);
        raw.ask = Some(-1.0);
        let mut none = NoQuote::default();
        none.note(&raw);
        assert_eq!(
            none,
            NoQuote {
                bid: true,
                ask: true
            }
        );
        let q = without_sentinels(raw);
        // No bid, no ask, no last: nothing to write, whatever the sides say.
        assert_eq!(QuoteNeeds::Plain.state(&q, none), Fill::Missing);
        assert_eq!(
            QuoteNeeds::Plain.state(&q, NoQuote::default()),
            Fill::Missing
        );
        let mut q = q;
        q.last = Some(101.5);
        assert_eq!(QuoteNeeds::Plain.state(&q, none), Fill::Complete);
        // Sides not said empty are still waited for.
        assert_eq!(
            QuoteNeeds::Plain.state(&q, NoQuote::default()),
            Fill::Missing
        );
        // An option waits for the model's computation as well.
        assert_eq!(QuoteNeeds::Option.state(&q, none), Fill::Missing);
        q.model_greeks = Some(Default::default());
        assert_eq!(QuoteNeeds::Option.state(&q, none), Fill::Complete);
        let mut priced = Quote::default();
        priced.bid = Some(1.0);
        priced.ask = Some(1.1);
        assert_eq!(QuoteNeeds::Plain.state(&priced, none), Fill::Priced);
        assert_eq!(QuoteNeeds::Index.state(&priced, none), Fill::Missing);
    }
}
