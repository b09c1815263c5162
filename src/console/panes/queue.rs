//! The pending, processing and failed panes: one component, three column sets. Only the
//! rows in view are formatted, by indexing the snapshot's `Arc` slice, so 100k requests
//! cost the same as 20. A pane shows the rows its filter lets through, in the order of
//! service or sorted by a column; rows are marked one by one, all at once, inverted, or as
//! a range from an anchor to the cursor.

mod cells;
mod marks;
pub mod sort;

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;
use uuid::Uuid;

#[cfg(test)]
pub use cells::FORMATTED;
pub use cells::{with_tail, Lateness};

use super::{pane_block, Component, Handled, View};
use crate::console::causes;
use crate::console::cursor::Cursor;
use crate::console::fmt;
use crate::console::keymap::Action;
use crate::engine::Snapshot;
use crate::queue::Request;
use marks::Marking;
use sort::{Column, Sort};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueKind {
    Pending,
    Processing,
    Failed,
}

impl QueueKind {
    pub fn title(self) -> &'static str {
        match self {
            QueueKind::Pending => "Pending",
            QueueKind::Processing => "Processing",
            QueueKind::Failed => "Failed",
        }
    }

    pub fn rows(self, snap: &Snapshot) -> &Arc<[Arc<Request>]> {
        match self {
            QueueKind::Pending => &snap.pending,
            QueueKind::Processing => &snap.processing,
            QueueKind::Failed => &snap.failed,
        }
    }

    fn number(self) -> usize {
        match self {
            QueueKind::Pending => 1,
            QueueKind::Processing => 2,
            QueueKind::Failed => 3,
        }
    }
}

/// True when the request passes `filter` (see [`crate::console::filter`]).
pub fn matches(r: &Request, filter: &str) -> bool {
    crate::console::filter::Filter::parse(filter).matches(r)
}

/// A line of the failed pane while it is grouped by cause.
#[derive(Debug, Clone)]
enum GroupLine {
    /// One cause: the indices of its rows in the snapshot's slice.
    Group { members: Vec<u32> },
    /// A row of an expanded group.
    Row(u32),
}

pub struct QueuePane {
    pub kind: QueueKind,
    pub cursor: Cursor,
    /// The request under the cursor, so the cursor stays on it when rows move.
    selected_id: Option<Uuid>,
    /// Lower-cased filter text; empty shows every row.
    filter: String,
    /// The shown rows (indices into the snapshot's slice) in the order shown, while a
    /// filter or a sort applies; `None`: every row in the order of service.
    order: Option<Vec<u32>>,
    /// The slice the filter and selection were computed for.
    synced_with: usize,
    pub marks: HashSet<Uuid>,
    /// Set while a range is being marked (`range_select`).
    marking: Option<Marking>,
    /// What to do about an empty pane (`n new request`), shown after "nothing pending".
    pub empty_hint: String,
    /// The failed pane shows one line per cause (`toggle_groups`).
    grouped: bool,
    /// Causes whose rows are shown under their group line.
    expanded: HashSet<String>,
    /// The lines shown while grouped (after the filter).
    lines: Option<Vec<GroupLine>>,
    sort: Sort,
}

impl QueuePane {
    pub fn new(kind: QueueKind) -> Self {
        Self {
            kind,
            cursor: Cursor::default(),
            selected_id: None,
            filter: String::new(),
            order: None,
            synced_with: 0,
            marks: HashSet::new(),
            marking: None,
            empty_hint: String::new(),
            grouped: false,
            expanded: HashSet::new(),
            lines: None,
            sort: Sort::default(),
        }
    }

    pub fn is_grouped(&self) -> bool {
        self.grouped
    }

    /// Switches the failed pane between one line per cause and one line per request.
    pub fn set_grouped(&mut self, grouped: bool, snap: &Snapshot) {
        self.grouped = grouped && self.kind == QueueKind::Failed;
        self.marking = None;
        self.synced_with = 0;
        self.cursor.selected = 0;
        self.selected_id = None;
        self.sync(snap);
    }

    /// On a group line: shows or hides its rows and returns true; false elsewhere.
    pub fn toggle_expanded(&mut self, snap: &Snapshot) -> bool {
        let Some(GroupLine::Group { members }) = self.line(self.cursor.selected) else {
            return false;
        };
        let rows = self.kind.rows(snap);
        let Some(cause) = rows.get(members[0] as usize).map(|r| causes::cause_of(r)) else {
            return false;
        };
        if !self.expanded.remove(&cause) {
            self.expanded.insert(cause);
        }
        let at = self.cursor.selected;
        self.synced_with = 0;
        self.selected_id = None;
        self.sync(snap);
        self.cursor.selected = at.min(self.len(snap).saturating_sub(1));
        self.remember(snap);
        true
    }

    fn line(&self, i: usize) -> Option<&GroupLine> {
        self.lines.as_ref().and_then(|l| l.get(i))
    }

    /// The rows of the selected group line, if the cursor is on one.
    fn selected_group(&self) -> Option<&[u32]> {
        match self.line(self.cursor.selected) {
            Some(GroupLine::Group { members }) => Some(members),
            _ => None,
        }
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn sort(&self) -> Sort {
        self.sort
    }

    /// Number of lines shown (after the filter; while grouped, group lines and the rows of
    /// expanded groups).
    pub fn len(&self, snap: &Snapshot) -> usize {
        if let Some(lines) = &self.lines {
            return lines.len();
        }
        match &self.order {
            Some(ix) => ix.len(),
            None => self.kind.rows(snap).len(),
        }
    }

    pub fn is_empty(&self, snap: &Snapshot) -> bool {
        self.len(snap) == 0
    }

    /// The `i`-th shown line's request (a group line's first request).
    pub fn get<'a>(&self, snap: &'a Snapshot, i: usize) -> Option<&'a Arc<Request>> {
        let rows = self.kind.rows(snap);
        if let Some(lines) = &self.lines {
            return match lines.get(i)? {
                GroupLine::Group { members } => rows.get(members[0] as usize),
                GroupLine::Row(j) => rows.get(*j as usize),
            };
        }
        match &self.order {
            Some(ix) => ix.get(i).and_then(|&j| rows.get(j as usize)),
            None => rows.get(i),
        }
    }

    /// The requests of the `i`-th shown line: a group line's are all its rows.
    fn ids_of_line(&self, snap: &Snapshot, i: usize) -> Vec<Uuid> {
        let rows = self.kind.rows(snap);
        match self.line(i) {
            Some(GroupLine::Group { members }) => members
                .iter()
                .filter_map(|&j| rows.get(j as usize).map(|r| r.request_id))
                .collect(),
            _ => self
                .get(snap, i)
                .map(|r| r.request_id)
                .into_iter()
                .collect(),
        }
    }

    pub fn selected<'a>(&self, snap: &'a Snapshot) -> Option<&'a Arc<Request>> {
        self.get(snap, self.cursor.selected)
    }

    /// The rows an action applies to: the marked ones if any, else the selected one (a
    /// group line: all its rows).
    pub fn targets(&self, snap: &Snapshot) -> Vec<Uuid> {
        if !self.marks.is_empty() {
            let mut ids: Vec<Uuid> = self.marks.iter().copied().collect();
            ids.sort();
            ids
        } else {
            self.ids_of_line(snap, self.cursor.selected)
        }
    }

    /// Every request the filter shows, in the order shown, whether or not its group is
    /// expanded: what "all" means for a bulk action.
    pub fn shown_ids(&self, snap: &Snapshot) -> Vec<Uuid> {
        let rows = self.kind.rows(snap);
        match &self.order {
            Some(ix) => ix
                .iter()
                .filter_map(|&j| rows.get(j as usize).map(|r| r.request_id))
                .collect(),
            None => rows.iter().map(|r| r.request_id).collect(),
        }
    }

    pub fn set_filter(&mut self, filter: &str, snap: &Snapshot) {
        self.filter = filter.trim().to_ascii_lowercase();
        self.marking = None;
        self.synced_with = 0;
        self.cursor.selected = 0;
        self.selected_id = None;
        self.sync(snap);
    }

    /// Orders the rows by `sort`; the cursor stays on its request.
    pub fn set_sort(&mut self, sort: Sort, snap: &Snapshot) {
        self.sort = sort;
        self.marking = None;
        self.synced_with = 0;
        self.sync(snap);
    }

    /// Brings the filter, the order, the marks and the cursor up to date with a new
    /// snapshot. Costs one pass over the rows (and a sort, when one applies) when the
    /// slice changed, none otherwise.
    pub fn sync(&mut self, snap: &Snapshot) {
        let rows = self.kind.rows(snap);
        let key = rows.as_ptr() as *const () as usize ^ rows.len();
        if key == self.synced_with {
            return;
        }
        self.synced_with = key;
        self.order = if self.filter.is_empty() && self.sort.is_default() {
            None
        } else {
            let parsed = crate::console::filter::Filter::parse(&self.filter);
            let mut shown: Vec<u32> = if self.filter.is_empty() {
                (0..rows.len() as u32).collect()
            } else {
                rows.iter()
                    .enumerate()
                    .filter(|(_, r)| parsed.matches(r))
                    .map(|(i, _)| i as u32)
                    .collect()
            };
            let ctx = sort::Context {
                kind: self.kind,
                now: snap.taken_at,
                started: &snap.worker.started,
            };
            sort::order(rows, &mut shown, self.sort, &ctx);
            Some(shown)
        };
        if !self.marks.is_empty() {
            let present: HashSet<Uuid> = rows
                .iter()
                .filter(|r| self.marks.contains(&r.request_id))
                .map(|r| r.request_id)
                .collect();
            self.marks = present;
        }
        self.lines = self.grouped.then(|| self.group_lines(snap));
        let len = self.len(snap);
        if let Some(id) = self.selected_id {
            let still = self
                .get(snap, self.cursor.selected)
                .is_some_and(|r| r.request_id == id);
            if !still {
                if let Some(i) = (0..len).find(|&i| self.get(snap, i).unwrap().request_id == id) {
                    self.cursor.selected = i;
                }
            }
        }
        self.cursor.clamp(len);
        self.selected_id = self.selected(snap).map(|r| r.request_id);
    }

    /// One line per cause (largest first), each expanded group followed by its rows.
    fn group_lines(&self, snap: &Snapshot) -> Vec<GroupLine> {
        let rows = self.kind.rows(snap);
        let shown: Box<dyn Iterator<Item = u32>> = match &self.order {
            Some(ix) => Box::new(ix.iter().copied()),
            None => Box::new(0..rows.len() as u32),
        };
        let groups = causes::group(shown.map(|j| (j, &*rows[j as usize])));
        let mut lines = Vec::with_capacity(groups.len());
        for g in groups {
            let open = self.expanded.contains(&g.cause);
            let members = g.members;
            if open {
                lines.push(GroupLine::Group {
                    members: members.clone(),
                });
                lines.extend(members.into_iter().map(GroupLine::Row));
            } else {
                lines.push(GroupLine::Group { members });
            }
        }
        lines
    }

    fn remember(&mut self, snap: &Snapshot) {
        self.selected_id = self.selected(snap).map(|r| r.request_id);
    }

    /// The pane's title: its name, then what shapes the rows (grouping, the filter, the
    /// sort), then which lines are in view: `Failed · code:354 · AGE ▲ · 12–40 of 812`.
    /// The filter is cut (with `…`) so that the whole title fits in `room` characters.
    pub fn title(&self, len: usize, window: Range<usize>, room: usize) -> String {
        let mut before = vec![self.kind.title().to_string()];
        if self.grouped {
            before.push("by cause".into());
        }
        let mut after = Vec::new();
        let sort = self.sort.label();
        if !sort.is_empty() {
            after.push(sort);
        }
        if len > 0 {
            after.push(format!(
                "{}–{} of {}",
                fmt::count(window.start + 1),
                fmt::count(window.end.max(window.start + 1)),
                fmt::count(len)
            ));
        } else if !self.filter.is_empty() {
            after.push("no match".into());
        }
        let join = |parts: &[String]| parts.join(" · ");
        let fixed = join(&before).chars().count()
            + after.iter().map(|a| a.chars().count() + 3).sum::<usize>();
        if !self.filter.is_empty() {
            let filter = fmt::ext(&self.filter);
            let left = room.saturating_sub(fixed + 3);
            if left >= 4 {
                before.push(fmt::cut(&filter, left));
            }
        }
        before.extend(after);
        join(&before)
    }

    /// What the right of the title says: marks, the range under way, and the pane's whole
    /// count when the filter hides some rows.
    fn note(&self, snap: &Snapshot) -> String {
        let mut parts = Vec::new();
        if !self.filter.is_empty() || self.grouped {
            let total = self.kind.rows(snap).len();
            parts.push(format!("{} in all", fmt::count(total)));
        }
        if self.marking.is_some() {
            parts.push(format!("range · {} marked", fmt::count(self.marks.len())));
        } else if !self.marks.is_empty() {
            parts.push(format!("{} marked", fmt::count(self.marks.len())));
        }
        parts.join(" · ")
    }
}

impl Component for QueuePane {
    fn draw(&self, frame: &mut Frame, area: Rect, view: &View, focused: bool) {
        let theme = view.theme;
        let snap = view.snap;
        let len = self.len(snap);
        // Two border rows and the header row: the rest holds lines.
        let body = area.height.saturating_sub(3) as usize;
        let window = self.cursor.window(len, body);
        let note = self.note(snap);
        // Borders, the focus marker, the number, the spaces and the note take the rest.
        let room = (area.width as usize).saturating_sub(note.chars().count() + 12);
        let title = self.title(len, window.clone(), room);
        let block = pane_block(theme, self.kind.number(), &title, note, focused);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if len == 0 {
            let filtered = !self.filter.is_empty();
            let mut text = if filtered {
                "no row matches the filter (esc clears it)"
            } else {
                match self.kind {
                    QueueKind::Pending => "nothing pending",
                    QueueKind::Processing => "nothing in flight",
                    QueueKind::Failed => "no failures",
                }
            }
            .to_string();
            if !filtered && !self.empty_hint.is_empty() {
                text = format!("{text} · {}", self.empty_hint);
            }
            frame.render_widget(Paragraph::new(Line::styled(text, theme.dim())), inner);
            return;
        }
        let selected = self.cursor.selected.min(len - 1);
        let failed = self.kind == QueueKind::Failed;
        // A request held for its market-hours window says so ("waits for 09:30 ET"): the NEXT
        // column widens while one is in view.
        let waiting = self.kind == QueueKind::Pending
            && window
                .clone()
                .any(|i| self.get(snap, i).is_some_and(|r| r.window_wait().is_some()));
        let (header, mut widths) = self.header();
        if waiting {
            if let Some(next) = widths.last_mut() {
                *next = Constraint::Length(cells::WAITS_WIDTH);
            }
        }
        let fit = super::column_widths(&widths, inner.width);
        let elapsed = self.cell_of(Column::Elapsed);
        let error = self.cell_of(Column::Error);
        let rows: Vec<Row> = window
            .map(|i| {
                let r = self.get(snap, i).expect("index within len");
                let mut style = if failed {
                    theme.failed_row()
                } else {
                    Style::default()
                };
                let (cells, group) = match self.line(i) {
                    Some(GroupLine::Group { members }) => {
                        (self.group_cells(members, view), Some(members.len()))
                    }
                    _ => (self.cells(r, view), None),
                };
                if cells[0] == "*" {
                    style = style.patch(theme.marked());
                }
                if i == selected && focused {
                    style = style.patch(theme.selected());
                }
                let late = (elapsed.is_some() && group.is_none())
                    .then(|| self.lateness(r, view).style(theme));
                let cells = cells
                    .into_iter()
                    .zip(&fit)
                    .enumerate()
                    .map(|(c, (text, w))| {
                        let w = *w as usize;
                        let text = match group {
                            // A group's count is never cut: its cause gives way.
                            Some(n) if Some(c) == error => with_tail(&text, &format!(" ×{n}"), w),
                            _ => fmt::cut(&text, w),
                        };
                        match late {
                            Some(s) if Some(c) == elapsed => Cell::from(text).style(s),
                            _ => Cell::from(text),
                        }
                    });
                Row::new(cells).style(style)
            })
            .collect();
        let sorted = self.sort.column.and_then(|c| self.cell_of(c));
        let header = Row::new(header.into_iter().enumerate().map(|(c, h)| {
            let cell = Cell::from(Span::raw(h));
            if Some(c) == sorted {
                cell.style(Style::default().add_modifier(Modifier::UNDERLINED))
            } else {
                cell
            }
        }))
        .style(theme.header_row());
        let table = Table::new(rows, widths).header(header).column_spacing(1);
        frame.render_widget(table, inner);
    }

    fn handle(&mut self, action: Action, view: &View) -> Handled {
        let len = self.len(view.snap);
        if self.cursor.handle(action, len) {
            self.remember(view.snap);
            self.mark_range(view.snap);
            return Handled::Consumed;
        }
        if action == Action::ToggleGroups {
            if self.kind != QueueKind::Failed {
                return Handled::NotConsumed;
            }
            self.set_grouped(!self.grouped, view.snap);
            return Handled::Consumed;
        }
        if action == Action::Mark && self.marking.is_some() {
            // Space ends a range as `v` does, keeping what it marked.
            self.marking = None;
            return Handled::Consumed;
        }
        if action == Action::Mark && self.selected_group().is_some() {
            // Marking a group marks all its rows; when all are marked, unmarks them.
            let ids = self.ids_of_line(view.snap, self.cursor.selected);
            if ids.iter().all(|id| self.marks.contains(id)) {
                for id in &ids {
                    self.marks.remove(id);
                }
            } else {
                self.marks.extend(ids);
            }
            self.cursor.handle(Action::MoveDown, len);
            self.remember(view.snap);
            return Handled::Consumed;
        }
        if action == Action::Mark {
            if let Some(id) = self.selected(view.snap).map(|r| r.request_id) {
                if !self.marks.remove(&id) {
                    self.marks.insert(id);
                }
                self.cursor.handle(Action::MoveDown, len);
                self.remember(view.snap);
            }
            return Handled::Consumed;
        }
        Handled::NotConsumed
    }
}

#[cfg(test)]
mod tests;
