//! Prices: a seeded, mean-reverting random walk per underlying that is a pure function of
//! (seed, sim time), futures tied to their index by cost of carry, and option values from
//! Black-Scholes on a volatility surface with put skew and a term structure.
//!
//! The walk has one level per calendar day (a correlated daily shock on weekdays, flat on
//! weekends) and, inside each day, a Brownian bridge of 1440 minute points seeded by
//! (seed, underlying, day), so any instant can be priced without replaying the past and every
//! consumer (ticks, snapshots, historical bars) sees the same path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::America::New_York;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::universe::{Instrument, Kind, Right, Underlying};

/// Risk-free rate used for carry and option values.
pub const RATE: f64 = 0.045;
/// Minutes in a walk day (days start at 00:00 EST = 05:00 UTC all year).
const MINUTES: usize = 1440;
/// Unix time of 2000-01-03 05:00 UTC, the first walk day.
const EPOCH_TS: i64 = 946_875_600;
/// Days the daily walk may extend to (about 2054), bounding memory on absurd dates.
const MAX_DAYS: i64 = 20_000;
const CACHE_DAYS: usize = 512;

struct Spec {
    base: f64,
    daily_vol: f64,
    reversion: f64,
    market_beta: f64,
}

/// Eversource Energy's price per SPY dollar (about $65 against SPY's 600).
const EVERSOURCE_PER_SPY: f64 = 65.0 / 600.0;

fn spec(u: Underlying) -> Spec {
    match u {
        Underlying::Spy => Spec {
            base: 600.0,
            daily_vol: 0.010,
            reversion: 0.01,
            market_beta: 0.95,
        },
        Underlying::Qqq => Spec {
            base: 520.0,
            daily_vol: 0.013,
            reversion: 0.01,
            market_beta: 0.90,
        },
        Underlying::Iwm => Spec {
            base: 230.0,
            daily_vol: 0.014,
            reversion: 0.01,
            market_beta: 0.80,
        },
        Underlying::Vix => Spec {
            base: 16.0,
            daily_vol: 0.07,
            reversion: 0.06,
            market_beta: -0.75,
        },
        // Not walked: priced as EVERSOURCE_PER_SPY × SPY (see `Market::underlying`).
        Underlying::Eversource => Spec {
            base: 65.0,
            daily_vol: 0.010,
            reversion: 0.01,
            market_beta: 0.95,
        },
    }
}

/// Dividend yield of an underlying (carry of its future, dividends in option values).
pub fn dividend_yield(u: Underlying) -> f64 {
    match u {
        Underlying::Spy => 0.013,
        Underlying::Qqq => 0.006,
        Underlying::Iwm => 0.012,
        Underlying::Vix => 0.0,
        Underlying::Eversource => 0.045,
    }
}

/// SplitMix64: a fast stateless hash for per-second noise and sizes.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller; 1 - u keeps the logarithm finite.
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

struct Daily {
    levels: Vec<[f64; 4]>,
    rng: ChaCha8Rng,
}

/// (underlying, walk day) of a cached intraday path.
type DayKey = (usize, i64);

/// The price paths of every underlying, deterministic for a seed.
pub struct Market {
    seed: u64,
    daily: Mutex<Daily>,
    intraday: Mutex<HashMap<DayKey, Arc<[f64]>>>,
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market").field("seed", &self.seed).finish()
    }
}

/// Walk day and seconds into it for an instant.
fn walk_time(t: DateTime<Utc>) -> (i64, f64) {
    let s = t.timestamp() - EPOCH_TS;
    let day = s.div_euclid(86_400);
    let secs = s.rem_euclid(86_400) as f64 + f64::from(t.timestamp_subsec_micros()) / 1e6;
    (day, secs)
}

fn is_weekend_day(day: i64) -> bool {
    // Day 0 is a Monday.
    day.rem_euclid(7) >= 5
}

impl Market {
    /// The paths for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            daily: Mutex::new(Daily {
                levels: Vec::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            }),
            intraday: Mutex::new(HashMap::new()),
        }
    }

    /// Log deviation from base of every underlying at the end of walk day `day`.
    fn day_levels(&self, day: i64) -> [f64; 4] {
        if day < 0 {
            return [0.0; 4];
        }
        let day = day.min(MAX_DAYS) as usize;
        let mut daily = self.daily.lock().unwrap_or_else(|e| e.into_inner());
        while daily.levels.len() <= day {
            let i = daily.levels.len();
            let prev = if i == 0 {
                [0.0; 4]
            } else {
                daily.levels[i - 1]
            };
            let market = normal(&mut daily.rng);
            let mut next = prev;
            for u in Underlying::ALL {
                let s = spec(u);
                let own = normal(&mut daily.rng);
                if !is_weekend_day(i as i64) {
                    let beta = s.market_beta;
                    let shock = beta * market + (1.0 - beta * beta).sqrt() * own;
                    next[u as usize] = prev[u as usize] * (1.0 - s.reversion) + s.daily_vol * shock;
                }
            }
            daily.levels.push(next);
        }
        daily.levels[day]
    }

    fn day_path(&self, u: Underlying, day: i64) -> Arc<[f64]> {
        let key = (u as usize, day);
        if let Some(path) = self
            .intraday
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Arc::clone(path);
        }
        let start = self.day_levels(day - 1)[u as usize];
        let end = self.day_levels(day)[u as usize];
        let mut path = vec![start; MINUTES + 1];
        if !is_weekend_day(day) {
            let mut rng =
                ChaCha8Rng::seed_from_u64(mix(self.seed ^ mix((u as u64) << 32 ^ day as u64)));
            let step = spec(u).daily_vol * 0.6 / (MINUTES as f64).sqrt();
            let mut w = vec![0.0; MINUTES + 1];
            for k in 1..=MINUTES {
                w[k] = w[k - 1] + step * normal(&mut rng);
            }
            for (k, p) in path.iter_mut().enumerate() {
                let f = k as f64 / MINUTES as f64;
                *p = start + (end - start) * f + (w[k] - f * w[MINUTES]);
            }
        }
        let path: Arc<[f64]> = path.into();
        let mut cache = self.intraday.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_DAYS {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&path));
        path
    }

    /// The price of an underlying at `t`.
    pub fn underlying(&self, u: Underlying, t: DateTime<Utc>) -> f64 {
        if u == Underlying::Eversource {
            return self.underlying(Underlying::Spy, t) * EVERSOURCE_PER_SPY;
        }
        let (day, secs) = walk_time(t);
        let path = self.day_path(u, day);
        let pos = secs / 60.0;
        let k = (pos as usize).min(MINUTES - 1);
        let f = pos - k as f64;
        let mut level = path[k] * (1.0 - f) + path[k + 1] * f;
        if !is_weekend_day(day) {
            // A little per-second noise so streaming quotes flicker between minute points.
            let h = mix(self.seed ^ mix(((u as u64) << 40) ^ t.timestamp() as u64));
            level += (unit(h) - 0.5) * spec(u).daily_vol * 0.004;
        }
        spec(u).base * level.exp()
    }

    /// The underlying price at the last regular-session close at or before `t`.
    pub fn previous_close(&self, u: Underlying, t: DateTime<Utc>) -> f64 {
        self.underlying(u, last_close_before(t))
    }

    /// Theoretical mid of any instrument at `t`.
    pub fn mid(&self, inst: &Instrument, t: DateTime<Utc>) -> f64 {
        let s = self.underlying(inst.underlying, t);
        match &inst.kind {
            Kind::Stock | Kind::Index => s,
            Kind::Future { root, expiry } => {
                let years = years_to(*expiry, t);
                s * root.index_factor() * ((RATE - dividend_yield(inst.underlying)) * years).exp()
            }
            Kind::Option {
                expiry,
                strike,
                right,
            } => {
                self.option_value(inst.underlying, *expiry, *strike, *right, t)
                    .price
            }
        }
    }

    /// Black-Scholes value and greeks of an option at `t`, on the simulator's vol surface.
    pub fn option_value(
        &self,
        u: Underlying,
        expiry: NaiveDate,
        strike: f64,
        right: Right,
        t: DateTime<Utc>,
    ) -> OptionValue {
        let s = self.underlying(u, t);
        let years = years_to(expiry, t).max(1.0 / (365.0 * 24.0 * 60.0));
        let q = dividend_yield(u);
        let forward = s * ((RATE - q) * years).exp();
        let vix = self.underlying(Underlying::Vix, t);
        let vol = surface_vol(u, strike, forward, years, vix);
        let mut value = black_scholes(s, strike, years, RATE, q, vol, right);
        value.pv_dividend = s * (1.0 - (-q * years).exp());
        value
    }
}

/// Years from `t` to 16:00 New York time on `expiry` (zero once expired).
pub fn years_to(expiry: NaiveDate, t: DateTime<Utc>) -> f64 {
    let expires = expiry_instant(expiry);
    ((expires - t).num_seconds().max(0) as f64) / (365.0 * 86_400.0)
}

/// The regular session's close in New York on `date`, when options expire: 16:00, or 13:00
/// on an NYSE early-close day (the crate's calendar).
pub fn expiry_instant(date: NaiveDate) -> DateTime<Utc> {
    if crate::market::calendar::rule_early_close(date).is_some() {
        ny_instant(date, 13, 0)
    } else {
        ny_instant(date, 16, 0)
    }
}

/// A New York wall-clock time as an instant (the earlier one when ambiguous).
pub fn ny_instant(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let naive = date.and_hms_opt(hour, minute, 0).unwrap_or_default();
    New_York
        .from_local_datetime(&naive)
        .earliest()
        .map_or_else(|| Utc.from_utc_datetime(&naive), |d| d.with_timezone(&Utc))
}

/// The New York calendar date of an instant.
pub fn ny_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&New_York).date_naive()
}

/// A weekday that is not an NYSE holiday (the crate's exchange calendar rules).
pub fn is_trading_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
        && crate::scheduler::calendar::rule_holiday(date).is_none()
}

/// The last regular-session close (16:00 New York, 13:00 on an early-close day) at or
/// before `t`.
pub fn last_close_before(t: DateTime<Utc>) -> DateTime<Utc> {
    let mut date = ny_date(t);
    for _ in 0..10 {
        let close = expiry_instant(date);
        if is_trading_day(date) && close <= t {
            return close;
        }
        date = date.pred_opt().unwrap_or(date);
    }
    t
}

/// Fraction of the regular session elapsed at `t` on its New York day (0 before the open).
pub fn session_fraction(t: DateTime<Utc>) -> f64 {
    let ny = t.with_timezone(&New_York);
    if !is_trading_day(ny.date_naive()) {
        return 1.0;
    }
    let minute = f64::from(ny.hour() * 60 + ny.minute()) + f64::from(ny.second()) / 60.0;
    let length = if crate::market::calendar::rule_early_close(ny.date_naive()).is_some() {
        210.0
    } else {
        390.0
    };
    ((minute - 570.0) / length).clamp(0.0, 1.0)
}

/// Implied volatility on the simulator's surface: ATM level from VIX per underlying, a term
/// structure that mean-reverts toward a long-run level, and a put skew in standardized
/// moneyness.
pub fn surface_vol(u: Underlying, strike: f64, forward: f64, years: f64, vix: f64) -> f64 {
    let scale = match u {
        Underlying::Spy => 0.85,
        Underlying::Qqq => 1.15,
        Underlying::Iwm => 1.3,
        Underlying::Vix => 5.0,
        Underlying::Eversource => 0.9,
    };
    let short = vix / 100.0 * scale;
    let long = 0.19 * scale;
    let atm = long + (short - long) * (-(years - 30.0 / 365.0).max(0.0) / 0.5).exp();
    let m = (strike / forward).ln() / (atm * years.sqrt()).max(1e-6);
    let smile = 1.0 - 0.10 * m + 0.02 * m * m;
    (atm * smile.clamp(0.5, 3.0)).max(0.05)
}

/// Value and greeks of one option (vega per vol point, theta per calendar day).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OptionValue {
    pub price: f64,
    pub vol: f64,
    pub delta: f64,
    pub gamma: f64,
    pub vega: f64,
    pub theta: f64,
    pub und_price: f64,
    pub pv_dividend: f64,
}

fn erfc(x: f64) -> f64 {
    // Numerical Recipes' Chebyshev fit, relative error below 1.2e-7.
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (std::f64::consts::TAU).sqrt()
}

/// Black-Scholes-Merton with a continuous dividend yield.
pub fn black_scholes(
    s: f64,
    k: f64,
    t: f64,
    r: f64,
    q: f64,
    vol: f64,
    right: Right,
) -> OptionValue {
    let sq = vol * t.sqrt();
    let d1 = ((s / k).ln() + (r - q + 0.5 * vol * vol) * t) / sq;
    let d2 = d1 - sq;
    let dq = (-q * t).exp();
    let dr = (-r * t).exp();
    let (price, delta, theta_carry) = match right {
        Right::Call => (
            s * dq * norm_cdf(d1) - k * dr * norm_cdf(d2),
            dq * norm_cdf(d1),
            q * s * dq * norm_cdf(d1) - r * k * dr * norm_cdf(d2),
        ),
        Right::Put => (
            k * dr * norm_cdf(-d2) - s * dq * norm_cdf(-d1),
            -dq * norm_cdf(-d1),
            -q * s * dq * norm_cdf(-d1) + r * k * dr * norm_cdf(-d2),
        ),
    };
    let theta_year = -s * dq * norm_pdf(d1) * vol / (2.0 * t.sqrt()) + theta_carry;
    OptionValue {
        price: price.max(0.0),
        vol,
        delta,
        gamma: dq * norm_pdf(d1) / (s * sq),
        vega: s * dq * norm_pdf(d1) * t.sqrt() / 100.0,
        theta: theta_year / 365.0,
        und_price: s,
        pv_dividend: 0.0,
    }
}

/// The volatility at which Black-Scholes gives `price` (bisection), if there is one.
pub fn implied_vol(price: f64, s: f64, k: f64, t: f64, q: f64, right: Right) -> Option<f64> {
    let (mut lo, mut hi) = (0.005, 5.0);
    let at = |v: f64| black_scholes(s, k, t, RATE, q, v, right).price;
    if !(at(lo)..=at(hi)).contains(&price) {
        return None;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if at(mid) < price {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_deterministic_and_sane() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 23, 15, 0, 0)
            .single()
            .unwrap_or_default();
        let a = Market::new(42);
        let b = Market::new(42);
        let c = Market::new(7);
        let spy = a.underlying(Underlying::Spy, t);
        assert_eq!(spy, b.underlying(Underlying::Spy, t));
        assert_ne!(spy, c.underlying(Underlying::Spy, t));
        assert!((300.0..1200.0).contains(&spy), "{spy}");
        let vix = a.underlying(Underlying::Vix, t);
        assert!((5.0..80.0).contains(&vix), "{vix}");
    }

    #[test]
    fn black_scholes_parity_and_iv() {
        let (s, k, t, q) = (600.0, 590.0, 0.25, 0.013);
        let c = black_scholes(s, k, t, RATE, q, 0.2, Right::Call);
        let p = black_scholes(s, k, t, RATE, q, 0.2, Right::Put);
        let parity = s * (-q * t).exp() - k * (-RATE * t).exp();
        assert!((c.price - p.price - parity).abs() < 1e-4);
        let iv = implied_vol(c.price, s, k, t, q, Right::Call).unwrap_or_default();
        assert!((iv - 0.2).abs() < 1e-6);
        assert!(c.delta > 0.0 && p.delta < 0.0 && c.gamma > 0.0 && c.theta < 0.0);
    }

    #[test]
    fn surface_has_put_skew() {
        let low = surface_vol(Underlying::Spy, 540.0, 600.0, 0.1, 16.0);
        let atm = surface_vol(Underlying::Spy, 600.0, 600.0, 0.1, 16.0);
        let high = surface_vol(Underlying::Spy, 640.0, 600.0, 0.1, 16.0);
        assert!(low > atm && atm > high * 0.95, "{low} {atm} {high}");
    }
}
