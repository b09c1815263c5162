//! Starting and stopping the engine: the queue service, the gateway supervisor, the worker,
//! the scheduler and the streaming manager as tasks of one runtime, with the command task
//! (`serve`) that serves front ends and the publisher (`publish`) that turns their state
//! into `Snapshot`s; and the hourly upkeep of the tables.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::actions::ActionInbox;
use super::command::EngineHandle;
pub use super::publish::status_path;
use super::publish::{publish, Publisher};
pub use super::serve::ACTIONS_SHOWN;
use super::serve::{serve_actions, serve_commands, Inboxes, Jobs, Journaling, Services};
use super::snapshot::Snapshot;
use crate::config::Config;
use crate::gateway::connection::GatewaySettings;
use crate::gateway::{Gateway, LineBudget};
use crate::queue::service::{self, QueueHandle};
use crate::queue::store::QueueStore;
use crate::queue::{Actor, RetryPolicy};
use crate::scheduler::calendar::MarketCalendar;
use crate::scheduler::clock::Clock;
use crate::scheduler::runner::OccurrenceSink;
use crate::scheduler::schedule::{Occurrence, Schedule};
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
pub(super) fn occurrence_request(occ: Occurrence) -> Result<crate::queue::NewRequest, String> {
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
