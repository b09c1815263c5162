//! A one-line prompt: the filter of a pane, or the contract to promote.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{centered, frame_popup, TextInput};
use crate::console::theme::Theme;

#[derive(Debug, Clone)]
pub struct Prompt<K> {
    pub kind: K,
    pub title: String,
    pub help: String,
    pub input: TextInput,
    pub error: Option<String>,
}

impl<K> Prompt<K> {
    pub fn new(kind: K, title: &str, help: &str, value: &str) -> Self {
        Self {
            kind,
            title: title.into(),
            help: help.into(),
            input: TextInput::new(value),
            error: None,
        }
    }

    pub fn draw(&self, frame: &mut Frame, area: Rect, theme: Theme, hint: &str) {
        let popup = centered(area, 64, 6);
        let inner = frame_popup(frame, popup, theme, &self.title, hint);
        let mut lines = vec![
            Line::styled(self.help.clone(), theme.dim()),
            Line::from(vec![
                Span::styled("> ", theme.key()),
                Span::raw(crate::text::clean(&self.input.value).into_owned()),
                Span::styled("█", theme.key()),
            ]),
        ];
        if let Some(e) = &self.error {
            lines.push(Line::styled(
                crate::text::clean(e).into_owned(),
                theme.error(),
            ));
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }
}
