//! Pictures of every pane and popup at 80x24, 120x40 and 200x60, in normal and error
//! states, each checked for text cut without an ellipsis and for cut conids; and the
//! styles that carry meaning.

use std::sync::Arc;

use chrono::Duration;
use crossterm::event::KeyCode;
use ratatui::style::{Color, Modifier};

use super::*;
use crate::console::app::PaneId;
use crate::engine::{GatewayState, LineBudgetView, Reply};
use crate::queue::Status;

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 60)];

/// The picture at every size, each checked by [`super::checks::check_cuts`]: the panes
/// as drawn without the popup (or the command line's menu), and the popup on its own (the
/// cells it changed), so a pane's text the popup covers is not taken for a cut.
pub(super) fn snap_all(name: &str, app: &mut App) {
    for (w, h) in SIZES {
        let buf = buffer(app, w, h);
        let popup = app.popup.take();
        let menu = app.cmdline.as_mut().and_then(|l| l.menu.take());
        let panes = buffer(app, w, h);
        app.popup = popup;
        if let Some(line) = app.cmdline.as_mut() {
            line.menu = menu;
        }
        super::checks::check_cuts(app, &panes);
        let mut over = buf.clone();
        for (cell, under) in over.content.iter_mut().zip(panes.content()) {
            if cell == under {
                cell.set_symbol(" ");
            }
        }
        super::checks::check_cuts(app, &over);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text(&buf));
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
    let mut app = app(40);
    fill_logs(&app, 30);
    snap_all("pending", &mut app);
}

#[test]
fn processing_pane() {
    let mut app = app(40);
    app.focus = PaneId::Processing;
    snap_all("processing", &mut app);
}

#[test]
fn failed_pane_grouped_by_cause() {
    let mut app = app(10);
    app.focus = PaneId::Failed;
    press(&mut app, "z");
    // The largest group open, its rows under it.
    app.on_key(&key(KeyCode::Enter));
    snap_all("failed_grouped", &mut app);
}

#[test]
fn failed_pane_in_trouble() {
    let mut app = app_with(troubled(), true);
    fill_logs(&app, 30);
    app.focus = PaneId::Failed;
    snap_all("failed_troubled", &mut app);
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
    snap_all("legs", &mut app);
    // From 120 columns on, names and states are whole.
    for (w, h) in [(120, 40), (200, 60)] {
        let text = screen(&app, w, h);
        for whole in [
            "SPY iron condor Dec",
            "streaming",
            "subscribing",
            "4.15",
            "4.25",
        ] {
            assert!(text.contains(whole), "{w}x{h}: `{whole}` cut:\n{text}");
        }
    }
}

#[test]
fn logs_pane_paused() {
    let mut app = app(5);
    fill_logs(&app, 80);
    app.focus = PaneId::Logs;
    press(&mut app, "kkk");
    snap_all("logs_paused", &mut app);
}

#[test]
fn empty_and_reconnecting() {
    let mut s = Snapshot::empty("./data/lake".into(), "127.0.0.1:4002");
    s.taken_at = sample::t0();
    s.clock = crate::engine::ClockView::wall(sample::t0());
    s.gateway = GatewayState::Reconnecting {
        address: "127.0.0.1:4002".into(),
        attempt: 3,
        next_try_at: Some(sample::t0() + Duration::seconds(12)),
        reason: "connection reset by peer".into(),
    };
    let mut app = app_with(s, true);
    snap_all("empty_reconnecting", &mut app);
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
    let mut app = app_with(s, true);
    snap_all("degraded", &mut app);
}

#[test]
fn detail_loading_and_loaded() {
    let mut app = app_with(troubled(), true);
    app.focus = PaneId::Failed;
    app.on_key(&key(KeyCode::Enter));
    snap_all("detail_loading", &mut app);
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
    snap_all("detail_loaded", &mut app);
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
    snap_all("detail_leg", &mut app);
}

#[test]
fn help() {
    let mut app = app(3);
    press(&mut app, "?");
    snap_all("help", &mut app);
}

#[test]
fn promote_prompt_with_error() {
    let mut app = app(3);
    press(&mut app, "p");
    press(&mut app, "abc");
    app.on_key(&key(KeyCode::Enter));
    snap_all("prompt_promote_error", &mut app);
}

#[test]
fn confirm_cancel() {
    let mut app = app(10);
    press(&mut app, " j ");
    press(&mut app, "x");
    snap_all("confirm_cancel", &mut app);
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
    snap_all("new_request_error", &mut app);
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
    snap_all("status_refused", &mut app);
}

#[test]
fn schedule_pane() {
    let mut app = app(5);
    fill_logs(&app, 10);
    press(&mut app, "6");
    snap_all("schedule", &mut app);
    let text = screen(&app, 200, 60);
    // Next runs in New York time with a countdown; today's outcomes by slot.
    assert!(text.contains("NEXT ET"), "{text}");
    let row = |job: &str| text.lines().find(|l| l.contains(job)).unwrap().to_string();
    for (job, next, countdown) in [
        ("option_chain_regular", " 10:35 ", " 5m "),
        ("bars_morning", " Tue 08:30 ", " 22h00m "),
        ("positions_regular", " 10:30:30 ", " 30s "),
    ] {
        let row = row(job);
        assert!(row.contains(next) && row.contains(countdown), "{row}");
    }
    assert!(row("option_chain_regular").contains("2 failed · 2 missed"));
}

#[test]
fn the_schedule_counts_down_on_the_engines_clock() {
    // The demo's fast clock: the engine is at the sample's 10:30 ET while the wall clock
    // (and so the snapshot's taken_at) is six hours behind it.
    let wall = sample::t0() - Duration::hours(6);
    let mut snap = sample::snapshot(5);
    snap.taken_at = wall;
    snap.clock = crate::engine::ClockView {
        now: sample::t0(),
        speed: 60.0,
    };
    let mut app = app_with(snap, true);
    app.now = wall;
    press(&mut app, "6");
    let text = screen(&app, 200, 60);
    let row = text
        .lines()
        .find(|l| l.contains("option_chain_regular"))
        .unwrap();
    // NEXT then IN: the countdown from the engine's 10:30, not from the wall's 04:30.
    let mut after_next = row.split(" 10:35 ").nth(1).unwrap().split_whitespace();
    assert_eq!(after_next.next(), Some("5m"), "{row}");
}

#[test]
fn a_jobs_day() {
    let mut app = app(5);
    press(&mut app, "6jj");
    app.on_key(&key(KeyCode::Enter));
    snap_all("job_day", &mut app);
    let text = screen(&app, 120, 40);
    assert!(text.contains("option_chain_regular · today"), "{text}");
    // The 09:30 slot: one symbol failed, the others done; 09:50 missed.
    assert!(
        text.contains("09:30 ET    failed    SPY done · QQQ done · IWM failed"),
        "{text}"
    );
}

#[test]
fn run_a_job_now_asks_first() {
    let mut app = app(5);
    press(&mut app, "6jjr");
    snap_all("confirm_run_now", &mut app);
}

#[test]
fn detail_of_a_log_line() {
    let mut app = app(3);
    fill_logs(&app, 12);
    press(&mut app, "5");
    app.on_key(&key(KeyCode::Enter));
    snap_all("detail_log", &mut app);
}

#[test]
fn help_scrolled_shows_where_it_is() {
    let mut app = app(3);
    press(&mut app, "?");
    // A page is what the last draw showed, as on a terminal.
    screen(&app, 80, 24);
    app.on_key(&key(KeyCode::PageDown));
    snap_all("help_scrolled", &mut app);
    let text = screen(&app, 80, 24);
    let total = crate::console::popups::help::Help::lines(&app.keymap, app.theme).len();
    // 24 rows less header, gauge and status line; the popup's border takes two.
    assert!(text.contains(&format!("Keys · 18–34 of {total}")), "{text}");
    // One bottom border: the popup's, right above the status line.
    assert_eq!(
        text.lines().filter(|l| l.starts_with('└')).count(),
        1,
        "{text}"
    );
    app.on_key(&key(KeyCode::Down));
    assert!(screen(&app, 80, 24).contains(&format!("Keys · 19–35 of {total}")));
}

#[test]
fn filter_prompt() {
    let mut app = app(10);
    press(&mut app, "/spy");
    snap_all("prompt_filter", &mut app);
}

#[test]
fn every_pane_names_its_own_keys_without_overlap() {
    for (pane, key, expect) in [
        ('1', "x cancel", "enter details"),
        ('2', "P pause", "enter details"),
        ('3', "r retry", "R retry all"),
        ('4', "p promote", "d demote"),
        ('5', "l level", "f follow"),
        ('6', "enter day", "r run now"),
    ] {
        let mut app = app(3);
        press(&mut app, &pane.to_string());
        let text = screen(&app, 80, 24);
        let footer = text.lines().last().unwrap();
        assert!(footer.contains(key) && footer.contains(expect), "{footer}");
        assert!(footer.ends_with("? help · q quit"), "{footer}");
        // Between the pane's keys and the help hint: at least one blank column.
        let hints = footer.trim_end_matches("? help · q quit");
        assert!(hints.ends_with(' '), "{footer}");
    }
    // A remapped key shows as bound.
    let user = "[schedule]\nrun_job_now = [\"N\"]\n";
    let keymap = KeyMap::from_texts(Some((user, std::path::Path::new("keymap.toml")))).unwrap();
    let mut app = app(3);
    app.keymap = keymap;
    press(&mut app, "6");
    let text = screen(&app, 80, 24);
    assert!(text.lines().last().unwrap().contains("N run now"), "{text}");
}

pub(super) fn fg_of(buf: &ratatui::buffer::Buffer, needle: &str) -> (Color, Modifier) {
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

#[test]
fn a_broken_market_data_farm_shows_in_the_header_at_80_columns() {
    let mut farms = crate::gateway::farms::Farms::default();
    let at = sample::t0();
    farms.apply(2104, "Market data farm connection is OK:usfarm", at);
    farms.apply(2106, "HMDS data farm connection is OK:ushmds", at);
    let mut s = sample::snapshot(3);
    s.farms = farms.view().clone();
    let app = app_with(s.clone(), true);
    let top = screen(&app, 80, 24);
    let first = top.lines().next().unwrap_or_default().to_string();
    assert!(
        first.contains("● connected") && first.contains("farms ok"),
        "{first}"
    );

    farms.apply(2103, "Market data farm connection is broken:usfarm", at);
    s.farms = farms.view().clone();
    let app = app_with(s, true);
    insta::assert_snapshot!("farm_broken_80x24", screen(&app, 80, 24));
    let first = screen(&app, 80, 24)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        first.contains("▲ connected") && first.contains("md farm usfarm BROKEN"),
        "{first}"
    );
}
