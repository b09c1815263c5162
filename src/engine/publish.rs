//! The engine's publisher: the state of the queue, the gateway, the worker, the streaming
//! manager and the schedule turned into one `Snapshot` for front ends, sent only when
//! something changed, and the status file other processes read.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::snapshot::{JobView, MarketView, Snapshot};
use crate::gateway::{Gateway, LineBudget};
use crate::queue::service::QueueHandle;
use crate::queue::Status;
use crate::scheduler::calendar::MarketCalendar;
use crate::scheduler::clock::Clock;
use crate::scheduler::schedule::Schedule;
use crate::scheduler::view;
use crate::streaming::Streaming;
use crate::worker::WorkerHandle;

pub(super) struct Publisher {
    pub(super) root: PathBuf,
    pub(super) queue: QueueHandle,
    pub(super) gateway: Arc<Gateway>,
    pub(super) worker: WorkerHandle,
    pub(super) lines: LineBudget,
    pub(super) streaming: Streaming,
    pub(super) schedule: Schedule,
    pub(super) calendar: MarketCalendar,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) actions: watch::Receiver<Arc<[super::ActionEntry]>>,
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
pub(super) async fn publish(
    p: Publisher,
    tx: watch::Sender<Arc<Snapshot>>,
    mut stop: watch::Receiver<bool>,
) {
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
