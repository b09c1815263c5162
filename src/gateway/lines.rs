//! The market-data line accountant: the one way anything gets a line. Streams (active
//! legs) hold theirs until demoted; snapshots hold one until their data is in. Snapshots
//! take only what streams leave free, and nothing ever goes past limit − margin.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::engine::LineBudgetView;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no free market-data line: {streams} held by streams, {snapshots} by snapshots, limit {limit} with {margin} kept free")]
pub struct NoFreeLine {
    pub streams: u32,
    pub snapshots: u32,
    pub limit: u32,
    pub margin: u32,
}

#[derive(Debug)]
struct Inner {
    limit: u32,
    margin: u32,
    /// conid → what holds the line (for "in use by what" messages).
    streams: BTreeMap<i32, String>,
    snapshots: u32,
    /// Most lines ever held at once, to show the limit was never passed.
    peak: u32,
}

impl Inner {
    fn held(&self) -> u32 {
        self.streams.len() as u32 + self.snapshots
    }
    fn usable(&self) -> u32 {
        self.limit.saturating_sub(self.margin)
    }
    fn full(&self) -> NoFreeLine {
        NoFreeLine {
            streams: self.streams.len() as u32,
            snapshots: self.snapshots,
            limit: self.limit,
            margin: self.margin,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LineBudget {
    inner: Arc<Mutex<Inner>>,
    freed: Arc<Notify>,
}

impl LineBudget {
    pub fn new(limit: u32, margin: u32) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                limit,
                margin,
                streams: BTreeMap::new(),
                snapshots: 0,
                peak: 0,
            })),
            freed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counts half-updated (every
        // update is one statement), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a line for streaming `conid`, or says how the lines are used.
    pub fn take_stream(&self, conid: i32, label: &str) -> Result<(), NoFreeLine> {
        let mut i = self.lock();
        if i.streams.contains_key(&conid) {
            return Ok(());
        }
        if i.held() >= i.usable() {
            return Err(i.full());
        }
        i.streams.insert(conid, label.to_string());
        i.peak = i.peak.max(i.held());
        Ok(())
    }

    pub fn release_stream(&self, conid: i32) {
        if self.lock().streams.remove(&conid).is_some() {
            self.freed.notify_waiters();
        }
    }

    /// Takes a line for one snapshot if one is free now.
    pub fn try_snapshot(&self) -> Option<SnapshotLine> {
        let mut i = self.lock();
        if i.held() >= i.usable() {
            return None;
        }
        i.snapshots += 1;
        i.peak = i.peak.max(i.held());
        Some(SnapshotLine {
            budget: self.clone(),
        })
    }

    /// Waits for a free line and takes it for one snapshot.
    pub async fn snapshot(&self) -> SnapshotLine {
        loop {
            let freed = self.freed.notified();
            if let Some(line) = self.try_snapshot() {
                return line;
            }
            freed.await;
        }
    }

    /// Resolves when a line is freed after this call (created before a failed
    /// [`LineBudget::try_snapshot`], it misses no line freed in between).
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    pub fn view(&self) -> LineBudgetView {
        let i = self.lock();
        LineBudgetView {
            limit: i.limit,
            margin: i.margin,
            streams: i.streams.len() as u32,
            snapshots: i.snapshots,
        }
    }

    /// What holds each streaming line (conid → label).
    pub fn streams(&self) -> Vec<(i32, String)> {
        self.lock()
            .streams
            .iter()
            .map(|(c, l)| (*c, l.clone()))
            .collect()
    }

    pub fn peak(&self) -> u32 {
        self.lock().peak
    }
}

/// A snapshot's line, returned when dropped (also when the request fails or times out).
#[derive(Debug)]
pub struct SnapshotLine {
    budget: LineBudget,
}

impl Drop for SnapshotLine {
    fn drop(&mut self) {
        let mut i = self.budget.lock();
        i.snapshots = i.snapshots.saturating_sub(1);
        drop(i);
        self.budget.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_take_only_what_streams_leave_free() {
        let b = LineBudget::new(10, 0);
        for c in 0..8 {
            b.take_stream(c, "leg").unwrap();
        }
        let s1 = b.try_snapshot().unwrap();
        let s2 = b.try_snapshot().unwrap();
        assert!(b.try_snapshot().is_none());
        let err = b.take_stream(99, "leg").unwrap_err();
        assert_eq!((err.streams, err.snapshots), (8, 2));
        assert!(err.to_string().contains("8 held by streams"));
        drop(s1);
        assert_eq!(b.view().free(), 1);
        drop(s2);
        b.take_stream(99, "leg").unwrap();
        b.take_stream(100, "leg").unwrap();
        assert!(b.take_stream(101, "leg").is_err());
        assert_eq!(b.peak(), 10);
    }

    #[test]
    fn the_margin_is_never_used() {
        let b = LineBudget::new(3, 1);
        let _a = b.try_snapshot().unwrap();
        let _b = b.try_snapshot().unwrap();
        assert!(b.try_snapshot().is_none());
        assert_eq!(b.view().free(), 0);
    }

    #[tokio::test]
    async fn a_waiting_snapshot_gets_the_next_freed_line() {
        let b = LineBudget::new(1, 0);
        let held = b.try_snapshot().unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move {
            let _l = b2.snapshot().await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        waiter.await.unwrap();
        assert_eq!(b.view().snapshots, 0);
    }
}
