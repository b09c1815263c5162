//! Acting on many rows: bulk actions scoped to what the filter shows, marking all, inverting
//! and ranges, sorting, and releasing a processing request, all through keys.

use crossterm::event::{KeyCode, KeyModifiers};

use super::*;
use crate::console::app::{Popup, StatusKind, DISMISS_REASON_CONSOLE};
use crate::engine::Command;
use uuid::Uuid;

fn commands(app: &mut App) -> Vec<Command> {
    app.take_outbox().into_iter().map(|o| o.command).collect()
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn confirm_text(app: &App) -> String {
    match &app.popup {
        Some(Popup::Confirm(c)) => c.message.clone(),
        _ => panic!("no confirmation open"),
    }
}

fn filter(app: &mut App, text: &str) {
    press(app, "/");
    app.on_key(&ctrl('u'));
    press(app, text);
    app.on_key(&key(KeyCode::Enter));
}

/// The failed rows whose error carries `code`, in the order of service.
fn failed_with(app: &App, code: &str) -> Vec<Uuid> {
    app.snap
        .failed
        .iter()
        .filter(|r| r.error_message.as_deref().unwrap().contains(code))
        .map(|r| r.request_id)
        .collect()
}

fn sorted(mut v: Vec<Uuid>) -> Vec<Uuid> {
    v.sort();
    v
}

#[test]
fn retry_all_with_a_filter_retries_only_the_rows_it_shows_and_says_so() {
    let mut app = app(10);
    press(&mut app, "3");
    filter(&mut app, "code:354");
    let shown = failed_with(&app, "IB 354");
    assert!(shown.len() >= 2 && shown.len() < app.snap.failed.len());
    press(&mut app, "R");
    assert_eq!(
        confirm_text(&app),
        format!(
            "Retry {} failed requests shown by filter \"code:354\"? They go back to PENDING.",
            shown.len()
        )
    );
    assert!(commands(&mut app).is_empty(), "nothing before the yes");
    press(&mut app, "y");
    match commands(&mut app).as_slice() {
        [Command::Retry(ids)] => assert_eq!(sorted(ids.clone()), sorted(shown)),
        other => panic!("{other:?}"),
    }
    // Without a filter: every failed request of the pane.
    app.on_key(&key(KeyCode::Esc));
    press(&mut app, "R");
    let n = app.snap.failed.len();
    assert_eq!(
        confirm_text(&app),
        format!("Retry all {n} failed requests? They go back to PENDING.")
    );
    press(&mut app, "y");
    assert!(matches!(
        commands(&mut app).as_slice(),
        [Command::RetryAllFailed]
    ));
    // A filter that shows nothing: refused, saying which filter.
    filter(&mut app, "code:999");
    press(&mut app, "R");
    assert!(app.popup.is_none());
    let s = app.status.clone().unwrap();
    assert_eq!(s.kind, StatusKind::Refused);
    assert_eq!(
        s.text,
        "retry all: no failed request is shown by filter \"code:999\""
    );
    // Elsewhere than the failed pane: refused, naming the pane.
    press(&mut app, "1R");
    assert!(app.popup.is_none());
    assert!(app.status.clone().unwrap().text.contains("failed pane (3)"));
}

#[test]
fn dismiss_all_with_a_filter_asks_a_reason_then_dismisses_only_the_rows_it_shows() {
    let mut app = app(10);
    press(&mut app, "3");
    filter(&mut app, "code:200");
    let shown = failed_with(&app, "IB 200");
    assert!(!shown.is_empty() && shown.len() < app.snap.failed.len());
    press(&mut app, "D");
    assert!(
        matches!(&app.popup, Some(Popup::Prompt(p)) if p.input.value == DISMISS_REASON_CONSOLE),
        "the default reason is offered"
    );
    // An empty reason is refused in the prompt, which stays open.
    app.on_key(&ctrl('u'));
    app.on_key(&key(KeyCode::Enter));
    assert!(matches!(&app.popup, Some(Popup::Prompt(p)) if p.error.is_some()));
    assert!(commands(&mut app).is_empty());
    press(&mut app, "delisted symbol");
    app.on_key(&key(KeyCode::Enter));
    let n = shown.len();
    let s = if n == 1 { "" } else { "s" };
    assert_eq!(
        confirm_text(&app),
        format!(
            "Dismiss {n} failed request{s} shown by filter \"code:200\"? They become CANCELLED (reason: delisted symbol) and leave the failed pane; history keeps them."
        )
    );
    assert!(commands(&mut app).is_empty(), "nothing before the yes");
    press(&mut app, "y");
    match commands(&mut app).as_slice() {
        [Command::Dismiss(ids, reason)] => {
            assert_eq!(sorted(ids.clone()), sorted(shown));
            assert_eq!(reason, "delisted symbol");
        }
        other => panic!("{other:?}"),
    }
    // Without a filter: every failure, with the default reason kept.
    app.on_key(&key(KeyCode::Esc));
    press(&mut app, "D");
    app.on_key(&key(KeyCode::Enter));
    assert!(confirm_text(&app).starts_with(&format!(
        "Dismiss all {} failed requests?",
        app.snap.failed.len()
    )));
    press(&mut app, "y");
    assert!(matches!(
        commands(&mut app).as_slice(),
        [Command::DismissAllFailed(r)] if r == DISMISS_REASON_CONSOLE
    ));
    // esc at the reason: nothing is done.
    press(&mut app, "D");
    app.on_key(&key(KeyCode::Esc));
    assert!(app.popup.is_none());
    assert!(commands(&mut app).is_empty());
    assert!(app.status.clone().unwrap().text.contains("not done"));
}

#[test]
fn cancel_all_cancels_the_pending_rows_the_filter_shows() {
    let mut app = app(40);
    filter(&mut app, "symbol:qqq");
    let qqq: Vec<Uuid> = app
        .snap
        .pending
        .iter()
        .filter(|r| r.symbol == "QQQ")
        .map(|r| r.request_id)
        .collect();
    assert!(qqq.len() > 1 && qqq.len() < app.snap.pending.len());
    app.on_key(&ctrl('x'));
    assert_eq!(
        confirm_text(&app),
        format!(
            "Cancel {} pending requests shown by filter \"symbol:qqq\"? This cannot be undone.",
            qqq.len()
        )
    );
    press(&mut app, "y");
    match commands(&mut app).as_slice() {
        [Command::Cancel(ids)] => assert_eq!(sorted(ids.clone()), sorted(qqq)),
        other => panic!("{other:?}"),
    }
    // Without a filter, all of them; and only from the pending pane.
    app.on_key(&key(KeyCode::Esc));
    app.on_key(&ctrl('x'));
    assert!(confirm_text(&app).starts_with("Cancel all 40 pending requests?"));
    app.on_key(&key(KeyCode::Esc));
    press(&mut app, "3");
    app.on_key(&ctrl('x'));
    assert!(app.popup.is_none());
    assert!(app
        .status
        .clone()
        .unwrap()
        .text
        .contains("pending pane (1)"));
}

#[test]
fn ctrl_a_marks_what_is_shown_i_inverts_and_a_marked_action_takes_them() {
    let mut app = app(40);
    filter(&mut app, "symbol:spy");
    let spy: Vec<Uuid> = app
        .snap
        .pending
        .iter()
        .filter(|r| r.symbol == "SPY")
        .map(|r| r.request_id)
        .collect();
    app.on_key(&ctrl('a'));
    assert_eq!(
        app.status.clone().unwrap().text,
        format!("{} marked", spy.len())
    );
    assert_eq!(sorted(app.pending.targets(&app.snap)), sorted(spy.clone()));
    press(&mut app, "I");
    assert!(app.pending.marks.is_empty(), "every shown row was marked");
    press(&mut app, "I");
    press(&mut app, "x");
    assert!(confirm_text(&app).starts_with(&format!("Cancel {} pending requests?", spy.len())));
    press(&mut app, "y");
    assert!(
        matches!(commands(&mut app).as_slice(), [Command::Cancel(v)] if sorted(v.clone()) == sorted(spy.clone()))
    );
}

#[test]
fn v_marks_a_range_as_the_cursor_moves_and_esc_drops_it() {
    let mut app = app(10);
    let ids: Vec<Uuid> = app.snap.pending.iter().map(|r| r.request_id).collect();
    press(&mut app, "jvjj");
    assert!(app.pending.is_marking_range());
    assert_eq!(
        sorted(app.pending.targets(&app.snap)),
        sorted(ids[1..4].to_vec())
    );
    // esc drops the range (the marks go back to none) before it clears anything else.
    app.on_key(&key(KeyCode::Esc));
    assert!(app.pending.marks.is_empty() && !app.pending.is_marking_range());
    assert_eq!(app.status.clone().unwrap().text, "range dropped");
    // v again keeps it; the next action takes it.
    press(&mut app, "vjv");
    assert_eq!(app.status.clone().unwrap().text, "range kept: 2 marked");
    press(&mut app, "+");
    assert!(
        matches!(commands(&mut app).as_slice(), [Command::BumpPriority(v, true)] if v.len() == 2)
    );
}

#[test]
fn s_sorts_by_each_column_in_turn_and_capital_s_reverses() {
    let mut app = app(30);
    press(&mut app, "s");
    assert_eq!(app.status.clone().unwrap().text, "sorted by P ▲");
    press(&mut app, "s");
    assert_eq!(app.status.clone().unwrap().text, "sorted by TYPE ▲");
    let types: Vec<&str> = (0..app.pending.len(&app.snap))
        .map(|i| app.pending.get(&app.snap, i).unwrap().request_type.as_str())
        .collect();
    assert!(types.windows(2).all(|w| w[0] <= w[1]), "{types:?}");
    press(&mut app, "S");
    assert_eq!(app.status.clone().unwrap().text, "sorted by TYPE ▼");
    let types: Vec<&str> = (0..app.pending.len(&app.snap))
        .map(|i| app.pending.get(&app.snap, i).unwrap().request_type.as_str())
        .collect();
    assert!(types.windows(2).all(|w| w[0] >= w[1]), "{types:?}");
    let s = screen(&app, 120, 40);
    // The cursor stayed on its request; the title says the sort and where the view is.
    assert!(s.contains("Pending · TYPE ▼ · 8–13 of 30"), "{s}");
    // Round the columns back to the order of service (still reversed).
    for _ in 0..6 {
        press(&mut app, "s");
    }
    assert_eq!(app.status.clone().unwrap().text, "sorted by service ▼");
    press(&mut app, "S");
    assert_eq!(app.status.clone().unwrap().text, "in the order of service");
    let service: Vec<Uuid> = app.snap.pending.iter().map(|r| r.request_id).collect();
    assert_eq!(app.pending.shown_ids(&app.snap), service);
}

#[test]
fn u_releases_the_selected_processing_request_after_a_yes() {
    let mut app = app(5);
    // Outside the processing pane: refused.
    press(&mut app, "u");
    assert!(app.popup.is_none());
    assert!(app.status.clone().unwrap().text.contains("processing pane"));
    press(&mut app, "2j");
    let id = app.snap.processing[1].request_id;
    press(&mut app, "u");
    let text = confirm_text(&app);
    assert!(text.starts_with("Release 1 processing request ("), "{text}");
    assert!(text.contains("no attempt counted"), "{text}");
    assert!(commands(&mut app).is_empty(), "nothing before the yes");
    press(&mut app, "y");
    assert!(matches!(commands(&mut app).as_slice(), [Command::Release(v)] if v == &vec![id]));
}
