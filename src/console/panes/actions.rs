//! The actions pane: what operators did, newest first — this console's commands and those
//! other processes (the command line, observer consoles) recorded in
//! `ib_operator_actions` — with who asked, on which requests, and how it ended.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::Frame;
use uuid::Uuid;

use super::list::{draw_table, needs, ListState, TableRow, TableView};
use super::{pane_block, Col, Component, Handled, View};
use crate::console::fmt;
use crate::console::keymap::Action;
use crate::console::theme::Theme;
use crate::engine::{ActionEntry, ActionOutcome, Snapshot};

/// The pane's number: its focus key and tab.
pub const NUMBER: usize = 8;

#[derive(Debug, Default)]
pub struct ActionsPane {
    pub list: ListState<Uuid>,
}

fn id(e: &ActionEntry) -> Uuid {
    e.action_id
}

/// The requests an action named: `1b9d6bcd`, `1b9d6bcd +2`, or nothing.
pub fn requests_text(e: &ActionEntry) -> String {
    match e.request_ids.as_slice() {
        [] => String::new(),
        [one] => one.to_string()[..8].to_string(),
        [first, rest @ ..] => format!("{} +{}", &first.to_string()[..8], rest.len()),
    }
}

/// `applied · retried 2 requests`, `refused · …`, `waiting`.
pub fn outcome_text(o: &ActionOutcome) -> String {
    match o.message() {
        "" => o.as_str().to_string(),
        m => format!("{} · {}", o.as_str(), m),
    }
}

pub fn outcome_style(theme: Theme, o: &ActionOutcome) -> Style {
    match o {
        ActionOutcome::Applied { .. } => theme.ok(),
        ActionOutcome::Refused { .. } => theme.error(),
        ActionOutcome::Waiting => theme.warn(),
    }
}

fn matches(e: &ActionEntry, filter: &str) -> bool {
    let text = format!(
        "{} {} {} {} {}",
        e.summary(),
        e.requested_by,
        outcome_text(&e.outcome),
        e.action,
        e.request_ids
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    )
    .to_lowercase();
    filter.split_whitespace().all(|t| text.contains(t))
}

impl ActionsPane {
    pub fn sync(&mut self, snap: &Snapshot) {
        self.list.sync(&snap.actions, id, matches);
    }

    pub fn set_filter(&mut self, text: &str, snap: &Snapshot) {
        self.list.set_filter(text, &snap.actions, id, matches);
    }

    pub fn selected<'a>(&self, snap: &'a Snapshot) -> Option<&'a ActionEntry> {
        self.list
            .selected(snap.actions.len())
            .map(|j| &snap.actions[j])
    }
}

const HEADER: [&str; 5] = ["AT ET", "WHAT", "REQUESTS", "BY", "OUTCOME"];

impl Component for ActionsPane {
    fn draw(&self, frame: &mut Frame, area: Rect, view: &View, focused: bool) {
        let theme = view.theme;
        let snap = view.snap;
        let total = snap.actions.len();
        let refused = snap
            .actions
            .iter()
            .filter(|e| matches!(e.outcome, ActionOutcome::Refused { .. }))
            .count();
        let mut note = self.list.note(fmt::count(total));
        if refused > 0 {
            note.push_str(&format!(" · {refused} refused"));
        }
        let block = pane_block(theme, NUMBER, "Actions", note, focused);
        let empty = "no operator action yet · : opens the command line";
        let Some((inner, window)) = self.list.frame(frame, area, block, total, empty, theme) else {
            return;
        };
        let selected = self.list.cursor.selected - window.start;
        let rows: Vec<TableRow> = window
            .filter_map(|i| self.list.index(i, total))
            .map(|j| {
                let e = &snap.actions[j];
                TableRow {
                    cells: vec![
                        (
                            fmt::et(e.asked_at, view.now)
                                .trim_end_matches(" ET")
                                .to_string(),
                            theme.dim(),
                        ),
                        (fmt::ext(&e.summary()), Style::default()),
                        (requests_text(e), Style::default()),
                        // `console pid 4242` → `console 4242`: the detail has it whole.
                        (
                            fmt::ext(&e.requested_by.replacen(" pid ", " ", 1)),
                            theme.dim(),
                        ),
                        (
                            fmt::ext(&outcome_text(&e.outcome)),
                            outcome_style(theme, &e.outcome),
                        ),
                    ],
                    style: Style::default(),
                }
            })
            .collect();
        let need = needs(&HEADER, &rows);
        // The outcome's message gives way first, then what was done (a conid in it stays
        // whole: `promote 756733 (SP…`); in a narrow pane who asked, then which requests,
        // leave (the detail has both).
        let cols = vec![
            Col::whole(need[0]),
            Col::text(need[1], 20),
            Col::whole(need[2]),
            Col::text(need[3], 8),
            Col::text(need[4], 7),
        ];
        let width = inner.width;
        let keep = [true, true, width >= 70, width >= 84, true];
        let table = TableView {
            header: HEADER.to_vec(),
            cols,
            rows,
            selected: Some(selected),
        };
        draw_table(frame, inner, theme, table.keep(&keep), focused);
    }

    fn handle(&mut self, action: Action, view: &View) -> Handled {
        if self.list.handle(action, &view.snap.actions, id) {
            Handled::Consumed
        } else {
            Handled::NotConsumed
        }
    }
}

/// The detail view of one action: every field, each request id whole, the outcome's
/// message in full.
pub fn detail_lines<'a>(e: &ActionEntry, view: &View) -> Vec<Line<'a>> {
    let theme = view.theme;
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:>15}  "), theme.title()),
            Span::raw(fmt::ext(&v)),
        ])
    };
    let mut out = vec![
        kv("what", e.summary()),
        kv("action", e.action.clone()),
        kv("asked by", e.requested_by.clone()),
        kv(
            "asked at",
            format!(
                "{} ({} ago)",
                fmt::utc_and_et(e.asked_at),
                fmt::age(view.now, e.asked_at)
            ),
        ),
        Line::from(vec![
            Span::styled(format!("{:>15}  ", "outcome"), theme.title()),
            Span::styled(
                e.outcome.as_str().to_string(),
                outcome_style(theme, &e.outcome),
            ),
        ]),
    ];
    if let Some(at) = e.outcome.answered_at() {
        out.push(kv("answered at", fmt::utc_and_et(at)));
    }
    if !e.outcome.message().is_empty() {
        out.push(kv("message", e.outcome.message().to_string()));
    }
    out.push(kv("action_id", e.action_id.to_string()));
    match e.request_ids.as_slice() {
        [] => out.push(kv("requests", "-".into())),
        ids => {
            for (i, r) in ids.iter().enumerate() {
                out.push(kv(if i == 0 { "requests" } else { "" }, r.to_string()));
            }
        }
    }
    if !e.argument.is_null() {
        out.push(kv(
            "argument",
            serde_json::to_string(&e.argument).unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    #[test]
    fn an_action_names_its_requests_and_how_it_ended() {
        let actions = sample::actions(sample::t0());
        let retry = actions.iter().find(|e| e.action == "retry").unwrap();
        assert_eq!(requests_text(retry), "1b9d0000 +1");
        assert_eq!(outcome_text(&retry.outcome), "applied · retried 2 requests");
        let pause = actions.iter().find(|e| e.action == "pause_worker").unwrap();
        assert_eq!(requests_text(pause), "");
        assert_eq!(outcome_text(&pause.outcome), "waiting");
        assert!(matches(retry, "console retried"));
        assert!(matches(retry, "1b9d0000-0000-4000-8000-0000001e8481"));
        assert!(!matches(retry, "refused"));
    }
}
