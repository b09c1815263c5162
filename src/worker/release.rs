//! Releases: runs put back to PENDING without counting an attempt, their tasks aborted
//! (which frees their market-data lines and cancels their subscriptions as the futures
//! drop). The worker does this itself when IB's connectivity is lost; the operator does it
//! for a run that is stuck or too slow.

use std::collections::HashMap;

use chrono::Utc;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::Shared;
use crate::queue::service::Change;
use crate::queue::{Actor, QueueError, Request};

/// The operator's order to abandon runs and put their requests back to PENDING.
pub(super) struct ReleaseOrder {
    pub(super) ids: Vec<Uuid>,
    pub(super) by: Actor,
    pub(super) reply: oneshot::Sender<Result<Vec<Result<Request, QueueError>>, String>>,
}

/// Records (or forgets) when a request's run started, for the console's elapsed time.
pub(super) fn started(shared: &Shared, id: Uuid, start: bool) {
    let mut c = shared.counters.lock().unwrap_or_else(|p| p.into_inner());
    if start {
        c.started.insert(id, Utc::now());
    } else {
        c.started.remove(&id);
    }
}

/// The operator's release: the named runs are abandoned (their tasks aborted: the lines
/// they hold are freed and their subscriptions cancelled as the futures drop), and the
/// requests go back to PENDING without counting an attempt. What they fetched is kept for
/// the next attempt, as after a lost connection.
pub(super) async fn release_by(
    shared: &Shared,
    running: &mut HashMap<Uuid, Request>,
    aborts: &mut HashMap<Uuid, AbortHandle>,
    order: ReleaseOrder,
) {
    let mut abandoned = Vec::new();
    for id in &order.ids {
        if let Some(req) = running.remove(id) {
            if let Some(task) = aborts.remove(id) {
                task.abort();
            }
            shared.ledger.close(*id);
            started(shared, *id, false);
            abandoned.push(req);
        }
    }
    let reason = crate::queue::state::RELEASED_BY_OPERATOR.to_string();
    let result = shared
        .queue
        .change(order.ids.clone(), Change::ReleaseBy(reason, order.by))
        .await;
    if let Ok(rows) = &result {
        let released: Vec<&Request> = rows.iter().filter_map(|r| r.as_ref().ok()).collect();
        shared
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stats
            .released += released.len() as u64;
        for r in released {
            tracing::info!(
                request_id = %r.request_id,
                by = order.by.as_str(),
                "{} {} released by the operator: back to PENDING, no attempt counted",
                r.request_type,
                crate::text::Clean(&r.symbol)
            );
        }
    }
    if let Err(e) = &result {
        tracing::error!(error = %e, count = abandoned.len(), "recording the operator's release in ib_request_queue failed; the abandoned runs go back to PENDING when their leases expire");
    }
    let _ = order.reply.send(result);
}

/// Puts every running request back to PENDING without counting an attempt (their tasks are
/// aborted), keeping what they fetched for the next attempt.
pub(super) async fn release_all(
    shared: &Shared,
    running: &mut HashMap<Uuid, Request>,
    reason: String,
) {
    let ids: Vec<Uuid> = running.drain().map(|(id, _)| id).collect();
    for id in &ids {
        shared.ledger.close(*id);
        started(shared, *id, false);
    }
    tracing::warn!(count = ids.len(), %reason, "releasing requests in flight");
    match shared
        .queue
        .change(ids.clone(), Change::Release(reason))
        .await
    {
        Ok(_) => {
            let mut c = shared.counters.lock().unwrap_or_else(|p| p.into_inner());
            c.stats.released += ids.len() as u64;
        }
        Err(e) => {
            tracing::error!(error = %e, "releasing requests failed; their leases will expire")
        }
    }
}
