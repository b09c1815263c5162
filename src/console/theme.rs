//! Colours and emphasis. With `NO_COLOR` every colour is dropped and only modifiers
//! (bold, reversed, underlined) remain, so the screen stays readable in monochrome.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub fn new(color: bool) -> Self {
        Self { color }
    }

    /// `NO_COLOR` set to anything non-empty turns colours off (https://no-color.org).
    pub fn from_env() -> Self {
        Self::new(std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
    }

    pub fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    pub fn ok(&self) -> Style {
        self.fg(Color::Green)
    }
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow)
    }
    /// Errors are bold too, so they stand out without colour.
    pub fn error(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    /// A failed row: red, no bold (the whole pane would shout).
    pub fn failed_row(&self) -> Style {
        self.fg(Color::Red)
    }
    pub fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
    pub fn title(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    pub fn header_row(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    pub fn marked(&self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }
    pub fn focused_border(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn border(&self) -> Style {
        self.dim()
    }
    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Colour of a gauge or level by how full it is: green below 70%, yellow below 90%,
    /// red beyond.
    pub fn fill(&self, ratio: f64) -> Style {
        if ratio < 0.7 {
            self.ok()
        } else if ratio < 0.9 {
            self.warn()
        } else {
            self.error()
        }
    }

    pub fn level(&self, level: tracing::Level) -> Style {
        match level {
            tracing::Level::ERROR => self.error(),
            tracing::Level::WARN => self.warn(),
            tracing::Level::INFO => self.ok(),
            tracing::Level::DEBUG => self.fg(Color::Blue),
            tracing::Level::TRACE => self.dim(),
        }
    }
}
