//! Marking many rows at once: every row shown, the inverse of the marks, or a range from
//! an anchor to the cursor that grows as the cursor moves.

use std::collections::HashSet;

use uuid::Uuid;

use super::QueuePane;
use crate::engine::Snapshot;

/// A range being marked: from the anchor's row to the cursor.
#[derive(Debug, Clone)]
pub(super) struct Marking {
    pub(super) anchor: Uuid,
    /// The marks before the range began: the range adds to them, `esc` goes back to them.
    pub(super) before: HashSet<Uuid>,
}

impl QueuePane {
    /// Marks every request shown; returns how many are marked now.
    pub fn select_all(&mut self, snap: &Snapshot) -> usize {
        self.marking = None;
        self.marks.extend(self.shown_ids(snap));
        self.marks.len()
    }

    /// Marks the shown requests that were not marked and unmarks those that were; returns
    /// how many are marked now.
    pub fn invert_marks(&mut self, snap: &Snapshot) -> usize {
        self.marking = None;
        for id in self.shown_ids(snap) {
            if !self.marks.remove(&id) {
                self.marks.insert(id);
            }
        }
        self.marks.len()
    }

    pub fn is_marking_range(&self) -> bool {
        self.marking.is_some()
    }

    /// Starts a range at the cursor (returns true), or ends the one under way keeping what
    /// it marked (returns false).
    pub fn toggle_range(&mut self, snap: &Snapshot) -> bool {
        if self.marking.take().is_some() {
            return false;
        }
        let Some(anchor) = self.selected(snap).map(|r| r.request_id) else {
            return false;
        };
        self.marking = Some(Marking {
            anchor,
            before: self.marks.clone(),
        });
        self.mark_range(snap);
        true
    }

    /// Drops the range under way: the marks are what they were before it began.
    pub fn cancel_range(&mut self) -> bool {
        match self.marking.take() {
            Some(m) => {
                self.marks = m.before;
                true
            }
            None => false,
        }
    }

    /// The marks before the range, plus every line from the anchor to the cursor.
    pub(super) fn mark_range(&mut self, snap: &Snapshot) {
        let Some(m) = &self.marking else {
            return;
        };
        let len = self.len(snap);
        let Some(anchor) =
            (0..len).find(|&i| self.get(snap, i).is_some_and(|r| r.request_id == m.anchor))
        else {
            // The anchor's request left the pane: the range ends with what it marked.
            self.marking = None;
            return;
        };
        let mut marks = m.before.clone();
        let (a, b) = (
            anchor.min(self.cursor.selected),
            anchor.max(self.cursor.selected),
        );
        for i in a..=b.min(len.saturating_sub(1)) {
            marks.extend(self.ids_of_line(snap, i));
        }
        self.marks = marks;
    }
}
