//! The done pane: the latest SUCCESS requests, newest first, each with what it wrote (rows,
//! table, version) and how long its attempt ran; `enter` opens the request's details.

use std::sync::Arc;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::Frame;
use uuid::Uuid;

use super::list::{draw_table, needs, ListState, TableRow, TableView};
use super::{pane_block, Col, Component, Handled, View};
use crate::console::fmt;
use crate::console::keymap::Action;
use crate::engine::Snapshot;
use crate::queue::params::Params;
use crate::queue::Request;

/// The pane's number: its focus key and tab.
pub const NUMBER: usize = 7;

#[derive(Debug, Default)]
pub struct DonePane {
    pub list: ListState<Uuid>,
}

fn id(r: &Arc<Request>) -> Uuid {
    r.request_id
}

fn matches(r: &Arc<Request>, filter: &str) -> bool {
    crate::console::filter::Filter::parse(filter).matches(r)
}

/// `1.4s`, `12s`, `3m` from milliseconds.
pub fn took(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        fmt::span((ms / 1000) as i64)
    }
}

/// What a success wrote, from its `result_data`: rows, table (with a note when it wrote
/// none, e.g. rows found already written), version, and how long its attempt ran.
pub fn written(r: &Request) -> [String; 4] {
    let d = r.result_data.as_ref();
    let get = |k: &str| d.and_then(|d| d.get(k));
    let rows = get("rows")
        .and_then(|v| v.as_u64())
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into());
    let mut table = get("table")
        .and_then(|v| v.as_str())
        .unwrap_or(&r.result_table)
        .to_string();
    if let Some(note) = get("note").and_then(|v| v.as_str()) {
        table = format!("{table}: {note}");
    }
    let version = get("version")
        .and_then(|v| v.as_i64())
        .map(|v| format!("v{v}"))
        .unwrap_or_else(|| "-".into());
    let ran = get("duration_ms")
        .and_then(|v| v.as_u64())
        .map(took)
        .unwrap_or_else(|| "-".into());
    [rows, fmt::ext(&table), version, ran]
}

impl DonePane {
    pub fn sync(&mut self, snap: &Snapshot) {
        self.list.sync(&snap.done, id, matches);
    }

    pub fn set_filter(&mut self, text: &str, snap: &Snapshot) {
        self.list.set_filter(text, &snap.done, id, matches);
    }

    pub fn selected<'a>(&self, snap: &'a Snapshot) -> Option<&'a Arc<Request>> {
        self.list.selected(snap.done.len()).map(|j| &snap.done[j])
    }
}

const HEADER: [&str; 8] = [
    "DONE ET", "TYPE", "SYMBOL", "ROWS", "TABLE", "VER", "TOOK", "PARAMS",
];

impl Component for DonePane {
    fn draw(&self, frame: &mut Frame, area: Rect, view: &View, focused: bool) {
        let theme = view.theme;
        let snap = view.snap;
        let total = snap.done.len();
        let note = self.list.note(format!(
            "latest {} of {}",
            fmt::count(total),
            fmt::count(snap.counts.success.max(total))
        ));
        let block = pane_block(theme, NUMBER, "Done", note, focused);
        let empty = "no request has succeeded yet";
        let Some((inner, window)) = self.list.frame(frame, area, block, total, empty, theme) else {
            return;
        };
        let selected = self.list.cursor.selected - window.start;
        let rows: Vec<TableRow> = window
            .filter_map(|i| self.list.index(i, total))
            .map(|j| {
                let r = &snap.done[j];
                let [rows, table, version, ran] = written(r);
                let params = Params::parse(r.request_type, &r.parameters)
                    .map(|p| p.summary())
                    .unwrap_or_else(|e| format!("invalid: {}", e.message));
                let plain = |t: String| (t, Style::default());
                TableRow {
                    cells: vec![
                        (
                            fmt::et(r.updated_at, view.now)
                                .trim_end_matches(" ET")
                                .to_string(),
                            theme.dim(),
                        ),
                        plain(r.request_type.as_str().to_string()),
                        plain(fmt::ext(&r.symbol)),
                        (rows, theme.ok()),
                        plain(table),
                        plain(version),
                        plain(ran),
                        plain(fmt::ext(&params)),
                    ],
                    style: Style::default(),
                }
            })
            .collect();
        let need = needs(&HEADER, &rows);
        // What and what it wrote are whole; the parameters give way first, then names.
        let cols = vec![
            Col::whole(need[0]),
            Col::text(need[1], 8),
            Col::text(need[2], 6),
            Col::whole(need[3]),
            Col::text(need[4], 10),
            Col::whole(need[5]),
            Col::whole(need[6]),
            Col::text(need[7], 0),
        ];
        // In a narrow pane the table (which the type names) and the parameters leave,
        // so the type shows whole; the detail has both.
        let keep = if inner.width < 70 {
            [true, true, true, true, false, true, true, false]
        } else {
            [true; 8]
        };
        let table = TableView {
            header: HEADER.to_vec(),
            cols,
            rows,
            selected: Some(selected),
        };
        draw_table(frame, inner, theme, table.keep(&keep), focused);
    }

    fn handle(&mut self, action: Action, view: &View) -> Handled {
        if self.list.handle(action, &view.snap.done, id) {
            Handled::Consumed
        } else {
            Handled::NotConsumed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    #[test]
    fn a_success_says_what_it_wrote_and_how_long_it_ran() {
        let snap = sample::snapshot(1);
        let r = &snap.done[0];
        let [rows, table, version, ran] = written(r);
        let d = r.result_data.as_ref().unwrap();
        assert_eq!(rows, d["rows"].to_string());
        assert_eq!(table, d["table"].as_str().unwrap());
        assert_eq!(version, format!("v{}", d["version"]));
        assert_eq!(ran, took(d["duration_ms"].as_u64().unwrap()));
        assert_eq!(took(1_430), "1.4s");
        assert_eq!(took(65_000), "1m");
        // A success from before durations were recorded, and one that found its rows
        // written already, say what they can.
        let mut old = (**r).clone();
        old.result_data =
            Some(serde_json::json!({"table": "market_bars", "note": "rows already written"}));
        assert_eq!(
            written(&old),
            [
                "-".to_string(),
                "market_bars: rows already written".to_string(),
                "-".to_string(),
                "-".to_string()
            ]
        );
    }
}
