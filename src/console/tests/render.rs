//! Pictures of every pane and popup at 80x24 and 200x60, in normal and error states, and
//! the styles that carry meaning.

use std::sync::Arc;

use chrono::Duration;
use crossterm::event::KeyCode;
use ratatui::style::{Color, Modifier};

use super::*;
use crate::console::app::PaneId;
use crate::engine::{GatewayState, LineBudgetView, Reply};
use crate::queue::Status;

const SIZES: [(u16, u16); 2] = [(80, 24), (200, 60)];

fn snap_both(name: &str, app: &App) {
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen(app, w, h));
    }
}

/// Disconnected, paused, the line budget full, an alert from the engine.
fn troubled() -> Snapshot {
    let mut s = sample::snapshot(12);
    s.gateway = GatewayState::Disconnected {
        address: "127.0.0.1:4002".into(),
        reason: "connection refused (os error 111)".into(),
    };
    s.worker.paused = true;
    s.lines = LineBudgetView {
        limit: 100,
        margin: 2,
        streams: 80,
        snapshots: 18,
    };
    s.alert = Some("streaming task stopped: lake write failed: disk full".into());
    s
}

#[test]
fn pending_pane() {
    let app = app(40);
    fill_logs(&app, 30);
    snap_both("pending", &app);
}

#[test]
fn processing_pane() {
    let mut app = app(40);
    app.focus = PaneId::Processing;
    snap_both("processing", &app);
}

#[test]
fn failed_pane_grouped_by_cause() {
    let mut app = app(10);
    app.focus = PaneId::Failed;
    press(&mut app, "z");
    // The largest group open, its rows under it.
    app.on_key(&key(KeyCode::Enter));
    snap_both("failed_grouped", &app);
}

#[test]
fn failed_pane_in_trouble() {
    let mut app = app_with(troubled(), true);
    fill_logs(&app, 30);
    app.focus = PaneId::Failed;
    snap_both("failed_troubled", &app);
    // Every error the column cannot hold ends in an ellipsis, at both sizes.
    for (w, h) in SIZES {
        let text = screen(&app, w, h);
        let row = text
            .lines()
            .find(|l| l.contains("IB 162"))
            .expect("the market_bars failure is shown");
        assert!(row.contains("… "), "cut without an ellipsis: {row}");
    }
}

#[test]
fn legs_pane() {
    let mut app = app(5);
    app.focus = PaneId::Legs;
    snap_both("legs", &app);
}

#[test]
fn logs_pane_paused() {
    let mut app = app(5);
    fill_logs(&app, 80);
    app.focus = PaneId::Logs;
    press(&mut app, "kkk");
    snap_both("logs_paused", &app);
}

#[test]
fn empty_and_reconnecting() {
    let mut s = Snapshot::empty("./data/lake".into(), "127.0.0.1:4002");
    s.taken_at = sample::t0();
    s.gateway = GatewayState::Reconnecting {
        address: "127.0.0.1:4002".into(),
        attempt: 3,
        next_try_at: Some(sample::t0() + Duration::seconds(12)),
        reason: "connection reset by peer".into(),
    };
    let app = app_with(s, true);
    snap_both("empty_reconnecting", &app);
    // An empty pane says what to do about it, with the key as bound.
    assert!(screen(&app, 80, 24).contains("nothing pending · n new request"));
}

#[test]
fn degraded_header() {
    let mut s = sample::snapshot(3);
    s.gateway = GatewayState::Degraded {
        address: "127.0.0.1:4002".into(),
        code: 1100,
        message: "Connectivity between IB and TWS has been lost".into(),
        since: sample::t0() - Duration::seconds(95),
    };
    let app = app_with(s, true);
    insta::assert_snapshot!("degraded_80x24", screen(&app, 80, 24));
}

#[test]
fn detail_loading_and_loaded() {
    let mut app = app_with(troubled(), true);
    app.focus = PaneId::Failed;
    app.on_key(&key(KeyCode::Enter));
    snap_both("detail_loading", &app);
    let out = app.take_outbox();
    let r = app.snap.failed[0].clone();
    let mut first = (*r).clone();
    first.status = Status::Pending;
    first.event = crate::queue::Event::Enqueued;
    first.error_message = None;
    first.attempts = 0;
    first.updated_at = r.created_at;
    let mut claimed = first.clone();
    claimed.status = Status::Processing;
    claimed.event = crate::queue::Event::Claimed;
    claimed.changed_by = crate::queue::Actor::Worker;
    app.on_reply(
        out[0].ticket,
        Ok(Reply::History(vec![first, claimed, (*r).clone()])),
    );
    snap_both("detail_loaded", &app);
}

#[test]
fn detail_of_a_leg() {
    let mut app = app(3);
    app.focus = PaneId::Legs;
    press(&mut app, "jj");
    app.on_key(&key(KeyCode::Enter));
    let text = screen(&app, 80, 24);
    // Between the pane's border and the popup's, nothing of the pane shows through.
    for line in text.lines() {
        let cells: Vec<char> = line.chars().collect();
        let sliver =
            cells.len() > 3 && cells[cells.len() - 3] == '│' && cells[cells.len() - 1] == '│';
        assert!(!sliver, "pane shows through: {line}");
    }
    assert_eq!(
        text.lines().filter(|l| l.starts_with('└')).count(),
        1,
        "{text}"
    );
    insta::assert_snapshot!("detail_leg_80x24", text);
}

#[test]
fn help() {
    let mut app = app(3);
    press(&mut app, "?");
    snap_both("help", &app);
}

#[test]
fn promote_prompt_with_error() {
    let mut app = app(3);
    press(&mut app, "p");
    press(&mut app, "abc");
    app.on_key(&key(KeyCode::Enter));
    snap_both("prompt_promote_error", &app);
}

#[test]
fn confirm_cancel() {
    let mut app = app(10);
    press(&mut app, " j ");
    press(&mut app, "x");
    snap_both("confirm_cancel", &app);
}

#[test]
fn new_request_form_with_field_error() {
    let mut app = app(3);
    press(&mut app, "n");
    press(&mut app, "spy");
    app.on_key(&key(KeyCode::Tab));
    app.on_key(&key(KeyCode::Tab));
    press(&mut app, "target_dte=soon");
    app.on_key(&key(KeyCode::Enter));
    snap_both("new_request_error", &app);
}

#[test]
fn status_line_reports_refusal() {
    let mut app = app(3);
    press(&mut app, "P");
    let out = app.take_outbox();
    app.on_reply(
        out[0].ticket,
        Err("this console only observes the lake".into()),
    );
    insta::assert_snapshot!("status_refused_80x24", screen(&app, 80, 24));
}

fn fg_of(buf: &ratatui::buffer::Buffer, needle: &str) -> (Color, Modifier) {
    let t = text(buf);
    for (y, line) in t.lines().enumerate() {
        if let Some(byte) = line.find(needle) {
            let x = line[..byte].chars().count() as u16;
            let cell = &buf[(x, y as u16)];
            return (cell.fg, cell.modifier);
        }
    }
    panic!("`{needle}` not on screen:\n{t}");
}

#[test]
fn failed_rows_are_red() {
    let mut app = app(3);
    app.focus = PaneId::Pending; // the selected row is reversed; look at an unselected one
    app.focus = PaneId::Failed;
    press(&mut app, "G");
    let buf = buffer(&app, 200, 60);
    let (fg, _) = fg_of(&buf, "IB 162");
    assert_eq!(fg, Color::Red);
}

fn gauge_colour(streams: u32, snapshots: u32) -> Color {
    let mut s = sample::snapshot(1);
    s.lines = LineBudgetView {
        limit: 100,
        margin: 2,
        streams,
        snapshots,
    };
    let app = app_with(s, true);
    fg_of(&buffer(&app, 80, 24), "lines ").0
}

#[test]
fn gauge_colour_follows_the_fill() {
    assert_eq!(gauge_colour(30, 20), Color::Green);
    assert_eq!(gauge_colour(60, 15), Color::Yellow);
    assert_eq!(gauge_colour(80, 15), Color::Red);
}

#[test]
fn no_color_means_no_colour_at_all() {
    let mut app = app_with(troubled(), false);
    fill_logs(&app, 20);
    app.focus = PaneId::Failed;
    for (w, h) in SIZES {
        let buf = buffer(&app, w, h);
        for cell in buf.content() {
            assert_eq!(cell.fg, Color::Reset, "{:?}", cell);
            assert_eq!(cell.bg, Color::Reset, "{:?}", cell);
        }
        // Still readable: the selection is reversed and errors are bold.
        assert!(buf
            .content()
            .iter()
            .any(|c| c.modifier.contains(Modifier::REVERSED)));
        let (_, m) = fg_of(&buf, "DISCONNECTED");
        assert!(m.contains(Modifier::BOLD));
    }
    let _ = Arc::strong_count(&app.snap);
}
