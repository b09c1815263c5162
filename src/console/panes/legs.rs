//! Active legs: contract, strategy, the latest quote, how old the last tick is, state.

use std::collections::HashSet;

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{pane_block, Component, Handled, View};
use crate::console::cursor::Cursor;
use crate::console::fmt;
use crate::console::keymap::Action;
use crate::engine::{LegState, LegView};

/// `SPY 20261218 450 C`, or just the symbol for a stock or future without strike.
pub fn describe(leg: &LegView) -> String {
    let mut out = leg.symbol.clone();
    if let Some(e) = &leg.expiry {
        out.push(' ');
        out.push_str(e);
    }
    if let Some(k) = leg.strike {
        out.push(' ');
        out.push_str(&fmt::qty(k));
    }
    if let Some(r) = &leg.right {
        out.push(' ');
        out.push_str(r);
    }
    if leg.expiry.is_none() && leg.strike.is_none() && !leg.sec_type.is_empty() {
        out.push_str(&format!(" ({})", leg.sec_type));
    }
    out
}

/// The age of the last tick, `stale` past the threshold, and whether it is stale.
pub fn tick_age(leg: &LegView, view: &View) -> (String, bool) {
    match leg.last_tick_at {
        None => ("no tick".into(), matches!(leg.state, LegState::Streaming)),
        Some(t) => {
            let stale = view.now - t > view.stale_after;
            let age = fmt::age(view.now, t);
            if stale {
                (format!("stale {age}"), true)
            } else {
                (age, false)
            }
        }
    }
}

pub fn state_text(state: &LegState) -> String {
    match state {
        LegState::Subscribing => "subscribing".into(),
        LegState::Streaming => "streaming".into(),
        LegState::Stalled { reason } => format!("stalled: {reason}"),
    }
}

#[derive(Default)]
pub struct LegsPane {
    pub cursor: Cursor,
    pub marks: HashSet<i32>,
}

impl LegsPane {
    pub fn selected<'a>(&self, view: &View<'a>) -> Option<&'a LegView> {
        view.snap.legs.get(self.cursor.selected)
    }

    /// The conids an action applies to: the marked legs if any, else the selected one.
    pub fn targets(&self, view: &View) -> Vec<i32> {
        if !self.marks.is_empty() {
            let mut v: Vec<i32> = self.marks.iter().copied().collect();
            v.sort();
            v
        } else {
            self.selected(view).map(|l| l.conid).into_iter().collect()
        }
    }

    pub fn sync(&mut self, view: &View) {
        let legs = &view.snap.legs;
        self.marks.retain(|c| legs.iter().any(|l| l.conid == *c));
        self.cursor.clamp(legs.len());
    }
}

impl Component for LegsPane {
    fn draw(&self, frame: &mut Frame, area: Rect, view: &View, focused: bool) {
        let theme = view.theme;
        let legs = &view.snap.legs;
        let stale = legs.iter().filter(|l| tick_age(l, view).1).count();
        let mut note = format!("{} legs", legs.len());
        if stale > 0 {
            note.push_str(&format!(" · {stale} stale"));
        }
        let block = pane_block(theme, 4, "Legs", note, focused);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if legs.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled(
                    "no active legs (p promotes a contract)",
                    theme.dim(),
                )),
                inner,
            );
            return;
        }
        let window = self
            .cursor
            .window(legs.len(), inner.height.saturating_sub(1) as usize);
        let selected = self.cursor.selected.min(legs.len() - 1);
        let rows: Vec<Row> = window
            .map(|i| {
                let leg = &legs[i];
                let (age, is_stale) = tick_age(leg, view);
                let state = state_text(&leg.state);
                let stalled = matches!(leg.state, LegState::Stalled { .. });
                let mark = if self.marks.contains(&leg.conid) {
                    "*"
                } else {
                    " "
                };
                let mut style = Style::default();
                if self.marks.contains(&leg.conid) {
                    style = style.patch(theme.marked());
                }
                if i == selected && focused {
                    style = style.patch(theme.selected());
                }
                Row::new(vec![
                    Cell::from(mark),
                    Cell::from(leg.conid.to_string()),
                    Cell::from(describe(leg)),
                    Cell::from(leg.strategy.clone().unwrap_or_default()),
                    Cell::from(fmt::price(leg.bid)),
                    Cell::from(fmt::price(leg.ask)),
                    Cell::from(fmt::price(leg.last)),
                    Cell::from(Span::styled(
                        age,
                        if is_stale {
                            theme.warn()
                        } else {
                            Style::default()
                        },
                    )),
                    Cell::from(fmt::qty(leg.quantity)),
                    Cell::from(Span::styled(
                        state,
                        if stalled {
                            theme.error()
                        } else {
                            Style::default()
                        },
                    )),
                ])
                .style(style)
            })
            .collect();
        use Constraint::*;
        let widths = [
            Length(1),
            Length(10),
            Min(14),
            Length(10),
            Length(8),
            Length(8),
            Length(8),
            Length(9),
            Length(5),
            Min(9),
        ];
        let header = Row::new(
            [
                "", "CONID", "CONTRACT", "STRATEGY", "BID", "ASK", "LAST", "TICK", "QTY", "STATE",
            ]
            .map(Cell::from),
        )
        .style(theme.header_row());
        frame.render_widget(
            Table::new(rows, widths).header(header).column_spacing(1),
            inner,
        );
    }

    fn handle(&mut self, action: Action, view: &View) -> Handled {
        let len = view.snap.legs.len();
        if self.cursor.handle(action, len) {
            return Handled::Consumed;
        }
        if action == Action::Mark {
            if let Some(c) = self.selected(view).map(|l| l.conid) {
                if !self.marks.remove(&c) {
                    self.marks.insert(c);
                }
                self.cursor.handle(Action::MoveDown, len);
            }
            return Handled::Consumed;
        }
        Handled::NotConsumed
    }
}
