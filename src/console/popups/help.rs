//! The help: every binding of the live key map, by context.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{centered, frame_popup, position};
use crate::console::keymap::{Key, KeyMap};
use crate::console::theme::Theme;

#[derive(Debug, Default, Clone)]
pub struct Help {
    pub scroll: usize,
    page: std::cell::Cell<usize>,
}

impl Help {
    pub fn lines<'a>(keymap: &KeyMap, theme: Theme) -> Vec<Line<'a>> {
        let mut out = Vec::new();
        let mut last = None;
        for (context, action, keys) in keymap.bindings() {
            if last != Some(context) {
                if last.is_some() {
                    out.push(Line::from(""));
                }
                out.push(Line::styled(format!("[{context}]"), theme.header_row()));
                last = Some(context);
            }
            let keys = if keys.is_empty() {
                "(unbound)".to_string()
            } else {
                keys.iter()
                    .map(Key::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            out.push(Line::from(vec![
                Span::styled(format!("  {keys:<16}"), theme.key()),
                Span::raw(format!("{:<20}", action.name())),
                Span::styled(action.description().to_string(), theme.dim()),
            ]));
        }
        if let Some(p) = keymap.user_file() {
            out.push(Line::from(""));
            out.push(Line::styled(
                format!("user key map: {}", p.display()),
                theme.dim(),
            ));
        }
        out
    }

    pub fn page(&self) -> usize {
        self.page.get()
    }

    pub fn draw(&self, frame: &mut Frame, area: Rect, keymap: &KeyMap, theme: Theme, hint: &str) {
        let popup = centered(area, 96, area.height.saturating_sub(2));
        let lines = Self::lines(keymap, theme);
        // The border takes two rows: the page is what is left.
        let page = popup.height.saturating_sub(2) as usize;
        let title = format!("Keys · {}", position(self.scroll, page, lines.len()));
        let inner = frame_popup(frame, popup, theme, &title, hint);
        self.page.set(inner.height as usize);
        let max = lines.len().saturating_sub(inner.height as usize);
        frame.render_widget(
            Paragraph::new(lines).scroll((self.scroll.min(max) as u16, 0)),
            inner,
        );
    }

    pub fn scroll_by(&mut self, delta: isize, total: usize) {
        let max = total.saturating_sub(self.page.get());
        self.scroll = (self.scroll.min(max) as isize + delta).clamp(0, max as isize) as usize;
    }
}
