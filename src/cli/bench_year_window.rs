//! `ibq bench year`'s days before the last exact ones, written by windows of
//! `--commit-window` seconds: a window's slots run in order as the engine runs them
//! (each slot's requests enqueued, claimed and finished before the next slot's, or the
//! next would be a duplicate), but the window's result rows go to each table in one
//! commit and its queue rows in one commit, at the window's end. The rows are the same
//! as the engine's, only fewer commits carry them; docs/TABLES.md (The year benchmark)
//! says why the lake ends the same once the upkeep has passed over those days.
//!
//! A request's `result_data` names the version its rows are in. Its queue row is staged
//! before the window's result commits are made, so the version is the one the table's
//! next commit takes (this build is the tables' only writer); each commit checks it got
//! that version, and the build fails rather than record a wrong one.

use std::collections::BTreeMap;

use chrono::Duration;
use deltalake::arrow::array::RecordBatch;
use uuid::Uuid;

use super::bench_year_build::{request_of, request_rows, Builder, Made};
use crate::queue::{Enqueued, RequestType};
use crate::scheduler::schedule::Occurrence;
use crate::worker::results::{ResultTables, Writes, Written};

/// Result rows of a window waiting for their table's one commit, with the version that
/// commit is to take.
#[derive(Default)]
struct WindowRows {
    tables: BTreeMap<&'static str, (i64, Writes)>,
}

impl WindowRows {
    /// Holds one request's rows for its table's commit; returns what its `result_data`
    /// records (that commit's version).
    async fn add(
        &mut self,
        results: &ResultTables,
        table: &'static str,
        request_id: Uuid,
        batch: RecordBatch,
    ) -> anyhow::Result<serde_json::Value> {
        if !self.tables.contains_key(table) {
            let next = results.version(table).await? + 1;
            self.tables.insert(table, (next, Vec::new()));
        }
        let (version, writes) = self.tables.get_mut(table).expect("inserted above");
        let rows = batch.num_rows();
        writes.push((Some(request_id), batch));
        Ok(serde_json::to_value(Written {
            table: table.to_string(),
            rows,
            version: *version,
            quote_spread_ms: None,
            files_read: None,
        })?)
    }

    /// Commits the rows held, one commit per table.
    async fn commit(&mut self, results: &ResultTables) -> anyhow::Result<()> {
        for (table, (expected, writes)) in std::mem::take(&mut self.tables) {
            let version = results.write_together(table, writes).await?;
            anyhow::ensure!(
                version == expected,
                "{table}: a window's rows went to version {version}, not {expected} as their requests recorded"
            );
        }
        Ok(())
    }
}

impl Builder {
    /// The day by windows of `window_secs` (see the module).
    pub(super) async fn run_day_grouped(
        &mut self,
        occurrences: Vec<Occurrence>,
        window_secs: i64,
    ) -> anyhow::Result<()> {
        let bucket = |o: &Occurrence| o.slot.timestamp().div_euclid(window_secs);
        let per = self.per_commit(window_secs);
        let mut i = 0;
        while i < occurrences.len() {
            let first = i;
            while i < occurrences.len() && bucket(&occurrences[i]) == bucket(&occurrences[first]) {
                i += 1;
            }
            let group = &occurrences[first..i];
            self.at(group[0].slot, per).await?;
            self.run_window(group).await?;
        }
        Ok(())
    }

    /// One window: its slots in order, each slot's requests enqueued, claimed a second
    /// apart in the worker's batches and finished, their queue rows staged; then the
    /// result rows committed (one commit per table) and the queue rows (one commit).
    async fn run_window(&mut self, group: &[Occurrence]) -> anyhow::Result<()> {
        let store = &mut self.store;
        let lease = Duration::seconds(store.lease_secs() as i64);
        let mut rows = WindowRows::default();
        let mut k = 0;
        while k < group.len() {
            let slot = group[k].slot;
            self.clock.set(slot);
            while k < group.len() && group[k].slot == slot {
                let (calendar, now) = (&store.market().calendar, store.market().now());
                if let Enqueued::Added(r) =
                    store
                        .state()
                        .prepare_enqueue_at(request_of(&group[k])?, slot, calendar, now)?
                {
                    store.stage(r);
                }
                k += 1;
            }
            let mut runs = Vec::new();
            let mut t = slot + Duration::seconds(1);
            loop {
                self.clock.set(t);
                let (calendar, now) = (&store.market().calendar, store.market().now());
                let claimed = store.state().prepare_claim_at(
                    self.batch,
                    &self.owner,
                    lease,
                    t,
                    calendar,
                    now,
                );
                if claimed.is_empty() {
                    break;
                }
                for r in claimed {
                    let r = store.stage(r);
                    t += Duration::seconds(1);
                    runs.push((r, t));
                }
            }
            for (r, at) in runs {
                self.clock.set(at);
                if r.request_type == RequestType::DerivedStats {
                    // It reads the day's rows: those held so far are committed first.
                    rows.commit(&self.results).await?;
                }
                let data = match request_rows(&self.results, &r, at).await? {
                    Made::Rows(table, batch) => {
                        rows.add(&self.results, table, r.request_id, batch).await?
                    }
                    Made::Written(w) => serde_json::to_value(w)?,
                };
                let row = store.state().prepare_succeed(r.request_id, data, at)?;
                store.stage(row);
            }
        }
        rows.commit(&self.results).await?;
        store.flush().await?;
        Ok(())
    }
}
