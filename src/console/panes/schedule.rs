//! The schedule pane: each scheduler job with its next run in New York time, a countdown,
//! and how today's slots went (done, pending, failed, missed), from the queue's requests
//! with each slot's occurrence key.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{pane_block, Col, Component, Handled, View};
use crate::console::cursor::Cursor;
use crate::console::fmt;
use crate::console::keymap::Action;
use crate::console::theme::Theme;
use crate::scheduler::view::{JobView, Outcome};

/// A job's timing in fewer columns: `every 5m during regular` → `5m regular`.
pub fn timing_short(timing: &str) -> String {
    match timing.strip_prefix("every ") {
        Some(rest) => rest.replacen(" during ", " ", 1),
        None => timing.to_string(),
    }
}

/// Outcomes in the order the pane names them: what needs a look first.
const ORDER: [Outcome; 7] = [
    Outcome::Failed,
    Outcome::Missed,
    Outcome::Running,
    Outcome::Pending,
    Outcome::Cancelled,
    Outcome::Done,
    Outcome::Upcoming,
];

/// `1 failed · 2 missed · 24 done · 51 upcoming`, or `no slots today`.
pub fn tally_text(job: &JobView) -> String {
    let tally = job.tally();
    let parts: Vec<String> = ORDER
        .iter()
        .filter_map(|o| {
            let n = tally.iter().find(|(t, _)| t == o)?.1;
            Some(format!("{n} {}", o.as_str()))
        })
        .collect();
    if parts.is_empty() {
        "no slots today".into()
    } else {
        parts.join(" · ")
    }
}

/// The style that carries an outcome's meaning.
pub fn outcome_style(theme: Theme, o: Outcome) -> Style {
    match o {
        Outcome::Failed => theme.error(),
        Outcome::Missed => theme.warn(),
        Outcome::Done => theme.ok(),
        Outcome::Upcoming | Outcome::Cancelled => theme.dim(),
        Outcome::Pending | Outcome::Running => Style::default(),
    }
}

#[derive(Default)]
pub struct SchedulePane {
    pub cursor: Cursor,
}

impl SchedulePane {
    pub fn selected<'a>(&self, view: &View<'a>) -> Option<&'a JobView> {
        view.snap.jobs.get(self.cursor.selected)
    }

    pub fn sync(&mut self, view: &View) {
        self.cursor.clamp(view.snap.jobs.len());
    }
}

impl Component for SchedulePane {
    fn draw(&self, frame: &mut Frame, area: Rect, view: &View, focused: bool) {
        let theme = view.theme;
        let jobs = &view.snap.jobs;
        let failed: usize = jobs
            .iter()
            .flat_map(|j| &j.today)
            .filter(|s| s.outcome == Outcome::Failed)
            .count();
        let mut note = format!("{} jobs", jobs.len());
        if failed > 0 {
            note.push_str(&format!(" · {failed} slots failed today"));
        }
        let block = pane_block(theme, 6, "Schedule", note, focused);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if jobs.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled(
                    "no scheduler jobs ([[scheduler.jobs]] in ibq.toml)",
                    theme.dim(),
                )),
                inner,
            );
            return;
        }
        let window = self
            .cursor
            .window(jobs.len(), inner.height.saturating_sub(1) as usize);
        let selected = self.cursor.selected.min(jobs.len() - 1);
        const HEADER: [&str; 5] = ["JOB", "RUNS", "NEXT ET", "IN", "TODAY"];
        let texts: Vec<[String; 5]> = window
            .clone()
            .map(|i| {
                let job = &jobs[i];
                [
                    fmt::ext(&job.name),
                    timing_short(&job.timing),
                    job.next_run
                        .map(|t| {
                            fmt::slot(t, view.clock_now())
                                .trim_end_matches(" ET")
                                .to_string()
                        })
                        .unwrap_or_else(|| "-".into()),
                    job.next_run
                        .map(|t| fmt::span((t - view.clock_now()).num_seconds()))
                        .unwrap_or_default(),
                    tally_text(job),
                ]
            })
            .collect();
        let need = |c: usize| super::need(HEADER[c], texts.iter().map(|t| t[c].as_str()));
        // The name is what says which job: the day's tally gives way first.
        let cols = [
            Col::text(need(0), 20),
            Col::text(need(1), 10),
            Col::whole(need(2)),
            Col::whole(need(3)),
            Col::text(need(4), 10),
        ];
        let fit = super::share(&cols, inner.width);
        let rows: Vec<Row> = window
            .zip(texts)
            .map(|(i, cells)| {
                let job = &jobs[i];
                let worst = job
                    .today
                    .iter()
                    .map(|s| s.outcome)
                    .filter(|o| matches!(o, Outcome::Failed | Outcome::Missed))
                    .max();
                let cells = cells.into_iter().enumerate().map(|(c, text)| {
                    let text = fmt::cut(&text, fit[c] as usize);
                    let style = match (c, worst) {
                        (4, Some(o)) => outcome_style(theme, o),
                        _ => Style::default(),
                    };
                    Cell::from(Span::styled(text, style))
                });
                let mut style = Style::default();
                if i == selected && focused {
                    style = style.patch(theme.selected());
                }
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
        if self.cursor.handle(action, view.snap.jobs.len()) {
            Handled::Consumed
        } else {
            Handled::NotConsumed
        }
    }
}

/// The lines of a job's day: what it is, then every slot today and how it went.
pub fn day_lines<'a>(job: &JobView, view: &View) -> Vec<Line<'a>> {
    let theme = view.theme;
    let label = |k: &str| Span::styled(format!("{k:>9}  "), theme.title());
    let mut what = job.request_type.clone();
    if !job.symbols.is_empty() {
        what.push_str(&format!(" · {}", job.symbols.join(" ")));
    }
    what.push_str(&format!(" · priority {}", job.priority));
    let mut out = vec![
        Line::from(vec![label("job"), Span::raw(fmt::ext(&job.name))]),
        Line::from(vec![label("requests"), Span::raw(fmt::ext(&what))]),
        Line::from(vec![label("runs"), Span::raw(job.timing.clone())]),
        Line::from(vec![
            label("next"),
            Span::raw(match job.next_run {
                Some(t) => format!(
                    "{} (in {})",
                    fmt::slot(t, view.clock_now()),
                    fmt::span((t - view.clock_now()).num_seconds())
                ),
                None => "none within 400 days".into(),
            }),
        ]),
        Line::from(vec![label("today"), Span::raw(tally_text(job))]),
        Line::from(""),
    ];
    if job.today.is_empty() {
        out.push(Line::styled(
            "  no slots today: the market is closed",
            theme.dim(),
        ));
    }
    for slot in &job.today {
        let mut spans = vec![
            Span::raw(format!("  {:<12}", fmt::slot(slot.at, view.clock_now()))),
            Span::styled(
                format!("{:<9}", slot.outcome.as_str()),
                outcome_style(theme, slot.outcome),
            ),
        ];
        // Symbols that went another way than the slot as a whole are named.
        let mixed = slot.occurrences.iter().any(|(_, o)| *o != slot.outcome);
        if mixed {
            for (i, (symbol, o)) in slot.occurrences.iter().enumerate() {
                spans.push(Span::raw(if i == 0 { " " } else { " · " }));
                spans.push(Span::styled(
                    format!("{} {}", fmt::ext(symbol), o.as_str()),
                    outcome_style(theme, *o),
                ));
            }
        }
        out.push(Line::from(spans));
    }
    out
}
