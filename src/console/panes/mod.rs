//! The panes: each draws itself from `&self` and the snapshot, and handles the actions that
//! only concern itself (movement, marking); the `App` handles the ones that send commands.

pub mod header;
pub mod legs;
pub mod logs;
pub mod queue;

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
    Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Line::from(vec![
            Span::raw(format!(" {marker}")),
            Span::styled(format!("{number} {title}"), theme.title()),
            Span::raw(" "),
        ]))
        .title(Line::from(format!(" {note} ")).right_aligned())
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
