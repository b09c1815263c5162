//! Starting and stopping the engine: the queue service, the gateway supervisor, the worker,
//! the scheduler and the streaming manager as tasks of one runtime; a command task that
//! serves front ends; and a publisher that turns their state into `Snapshot`s.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use super::actions::{self, ActionInbox};
use super::command::{Command, CommandResult, EngineHandle, Reply};
use super::snapshot::{JobView, MarketView, Snapshot};
use crate::config::Config;
use crate::gateway::connection::GatewaySettings;
use crate::gateway::{Gateway, LineBudget};
use crate::queue::service::{self, Change, QueueHandle};
use crate::queue::store::QueueStore;
use crate::queue::Status;
use crate::queue::{Actor, RetryPolicy};
use crate::scheduler::calendar::MarketCalendar;
use crate::scheduler::clock::Clock;
use crate::scheduler::runner::OccurrenceSink;
use crate::scheduler::schedule::{Occurrence, Schedule};
use crate::scheduler::view;
use crate::streaming::Streaming;
use crate::worker::results::ResultTables;
use crate::worker::{self, WorkerHandle, WorkerSettings};

/// How the engine runs beyond its configuration.
pub struct EngineOptions {
    /// The clock of the scheduler and the market phase (fast in the demo and tests).
    pub clock: Arc<dyn Clock>,
}

pub struct Engine {
    handle: EngineHandle,
    /// The operator's console: its commands are recorded in `ib_operator_actions`.
    console_handle: EngineHandle,
    queue: QueueHandle,
    worker: WorkerHandle,
    gateway: Arc<Gateway>,
    streaming: Streaming,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shutdown_requested: Arc<Notify>,
}

/// A configured number of seconds as a duration; past what a duration holds, the longest.
fn seconds(secs: u64) -> chrono::Duration {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::MAX)
}

/// The queue as the scheduler's sink: each occurrence becomes a request carrying its key,
/// so a restart never enqueues it twice.
struct QueueSink(QueueHandle);

/// The request an occurrence becomes, carrying its key.
fn occurrence_request(occ: Occurrence) -> Result<crate::queue::NewRequest, String> {
    Ok(crate::queue::NewRequest {
        request_type: occ.request_type,
        symbol: if occ.symbol.is_empty() {
            "ALL".into()
        } else {
            occ.symbol
        },
        priority: crate::queue::Priority::try_from(occ.priority as i64)?,
        parameters: occ.parameters,
        changed_by: Actor::Scheduler,
        schedule_key: Some(occ.key),
        during: occ.during,
    })
}

impl OccurrenceSink for QueueSink {
    async fn has_key(&self, key: &str) -> bool {
        self.0.has_schedule_key(key).await
    }

    async fn submit(&self, occ: Occurrence) -> anyhow::Result<()> {
        let new = occurrence_request(occ).map_err(anyhow::Error::msg)?;
        let mut out = self
            .0
            .enqueue(vec![new])
            .await
            .map_err(anyhow::Error::msg)?;
        out.pop().expect("one outcome per request")?;
        Ok(())
    }
}

impl Engine {
    /// Opens the queue as its owner and starts every part. Fails with one clear message
    /// when the lake is owned by another process, unreadable, or the schedule is invalid.
    pub async fn start(config: &Config, options: EngineOptions) -> anyhow::Result<Engine> {
        config.check()?;
        let root = config.lake.root.clone();
        let schedule = Schedule::from_config(&config.scheduler)?;
        let calendar = MarketCalendar::from_config(&config.scheduler);
        let mut store = QueueStore::open(&root, config.queue.clone()).await?;
        store.set_market(crate::market::Market::new(
            calendar.clone(),
            Arc::clone(&options.clock),
        ));
        // A log that takes no new file would refuse every commit while the engine ran on.
        let table = root.join(crate::queue::rows::QUEUE_TABLE);
        crate::lake::table::probe_writable(&table.join("_delta_log")).map_err(|e| {
            anyhow::anyhow!(
                "table {} at {}: its _delta_log folder cannot be written ({}): {e}",
                crate::queue::rows::QUEUE_TABLE,
                table.display(),
                crate::lake::table::storage_cause(&e.to_string()).unwrap_or("write refused")
            )
        })?;
        tracing::info!(lake = %root.display(), requests = store.state().len(), recovery_ms = store.recovery.as_millis() as u64, "queue opened");
        let queue = service::start(
            store,
            Duration::from_secs(config.queue.poll_external_secs.max(1)),
        );

        let w = &config.worker;
        let gateway = Gateway::start(GatewaySettings {
            address: config.gateway.address.clone(),
            client_id: config.gateway.client_id,
            max_messages_per_sec: w.max_messages_per_sec.min(50),
            connect_timeout: Duration::from_secs(config.gateway.connect_timeout_secs.max(1)),
            max_backoff: Duration::from_secs(30),
        });
        let lines = LineBudget::new(config.lines.limit, config.lines.margin);
        let results = Arc::new(ResultTables::with_clock(
            root.clone(),
            Arc::clone(&options.clock),
        ));
        // One choice of live or delayed data per session, for quotes and legs alike.
        let market_data = Arc::new(worker::market_data::MarketDataChoice::new(
            config.market_data.kind,
        ));
        let streaming = Streaming::start(
            &root,
            Arc::clone(&gateway),
            lines.clone(),
            Arc::clone(&results),
            config.streaming.clone(),
            Arc::clone(&market_data),
        )
        .await?;
        let worker = worker::start(
            queue.clone(),
            Arc::clone(&gateway),
            lines.clone(),
            Arc::clone(&results),
            Arc::new(streaming.clone()),
            WorkerSettings {
                poll: Duration::from_secs(w.poll_secs.max(1)),
                batch_size: w.batch_size.max(1),
                policy: RetryPolicy {
                    max_attempts: w.max_attempts.max(1),
                    max_age: seconds(w.max_age_secs),
                    backoff_base: seconds(w.backoff_base_secs),
                    backoff_max: seconds(w.backoff_max_secs),
                },
                request_timeout: Duration::from_secs(w.request_timeout_secs.max(1)),
                snapshot_timeout: Duration::from_secs(w.request_timeout_secs.clamp(1, 30)),
                owner: format!("ibq-{}", std::process::id()),
                stop_deadline: Duration::from_secs(10),
                now: {
                    let clock = Arc::clone(&options.clock);
                    worker::WorkerClock(Arc::new(move || clock.now()))
                },
                market_data,
                contracts: Arc::new(config.contracts.clone()),
            },
        );

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(upkeep_tables(
            queue.clone(),
            Arc::clone(&results),
            Arc::clone(&options.clock),
            UPKEEP_EVERY,
            stop_rx.clone(),
        )));
        let clock = Arc::clone(&options.clock);
        {
            let mut stop_rx = stop_rx.clone();
            let sink = QueueSink(queue.clone());
            let (schedule, calendar) = (schedule.clone(), calendar.clone());
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop_rx.changed().await;
                };
                crate::scheduler::runner::run(schedule, calendar, clock, sink, shutdown).await;
            }));
        }

        let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::empty(
            root.clone(),
            &config.gateway.address,
        )));
        // What operators did: read from ib_operator_actions and recorded as the console's
        // commands are answered, published for the actions view.
        let inbox = ActionInbox::open(&root).await?;
        let (actions_tx, actions_rx) = watch::channel(inbox.journal().view(ACTIONS_SHOWN));
        tasks.push(tokio::spawn(publish(
            Publisher {
                root: root.clone(),
                queue: queue.clone(),
                gateway: Arc::clone(&gateway),
                worker: worker.clone(),
                lines: lines.clone(),
                streaming: streaming.clone(),
                schedule: schedule.clone(),
                calendar,
                clock: Arc::clone(&options.clock),
                actions: actions_rx,
            },
            snap_tx,
            stop_rx.clone(),
        )));

        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (console_tx, console_rx) = mpsc::channel(64);
        let (journal_tx, journal_rx) = mpsc::unbounded_channel();
        let shutdown_requested = Arc::new(Notify::new());
        tasks.push(tokio::spawn(serve_commands(
            Inboxes {
                others: cmd_rx,
                console: console_rx,
                journal: journal_tx,
            },
            Services {
                queue: queue.clone(),
                worker: worker.clone(),
                gateway: Arc::clone(&gateway),
                streaming: streaming.clone(),
                shutdown: Arc::clone(&shutdown_requested),
                jobs: Arc::new(Jobs {
                    schedule,
                    clock: Arc::clone(&options.clock),
                }),
            },
        )));

        let handle = EngineHandle::new(cmd_tx, snap_rx.clone());
        let console_handle = EngineHandle::new(console_tx, snap_rx);
        tasks.push(tokio::spawn(serve_actions(
            inbox,
            handle.clone(),
            Journaling {
                rows: journal_rx,
                view: actions_tx,
            },
            stop_rx.clone(),
        )));

        Ok(Engine {
            handle,
            console_handle,
            queue,
            worker,
            gateway,
            streaming,
            stop,
            tasks,
            shutdown_requested,
        })
    }

    /// Commands from programs and tests; they are not an operator's actions.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// The operator console's connection: each command it sends (but a history read or the
    /// shutdown) is recorded in `ib_operator_actions` with its outcome, and shows in the
    /// actions view.
    pub fn console_handle(&self) -> EngineHandle {
        self.console_handle.clone()
    }

    pub fn queue(&self) -> &QueueHandle {
        &self.queue
    }

    /// Completes when a front end sent `Command::Shutdown`.
    pub async fn shutdown_requested(&self) {
        self.shutdown_requested.notified().await
    }

    /// Completes, with what failed, once the queue can no longer commit (a full disk, a
    /// read-only or forbidden lake, or repeated failures).
    pub async fn queue_broken(&self) -> String {
        self.queue.broken().await
    }

    /// Graceful stop: the worker stops claiming and finishes or releases what it runs, the
    /// streams are cancelled, the queue commits, the connection closes.
    pub async fn shutdown(self) {
        tracing::info!("engine stopping");
        self.stop.send_replace(true);
        self.worker.stop().await;
        self.streaming.stop().await;
        self.queue.stop().await;
        self.gateway.shutdown().await;
        for t in self.tasks {
            t.abort();
        }
        tracing::info!("engine stopped");
    }
}

/// How often the engine keeps its tables up: the result tables (`lake::upkeep`: merges,
/// checkpoint, vacuum past the retention, log cleanup) and the queue's (`queue::upkeep`:
/// checkpoint, log cleanup, vacuum, history merges). Hourly, so removed files stay on disk
/// at most an hour past the vacuum retention (docs/TABLES.md, Upkeep), written or not.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(3600);

/// Runs the upkeep of the result tables and of the queue every `every` (the first one
/// `every` after the start) until the engine stops. The result tables' partitions of days
/// before the engine's New York date are closed, and their retention is measured on the
/// engine's clock, which stamps their rows and removals (the wall clock but under
/// `--clock`); the queue's on the clock its own rows and removals are stamped with.
async fn upkeep_tables(
    queue: QueueHandle,
    results: Arc<ResultTables>,
    clock: Arc<dyn Clock>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let policy = crate::lake::upkeep::Policy::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let today = crate::market::calendar::new_york_date(clock.now());
        let mut reports: Vec<Result<crate::lake::upkeep::Report, String>> = results
            .upkeep(&policy, today, clock.now())
            .await
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        match queue.upkeep().await {
            Ok(q) => reports.extend(std::iter::once(q.queue).chain(q.history).map(Ok)),
            Err(e) => reports.push(Err(e)),
        }
        for report in reports {
            match report {
                Ok(r) => tracing::info!(
                    table = %r.table,
                    files_merged = r.files_merged,
                    checkpoint = ?r.checkpoint,
                    files_vacuumed = r.files_vacuumed,
                    log_files_deleted = r.log_files_deleted,
                    live_files = r.usage.live_files,
                    removed_files = r.usage.removed_files,
                    "table upkeep"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "table upkeep failed; it runs again later")
                }
            }
        }
    }
}

struct Publisher {
    root: PathBuf,
    queue: QueueHandle,
    gateway: Arc<Gateway>,
    worker: WorkerHandle,
    lines: LineBudget,
    streaming: Streaming,
    schedule: Schedule,
    calendar: MarketCalendar,
    clock: Arc<dyn Clock>,
    actions: watch::Receiver<Arc<[super::ActionEntry]>>,
}

/// What running a job by hand needs: the jobs and the engine's clock.
struct Jobs {
    schedule: Schedule,
    clock: Arc<dyn Clock>,
}

impl Publisher {
    /// Every job with its next run and how today's slots went, from the queue's requests
    /// with each slot's occurrence key.
    async fn jobs(&self) -> Arc<[JobView]> {
        let now = self.clock.now();
        let keys = view::today_keys(&self.schedule, &self.calendar, now);
        let statuses = self.queue.schedule_statuses(keys.clone()).await;
        let held: HashMap<String, Status> = keys
            .into_iter()
            .zip(statuses)
            .filter_map(|(k, s)| Some((k, s?)))
            .collect();
        view::job_views(&self.schedule, &self.calendar, now, |k| {
            held.get(k).copied()
        })
        .into()
    }

    fn build(&self, jobs: Arc<[JobView]>) -> Snapshot {
        let view = self.queue.view().borrow().clone();
        let now = self.clock.now();
        let phase = self.calendar.phase_at(now);
        let next = self.calendar.next_change(now);
        Snapshot {
            taken_at: Utc::now(),
            clock: super::ClockView {
                now,
                speed: self.clock.speed(),
            },
            lake: self.root.clone(),
            observer: false,
            gateway: self.gateway.current_state(),
            market: MarketView {
                phase: phase.as_str().to_string(),
                next_phase: next
                    .map(|(_, p)| p.as_str().to_string())
                    .unwrap_or_default(),
                next_change_at: next.map(|(t, _)| t),
            },
            worker: self.worker.stats(),
            counts: view.counts,
            pending: view.pending.clone(),
            processing: view.processing.clone(),
            failed: view.failed.clone(),
            done: view.done.clone(),
            actions: self.actions.borrow().clone(),
            lines: self.lines.view(),
            legs: self.streaming.legs().into(),
            jobs,
            alert: None,
            farms: self.gateway.current_farms(),
        }
    }
}

/// What decides whether a new snapshot is worth publishing (everything but its time).
#[derive(PartialEq)]
struct Fingerprint {
    queue: u64,
    gateway: super::GatewayState,
    market: MarketView,
    worker: super::WorkerStats,
    lines: super::LineBudgetView,
    legs: Arc<[super::LegView]>,
    jobs: Arc<[JobView]>,
    farms: crate::gateway::FarmsView,
    actions: Arc<[super::ActionEntry]>,
}

fn fingerprint(s: &Snapshot, queue_generation: u64) -> Fingerprint {
    Fingerprint {
        queue: queue_generation,
        gateway: s.gateway.clone(),
        market: s.market.clone(),
        worker: s.worker.clone(),
        lines: s.lines,
        legs: Arc::clone(&s.legs),
        jobs: Arc::clone(&s.jobs),
        farms: s.farms.clone(),
        actions: Arc::clone(&s.actions),
    }
}

/// Looks four times a second and publishes a new snapshot only when something changed, so
/// bursts coalesce and an idle console has nothing to redraw. Also writes
/// `<lake>/.ibq-status.json` for `ibq status` every two seconds.
async fn publish(p: Publisher, tx: watch::Sender<Arc<Snapshot>>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut n = 0u64;
    let mut last: Option<Fingerprint> = None;
    let mut jobs: Arc<[JobView]> = Arc::from(Vec::new());
    let mut jobs_generation = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        // Today's outcomes change with the queue, and as slots come due: after a queue
        // change, and once a second.
        let generation = p.queue.view().borrow().generation;
        if n.is_multiple_of(4) || jobs_generation != Some(generation) {
            jobs = p.jobs().await;
            jobs_generation = Some(generation);
        }
        let snap = p.build(Arc::clone(&jobs));
        if n.is_multiple_of(8) {
            write_status(&p.root, &snap);
        }
        n += 1;
        let print = fingerprint(&snap, p.queue.view().borrow().generation);
        if last.as_ref() != Some(&print) {
            last = Some(print);
            tx.send_replace(Arc::new(snap));
        }
    }
}

/// The file `ibq status` reads.
pub fn status_path(root: &std::path::Path) -> PathBuf {
    root.join(".ibq-status.json")
}

fn write_status(root: &std::path::Path, s: &Snapshot) {
    let status = serde_json::json!({
        "pid": std::process::id(),
        "written_at": s.taken_at,
        "clock": s.clock,
        "gateway": s.gateway,
        "market": s.market,
        "worker": s.worker,
        "counts": s.counts,
        "lines": s.lines,
        "legs": s.legs,
        "farms": s.farms,
    });
    let tmp = root.join(".ibq-status.json.tmp");
    let ok = std::fs::write(&tmp, status.to_string())
        .and_then(|_| std::fs::rename(&tmp, status_path(root)));
    if let Err(e) = ok {
        tracing::debug!(error = %e, "cannot write the status file");
    }
}

/// Where commands come from: programs (and the actions of other processes), the
/// operator's console, whose answered commands go to the journal.
struct Inboxes {
    others: mpsc::Receiver<(Command, oneshot::Sender<CommandResult>)>,
    console: mpsc::Receiver<(Command, oneshot::Sender<CommandResult>)>,
    journal: mpsc::UnboundedSender<actions::ActionRow>,
}

/// What commands act on.
#[derive(Clone)]
struct Services {
    queue: QueueHandle,
    worker: WorkerHandle,
    gateway: Arc<Gateway>,
    streaming: Streaming,
    shutdown: Arc<Notify>,
    jobs: Arc<Jobs>,
}

/// Who the operator's console is in `ib_operator_actions`.
fn console_name() -> String {
    format!("console pid {}", std::process::id())
}

async fn serve_commands(mut inboxes: Inboxes, services: Services) {
    loop {
        let ((cmd, reply), from_console) = tokio::select! {
            Some(c) = inboxes.others.recv() => (c, false),
            Some(c) = inboxes.console.recv() => (c, true),
            else => return,
        };
        // The action as another process would have asked for it; `None` for a history
        // read or the shutdown, which are not operator actions.
        let asked = from_console
            .then(|| actions::to_row(&cmd, &console_name()).ok())
            .flatten();
        let journal = inboxes.journal.clone();
        let services = services.clone();
        // Each command runs on its own task: a slow one (a promotion waiting on the
        // gateway) never holds up the others.
        tokio::spawn(async move {
            let result = match cmd {
                Command::RunJob(name) => run_job(&name, &services.queue, &services.jobs).await,
                cmd => execute(cmd, &services).await,
            };
            if let Some(row) = super::journal::answered_row(asked, &result) {
                let _ = journal.send(row);
            }
            let _ = reply.send(result);
        });
    }
}

/// The console's answered commands to record, and where the journal is published.
struct Journaling {
    rows: mpsc::UnboundedReceiver<actions::ActionRow>,
    view: watch::Sender<Arc<[super::ActionEntry]>>,
}

/// How many of the latest operator actions a snapshot carries.
pub const ACTIONS_SHOWN: usize = 200;

/// Applies actions other processes recorded in `ib_operator_actions`, once a second, and
/// records the commands the operator's console had answered; publishes the journal.
async fn serve_actions(
    mut inbox: ActionInbox,
    handle: EngineHandle,
    mut journaling: Journaling,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            Some(row) = journaling.rows.recv() => {
                if let Err(e) = inbox.record(row).await {
                    tracing::warn!(error = %e, "recording a console command in ib_operator_actions failed; the actions view shows it until the engine stops");
                }
                journaling.view.send_replace(inbox.journal().view(ACTIONS_SHOWN));
                continue;
            }
            _ = tick.tick() => {}
        }
        let requested = match inbox.poll().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading ib_operator_actions failed; the actions are read again in a second");
                continue;
            }
        };
        for row in requested {
            let outcome = match actions::to_command(&row) {
                Ok(cmd) => handle.send(cmd).await.map(|reply| match reply {
                    Reply::Done(m) => m,
                    Reply::History(_) => String::new(),
                }),
                Err(e) => Err(e),
            };
            tracing::info!(action = %row.action, by = %row.requested_by, outcome = ?outcome, "operator action from another process");
            if let Err(e) = inbox.answer(&row, outcome).await {
                tracing::warn!(error = %e, "recording an operator action's outcome in ib_operator_actions failed; the action was applied, its requester sees no answer");
            }
        }
        // The table grows by a file an action: kept small to open, every ten minutes.
        ticks += 1;
        if ticks.is_multiple_of(600) {
            match inbox
                .upkeep(&crate::lake::upkeep::Policy::default(), Utc::now())
                .await
            {
                Ok(r) if r.files_merged > 0 => {
                    tracing::info!(files_merged = r.files_merged, "ib_operator_actions upkeep")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "ib_operator_actions upkeep failed; it runs again in ten minutes")
                }
            }
        }
        let view = inbox.journal().view(ACTIONS_SHOWN);
        journaling.view.send_if_modified(|v| {
            let changed = *v != view;
            if changed {
                *v = view;
            }
            changed
        });
    }
}

fn summarize(
    verb: &str,
    results: Vec<Result<crate::queue::Request, crate::queue::QueueError>>,
) -> CommandResult {
    let total = results.len();
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(Reply::Done(format!(
            "{verb} {total} request{}",
            if total == 1 { "" } else { "s" }
        )))
    } else if errors.len() == total {
        Err(errors.join("; "))
    } else {
        Err(format!(
            "{verb} {} of {total}; refused: {}",
            total - errors.len(),
            errors.join("; ")
        ))
    }
}

/// Enqueues job `name`'s occurrence at this moment, at priority 1, by the operator.
async fn run_job(name: &str, queue: &QueueHandle, jobs: &Jobs) -> CommandResult {
    let occurrences = jobs
        .schedule
        .run_now(name, jobs.clock.now())
        .ok_or_else(|| format!("no scheduler job is named `{name}`"))?;
    let news = occurrences
        .into_iter()
        .map(|occ| {
            let mut new = occurrence_request(occ)?;
            new.changed_by = Actor::Operator;
            Ok(new)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let out = queue.enqueue(news).await?;
    let mut added = 0;
    let mut notes = Vec::new();
    for o in out {
        match o {
            Ok(crate::queue::Enqueued::Added(_)) => added += 1,
            Ok(crate::queue::Enqueued::Duplicate(r)) => notes.push(format!(
                "{} {} is already {} as {}",
                r.request_type, r.symbol, r.status, r.request_id
            )),
            Err(e) => notes.push(e.to_string()),
        }
    }
    let mut msg = format!(
        "{name}: enqueued {added} request{} at priority 1",
        if added == 1 { "" } else { "s" }
    );
    if !notes.is_empty() {
        msg.push_str(&format!("; {}", notes.join("; ")));
    }
    if added == 0 {
        Err(msg)
    } else {
        Ok(Reply::Done(msg))
    }
}

async fn execute(cmd: Command, services: &Services) -> CommandResult {
    let Services {
        queue,
        worker,
        gateway,
        streaming,
        shutdown,
        ..
    } = services;
    let by = Actor::Operator;
    match cmd {
        Command::Retry(ids) => summarize("retried", queue.change(ids, Change::Retry(by)).await?),
        Command::RetryAllFailed => {
            let ids: Vec<_> = queue
                .view()
                .borrow()
                .failed
                .iter()
                .map(|r| r.request_id)
                .collect();
            if ids.is_empty() {
                return Ok(Reply::Done("no FAILED requests".into()));
            }
            summarize("retried", queue.change(ids, Change::Retry(by)).await?)
        }
        Command::SetPriority(ids, p) => summarize(
            "reprioritized",
            queue.change(ids, Change::SetPriority(p, by)).await?,
        ),
        Command::BumpPriority(ids, up) => summarize(
            "reprioritized",
            queue.change(ids, Change::Bump(up, by)).await?,
        ),
        Command::Cancel(ids) => {
            summarize("cancelled", queue.change(ids, Change::Cancel(by)).await?)
        }
        Command::Dismiss(ids, reason) => summarize(
            "dismissed",
            queue.change(ids, Change::Dismiss(reason, by)).await?,
        ),
        Command::DismissAllFailed(reason) => {
            let ids: Vec<_> = queue
                .view()
                .borrow()
                .failed
                .iter()
                .map(|r| r.request_id)
                .collect();
            if ids.is_empty() {
                return Ok(Reply::Done("no FAILED requests".into()));
            }
            summarize(
                "dismissed",
                queue.change(ids, Change::Dismiss(reason, by)).await?,
            )
        }
        Command::Release(ids) => summarize("released", worker.release(ids, by).await?),
        Command::Enqueue(new) => {
            let mut out = queue.enqueue(vec![new]).await?;
            match out.pop().expect("one outcome") {
                Ok(crate::queue::Enqueued::Added(r)) => Ok(Reply::Done(format!(
                    "enqueued {} {} as {}",
                    r.request_type, r.symbol, r.request_id
                ))),
                Ok(crate::queue::Enqueued::Duplicate(r)) => Ok(Reply::Done(format!(
                    "duplicate: {} {} is already {} as {}",
                    r.request_type, r.symbol, r.status, r.request_id
                ))),
                Err(e) => Err(e.to_string()),
            }
        }
        Command::Promote { conid, strategy } => streaming
            .promote(conid, strategy, by)
            .await
            .map(Reply::Done),
        Command::Demote(conids) => {
            let mut done = Vec::new();
            for c in conids {
                done.push(streaming.demote(c, by).await?);
            }
            Ok(Reply::Done(done.join("; ")))
        }
        Command::PauseWorker => {
            worker.set_paused(true);
            Ok(Reply::Done(
                "worker paused: no new requests are claimed".into(),
            ))
        }
        Command::ResumeWorker => {
            worker.set_paused(false);
            Ok(Reply::Done("worker resumed".into()))
        }
        Command::Reconnect => {
            gateway.reconnect();
            Ok(Reply::Done(format!(
                "reconnecting to {}",
                gateway.address()
            )))
        }
        Command::History(id) => queue.history(id).await.map(Reply::History),
        Command::RunJob(_) => Err("running a job goes to the scheduler".into()),
        Command::Shutdown => {
            shutdown.notify_one();
            Ok(Reply::Done("shutting down".into()))
        }
    }
}
