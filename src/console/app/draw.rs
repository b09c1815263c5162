//! Drawing the whole screen from the snapshot and the UI state: the panes (all at once on a
//! large terminal, else one behind tabs), the alert and status lines, the popup on top.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{scrub, App, PaneId, Popup, StatusKind};
use crate::console::keymap::{Action, Context};
use crate::console::panes::header::{draw_gauge, draw_header};
use crate::console::panes::Component;

impl App {
    /// Whether there is room for every pane at once.
    pub fn is_large(area: Rect) -> bool {
        area.width >= 120 && area.height >= 36
    }

    /// The whole screen, from the snapshot and this state only.
    pub fn draw(&self, frame: &mut Frame) {
        let view = self.view();
        let theme = self.theme;
        let area = frame.area();
        let alerts: Vec<String> = self
            .snap
            .alert
            .iter()
            .cloned()
            .chain(self.alerts.iter().cloned())
            .collect();
        let [header, gauge, main, alert, status] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(1),
            Constraint::Min(5),
            Constraint::Length(alerts.len().min(1) as u16),
            Constraint::Length(1),
        ])
        .areas(area);
        draw_header(frame, header, &view);
        draw_gauge(frame, gauge, &view);
        if Self::is_large(area) {
            // Legs across the whole width, as tall as they need (within 40%): their
            // contracts, strategies and states are what get cut in a column.
            let legs_height = (self.snap.legs.len() as u16 + 3)
                .max(5)
                .min(main.height * 2 / 5);
            let [top, l] = Layout::vertical([Constraint::Min(10), Constraint::Length(legs_height)])
                .areas(main);
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(56), Constraint::Percentage(44)])
                    .areas(top);
            // The wide column holds what has long text (parameters, errors, the day's
            // outcomes); the narrow one the processing requests and the logs.
            let jobs_height = (self.snap.jobs.len() as u16 + 3)
                .max(5)
                .min(left.height / 3);
            let [p, f, s] = Layout::vertical([
                Constraint::Percentage(60),
                Constraint::Percentage(40),
                Constraint::Length(jobs_height),
            ])
            .areas(left);
            let [r, g] = Layout::vertical([Constraint::Percentage(30), Constraint::Percentage(70)])
                .areas(right);
            self.pending
                .draw(frame, p, &view, self.focus == PaneId::Pending);
            self.processing
                .draw(frame, r, &view, self.focus == PaneId::Processing);
            self.failed
                .draw(frame, f, &view, self.focus == PaneId::Failed);
            self.legs.draw(frame, l, &view, self.focus == PaneId::Legs);
            // Logs, done and actions share a place: the one focused last shows.
            let side: &dyn Component = match self.side_shown() {
                PaneId::Done => &self.done,
                PaneId::Actions => &self.actions,
                _ => &self.logs,
            };
            side.draw(frame, g, &view, self.focus == self.side_shown());
            self.schedule
                .draw(frame, s, &view, self.focus == PaneId::Schedule);
        } else {
            let [tabs, body] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(main);
            self.draw_tabs(frame, tabs);
            let c: &dyn Component = match self.focus {
                PaneId::Pending => &self.pending,
                PaneId::Processing => &self.processing,
                PaneId::Failed => &self.failed,
                PaneId::Legs => &self.legs,
                PaneId::Logs => &self.logs,
                PaneId::Schedule => &self.schedule,
                PaneId::Done => &self.done,
                PaneId::Actions => &self.actions,
            };
            c.draw(frame, body, &view, true);
        }
        if let Some(a) = alerts.first() {
            let more = if alerts.len() > 1 {
                format!(" (+{} more)", alerts.len() - 1)
            } else {
                String::new()
            };
            frame.render_widget(
                Paragraph::new(Line::styled(
                    format!("⚠ {}{more}", crate::text::Clean(a)),
                    theme.error(),
                )),
                alert,
            );
        }
        match &self.cmdline {
            Some(line) => line.draw_line(frame, status, theme, &self.cmdline_hint()),
            None => self.draw_status(frame, status),
        }
        self.draw_popup(frame, main);
        if let Some(line) = &self.cmdline {
            line.draw_menu(frame, main, theme);
        }
        scrub(frame.buffer_mut());
    }

    fn draw_tabs(&self, frame: &mut Frame, area: Rect) {
        let theme = self.theme;
        let snap = &self.snap;
        let tabs = |short: bool| -> Vec<(PaneId, String, Option<usize>)> {
            PaneId::ALL
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let n = match p {
                        PaneId::Pending => Some(snap.pending.len()),
                        PaneId::Processing => Some(snap.processing.len()),
                        PaneId::Failed => Some(snap.failed.len()),
                        PaneId::Legs => Some(snap.legs.len()),
                        PaneId::Logs => None,
                        PaneId::Schedule => Some(snap.jobs.len()),
                        // The header counts the successes; what the pane holds is its list.
                        PaneId::Done | PaneId::Actions => None,
                    };
                    let title = if short { p.short() } else { p.title() };
                    let text = match n {
                        Some(n) => format!(" {} {title} {} ", i + 1, crate::console::fmt::count(n)),
                        None => format!(" {} {title} ", i + 1),
                    };
                    (*p, text, n)
                })
                .collect()
        };
        let width = |t: &[(PaneId, String, Option<usize>)], gap: usize| {
            t.iter()
                .map(|(_, s, _)| s.chars().count() + gap)
                .sum::<usize>()
        };
        // Titles shorten (`Proc`, `Sched`), then the gaps between tabs go, rather than the
        // last tabs fall off the edge.
        let mut all = tabs(false);
        let mut gap = 1;
        if width(&all, gap) > area.width as usize {
            all = tabs(true);
        }
        if width(&all, gap) > area.width as usize {
            gap = 0;
        }
        let mut spans = Vec::new();
        for (p, text, n) in all {
            let mut style = if p == PaneId::Failed && n.unwrap_or(0) > 0 {
                theme.failed_row()
            } else {
                ratatui::style::Style::default()
            };
            if p == self.focus {
                style = style.patch(theme.selected()).patch(theme.title());
            }
            spans.push(Span::styled(text, style));
            spans.push(Span::raw(" ".repeat(gap)));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
    }

    /// The keys bound to `action` where `pane` has focus: its own context first, then
    /// global; `None` when unbound.
    fn pane_keys(&self, pane: PaneId, action: Action) -> Option<String> {
        [pane.context(), Context::Global]
            .into_iter()
            .map(|c| self.keys(c, action))
            .find(|k| k != "(unbound)")
    }

    /// The focused pane's main keys, as bound: `x cancel · alt-1 priority 1 · …`.
    pub fn footer_hints(&self, pane: PaneId) -> Vec<String> {
        use Action::*;
        let items: &[(Action, &str)] = match pane {
            PaneId::Pending => &[
                (Details, "details"),
                (Cancel, "cancel"),
                (Priority1, "priority 1"),
                (Mark, "mark"),
                (Filter, "filter"),
                (NewRequest, "new"),
                (CancelAllPending, "cancel all"),
                (RangeSelect, "range"),
                (SelectAll, "mark all"),
                (SortNext, "sort"),
            ],
            PaneId::Processing => &[
                (Details, "details"),
                (Release, "release"),
                (TogglePause, "pause"),
                (Filter, "filter"),
                (SortNext, "sort"),
                (NewRequest, "new"),
            ],
            PaneId::Failed => &[
                (Retry, "retry"),
                (RetryAllFailed, "retry all"),
                (Details, "details"),
                (Priority1, "priority 1"),
                (Mark, "mark"),
                (Filter, "filter"),
                (DismissFailure, "dismiss"),
                (DismissAllFailed, "dismiss all"),
                (ToggleGroups, "by cause"),
                (SortNext, "sort"),
            ],
            PaneId::Legs => &[
                (Details, "details"),
                (Promote, "promote"),
                (Demote, "demote"),
                (Mark, "mark"),
            ],
            PaneId::Logs => &[
                (CycleLogLevel, "level"),
                (ToggleFollow, "follow"),
                (Details, "details"),
                (Filter, "filter"),
            ],
            PaneId::Schedule => &[(Details, "day"), (RunJobNow, "run now")],
            PaneId::Done => &[(Details, "details"), (Filter, "filter"), (Copy, "copy id")],
            PaneId::Actions => &[(Details, "details"), (Filter, "filter"), (Copy, "copy ids")],
        };
        // Every pane ends with the command line, shown where there is room.
        items
            .iter()
            .chain(&[(CommandLine, "command")])
            .filter_map(|(a, label)| Some(format!("{} {label}", self.pane_keys(pane, *a)?)))
            .collect()
    }

    fn draw_status(&self, frame: &mut Frame, area: Rect) {
        let theme = self.theme;
        let mut hint = format!(
            "{} help · {} quit ",
            self.keys(Context::Global, Action::Help),
            self.keys(Context::Global, Action::Quit)
        );
        // A message the row cannot hold beside the hint takes the whole row.
        let text_width = self
            .status
            .as_ref()
            .map_or(0, |s| s.text.chars().count() + 2);
        if text_width + hint.chars().count() + 1 > area.width as usize {
            hint.clear();
        }
        let [left, _, right] = Layout::horizontal([
            Constraint::Min(10),
            Constraint::Length(1),
            Constraint::Length(hint.chars().count() as u16),
        ])
        .areas(area);
        let room = left.width as usize;
        let line = match &self.status {
            Some(s) => {
                let (mark, style) = match s.kind {
                    StatusKind::Info => ("· ", ratatui::style::Style::default()),
                    StatusKind::Done => ("✔ ", theme.ok()),
                    StatusKind::Refused => ("✖ ", theme.error()),
                };
                Line::from(vec![
                    Span::styled(mark, style),
                    // Replies and refusals may quote a row or the gateway: cleaned and cut.
                    Span::styled(
                        crate::console::fmt::cut(&s.text, room.saturating_sub(2)),
                        style,
                    ),
                ])
            }
            None => {
                // Whole hints only, as many as fit: never a key cut from its word.
                let mut text = String::new();
                for h in self.footer_hints(self.focus) {
                    let sep = if text.is_empty() { "" } else { " · " };
                    if text.chars().count() + sep.chars().count() + h.chars().count() > room {
                        break;
                    }
                    text.push_str(sep);
                    text.push_str(&h);
                }
                Line::styled(text, theme.dim())
            }
        };
        frame.render_widget(Paragraph::new(line), left);
        frame.render_widget(Paragraph::new(Line::styled(hint, theme.dim())), right);
    }

    fn draw_popup(&self, frame: &mut Frame, area: Rect) {
        let Some(popup) = &self.popup else {
            return;
        };
        let theme = self.theme;
        let pk = |a| self.keys(Context::Prompt, a);
        let gk = |a| self.keys(Context::Global, a);
        let scroll_hint = format!(
            "{}/{} scroll · {} close",
            gk(Action::MoveDown),
            gk(Action::MoveUp),
            gk(Action::Dismiss)
        );
        match popup {
            Popup::Confirm(c) => c.draw(
                frame,
                area,
                theme,
                &pk(Action::Confirm),
                &pk(Action::Dismiss),
            ),
            Popup::Detail(d) => d.draw(frame, area, &self.view(), &scroll_hint),
            Popup::Help(h) => h.draw(frame, area, &self.keymap, theme, &scroll_hint),
            Popup::Prompt(p) => p.draw(
                frame,
                area,
                theme,
                &format!(
                    "{} accept · {} cancel",
                    pk(Action::Submit),
                    pk(Action::Dismiss)
                ),
            ),
            Popup::NewRequest(f) => f.draw(
                frame,
                area,
                theme,
                &format!(
                    "tab next field · {} send · {} cancel",
                    pk(Action::Submit),
                    pk(Action::Dismiss)
                ),
            ),
        }
    }
}
