//! What the done and actions panes share: a cursor that stays on its row (by id) when new
//! rows push it down, a filter's matching rows (computed once per new slice), and a table
//! whose columns share the width by need (`super::share`) and end cut text in `…`.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table};
use ratatui::Frame;

use super::Col;
use crate::console::cursor::Cursor;
use crate::console::fmt;
use crate::console::keymap::Action;
use crate::console::theme::Theme;

/// The selection and filter of a list of rows with ids of type `K`.
#[derive(Debug, Clone)]
pub struct ListState<K> {
    pub cursor: Cursor,
    selected: Option<K>,
    filter: String,
    /// Indices of the rows the filter shows; `None` shows every row.
    shown: Option<Vec<u32>>,
    /// The slice the filter and selection were computed for.
    synced_with: usize,
}

impl<K> Default for ListState<K> {
    fn default() -> Self {
        Self {
            cursor: Cursor::default(),
            selected: None,
            filter: String::new(),
            shown: None,
            synced_with: 0,
        }
    }
}

impl<K: Copy + PartialEq> ListState<K> {
    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn is_filtered(&self) -> bool {
        self.shown.is_some()
    }

    /// Rows shown of `total`.
    pub fn len(&self, total: usize) -> usize {
        self.shown.as_ref().map_or(total, Vec::len)
    }

    /// The row index of the `i`-th row shown.
    pub fn index(&self, i: usize, total: usize) -> Option<usize> {
        match &self.shown {
            Some(ix) => ix.get(i).map(|&j| j as usize),
            None => (i < total).then_some(i),
        }
    }

    /// The row index under the cursor.
    pub fn selected(&self, total: usize) -> Option<usize> {
        self.index(self.cursor.selected, total)
    }

    /// Sets the filter (lower-cased, trimmed) and puts the cursor on the first row.
    pub fn set_filter<T>(
        &mut self,
        text: &str,
        rows: &[T],
        id: impl Fn(&T) -> K,
        matches: impl Fn(&T, &str) -> bool,
    ) {
        self.filter = text.trim().to_lowercase();
        self.synced_with = 0;
        self.cursor.selected = 0;
        self.selected = None;
        self.sync(rows, id, matches);
    }

    /// Brings the filter and the cursor up to date with a new slice of rows: one pass
    /// when the slice changed, none otherwise. The cursor stays on its row, but on the
    /// first row it stays first: the newest row, as rows arrive on top.
    pub fn sync<T>(
        &mut self,
        rows: &[T],
        id: impl Fn(&T) -> K,
        matches: impl Fn(&T, &str) -> bool,
    ) {
        let key = rows.as_ptr() as *const () as usize ^ rows.len();
        if key == self.synced_with {
            return;
        }
        self.synced_with = key;
        self.shown = (!self.filter.is_empty()).then(|| {
            rows.iter()
                .enumerate()
                .filter(|(_, r)| matches(r, &self.filter))
                .map(|(i, _)| i as u32)
                .collect()
        });
        let len = self.len(rows.len());
        let following = self.cursor.selected == 0;
        if let Some(want) = self.selected.filter(|_| !following) {
            let here = self.selected(rows.len()).map(|j| id(&rows[j]));
            if here != Some(want) {
                if let Some(i) = (0..len)
                    .find(|&i| self.index(i, rows.len()).map(|j| id(&rows[j])) == Some(want))
                {
                    self.cursor.selected = i;
                }
            }
        }
        self.cursor.clamp(len);
        self.selected = self.selected(rows.len()).map(|j| id(&rows[j]));
    }

    /// A movement; false for any other action.
    pub fn handle<T>(&mut self, action: Action, rows: &[T], id: impl Fn(&T) -> K) -> bool {
        if !self.cursor.handle(action, self.len(rows.len())) {
            return false;
        }
        self.selected = self.selected(rows.len()).map(|j| id(&rows[j]));
        true
    }
}

/// One row of a table: its cells (text and style) and the row's own style.
pub struct TableRow {
    pub cells: Vec<(String, Style)>,
    pub style: Style,
}

impl<K: Copy + PartialEq> ListState<K> {
    /// Draws the pane's `block` and returns its inside with the rows in view (by their
    /// place among the rows shown), or says `empty` (or that the filter matches nothing)
    /// and returns `None`.
    pub fn frame(
        &self,
        frame: &mut Frame,
        area: Rect,
        block: ratatui::widgets::Block,
        total: usize,
        empty: &str,
        theme: Theme,
    ) -> Option<(Rect, std::ops::Range<usize>)> {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let len = self.len(total);
        if len == 0 {
            let text = if self.is_filtered() {
                "nothing matches the filter (esc clears it)"
            } else {
                empty
            };
            frame.render_widget(
                ratatui::widgets::Paragraph::new(ratatui::text::Line::styled(
                    text.to_string(),
                    theme.dim(),
                )),
                inner,
            );
            return None;
        }
        let window = self
            .cursor
            .window(len, inner.height.saturating_sub(1) as usize);
        Some((inner, window))
    }

    /// The title's note: `25` or, filtered, `/spy 3 of 25` (`of` what `total` says).
    pub fn note(&self, shown_of: String) -> String {
        if self.is_filtered() {
            format!(
                "/{} {} of {shown_of}",
                fmt::ext(&self.filter),
                fmt::count(self.shown.as_ref().map_or(0, Vec::len))
            )
        } else {
            shown_of
        }
    }
}

/// A table to draw: its header, how its columns share the width, its rows, and which one
/// (an index into `rows`) is selected.
pub struct TableView<'a> {
    pub header: Vec<&'a str>,
    pub cols: Vec<Col>,
    pub rows: Vec<TableRow>,
    pub selected: Option<usize>,
}

impl TableView<'_> {
    /// Only the columns `keep` marks (a narrow pane leaves some out).
    pub fn keep(mut self, keep: &[bool]) -> Self {
        fn pick<T>(v: Vec<T>, keep: &[bool]) -> Vec<T> {
            v.into_iter()
                .zip(keep)
                .filter_map(|(x, k)| k.then_some(x))
                .collect()
        }
        self.header = pick(self.header, keep);
        self.cols = pick(self.cols, keep);
        for r in &mut self.rows {
            r.cells = pick(std::mem::take(&mut r.cells), keep);
        }
        self
    }
}

/// Draws the table in `area`, the columns sharing its width by their needs; cut cells end
/// in `…`. The selected row is highlighted when `focused`.
pub fn draw_table(frame: &mut Frame, area: Rect, theme: Theme, t: TableView, focused: bool) {
    let TableView {
        header,
        cols,
        rows,
        selected,
    } = t;
    let fit = super::share(&cols, area.width);
    let rows: Vec<Row> =
        rows.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let cells = r.cells.into_iter().zip(&fit).map(|((text, style), w)| {
                    Cell::from(Span::styled(cut(&text, *w as usize), style))
                });
                let mut style = r.style;
                if focused && selected == Some(i) {
                    style = style.patch(theme.selected());
                }
                Row::new(cells).style(style)
            })
            .collect();
    let widths: Vec<Constraint> = fit.iter().map(|w| Constraint::Length(*w)).collect();
    let header = Row::new(header.iter().map(|h| Cell::from(*h))).style(theme.header_row());
    frame.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        area,
    );
}

/// `text` cut to `max` with `…`, never inside a number: a conid or an id either shows
/// whole or not at all (`promoted 756733` → `promoted …`, not `promoted 75673…`).
pub fn cut(text: &str, max: usize) -> String {
    let cut = fmt::cut(text, max);
    let kept: Vec<char> = cut.chars().collect();
    let whole: Vec<char> = crate::text::clean(text).chars().collect();
    if kept.len() < 2 || kept.last() != Some(&'…') {
        return cut;
    }
    let at = kept.len() - 1;
    if !(whole[at - 1].is_ascii_digit() && whole[at].is_ascii_digit()) {
        return cut;
    }
    let start = (0..at)
        .rev()
        .take_while(|&i| whole[i].is_ascii_digit())
        .last()
        .unwrap_or(at);
    let mut out: String = whole[..start].iter().collect();
    out.push('…');
    out
}

/// Each column's need: the widest of its header and its cells.
pub fn needs(header: &[&str], rows: &[TableRow]) -> Vec<usize> {
    (0..header.len())
        .map(|c| super::need(header[c], rows.iter().map(|r| r.cells[c].0.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(row: &(u32, &str), f: &str) -> bool {
        row.1.contains(f)
    }

    #[test]
    fn a_cut_never_splits_a_number() {
        assert_eq!(cut("promoted 756733 SPY", 14), "promoted …");
        assert_eq!(cut("promoted 756733 SPY", 17), "promoted 756733 …");
        assert_eq!(cut("promoted 756733 SPY", 40), "promoted 756733 SPY");
        assert_eq!(cut("retried 2 requests", 10), "retried 2…");
        assert_eq!(cut("756733", 4), "…");
    }

    #[test]
    fn the_cursor_stays_on_its_row_as_rows_arrive_and_the_filter_narrows() {
        let mut l: ListState<u32> = ListState::default();
        let rows = vec![(3, "spy"), (2, "qqq"), (1, "spy")];
        l.sync(&rows, |r| r.0, contains);
        assert!(l.handle(Action::MoveDown, &rows, |r| r.0));
        assert_eq!(l.selected(rows.len()), Some(1));
        // A newer row arrives on top: the cursor follows row 2.
        let rows = vec![(4, "iwm"), (3, "spy"), (2, "qqq"), (1, "spy")];
        l.sync(&rows, |r| r.0, contains);
        assert_eq!(l.selected(rows.len()).map(|j| rows[j].0), Some(2));
        // On the first row it stays on the newest.
        l.handle(Action::Top, &rows, |r| r.0);
        let rows = vec![(5, "tsla"), (4, "iwm"), (3, "spy"), (2, "qqq"), (1, "spy")];
        l.sync(&rows, |r| r.0, contains);
        assert_eq!(l.selected(rows.len()).map(|j| rows[j].0), Some(5));
        l.set_filter(" SPY ", &rows, |r| r.0, contains);
        assert_eq!(l.filter(), "spy");
        assert_eq!(l.len(rows.len()), 2);
        assert_eq!(l.index(1, rows.len()), Some(4));
        assert_eq!(l.index(2, rows.len()), None);
        assert!(!l.handle(Action::Details, &rows, |r| r.0));
        l.set_filter("", &rows, |r| r.0, contains);
        assert!(!l.is_filtered());
        assert_eq!(l.len(rows.len()), 5);
    }
}
