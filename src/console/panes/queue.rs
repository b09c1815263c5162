//! The pending, processing and failed panes: one component, three column sets. Only the
//! rows in view are formatted, by indexing the snapshot's `Arc` slice, so 100k requests
//! cost the same as 20.

use std::collections::HashSet;
use std::sync::Arc;

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;
use uuid::Uuid;

use super::{pane_block, Component, Handled, View};
use crate::console::causes;
use crate::console::cursor::Cursor;
use crate::console::fmt;
use crate::console::keymap::Action;
use crate::engine::Snapshot;
use crate::queue::params::Params;
use crate::queue::Request;

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
}

#[cfg(test)]
thread_local! {
    /// Rows formatted on this thread, so a test can check that only the visible ones were.
    pub static FORMATTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// True when the request passes `filter` (see [`crate::console::filter`]).
pub fn matches(r: &Request, filter: &str) -> bool {
    crate::console::filter::Filter::parse(filter).matches(r)
}

/// A line of the failed pane while it is grouped by cause.
#[derive(Debug, Clone)]
enum GroupLine {
    /// One cause: its label and the indices of its rows in the snapshot's slice.
    Group { label: String, members: Vec<u32> },
    /// A row of an expanded group.
    Row(u32),
}

pub struct QueuePane {
    pub kind: QueueKind,
    pub cursor: Cursor,
    /// The request under the cursor, so the cursor stays on it when rows move.
    selected_id: Option<Uuid>,
    /// Lower-cased substring; empty shows every row.
    filter: String,
    /// Indices of the matching rows while a filter is set, for `filtered_of`.
    filtered: Option<Vec<u32>>,
    /// The slice the filter and selection were computed for.
    synced_with: usize,
    pub marks: HashSet<Uuid>,
    /// What to do about an empty pane (`n new request`), shown after "nothing pending".
    pub empty_hint: String,
    /// The failed pane shows one line per cause (`toggle_groups`).
    grouped: bool,
    /// Causes whose rows are shown under their group line.
    expanded: HashSet<String>,
    /// The lines shown while grouped (after the filter).
    lines: Option<Vec<GroupLine>>,
}

impl QueuePane {
    pub fn new(kind: QueueKind) -> Self {
        Self {
            kind,
            cursor: Cursor::default(),
            selected_id: None,
            filter: String::new(),
            filtered: None,
            synced_with: 0,
            marks: HashSet::new(),
            empty_hint: String::new(),
            grouped: false,
            expanded: HashSet::new(),
            lines: None,
        }
    }

    pub fn is_grouped(&self) -> bool {
        self.grouped
    }

    /// Switches the failed pane between one line per cause and one line per request.
    pub fn set_grouped(&mut self, grouped: bool, snap: &Snapshot) {
        self.grouped = grouped && self.kind == QueueKind::Failed;
        self.synced_with = 0;
        self.cursor.selected = 0;
        self.selected_id = None;
        self.sync(snap);
    }

    /// On a group line: shows or hides its rows and returns true; false elsewhere.
    pub fn toggle_expanded(&mut self, snap: &Snapshot) -> bool {
        let Some(GroupLine::Group { label, members }) = self.line(self.cursor.selected) else {
            return false;
        };
        let rows = self.kind.rows(snap);
        let cause = rows
            .get(members[0] as usize)
            .map(|r| causes::cause(r.error_message.as_deref().unwrap_or_default()))
            .unwrap_or_else(|| label.clone());
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
            Some(GroupLine::Group { members, .. }) => Some(members),
            _ => None,
        }
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Number of rows shown (after the filter).
    pub fn len(&self, snap: &Snapshot) -> usize {
        if let Some(lines) = &self.lines {
            return lines.len();
        }
        match &self.filtered {
            Some(ix) => ix.len(),
            None => self.kind.rows(snap).len(),
        }
    }

    pub fn is_empty(&self, snap: &Snapshot) -> bool {
        self.len(snap) == 0
    }

    /// The `i`-th shown row.
    pub fn get<'a>(&self, snap: &'a Snapshot, i: usize) -> Option<&'a Arc<Request>> {
        let rows = self.kind.rows(snap);
        if let Some(lines) = &self.lines {
            return match lines.get(i)? {
                GroupLine::Group { members, .. } => rows.get(members[0] as usize),
                GroupLine::Row(j) => rows.get(*j as usize),
            };
        }
        match &self.filtered {
            Some(ix) => ix.get(i).and_then(|&j| rows.get(j as usize)),
            None => rows.get(i),
        }
    }

    pub fn selected<'a>(&self, snap: &'a Snapshot) -> Option<&'a Arc<Request>> {
        self.get(snap, self.cursor.selected)
    }

    /// The rows an action applies to: the marked ones if any, else the selected one.
    pub fn targets(&self, snap: &Snapshot) -> Vec<Uuid> {
        if !self.marks.is_empty() {
            let mut ids: Vec<Uuid> = self.marks.iter().copied().collect();
            ids.sort();
            ids
        } else if let Some(members) = self.selected_group() {
            let rows = self.kind.rows(snap);
            members
                .iter()
                .filter_map(|&j| rows.get(j as usize).map(|r| r.request_id))
                .collect()
        } else {
            self.selected(snap)
                .map(|r| r.request_id)
                .into_iter()
                .collect()
        }
    }

    pub fn set_filter(&mut self, filter: &str, snap: &Snapshot) {
        self.filter = filter.trim().to_ascii_lowercase();
        self.synced_with = 0;
        self.cursor.selected = 0;
        self.selected_id = None;
        self.sync(snap);
    }

    /// Brings the filter, the marks and the cursor up to date with a new snapshot. Costs one
    /// pass over the rows when the slice changed, none otherwise.
    pub fn sync(&mut self, snap: &Snapshot) {
        let rows = self.kind.rows(snap);
        let key = rows.as_ptr() as *const () as usize ^ rows.len();
        if key == self.synced_with {
            return;
        }
        self.synced_with = key;
        let parsed = crate::console::filter::Filter::parse(&self.filter);
        self.filtered = if self.filter.is_empty() {
            None
        } else {
            Some(
                rows.iter()
                    .enumerate()
                    .filter(|(_, r)| parsed.matches(r))
                    .map(|(i, _)| i as u32)
                    .collect(),
            )
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
        let shown: Box<dyn Iterator<Item = u32>> = match &self.filtered {
            Some(ix) => Box::new(ix.iter().copied()),
            None => Box::new(0..rows.len() as u32),
        };
        let groups = causes::group(shown.map(|j| {
            (
                j,
                rows[j as usize]
                    .error_message
                    .as_deref()
                    .unwrap_or_default(),
            )
        }));
        let mut lines = Vec::with_capacity(groups.len());
        for g in groups {
            let label = causes::label(&g);
            let open = self.expanded.contains(&g.cause);
            let members = g.members;
            if open {
                lines.push(GroupLine::Group {
                    label,
                    members: members.clone(),
                });
                lines.extend(members.into_iter().map(GroupLine::Row));
            } else {
                lines.push(GroupLine::Group { label, members });
            }
        }
        lines
    }

    /// The cells of a group line in the failed pane's columns.
    fn group_cells(&self, label: &str, members: &[u32], view: &View) -> Vec<String> {
        let rows = self.kind.rows(view.snap);
        let members: Vec<&Arc<Request>> = members
            .iter()
            .filter_map(|&j| rows.get(j as usize))
            .collect();
        let all_marked = members.iter().all(|r| self.marks.contains(&r.request_id));
        let cause = members
            .first()
            .map(|r| causes::cause(r.error_message.as_deref().unwrap_or_default()));
        let open = cause.is_some_and(|c| self.expanded.contains(&c));
        let mut symbols: Vec<&str> = Vec::new();
        for r in &members {
            if !symbols.contains(&r.symbol.as_str()) {
                symbols.push(&r.symbol);
            }
        }
        let newest = members.iter().map(|r| r.updated_at).max();
        vec![
            if all_marked { "*" } else { " " }.into(),
            String::new(),
            format!(
                "{} {} request{}",
                if open { "▾" } else { "▸" },
                members.len(),
                if members.len() == 1 { "" } else { "s" }
            ),
            fmt::ext(&symbols.join(",")),
            String::new(),
            fmt::ext(label),
            newest.map(|t| fmt::age(view.now, t)).unwrap_or_default(),
        ]
    }

    fn remember(&mut self, snap: &Snapshot) {
        self.selected_id = self.selected(snap).map(|r| r.request_id);
    }

    fn header(&self) -> (Vec<&'static str>, Vec<Constraint>) {
        use Constraint::*;
        match self.kind {
            QueueKind::Pending => (
                vec!["", "P", "TYPE", "SYMBOL", "PARAMS", "AGE", "ATT", "NEXT"],
                vec![
                    Length(1),
                    Length(1),
                    Length(16),
                    Length(8),
                    Min(10),
                    Length(6),
                    Length(3),
                    Length(9),
                ],
            ),
            QueueKind::Processing => (
                vec!["", "TYPE", "SYMBOL", "PARAMS", "ELAPSED", "ATT"],
                vec![
                    Length(1),
                    Length(16),
                    Length(8),
                    Min(10),
                    Length(7),
                    Length(3),
                ],
            ),
            QueueKind::Failed => (
                vec!["", "P", "TYPE", "SYMBOL", "ATT", "ERROR", "AGE"],
                vec![
                    Length(1),
                    Length(1),
                    Length(16),
                    Length(8),
                    Length(3),
                    Min(16),
                    Length(6),
                ],
            ),
        }
    }

    /// The cells of one row; called for visible rows only.
    fn cells(&self, r: &Request, view: &View) -> Vec<String> {
        #[cfg(test)]
        FORMATTED.with(|c| c.set(c.get() + 1));
        let mark = if self.marks.contains(&r.request_id) {
            "*"
        } else {
            " "
        };
        // Everything but ibq's own enums and numbers came from outside: cleaned before
        // the table cuts it to the column.
        let summary = || {
            fmt::ext(
                &Params::parse(r.request_type, &r.parameters)
                    .map(|p| p.summary())
                    .unwrap_or_else(|e| format!("invalid: {}", e.message)),
            )
        };
        let symbol = || fmt::ext(&r.symbol);
        match self.kind {
            QueueKind::Pending => vec![
                mark.into(),
                r.priority.to_string(),
                r.request_type.as_str().into(),
                symbol(),
                summary(),
                fmt::age(view.now, r.created_at),
                r.attempts.to_string(),
                match r.window_wait() {
                    Some(t) => crate::market::window::waits_for_text(t, view.now),
                    None => r
                        .next_attempt_at
                        .filter(|t| *t > view.now)
                        .map(|t| fmt::until(view.now, t))
                        .unwrap_or_default(),
                },
            ],
            QueueKind::Processing => vec![
                mark.into(),
                r.request_type.as_str().into(),
                symbol(),
                summary(),
                fmt::age(view.now, r.updated_at),
                r.attempts.to_string(),
            ],
            QueueKind::Failed => vec![
                mark.into(),
                r.priority.to_string(),
                r.request_type.as_str().into(),
                symbol(),
                r.attempts.to_string(),
                fmt::ext(r.error_message.as_deref().unwrap_or_default()),
                fmt::age(view.now, r.updated_at),
            ],
        }
    }
}

impl Component for QueuePane {
    fn draw(&self, frame: &mut Frame, area: Rect, view: &View, focused: bool) {
        let theme = view.theme;
        let snap = view.snap;
        let total = self.kind.rows(snap).len();
        let len = self.len(snap);
        let mut note = if self.filtered.is_some() {
            format!(
                "/{} {} of {}",
                fmt::ext(&self.filter),
                fmt::count(len),
                fmt::count(total)
            )
        } else {
            fmt::count(total)
        };
        if !self.marks.is_empty() {
            note.push_str(&format!(" · {} marked", self.marks.len()));
        }
        let number = match self.kind {
            QueueKind::Pending => 1,
            QueueKind::Processing => 2,
            QueueKind::Failed => 3,
        };
        let block = pane_block(theme, number, self.kind.title(), note, focused);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if len == 0 {
            let mut text = if self.filtered.is_some() {
                "no row matches the filter (esc clears it)"
            } else {
                match self.kind {
                    QueueKind::Pending => "nothing pending",
                    QueueKind::Processing => "nothing in flight",
                    QueueKind::Failed => "no failures",
                }
            }
            .to_string();
            if self.filtered.is_none() && !self.empty_hint.is_empty() {
                text = format!("{text} · {}", self.empty_hint);
            }
            frame.render_widget(Paragraph::new(Line::styled(text, theme.dim())), inner);
            return;
        }
        let body = inner.height.saturating_sub(1) as usize;
        let window = self.cursor.window(len, body);
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
                *next = Constraint::Length(WAITS_WIDTH);
            }
        }
        let fit = super::column_widths(&widths, inner.width);
        let rows: Vec<Row> = window
            .map(|i| {
                let r = self.get(snap, i).expect("index within len");
                let mut style = if failed {
                    theme.failed_row()
                } else {
                    Style::default()
                };
                let cells = match self.line(i) {
                    Some(GroupLine::Group { label, members }) => {
                        self.group_cells(label, members, view)
                    }
                    _ => self.cells(r, view),
                };
                if cells[0] == "*" {
                    style = style.patch(theme.marked());
                }
                if i == selected && focused {
                    style = style.patch(theme.selected());
                }
                let cells = cells
                    .into_iter()
                    .zip(&fit)
                    .map(|(c, w)| Cell::from(fmt::cut(&c, *w as usize)));
                Row::new(cells).style(style)
            })
            .collect();
        let header = Row::new(header.into_iter().map(|h| Cell::from(Span::raw(h))))
            .style(theme.header_row());
        let table = Table::new(rows, widths).header(header).column_spacing(1);
        frame.render_widget(table, inner);
    }

    fn handle(&mut self, action: Action, view: &View) -> Handled {
        let len = self.len(view.snap);
        if self.cursor.handle(action, len) {
            self.remember(view.snap);
            return Handled::Consumed;
        }
        if action == Action::ToggleGroups {
            if self.kind != QueueKind::Failed {
                return Handled::NotConsumed;
            }
            self.set_grouped(!self.grouped, view.snap);
            return Handled::Consumed;
        }
        if action == Action::Mark && self.selected_group().is_some() {
            // Marking a group marks all its rows; when all are marked, unmarks them.
            let rows = self.kind.rows(view.snap);
            let ids: Vec<Uuid> = self
                .selected_group()
                .unwrap_or_default()
                .iter()
                .filter_map(|&j| rows.get(j as usize).map(|r| r.request_id))
                .collect();
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

/// Width of "waits for Wed 09:30 ET" in the pending pane's NEXT column.
const WAITS_WIDTH: u16 = 22;
