//! Installing rows: the newest row of each request and the indexes kept in step with it
//! (claim order, duplicates, schedule keys, counts), sequence numbers, replay, undo after a
//! failed commit, and forgetting archived requests.

use std::collections::HashSet;
use std::sync::Arc;

use uuid::Uuid;

use super::{order_key, QueueState};
use crate::queue::model::{During, Request, Status};

impl QueueState {
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// Numbers the next row `seq` or later (the number a queue rewrite recorded: rows with
    /// higher numbers may have left for the history table).
    pub fn continue_seq_from(&mut self, seq: i64) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// Installs `row` as the newest row of its request and returns the row it replaced.
    /// The row gets the next sequence number of this process here.
    pub fn apply(&mut self, mut row: Request) -> (Request, Option<Arc<Request>>) {
        row.seq = Some(self.next_seq);
        self.next_seq += 1;
        let previous = self.install(Arc::new(row.clone()));
        (row, previous)
    }

    /// Puts back `previous` (or removes the request) after a commit that failed.
    pub fn undo(&mut self, id: Uuid, previous: Option<Arc<Request>>) {
        self.remove_indexes(&id);
        match previous {
            Some(p) => {
                self.add_indexes(&p);
                self.requests.insert(id, p);
            }
            None => {
                self.requests.remove(&id);
                // The occurrence keys it carried or answered were never committed: the
                // runner must submit them again.
                self.schedule_keys.retain(|_, held_by| *held_by != id);
            }
        }
        self.generation += 1;
    }

    /// Replays a stored row: it wins when it is newer than what is known for its request.
    /// Rows without a sequence number (other writers) are older than any numbered row.
    pub fn replay(&mut self, row: Request) {
        if let Some(seq) = row.seq {
            self.next_seq = self.next_seq.max(seq + 1);
        }
        let newer = match self.requests.get(&row.request_id) {
            None => true,
            Some(known) => row.seq > known.seq,
        };
        if newer {
            self.install(Arc::new(row));
        }
    }

    /// Drops a request from the state (its rows have left the live table for the history
    /// table) and returns its newest row. Its schedule key stays known until
    /// `forget_all` or a restart; see there.
    pub fn forget(&mut self, id: &Uuid) -> Option<Arc<Request>> {
        self.remove_indexes(id);
        let gone = self.requests.remove(id);
        if gone.is_some() {
            self.generation += 1;
        }
        gone
    }

    /// Drops requests from the state and the schedule keys only they held, so the state
    /// is what a restart would replay: memory does not grow with archived requests. Only
    /// finished requests at least a day old are archived, and the scheduler asks only for
    /// the keys of today's occurrences, so a forgotten key is never submitted again.
    /// Returns how many were dropped.
    pub fn forget_all(&mut self, ids: &[Uuid]) -> usize {
        let mut keys = HashSet::new();
        let mut n = 0;
        for id in ids {
            if let Some(gone) = self.forget(id) {
                n += 1;
                keys.extend(gone.schedule_key.clone());
            }
        }
        // Keys covered by a forgotten request without being its own.
        let requests = &self.requests;
        keys.extend(
            self.schedule_keys
                .iter()
                .filter(|(_, id)| !requests.contains_key(id))
                .map(|(k, _)| k.clone()),
        );
        if !keys.is_empty() {
            for k in &keys {
                self.schedule_keys.remove(k);
            }
            // A key another request still carries stays known, under that request.
            let holders: Vec<(String, Uuid)> = self
                .requests
                .values()
                .filter_map(|r| Some((r.schedule_key.clone()?, r.request_id)))
                .filter(|(k, _)| keys.contains(k))
                .collect();
            for (k, id) in holders {
                self.schedule_keys.entry(k).or_insert(id);
            }
        }
        n
    }

    fn install(&mut self, row: Arc<Request>) -> Option<Arc<Request>> {
        let id = row.request_id;
        self.remove_indexes(&id);
        self.add_indexes(&row);
        self.generation += 1;
        self.requests.insert(id, row)
    }

    fn remove_indexes(&mut self, id: &Uuid) {
        let Some(old) = self.requests.get(id).cloned() else {
            return;
        };
        *self.counts.slot(old.status) -= 1;
        match old.status {
            Status::Pending => {
                self.pending.remove(&order_key(&old));
                self.windowed.remove(id);
            }
            Status::Processing => {
                self.processing.remove(&order_key(&old));
            }
            Status::Failed => {
                self.failed.remove(&(old.updated_at, old.request_id));
            }
            Status::Success => {
                self.succeeded.remove(&(old.updated_at, old.request_id));
            }
            Status::Cancelled => {}
        }
        if old.status.is_open() {
            let key = old.dedup_key();
            if self.open.get(&key) == Some(id) {
                self.open.remove(&key);
            }
        }
    }

    fn add_indexes(&mut self, r: &Arc<Request>) {
        *self.counts.slot(r.status) += 1;
        match r.status {
            Status::Pending => {
                self.pending.insert(order_key(r));
                if r.during != During::Any {
                    self.windowed.insert(r.request_id);
                }
            }
            Status::Processing => {
                self.processing.insert(order_key(r));
            }
            Status::Failed => {
                self.failed.insert((r.updated_at, r.request_id));
            }
            Status::Success => {
                self.succeeded.insert((r.updated_at, r.request_id));
            }
            Status::Cancelled => {}
        }
        if r.status.is_open() {
            self.open.entry(r.dedup_key()).or_insert(r.request_id);
        }
        if let Some(k) = &r.schedule_key {
            self.schedule_keys.entry(k.clone()).or_insert(r.request_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    use crate::queue::model::{Actor, RequestType};
    use crate::queue::state::test_support::{add, new, t0};
    use crate::queue::state::Enqueued;

    #[test]
    fn a_request_whose_commit_failed_leaves_its_keys_to_be_submitted_again() {
        let mut q = QueueState::new();
        let key = "futures_regular@2026-11-23T14:30:00Z#ES";
        let covered = "futures_regular@2026-11-23T14:35:00Z#ES";
        let mut n = new(RequestType::FuturesSnapshot, "ES", 2);
        n.schedule_key = Some(key.into());
        let Enqueued::Added(r) = q.prepare_enqueue(n, t0()).unwrap() else {
            panic!("added")
        };
        let (r, previous) = q.apply(r);
        q.cover_schedule_key(covered.into(), r.request_id);
        q.undo(r.request_id, previous);
        assert!(!q.has_schedule_key(key), "the runner submits it again");
        assert!(!q.has_schedule_key(covered));
        assert!(q.is_empty());
    }

    #[test]
    fn replay_keeps_the_newest_row() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::MarketBars, "SPY", 2), t0());
        let claimed = q
            .prepare_claim(1, "w", Duration::minutes(5), t0())
            .remove(0);
        let (claimed, _) = q.apply(claimed);
        let first = (**q.get(&a).unwrap()).clone();
        let mut replayed = QueueState::new();
        replayed.replay(claimed.clone());
        let mut enq = first.clone();
        enq.status = Status::Pending;
        enq.seq = Some(1);
        replayed.replay(enq);
        assert_eq!(replayed.get(&a).unwrap().status, Status::Processing);
    }

    #[test]
    fn undo_restores_indexes() {
        let mut q = QueueState::new();
        let a = add(&mut q, new(RequestType::MarketBars, "SPY", 2), t0());
        let r = q.prepare_cancel(a, Actor::Operator, t0()).unwrap();
        let (_, prev) = q.apply(r);
        assert_eq!(q.counts().cancelled, 1);
        q.undo(a, prev);
        assert_eq!(q.counts().pending, 1);
        assert_eq!(q.counts().cancelled, 0);
        assert_eq!(q.pending().count(), 1);
    }
}
