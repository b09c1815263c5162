//! The engine's command task: commands from programs, other processes' actions and the
//! operator's console, each carried out and answered, the console's recorded in the journal
//! of operator actions.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::actions::{self, ActionInbox};
use super::command::{Command, CommandResult, EngineHandle, Reply};
use super::runtime::occurrence_request;
use crate::gateway::Gateway;
use crate::queue::service::{Change, QueueHandle};
use crate::queue::Actor;
use crate::scheduler::clock::Clock;
use crate::scheduler::schedule::Schedule;
use crate::streaming::Streaming;
use crate::worker::WorkerHandle;

/// What running a job by hand needs: the jobs and the engine's clock.
pub(super) struct Jobs {
    pub(super) schedule: Schedule,
    pub(super) clock: Arc<dyn Clock>,
}

/// Where commands come from: programs (and the actions of other processes), the
/// operator's console, whose answered commands go to the journal.
pub(super) struct Inboxes {
    pub(super) others: mpsc::Receiver<(Command, oneshot::Sender<CommandResult>)>,
    pub(super) console: mpsc::Receiver<(Command, oneshot::Sender<CommandResult>)>,
    pub(super) journal: mpsc::UnboundedSender<actions::ActionRow>,
}

/// What commands act on.
#[derive(Clone)]
pub(super) struct Services {
    pub(super) queue: QueueHandle,
    pub(super) worker: WorkerHandle,
    pub(super) gateway: Arc<Gateway>,
    pub(super) streaming: Streaming,
    pub(super) shutdown: Arc<Notify>,
    pub(super) jobs: Arc<Jobs>,
}

/// Who the operator's console is in `ib_operator_actions`.
fn console_name() -> String {
    format!("console pid {}", std::process::id())
}

pub(super) async fn serve_commands(mut inboxes: Inboxes, services: Services) {
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
pub(super) struct Journaling {
    pub(super) rows: mpsc::UnboundedReceiver<actions::ActionRow>,
    pub(super) view: watch::Sender<Arc<[super::ActionEntry]>>,
}

/// How many of the latest operator actions a snapshot carries.
pub const ACTIONS_SHOWN: usize = 200;

/// Applies actions other processes recorded in `ib_operator_actions`, once a second, and
/// records the commands the operator's console had answered; publishes the journal.
pub(super) async fn serve_actions(
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

/// The ids of the requests the queue's view shows as FAILED.
fn failed_ids(queue: &QueueHandle) -> Vec<uuid::Uuid> {
    queue
        .view()
        .borrow()
        .failed
        .iter()
        .map(|r| r.request_id)
        .collect()
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
            let ids = failed_ids(queue);
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
            let ids = failed_ids(queue);
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
