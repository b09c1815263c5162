//! Queue subcommands: enqueue, list, show, retry, reprioritize, cancel, dismiss, release,
//! compact.
//!
//! When no engine runs, the command opens the queue as its owner and commits directly.
//! When an engine owns the lake, `enqueue` appends the row as any other writer would (the
//! engine takes it in within seconds) and read commands read the tables as they stand.

use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::config::Config;
use crate::engine::actions;
use crate::engine::Command;
use crate::market::calendar::MarketCalendar;
use crate::market::et;
use crate::market::window::{waits_for_text, During};
use crate::queue::params::{params_from_pairs, taken_as, Params};
use crate::queue::store::{self, QueueStore, StoreError};
use crate::queue::{
    Actor, Enqueued, NewRequest, Priority, QueueError, QueueState, Request, RequestType, Status,
};
use crate::text::{self, Clean};

mod view;

pub use view::{list, show};

#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {
    /// option_chain, futures_snapshot, market_bars, position_update or derived_stats.
    pub request_type: String,
    /// Underlying or contract symbol (e.g. SPY, ES).
    pub symbol: String,
    /// 1 immediate, 2 normal, 3 background.
    #[arg(long, default_value = "2")]
    pub priority: String,
    /// A parameter as KEY=VALUE (repeatable), e.g. --param target_dte=30.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Run only within this market-hours window on the NYSE calendar: regular (09:30-16:00
    /// New York), extended (04:00-20:00) or any.
    #[arg(long, default_value = "any")]
    pub during: String,
    /// Print the request as JSON.
    #[arg(long)]
    pub json: bool,
}

impl EnqueueArgs {
    /// The operator's request these arguments ask for, and what each old parameter name
    /// was taken as (`dte=30 → target_dte=30`). The console's `:enqueue` builds it here too.
    pub fn request(&self) -> Result<(NewRequest, Vec<String>), String> {
        let request_type: RequestType = self.request_type.parse()?;
        let priority: Priority = self.priority.parse()?;
        let parameters = params_from_pairs(&self.params)?;
        let taken = taken_as(request_type, &parameters);
        let during: During = self.during.parse()?;
        let new = NewRequest {
            request_type,
            symbol: self.symbol.clone(),
            priority,
            parameters,
            changed_by: Actor::Operator,
            schedule_key: None,
            during,
        };
        Ok((new, taken))
    }
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only requests with this status.
    #[arg(long)]
    pub status: Option<String>,
    /// Print a JSON array of request objects keyed by the column names.
    #[arg(long)]
    pub json: bool,
    /// Most rows to print (newest first); 0 for all. The table defaults to 50 rows;
    /// `--json` prints every matching request unless `--limit` is given.
    #[arg(long)]
    pub limit: Option<usize>,
    /// List archived requests (finished, moved to the history table after
    /// `[queue] keep_finished_days`) instead of the live queue.
    #[arg(long)]
    pub archived: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Request id (a unique prefix is enough).
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// Request id (a unique prefix is enough).
    #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
    pub id: Option<String>,
    /// Retry every FAILED request.
    #[arg(long)]
    pub all_failed: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReprioritizeArgs {
    pub id: String,
    /// 1 immediate, 2 normal, 3 background.
    pub priority: String,
}

#[derive(Debug, clap::Args)]
pub struct DismissArgs {
    /// Request id (a unique prefix is enough).
    #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
    pub id: Option<String>,
    /// Dismiss every FAILED request.
    #[arg(long)]
    pub all_failed: bool,
    /// Why the failure is put aside (kept as `result_data.dismiss_reason`).
    #[arg(long, default_value = DEFAULT_DISMISS_REASON)]
    pub reason: String,
}

impl DismissArgs {
    /// The reason as given, refused when empty.
    pub fn reason(&self) -> Result<String, String> {
        let reason = self.reason.trim().to_string();
        if reason.is_empty() {
            return Err(
                "--reason is empty; say why the failure is dismissed, or leave --reason out".into(),
            );
        }
        Ok(reason)
    }
}

/// The reason recorded when the operator gives none.
pub const DEFAULT_DISMISS_REASON: &str = "dismissed by the operator";

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// Request id of a PROCESSING request (a unique prefix is enough).
    pub id: String,
}

/// Who applies a change: this process (no engine runs) or the engine that owns the lake.
enum Applier {
    Direct(Box<QueueStore>),
    Engine(Box<QueueState>),
}

async fn applier(config: &Config) -> anyhow::Result<Applier> {
    match QueueStore::open(&config.lake.root, config.queue.clone()).await {
        Ok(s) => Ok(Applier::Direct(Box::new(s))),
        Err(StoreError::Locked(..)) => Ok(Applier::Engine(Box::new(
            store::read_state(&config.lake.root).await?,
        ))),
        Err(e) => Err(e.into()),
    }
}

impl Applier {
    fn state(&self) -> &QueueState {
        match self {
            Applier::Direct(s) => s.state(),
            Applier::Engine(state) => state,
        }
    }
}

/// Sends a change to the running engine through `ib_operator_actions` and prints its answer.
pub async fn via_engine(config: &Config, command: Command) -> anyhow::Result<()> {
    let by = format!("ibq cli pid {}", std::process::id());
    match actions::ask_owner(&config.lake.root, &command, &by, Duration::from_secs(20)).await {
        Ok(m) => {
            println!("{} (applied by the running engine)", Clean(&m));
            Ok(())
        }
        Err(m) => anyhow::bail!("{m}"),
    }
}

/// Finds the request a full id or unique prefix names.
fn resolve_id(state: &QueueState, text: &str) -> anyhow::Result<Uuid> {
    crate::queue::ids::resolve(state.all().map(|r| r.request_id), text).map_err(anyhow::Error::msg)
}

/// A request to change, named by its id or a unique prefix: an archived one is refused
/// with the reason.
async fn resolve_live(
    root: &std::path::Path,
    state: &QueueState,
    text: &str,
) -> anyhow::Result<Uuid> {
    match resolve_id(state, text) {
        Ok(id) if state.get(&id).is_some() => Ok(id),
        other => match resolve_archived(root, state, text).await {
            Ok(id) => anyhow::bail!(
                "request {id} is archived: it finished more than [queue] keep_finished_days ago and its rows are in {}; it cannot be changed (enqueue a new request instead)",
                crate::queue::rows::HISTORY_TABLE
            ),
            Err(_) => other,
        },
    }
}

/// An archived request named by its id or a unique prefix, for `show`; the error says
/// what the live queue said when neither holds it.
async fn resolve_archived(
    root: &std::path::Path,
    state: &QueueState,
    text: &str,
) -> anyhow::Result<Uuid> {
    let live_error = resolve_id(state, text).err();
    let prefix = match Uuid::parse_str(text) {
        Ok(id) => id.to_string(),
        Err(_) => text.to_ascii_lowercase(),
    };
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(
            live_error.unwrap_or_else(|| anyhow::anyhow!("`{}` is not a request id", Clean(text)))
        );
    }
    let ids = store::archived_ids(root, &prefix).await?;
    match ids.as_slice() {
        [one] => Ok(*one),
        [] => Err(match live_error {
            Some(e) => anyhow::anyhow!("{e} (the history of archived requests has none either)"),
            None => QueueError::NotFound(Uuid::parse_str(text)?).into(),
        }),
        many => anyhow::bail!(
            "`{prefix}` matches {} archived requests; give more characters",
            many.len()
        ),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Enqueues one request. A window is checked against `clock` (`--clock`, else real time).
pub async fn enqueue(
    args: EnqueueArgs,
    config: &Config,
    clock: std::sync::Arc<dyn crate::market::clock::Clock>,
) -> anyhow::Result<()> {
    let market = crate::market::Market::new(MarketCalendar::from_config(&config.scheduler), clock);
    let (new, taken) = args.request().map_err(anyhow::Error::msg)?;
    let (outcome, via_engine) =
        match QueueStore::open(&config.lake.root, config.queue.clone()).await {
            Ok(mut s) => {
                s.set_market(market.clone());
                (s.enqueue(new).await?, false)
            }
            Err(StoreError::Locked(..)) => {
                let state = store::read_state(&config.lake.root).await?;
                (
                    store::append_as_guest(&config.lake.root, &state, new).await?,
                    true,
                )
            }
            Err(e) => return Err(e.into()),
        };
    if args.json {
        return print_json(outcome.request());
    }
    match &outcome {
        Enqueued::Added(r) => {
            println!(
                "enqueued {} {} {} priority {}",
                r.request_id,
                r.request_type,
                Clean(&r.symbol),
                r.priority
            );
            for line in &taken {
                println!("taken as {line}");
            }
            let now = market.now();
            if let Some(at) = r
                .window_wait()
                .or_else(|| r.during.waits_until(&market.calendar, now))
            {
                println!(
                    "{} (during {}: outside the window now)",
                    waits_for_text(at, now),
                    r.during
                );
            }
            if via_engine {
                println!(
                    "(the running engine picks it up within {} s)",
                    config.queue.poll_external_secs
                );
            }
        }
        Enqueued::Duplicate(r) => println!(
            "duplicate: {} {} is already {} as {}; nothing added",
            r.request_type,
            Clean(&r.symbol),
            r.status,
            r.request_id
        ),
    }
    Ok(())
}

/// Prints one line per change and fails when any change was refused.
fn report(verb: &str, results: Vec<Result<Request, QueueError>>) -> anyhow::Result<()> {
    if let [Err(e)] = results.as_slice() {
        // One change: its refusal is the one line.
        anyhow::bail!("refused: {e}");
    }
    let mut refused = 0;
    for r in &results {
        match r {
            Ok(r) => println!(
                "{verb} {} ({} {}): now {} priority {}",
                r.request_id,
                r.request_type,
                Clean(&r.symbol),
                r.status,
                r.priority
            ),
            Err(e) => {
                refused += 1;
                eprintln!("refused: {}", Clean(&e.to_string()));
            }
        }
    }
    if refused > 0 {
        anyhow::bail!("{refused} of {} changes refused", results.len());
    }
    Ok(())
}

pub async fn retry(args: RetryArgs, config: &Config) -> anyhow::Result<()> {
    let a = applier(config).await?;
    let ids: Vec<Uuid> = match &args.id {
        Some(text) => vec![resolve_live(&config.lake.root, a.state(), text).await?],
        None => a.state().failed().map(|r| r.request_id).collect(),
    };
    if ids.is_empty() {
        println!("no FAILED requests");
        return Ok(());
    }
    match a {
        Applier::Engine(_) => via_engine(config, Command::Retry(ids)).await,
        Applier::Direct(mut s) => {
            let now = Utc::now();
            let results = s
                .change_each(&ids, |q, id| q.prepare_retry(id, Actor::Operator, now))
                .await?;
            report("retried", results)
        }
    }
}

pub async fn reprioritize(args: ReprioritizeArgs, config: &Config) -> anyhow::Result<()> {
    let priority: Priority = args.priority.parse().map_err(anyhow::Error::msg)?;
    let a = applier(config).await?;
    let id = resolve_live(&config.lake.root, a.state(), &args.id).await?;
    match a {
        Applier::Engine(_) => via_engine(config, Command::SetPriority(vec![id], priority)).await,
        Applier::Direct(mut s) => {
            let now = Utc::now();
            let results = s
                .change_each(&[id], |q, id| {
                    q.prepare_reprioritize(id, priority, Actor::Operator, now)
                })
                .await?;
            report("reprioritized", results)
        }
    }
}

pub async fn cancel(args: CancelArgs, config: &Config) -> anyhow::Result<()> {
    let a = applier(config).await?;
    let id = resolve_live(&config.lake.root, a.state(), &args.id).await?;
    match a {
        Applier::Engine(_) => via_engine(config, Command::Cancel(vec![id])).await,
        Applier::Direct(mut s) => {
            let now = Utc::now();
            let results = s
                .change_each(&[id], |q, id| q.prepare_cancel(id, Actor::Operator, now))
                .await?;
            report("cancelled", results)
        }
    }
}

/// PROCESSING → PENDING for a run that is stuck or too slow: the running engine's worker
/// abandons it, frees its lines and counts no attempt.
pub async fn release(args: ReleaseArgs, config: &Config) -> anyhow::Result<()> {
    let a = applier(config).await?;
    let id = resolve_live(&config.lake.root, a.state(), &args.id).await?;
    match a {
        Applier::Engine(_) => via_engine(config, Command::Release(vec![id])).await,
        Applier::Direct(mut s) => {
            // No engine runs, so nothing runs the request: opening the queue as its owner
            // released every PROCESSING request already.
            if let Some(r) = s.state().get(&id).filter(|r| r.status == Status::Pending) {
                println!(
                    "{id} ({} {}) is PENDING: no engine runs on {}, so nothing is running it",
                    r.request_type,
                    Clean(&r.symbol),
                    config.lake.root.display()
                );
                return Ok(());
            }
            let now = Utc::now();
            let results = s
                .change_each(&[id], |q, id| {
                    q.prepare_release_by(
                        id,
                        crate::queue::state::RELEASED_BY_OPERATOR,
                        Actor::Operator,
                        now,
                    )
                })
                .await?;
            report("released", results)
        }
    }
}

/// FAILED → CANCELLED with a reason, for failures that will never succeed.
pub async fn dismiss(args: DismissArgs, config: &Config) -> anyhow::Result<()> {
    let reason = args.reason().map_err(anyhow::Error::msg)?;
    let a = applier(config).await?;
    let ids: Vec<Uuid> = match &args.id {
        Some(text) => vec![resolve_id(a.state(), text)?],
        None => a.state().failed().map(|r| r.request_id).collect(),
    };
    if ids.is_empty() {
        println!("no FAILED requests");
        return Ok(());
    }
    match a {
        Applier::Engine(_) => via_engine(config, Command::Dismiss(ids, reason)).await,
        Applier::Direct(mut s) => {
            let now = Utc::now();
            let results = s
                .change_each(&ids, |q, id| {
                    q.prepare_dismiss(id, &reason, Actor::Operator, now)
                })
                .await?;
            report("dismissed", results)
        }
    }
}

pub async fn compact(config: &Config) -> anyhow::Result<()> {
    let Applier::Direct(mut s) = applier(config).await? else {
        anyhow::bail!("an ibq engine is running on this lake and compacts the queue itself");
    };
    let r = s.compact().await?;
    println!(
        "compacted {}: {} data files → {}, {} rows read, {} requests kept, {} rows moved to {} ({} finished requests archived), version {}; {} old files and {} expired log files deleted from disk",
        crate::queue::rows::QUEUE_TABLE,
        r.files_before,
        r.files_after,
        r.rows_read,
        r.rows_kept,
        r.rows_moved_to_history,
        crate::queue::rows::HISTORY_TABLE,
        r.requests_archived,
        r.version,
        r.files_deleted,
        r.log_files_deleted
    );
    Ok(())
}
