//! The queue pane's marks, order and title on sample snapshots.

use super::*;
use crate::console::sample;
use crate::console::theme::Theme;
use crate::engine::Snapshot;

fn view(snap: &Snapshot) -> View<'_> {
    View {
        snap,
        now: sample::t0(),
        theme: Theme::new(false),
        stale_after: chrono::Duration::seconds(30),
    }
}

fn pane(kind: QueueKind, snap: &Snapshot) -> QueuePane {
    let mut p = QueuePane::new(kind);
    p.sync(snap);
    p
}

fn press(p: &mut QueuePane, snap: &Snapshot, actions: &[Action]) {
    for a in actions {
        p.handle(*a, &view(snap));
    }
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[test]
fn select_all_marks_exactly_the_rows_the_filter_shows() {
    let snap = sample::snapshot(40);
    let mut p = pane(QueueKind::Pending, &snap);
    p.set_filter("symbol:qqq", &snap);
    let qqq: Vec<Uuid> = snap
        .pending
        .iter()
        .filter(|r| r.symbol == "QQQ")
        .map(|r| r.request_id)
        .collect();
    assert!(!qqq.is_empty() && qqq.len() < snap.pending.len());
    assert_eq!(p.select_all(&snap), qqq.len());
    assert_eq!(sorted(p.targets(&snap)), sorted(qqq.clone()));
    // Without a filter: every row of the pane.
    p.set_filter("", &snap);
    assert_eq!(p.select_all(&snap), snap.pending.len());
}

#[test]
fn invert_flips_the_shown_rows_and_leaves_hidden_marks_alone() {
    let snap = sample::snapshot(10);
    let mut p = pane(QueueKind::Pending, &snap);
    // Mark the first two rows.
    press(&mut p, &snap, &[Action::Mark, Action::Mark]);
    let first_two: Vec<Uuid> = snap.pending[..2].iter().map(|r| r.request_id).collect();
    assert_eq!(sorted(p.targets(&snap)), sorted(first_two.clone()));
    assert_eq!(p.invert_marks(&snap), 8);
    assert!(first_two.iter().all(|id| !p.marks.contains(id)));
    assert_eq!(p.invert_marks(&snap), 2, "twice is the start again");
    // Under a filter, a marked row it hides stays marked.
    let hidden = first_two[0];
    let symbol = &snap.pending[0].symbol;
    p.set_filter(&format!("!symbol:{symbol}"), &snap);
    assert!(!p.shown_ids(&snap).contains(&hidden));
    p.invert_marks(&snap);
    assert!(p.marks.contains(&hidden), "a hidden mark is kept");
}

#[test]
fn a_range_marks_from_its_anchor_to_the_cursor_and_esc_drops_it() {
    let snap = sample::snapshot(10);
    let mut p = pane(QueueKind::Pending, &snap);
    let ids: Vec<Uuid> = snap.pending.iter().map(|r| r.request_id).collect();
    // A mark made before the range stays.
    press(&mut p, &snap, &[Action::Mark]);
    press(&mut p, &snap, &[Action::MoveDown]);
    assert!(p.toggle_range(&snap), "a range starts at row 2");
    press(&mut p, &snap, &[Action::MoveDown, Action::MoveDown]);
    assert_eq!(
        sorted(p.targets(&snap)),
        sorted(vec![ids[0], ids[2], ids[3], ids[4]]),
        "row 0 and rows 2–4"
    );
    assert!(!p.marks.contains(&ids[1]));
    // Moving back above the anchor marks the other way.
    press(&mut p, &snap, &[Action::Top]);
    assert_eq!(
        sorted(p.targets(&snap)),
        sorted(vec![ids[0], ids[1], ids[2]])
    );
    assert!(p.cancel_range());
    assert_eq!(
        p.targets(&snap),
        vec![ids[0]],
        "esc: the marks before the range"
    );
    // `v` again keeps the range.
    press(&mut p, &snap, &[Action::Bottom]);
    assert!(p.toggle_range(&snap));
    press(&mut p, &snap, &[Action::MoveUp]);
    assert!(!p.toggle_range(&snap), "ends the range");
    assert!(!p.is_marking_range());
    assert_eq!(
        sorted(p.targets(&snap)),
        sorted(vec![ids[0], ids[8], ids[9]])
    );
}

#[test]
fn a_range_over_group_lines_marks_every_row_of_each_group() {
    let snap = sample::snapshot(10);
    let mut p = pane(QueueKind::Failed, &snap);
    p.set_grouped(true, &snap);
    assert!(p.len(&snap) >= 2, "the sample has two causes or more");
    p.toggle_range(&snap);
    press(&mut p, &snap, &[Action::Bottom]);
    assert_eq!(p.marks.len(), snap.failed.len(), "every line, every row");
}

#[test]
fn sorting_keeps_the_cursor_on_its_request() {
    let snap = sample::snapshot(30);
    let mut p = pane(QueueKind::Pending, &snap);
    press(
        &mut p,
        &snap,
        &[Action::MoveDown, Action::MoveDown, Action::MoveDown],
    );
    let id = p.selected(&snap).unwrap().request_id;
    let by_symbol = Sort {
        column: Some(Column::Symbol),
        reverse: false,
    };
    p.set_sort(by_symbol, &snap);
    assert_eq!(p.selected(&snap).unwrap().request_id, id);
    let shown: Vec<&str> = (0..p.len(&snap))
        .map(|i| p.get(&snap, i).unwrap().symbol.as_str())
        .collect();
    let mut want = shown.clone();
    want.sort();
    assert_eq!(shown, want);
    // The filter and the sort together: only the matches, sorted.
    p.set_filter("type:option_chain", &snap);
    p.set_sort(by_symbol.reversed(), &snap);
    let shown: Vec<&Arc<Request>> = (0..p.len(&snap))
        .map(|i| p.get(&snap, i).unwrap())
        .collect();
    assert!(shown
        .iter()
        .all(|r| r.request_type.as_str() == "option_chain"));
    assert!(shown.windows(2).all(|w| w[0].symbol >= w[1].symbol));
    // Back to the order of service.
    p.set_filter("", &snap);
    p.set_sort(Sort::default(), &snap);
    let service: Vec<Uuid> = snap.pending.iter().map(|r| r.request_id).collect();
    assert_eq!(p.shown_ids(&snap), service);
}

#[test]
fn the_title_names_the_filter_the_sort_and_the_window() {
    let snap = sample::snapshot(10);
    let mut p = pane(QueueKind::Failed, &snap);
    assert_eq!(p.title(812, 11..40, 80), "Failed · 12–40 of 812");
    p.set_filter("code:354", &snap);
    assert_eq!(p.title(812, 11..40, 80), "Failed · code:354 · 12–40 of 812");
    p.set_sort(Sort::default().next(QueueKind::Failed).reversed(), &snap);
    assert_eq!(
        p.title(1200, 0..20, 80),
        "Failed · code:354 · P ▼ · 1–20 of 1,200"
    );
    // A long filter gives way, the window never.
    p.set_filter("param.target_dte:30 !symbol:spy type:option_chain", &snap);
    let t = p.title(812, 11..40, 40);
    assert!(t.ends_with("12–40 of 812") && t.contains('…'), "{t}");
    assert!(t.chars().count() <= 40, "{t}");
    assert_eq!(p.title(0, 0..0, 80).rsplit(" · ").next(), Some("no match"));
    p.set_grouped(true, &snap);
    assert!(p.title(3, 0..3, 80).starts_with("Failed · by cause · "));
}
