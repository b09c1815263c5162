//! The render benchmark: the full screen drawn into a `TestBackend` with many queue rows
//! and a flood of log lines, timed per frame and per key press, and per frame again with the
//! pending pane sorted (each new snapshot sorted anew).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::app::{App, PaneId};
use super::keymap::KeyMap;
use super::logs::LogBuffer;
use super::panes::queue::sort::{Column, Sort};
use super::sample;
use super::theme::Theme;

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub rows: usize,
    pub frames: usize,
    pub width: u16,
    pub height: u16,
    /// Log lines pushed while drawing (the flood).
    pub log_lines: usize,
    /// Mean time to draw one full frame while the snapshot and logs change.
    pub per_frame: Duration,
    /// Mean time from a key press to the redrawn frame.
    pub per_key: Duration,
    pub slowest_frame: Duration,
    /// Mean time per frame, the same frames, with the pending pane sorted by AGE and by
    /// PARAMS (the slowest key: each row's parameters summarised): every tenth frame's new
    /// snapshot is sorted again.
    pub per_frame_sorted_age: Duration,
    pub per_frame_sorted_params: Duration,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "render {}x{} with {} queue rows, {} log lines: {} frames, {:.3} ms/frame (slowest {:.3} ms), {:.3} ms/key press",
            self.width,
            self.height,
            self.rows,
            self.log_lines,
            self.frames,
            self.per_frame.as_secs_f64() * 1e3,
            self.slowest_frame.as_secs_f64() * 1e3,
            self.per_key.as_secs_f64() * 1e3,
        )?;
        let ratio = |d: Duration| d.as_secs_f64() / self.per_frame.as_secs_f64().max(1e-9);
        write!(
            f,
            "; sorted by AGE {:.3} ms/frame ({:.2}× unsorted), by PARAMS {:.3} ms/frame ({:.2}×)",
            self.per_frame_sorted_age.as_secs_f64() * 1e3,
            ratio(self.per_frame_sorted_age),
            self.per_frame_sorted_params.as_secs_f64() * 1e3,
            ratio(self.per_frame_sorted_params),
        )
    }
}

/// Draws `frames` full frames at 200x60 with `rows` pending requests while 100 log lines
/// arrive per frame, then times `frames` key presses (each handled and redrawn).
pub fn bench_render(rows: usize, frames: usize) -> BenchReport {
    let (width, height) = (200, 60);
    let logs = LogBuffer::new(10_000);
    let snap = Arc::new(sample::snapshot(rows));
    let keymap = KeyMap::defaults().expect("the built-in key map parses");
    let mut app = App::new(
        keymap,
        Theme::new(true),
        chrono::Duration::seconds(30),
        snap.clone(),
        logs.clone(),
    );
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    let mut pushed = 0usize;
    let flood = |pushed: &mut usize| {
        for _ in 0..100 {
            *pushed += 1;
            logs.push(
                sample::t0(),
                tracing::Level::INFO,
                "ibq::worker",
                format!("claimed batch {pushed}"),
                vec![
                    ("request_id", format!("{pushed:08x}")),
                    ("symbol", "SPY".into()),
                ],
            );
        }
    };
    let frames = frames.max(1);
    let mut run = |app: &mut App, pushed: &mut usize| {
        let mut slowest = Duration::ZERO;
        let start = Instant::now();
        for i in 0..frames {
            flood(pushed);
            let t = Instant::now();
            if i % 10 == 0 {
                // A new picture from the engine: same rows, new Arc (as a publish would be).
                let mut s = (*snap).clone();
                s.pending = Arc::from(s.pending.to_vec());
                app.set_snapshot(Arc::new(s));
            }
            terminal.draw(|f| app.draw(f)).expect("draw");
            slowest = slowest.max(t.elapsed());
        }
        (start.elapsed() / frames as u32, slowest)
    };
    let (per_frame, slowest) = run(&mut app, &mut pushed);
    let by = |column| Sort {
        column: Some(column),
        reverse: false,
    };
    app.pending.set_sort(by(Column::Age), &app.snap.clone());
    let (per_frame_sorted_age, _) = run(&mut app, &mut pushed);
    app.pending.set_sort(by(Column::Params), &app.snap.clone());
    let (per_frame_sorted_params, _) = run(&mut app, &mut pushed);
    app.pending.set_sort(Sort::default(), &app.snap.clone());

    app.focus = PaneId::Pending;
    let keys = [
        KeyCode::Char('j'),
        KeyCode::PageDown,
        KeyCode::Char('G'),
        KeyCode::Char('k'),
        KeyCode::PageUp,
        KeyCode::Char('g'),
    ];
    let start = Instant::now();
    for i in 0..frames {
        let key = KeyEvent::new(keys[i % keys.len()], KeyModifiers::NONE);
        app.on_key(&key);
        terminal.draw(|f| app.draw(f)).expect("draw");
    }
    let per_key = start.elapsed() / frames as u32;
    BenchReport {
        rows,
        frames,
        width,
        height,
        log_lines: pushed,
        per_frame,
        per_key,
        slowest_frame: slowest,
        per_frame_sorted_age,
        per_frame_sorted_params,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_runs_and_reports() {
        let r = super::bench_render(2_000, 3);
        assert_eq!(r.frames, 3);
        assert_eq!(
            r.log_lines, 900,
            "three runs of frames: unsorted, by AGE, by PARAMS"
        );
        assert!(r.to_string().contains("2000 queue rows"), "{r}");
    }

    /// `cargo test --release --lib bench_100k -- --ignored --nocapture` prints the figures.
    #[test]
    #[ignore]
    fn bench_100k() {
        println!("{}", super::bench_render(100_000, 200));
    }
}
