//! The `:` command line: the CLI's grammar typed in the console (`parse`), tab completion
//! (`complete`), a history walked with up and down and kept across sessions (`history`).
//! This module holds the line being edited and draws it in the status row, with the
//! completion menu above it.

pub mod complete;
pub mod history;
pub mod parse;
pub mod words;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use self::complete::{common_prefix, Candidate, Catalog};
use self::history::History;
use super::theme::Theme;

/// The candidates shown under a Tab, and the one put in the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    /// Byte offset in the line where the completed word starts.
    pub start: usize,
    pub candidates: Vec<Candidate>,
    /// The candidate in the line while Tab cycles through them.
    pub selected: Option<usize>,
}

/// The line being typed after `:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CmdLine {
    pub input: String,
    pub menu: Option<Menu>,
}

impl CmdLine {
    /// Applies an editing key (a character, backspace, ctrl-u clears, ctrl-w drops a
    /// word); false for any other key. An edit closes the menu.
    pub fn edit(&mut self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => self.input.clear(),
            KeyCode::Char('w') if ctrl => {
                let kept = self.input.trim_end().len();
                let cut = self.input[..kept]
                    .rfind(char::is_whitespace)
                    .map(|i| i + 1)
                    .unwrap_or(0);
                self.input.truncate(cut);
            }
            KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                    && !c.is_control() =>
            {
                self.input.push(c)
            }
            KeyCode::Backspace => {
                self.input.pop();
            }
            _ => return false,
        }
        self.menu = None;
        true
    }

    /// Tab (`forward`) or shift-tab: one candidate completes the word; several complete
    /// what they share and show the menu; pressed again, it puts each in turn in the line.
    pub fn complete(&mut self, catalog: &Catalog, forward: bool) {
        if let Some(menu) = &mut self.menu {
            let n = menu.candidates.len();
            if n > 1 {
                let next = match (menu.selected, forward) {
                    (None, true) => 0,
                    (None, false) => n - 1,
                    (Some(i), true) => (i + 1) % n,
                    (Some(i), false) => (i + n - 1) % n,
                };
                menu.selected = Some(next);
                self.input.truncate(menu.start);
                self.input.push_str(&menu.candidates[next].text);
                return;
            }
        }
        let found = complete::complete(&self.input, catalog);
        let typed = &self.input[found.start..];
        match found.candidates.as_slice() {
            [] => {
                self.menu = Some(Menu {
                    start: found.start,
                    candidates: Vec::new(),
                    selected: None,
                })
            }
            [one] => {
                let mut text = one.text.clone();
                if !text.ends_with('=') {
                    text.push(' ');
                }
                self.input.truncate(found.start);
                self.input.push_str(&text);
                self.menu = None;
            }
            many => {
                let common = common_prefix(many);
                if common.len() > typed.len() {
                    self.input.truncate(found.start);
                    self.input.push_str(&common);
                }
                self.menu = Some(Menu {
                    start: found.start,
                    candidates: found.candidates,
                    selected: None,
                });
            }
        }
    }

    /// Up and down: through the open menu's candidates, else through the history.
    pub fn walk(&mut self, history: &mut History, catalog: &Catalog, back: bool) {
        if self.menu.as_ref().is_some_and(|m| m.candidates.len() > 1) {
            return self.complete(catalog, !back);
        }
        self.menu = None;
        let line = if back {
            history.older(&self.input)
        } else {
            history.newer()
        };
        if let Some(line) = line {
            self.input = line;
        }
    }

    /// The line in the status row: `:retry --all-failed█`, its start left off (`…`)
    /// when it is wider than the row.
    pub fn draw_line(&self, frame: &mut Frame, area: Rect, theme: Theme, hint: &str) {
        let text = crate::text::clean(&self.input);
        let chars: Vec<char> = text.chars().collect();
        // The keys' hint gives way to a long line.
        let mut hint_width = hint.chars().count() as u16 + 1;
        if chars.len() + 2 + hint_width as usize > area.width as usize {
            hint_width = 0;
        }
        let room = area.width.saturating_sub(hint_width).max(4) as usize;
        // `:` and the cursor take two columns.
        let shown: String = if chars.len() + 2 > room {
            let keep = room.saturating_sub(3);
            std::iter::once('…')
                .chain(chars[chars.len() - keep..].iter().copied())
                .collect()
        } else {
            chars.iter().collect()
        };
        let line = Line::from(vec![
            Span::styled(":", theme.key()),
            Span::raw(shown),
            Span::styled("█", theme.key()),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        if hint_width > 0 && area.width > hint_width + 8 {
            let right = Rect {
                x: area.x + area.width - hint_width + 1,
                width: hint_width - 1,
                ..area
            };
            frame.render_widget(
                Paragraph::new(Line::styled(hint.to_string(), theme.dim())),
                right,
            );
        }
    }

    /// The menu of candidates in `area`'s lower left, just above the line, starting under
    /// the word being completed where there is room.
    pub fn draw_menu(&self, frame: &mut Frame, area: Rect, theme: Theme) {
        let Some(menu) = &self.menu else {
            return;
        };
        const ROWS: usize = 8;
        let n = menu.candidates.len();
        let texts: Vec<(String, String)> = menu
            .candidates
            .iter()
            .map(|c| {
                (
                    crate::text::clean(&c.text).into_owned(),
                    crate::text::clean(&c.note).into_owned(),
                )
            })
            .collect();
        let text_w = texts
            .iter()
            .map(|(t, _)| t.chars().count())
            .max()
            .unwrap_or(0);
        let note_w = texts
            .iter()
            .map(|(_, n)| n.chars().count())
            .max()
            .unwrap_or(0);
        let empty = "nothing to complete here";
        // Notes beyond 48 columns end in `…`: the menu stays under the line's words.
        let want = if n == 0 {
            empty.len() + 2
        } else {
            text_w + 2 + note_w.min(48) + 2
        };
        let title = match (menu.selected, n) {
            (_, 0) => " no match ".to_string(),
            (Some(i), n) => format!(" {} of {n} ", i + 1),
            (None, 1) => " 1 match ".to_string(),
            (None, n) => format!(" {n} matches · tab cycles "),
        };
        let want = want.max(title.chars().count() + 2);
        let width = (want as u16).clamp(24, area.width);
        let height = ((n.clamp(1, ROWS)) as u16 + 2).min(area.height);
        let column = 1 + self.input[..menu.start.min(self.input.len())]
            .chars()
            .count() as u16;
        let x = area.x + column.min(area.width.saturating_sub(width));
        let rect = Rect {
            x,
            y: area.y + area.height - height,
            width,
            height,
        };
        frame.render_widget(Clear, rect);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.focused_border())
            .title(Line::styled(title, theme.title()));
        let inner = block.inner(rect);
        frame.render_widget(block, rect);
        if n == 0 {
            frame.render_widget(Paragraph::new(Line::styled(empty, theme.dim())), inner);
            return;
        }
        let rows = inner.height as usize;
        let sel = menu.selected.unwrap_or(0);
        let first = sel
            .saturating_sub(rows.saturating_sub(1))
            .min(n.saturating_sub(rows));
        let room = inner.width as usize;
        let lines: Vec<Line> = texts
            .iter()
            .enumerate()
            .skip(first)
            .take(rows)
            .map(|(i, (t, note))| {
                let t = super::fmt::cut(t, room);
                let left = room.saturating_sub(t.chars().count() + 2);
                let mut spans = vec![Span::styled(format!("{t:<text_w$}"), theme.key())];
                if left > 0 && !note.is_empty() {
                    spans.push(Span::raw("  "));
                    spans.push(Span::styled(super::fmt::cut(note, left), theme.dim()));
                }
                let line = Line::from(spans);
                if menu.selected == Some(i) {
                    line.style(theme.selected())
                } else {
                    line
                }
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed(text: &str) -> CmdLine {
        CmdLine {
            input: text.into(),
            menu: None,
        }
    }

    #[test]
    fn tab_completes_one_candidate_and_cycles_through_several() {
        let snap = sample::snapshot(5);
        let symbols = vec!["SPX".to_string()];
        let c = Catalog {
            snap: &snap,
            symbols: &symbols,
        };
        let mut l = typed("enq");
        l.complete(&c, true);
        assert_eq!(l.input, "enqueue ");
        assert!(l.menu.is_none());
        l.input.push_str("option_chain s");
        l.complete(&c, true);
        // SPX and SPY share `SP`: the word grows to it and the menu opens.
        assert_eq!(l.input, "enqueue option_chain SP");
        assert_eq!(l.menu.as_ref().unwrap().candidates.len(), 2);
        l.complete(&c, true);
        assert_eq!(l.input, "enqueue option_chain SPX");
        l.complete(&c, true);
        assert_eq!(l.input, "enqueue option_chain SPY");
        l.complete(&c, false);
        assert_eq!(l.input, "enqueue option_chain SPX");
        // Typing closes the menu.
        assert!(l.edit(&key(KeyCode::Char(' '))));
        assert!(l.menu.is_none());
        l.input.push_str("--param target");
        l.complete(&c, true);
        assert_eq!(
            l.input, "enqueue option_chain SPX --param target_dte=",
            "no space after NAME="
        );
        let mut l = typed("list ");
        l.complete(&c, true);
        assert_eq!(l.menu.as_ref().unwrap().candidates.len(), 0);
    }

    #[test]
    fn up_and_down_walk_the_history_or_the_open_menu() {
        let snap = sample::snapshot(5);
        let c = Catalog {
            snap: &snap,
            symbols: &[],
        };
        let mut h = History::in_memory(vec!["pause".into(), "retry --all-failed".into()]);
        let mut l = typed("");
        l.walk(&mut h, &c, true);
        assert_eq!(l.input, "retry --all-failed");
        l.walk(&mut h, &c, true);
        assert_eq!(l.input, "pause");
        l.walk(&mut h, &c, false);
        l.walk(&mut h, &c, false);
        assert_eq!(l.input, "");
        let mut l = typed("re");
        l.complete(&c, true);
        assert_eq!(l.menu.as_ref().unwrap().candidates.len(), 3);
        l.walk(&mut h, &c, false);
        assert_eq!(l.input, "retry", "down picks the first candidate");
        l.walk(&mut h, &c, false);
        assert_eq!(l.input, "reprioritize");
        l.walk(&mut h, &c, true);
        assert_eq!(l.input, "retry");
    }

    #[test]
    fn editing_keys() {
        let mut l = typed("retry --all-failed");
        assert!(l.edit(&KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL)));
        assert_eq!(l.input, "retry ");
        assert!(l.edit(&key(KeyCode::Backspace)));
        assert_eq!(l.input, "retry");
        assert!(l.edit(&KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
        assert_eq!(l.input, "");
        assert!(!l.edit(&key(KeyCode::F(2))));
        assert!(!l.edit(&KeyEvent::new(KeyCode::Char('x'), KeyModifiers::ALT)));
    }
}
