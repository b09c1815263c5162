//! The contract universe: stocks/ETFs, the VIX index, quarterly index futures and listed
//! options, all with stable contract ids.
//!
//! Contract ids:
//! - SPY 756733, QQQ 320227571, IWM 9579970 (STK), VIX 13455763 (IND): IB's real ids.
//! - Futures: `500_000_000 + root × 100_000 + (year − 2000) × 100 + month`, roots ES 0, NQ 1,
//!   RTY 2 (ES December 2026 = 500002612).
//! - Options: `1_000_000_000 + ((u × 8192 + days since 2020-01-01 of the expiry) × 4096 +
//!   strike × 2) × 2 + (1 for puts)`, u SPY 0, QQQ 1, IWM 2. No seed involved: an option's id
//!   follows from its underlying, expiry, strike and right alone.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

use super::pricing::{self};
use super::proto;

mod lookup;

pub use lookup::Universe;

/// The underlyings every price derives from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Underlying {
    Spy = 0,
    Qqq = 1,
    Iwm = 2,
    Vix = 3,
    /// Eversource Energy, the NYSE stock whose ticker is `ES` like the CME E-mini S&P 500
    /// future: a real collision of symbols. Priced as a fixed fraction of SPY (it has no walk
    /// of its own, so adding it changed no other price).
    Eversource = 4,
}

impl Underlying {
    /// All underlyings.
    pub const ALL: [Underlying; 4] = [Self::Spy, Self::Qqq, Self::Iwm, Self::Vix];
    /// Every stock and index of the universe: [`Self::ALL`] and the ones priced off them.
    pub const LISTED: [Underlying; 5] =
        [Self::Spy, Self::Qqq, Self::Iwm, Self::Vix, Self::Eversource];
    /// The underlyings with listed options.
    pub const OPTIONABLE: [Underlying; 3] = [Self::Spy, Self::Qqq, Self::Iwm];

    /// Ticker symbol.
    pub fn symbol(self) -> &'static str {
        ["SPY", "QQQ", "IWM", "VIX", "ES"][self as usize]
    }

    /// IB contract id of the stock or index itself.
    pub fn conid(self) -> i32 {
        [756_733, 320_227_571, 9_579_970, 13_455_763, 70_000_001][self as usize]
    }

    fn primary_exchange(self) -> &'static str {
        ["ARCA", "NASDAQ", "ARCA", "CBOE", "NYSE"][self as usize]
    }

    fn long_name(self) -> &'static str {
        [
            "SPDR S&P 500 ETF TRUST",
            "INVESCO QQQ TRUST SERIES 1",
            "ISHARES RUSSELL 2000 ETF",
            "CBOE Volatility Index",
            "EVERSOURCE ENERGY",
        ][self as usize]
    }

    fn from_symbol(symbol: &str) -> Option<Self> {
        Self::LISTED.into_iter().find(|u| u.symbol() == symbol)
    }

    /// An exchange-traded fund (the others are a common stock and an index).
    fn is_fund(self) -> bool {
        matches!(self, Self::Spy | Self::Qqq | Self::Iwm)
    }
}

/// Call or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Right {
    Call,
    Put,
}

impl Right {
    /// `C` or `P` as IB writes it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Call => "C",
            Self::Put => "P",
        }
    }

    /// Parses `C`, `CALL`, `P`, `PUT` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "C" | "CALL" => Some(Self::Call),
            "P" | "PUT" => Some(Self::Put),
            _ => None,
        }
    }
}

/// The index futures roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FutureRoot {
    Es = 0,
    Nq = 1,
    Rty = 2,
}

impl FutureRoot {
    /// All roots.
    pub const ALL: [FutureRoot; 3] = [Self::Es, Self::Nq, Self::Rty];

    /// Root symbol.
    pub fn symbol(self) -> &'static str {
        ["ES", "NQ", "RTY"][self as usize]
    }

    /// The ETF the future tracks.
    pub fn underlying(self) -> Underlying {
        [Underlying::Spy, Underlying::Qqq, Underlying::Iwm][self as usize]
    }

    /// Index points per ETF dollar (ES ≈ SPY × 10, NQ ≈ QQQ × 41.2, RTY ≈ IWM × 10).
    pub fn index_factor(self) -> f64 {
        [10.0, 41.2, 10.0][self as usize]
    }

    /// Contract multiplier.
    pub fn multiplier(self) -> f64 {
        [50.0, 20.0, 50.0][self as usize]
    }

    /// Minimum price increment.
    pub fn min_tick(self) -> f64 {
        [0.25, 0.25, 0.1][self as usize]
    }

    fn long_name(self) -> &'static str {
        [
            "E-mini S&P 500",
            "E-mini NASDAQ 100",
            "E-mini Russell 2000 Index",
        ][self as usize]
    }

    fn from_symbol(symbol: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.symbol() == symbol)
    }
}

/// What kind of contract an instrument is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Stock,
    Index,
    Future {
        root: FutureRoot,
        expiry: NaiveDate,
    },
    Option {
        expiry: NaiveDate,
        strike: f64,
        right: Right,
    },
}

/// One contract of the universe.
#[derive(Debug, Clone, PartialEq)]
pub struct Instrument {
    /// IB contract id.
    pub conid: i32,
    /// The underlying whose path prices it.
    pub underlying: Underlying,
    /// Stock, index, future or option.
    pub kind: Kind,
}

const FUTURE_BASE: i32 = 500_000_000;
const OPTION_BASE: i32 = 1_000_000_000;
const OPTION_EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(2020, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};
/// Weekly expiries (every Friday) are listed this many days ahead.
const WEEKLY_DAYS: i64 = 91;
/// Monthly expiries (third Fridays) are listed this many days ahead.
const MONTHLY_DAYS: i64 = 185;

fn yyyymmdd(d: NaiveDate) -> String {
    d.format("%Y%m%d").to_string()
}

impl Instrument {
    /// IB security type.
    pub fn sec_type(&self) -> &'static str {
        match self.kind {
            Kind::Stock => "STK",
            Kind::Index => "IND",
            Kind::Future { .. } => "FUT",
            Kind::Option { .. } => "OPT",
        }
    }

    /// Symbol (the root for futures, the underlying for options).
    pub fn symbol(&self) -> &'static str {
        match self.kind {
            Kind::Future { root, .. } => root.symbol(),
            _ => self.underlying.symbol(),
        }
    }

    /// Minimum price increment.
    pub fn min_tick(&self) -> f64 {
        match self.kind {
            Kind::Future { root, .. } => root.min_tick(),
            _ => 0.01,
        }
    }

    /// Contract multiplier (1 for stocks and indexes).
    pub fn multiplier(&self) -> f64 {
        match self.kind {
            Kind::Future { root, .. } => root.multiplier(),
            Kind::Option { .. } => 100.0,
            _ => 1.0,
        }
    }

    /// Expiry of a future or option.
    pub fn expiry(&self) -> Option<NaiveDate> {
        match self.kind {
            Kind::Future { expiry, .. } | Kind::Option { expiry, .. } => Some(expiry),
            _ => None,
        }
    }

    /// IB local symbol: `ESZ6` for futures, the OCC symbol for options.
    pub fn local_symbol(&self) -> String {
        match self.kind {
            Kind::Future { root, expiry } => {
                let code = ["F", "G", "H", "J", "K", "M", "N", "Q", "U", "V", "X", "Z"]
                    [expiry.month0() as usize];
                format!("{}{}{}", root.symbol(), code, expiry.year() % 10)
            }
            Kind::Option {
                expiry,
                strike,
                right,
            } => format!(
                "{:<6}{}{}{:08}",
                self.underlying.symbol(),
                expiry.format("%y%m%d"),
                right.code(),
                (strike * 1000.0).round() as i64
            ),
            _ => self.underlying.symbol().to_string(),
        }
    }

    /// The contract as IB describes it, on `exchange` (its home exchange when empty).
    pub fn to_proto(&self, exchange: &str) -> proto::Contract {
        let home = match self.kind {
            Kind::Stock | Kind::Option { .. } => "SMART",
            Kind::Index => "CBOE",
            Kind::Future { .. } => "CME",
        };
        let exchange = if exchange.is_empty() { home } else { exchange };
        let (strike, right) = match self.kind {
            Kind::Option { strike, right, .. } => (Some(strike), Some(right.code().to_string())),
            _ => (None, None),
        };
        let expiry = self.expiry().map(yyyymmdd);
        // A gateway sends a future's last trade as date, time and exchange zone (CME equity
        // index futures stop at 08:30 Chicago time); an option's as the date alone.
        let last_trade = match self.kind {
            Kind::Future { .. } => expiry.as_ref().map(|d| format!("{d} 08:30:00 US/Central")),
            _ => expiry.clone(),
        };
        proto::Contract {
            con_id: Some(self.conid),
            symbol: Some(self.symbol().to_string()),
            sec_type: Some(self.sec_type().to_string()),
            last_trade_date_or_contract_month: last_trade,
            strike,
            right,
            multiplier: matches!(self.kind, Kind::Future { .. } | Kind::Option { .. })
                .then(|| self.multiplier()),
            exchange: Some(exchange.to_string()),
            primary_exch: matches!(self.kind, Kind::Stock)
                .then(|| self.underlying.primary_exchange().to_string()),
            currency: Some("USD".to_string()),
            local_symbol: Some(self.local_symbol()),
            trading_class: Some(self.symbol().to_string()),
            include_expired: None,
            last_trade_date: expiry,
        }
    }

    /// Contract details as a gateway sends them, with trading hours for the week from `today`.
    pub fn details(&self, today: NaiveDate) -> proto::ContractDetails {
        let (under_con_id, under_symbol, under_sec_type) = match self.kind {
            Kind::Future { .. } => (Some(Underlying::Spy.conid()), None, Some("IND".to_string())),
            Kind::Option { .. } => (
                Some(self.underlying.conid()),
                Some(self.underlying.symbol().to_string()),
                Some("STK".to_string()),
            ),
            _ => (None, None, None),
        };
        let under_con_id = match self.kind {
            Kind::Future { root, .. } => Some(future_index_conid(root)),
            _ => under_con_id,
        };
        let long_name = match self.kind {
            Kind::Future { root, .. } => root.long_name(),
            _ => self.underlying.long_name(),
        };
        let (trading, liquid) = self.hours(today);
        proto::ContractDetails {
            market_name: Some(self.symbol().to_string()),
            min_tick: Some(format!("{}", self.min_tick())),
            order_types: Some("ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,GAT,GTC,GTD,GTT,HID,IOC,LIT,LMT,MIT,MKT,MTL,NGCOMB,NONALGO,OCA,PEGBENCH,SCALE,SNAPMID,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,WHATIF".to_string()),
            valid_exchanges: Some(match self.kind {
                Kind::Stock => "SMART,AMEX,NYSE,CBOE,ARCA,NASDAQ,BATS,IEX".to_string(),
                Kind::Index => "CBOE".to_string(),
                Kind::Future { .. } => "CME,QBALGO".to_string(),
                Kind::Option { .. } => "SMART,AMEX,CBOE,ISE,PHLX,BOX,ARCA,BATS,MIAX,NASDAQOM".to_string(),
            }),
            price_magnifier: Some(1),
            under_con_id,
            long_name: Some(long_name.to_string()),
            contract_month: self.expiry().map(|d| d.format("%Y%m").to_string()),
            industry: matches!(self.kind, Kind::Stock).then(|| {
                if self.underlying.is_fund() { "Funds" } else { "Utilities" }.to_string()
            }),
            category: matches!(self.kind, Kind::Stock).then(|| {
                if self.underlying.is_fund() { "Equity Fund" } else { "Electric-Integrated" }
                    .to_string()
            }),
            time_zone_id: Some("US/Eastern".to_string()),
            trading_hours: Some(trading),
            liquid_hours: Some(liquid),
            under_symbol,
            under_sec_type,
            real_expiration_date: self.expiry().map(yyyymmdd),
            stock_type: matches!(self.kind, Kind::Stock)
                .then(|| if self.underlying.is_fund() { "ETF" } else { "COMMON" }.to_string()),
            min_size: Some("1".to_string()),
            size_increment: Some("1".to_string()),
            suggested_size_increment: Some(if matches!(self.kind, Kind::Stock) { "100" } else { "1" }.to_string()),
        }
    }

    /// Trading and liquid hours in IB's `YYYYMMDD:HHMM-YYYYMMDD:HHMM;…` form.
    fn hours(&self, today: NaiveDate) -> (String, String) {
        let mut trading = Vec::new();
        let mut liquid = Vec::new();
        for offset in 0..7 {
            let d = today + Duration::days(offset);
            let day = yyyymmdd(d);
            if !pricing::is_trading_day(d) {
                trading.push(format!("{day}:CLOSED"));
                liquid.push(format!("{day}:CLOSED"));
                continue;
            }
            let prev = yyyymmdd(d - Duration::days(1));
            match self.kind {
                Kind::Future { .. } => {
                    trading.push(format!("{prev}:1800-{day}:1700"));
                    liquid.push(format!("{day}:0930-{day}:1615"));
                }
                Kind::Stock => {
                    trading.push(format!("{day}:0400-{day}:2000"));
                    liquid.push(format!("{day}:0930-{day}:1600"));
                }
                _ => {
                    trading.push(format!("{day}:0930-{day}:1615"));
                    liquid.push(format!("{day}:0930-{day}:1600"));
                }
            }
        }
        (trading.join(";"), liquid.join(";"))
    }
}

/// The cash index a future tracks is not in the universe; its id is derived for details only.
fn future_index_conid(root: FutureRoot) -> i32 {
    [11_004_968, 11_004_958, 416_888][root as usize]
}

/// The third Friday of a month.
pub fn third_friday(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Fri, 3)
}

/// The quarterly futures listed on `today`: the next four March/June/September/December
/// contracts whose expiry (third Friday) has not passed.
pub fn listed_futures(root: FutureRoot, today: NaiveDate) -> Vec<Instrument> {
    let mut out = Vec::new();
    let (mut year, mut month) = (today.year(), today.month().div_ceil(3) * 3);
    while out.len() < 4 {
        if let Some(expiry) = third_friday(year, month) {
            if expiry >= today {
                out.push(future(root, expiry));
            }
        }
        month += 3;
        if month > 12 {
            month = 3;
            year += 1;
        }
    }
    out
}

/// The front month on `today`: the first listed contract more than 8 days from expiry.
/// Positions roll on the Thursday eight days before expiry, like the CME roll date.
pub fn front_future(root: FutureRoot, today: NaiveDate) -> Option<Instrument> {
    listed_futures(root, today)
        .into_iter()
        .find(|f| f.expiry().is_some_and(|e| today < e - Duration::days(8)))
}

fn future(root: FutureRoot, expiry: NaiveDate) -> Instrument {
    Instrument {
        conid: FUTURE_BASE
            + root as i32 * 100_000
            + (expiry.year() - 2000) * 100
            + expiry.month() as i32,
        underlying: root.underlying(),
        kind: Kind::Future { root, expiry },
    }
}

/// The option contract id of (underlying, expiry, strike, right); `None` off the id space
/// (expiries 2020-2042, strikes up to 2047.5 in half dollars).
pub fn option_conid(u: Underlying, expiry: NaiveDate, strike: f64, right: Right) -> Option<i32> {
    let ui = Underlying::OPTIONABLE.iter().position(|x| *x == u)? as i64;
    let day = (expiry - OPTION_EPOCH).num_days();
    let halves = strike * 2.0;
    if !(0..8192).contains(&day) || halves.fract() != 0.0 || !(1.0..4096.0).contains(&halves) {
        return None;
    }
    let id = ((ui * 8192 + day) * 4096 + halves as i64) * 2 + i64::from(right == Right::Put);
    i32::try_from(i64::from(OPTION_BASE) + id).ok()
}

fn decode_option_conid(conid: i32) -> Option<(Underlying, NaiveDate, f64, Right)> {
    let id = i64::from(conid) - i64::from(OPTION_BASE);
    if id < 0 {
        return None;
    }
    let right = if id % 2 == 1 { Right::Put } else { Right::Call };
    let halves = (id / 2) % 4096;
    let day = (id / 2 / 4096) % 8192;
    let ui = id / 2 / 4096 / 8192;
    let u = *Underlying::OPTIONABLE.get(usize::try_from(ui).ok()?)?;
    Some((
        u,
        OPTION_EPOCH + Duration::days(day),
        halves as f64 / 2.0,
        right,
    ))
}

/// Option expiries listed on `today`: every Friday for 91 days and the monthly (third
/// Friday) expiries for 185 days, today included while it is a Friday.
pub fn listed_expiries(today: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut d = today;
    while (d - today).num_days() <= MONTHLY_DAYS {
        if d.weekday() == Weekday::Fri {
            let weekly = (d - today).num_days() <= WEEKLY_DAYS;
            let monthly = third_friday(d.year(), d.month()) == Some(d);
            if weekly || monthly {
                out.push(d);
            }
        }
        d += Duration::days(1);
    }
    out
}

/// Strikes listed around `reference`: every $1 within ±25 %, every $5 within ±50 %.
pub fn listed_strikes(reference: f64) -> Vec<f64> {
    let lo = (reference * 0.5 / 5.0).ceil() as i64 * 5;
    let hi = (reference * 1.5 / 5.0).floor() as i64 * 5;
    (lo.max(1)..=hi)
        .filter(|k| {
            let k = *k as f64;
            k % 5.0 == 0.0 || (k >= reference * 0.75 && k <= reference * 1.25)
        })
        .map(|k| k as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_conids_round_trip() {
        let expiry = NaiveDate::from_ymd_opt(2026, 12, 18).unwrap_or_default();
        let id = option_conid(Underlying::Spy, expiry, 600.5, Right::Put).unwrap_or_default();
        assert_eq!(
            decode_option_conid(id),
            Some((Underlying::Spy, expiry, 600.5, Right::Put))
        );
        let id = option_conid(Underlying::Iwm, expiry, 2047.5, Right::Call).unwrap_or_default();
        assert_eq!(
            decode_option_conid(id),
            Some((Underlying::Iwm, expiry, 2047.5, Right::Call))
        );
    }

    #[test]
    fn futures_roll_a_week_before_expiry() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default();
        let listed = listed_futures(FutureRoot::Es, d(2026, 11, 23));
        assert_eq!(listed[0].local_symbol(), "ESZ6");
        assert_eq!(listed[0].conid, 500_002_612);
        assert_eq!(listed.len(), 4);
        // December 2026 expires on the 18th: front until the 9th, then March.
        assert_eq!(
            front_future(FutureRoot::Es, d(2026, 12, 9)).map(|f| f.local_symbol()),
            Some("ESZ6".into())
        );
        assert_eq!(
            front_future(FutureRoot::Es, d(2026, 12, 10)).map(|f| f.local_symbol()),
            Some("ESH7".into())
        );
    }

    #[test]
    fn expiries_and_strikes() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap_or_default();
        let e = listed_expiries(today);
        assert!(e.len() >= 14 && (*e.last().unwrap_or(&today) - today).num_days() >= 90);
        let s = listed_strikes(600.0);
        assert!(s.contains(&601.0) && s.contains(&400.0) && !s.contains(&401.0));
    }
}
