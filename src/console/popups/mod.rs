//! Popups drawn over the panes: the one confirm dialog every destructive action goes
//! through, the detail view, the help, the one-line prompt and the new-request form.

pub mod confirm;
pub mod detail;
pub mod form;
pub mod help;
pub mod prompt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear};
use ratatui::Frame;

use super::theme::Theme;

/// A centred box of at most `w`×`h`, inside `area`. A margin too thin to read would show
/// slivers of the pane behind (a stray letter between two borders, a second bottom border):
/// the box then takes the whole width (under 8 columns to spare) or height (under 4 rows).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let mut w = w.min(area.width);
    let mut h = h.min(area.height);
    if area.width - w < 8 {
        w = area.width;
    }
    if area.height - h < 4 {
        h = area.height;
    }
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Clears `area` and draws a titled border; returns the inside. The title may name a
/// row (its symbol): it is cleaned of control characters.
pub fn frame_popup(frame: &mut Frame, area: Rect, theme: Theme, title: &str, hint: &str) -> Rect {
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focused_border())
        .title(Line::styled(
            format!(
                " {} ",
                crate::text::cut(title, area.width.saturating_sub(4) as usize)
            ),
            theme.title(),
        ))
        .title_bottom(Line::styled(format!(" {hint} "), theme.dim()).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}

/// Which lines of `total` a view scrolled to `scroll` shows in `page` rows: `12–30 of 64`.
pub fn position(scroll: usize, page: usize, total: usize) -> String {
    if total == 0 {
        return "0 of 0".into();
    }
    let first = scroll.min(total.saturating_sub(page)) + 1;
    let last = (first - 1 + page).min(total);
    format!("{first}–{last} of {total}")
}

/// A one-line text field: typing inserts, backspace deletes, ctrl-u clears.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextInput {
    pub value: String,
}

impl TextInput {
    pub fn new(value: &str) -> Self {
        Self {
            value: value.to_string(),
        }
    }

    /// Applies an editing key; false when the key is not an edit.
    pub fn edit(&mut self, key: &KeyEvent) -> bool {
        match key.code {
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.value.clear()
            }
            KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                self.value.push(c)
            }
            KeyCode::Backspace => {
                self.value.pop();
            }
            _ => return false,
        }
        true
    }
}
