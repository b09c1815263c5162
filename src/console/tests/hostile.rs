//! Outside text with control characters in every place the console draws it: each pane,
//! the header, the alert and status lines, every popup. No cell may carry a character a
//! terminal acts on, no draw site may leave it to the last guard (`scrub`), and the text
//! must stay readable as visible escapes.

use std::sync::Arc;

use chrono::Duration;
use serde_json::json;

use super::*;
use crate::console::app::{scrub, PaneId, SCRUBBED};
use crate::console::keymap::Action;
use crate::engine::{GatewayState, LegState, Reply};
use crate::queue::Status;
use crate::text::is_unsafe;

/// The reproduction from the report: retitle, clear, clipboard, bare CR.
const EVIL: &str = "X\x1b]2;PWNED\x07\x1b[2J\x1b]52;c;aGk=\x07A\rB";
/// How it must look once cleaned (its first characters fit any column).
const SEEN: &str = "X\\x1b]2;PWNED";

fn hostile() -> Snapshot {
    let mut s = sample::snapshot(3);
    let t0 = sample::t0();
    let evil = |r: &Arc<crate::queue::Request>| {
        let mut r = (**r).clone();
        r.symbol = EVIL.into();
        Arc::new(r)
    };
    let mut pending: Vec<_> = s.pending.iter().cloned().collect();
    let mut p0 = (*evil(&pending[0])).clone();
    // An unknown key and a C1 CSI in a value: the summary quotes them.
    p0.parameters = json!({ EVIL: "x", "rights": "\u{9b}2J\u{202e}" });
    pending[0] = Arc::new(p0);
    s.pending = Arc::from(pending);
    let mut processing: Vec<_> = s.processing.iter().map(evil).collect();
    let mut w = (*processing[0]).clone();
    w.lease_owner = Some(EVIL.into());
    processing[0] = Arc::new(w);
    s.processing = Arc::from(processing);
    let mut failed: Vec<_> = s.failed.iter().cloned().collect();
    let mut f = (*failed[0]).clone();
    f.error_message = Some(format!("rejected: invalid symbol `{EVIL}`"));
    f.result_data = Some(json!({ "note": EVIL, EVIL: [EVIL] }));
    f.result_table = EVIL.into();
    f.schedule_key = Some(EVIL.into());
    failed[0] = Arc::new(f);
    s.failed = Arc::from(failed);
    let mut legs: Vec<_> = s.legs.iter().cloned().collect();
    legs[0].symbol = EVIL.into();
    legs[0].strategy = Some(EVIL.into());
    legs[0].right = Some(EVIL.into());
    legs[4].state = LegState::Stalled {
        reason: EVIL.into(),
    };
    legs[4].sec_type = EVIL.into();
    s.legs = Arc::from(legs);
    s.gateway = GatewayState::Degraded {
        address: "127.0.0.1:4002".into(),
        code: 1100,
        message: EVIL.into(),
        since: t0 - Duration::seconds(5),
    };
    s.alert = Some(format!("streaming task stopped: {EVIL}"));
    // A job name and symbols come from ibq.toml: the schedule pane and a job's day.
    let mut jobs: Vec<_> = s.jobs.iter().cloned().collect();
    jobs[2].name = EVIL.into();
    jobs[2].symbols[0] = EVIL.into();
    for slot in &mut jobs[2].today {
        slot.occurrences[0].0 = EVIL.into();
        slot.occurrences[0].1 = crate::scheduler::view::Outcome::Failed;
    }
    s.jobs = Arc::from(jobs);
    s
}

fn hostile_app() -> App {
    let app = app_with(hostile(), true);
    app.logs.buffer.push(
        sample::t0(),
        tracing::Level::WARN,
        "ibq::queue",
        format!("a row is not a valid request: {EVIL}"),
        vec![("symbol", EVIL.into()), ("reason", EVIL.into())],
    );
    app
}

/// The screen holds nothing a terminal acts on, nothing the last guard had to replace,
/// and the outside text as visible escapes.
#[track_caller]
fn assert_safe(app: &App, w: u16, h: u16, what: &str) {
    let buf = buffer(app, w, h);
    let t = text(&buf);
    for cell in buf.content() {
        assert!(!cell.symbol().contains(is_unsafe), "{what}: {cell:?}");
        assert_ne!(
            cell.symbol(),
            SCRUBBED,
            "{what}: a draw site left a control character to the last guard:\n{t}"
        );
    }
    assert!(
        t.contains(SEEN),
        "{what}: no visible escape on screen:\n{t}"
    );
}

#[test]
fn every_pane_draws_outside_text_as_visible_escapes() {
    let mut app = hostile_app();
    for (w, h) in [(80, 24), (200, 60)] {
        for pane in PaneId::ALL {
            app.focus = pane;
            assert_safe(&app, w, h, &format!("{pane:?} at {w}x{h}"));
        }
    }
}

#[test]
fn a_jobs_day_draws_its_name_and_symbols_as_visible_escapes() {
    let mut app = hostile_app();
    app.focus = PaneId::Schedule;
    press(&mut app, "jj");
    app.on_key(&key(crossterm::event::KeyCode::Enter));
    for (w, h) in [(80, 24), (200, 60)] {
        assert_safe(&app, w, h, &format!("job day at {w}x{h}"));
    }
}

#[test]
fn the_header_and_the_alert_show_the_gateway_text_escaped() {
    let app = hostile_app();
    let t = screen(&app, 200, 60);
    let header = t.lines().next().unwrap();
    assert!(
        header.contains("IB 1100: X\\x1b]2;PWNED\\x07\\x1b[2J"),
        "{header}"
    );
    assert!(
        t.contains("⚠ streaming task stopped: X\\x1b]2;PWNED"),
        "{t}"
    );
}

#[test]
fn the_failed_pane_cuts_the_error_after_cleaning_it() {
    let mut app = hostile_app();
    app.focus = PaneId::Failed;
    let t = screen(&app, 80, 24);
    // The column is far narrower than the cleaned message: what is left is its start, as
    // text, not half a sequence.
    let row = t
        .lines()
        .find(|l| l.contains("rejected: invalid symbol"))
        .unwrap_or_else(|| panic!("the failed row is on screen:\n{t}"));
    assert!(row.contains("rejected: invalid symbol `X"), "{row}");
    assert!(!row.contains('\x1b'));
}

#[test]
fn the_detail_views_show_every_field_escaped() {
    // A request: symbol (title), parameters, error, result, lease, history.
    for pane in [PaneId::Pending, PaneId::Processing, PaneId::Failed] {
        let mut app = hostile_app();
        app.focus = pane;
        app.act(Action::Details);
        assert!(matches!(
            app.popup,
            Some(crate::console::app::Popup::Detail(_))
        ));
        assert_safe(&app, 120, 60, &format!("detail of {pane:?}"));
        let out = app.take_outbox();
        let mut h = (**app.queue(pane).unwrap().selected(&app.snap).unwrap()).clone();
        h.status = Status::Failed;
        h.error_message = Some(EVIL.into());
        app.on_reply(out[0].ticket, Ok(Reply::History(vec![h])));
        assert_safe(&app, 120, 60, &format!("history of {pane:?}"));
    }
    let mut app = hostile_app();
    app.focus = PaneId::Failed;
    app.act(Action::Details);
    let t = screen(&app, 120, 60);
    assert!(t.contains("\"note\": \"X\\u001b]2;PWNED"), "{t}");
    assert!(
        t.contains("rejected: invalid symbol `X\\x1b]2;PWNED\\x07"),
        "{t}"
    );

    // A leg and a log line.
    let mut app = hostile_app();
    app.focus = PaneId::Legs;
    app.act(Action::Details);
    assert_safe(&app, 120, 40, "detail of a leg");
    let mut app = hostile_app();
    app.focus = PaneId::Legs;
    press(&mut app, "G");
    app.act(Action::Details);
    assert_safe(&app, 120, 40, "detail of a stalled leg");
    let mut app = hostile_app();
    app.focus = PaneId::Logs;
    app.act(Action::Details);
    assert_safe(&app, 120, 40, "detail of a log line");
    assert!(screen(&app, 120, 40).contains("symbol  X\\x1b]2;PWNED\\x07\\x1b[2J"));
}

#[test]
fn the_confirm_dialog_and_the_status_line_show_replies_escaped() {
    let mut app = hostile_app();
    app.focus = PaneId::Pending;
    press(&mut app, "x");
    assert!(matches!(
        app.popup,
        Some(crate::console::app::Popup::Confirm(_))
    ));
    assert_safe(&app, 120, 40, "the cancel dialog");

    let mut app = hostile_app();
    press(&mut app, "P");
    let out = app.take_outbox();
    app.on_reply(out[0].ticket, Err(format!("refused for {EVIL}")));
    assert_safe(&app, 200, 60, "a refusal quoting a row");
    let last = screen(&app, 200, 60);
    assert!(last.lines().last().unwrap().contains(SEEN));
}

#[test]
fn a_filter_quoting_outside_text_is_drawn_escaped() {
    let mut app = hostile_app();
    app.focus = PaneId::Failed;
    // The title shows the filter as typed; a pasted ESC stays visible.
    let snap = app.snap.clone();
    app.failed.set_filter("x\x1b]2;t\x07", &snap);
    let buf = buffer(&app, 200, 60);
    assert!(text(&buf).contains("Failed · x\\x1b]2;t\\x07 · "));
    assert!(!buf.content().iter().any(|c| c.symbol() == SCRUBBED));
}

#[test]
fn the_last_guard_replaces_a_cell_holding_a_control_character() {
    let mut buf = ratatui::buffer::Buffer::empty(ratatui::layout::Rect::new(0, 0, 4, 1));
    buf[(0, 0)].set_symbol("A");
    buf[(1, 0)].set_symbol("\x1b");
    buf[(2, 0)].set_symbol("B\u{9b}");
    buf[(3, 0)].set_symbol("\u{202e}");
    scrub(&mut buf);
    let symbols: Vec<&str> = buf.content().iter().map(|c| c.symbol()).collect();
    assert_eq!(symbols, ["A", SCRUBBED, SCRUBBED, SCRUBBED]);
}
