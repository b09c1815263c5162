//! Pictures of acting on many rows, at 80x24, 120x40 and 200x60: the scoped bulk
//! confirmation and its reason prompt, a range being marked, a sorted and filtered pane
//! with its title, the release confirmation; and the processing pane's timeout colours.

use crossterm::event::KeyCode;
use ratatui::style::Color;

use super::render::snap_all;
use super::*;
use crate::console::app::PaneId;

#[test]
fn scoped_bulk_confirm() {
    let mut app = app(10);
    app.focus = PaneId::Failed;
    let snap = app.snap.clone();
    app.failed.set_filter("code:354", &snap);
    press(&mut app, "R");
    snap_all("bulk_confirm", &mut app);
    for (w, h) in [(80, 24), (200, 60)] {
        let text = screen(&app, w, h).replace('\n', " ");
        // The dialog wraps its message; the words are all there.
        for word in [
            "Retry",
            "2",
            "failed",
            "requests",
            "shown",
            "by",
            "filter",
            "\"code:354\"?",
        ] {
            assert!(text.contains(word), "{w}x{h}: {word}\n{text}");
        }
    }
}

#[test]
fn dismiss_reason_then_scoped_confirm() {
    let mut app = app(10);
    app.focus = PaneId::Failed;
    let snap = app.snap.clone();
    app.failed.set_filter("code:354", &snap);
    press(&mut app, "D");
    snap_all("dismiss_reason", &mut app);
    app.on_key(&key(KeyCode::Enter));
    snap_all("dismiss_confirm", &mut app);
}

#[test]
fn range_selection() {
    let mut app = app(40);
    press(&mut app, "jjvjjj");
    assert!(app.pending.is_marking_range());
    snap_all("range_selection", &mut app);
    assert!(screen(&app, 80, 24).contains("range · 4 marked"));
}

#[test]
fn sorted_titled_pane() {
    let mut app = app(100);
    let snap = app.snap.clone();
    app.pending.set_filter("!symbol:es", &snap);
    // AGE (the fifth column), oldest first, scrolled down a page.
    press(&mut app, "sssssS");
    // A page is what the last picture held.
    let _ = screen(&app, 80, 24);
    app.on_key(&key(KeyCode::PageDown));
    app.on_key(&key(KeyCode::PageDown));
    snap_all("sorted_titled", &mut app);
    let text = screen(&app, 80, 24);
    let title = text.lines().find(|l| l.contains("1 Pending")).unwrap();
    assert!(title.contains("Pending · !symbol:es · AGE ▼ · "), "{title}");
    assert!(!title.contains("· 1–"), "scrolled down: {title}");
    let shown = app.snap.pending.iter().filter(|r| r.symbol != "ES").count();
    assert!(title.contains(&format!(" of {shown}")), "{title}");
}

#[test]
fn release_confirm() {
    let mut app = app(5);
    press(&mut app, "2ju");
    snap_all("release_confirm", &mut app);
}

/// The style of `needle` on the line holding `symbol`, right of it.
fn style_after(buf: &ratatui::buffer::Buffer, symbol: &str, needle: &str) -> Color {
    let t = text(buf);
    for (y, line) in t.lines().enumerate() {
        let Some(at) = line.find(symbol) else {
            continue;
        };
        if let Some(byte) = line[at..].find(needle) {
            // The first character that is not the space before it.
            let lead = needle.len() - needle.trim_start().len();
            let x = line[..at + byte + lead].chars().count() as u16;
            return buf[(x, y as u16)].fg;
        }
    }
    panic!("`{needle}` after `{symbol}` not on screen:\n{t}");
}

#[test]
fn a_run_past_half_its_timeout_is_yellow_and_past_it_red() {
    // The sample's runs: 20 s, 75 s and 150 s against a 120 s timeout.
    let mut app = app(5);
    press(&mut app, "2G");
    let buf = buffer(&app, 80, 24);
    let symbols: Vec<String> = app
        .snap
        .processing
        .iter()
        .map(|r| r.symbol.clone())
        .collect();
    assert_eq!(style_after(&buf, &symbols[0], " 20s "), Color::Reset);
    assert_eq!(style_after(&buf, &symbols[1], " 1m "), Color::Yellow);
    assert_eq!(style_after(&buf, &symbols[2], " 2m "), Color::Red);
    // Unknown timeout: no colour.
    let mut s = (*app.snap).clone();
    s.worker.request_timeout_secs = 0;
    app.set_snapshot(std::sync::Arc::new(s));
    let buf = buffer(&app, 80, 24);
    assert_eq!(style_after(&buf, &symbols[2], " 2m "), Color::Reset);
}

#[test]
fn a_group_keeps_its_count_at_80_columns() {
    let mut app = app(10);
    app.focus = PaneId::Failed;
    press(&mut app, "z");
    let text = screen(&app, 80, 24);
    let group = text
        .lines()
        .find(|l| l.contains("▸ 2 requests"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(group.contains("… ×2"), "{group}");
}
