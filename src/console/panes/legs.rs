//! Active legs: contract, strategy, the latest quote, how old the last tick is, state.

use std::collections::HashSet;

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{pane_block, Col, Component, Handled, View};
use crate::console::cursor::Cursor;
use crate::console::fmt;
use crate::console::keymap::Action;
use crate::engine::{LegState, LegView};

/// `SPY 20261218 450 C`, or just the symbol for a stock or future without strike; cleaned
/// of control characters (the fields come from the registry and the gateway).
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
    fmt::ext(&out)
}

/// `SPY 261218 600C`: the same contract in fewer columns, cleaned like [`describe`].
pub fn describe_compact(leg: &LegView) -> String {
    let mut out = leg.symbol.clone();
    if let Some(e) = &leg.expiry {
        out.push(' ');
        out.push_str(e.get(2..).unwrap_or(e));
    }
    if leg.strike.is_some() || leg.right.is_some() {
        out.push(' ');
    }
    if let Some(k) = leg.strike {
        out.push_str(&fmt::qty(k));
    }
    if let Some(r) = &leg.right {
        out.push_str(r);
    }
    fmt::ext(&out)
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
        LegState::Stalled { reason } => format!("stalled: {}", fmt::ext(reason)),
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
        // Narrow: the contract in its compact form (`SPY 261218 600C`).
        let narrow = inner.width < 100;
        let texts: Vec<[String; 10]> = window
            .clone()
            .map(|i| {
                let leg = &legs[i];
                let (age, _) = tick_age(leg, view);
                [
                    if self.marks.contains(&leg.conid) {
                        "*".into()
                    } else {
                        " ".into()
                    },
                    leg.conid.to_string(),
                    if narrow {
                        describe_compact(leg)
                    } else {
                        describe(leg)
                    },
                    fmt::ext(leg.strategy.as_deref().unwrap_or_default()),
                    fmt::price(leg.bid),
                    fmt::price(leg.ask),
                    fmt::price(leg.last),
                    age,
                    fmt::qty(leg.quantity),
                    state_text(&leg.state),
                ]
            })
            .collect();
        const HEADER: [&str; 10] = [
            "", "CONID", "CONTRACT", "STRATEGY", "BID", "ASK", "LAST", "TICK", "QTY", "STATE",
        ];
        let need = |c: usize| super::need(HEADER[c], texts.iter().map(|t| t[c].as_str()));
        // Ids, prices, ages and sizes are never cut; the state gives way first (down to
        // `streaming`), then the strategy, then the contract.
        let cols = [
            Col::whole(1),
            Col::whole(need(1)),
            Col::text(need(2), 15),
            Col::text(need(3), 8),
            Col::whole(need(4)),
            Col::whole(need(5)),
            Col::whole(need(6)),
            Col::whole(need(7)),
            Col::whole(need(8)),
            Col::text(need(9), 9),
        ];
        let fit = super::share(&cols, inner.width);
        let rows: Vec<Row> = window
            .zip(texts)
            .map(|(i, cells)| {
                let leg = &legs[i];
                let is_stale = tick_age(leg, view).1;
                let stalled = matches!(leg.state, LegState::Stalled { .. });
                let marked = self.marks.contains(&leg.conid);
                let mut style = Style::default();
                if marked {
                    style = style.patch(theme.marked());
                }
                if i == selected && focused {
                    style = style.patch(theme.selected());
                }
                let cells = cells.into_iter().enumerate().map(|(c, text)| {
                    let text = fmt::cut(&text, fit[c] as usize);
                    let style = match c {
                        7 if is_stale => theme.warn(),
                        9 if stalled => theme.error(),
                        _ => Style::default(),
                    };
                    Cell::from(Span::styled(text, style))
                });
                Row::new(cells).style(style)
            })
            .collect();
        let widths: Vec<Constraint> = fit.iter().map(|w| Constraint::Length(*w)).collect();
        let header = Row::new(HEADER.into_iter().map(Cell::from)).style(theme.header_row());
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
