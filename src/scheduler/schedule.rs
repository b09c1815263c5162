//! The validated schedule: which requests are due when, on the NYSE calendar.
//!
//! A job runs either once a trading day at a New York time (`at`), or every interval from the
//! start of a phase while that phase lasts (`every` + `during`). Slots are a pure function of
//! the job and the calendar, so every process computes the same slot times and the same
//! occurrence keys: that is what makes enqueueing idempotent across restarts.
//!
//! Decisions:
//! - Nothing runs on weekends, holidays or configured closures.
//! - `at` jobs run on every trading day, early closes included, at their configured time even if
//!   the market has closed by then (16:30 `derived_stats` still runs on a 13:00 close: the
//!   day traded and its statistics are wanted).
//! - `every` slots start exactly at the phase start and stop before its end, so a 5-minute
//!   regular-hours job runs 09:30…15:55 (78 slots), and 09:30…12:55 (42) on an early close.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::{new_york_date, new_york_instant, MarketCalendar};
use super::config::{JobConfig, SchedulerConfig};
use super::phase::Phase;
use crate::market::window::During;
use crate::queue::RequestType;

/// How many days ahead the next slot of a job is looked for (see [`Schedule::next_runs`]).
const SEARCH_DAYS: i64 = 400;

/// Whether a job of this type makes sense without symbols (the worker then decides what to
/// fetch: every non-streamed position, every statistic).
fn symbols_optional(t: RequestType) -> bool {
    matches!(t, RequestType::PositionUpdate | RequestType::DerivedStats)
}

/// When a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Once per trading day at this New York time.
    At(NaiveTime),
    /// Every `interval` from the start of `during` until (excluding) its end.
    Every {
        /// Time between slots (at least one second).
        interval: Duration,
        /// The phase the slots fall in; never [`Phase::Closed`].
        during: Phase,
    },
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timing::At(t) => write!(f, "at {}", t.format("%H:%M")),
            Timing::Every { interval, during } => {
                write!(f, "every {} during {during}", format_interval(*interval))
            }
        }
    }
}

/// A validated job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Unique name, the first part of every occurrence key.
    pub name: String,
    /// What the occurrences ask the worker to do.
    pub request_type: RequestType,
    /// One request per symbol; empty means one request without a symbol.
    pub symbols: Vec<String>,
    /// A JSON object, copied into every request.
    pub parameters: serde_json::Value,
    /// 1 immediate, 2 normal, 3 background.
    pub priority: u8,
    /// When it runs.
    pub timing: Timing,
    /// The market-hours window its requests may run in: `during` of an `at` job, or the
    /// window around the phase of an `every` job (regular, or extended for pre/post-market).
    pub window: During,
}

/// One request the schedule wants enqueued: a job at a slot for a symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    /// The job's name.
    pub job: String,
    /// `job@slot#symbol` (no `#symbol` when the job has none); unique per occurrence, so the
    /// queue can refuse a second copy after a restart.
    pub key: String,
    /// When it is due.
    pub slot: DateTime<Utc>,
    /// The queue's request type name, e.g. `option_chain`.
    pub request_type: RequestType,
    /// Empty when the job has no symbols.
    pub symbol: String,
    /// The job's parameters, a JSON object.
    pub parameters: serde_json::Value,
    /// 1 immediate, 2 normal, 3 background.
    pub priority: u8,
    /// The market-hours window the request may run in.
    #[serde(default)]
    pub during: During,
}

/// The key of a job's occurrence: `option_chain_regular@2026-11-23T14:35:00Z#SPY`.
pub fn occurrence_key(job: &str, slot: DateTime<Utc>, symbol: &str) -> String {
    let slot = slot.format("%Y-%m-%dT%H:%M:%SZ");
    if symbol.is_empty() {
        format!("{job}@{slot}")
    } else {
        format!("{job}@{slot}#{symbol}")
    }
}

impl Job {
    /// The job's slots on the New York date `date`, in order; none when the market is closed.
    pub fn slots_on(&self, date: NaiveDate, calendar: &MarketCalendar) -> Vec<DateTime<Utc>> {
        match self.timing {
            Timing::At(time) => {
                if calendar.day(date).is_trading_day() {
                    vec![new_york_instant(date, time)]
                } else {
                    Vec::new()
                }
            }
            Timing::Every { interval, during } => {
                let Some((start, end)) = calendar.phase_span(date, during) else {
                    return Vec::new();
                };
                std::iter::successors(Some(start), |t| Some(*t + interval))
                    .take_while(|t| *t < end)
                    .collect()
            }
        }
    }

    /// The occurrences of one slot: one per symbol, or one without a symbol.
    pub fn occurrences_at(&self, slot: DateTime<Utc>) -> Vec<Occurrence> {
        let make = |symbol: &str| Occurrence {
            job: self.name.clone(),
            key: occurrence_key(&self.name, slot, symbol),
            slot,
            request_type: self.request_type,
            symbol: symbol.to_string(),
            parameters: self.parameters.clone(),
            priority: self.priority,
            during: self.window,
        };
        if self.symbols.is_empty() {
            vec![make("")]
        } else {
            self.symbols.iter().map(|s| make(s)).collect()
        }
    }

    /// The first slot strictly after `t`, looking up to 400 days ahead.
    pub fn next_slot_after(
        &self,
        t: DateTime<Utc>,
        calendar: &MarketCalendar,
    ) -> Option<DateTime<Utc>> {
        let first = new_york_date(t);
        (0..SEARCH_DAYS).find_map(|i| {
            self.slots_on(first + Duration::days(i), calendar)
                .into_iter()
                .find(|s| *s > t)
        })
    }
}

/// The validated `[scheduler]` jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    enabled: bool,
    jobs: Vec<Job>,
}

/// A `[[scheduler.jobs]]` entry that cannot be used, named by position (1-based) and name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[[scheduler.jobs]] entry {index} (`{name}`): {problem}")]
pub struct ScheduleError {
    /// 1-based position of the entry in the file.
    pub index: usize,
    /// The entry's `name` as written (possibly empty).
    pub name: String,
    /// What is wrong with it.
    pub problem: JobProblem,
}

/// What is wrong with a job entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobProblem {
    #[error("the name is empty or contains whitespace, `@` or `#` (it is part of request keys)")]
    BadName,
    #[error("another job has the same name (names must be unique: they make the request keys)")]
    DuplicateName,
    #[error("unknown request type `{0}` (expected option_chain, futures_snapshot, market_bars, position_update or derived_stats)")]
    UnknownRequestType(String),
    #[error("priority {0} is out of range (1 immediate, 2 normal, 3 background)")]
    PriorityOutOfRange(i64),
    #[error("give either `at` or `every`, not both")]
    BothAtAndEvery,
    #[error("give one of `at` (time of day) or `every` (interval within a phase)")]
    NeitherAtNorEvery,
    #[error("bad time of day `{0}` (expected HH:MM or HH:MM:SS, New York)")]
    BadTime(String),
    #[error("bad interval `{0}` (expected a whole number and s, m or h, e.g. \"30s\", \"5m\")")]
    BadInterval(String),
    #[error("the interval `{0}` is zero")]
    ZeroInterval(String),
    #[error("`every` needs `during` (pre_market, regular or post_market)")]
    MissingPhase,
    #[error("unknown window `{0}` for an `at` job (expected regular, extended or any)")]
    UnknownWindow(String),
    #[error("unknown phase `{0}` (expected pre_market, regular or post_market)")]
    UnknownPhase(String),
    #[error("{0} requests need at least one symbol")]
    MissingSymbols(RequestType),
    #[error("symbol `{0}` is empty or listed twice")]
    BadSymbol(String),
    #[error("symbol `{0}` is not valid (expected 1-12 letters, digits, '.', '/' or '-')")]
    InvalidSymbol(String),
    #[error("parameter `{0}` cannot be sent as JSON ({1})")]
    BadParameter(String, String),
    #[error("{0}")]
    BadParameters(String),
}

impl Schedule {
    /// Validates every job; the first bad entry is an error naming it (never a silent skip).
    pub fn from_config(config: &SchedulerConfig) -> Result<Schedule, ScheduleError> {
        let mut names = HashSet::new();
        let jobs = config
            .jobs
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let fail = |problem| ScheduleError {
                    index: i + 1,
                    name: entry.name.clone(),
                    problem,
                };
                let job = validate(entry).map_err(fail)?;
                if !names.insert(job.name.clone()) {
                    return Err(fail(JobProblem::DuplicateName));
                }
                Ok(job)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule {
            enabled: config.enabled,
            jobs,
        })
    }

    /// False when `[scheduler] enabled = false`: the runner then enqueues nothing.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The jobs in file order.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Every occurrence of the New York date `date`, by slot, then job order, then symbol.
    pub fn occurrences_on(&self, date: NaiveDate, calendar: &MarketCalendar) -> Vec<Occurrence> {
        self.occurrences_on_where(date, calendar, |_| true)
    }

    /// The occurrences whose slot is in `(after, until]`, in order.
    pub fn occurrences_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        calendar: &MarketCalendar,
    ) -> Vec<Occurrence> {
        let (first, last) = (new_york_date(after), new_york_date(until));
        first
            .iter_days()
            .take_while(|d| *d <= last)
            .flat_map(|d| {
                self.occurrences_on_where(d, calendar, |slot| slot > after && slot <= until)
            })
            .collect()
    }

    /// The occurrences of `date` whose slot passes `keep`; slots are filtered before any
    /// occurrence is built because the runner asks for short windows many times a day.
    fn occurrences_on_where(
        &self,
        date: NaiveDate,
        calendar: &MarketCalendar,
        keep: impl Fn(DateTime<Utc>) -> bool,
    ) -> Vec<Occurrence> {
        let mut slots: Vec<(DateTime<Utc>, usize)> = self
            .jobs
            .iter()
            .enumerate()
            .flat_map(|(i, job)| {
                job.slots_on(date, calendar)
                    .into_iter()
                    .filter(|s| keep(*s))
                    .map(move |slot| (slot, i))
            })
            .collect();
        slots.sort();
        slots
            .into_iter()
            .flat_map(|(slot, i)| self.jobs[i].occurrences_at(slot))
            .collect()
    }

    /// For catching up after a start: per job, the occurrences (one per symbol) of its latest
    /// slot at or before `now` on `now`'s New York date. Older slots are stale and skipped.
    pub fn latest_due_today(
        &self,
        now: DateTime<Utc>,
        calendar: &MarketCalendar,
    ) -> Vec<Occurrence> {
        let today = new_york_date(now);
        let mut out: Vec<Occurrence> = self
            .jobs
            .iter()
            .filter_map(|job| {
                let slot = job
                    .slots_on(today, calendar)
                    .into_iter()
                    .take_while(|s| *s <= now)
                    .last()?;
                Some(job.occurrences_at(slot))
            })
            .flatten()
            .collect();
        out.sort_by_key(|o| o.slot);
        out
    }

    /// The occurrences of job `name` run by hand at `now` (to the second), at priority 1,
    /// keyed by that second (`job@now#symbol`): the job's regular slots still run (when
    /// `now` is one of them to the second, this is that slot's occurrence, run early).
    /// `None` when no job has that name.
    pub fn run_now(&self, name: &str, now: DateTime<Utc>) -> Option<Vec<Occurrence>> {
        let job = self.jobs.iter().find(|j| j.name == name)?;
        let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let mut out = job.occurrences_at(now);
        for o in &mut out {
            o.priority = 1;
        }
        Some(out)
    }

    /// Each job's next slot strictly after `now` (jobs with none within 400 days are left out).
    pub fn next_runs(
        &self,
        now: DateTime<Utc>,
        calendar: &MarketCalendar,
    ) -> Vec<(String, DateTime<Utc>)> {
        self.jobs
            .iter()
            .filter_map(|j| Some((j.name.clone(), j.next_slot_after(now, calendar)?)))
            .collect()
    }

    /// The earliest slot of any job strictly after `t`.
    pub fn next_slot_after(
        &self,
        t: DateTime<Utc>,
        calendar: &MarketCalendar,
    ) -> Option<DateTime<Utc>> {
        self.jobs
            .iter()
            .filter_map(|j| j.next_slot_after(t, calendar))
            .min()
    }
}

fn validate(entry: &JobConfig) -> Result<Job, JobProblem> {
    let name = entry.name.as_str();
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '@' || c == '#') {
        return Err(JobProblem::BadName);
    }
    let request_type: RequestType = entry
        .request_type
        .parse()
        .map_err(|_| JobProblem::UnknownRequestType(entry.request_type.clone()))?;
    let priority = match entry.priority {
        p @ 1..=3 => p as u8,
        p => return Err(JobProblem::PriorityOutOfRange(p)),
    };
    let (timing, window) = match (&entry.at, &entry.every) {
        (Some(_), Some(_)) => return Err(JobProblem::BothAtAndEvery),
        (None, None) => return Err(JobProblem::NeitherAtNorEvery),
        (Some(at), None) => (
            Timing::At(parse_time(at)?),
            match entry.during.as_deref() {
                None => During::Any,
                Some(w) => w
                    .parse()
                    .map_err(|_| JobProblem::UnknownWindow(w.to_string()))?,
            },
        ),
        (None, Some(every)) => {
            let interval = parse_interval(every)?;
            let during = entry.during.as_deref().ok_or(JobProblem::MissingPhase)?;
            let during = match during.parse::<Phase>() {
                Ok(Phase::Closed) | Err(_) => {
                    return Err(JobProblem::UnknownPhase(during.to_string()))
                }
                Ok(p) => p,
            };
            let window = match during {
                Phase::Regular => During::Regular,
                _ => During::Extended,
            };
            (Timing::Every { interval, during }, window)
        }
    };
    if entry.symbols.is_empty() && !symbols_optional(request_type) {
        return Err(JobProblem::MissingSymbols(request_type));
    }
    let mut seen = HashSet::new();
    if let Some(bad) = entry
        .symbols
        .iter()
        .find(|s| s.trim().is_empty() || !seen.insert(s.trim().to_ascii_uppercase()))
    {
        return Err(JobProblem::BadSymbol(bad.clone()));
    }
    // Checked as the queue will check them, so a bad job stops the start instead of being
    // refused at every slot.
    if let Some(bad) = entry
        .symbols
        .iter()
        .find(|s| crate::queue::state::normalize_symbol(s).is_err())
    {
        return Err(JobProblem::InvalidSymbol(bad.clone()));
    }
    let parameters = entry
        .parameters
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                toml_to_json(v).map_err(|e| JobProblem::BadParameter(k.clone(), e))?,
            ))
        })
        .collect::<Result<serde_json::Map<_, _>, JobProblem>>()?;
    let parameters = serde_json::Value::Object(parameters);
    crate::queue::params::Params::parse(request_type, &parameters)
        .map_err(|e| JobProblem::BadParameters(e.to_string()))?;
    Ok(Job {
        name: name.to_string(),
        request_type,
        symbols: entry.symbols.clone(),
        parameters,
        priority,
        timing,
        window,
    })
}

fn parse_time(s: &str) -> Result<NaiveTime, JobProblem> {
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .map_err(|_| JobProblem::BadTime(s.to_string()))
}

fn parse_interval(s: &str) -> Result<Duration, JobProblem> {
    let bad = || JobProblem::BadInterval(s.to_string());
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = s.split_at(split);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(JobProblem::ZeroInterval(s.to_string()));
    }
    // Anything longer than a day would never repeat within a phase anyway.
    let secs = n
        .checked_mul(unit_secs)
        .filter(|s| *s <= 86_400)
        .ok_or_else(bad)?;
    Ok(Duration::seconds(secs))
}

/// "30s", "5m", "1h" or "90s": the shortest exact form.
fn format_interval(d: Duration) -> String {
    let s = d.num_seconds();
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// TOML to JSON by hand: serde would turn TOML dates into a private wrapper object, and JSON
/// has no NaN or infinity.
fn toml_to_json(v: &toml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| format!("{f} is not a JSON number"))?,
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::test_support::{d, defaults, utc};

    /// (count, first slot, last slot) of one job's occurrences.
    fn summary(occ: &[Occurrence], job: &str) -> (usize, DateTime<Utc>, DateTime<Utc>) {
        let mine: Vec<_> = occ.iter().filter(|o| o.job == job).collect();
        assert!(!mine.is_empty(), "no occurrence of {job}");
        (mine.len(), mine[0].slot, mine[mine.len() - 1].slot)
    }

    #[test]
    fn a_full_day_of_the_default_schedule() {
        let (schedule, cal) = defaults();
        // Monday 2026-11-23, New York = UTC-5.
        let occ = schedule.occurrences_on(d("2026-11-23"), &cal);
        let at_0830 = utc("2026-11-23T13:30:00Z");
        assert_eq!(summary(&occ, "bars_morning"), (3, at_0830, at_0830));
        assert_eq!(summary(&occ, "futures_morning"), (3, at_0830, at_0830));
        let (open, last5, last30) = (
            utc("2026-11-23T14:30:00Z"),
            utc("2026-11-23T20:55:00Z"),
            utc("2026-11-23T20:59:30Z"),
        );
        assert_eq!(summary(&occ, "option_chain_regular"), (78 * 3, open, last5));
        assert_eq!(summary(&occ, "futures_regular"), (78 * 3, open, last5));
        assert_eq!(summary(&occ, "positions_regular"), (780, open, last30));
        let at_1630 = utc("2026-11-23T21:30:00Z");
        assert_eq!(summary(&occ, "derived_stats_close"), (1, at_1630, at_1630));
        assert_eq!(occ.len(), 3 + 3 + 234 + 234 + 780 + 1);
        assert!(
            occ.windows(2).all(|w| w[0].slot <= w[1].slot),
            "in slot order"
        );
        let keys: HashSet<_> = occ.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys.len(), occ.len(), "keys are unique");
        assert!(keys.contains("option_chain_regular@2026-11-23T14:35:00Z#SPY"));
        assert!(keys.contains("positions_regular@2026-11-23T14:30:30Z"));
    }

    #[test]
    fn occurrences_carry_type_parameters_and_priority() {
        let (schedule, cal) = defaults();
        let occ = schedule.occurrences_on(d("2026-11-23"), &cal);
        let bars = occ.iter().find(|o| o.job == "bars_morning").unwrap();
        assert_eq!(bars.request_type, RequestType::MarketBars);
        assert_eq!(bars.symbol, "SPY");
        assert_eq!(bars.priority, 3);
        assert_eq!(
            bars.parameters,
            serde_json::json!({"duration": "5 D", "bar_size": "1 day"})
        );
        let chain = occ
            .iter()
            .find(|o| o.job == "option_chain_regular")
            .unwrap();
        assert_eq!(chain.parameters, serde_json::json!({"target_dte": 45}));
        let pos = occ.iter().find(|o| o.job == "positions_regular").unwrap();
        assert_eq!((pos.symbol.as_str(), pos.priority), ("", 2));
    }

    #[test]
    fn an_early_close_stops_interval_jobs_at_13_but_keeps_time_of_day_jobs() {
        let (schedule, cal) = defaults();
        // Friday 2026-11-27, day after Thanksgiving.
        let occ = schedule.occurrences_on(d("2026-11-27"), &cal);
        let open = utc("2026-11-27T14:30:00Z");
        assert_eq!(
            summary(&occ, "option_chain_regular"),
            (42 * 3, open, utc("2026-11-27T17:55:00Z"))
        );
        assert_eq!(
            summary(&occ, "positions_regular"),
            (420, open, utc("2026-11-27T17:59:30Z"))
        );
        assert!(occ
            .iter()
            .all(|o| o.slot < utc("2026-11-27T18:00:00Z") || o.job == "derived_stats_close"));
        let at_1630 = utc("2026-11-27T21:30:00Z");
        assert_eq!(summary(&occ, "derived_stats_close"), (1, at_1630, at_1630));
    }

    #[test]
    fn nothing_runs_on_holidays_weekends_or_configured_closures() {
        let (schedule, cal) = defaults();
        for day in [
            "2026-11-26",
            "2026-11-28",
            "2026-11-29",
            "2025-01-09",
            "2027-12-24",
        ] {
            assert_eq!(schedule.occurrences_on(d(day), &cal), vec![], "{day}");
        }
    }

    #[test]
    fn windows_are_half_open_and_cross_days() {
        let (schedule, cal) = defaults();
        let occ = schedule.occurrences_between(
            utc("2026-11-23T14:30:00Z"),
            utc("2026-11-23T14:35:00Z"),
            &cal,
        );
        // (14:30, 14:35]: positions at 14:30:30 … 14:35:00 (10), chains and futures at 14:35.
        assert_eq!(occ.len(), 10 + 3 + 3);
        // Friday evening to Monday 08:30 New York: only Monday's morning jobs.
        let occ = schedule.occurrences_between(
            utc("2026-11-20T22:00:00Z"),
            utc("2026-11-23T13:30:00Z"),
            &cal,
        );
        assert_eq!(occ.len(), 6);
    }

    #[test]
    fn catch_up_takes_the_latest_slot_of_each_job_today_only() {
        let (schedule, cal) = defaults();
        let occ = schedule.latest_due_today(utc("2026-11-23T16:17:10Z"), &cal);
        let slots: Vec<_> = occ
            .iter()
            .map(|o| (o.job.as_str(), o.symbol.as_str(), o.slot))
            .collect();
        let at_0830 = utc("2026-11-23T13:30:00Z");
        let (at_1615, at_1617) = (utc("2026-11-23T16:15:00Z"), utc("2026-11-23T16:17:00Z"));
        for s in ["SPY", "QQQ", "IWM"] {
            assert!(slots.contains(&("bars_morning", s, at_0830)));
            assert!(slots.contains(&("option_chain_regular", s, at_1615)));
        }
        assert!(slots.contains(&("positions_regular", "", at_1617)));
        assert_eq!(occ.len(), 3 + 3 + 3 + 3 + 1, "derived_stats is not due yet");
        // Before the day's first slot nothing is caught up, not even yesterday's.
        assert_eq!(
            schedule.latest_due_today(utc("2026-11-24T06:00:00Z"), &cal),
            vec![]
        );
    }

    #[test]
    fn next_runs_skip_the_weekend() {
        let (schedule, cal) = defaults();
        let next = schedule.next_runs(utc("2026-11-21T02:00:00Z"), &cal);
        assert_eq!(next.len(), 6);
        assert_eq!(
            next[0],
            ("bars_morning".to_string(), utc("2026-11-23T13:30:00Z"))
        );
        assert_eq!(
            next[2],
            (
                "option_chain_regular".to_string(),
                utc("2026-11-23T14:30:00Z")
            )
        );
        assert_eq!(
            schedule.next_slot_after(utc("2026-11-23T14:30:00Z"), &cal),
            Some(utc("2026-11-23T14:30:30Z"))
        );
    }

    /// Validates a schedule made of one good job followed by `entry`; the error must be about
    /// entry 2.
    fn bad(entry: &str) -> ScheduleError {
        let text = format!(
            "[[jobs]]\nname = \"good\"\ntype = \"derived_stats\"\nat = \"16:30\"\n\n[[jobs]]\n{entry}\n"
        );
        let config: SchedulerConfig = toml::from_str(&text).unwrap();
        let err = Schedule::from_config(&config).unwrap_err();
        assert_eq!(err.index, 2, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("entry 2") && msg.contains(&format!("`{}`", err.name)),
            "{msg}"
        );
        err
    }

    #[test]
    fn jobs_set_the_window_of_their_requests() {
        let window = |extra: &str| {
            let text = format!(
                "[[jobs]]\nname = \"x\"\ntype = \"market_bars\"\nsymbols = [\"SPY\"]\n{extra}"
            );
            let config: SchedulerConfig = toml::from_str(&text).unwrap();
            Schedule::from_config(&config).unwrap().jobs[0].window
        };
        assert_eq!(window("at = \"08:00\""), During::Any);
        assert_eq!(
            window("at = \"08:00\"\nduring = \"regular\""),
            During::Regular
        );
        assert_eq!(
            window("at = \"08:00\"\nduring = \"extended\""),
            During::Extended
        );
        assert_eq!(
            window("every = \"5m\"\nduring = \"regular\""),
            During::Regular
        );
        assert_eq!(
            window("every = \"5m\"\nduring = \"pre_market\""),
            During::Extended
        );
    }

    #[test]
    fn bad_entries_are_errors_naming_the_entry() {
        let base = "name = \"x\"\ntype = \"option_chain\"\nsymbols = [\"SPY\"]";
        let cases: Vec<(String, JobProblem)> = vec![
            (
                "name = \"x\"\ntype = \"quotes\"\nat = \"08:30\"".into(),
                JobProblem::UnknownRequestType("quotes".into()),
            ),
            (format!("{base}\nat = \"25:00\""), JobProblem::BadTime("25:00".into())),
            (format!("{base}\nat = \"8h30\""), JobProblem::BadTime("8h30".into())),
            (
                format!("{base}\nevery = \"0m\"\nduring = \"regular\""),
                JobProblem::ZeroInterval("0m".into()),
            ),
            (
                format!("{base}\nevery = \"5 minutes\"\nduring = \"regular\""),
                JobProblem::BadInterval("5 minutes".into()),
            ),
            (
                format!("{base}\nevery = \"5m\"\nduring = \"lunch\""),
                JobProblem::UnknownPhase("lunch".into()),
            ),
            (
                format!("{base}\nevery = \"5m\"\nduring = \"closed\""),
                JobProblem::UnknownPhase("closed".into()),
            ),
            (format!("{base}\nevery = \"5m\""), JobProblem::MissingPhase),
            (
                format!("{base}\nat = \"08:30\"\nduring = \"pre_market\""),
                JobProblem::UnknownWindow("pre_market".into()),
            ),
            (
                format!("{base}\nat = \"08:30\"\nevery = \"5m\"\nduring = \"regular\""),
                JobProblem::BothAtAndEvery,
            ),
            (base.to_string(), JobProblem::NeitherAtNorEvery),
            (format!("{base}\npriority = 0\nat = \"08:30\""), JobProblem::PriorityOutOfRange(0)),
            (format!("{base}\npriority = 4\nat = \"08:30\""), JobProblem::PriorityOutOfRange(4)),
            (
                "name = \"x\"\ntype = \"option_chain\"\nat = \"08:30\"".into(),
                JobProblem::MissingSymbols(RequestType::OptionChain),
            ),
            (
                "name = \"x\"\ntype = \"market_bars\"\nsymbols = [\"SPY\", \"SPY\"]\nat = \"08:30\"".into(),
                JobProblem::BadSymbol("SPY".into()),
            ),
            (
                "name = \"a b\"\ntype = \"derived_stats\"\nat = \"08:30\"".into(),
                JobProblem::BadName,
            ),
            (
                "name = \"good\"\ntype = \"derived_stats\"\nat = \"08:30\"".into(),
                JobProblem::DuplicateName,
            ),
            (
                format!("{base}\nat = \"08:30\"\nparameters = {{ x = nan }}"),
                JobProblem::BadParameter("x".into(), "NaN is not a JSON number".into()),
            ),
            (
                "name = \"x\"\ntype = \"market_bars\"\nsymbols = [\"SP Y\"]\nat = \"08:30\"".into(),
                JobProblem::InvalidSymbol("SP Y".into()),
            ),
            (
                "name = \"x\"\ntype = \"market_bars\"\nsymbols = [\"spy\", \"SPY\"]\nat = \"08:30\"".into(),
                JobProblem::BadSymbol("SPY".into()),
            ),
            (
                format!("{base}\nat = \"08:30\"\nparameters = {{ target_dte = 0 }}"),
                JobProblem::BadParameters(
                    "invalid parameters for option_chain: field `target_dte`: must be 1 to 1000 days, got 0"
                        .into(),
                ),
            ),
        ];
        for (entry, expected) in cases {
            let err = bad(&entry);
            assert_eq!(err.problem, expected, "for entry:\n{entry}");
        }
    }

    #[test]
    fn unknown_keys_in_a_job_are_refused_by_the_file_format() {
        let text =
            "[[jobs]]\nname = \"x\"\ntype = \"derived_stats\"\nat = \"16:30\"\nsymbol = \"SPY\"\n";
        let err = toml::from_str::<SchedulerConfig>(text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbol"), "{err}");
    }

    #[test]
    fn intervals_and_times_parse() {
        assert_eq!(parse_interval("30s"), Ok(Duration::seconds(30)));
        assert_eq!(parse_interval("5m"), Ok(Duration::minutes(5)));
        assert_eq!(parse_interval("2h"), Ok(Duration::hours(2)));
        assert!(parse_interval("m").is_err() && parse_interval("-5m").is_err());
        assert!(parse_interval("999999999999h").is_err());
        assert_eq!(
            parse_time("08:30:15"),
            Ok(NaiveTime::from_hms_opt(8, 30, 15).unwrap())
        );
        assert_eq!(format_interval(Duration::seconds(90)), "90s");
        // TOML dates become strings.
        let v: toml::Table = toml::from_str("d = 2026-11-23").unwrap();
        assert_eq!(toml_to_json(&v["d"]), Ok(serde_json::json!("2026-11-23")));
    }
}
