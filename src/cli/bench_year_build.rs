//! The lake `ibq bench year` measures: N trading days of the configured schedule, written
//! through the engine's own writers and kept up by the engine's own upkeep, on the engine's
//! clock set to each simulated moment (`bench_year_time`), up to the moment the bench
//! starts. The queue store takes one commit per scheduled occurrence (as the scheduler's
//! sink enqueues them), one per claim and one per outcome; the result tables take one
//! write per request and one per streamed row of a leg every `[streaming]
//! write_interval_secs`, merged by the writers' own merges; the upkeep of the result
//! tables and of the queue's runs every hour as the engine's does. Request and result rows
//! carry the day they stand for.
//! Only the gateway's answers are made up (`bench_year_rows`: plausible prices, never
//! sentinels); `derived_stats` is the worker's own computation.
//!
//! Days before the last `exact_days` may be built with fewer, larger commits (a window's
//! result rows one commit per table, its queue rows one: `bench_year_window`) and one
//! upkeep a day. What those days leave behind
//! does not depend on how many commits wrote them once the upkeep has passed over them: a
//! closed day is merged into one file per table, the files it removed are deleted a day
//! later, its commit files two days later, and a checkpoint keeps removals for seven days
//! only. So the last days, written exactly as the engine writes them, decide the removed
//! files, the log and the checkpoints; docs/TABLES.md (The year benchmark) says what the
//! test `bench_year::a_lake_built_with_larger_commits_before_its_last_days_ends_as_an_exact_one`
//! compares.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, NaiveDate, NaiveTime, Utc};
use deltalake::arrow::array::RecordBatch;

use super::bench_year_rows::*;
pub use super::bench_year_time::SetClock;
use super::bench_year_time::Stamper;
use crate::config::Config;
use crate::lake::upkeep::Policy;
use crate::market::calendar::{new_york_date, new_york_instant, MarketCalendar};
use crate::market::clock::Clock;
use crate::queue::params::Params;
use crate::queue::store::QueueStore;
use crate::queue::{Actor, NewRequest, Priority, Request, RequestType};
use crate::scheduler::schedule::{Occurrence, Schedule};
use crate::worker::results::*;

/// What building took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub days: usize,
    /// Days written at the engine's commit sizes (the last ones).
    pub exact_days: usize,
    pub requests: usize,
    pub stream_rows: usize,
    pub queue_commits: i64,
    /// Upkeeps of the result tables run (the engine runs one an hour).
    pub upkeeps: usize,
    /// The moment the lake was left at.
    pub until: DateTime<Utc>,
    pub secs: f64,
}

/// How to build: the days, how many of the last ones at the engine's commit sizes (the
/// earlier ones grouped by `window_secs`), and the moment the lake is left at.
#[derive(Debug, Clone)]
pub struct Plan {
    pub days: Vec<NaiveDate>,
    pub exact_days: usize,
    pub window_secs: i64,
    pub until: DateTime<Utc>,
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
pub(super) fn request_of(occ: &Occurrence) -> anyhow::Result<NewRequest> {
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

/// Builds the plan's days into the lake at `root` (new or empty).
pub async fn build(root: &Path, config: &Config, plan: &Plan) -> anyhow::Result<Built> {
    let started = Instant::now();
    let schedule = Schedule::from_config(&config.scheduler)?;
    let calendar = MarketCalendar::from_config(&config.scheduler);
    let first = plan
        .days
        .first()
        .map(|d| new_york_instant(*d, NaiveTime::MIN))
        .unwrap_or(plan.until);
    let clock = Arc::new(SetClock::new(first));
    let mut store = QueueStore::open(root, config.queue.clone()).await?;
    store.set_market(crate::market::Market::new(
        calendar.clone(),
        Arc::clone(&clock) as Arc<dyn Clock>,
    ));
    store.set_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let v0 = store.table_version();
    let results =
        ResultTables::with_clock(root.to_path_buf(), Arc::clone(&clock) as Arc<dyn Clock>);
    let mut b = Builder {
        root: root.to_path_buf(),
        store,
        results,
        clock,
        stamper: Stamper::default(),
        next_tick: None,
        exact: false,
        leg: Leg::default(),
        every: Duration::seconds(config.streaming.write_interval_secs.max(1) as i64),
        batch: config.worker.batch_size.max(1),
        owner: format!("ibq-{}", std::process::id()),
        built: Built {
            days: 0,
            exact_days: 0,
            requests: 0,
            stream_rows: 0,
            queue_commits: 0,
            upkeeps: 0,
            until: plan.until,
            secs: 0.0,
        },
    };
    let n = plan.days.len();
    for (i, day) in plan.days.iter().enumerate() {
        let Some(hours) = calendar.hours(*day) else {
            continue;
        };
        let exact = i + plan.exact_days >= n;
        if exact && !b.exact {
            // From here on the upkeep runs every hour, as the engine's.
            b.exact = true;
            b.next_tick = Some(next_hour(b.clock.now()));
        }
        if !exact {
            b.tick(new_york_instant(
                *day,
                NaiveTime::from_hms_opt(0, 30, 0).expect("time"),
            ))
            .await?;
        }
        b.leg.start(hours.open, hours.close);
        let occurrences = schedule.occurrences_on(*day, &calendar);
        b.built.requests += occurrences.len();
        if exact {
            b.run_day(occurrences).await?;
        } else {
            b.run_day_grouped(occurrences, plan.window_secs.max(1))
                .await?;
        }
        let per = b.per_commit(plan.window_secs);
        b.at(hours.close, per).await?;
        b.built.days += 1;
        b.built.exact_days += usize::from(exact);
    }
    // On to the moment the lake is left at: hourly upkeeps after exact days, else one.
    if !b.exact {
        b.tick(plan.until).await?;
    }
    b.at(plan.until, 1).await?;
    b.stamper.stamp(&b.root, &b.clock)?;
    let mut built = b.built;
    built.queue_commits = b.store.table_version() - v0;
    built.secs = started.elapsed().as_secs_f64();
    Ok(built)
}

/// The first whole hour after `t`.
fn next_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t) + Duration::hours(1)
}

/// The streamed leg: one row every `every` from the open to the close.
#[derive(Debug, Default)]
struct Leg {
    next: Option<DateTime<Utc>>,
    close: Option<DateTime<Utc>>,
    price: f64,
    rng: Option<rand_chacha::ChaCha8Rng>,
}

impl Leg {
    fn start(&mut self, open: DateTime<Utc>, close: DateTime<Utc>) {
        use rand::SeedableRng;
        self.next = Some(open);
        self.close = Some(close);
        self.price = 12.0;
        self.rng = Some(rand_chacha::ChaCha8Rng::seed_from_u64(
            open.timestamp() as u64
        ));
    }
}

pub(super) struct Builder {
    root: std::path::PathBuf,
    pub(super) store: QueueStore,
    pub(super) results: ResultTables,
    pub(super) clock: Arc<SetClock>,
    stamper: Stamper,
    /// The next hourly upkeep (exact days only).
    next_tick: Option<DateTime<Utc>>,
    exact: bool,
    leg: Leg,
    every: Duration,
    pub(super) batch: usize,
    pub(super) owner: String,
    built: Built,
}

impl Builder {
    /// Streamed rows per commit for a window (one without).
    pub(super) fn per_commit(&self, window_secs: i64) -> usize {
        if self.exact {
            1
        } else {
            (window_secs / self.every.num_seconds().max(1)).max(1) as usize
        }
    }

    /// Brings the lake to moment `t`: the hourly upkeeps due by then and the leg's rows
    /// before it (`per_commit` to a commit), each at its own moment; then sets the clock.
    pub(super) async fn at(&mut self, t: DateTime<Utc>, per_commit: usize) -> anyhow::Result<()> {
        while let Some(tick) = self.next_tick.filter(|k| *k <= t) {
            self.stream_until(tick, per_commit).await?;
            self.tick(tick).await?;
            self.next_tick = Some(tick + Duration::hours(1));
        }
        self.stream_until(t, per_commit).await?;
        self.clock.set(t);
        Ok(())
    }

    /// The leg's rows due before `t`.
    async fn stream_until(&mut self, t: DateTime<Utc>, per_commit: usize) -> anyhow::Result<()> {
        let (Some(close), Some(rng)) = (self.leg.close, self.leg.rng.as_mut()) else {
            return Ok(());
        };
        let end = t.min(close);
        while let Some(next) = self.leg.next.filter(|n| *n < end) {
            let mut at = Vec::with_capacity(per_commit);
            let mut prices = Vec::with_capacity(per_commit);
            let mut n = next;
            while n < end && at.len() < per_commit {
                self.leg.price = step_price(self.leg.price, rng);
                at.push(n);
                prices.push((self.leg.price * 100.0).round() / 100.0);
                n += self.every;
            }
            self.clock.set(*at.last().expect("a row"));
            self.results
                .write(POSITION_UPDATES, None, leg_rows(&at, &prices))
                .await?;
            self.built.stream_rows += at.len();
            self.leg.next = Some(n);
        }
        Ok(())
    }

    /// One upkeep at `at`, as the engine's hourly one: the files written since the last
    /// one stamped with their moments, then the result tables kept up with the days
    /// before `at`'s New York date closed, and the queue's tables.
    async fn tick(&mut self, at: DateTime<Utc>) -> anyhow::Result<()> {
        self.clock.set(at);
        self.stamper.stamp(&self.root, &self.clock)?;
        for report in self
            .results
            .upkeep(&Policy::default(), new_york_date(at), at)
            .await
        {
            report?;
        }
        self.store.upkeep().await?;
        self.built.upkeeps += 1;
        Ok(())
    }

    /// The day's occurrences slot by slot: each enqueued in its own commit (as the
    /// scheduler's sink does), then claimed in the worker's batches, run one after another
    /// a second apart and completed one commit each.
    async fn run_day(&mut self, occurrences: Vec<Occurrence>) -> anyhow::Result<()> {
        let mut i = 0;
        while i < occurrences.len() {
            let first = i;
            while i < occurrences.len() && occurrences[i].slot == occurrences[first].slot {
                i += 1;
            }
            let mut t = occurrences[first].slot;
            self.at(t, 1).await?;
            for occ in &occurrences[first..i] {
                self.store
                    .enqueue_many_at(vec![request_of(occ)?], t)
                    .await?;
            }
            loop {
                t += Duration::seconds(1);
                self.at(t, 1).await?;
                let claimed = self.store.claim(self.batch, &self.owner, t).await?;
                if claimed.is_empty() {
                    break;
                }
                for r in claimed {
                    t += Duration::seconds(1);
                    self.at(t, 1).await?;
                    let data = run_request(&self.results, &r, t).await?;
                    let outcome = self
                        .store
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
}

/// What one request makes, as its handler would, with the gateway's answers made up: rows
/// for one table, or, for `derived_stats` (which reads the lake and replaces a date's
/// rows), what it wrote itself.
pub(super) enum Made {
    Rows(&'static str, RecordBatch),
    Written(Written),
}

/// The rows one request makes (see `Made`). Bars already stored, or made earlier in the
/// same build, are left out, as the worker's duplicate check leaves them out.
pub(super) async fn request_rows(
    results: &ResultTables,
    req: &Request,
    now: DateTime<Utc>,
) -> anyhow::Result<Made> {
    let params = Params::parse(req.request_type, &req.parameters).map_err(anyhow::Error::msg)?;
    let mut rng = rng_for(req, now);
    Ok(match (req.request_type, params) {
        (RequestType::OptionChain, Params::OptionChain(p)) => Made::Rows(
            OPTION_SNAPSHOTS,
            option_chain(req, p.target_dte, p.strikes as usize, now, &mut rng),
        ),
        (RequestType::FuturesSnapshot, _) => {
            Made::Rows(FUTURES_SNAPSHOTS, futures_snapshot(req, now, &mut rng))
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
            results
                .add_bar_times(&key, times.iter().map(|t| t.timestamp()))
                .await;
            Made::Rows(MARKET_BARS, batch)
        }
        (RequestType::PositionUpdate, _) => {
            Made::Rows(POSITION_UPDATES, positions(req, now, &mut rng))
        }
        (RequestType::DerivedStats, Params::DerivedStats(p)) => Made::Written(
            crate::worker::handlers::derived_stats(results, req, &p, now)
                .await
                .map_err(|e| anyhow::anyhow!("derived_stats: {e}"))?,
        ),
        (t, _) => anyhow::bail!("{t} has parameters of another type"),
    })
}

/// Writes one request's rows in a commit of their own (with any written at the same time),
/// as the engine's worker does. Returns its `result_data`.
async fn run_request(
    results: &ResultTables,
    req: &Request,
    now: DateTime<Utc>,
) -> anyhow::Result<serde_json::Value> {
    let written = match request_rows(results, req, now).await? {
        Made::Rows(table, batch) => results.write(table, Some(req.request_id), batch).await?,
        Made::Written(w) => w,
    };
    Ok(serde_json::to_value(written)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn upkeeps_fall_on_whole_hours() {
        let t: DateTime<Utc> = "2026-11-24T14:35:10Z".parse().unwrap();
        assert_eq!(
            next_hour(t),
            "2026-11-24T15:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let h: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        assert_eq!(
            next_hour(h),
            "2026-11-24T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
