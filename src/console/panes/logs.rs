//! The logs pane: the newest tracing events, a level filter, and follow mode. Scrolling up
//! pins the view to a line (by sequence number, so new lines do not move it); reaching the
//! newest line again resumes following.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use tracing::Level;

use super::{pane_block, Component, Handled, View};
use crate::console::fmt;
use crate::console::keymap::Action;
use crate::console::logs::{LogBuffer, LogLine};

const LEVELS: [Level; 5] = [
    Level::TRACE,
    Level::DEBUG,
    Level::INFO,
    Level::WARN,
    Level::ERROR,
];

pub struct LogsPane {
    pub buffer: LogBuffer,
    /// The least severe level shown.
    pub min_level: Level,
    /// `None` follows the newest line; `Some(seq)` pins the view with `seq` at the bottom.
    pub anchor: Option<u64>,
    /// Lower-cased substring matched against message, target and fields.
    pub filter: String,
    page: std::cell::Cell<usize>,
}

impl LogsPane {
    pub fn new(buffer: LogBuffer) -> Self {
        Self {
            buffer,
            min_level: Level::TRACE,
            anchor: None,
            filter: String::new(),
            page: std::cell::Cell::new(10),
        }
    }

    pub fn following(&self) -> bool {
        self.anchor.is_none()
    }

    fn shows(&self, l: &LogLine) -> bool {
        l.level <= self.min_level
            && (self.filter.is_empty()
                || l.message.to_ascii_lowercase().contains(&self.filter)
                || l.target.to_ascii_lowercase().contains(&self.filter)
                || l.fields_text().to_ascii_lowercase().contains(&self.filter))
    }

    /// The line at the bottom of the view (the anchor, or the newest shown line).
    pub fn current(&self) -> Option<LogLine> {
        let lines = self.buffer.lock();
        lines
            .iter()
            .rev()
            .filter(|l| self.anchor.is_none_or(|a| l.seq <= a))
            .find(|l| self.shows(l))
            .cloned()
    }

    pub fn cycle_level(&mut self) {
        let i = LEVELS
            .iter()
            .position(|l| *l == self.min_level)
            .unwrap_or(0);
        self.min_level = LEVELS[(i + 1) % LEVELS.len()];
    }

    pub fn toggle_follow(&mut self) {
        self.anchor = match self.anchor {
            Some(_) => None,
            None => self.current().map(|l| l.seq),
        };
    }

    /// Moves the anchor `n` shown lines up (towards older) or down; down past the newest
    /// line resumes following.
    fn scroll(&mut self, up: bool, n: usize) {
        let lines = self.buffer.lock();
        let shown: Vec<u64> = lines
            .iter()
            .filter(|l| self.shows(l))
            .map(|l| l.seq)
            .collect();
        drop(lines);
        if shown.is_empty() {
            return;
        }
        let last = shown.len() - 1;
        let at = match self.anchor {
            None => last,
            Some(a) => shown.partition_point(|s| *s <= a).saturating_sub(1),
        };
        if up {
            self.anchor = Some(shown[at.saturating_sub(n)]);
        } else if at + n >= last {
            self.anchor = None;
        } else {
            self.anchor = Some(shown[at + n]);
        }
    }

    fn line<'a>(&self, l: &LogLine, view: &View, wide: bool) -> Line<'a> {
        let theme = view.theme;
        let mut spans = vec![
            Span::styled(format!("{} ", fmt::hms(l.at)), theme.dim()),
            Span::styled(format!("{:<5} ", l.level), theme.level(l.level)),
        ];
        if wide {
            spans.push(Span::styled(format!("{} ", l.target), theme.dim()));
        }
        spans.push(Span::raw(l.message.clone()));
        let fields = l.fields_text();
        if !fields.is_empty() {
            spans.push(Span::raw("  "));
            spans.push(Span::styled(fields, theme.fg(ratatui::style::Color::Cyan)));
        }
        Line::from(spans)
    }
}

impl Component for LogsPane {
    fn draw(&self, frame: &mut Frame, area: Rect, view: &View, focused: bool) {
        let theme = view.theme;
        let mut note = format!("≥{}", self.min_level.as_str().to_ascii_lowercase());
        if !self.filter.is_empty() {
            note.push_str(&format!(" /{}", crate::text::Clean(&self.filter)));
        }
        note.push_str(if self.following() {
            " · following"
        } else {
            " · paused (end resumes)"
        });
        // Line times are New York time, as everywhere in the console.
        let block = pane_block(theme, 5, "Logs (ET)", note, focused);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let height = inner.height as usize;
        self.page.set(height.max(1));
        let wide = inner.width >= 110;
        let lines = self.buffer.lock();
        let mut shown: Vec<Line> = Vec::with_capacity(height);
        let mut bottom = true;
        for l in lines
            .iter()
            .rev()
            .filter(|l| self.anchor.is_none_or(|a| l.seq <= a))
            .filter(|l| self.shows(l))
        {
            if shown.len() == height {
                break;
            }
            let mut line = cut_line(self.line(l, view, wide), inner.width as usize);
            if bottom && !self.following() && focused {
                line = line.style(theme.selected());
            }
            bottom = false;
            shown.push(line);
        }
        drop(lines);
        if shown.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled("no log lines at this level", theme.dim())),
                inner,
            );
            return;
        }
        shown.reverse();
        frame.render_widget(Paragraph::new(shown), inner);
    }

    fn handle(&mut self, action: Action, _view: &View) -> Handled {
        let page = self.page.get();
        match action {
            Action::MoveUp => self.scroll(true, 1),
            Action::MoveDown => self.scroll(false, 1),
            Action::PageUp => self.scroll(true, page),
            Action::PageDown => self.scroll(false, page),
            Action::Top => self.scroll(true, usize::MAX / 2),
            Action::Bottom => self.anchor = None,
            Action::CycleLogLevel => self.cycle_level(),
            Action::ToggleFollow => self.toggle_follow(),
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }
}

/// `line` cut to `width` columns, ending in `…` when anything was left off.
pub fn cut_line(line: Line<'_>, width: usize) -> Line<'_> {
    if line.width() <= width {
        return line;
    }
    let room = width.saturating_sub(1);
    let mut used = 0;
    let mut spans = Vec::with_capacity(line.spans.len());
    for span in line.spans {
        let w = span.width();
        if used + w <= room {
            used += w;
            spans.push(span);
            continue;
        }
        let mut text = String::new();
        for c in span.content.chars() {
            let cw = Span::raw(c.to_string()).width();
            if used + cw > room {
                break;
            }
            used += cw;
            text.push(c);
        }
        text.push('…');
        spans.push(Span::styled(text, span.style));
        break;
    }
    Line::from(spans).style(line.style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_ends_in_an_ellipsis_at_the_width() {
        let line = Line::from(vec![
            Span::raw("12:00:00 "),
            Span::raw("option_chain SPY ok"),
        ]);
        let cut = cut_line(line.clone(), 20);
        assert_eq!(cut.width(), 20);
        let text: String = cut.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, "12:00:00 option_cha…");
        assert_eq!(cut_line(line.clone(), 28), line);
    }
}
