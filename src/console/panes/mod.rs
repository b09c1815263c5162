//! The panes: each draws itself from `&self` and the snapshot, and handles the actions that
//! only concern itself (movement, marking); the `App` handles the ones that send commands.

pub mod actions;
pub mod done;
pub mod header;
pub mod legs;
pub mod list;
pub mod logs;
pub mod queue;
pub mod schedule;

use chrono::{DateTime, Utc};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};
use ratatui::Frame;

use super::keymap::Action;
use super::theme::Theme;
use crate::engine::Snapshot;

/// What every draw needs besides the UI state: the engine's picture, the clock, the theme.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub snap: &'a Snapshot,
    pub now: DateTime<Utc>,
    pub theme: Theme,
    /// A leg whose last tick is older than this is shown as stale.
    pub stale_after: chrono::Duration,
}

impl View<'_> {
    /// Now on the engine's clock (the market's and the scheduler's): the wall clock in
    /// production, faster in the demo. Market phases and job runs are times on this clock;
    /// request and tick times are wall times (`now`).
    pub fn clock_now(&self) -> DateTime<Utc> {
        self.snap.clock.at(self.snap.taken_at, self.now)
    }
}

/// Whether a component used an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Consumed,
    NotConsumed,
}

/// A pane or popup of the console.
pub trait Component {
    fn draw(&self, frame: &mut Frame, area: Rect, view: &View, focused: bool);
    fn handle(&mut self, action: Action, view: &View) -> Handled;
}

/// The bordered block of a pane: its number, title and a right-aligned note.
pub fn pane_block<'a>(
    theme: Theme,
    number: usize,
    title: &str,
    note: String,
    focused: bool,
) -> Block<'a> {
    let (border, marker) = if focused {
        (theme.focused_border(), "▶ ")
    } else {
        (theme.border(), "")
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Line::from(vec![
            Span::raw(format!(" {marker}")),
            Span::styled(format!("{number} {title}"), theme.title()),
            Span::raw(" "),
        ]));
    if note.is_empty() {
        block
    } else {
        block.title(Line::from(format!(" {note} ")).right_aligned())
    }
}

/// The width each column of a table gets in `width` columns, as ratatui's `Table` shares
/// it out (flex start, one column between cells), so a cell can be cut to its column with
/// an ellipsis before the table would cut it silently.
pub fn column_widths(widths: &[ratatui::layout::Constraint], width: u16) -> Vec<u16> {
    ratatui::layout::Layout::horizontal(widths.iter().copied())
        .flex(ratatui::layout::Flex::Start)
        .spacing(1)
        .split(Rect::new(0, 0, width, 1))
        .iter()
        .map(|r| r.width)
        .collect()
}

/// One column of a table laid out by [`share`]: the width its widest cell needs, and
/// whether (and down to what) it may be cut. Numbers and ids are never cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Col {
    pub need: u16,
    /// Text that may end in `…`; `false` for numbers, which are never cut.
    pub cut: bool,
    /// A cuttable column is cut below this only when nothing else fits.
    pub min: u16,
}

impl Col {
    /// A column that is never cut.
    pub fn whole(need: usize) -> Col {
        Col {
            need: need as u16,
            cut: false,
            min: need as u16,
        }
    }

    /// Text that may be cut, at first no narrower than `min`.
    pub fn text(need: usize, min: u16) -> Col {
        let need = need as u16;
        Col {
            need,
            cut: true,
            min: min.min(need),
        }
    }
}

/// Shares `width` between columns (one column between cells) by what they need: every
/// column gets its need when they fit; otherwise the widest cuttable column gives way first,
/// down to its `min`, then below it, while columns that are never cut keep their width.
pub fn share(cols: &[Col], width: u16) -> Vec<u16> {
    let mut w: Vec<u16> = cols.iter().map(|c| c.need).collect();
    let spacing = cols.len().saturating_sub(1) as u32;
    let total = |w: &[u16]| w.iter().map(|x| *x as u32).sum::<u32>() + spacing;
    for floor in [true, false] {
        while total(&w) > width as u32 {
            let widest = (0..cols.len())
                .filter(|&i| cols[i].cut && w[i] > if floor { cols[i].min } else { 1 })
                .max_by_key(|&i| (w[i], i));
            match widest {
                Some(i) => w[i] -= 1,
                None => break,
            }
        }
    }
    w
}

/// Widest of the header and each cell, in characters.
pub fn need<'a>(header: &str, cells: impl Iterator<Item = &'a str>) -> usize {
    cells
        .map(|c| c.chars().count())
        .chain(std::iter::once(header.chars().count()))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod share_tests {
    use super::*;

    #[test]
    fn columns_that_fit_get_their_need() {
        let cols = [Col::whole(10), Col::text(18, 8), Col::text(9, 9)];
        assert_eq!(share(&cols, 80), vec![10, 18, 9]);
    }

    #[test]
    fn the_widest_text_gives_way_and_numbers_never_do() {
        let cols = [Col::whole(10), Col::text(18, 8), Col::text(41, 9)];
        // 10 + 18 + 41 + 2 = 71 in 50: the state column shrinks first.
        assert_eq!(share(&cols, 50), vec![10, 18, 20]);
        // Past every minimum, text still gives way; the number never.
        assert_eq!(share(&cols, 20), vec![10, 4, 4]);
        assert_eq!(share(&cols, 5), vec![10, 1, 1]);
    }
}
