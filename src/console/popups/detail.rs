//! The detail view of one row: every column, parameters and result pretty-printed, the
//! error, and (for a request) its whole transition history, fetched without blocking.

use std::sync::Arc;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use uuid::Uuid;

use super::{centered, frame_popup, position};
use crate::console::fmt;
use crate::console::logs::LogLine;
use crate::console::panes::legs::{describe, state_text, tick_age};
use crate::console::panes::View;
use crate::engine::{ActionEntry, JobView, LegView};
use crate::queue::params::{taken_as, Params};
use crate::queue::Request;
use crate::text::Clean;

#[derive(Debug, Clone)]
pub enum History {
    Loading,
    Loaded(Vec<Request>),
    Failed(String),
}

#[derive(Debug, Clone)]
pub enum DetailBody {
    Request {
        request: Arc<Request>,
        history: History,
    },
    Leg(LegView),
    Log(LogLine),
    /// A scheduler job's day: every slot today and how it went.
    JobDay(JobView),
    /// What an operator did (the actions pane).
    Action(ActionEntry),
}

#[derive(Debug, Clone)]
pub struct Detail {
    pub body: DetailBody,
    pub scroll: usize,
    page: std::cell::Cell<usize>,
    /// The width of the last draw: long lines wrap to it, so scrolling counts them.
    width: std::cell::Cell<u16>,
}

/// One `key  value` line. Most values came from outside (the row, the registry, a log
/// field): every value is cleaned of control characters here.
fn kv<'a>(view: &View, k: &str, v: String) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{:>15}  ", Clean(k)), view.theme.title()),
        Span::raw(fmt::ext(&v)),
    ])
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "-".into())
}

fn json_lines<'a>(v: &serde_json::Value) -> Vec<Line<'a>> {
    serde_json::to_string_pretty(v)
        .unwrap_or_else(|_| v.to_string())
        .lines()
        .map(|l| Line::from(format!("    {}", Clean(l))))
        .collect()
}

impl Detail {
    pub fn new(body: DetailBody) -> Self {
        Self {
            body,
            scroll: 0,
            page: std::cell::Cell::new(10),
            width: std::cell::Cell::new(u16::MAX),
        }
    }

    /// The request whose history this view waits for.
    pub fn request_id(&self) -> Option<Uuid> {
        match &self.body {
            DetailBody::Request { request, .. } => Some(request.request_id),
            _ => None,
        }
    }

    pub fn page(&self) -> usize {
        self.page.get()
    }

    fn request_lines<'a>(view: &View, r: &Request, history: &History) -> Vec<Line<'a>> {
        let theme = view.theme;
        let now = view.now;
        let mut out = vec![
            kv(view, "request_id", r.request_id.to_string()),
            kv(view, "type", r.request_type.to_string()),
            kv(view, "symbol", r.symbol.clone()),
            kv(view, "priority", r.priority.to_string()),
            kv(view, "status", r.status.to_string()),
            kv(view, "created_at", stamped(now, r.created_at)),
            kv(view, "updated_at", stamped(now, r.updated_at)),
            kv(
                view,
                "attempts",
                format!("{} ({} failures counted)", r.attempts, r.failures),
            ),
            kv(
                view,
                "next_attempt_at",
                match (r.window_wait(), r.next_attempt_at) {
                    (Some(t), _) => format!(
                        "{} ({})",
                        fmt::utc_and_et(t),
                        crate::market::window::waits_for_text(t, now)
                    ),
                    (None, Some(t)) => format!("{} ({})", fmt::utc_and_et(t), fmt::until(now, t)),
                    (None, None) => "-".into(),
                },
            ),
            kv(
                view,
                "last event",
                format!("{} by {}", r.event.as_str(), r.changed_by.as_str()),
            ),
            kv(view, "seq", opt(&r.seq)),
            kv(
                view,
                "lease",
                match (&r.lease_owner, r.lease_expires_at) {
                    (Some(o), Some(t)) => format!("{o} until {}", fmt::utc_and_et(t)),
                    (Some(o), None) => o.clone(),
                    _ => "-".into(),
                },
            ),
            kv(view, "schedule_key", opt(&r.schedule_key)),
            kv(view, "result_table", r.result_table.clone()),
        ];
        if r.during != crate::queue::model::During::Any {
            out.push(kv(view, "during", r.during.to_string()));
        }
        let summary = Params::parse(r.request_type, &r.parameters)
            .map(|p| p.summary())
            .unwrap_or_else(|e| format!("invalid: {}", e.message));
        out.push(kv(view, "parameters", summary));
        out.extend(json_lines(&r.parameters));
        // The row another program wrote keeps its own parameter text (first in history):
        // name what each old field was taken to mean.
        if let History::Loaded(rows) = history {
            let taken = rows
                .iter()
                .flat_map(|h| {
                    let given = h
                        .result_data
                        .as_ref()
                        .and_then(|d| d.get(crate::queue::state::GIVEN_PARAMETERS));
                    given.into_iter().chain(std::iter::once(&h.parameters))
                })
                .map(|p| taken_as(r.request_type, p))
                .find(|t| !t.is_empty())
                .unwrap_or_default();
            for line in taken {
                out.push(kv(view, "taken as", Clean(&line).to_string()));
            }
        }
        match &r.error_message {
            Some(e) => out.push(Line::from(vec![
                Span::styled(format!("{:>15}  ", "error"), theme.title()),
                Span::styled(fmt::ext(e), theme.error()),
            ])),
            None => out.push(kv(view, "error", "-".into())),
        }
        match &r.result_data {
            Some(v) => {
                out.push(kv(view, "result", String::new()));
                out.extend(json_lines(v));
            }
            None => out.push(kv(view, "result", "-".into())),
        }
        out.push(Line::from(""));
        out.push(Line::styled("History (oldest first)", theme.header_row()));
        match history {
            History::Loading => out.push(Line::styled("  loading…", theme.dim())),
            History::Failed(e) => out.push(Line::styled(
                format!("  history unavailable: {}", Clean(e)),
                theme.error(),
            )),
            History::Loaded(rows) if rows.is_empty() => {
                out.push(Line::styled("  no stored rows", theme.dim()))
            }
            History::Loaded(rows) => {
                for h in rows {
                    let mut spans = vec![Span::raw(format!(
                        "  {}  {:<15} {:<10} by {:<9} p{} att {}",
                        fmt::stamp(h.updated_at),
                        h.event.as_str(),
                        h.status.as_str(),
                        h.changed_by.as_str(),
                        h.priority,
                        h.attempts
                    ))];
                    if let Some(e) = &h.error_message {
                        spans.push(Span::styled(format!("  {}", Clean(e)), theme.error()));
                    }
                    out.push(Line::from(spans));
                }
            }
        }
        out
    }

    fn leg_lines<'a>(view: &View, l: &LegView) -> Vec<Line<'a>> {
        let (age, stale) = tick_age(l, view);
        let mut out = vec![
            kv(view, "conid", l.conid.to_string()),
            kv(view, "contract", describe(l)),
            kv(view, "sec_type", l.sec_type.clone()),
            kv(view, "strategy", opt(&l.strategy)),
            kv(view, "quantity", fmt::qty(l.quantity)),
            kv(
                view,
                "bid",
                format!(
                    "{} × {}",
                    fmt::price(l.bid),
                    l.bid_size.map(fmt::qty).unwrap_or_else(|| "-".into())
                ),
            ),
            kv(
                view,
                "ask",
                format!(
                    "{} × {}",
                    fmt::price(l.ask),
                    l.ask_size.map(fmt::qty).unwrap_or_else(|| "-".into())
                ),
            ),
            kv(view, "last", fmt::price(l.last)),
            kv(
                view,
                "volume",
                l.volume.map(fmt::qty).unwrap_or_else(|| "-".into()),
            ),
            kv(
                view,
                "last tick",
                match l.last_tick_at {
                    Some(t) => format!("{} ({age})", fmt::utc_and_et(t)),
                    None => age.clone(),
                },
            ),
            kv(view, "state", state_text(&l.state)),
        ];
        if stale {
            out.push(Line::styled(
                format!(
                    "{:>15}  no tick for more than {}s",
                    "stale",
                    view.stale_after.num_seconds()
                ),
                view.theme.warn(),
            ));
        }
        out
    }

    fn log_lines<'a>(view: &View, l: &LogLine) -> Vec<Line<'a>> {
        let mut out = vec![
            kv(
                view,
                "at",
                format!(
                    "{} ({} ET)",
                    l.at.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
                    l.at.with_timezone(&crate::market::calendar::NEW_YORK)
                        .format("%H:%M:%S%.3f")
                ),
            ),
            Line::from(vec![
                Span::styled(format!("{:>15}  ", "level"), view.theme.title()),
                Span::styled(l.level.to_string(), view.theme.level(l.level)),
            ]),
            kv(view, "target", l.target.clone()),
            kv(view, "message", l.message.clone()),
        ];
        for (k, v) in &l.fields {
            out.push(kv(view, k, v.clone()));
        }
        out
    }

    pub fn lines<'a>(&self, view: &View) -> Vec<Line<'a>> {
        match &self.body {
            DetailBody::Request { request, history } => Self::request_lines(view, request, history),
            DetailBody::Leg(l) => Self::leg_lines(view, l),
            DetailBody::Log(l) => Self::log_lines(view, l),
            DetailBody::JobDay(j) => crate::console::panes::schedule::day_lines(j, view),
            DetailBody::Action(e) => crate::console::panes::actions::detail_lines(e, view),
        }
    }

    pub fn draw(&self, frame: &mut Frame, area: Rect, view: &View, hint: &str) {
        // `centered` takes the whole width or height where a margin would be a sliver.
        let w = area.width.saturating_sub(4).min(120);
        let h = area.height.saturating_sub(2);
        let popup = centered(area, w, h);
        let title = match &self.body {
            DetailBody::Request { request, .. } => format!(
                "{} {} · {}",
                request.request_type, request.symbol, request.status
            ),
            DetailBody::Leg(l) => format!("leg {}", l.conid),
            DetailBody::Log(l) => format!("log line {}", l.seq),
            DetailBody::JobDay(j) => format!("{} · today", j.name),
            DetailBody::Action(e) => format!("action · {}", e.summary()),
        };
        let width = popup.width.saturating_sub(2);
        self.width.set(width);
        let lines = wrap_all(self.lines(view), width as usize);
        let page = popup.height.saturating_sub(2) as usize;
        let title = format!("{title} · {}", position(self.scroll, page, lines.len()));
        let inner = frame_popup(frame, popup, view.theme, &title, hint);
        self.page.set(inner.height as usize);
        let max = lines.len().saturating_sub(inner.height as usize);
        let scroll = self.scroll.min(max);
        frame.render_widget(Paragraph::new(lines).scroll((scroll as u16, 0)), inner);
    }

    /// Scrolls by `delta` lines, clamped at the top (the bottom is clamped at draw time).
    pub fn scroll_by(&mut self, delta: isize, view: &View) {
        let lines = wrap_all(self.lines(view), self.width.get() as usize);
        let max = lines.len().saturating_sub(self.page.get());
        self.scroll = (self.scroll.min(max) as isize + delta).clamp(0, max as isize) as usize;
    }
}

/// Where a wrapped line goes on: under the values of `key  value` lines.
const WRAP_INDENT: usize = 17;

/// Every line no wider than `width`: a longer one goes on in the next rows, broken at a
/// space where there is one, so nothing of a row (an error, a parameter) is lost.
fn wrap_all<'a>(lines: Vec<Line<'a>>, width: usize) -> Vec<Line<'a>> {
    lines.into_iter().flat_map(|l| wrap(l, width)).collect()
}

fn wrap<'a>(line: Line<'a>, width: usize) -> Vec<Line<'a>> {
    if line.width() <= width || width <= WRAP_INDENT + 8 {
        return vec![line];
    }
    let base = line.style;
    let cells: Vec<(char, ratatui::style::Style)> = line
        .spans
        .iter()
        .flat_map(|s| s.content.chars().map(move |c| (c, s.style)))
        .collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < cells.len() {
        let first = out.is_empty();
        let room = if first { width } else { width - WRAP_INDENT };
        let mut end = (start + room).min(cells.len());
        if end < cells.len() {
            if let Some(p) = (start + 1..end).rev().find(|&i| cells[i].0 == ' ') {
                end = p + 1;
            }
        }
        let mut spans: Vec<Span<'a>> = Vec::new();
        for (c, style) in &cells[start..end] {
            match spans.last_mut() {
                Some(s) if s.style == *style => s.content.to_mut().push(*c),
                _ => spans.push(Span::styled(c.to_string(), *style)),
            }
        }
        if !first {
            spans.insert(0, Span::raw(" ".repeat(WRAP_INDENT)));
        }
        out.push(Line::from(spans).style(base));
        start = end;
        while start < cells.len() && cells[start].0 == ' ' {
            start += 1;
        }
    }
    out
}

/// A time with how long ago it was: `2026-11-23 14:35:00 UTC · 09:35:00 ET (3m ago)`.
fn stamped(now: chrono::DateTime<chrono::Utc>, t: chrono::DateTime<chrono::Utc>) -> String {
    format!("{} ({} ago)", fmt::utc_and_et(t), fmt::age(now, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;
    use crate::console::theme::Theme;
    use crate::queue::{RequestType, Status};

    fn text(lines: &[Line]) -> String {
        lines
            .iter()
            .map(|l| {
                l.spans
                    .iter()
                    .map(|s| s.content.as_ref())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_detail_names_what_each_old_parameter_was_taken_to_mean() {
        let snap = sample::snapshot(1);
        let view = View {
            snap: &snap,
            now: sample::t0(),
            theme: Theme::new(false),
            stale_after: chrono::Duration::seconds(30),
        };
        let mut r = sample::request(0, Status::Pending, sample::t0());
        r.request_type = RequestType::OptionChain;
        r.parameters = serde_json::json!({"target_dte": 45, "strikes": 5, "rights": "both"});
        // The row another program wrote, as it stands first in history.
        let mut original = r.clone();
        original.parameters = serde_json::json!({"dte": 45});

        let shown = text(&Detail::request_lines(
            &view,
            &r,
            &History::Loaded(vec![original, r.clone()]),
        ));
        assert!(
            shown.contains("taken as  dte=45 → target_dte=45"),
            "{shown}"
        );

        // A request given in today's names says nothing of the kind.
        let shown = text(&Detail::request_lines(
            &view,
            &r,
            &History::Loaded(vec![r.clone()]),
        ));
        assert!(!shown.contains("taken as"), "{shown}");
    }
}
