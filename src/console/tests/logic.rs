//! App logic: the commands actions produce, filtering, follow mode, windowing.

use crossterm::event::{KeyCode, KeyModifiers};

use super::*;
use crate::console::app::{PaneId, Popup};
use crate::console::panes::queue::FORMATTED;
use crate::engine::{Command, Reply};
use crate::queue::Priority;

fn commands(app: &mut App) -> Vec<Command> {
    app.take_outbox().into_iter().map(|o| o.command).collect()
}

#[test]
fn marked_rows_get_the_action_not_just_the_selected_one() {
    let mut app = app(10);
    let ids: Vec<_> = app.snap.pending.iter().map(|r| r.request_id).collect();
    // mark rows 0 and 2, leave the cursor on 3
    press(&mut app, " j ");
    app.on_key(&KeyEvent::new(KeyCode::Char('3'), KeyModifiers::ALT));
    match commands(&mut app).as_slice() {
        [Command::SetPriority(got, p)] => {
            let mut want = vec![ids[0], ids[2]];
            want.sort();
            assert_eq!(got, &want);
            assert_eq!(*p, Priority::BACKGROUND);
        }
        other => panic!("{other:?}"),
    }
    // marks are kept for a command without confirmation: bump them
    press(&mut app, "+");
    assert!(
        matches!(commands(&mut app).as_slice(), [Command::BumpPriority(v, true)] if v.len() == 2)
    );
    // cancel needs a yes, then applies to the marks
    press(&mut app, "x");
    assert!(matches!(app.popup, Some(Popup::Confirm(_))));
    assert!(commands(&mut app).is_empty(), "nothing before the yes");
    press(&mut app, "y");
    match commands(&mut app).as_slice() {
        [Command::Cancel(got)] => assert_eq!(got.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(
        app.pending.marks.is_empty(),
        "a confirmed action clears the marks"
    );
}

#[test]
fn without_marks_the_selected_row_is_the_target() {
    let mut app = app(10);
    press(&mut app, "jj-");
    let want = app.snap.pending[2].request_id;
    assert!(
        matches!(commands(&mut app).as_slice(), [Command::BumpPriority(v, false)] if v == &vec![want])
    );
}

#[test]
fn dismissing_the_confirm_sends_nothing() {
    let mut app = app(10);
    press(&mut app, "x");
    app.on_key(&key(KeyCode::Esc));
    assert!(app.popup.is_none());
    assert!(commands(&mut app).is_empty());
    assert!(app.status.as_ref().unwrap().text.contains("not done"));
}

#[test]
fn retry_works_on_failed_rows_and_is_refused_elsewhere() {
    let mut app = app(10);
    press(&mut app, "r");
    assert!(commands(&mut app).is_empty());
    let status = app.status.clone().unwrap();
    assert_eq!(status.kind, crate::console::app::StatusKind::Refused);
    assert!(status.text.contains("failed pane"), "{}", status.text);
    press(&mut app, "3r");
    let want = app.snap.failed[0].request_id;
    assert!(matches!(commands(&mut app).as_slice(), [Command::Retry(v)] if v == &vec![want]));
    press(&mut app, "R");
    assert!(commands(&mut app).is_empty());
    press(&mut app, "y");
    assert!(matches!(
        commands(&mut app).as_slice(),
        [Command::RetryAllFailed]
    ));
}

#[test]
fn dismiss_asks_once_then_sends_the_failed_rows_with_a_reason() {
    let mut app = app(10);
    // Refused outside the failed pane.
    press(&mut app, "X");
    assert!(commands(&mut app).is_empty());
    assert!(app.popup.is_none());
    let status = app.status.clone().unwrap();
    assert!(status.text.contains("failed pane"), "{}", status.text);
    // Mark two failed rows, dismiss: the reason (the default kept), one confirmation,
    // then one command for both.
    press(&mut app, "3  X");
    assert!(
        matches!(&app.popup, Some(Popup::Prompt(p)) if p.input.value == crate::console::app::DISMISS_REASON_CONSOLE)
    );
    app.on_key(&key(KeyCode::Enter));
    assert!(matches!(app.popup, Some(Popup::Confirm(_))));
    assert!(commands(&mut app).is_empty(), "nothing before the yes");
    press(&mut app, "y");
    let failed: Vec<_> = app.snap.failed.iter().map(|r| r.request_id).collect();
    match commands(&mut app).as_slice() {
        [Command::Dismiss(got, reason)] => {
            assert_eq!(got.len(), 2, "{got:?}");
            assert_ne!(got[0], got[1]);
            assert!(got.iter().all(|id| failed.contains(id)), "{got:?}");
            assert_eq!(reason, crate::console::app::DISMISS_REASON_CONSOLE);
        }
        other => panic!("{other:?}"),
    }
    assert!(app.failed.marks.is_empty());
}

#[test]
fn replies_land_in_the_status_line() {
    let mut app = app(10);
    press(&mut app, "3r");
    let out = app.take_outbox();
    assert!(
        app.status.as_ref().unwrap().text.ends_with('…'),
        "shown as in progress"
    );
    app.on_reply(
        out[0].ticket,
        Ok(Reply::Done("1 request back to PENDING".into())),
    );
    let s = app.status.clone().unwrap();
    assert_eq!(s.kind, crate::console::app::StatusKind::Done);
    assert_eq!(s.text, "retry 1 request: done · 1 request back to PENDING");
}

#[test]
fn filter_narrows_the_rows_and_esc_clears_it() {
    let mut app = app(100);
    let total = app.pending.len(&app.snap);
    press(&mut app, "/qqq");
    // live while typing
    let narrowed = app.pending.len(&app.snap);
    assert_eq!(
        narrowed,
        app.snap
            .pending
            .iter()
            .filter(|r| r.symbol == "QQQ")
            .count()
    );
    assert!(narrowed < total && narrowed > 0);
    app.on_key(&key(KeyCode::Enter));
    assert!(app.popup.is_none());
    assert!(app.pending.targets(&app.snap).iter().all(|id| {
        app.snap
            .pending
            .iter()
            .find(|r| r.request_id == *id)
            .unwrap()
            .symbol
            == "QQQ"
    }));
    // matches the type, the id and the error too
    press(&mut app, "/");
    app.on_key(&KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "market_bars");
    app.on_key(&key(KeyCode::Enter));
    assert_eq!(app.pending.len(&app.snap), 20);
    app.on_key(&key(KeyCode::Esc));
    assert_eq!(app.pending.len(&app.snap), total);
    press(&mut app, "3/ib 354");
    app.on_key(&key(KeyCode::Enter));
    let want = app
        .snap
        .failed
        .iter()
        .filter(|r| r.error_message.as_deref().unwrap().contains("IB 354"))
        .count();
    assert_eq!(app.failed.len(&app.snap), want);
    assert!(want < app.snap.failed.len());
}

#[test]
fn follow_mode_pauses_on_scroll_up_and_resumes_at_the_bottom() {
    let mut app = app(1);
    fill_logs(&app, 50);
    press(&mut app, "5");
    assert!(app.logs.following());
    press(&mut app, "kk");
    assert!(!app.logs.following());
    let pinned = app.logs.current().unwrap();
    assert_eq!(pinned.message, "event number 47");
    // new lines do not move the view
    fill_logs(&app, 5);
    assert_eq!(app.logs.current().unwrap().seq, pinned.seq);
    // moving down to the newest line resumes following
    press(&mut app, "jjjjjjjj");
    assert!(app.logs.following());
    press(&mut app, "kf");
    assert!(app.logs.following(), "f toggles back to following");
    press(&mut app, "f");
    assert!(!app.logs.following());
    app.on_key(&key(KeyCode::End));
    assert!(app.logs.following());
}

#[test]
fn level_filter_cycles() {
    let mut app = app(1);
    fill_logs(&app, 8);
    press(&mut app, "5");
    press(&mut app, "lll"); // trace → debug → info → warn
    assert_eq!(app.logs.min_level, tracing::Level::WARN);
    assert!(app.logs.current().unwrap().level <= tracing::Level::WARN);
    press(&mut app, "ll");
    assert_eq!(app.logs.min_level, tracing::Level::TRACE);
}

#[test]
fn only_visible_rows_are_formatted_with_100k_requests() {
    let mut app = app(100_000);
    for (w, h) in [(80u16, 24u16), (200, 60)] {
        FORMATTED.with(|c| c.set(0));
        let _ = screen(&app, w, h);
        let n = FORMATTED.with(|c| c.get());
        assert!(n > 0 && n < h as usize, "{n} rows formatted at {w}x{h}");
    }
    press(&mut app, "G");
    FORMATTED.with(|c| c.set(0));
    let s = screen(&app, 80, 24);
    assert!(FORMATTED.with(|c| c.get()) < 24);
    assert!(s.contains("100,000"), "{s}");
}

#[test]
fn details_ask_for_history_without_blocking() {
    let mut app = app(5);
    app.on_key(&key(KeyCode::Enter));
    let out = app.take_outbox();
    let id = app.snap.pending[0].request_id;
    assert!(matches!(out.as_slice(), [o] if matches!(o.command, Command::History(x) if x == id)));
    assert!(screen(&app, 200, 60).contains("loading…"));
    app.on_reply(out[0].ticket, Err("lake unreadable".into()));
    assert!(screen(&app, 200, 60).contains("history unavailable: lake unreadable"));
    app.on_key(&key(KeyCode::Esc));
    assert!(app.popup.is_none());
}

#[test]
fn quit_confirms_while_processing_then_shuts_down() {
    let mut app = app(5);
    press(&mut app, "q");
    assert!(matches!(app.popup, Some(Popup::Confirm(_))));
    press(&mut app, "y");
    let out = app.take_outbox();
    assert!(matches!(out[0].command, Command::Shutdown));
    assert!(!app.exit);
    app.on_reply(out[0].ticket, Ok(Reply::Done("stopped".into())));
    assert!(app.exit);
}

#[test]
fn quit_without_processing_needs_no_confirmation() {
    let mut s = sample::snapshot(5);
    s.processing = std::sync::Arc::from(Vec::new());
    let mut app = app_with(s, true);
    press(&mut app, "q");
    assert!(matches!(commands(&mut app).as_slice(), [Command::Shutdown]));
}

#[test]
fn new_request_is_validated_then_enqueued_by_the_operator() {
    let mut app = app(1);
    press(&mut app, "n");
    press(&mut app, "bad sym");
    app.on_key(&key(KeyCode::Enter));
    assert!(commands(&mut app).is_empty());
    assert!(matches!(&app.popup, Some(Popup::NewRequest(f)) if f.error.as_ref().unwrap().0 == 1));
    app.on_key(&KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    press(&mut app, "qqq");
    app.on_key(&key(KeyCode::Tab));
    app.on_key(&key(KeyCode::Backspace));
    press(&mut app, "1");
    app.on_key(&key(KeyCode::Tab));
    press(&mut app, "target_dte=7 rights=P");
    app.on_key(&key(KeyCode::Enter));
    match commands(&mut app).as_slice() {
        [Command::Enqueue(r)] => {
            assert_eq!(r.symbol, "QQQ");
            assert_eq!(r.priority, Priority::IMMEDIATE);
            assert_eq!(r.changed_by, crate::queue::Actor::Operator);
            assert_eq!(r.parameters["rights"], "P");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn promote_and_demote_legs() {
    let mut app = app(1);
    press(&mut app, "p756733 iron condor");
    app.on_key(&key(KeyCode::Enter));
    assert!(matches!(commands(&mut app).as_slice(),
        [Command::Promote { conid: 756733, strategy: Some(s) }] if s == "iron condor"));
    press(&mut app, "d");
    assert!(app.status.as_ref().unwrap().text.contains("legs pane"));
    press(&mut app, "4j d");
    assert!(matches!(app.popup, Some(Popup::Confirm(_))));
    press(&mut app, "y");
    assert!(matches!(commands(&mut app).as_slice(), [Command::Demote(v)] if v == &vec![756734]));
}

#[test]
fn pause_toggles_by_the_worker_state_and_panes_switch() {
    let mut app = app(1);
    press(&mut app, "P");
    assert!(matches!(
        commands(&mut app).as_slice(),
        [Command::PauseWorker]
    ));
    let mut s = (*app.snap).clone();
    s.worker.paused = true;
    app.set_snapshot(std::sync::Arc::new(s));
    press(&mut app, "P");
    assert!(matches!(
        commands(&mut app).as_slice(),
        [Command::ResumeWorker]
    ));
    app.on_key(&key(KeyCode::Tab));
    assert_eq!(app.focus, PaneId::Processing);
    app.on_key(&key(KeyCode::BackTab));
    app.on_key(&key(KeyCode::BackTab));
    assert_eq!(app.focus, PaneId::Actions);
    app.on_key(&key(KeyCode::BackTab));
    assert_eq!(app.focus, PaneId::Done);
    app.on_key(&key(KeyCode::BackTab));
    assert_eq!(app.focus, PaneId::Schedule);
    press(&mut app, "C");
    press(&mut app, "y");
    assert!(matches!(
        commands(&mut app).as_slice(),
        [Command::Reconnect]
    ));
}

#[test]
fn selection_stays_on_its_request_when_rows_move() {
    let mut app = app(10);
    press(&mut app, "jjj");
    let id = app.pending.selected(&app.snap).unwrap().request_id;
    let mut s = (*app.snap).clone();
    let mut rows = s.pending.to_vec();
    rows.rotate_right(2);
    s.pending = rows.into();
    app.set_snapshot(std::sync::Arc::new(s));
    assert_eq!(app.pending.selected(&app.snap).unwrap().request_id, id);
    assert_eq!(app.pending.cursor.selected, 5);
}

#[test]
fn a_request_held_for_its_window_says_when_it_runs() {
    use crate::queue::model::During;
    let mut snap = crate::console::sample::snapshot(3);
    let mut pending: Vec<_> = snap.pending.iter().map(|r| (**r).clone()).collect();
    // 08:00 New York; the regular session opens at 09:30 (14:30 UTC).
    let now: chrono::DateTime<chrono::Utc> = "2026-11-23T13:00:00Z".parse().unwrap();
    pending[0].during = During::Regular;
    pending[0].event = crate::queue::Event::Held;
    pending[0].next_attempt_at = Some("2026-11-23T14:30:00Z".parse().unwrap());
    snap.pending = pending.into_iter().map(std::sync::Arc::new).collect();
    let mut app = super::app_with(snap, false);
    app.now = now;
    app.focus = PaneId::Pending;
    let pane = super::screen(&app, 120, 30);
    assert!(pane.contains("waits for 09:30 ET"), "{pane}");
    app.on_key(&super::key(KeyCode::Enter));
    let detail = super::screen(&app, 120, 40);
    assert!(detail.contains("waits for 09:30 ET"), "{detail}");
    assert!(detail.contains("regular"), "{detail}");
}

#[test]
fn the_failed_pane_groups_by_cause_expands_and_marks_whole_groups() {
    let mut app = app(10);
    let total = app.snap.failed.len();
    let causes: std::collections::HashSet<String> = app
        .snap
        .failed
        .iter()
        .map(|r| crate::console::causes::cause_of(r))
        .collect();
    assert!(causes.len() < total, "the sample repeats a cause");
    // Grouping is for the failed pane only.
    press(&mut app, "z");
    assert!(!app.pending.is_grouped());
    assert!(app.status.as_ref().unwrap().text.contains("does nothing"));
    press(&mut app, "3z");
    assert!(app.failed.is_grouped());
    assert_eq!(
        app.failed.len(&app.snap),
        causes.len(),
        "one line per cause"
    );
    // enter on a group shows its rows under it, and again hides them.
    let first = app.failed.targets(&app.snap);
    assert!(first.len() > 1, "the largest group is first: {first:?}");
    app.on_key(&key(KeyCode::Enter));
    assert!(app.popup.is_none(), "enter on a group expands, no details");
    assert_eq!(app.failed.len(&app.snap), causes.len() + first.len());
    app.on_key(&key(KeyCode::Enter));
    assert_eq!(app.failed.len(&app.snap), causes.len());
    // Marking a group marks all its rows; a dismissal then takes them all.
    press(&mut app, " ");
    let mut marked: Vec<_> = app.failed.marks.iter().copied().collect();
    marked.sort();
    let mut want = first.clone();
    want.sort();
    assert_eq!(marked, want);
    press(&mut app, "X");
    app.on_key(&key(KeyCode::Enter));
    press(&mut app, "y");
    match commands(&mut app).as_slice() {
        [Command::Dismiss(got, _)] => assert_eq!(got, &want),
        other => panic!("{other:?}"),
    }
    // Back to one line per request.
    press(&mut app, "z");
    assert_eq!(app.failed.len(&app.snap), total);
}

#[test]
fn y_copies_ids_or_conids_and_capital_y_the_show_commands() {
    let mut app = app(10);
    press(&mut app, "y");
    let first = app.snap.pending[0].request_id.to_string();
    assert_eq!(app.take_clipboard().as_deref(), Some(first.as_str()));
    // Marked rows, one per line.
    press(&mut app, "  y");
    let text = app.take_clipboard().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines.iter().all(|l| uuid::Uuid::parse_str(l).is_ok()),
        "{text}"
    );
    press(&mut app, "Y");
    let text = app.take_clipboard().unwrap();
    assert!(
        text.lines().all(|l| l.starts_with("ibq show ")) && text.lines().count() == 2,
        "{text}"
    );
    // The legs pane copies conids.
    press(&mut app, "4y");
    let text = app.take_clipboard().unwrap();
    assert!(text.parse::<i32>().is_ok(), "{text}");
    press(&mut app, "Y");
    assert!(app.take_clipboard().is_none());
    assert!(app.status.as_ref().unwrap().text.contains("request panes"));
}
