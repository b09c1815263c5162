//! The `:` line in the app: what a typed command sends (after a yes when destructive), how
//! a refusal reads, the history across sessions, `:show`, and the done and actions panes'
//! keys.

use crossterm::event::{KeyCode, KeyModifiers};

use super::*;
use crate::console::app::StatusKind;
use crate::console::app::{PaneId, Popup};
use crate::console::cmdline::history::History;
use crate::console::popups::detail::DetailBody;
use crate::engine::{Command, Reply};

fn commands(app: &mut App) -> Vec<Command> {
    app.take_outbox().into_iter().map(|o| o.command).collect()
}

/// Opens the line, types `text` and presses enter.
fn run(app: &mut App, text: &str) {
    press(app, ":");
    assert!(app.cmdline.is_some(), "`:` opens the command line");
    press(app, text);
    app.on_key(&key(KeyCode::Enter));
}

fn status(app: &App) -> (StatusKind, String) {
    let s = app.status.as_ref().expect("a status line");
    (s.kind, s.text.clone())
}

#[test]
fn retry_all_failed_asks_first_then_sends_what_the_key_would() {
    let mut app = app(5);
    run(&mut app, "retry --all-failed");
    assert!(app.cmdline.is_none(), "enter closes the line");
    match &app.popup {
        Some(Popup::Confirm(c)) => {
            assert_eq!(c.message, "Put all 4 failed requests back to PENDING?")
        }
        _ => panic!("no confirmation"),
    }
    assert!(commands(&mut app).is_empty(), "nothing before the yes");
    press(&mut app, "y");
    assert!(matches!(
        commands(&mut app).as_slice(),
        [Command::RetryAllFailed]
    ));
    assert_eq!(
        status(&app),
        (StatusKind::Info, "retry all 4 failed requests…".into())
    );
    // Commands that change nothing for good go at once.
    run(&mut app, "pause");
    assert!(matches!(
        commands(&mut app).as_slice(),
        [Command::PauseWorker]
    ));
    assert!(app.popup.is_none());
}

#[test]
fn a_refusal_shows_in_the_status_line_in_the_clis_words() {
    let mut app = app(5);
    run(&mut app, "retry");
    let (kind, text) = status(&app);
    assert_eq!(kind, StatusKind::Refused);
    assert!(
        text.starts_with("the following required arguments were not provided")
            && text.contains("Usage: ibq retry"),
        "{text}"
    );
    assert!(commands(&mut app).is_empty());
    run(&mut app, "enqueue option_chain SPY --priority 9");
    assert_eq!(
        status(&app).1,
        "enqueue: priority must be 1 (immediate), 2 (normal) or 3 (background), got 9"
    );
    run(&mut app, "compact");
    assert!(status(&app).1.contains("`compact` is for the command line"));
}

#[test]
fn the_history_persists_and_up_brings_back_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history");
    let mut app = app(5);
    app.set_command_line(vec![], History::load(&path).0);
    run(&mut app, "pause");
    run(&mut app, "retry --all-failed");
    app.on_key(&key(KeyCode::Esc));
    // A new session on the same file.
    let mut app = super::app(5);
    app.set_command_line(vec![], History::load(&path).0);
    press(&mut app, ":");
    app.on_key(&key(KeyCode::Up));
    assert_eq!(app.cmdline.as_ref().unwrap().input, "retry --all-failed");
    app.on_key(&key(KeyCode::Up));
    assert_eq!(app.cmdline.as_ref().unwrap().input, "pause");
    app.on_key(&key(KeyCode::Down));
    app.on_key(&key(KeyCode::Down));
    assert_eq!(app.cmdline.as_ref().unwrap().input, "");
    // What is typed narrows the walk.
    press(&mut app, "pa");
    app.on_key(&key(KeyCode::Up));
    assert_eq!(app.cmdline.as_ref().unwrap().input, "pause");
}

#[test]
fn tab_completes_and_esc_closes_the_menu_then_the_line() {
    let mut app = app(5);
    app.set_command_line(vec!["SPX".into()], History::default());
    press(&mut app, ":enq");
    app.on_key(&key(KeyCode::Tab));
    assert_eq!(app.cmdline.as_ref().unwrap().input, "enqueue ");
    press(&mut app, "option_chain s");
    app.on_key(&key(KeyCode::Tab));
    let line = app.cmdline.as_ref().unwrap();
    assert_eq!(line.input, "enqueue option_chain SP");
    assert!(line.menu.is_some());
    app.on_key(&key(KeyCode::Esc));
    assert!(
        app.cmdline.as_ref().unwrap().menu.is_none(),
        "esc closes the menu"
    );
    app.on_key(&key(KeyCode::Esc));
    assert!(app.cmdline.is_none(), "then the line");
    // Backspace on an empty line closes it too; keys typed there never reach the panes.
    press(&mut app, ":q");
    assert!(!app.exit && app.popup.is_none());
    app.on_key(&key(KeyCode::Backspace));
    app.on_key(&key(KeyCode::Backspace));
    assert!(app.cmdline.is_none());
}

#[test]
fn the_command_lines_keys_are_remappable() {
    let user = "[cmdline]\ncomplete = [\"ctrl-t\"]\n";
    let mut app = app(5);
    app.keymap = KeyMap::from_texts(Some((user, std::path::Path::new("keys.toml")))).unwrap();
    press(&mut app, ":paus");
    app.on_key(&key(KeyCode::Tab));
    assert_eq!(
        app.cmdline.as_ref().unwrap().input,
        "paus",
        "tab is unbound"
    );
    app.on_key(&KeyEvent::new(KeyCode::Char('t'), KeyModifiers::CONTROL));
    assert_eq!(app.cmdline.as_ref().unwrap().input, "pause ");
}

#[test]
fn show_opens_the_detail_of_a_request_on_screen_or_of_its_history() {
    let mut app = app(5);
    let done = app.snap.done[2].clone();
    run(&mut app, &format!("show {}", done.request_id));
    assert!(matches!(
        &app.popup,
        Some(Popup::Detail(d)) if d.request_id() == Some(done.request_id)
    ));
    assert!(
        matches!(commands(&mut app).as_slice(), [Command::History(id)] if *id == done.request_id)
    );
    app.on_key(&key(KeyCode::Esc));
    // An archived request: not on screen, its history opens the view.
    let old = uuid::Uuid::from_u128(0xa5c1);
    run(&mut app, &format!("show {old}"));
    assert!(app.popup.is_none());
    let out = app.take_outbox();
    assert!(
        matches!(out.as_slice(), [o] if matches!(o.command, Command::History(id) if id == old))
    );
    let mut row = (*done).clone();
    row.request_id = old;
    app.on_reply(out[0].ticket, Ok(Reply::History(vec![row])));
    match &app.popup {
        Some(Popup::Detail(d)) => match &d.body {
            DetailBody::Request { request, .. } => assert_eq!(request.request_id, old),
            other => panic!("{other:?}"),
        },
        _ => panic!("no detail"),
    }
    app.on_key(&key(KeyCode::Esc));
    // One the tables do not know either.
    run(&mut app, &format!("show {}", uuid::Uuid::from_u128(0xdead)));
    let out = app.take_outbox();
    app.on_reply(out[0].ticket, Ok(Reply::History(vec![])));
    assert!(app.popup.is_none());
    assert_eq!(
        status(&app),
        (
            StatusKind::Refused,
            format!("show: no request with id {}", uuid::Uuid::from_u128(0xdead))
        )
    );
}

#[test]
fn the_done_pane_opens_details_copies_ids_and_filters() {
    let mut app = app(5);
    press(&mut app, "7");
    assert_eq!(app.focus, PaneId::Done);
    press(&mut app, "j");
    let second = app.snap.done[1].request_id;
    press(&mut app, "y");
    assert_eq!(app.take_clipboard(), Some(second.to_string()));
    app.on_key(&key(KeyCode::Enter));
    assert!(matches!(&app.popup, Some(Popup::Detail(d)) if d.request_id() == Some(second)));
    assert!(matches!(commands(&mut app).as_slice(), [Command::History(id)] if *id == second));
    app.on_key(&key(KeyCode::Esc));
    // The queue panes' filter language.
    press(&mut app, "/type:market_bars");
    app.on_key(&key(KeyCode::Enter));
    let shown = app.done.list.len(app.snap.done.len());
    let want = app
        .snap
        .done
        .iter()
        .filter(|r| r.request_type == crate::queue::RequestType::MarketBars)
        .count();
    assert!(want > 0 && shown == want, "{shown} of {want}");
    app.on_key(&key(KeyCode::Esc));
    assert_eq!(app.done.list.len(app.snap.done.len()), app.snap.done.len());
}

#[test]
fn the_actions_pane_opens_an_action_and_copies_its_request_ids() {
    let mut app = app(5);
    press(&mut app, "8");
    assert_eq!(app.focus, PaneId::Actions);
    press(&mut app, "j");
    let retry = &app.snap.actions[1];
    assert_eq!(retry.action, "retry");
    let ids: Vec<String> = retry.request_ids.iter().map(|i| i.to_string()).collect();
    press(&mut app, "y");
    assert_eq!(app.take_clipboard(), Some(ids.join("\n")));
    app.on_key(&key(KeyCode::Enter));
    assert!(matches!(
        &app.popup,
        Some(Popup::Detail(d)) if matches!(&d.body, DetailBody::Action(e) if e.action == "retry")
    ));
    assert!(
        commands(&mut app).is_empty(),
        "an action's detail needs no read"
    );
}

#[test]
fn the_large_layout_shows_the_last_of_logs_done_and_actions_focused() {
    let mut app = app(5);
    press(&mut app, "7");
    press(&mut app, "1");
    let text = screen(&app, 200, 60);
    assert!(
        text.contains("7 Done") && !text.contains("5 Logs"),
        "{text}"
    );
    press(&mut app, "8");
    let text = screen(&app, 200, 60);
    assert!(
        text.contains("8 Actions") && !text.contains("7 Done"),
        "{text}"
    );
    press(&mut app, "5");
    assert!(screen(&app, 200, 60).contains("5 Logs"));
}
