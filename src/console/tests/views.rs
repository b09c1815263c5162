//! Pictures of the `:` line (with its completion menu, and a refusal), the done and
//! actions panes and an action's detail, at 80x24, 120x40 and 200x60 (`snap_all`).

use crossterm::event::KeyCode;

use super::render::snap_all;
use super::*;

#[test]
fn command_line_completing_an_id() {
    let mut app = app(5);
    press(&mut app, ":retry ");
    app.on_key(&key(KeyCode::Tab));
    app.on_key(&key(KeyCode::Tab));
    snap_all("cmdline_complete", &mut app);
    let text = screen(&app, 120, 40);
    // The menu names each failed request; the first one is in the line.
    let first = app.snap.failed[0].request_id.to_string();
    assert!(text.contains(&format!(":retry {first}█")), "{text}");
    assert!(text.contains("1 of 4"), "{text}");
    assert!(text.contains("FAILED market_bars"), "{text}");
}

#[test]
fn command_line_refused_in_the_clis_words() {
    let mut app = app(5);
    press(&mut app, ":reprioritize 1b9d");
    app.on_key(&key(KeyCode::Enter));
    snap_all("cmdline_refused", &mut app);
    let last = screen(&app, 120, 40).lines().last().unwrap().to_string();
    assert!(
        last.contains("✖ the following required arguments were not provided: <PRIORITY>"),
        "{last}"
    );
}

#[test]
fn command_line_asks_before_retrying_all() {
    let mut app = app(5);
    press(&mut app, ":retry --all-failed");
    app.on_key(&key(KeyCode::Enter));
    snap_all("cmdline_confirm_retry_all", &mut app);
}

#[test]
fn done_pane() {
    let mut app = app(5);
    press(&mut app, "7");
    snap_all("done", &mut app);
    let text = screen(&app, 200, 60);
    let r = &app.snap.done[0];
    let d = r.result_data.as_ref().unwrap();
    let row = text
        .lines()
        .find(|l| l.contains(&format!("v{}", d["version"])))
        .expect("the newest success");
    for want in [
        r.request_type.as_str(),
        d["table"].as_str().unwrap(),
        &d["rows"].to_string(),
        &crate::console::panes::done::took(d["duration_ms"].as_u64().unwrap()),
    ] {
        assert!(row.contains(want), "`{want}` in {row}");
    }
    assert!(text.contains("latest 25 of 1,240"), "{text}");
}

#[test]
fn actions_pane() {
    let mut app = app(5);
    press(&mut app, "8");
    snap_all("actions", &mut app);
    // On the whole width: what, which requests and how it ended; who asked where the
    // pane is wide enough (the detail always has it).
    let full = screen(&app, 80, 24);
    for want in [
        "retry 2 requests",
        "applied · retried 2 requests",
        "refused · request",
        "waiting",
        "1b9d0000 +1",
    ] {
        assert!(full.contains(want), "`{want}` in\n{full}");
    }
    let large = screen(&app, 200, 60);
    assert!(large.contains("observer 7719"), "{large}");
}

#[test]
fn detail_of_an_action() {
    let mut app = app(5);
    press(&mut app, "8jj");
    app.on_key(&key(KeyCode::Enter));
    snap_all("detail_action", &mut app);
}

#[test]
fn the_new_panes_name_their_keys_and_a_remapped_key_shows_as_bound() {
    for (pane, want) in [('7', "y copy id"), ('8', "y copy ids")] {
        let mut app = app(3);
        press(&mut app, &pane.to_string());
        let footer = screen(&app, 120, 40).lines().last().unwrap().to_string();
        for hint in ["enter details", "/ filter", want, ": command"] {
            assert!(footer.contains(hint), "{pane}: `{hint}` in {footer}");
        }
        assert!(footer.ends_with("? help · q quit"), "{footer}");
    }
    let user = "[global]\ncommand_line = [\"ctrl-k\"]\nfocus_done = [\"alt-7\"]\n";
    let mut app = app(3);
    app.keymap = KeyMap::from_texts(Some((user, std::path::Path::new("keys.toml")))).unwrap();
    app.on_key(&KeyEvent::new(
        KeyCode::Char('7'),
        crossterm::event::KeyModifiers::ALT,
    ));
    assert_eq!(app.focus, crate::console::app::PaneId::Done);
    let footer = screen(&app, 120, 40).lines().last().unwrap().to_string();
    assert!(footer.contains("ctrl-k command"), "{footer}");
    press(&mut app, ":");
    assert!(app.cmdline.is_none(), "`:` is no longer bound");
}
