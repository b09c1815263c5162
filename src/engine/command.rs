//! What a front end may ask of the engine. Every command gets a reply the console shows in
//! its status line: done (with a short message) or the clear reason it was refused.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::snapshot::Snapshot;
use crate::queue::{NewRequest, Priority, Request};

#[derive(Debug, Clone)]
pub enum Command {
    /// FAILED → PENDING (manual retries do not count against the retry limit).
    Retry(Vec<Uuid>),
    RetryAllFailed,
    SetPriority(Vec<Uuid>, Priority),
    /// One step more urgent (`true`) or less urgent (`false`).
    BumpPriority(Vec<Uuid>, bool),
    Cancel(Vec<Uuid>),
    /// FAILED → CANCELLED with a reason: failures that will never succeed.
    Dismiss(Vec<Uuid>, String),
    DismissAllFailed(String),
    /// PROCESSING → PENDING: the worker abandons the runs (freeing their lines) and no
    /// attempt is counted. For a request that is stuck or too slow.
    Release(Vec<Uuid>),
    Enqueue(NewRequest),
    Promote {
        conid: i32,
        strategy: Option<String>,
    },
    Demote(Vec<i32>),
    PauseWorker,
    ResumeWorker,
    /// Drop the gateway connection and connect again now.
    Reconnect,
    /// Runs a scheduler job now: its occurrence at this moment is enqueued at priority 1.
    RunJob(String),
    /// The whole stored history of one request, oldest first.
    History(Uuid),
    /// Graceful stop: stop claiming, finish or release in-flight requests, commit, exit.
    Shutdown,
}

#[derive(Debug, Clone)]
pub enum Reply {
    Done(String),
    History(Vec<Request>),
}

/// `Err` carries the reason, written for the operator.
pub type CommandResult = Result<Reply, String>;

/// A front end's connection to the engine.
#[derive(Clone)]
pub struct EngineHandle {
    commands: mpsc::Sender<(Command, oneshot::Sender<CommandResult>)>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
}

impl EngineHandle {
    pub fn new(
        commands: mpsc::Sender<(Command, oneshot::Sender<CommandResult>)>,
        snapshot: watch::Receiver<Arc<Snapshot>>,
    ) -> Self {
        Self { commands, snapshot }
    }

    /// Sends a command and waits for its reply.
    pub async fn send(&self, command: Command) -> CommandResult {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send((command, tx))
            .await
            .map_err(|_| "the engine has stopped".to_string())?;
        rx.await
            .map_err(|_| "the engine stopped before answering".to_string())?
    }

    /// The latest picture of the engine; `changed()` wakes on a new one.
    pub fn snapshot(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }
}
