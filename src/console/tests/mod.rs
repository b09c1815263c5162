//! Render snapshots, style checks and the app logic, all on pure `Snapshot` data.

mod bulk;
mod checks;
mod cmdline;
mod hostile;
mod logic;
mod render;
mod render_bulk;
mod views;

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

use super::app::App;
use super::keymap::KeyMap;
use super::logs::LogBuffer;
use super::sample;
use super::theme::Theme;
use crate::engine::Snapshot;

pub fn app_with(snap: Snapshot, color: bool) -> App {
    let logs = LogBuffer::new(1000);
    let mut app = App::new(
        KeyMap::defaults().unwrap(),
        Theme::new(color),
        chrono::Duration::seconds(30),
        Arc::new(snap),
        logs,
    );
    app.now = sample::t0();
    app
}

pub fn app(pending: usize) -> App {
    app_with(sample::snapshot(pending), true)
}

pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

pub fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

pub fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        app.on_key(&ch(c));
    }
}

pub fn buffer(app: &App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.draw(f)).unwrap();
    t.backend().buffer().clone()
}

/// The screen as text, one line per row, trailing blanks trimmed.
pub fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn screen(app: &App, w: u16, h: u16) -> String {
    text(&buffer(app, w, h))
}

/// Log lines with fixed times, for pictures that do not change between runs.
pub fn fill_logs(app: &App, n: usize) {
    let levels = [
        tracing::Level::INFO,
        tracing::Level::DEBUG,
        tracing::Level::WARN,
        tracing::Level::ERROR,
    ];
    for i in 0..n {
        let level = levels[i % levels.len()];
        let fields = match i % 3 {
            0 => vec![
                ("request_id", format!("1b9d0000-{i:04}")),
                ("request_type", "option_chain".to_string()),
                ("symbol", "SPY".to_string()),
            ],
            1 => vec![("code", "2104".to_string())],
            _ => vec![],
        };
        app.logs.buffer.push(
            sample::t0() - chrono::Duration::seconds((n - i) as i64),
            level,
            "ibq::worker",
            format!("event number {i}"),
            fields,
        );
    }
}
