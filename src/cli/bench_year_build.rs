//! The lake `ibq bench year` measures: N trading days of the configured schedule, written
//! through the engine's own writers at the engine's commit sizes. The queue store takes one
//! commit per scheduled occurrence (as the scheduler's sink enqueues them), one per claim
//! and one per outcome; the result tables take one write per request and one per streamed
//! leg every five seconds, each merged and compacted by the writers' own upkeep. The
//! engine's clock is set to each simulated moment, so request and result rows carry the
//! day they stand for. Only the gateway's answers are made up (plausible prices, never
//! sentinels); `derived_stats` is the worker's own computation.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use deltalake::arrow::array::RecordBatch;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::lake::columns::BatchBuilder;
use crate::market::calendar::{new_york_date, new_york_instant, MarketCalendar};
use crate::market::clock::Clock;
use crate::queue::params::Params;
use crate::queue::store::QueueStore;
use crate::queue::{Actor, Enqueued, NewRequest, Priority, Request, RequestType};
use crate::scheduler::schedule::{Occurrence, Schedule};
use crate::worker::results::*;

/// Seconds between two rows of a streamed leg (the streaming manager's default interval).
pub const STREAM_EVERY_SECS: i64 = 5;
/// Rows one position poll writes: the demo account's positions that do not stream.
const POLLED_POSITIONS: usize = 3;

/// The engine's clock during the build: set to each simulated moment.
#[derive(Debug)]
pub struct SetClock(Mutex<DateTime<Utc>>);

impl SetClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for SetClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What building took.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Built {
    pub days: usize,
    pub requests: usize,
    pub stream_rows: usize,
    pub queue_commits: i64,
    pub secs: f64,
}

/// The `n` trading days before `today` (New York), oldest first.
pub fn trading_days_before(
    today: NaiveDate,
    n: usize,
    calendar: &MarketCalendar,
) -> Vec<NaiveDate> {
    let mut days: Vec<NaiveDate> = today
        .iter_days()
        .rev()
        .skip(1)
        .filter(|d| calendar.day(*d).is_trading_day())
        .take(n)
        .collect();
    days.reverse();
    days
}

/// The request the scheduler's sink makes of an occurrence.
fn request_of(occ: &Occurrence) -> anyhow::Result<NewRequest> {
    Ok(NewRequest {
        request_type: occ.request_type,
        symbol: if occ.symbol.is_empty() {
            "ALL".into()
        } else {
            occ.symbol.clone()
        },
        priority: Priority::try_from(occ.priority as i64).map_err(anyhow::Error::msg)?,
        parameters: occ.parameters.clone(),
        changed_by: Actor::Scheduler,
        schedule_key: Some(occ.key.clone()),
        during: occ.during,
    })
}

/// Builds `days` into the lake at `root` (which may already hold earlier days).
///
/// `window_secs` 0 writes at the engine's commit sizes. A window of W seconds makes the
/// build faster by grouping: everything due within W seconds is enqueued in one commit,
/// its requests run together (the result writer's group commit joins their rows, one
/// commit per table) and complete in one commit, and the streamed leg's rows of the
/// window share one commit. Rows are the same either way; only the commit count differs.
pub async fn build(
    root: &Path,
    config: &Config,
    days: &[NaiveDate],
    window_secs: i64,
) -> anyhow::Result<Built> {
    let started = Instant::now();
    let schedule = Schedule::from_config(&config.scheduler)?;
    let calendar = MarketCalendar::from_config(&config.scheduler);
    let first = days
        .first()
        .map(|d| new_york_instant(*d, NaiveTime::MIN))
        .unwrap_or_else(Utc::now);
    let clock = Arc::new(SetClock::new(first));
    let mut store = QueueStore::open(root, config.queue.clone()).await?;
    store.set_market(crate::market::Market::new(
        calendar.clone(),
        Arc::clone(&clock) as Arc<dyn Clock>,
    ));
    let v0 = store.table_version();
    let results = Arc::new(ResultTables::new(root.to_path_buf()));
    let mut built = Built::default();
    for day in days {
        let Some(hours) = calendar.hours(*day) else {
            continue;
        };
        // The streaming manager writes its leg while the worker runs requests.
        let stream = tokio::spawn(stream_leg(
            Arc::clone(&results),
            hours.open,
            hours.close,
            window_secs,
        ));
        let occurrences = schedule.occurrences_on(*day, &calendar);
        built.requests += occurrences.len();
        run_day(
            &mut store,
            &results,
            &clock,
            config,
            occurrences,
            window_secs,
        )
        .await?;
        built.stream_rows += stream.await??;
        upkeep(&mut store, &results, clock.now()).await?;
        built.days += 1;
    }
    built.queue_commits = store.table_version() - v0;
    built.secs = started.elapsed().as_secs_f64();
    Ok(built)
}

/// The upkeep the engine runs besides what runs inside its commits, once a day at the
/// day's last moment. Today the queue compacts itself when its files pile up (inside
/// `QueueStore::flush`) and the result writer merges small files every 64 commits (inside
/// `ResultTables::write`), both during the day above; the engine runs no other upkeep, so
/// there is nothing more to call. A lake upkeep the engine runs (checkpoints, vacuum,
/// retention) belongs here, called as the engine calls it.
async fn upkeep(
    _store: &mut QueueStore,
    _results: &ResultTables,
    _now: DateTime<Utc>,
) -> anyhow::Result<()> {
    Ok(())
}

/// The day's occurrences slot by slot: each enqueued in its own commit (as the scheduler's
/// sink does), then claimed in the worker's batches, run one after another a second apart
/// and completed one commit each. With a window, slot by window as `build` says.
async fn run_day(
    store: &mut QueueStore,
    results: &ResultTables,
    clock: &SetClock,
    config: &Config,
    occurrences: Vec<Occurrence>,
    window_secs: i64,
) -> anyhow::Result<()> {
    let owner = format!("ibq-{}", std::process::id());
    let batch = config.worker.batch_size.max(1);
    let bucket = |o: &Occurrence| {
        if window_secs > 0 {
            o.slot.timestamp().div_euclid(window_secs)
        } else {
            o.slot.timestamp()
        }
    };
    let mut i = 0;
    while i < occurrences.len() {
        let first = i;
        while i < occurrences.len() && bucket(&occurrences[i]) == bucket(&occurrences[first]) {
            i += 1;
        }
        let group = &occurrences[first..i];
        let mut t = group[group.len() - 1].slot;
        if window_secs > 0 {
            run_window(store, results, clock, batch, &owner, group).await?;
            continue;
        }
        clock.set(t);
        for occ in group {
            store.enqueue_many_at(vec![request_of(occ)?], t).await?;
        }
        loop {
            t += Duration::seconds(1);
            clock.set(t);
            let claimed = store.claim(batch, &owner, t).await?;
            if claimed.is_empty() {
                break;
            }
            for r in claimed {
                t += Duration::seconds(1);
                clock.set(t);
                let data = run_request(results, &r, t).await?;
                let outcome = store
                    .change_each(&[r.request_id], |q, id| {
                        q.prepare_succeed(id, data.clone(), t)
                    })
                    .await?;
                for o in outcome {
                    o?;
                }
            }
        }
    }
    Ok(())
}

/// A window's slots in order, each enqueued, claimed and run as the engine would, with
/// their queue rows staged and committed once at the window's end, after the requests'
/// rows (a slot's requests run together, so the result writer groups them into one commit
/// per table).
async fn run_window(
    store: &mut QueueStore,
    results: &ResultTables,
    clock: &SetClock,
    batch: usize,
    owner: &str,
    group: &[Occurrence],
) -> anyhow::Result<()> {
    let lease = Duration::seconds(store.lease_secs() as i64);
    let mut runs = Vec::new();
    let mut k = 0;
    while k < group.len() {
        let slot = group[k].slot;
        clock.set(slot);
        while k < group.len() && group[k].slot == slot {
            let (calendar, now) = (&store.market().calendar, store.market().now());
            if let Enqueued::Added(r) =
                store
                    .state()
                    .prepare_enqueue_at(request_of(&group[k])?, slot, calendar, now)?
            {
                store.stage(r);
            }
            k += 1;
        }
        let mut t = slot + Duration::seconds(1);
        loop {
            clock.set(t);
            let (calendar, now) = (&store.market().calendar, store.market().now());
            let claimed = store
                .state()
                .prepare_claim_at(batch, owner, lease, t, calendar, now);
            if claimed.is_empty() {
                break;
            }
            for r in claimed {
                let r = store.stage(r);
                t += Duration::seconds(1);
                runs.push((r, t));
            }
        }
        // The slot's requests finish before the next slot's (an open request would make
        // the next one a duplicate).
        let done = futures::future::try_join_all(
            runs.iter()
                .map(|(r, at)| async move { run_request(results, r, *at).await }),
        )
        .await?;
        for ((r, at), data) in runs.drain(..).zip(done) {
            let row = store.state().prepare_succeed(r.request_id, data, at)?;
            store.stage(row);
        }
    }
    store.flush().await?;
    Ok(())
}

/// Writes one request's rows as its handler would, with the gateway's answers made up.
async fn run_request(
    results: &ResultTables,
    req: &Request,
    now: DateTime<Utc>,
) -> anyhow::Result<serde_json::Value> {
    let params = Params::parse(req.request_type, &req.parameters).map_err(anyhow::Error::msg)?;
    let mut rng =
        ChaCha8Rng::seed_from_u64(now.timestamp() as u64 ^ req.request_id.as_u128() as u64);
    let written = match (req.request_type, params) {
        (RequestType::OptionChain, Params::OptionChain(p)) => {
            let batch = option_chain(req, p.target_dte, p.strikes as usize, now, &mut rng);
            results
                .write(OPTION_SNAPSHOTS, Some(req.request_id), batch)
                .await?
        }
        (RequestType::FuturesSnapshot, _) => {
            let batch = futures_snapshot(req, now, &mut rng);
            results
                .write(FUTURES_SNAPSHOTS, Some(req.request_id), batch)
                .await?
        }
        (RequestType::MarketBars, Params::MarketBars(p)) => {
            let key = (
                req.symbol.clone(),
                p.bar_size.clone(),
                p.what_to_show.clone(),
            );
            let finished: Vec<DateTime<Utc>> = daily_bar_times(now, 5)
                .into_iter()
                .filter(|t| crate::worker::handlers::bar_finished(*t, true, &p.bar_size, now))
                .collect();
            // The duplicate check reads only the days these bars fall on, as the worker's.
            let days: std::collections::BTreeSet<_> = finished
                .iter()
                .map(|t| crate::worker::results::bar_day(&p.bar_size, *t))
                .collect();
            let stored = results.stored_bar_times(&key, &days).await?;
            let times: Vec<DateTime<Utc>> = finished
                .into_iter()
                .filter(|t| !stored.contains(&t.timestamp()))
                .collect();
            let batch = bars(req, &p.bar_size, &p.what_to_show, &times, now, &mut rng);
            let w = results
                .write(MARKET_BARS, Some(req.request_id), batch)
                .await?;
            results
                .add_bar_times(&key, times.iter().map(|t| t.timestamp()))
                .await;
            w
        }
        (RequestType::PositionUpdate, _) => {
            let batch = positions(req, now, &mut rng);
            results
                .write(POSITION_UPDATES, Some(req.request_id), batch)
                .await?
        }
        (RequestType::DerivedStats, Params::DerivedStats(p)) => {
            crate::worker::handlers::derived_stats(results, req, &p, now)
                .await
                .map_err(|e| anyhow::anyhow!("derived_stats: {e}"))?
        }
        (t, _) => anyhow::bail!("{t} has parameters of another type"),
    };
    Ok(serde_json::to_value(written)?)
}

/// The streamed leg's rows from `open` to `close`, one every five seconds, each written in
/// its own commit (or a window's rows in one commit).
async fn stream_leg(
    results: Arc<ResultTables>,
    open: DateTime<Utc>,
    close: DateTime<Utc>,
    window_secs: i64,
) -> anyhow::Result<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(open.timestamp() as u64);
    let per_commit = (window_secs / STREAM_EVERY_SECS).max(1) as usize;
    let mut t = open;
    let mut n = 0;
    let mut price: f64 = 12.0;
    while t < close {
        let mut at = Vec::with_capacity(per_commit);
        let mut prices = Vec::with_capacity(per_commit);
        while t < close && at.len() < per_commit {
            price = (price * (1.0 + rng.gen_range(-0.002..0.002))).max(0.05);
            at.push(t);
            prices.push((price * 100.0).round() / 100.0);
            t += Duration::seconds(STREAM_EVERY_SECS);
        }
        let k = at.len();
        let batch = BatchBuilder::new(POSITION_UPDATE_COLUMNS)
            .utf8(vec![None::<&str>; k])
            .utf8(vec![Some("stream"); k])
            .timestamp(at.iter().map(|t| Some(*t)))
            .utf8(vec![None::<&str>; k])
            .i64(vec![Some(700_000_001); k])
            .utf8(vec![Some("SPY"); k])
            .utf8(vec![Some("OPT"); k])
            .utf8(vec![Some("20261218"); k])
            .f64(vec![Some(600.0); k])
            .utf8(vec![Some("C"); k])
            .f64(vec![Some(2.0); k])
            .f64(vec![None; k])
            .f64(prices.iter().map(|p| Some(*p)))
            .f64(prices.iter().map(|p| Some(p * 2.0 * 100.0)))
            .i64(vec![Some(1); k])
            .finish();
        results.write(POSITION_UPDATES, None, batch).await?;
        n += k;
    }
    Ok(n)
}

fn base_price(symbol: &str) -> f64 {
    match symbol {
        "SPY" => 600.0,
        "QQQ" => 520.0,
        "IWM" => 230.0,
        "ES" => 6000.0,
        "NQ" => 21000.0,
        "RTY" => 2300.0,
        _ => 100.0,
    }
}

/// A price that wanders a little from day to day and within the day.
fn price_at(symbol: &str, now: DateTime<Utc>, rng: &mut ChaCha8Rng) -> f64 {
    let day = now.num_days_from_ce() as f64;
    let drift = 1.0 + 0.05 * (day / 40.0).sin();
    let p = base_price(symbol) * drift * (1.0 + rng.gen_range(-0.003..0.003));
    (p * 100.0).round() / 100.0
}

fn id(req: &Request, n: usize) -> Vec<Option<String>> {
    vec![Some(req.request_id.to_string()); n]
}

/// The Friday on or after `day + dte`: a listed monthly-style expiry.
fn expiry_near(today: NaiveDate, dte: u32) -> NaiveDate {
    let mut d = today + Duration::days(dte as i64);
    while d.weekday() != chrono::Weekday::Fri {
        d += Duration::days(1);
    }
    d
}

fn option_chain(
    req: &Request,
    target_dte: u32,
    strikes_each_side: usize,
    now: DateTime<Utc>,
    rng: &mut ChaCha8Rng,
) -> RecordBatch {
    let sym = req.symbol.as_str();
    let price = price_at(sym, now, rng);
    let today = new_york_date(now);
    let expiry = expiry_near(today, target_dte);
    let exp = expiry.format("%Y%m%d").to_string();
    let dte = (expiry - today).num_days();
    let step = if price > 300.0 { 5.0 } else { 1.0 };
    let atm = (price / step).round() * step;
    let k = strikes_each_side as i64;
    let mut rows: Vec<(f64, &str)> = Vec::new();
    for i in -k..=k {
        for right in ["C", "P"] {
            rows.push((atm + i as f64 * step, right));
        }
    }
    let n = rows.len();
    let quote: Vec<(f64, f64, f64)> = rows
        .iter()
        .map(|(strike, right)| {
            let intrinsic = if *right == "C" {
                (price - strike).max(0.0)
            } else {
                (strike - price).max(0.0)
            };
            let mid = intrinsic + price * 0.02 * (dte as f64 / 45.0).sqrt() + 0.05;
            let spread = (mid * 0.01).max(0.01);
            let iv = 0.15 + rng.gen_range(0.0..0.05);
            (
                ((mid - spread) * 100.0).round() / 100.0,
                ((mid + spread) * 100.0).round() / 100.0,
                iv,
            )
        })
        .collect();
    let delta = |strike: f64, right: &str| {
        let d = (0.5 - (strike - price) / (price * 0.1)).clamp(0.01, 0.99);
        if right == "C" {
            d
        } else {
            d - 1.0
        }
    };
    BatchBuilder::new(OPTION_SNAPSHOT_COLUMNS)
        .utf8(id(req, n))
        .timestamp(vec![Some(now); n])
        .utf8(vec![Some(sym); n])
        .f64(vec![Some(price); n])
        .i64(
            rows.iter()
                .map(|(s, r)| Some(600_000_000 + (*s * 10.0) as i64 * 2 + i64::from(*r == "P"))),
        )
        .utf8(rows.iter().map(|(s, r)| {
            Some(format!(
                "{sym:<6}{}{r}{:08}",
                &exp[2..],
                (*s * 1000.0) as i64
            ))
        }))
        .utf8(vec![Some(exp.as_str()); n])
        .i64(vec![Some(dte); n])
        .f64(rows.iter().map(|(s, _)| Some(*s)))
        .utf8(rows.iter().map(|(_, r)| Some(*r)))
        .f64(quote.iter().map(|q| Some(q.0)))
        .f64(quote.iter().map(|q| Some(q.1)))
        .f64(
            quote
                .iter()
                .map(|q| Some(((q.0 + q.1) / 2.0 * 100.0).round() / 100.0)),
        )
        .f64((0..n).map(|i| Some(10.0 + i as f64)))
        .f64((0..n).map(|i| Some(12.0 + i as f64)))
        .f64((0..n).map(|i| Some(100.0 * (1 + i % 7) as f64)))
        .f64(quote.iter().map(|q| Some(q.2)))
        .f64(rows.iter().map(|(s, r)| Some(delta(*s, r))))
        .f64(vec![Some(0.01); n])
        .f64(vec![Some(0.3); n])
        .f64(vec![Some(-0.2); n])
        .f64(quote.iter().map(|q| Some((q.0 + q.1) / 2.0)))
        .i64(vec![Some(1); n])
        .finish()
}

fn futures_snapshot(req: &Request, now: DateTime<Utc>, rng: &mut ChaCha8Rng) -> RecordBatch {
    let sym = req.symbol.as_str();
    let price = price_at(sym, now, rng);
    // The quarterly month after the roll.
    let today = new_york_date(now);
    let mut month =
        NaiveDate::from_ymd_opt(today.year(), 3 * today.month().div_ceil(3), 1).unwrap_or(today);
    let third_friday = |m: NaiveDate| {
        let mut d = m.with_day(15).unwrap_or(m);
        while d.weekday() != chrono::Weekday::Fri {
            d += Duration::days(1);
        }
        d
    };
    if (third_friday(month) - today).num_days() <= 8 {
        month = (month + Duration::days(95)).with_day(1).unwrap_or(month);
    }
    let expiry = third_friday(month);
    let code = ["H", "M", "U", "Z"][(month.month() as usize / 3).saturating_sub(1) % 4];
    BatchBuilder::new(FUTURES_SNAPSHOT_COLUMNS)
        .utf8(id(req, 1))
        .timestamp([Some(now)])
        .utf8([Some(sym)])
        .i64([Some(500_000_000 + month.num_days_from_ce() as i64)])
        .utf8([Some(format!("{sym}{code}{}", month.year() % 10))])
        .utf8([Some(month.format("%Y%m").to_string())])
        .date([Some(expiry)])
        .timestamp([Some(new_york_instant(
            expiry,
            NaiveTime::from_hms_opt(9, 30, 0).unwrap_or_default(),
        ))])
        .f64([Some(price - 0.25)])
        .f64([Some(price + 0.25)])
        .f64([Some(price)])
        .f64([Some(20.0)])
        .f64([Some(18.0)])
        .f64([Some(150_000.0)])
        .f64([Some(price * 1.004)])
        .f64([Some(price * 0.996)])
        .f64([Some(price * 0.999)])
        .i64([Some(1)])
        .finish()
}

/// The dates (at 00:00 UTC, as IB stamps daily bars) of the `n` weekdays up to `now`'s
/// New York date.
fn daily_bar_times(now: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let today = new_york_date(now);
    let mut out: Vec<DateTime<Utc>> = today
        .iter_days()
        .rev()
        .filter(|d| d.weekday().num_days_from_monday() < 5)
        .take(n)
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        .collect();
    out.reverse();
    out
}

fn bars(
    req: &Request,
    bar_size: &str,
    what: &str,
    times: &[DateTime<Utc>],
    now: DateTime<Utc>,
    rng: &mut ChaCha8Rng,
) -> RecordBatch {
    let sym = req.symbol.as_str();
    let n = times.len();
    let ohlc: Vec<(f64, f64, f64, f64)> = times
        .iter()
        .map(|t| {
            let o = price_at(sym, *t, rng);
            let c = price_at(sym, *t + Duration::hours(20), rng);
            (o, o.max(c) * 1.003, o.min(c) * 0.997, c)
        })
        .collect();
    BatchBuilder::new(MARKET_BAR_COLUMNS)
        .utf8(id(req, n))
        .utf8(vec![Some(sym); n])
        .i64(vec![Some(756_733); n])
        .utf8(vec![Some(bar_size); n])
        .utf8(vec![Some(what); n])
        .timestamp(times.iter().map(|t| Some(*t)))
        .f64(ohlc.iter().map(|b| Some(b.0)))
        .f64(ohlc.iter().map(|b| Some(b.1)))
        .f64(ohlc.iter().map(|b| Some(b.2)))
        .f64(ohlc.iter().map(|b| Some(b.3)))
        .f64(vec![Some(60_000_000.0); n])
        .f64(ohlc.iter().map(|b| Some((b.0 + b.3) / 2.0)))
        .i64(vec![Some(400_000); n])
        .timestamp(vec![Some(now); n])
        .finish()
}

fn positions(req: &Request, now: DateTime<Utc>, rng: &mut ChaCha8Rng) -> RecordBatch {
    let n = POLLED_POSITIONS;
    let held = [
        ("SPY", "STK", 100.0),
        ("QQQ", "STK", 50.0),
        ("ES", "FUT", 1.0),
    ];
    let prices: Vec<f64> = held.iter().map(|h| price_at(h.0, now, rng)).collect();
    BatchBuilder::new(POSITION_UPDATE_COLUMNS)
        .utf8(id(req, n))
        .utf8(vec![Some("poll"); n])
        .timestamp(vec![Some(now); n])
        .utf8(vec![Some("DU1234567"); n])
        .i64((0..n).map(|i| Some(756_733 + i as i64)))
        .utf8(held.iter().map(|h| Some(h.0)))
        .utf8(held.iter().map(|h| Some(h.1)))
        .utf8(held.iter().map(|h| (h.1 == "FUT").then_some("20261218")))
        .f64(vec![None; n])
        .utf8(vec![None::<&str>; n])
        .f64(held.iter().map(|h| Some(h.2)))
        .f64(prices.iter().map(|p| Some(p * 0.95)))
        .f64(prices.iter().map(|p| Some(*p)))
        .f64(
            held.iter()
                .zip(&prices)
                .map(|(h, p)| Some(p * h.2 * if h.1 == "FUT" { 50.0 } else { 1.0 })),
        )
        .i64(vec![Some(1); prices.len()])
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trading_days_before_skip_weekends_holidays_and_today() {
        let cal = MarketCalendar::from_config(&Config::default().scheduler);
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(); // a Monday
        let days = trading_days_before(today, 3, &cal);
        // Friday 27 (early close), Wednesday 25, Tuesday 24: Thanksgiving is closed.
        let want: Vec<NaiveDate> = ["2026-11-24", "2026-11-25", "2026-11-27"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(days, want);
    }

    #[test]
    fn the_default_schedule_makes_about_1250_requests_a_day() {
        let config = Config::default();
        let schedule = Schedule::from_config(&config.scheduler).unwrap();
        let cal = MarketCalendar::from_config(&config.scheduler);
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let n = schedule.occurrences_on(day, &cal).len();
        assert!((1200..=1300).contains(&n), "{n} requests");
    }

    #[test]
    fn a_chain_of_five_strikes_each_side_has_22_quotes_with_prices() {
        let now = Utc::now();
        let new = NewRequest {
            request_type: RequestType::OptionChain,
            symbol: "SPY".into(),
            priority: Priority::NORMAL,
            parameters: json!({}),
            changed_by: Actor::Scheduler,
            schedule_key: None,
            during: Default::default(),
        };
        let crate::queue::Enqueued::Added(req) = crate::queue::QueueState::new()
            .prepare_enqueue(new, now)
            .unwrap()
        else {
            panic!("an empty queue has no duplicate")
        };
        let b = option_chain(&req, 45, 5, now, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(b.num_rows(), 22);
        let r = crate::lake::columns::BatchReader::new(&b);
        let (bid, ask) = (r.f64("bid").unwrap(), r.f64("ask").unwrap());
        for i in 0..22 {
            let (b, a) = (bid[i].unwrap(), ask[i].unwrap());
            assert!(b > 0.0 && a > b, "row {i}: bid {b} ask {a}");
        }
    }
}
