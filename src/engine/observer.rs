//! An observer: the engine interface for a console on a lake whose engine runs in another
//! process. It builds snapshots from the tables and the owner's status file, and sends
//! actions through `ib_operator_actions` for the owner to apply. It never claims, streams
//! or connects to the gateway.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};

use super::actions;
use super::command::{Command, CommandResult, EngineHandle, Reply};
use super::journal::Journal;
use super::runtime::status_path;
use super::snapshot::{GatewayState, Snapshot};
use crate::config::Config;
use crate::queue::service::QueueView;
use crate::queue::store::{self, OwnerLock};
use crate::queue::Enqueued;

pub struct Observer {
    handle: EngineHandle,
}

impl Observer {
    /// Fails when no engine runs on the lake: there is nothing to observe.
    pub async fn start(config: Config) -> anyhow::Result<Observer> {
        let root = config.lake.root.clone();
        if OwnerLock::acquire(&root).is_ok() {
            anyhow::bail!(
                "no ibq engine is running on {}: start `ibq` or `ibq run` there first, or drop --observe",
                root.display()
            );
        }
        let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::empty(
            root.clone(),
            &config.gateway.address,
        )));
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        tokio::spawn(refresh(config.clone(), snap_tx));
        tokio::spawn(serve(config, cmd_rx));
        Ok(Observer {
            handle: EngineHandle::new(cmd_tx, snap_rx),
        })
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }
}

/// Rebuilds the picture from the tables once a second.
async fn refresh(config: Config, tx: watch::Sender<Arc<Snapshot>>) {
    let root = config.lake.root.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // What operators did: the owner records every action in ib_operator_actions.
    let mut actions: Option<actions::NewRows> = None;
    let mut journal = Journal::default();
    loop {
        tick.tick().await;
        let mut snap = Snapshot::empty(root.clone(), &config.gateway.address);
        snap.observer = true;
        let mut clock: Option<(super::ClockView, Option<chrono::DateTime<Utc>>)> = None;
        match store::read_state(&root).await {
            Ok(state) => {
                let view = QueueView::of(&state);
                snap.counts = view.counts;
                snap.pending = view.pending;
                snap.processing = view.processing;
                snap.failed = view.failed;
                snap.done = view.done;
            }
            Err(e) => {
                snap.alert = Some(format!(
                    "reading ib_request_queue failed: {e}; the queue panes are empty until the next read, in a second"
                ))
            }
        }
        let status: Option<serde_json::Value> = std::fs::read_to_string(status_path(&root))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        match status {
            Some(s) => {
                if let Ok(g) = serde_json::from_value::<GatewayState>(s["gateway"].clone()) {
                    snap.gateway = g;
                }
                if let Ok(m) = serde_json::from_value(s["market"].clone()) {
                    snap.market = m;
                }
                if let Ok(w) = serde_json::from_value(s["worker"].clone()) {
                    snap.worker = w;
                }
                if let Ok(l) = serde_json::from_value(s["lines"].clone()) {
                    snap.lines = l;
                }
                if let Ok(legs) = serde_json::from_value::<Vec<super::LegView>>(s["legs"].clone()) {
                    snap.legs = legs.into();
                }
                if let Ok(farms) = serde_json::from_value(s["farms"].clone()) {
                    snap.farms = farms;
                }
                if let Ok(c) = serde_json::from_value::<super::ClockView>(s["clock"].clone()) {
                    clock = Some((c, serde_json::from_value(s["written_at"].clone()).ok()));
                }
            }
            None => snap.alert = Some("the owning engine has not written its status yet".into()),
        }
        if actions.is_none() {
            actions = actions::NewRows::open(&root).await.ok();
        }
        if let Some(reader) = &mut actions {
            match reader.next().await {
                Ok(rows) => journal.absorb(rows),
                Err(e) => {
                    tracing::debug!(error = %e, "reading ib_operator_actions failed; read again in a second")
                }
            }
        }
        snap.actions = journal.view(super::runtime::ACTIONS_SHOWN);
        snap.taken_at = Utc::now();
        // The owner's clock as it wrote the file, carried forward to now.
        snap.clock = match clock {
            Some((c, Some(written))) => super::ClockView {
                now: c.at(written, snap.taken_at),
                speed: c.speed,
            },
            _ => super::ClockView::wall(snap.taken_at),
        };
        tx.send_replace(Arc::new(snap));
    }
}

async fn serve(config: Config, mut rx: mpsc::Receiver<(Command, oneshot::Sender<CommandResult>)>) {
    while let Some((cmd, reply)) = rx.recv().await {
        let config = config.clone();
        tokio::spawn(async move {
            let _ = reply.send(execute(&config, cmd).await);
        });
    }
}

async fn execute(config: &Config, cmd: Command) -> CommandResult {
    let root = &config.lake.root;
    match cmd {
        // Quitting an observer stops only this console; the owner keeps running.
        Command::Shutdown => Ok(Reply::Done("observer closed".into())),
        Command::History(id) => store::history(root, id)
            .await
            .map(Reply::History)
            .map_err(|e| e.to_string()),
        Command::Enqueue(new) => {
            let state = store::read_state(root).await.map_err(|e| e.to_string())?;
            match store::append_as_guest(root, &state, new)
                .await
                .map_err(|e| e.to_string())?
            {
                Enqueued::Added(r) => Ok(Reply::Done(format!(
                    "enqueued {} {} (the engine picks it up shortly)",
                    r.request_type, r.symbol
                ))),
                Enqueued::Duplicate(r) => Ok(Reply::Done(format!(
                    "duplicate: already {} as {}",
                    r.status, r.request_id
                ))),
            }
        }
        other => {
            let by = format!("observer pid {}", std::process::id());
            actions::ask_owner(root, &other, &by, Duration::from_secs(20))
                .await
                .map(Reply::Done)
        }
    }
}
