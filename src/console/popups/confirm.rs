//! The one confirm dialog: every destructive action waits here for a yes.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{centered, frame_popup};
use crate::console::theme::Theme;

/// What a yes does, decided when the dialog opened.
#[derive(Debug, Clone)]
pub struct Confirm<T> {
    pub title: String,
    pub message: String,
    pub then: T,
}

impl<T> Confirm<T> {
    pub fn new(title: impl Into<String>, message: impl Into<String>, then: T) -> Self {
        Self {
            title: title.into(),
            message: message.into(),
            then,
        }
    }

    /// `yes_keys`/`no_keys`: the live bindings, so the dialog never lies about its keys.
    pub fn draw(&self, frame: &mut Frame, area: Rect, theme: Theme, yes_keys: &str, no_keys: &str) {
        // The message may name a row (its symbol): cleaned before it is measured.
        let message = crate::text::clean(&self.message);
        let width = (message.chars().count() as u16 + 4).clamp(36, 70);
        let lines = (message.chars().count() as u16).div_ceil(width.saturating_sub(2).max(1));
        let popup = centered(area, width, lines + 4);
        let inner = frame_popup(
            frame,
            popup,
            theme,
            &self.title,
            "nothing happens without yes",
        );
        let text = vec![
            Line::from(message.into_owned()),
            Line::from(""),
            Line::from(vec![
                Span::styled(format!(" {yes_keys} "), theme.key()),
                Span::styled("yes", theme.error()),
                Span::raw("    "),
                Span::styled(format!(" {no_keys} "), theme.key()),
                Span::raw("no (default)"),
            ]),
        ];
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
    }
}
