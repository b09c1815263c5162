//! What a queue pane's rows show: the header, the cells of a request, the line of a group
//! of failures, and the colour of a run's elapsed time against its timeout.

use std::sync::Arc;

use chrono::Duration;
use ratatui::layout::Constraint;
use ratatui::style::Style;

use super::sort::{started_at, Column};
use super::{QueueKind, QueuePane};
use crate::console::causes;
use crate::console::fmt;
use crate::console::panes::View;
use crate::queue::params::Params;
use crate::queue::Request;

#[cfg(test)]
thread_local! {
    /// Rows formatted on this thread, so a test can check that only the visible ones were.
    pub static FORMATTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Width of "waits for Wed 09:30 ET" in the pending pane's NEXT column.
pub const WAITS_WIDTH: u16 = 22;

/// How long a run has taken against its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lateness {
    /// Within half its timeout (or the timeout is not known).
    OnTime,
    /// Past half its timeout.
    Slow,
    /// Past its timeout: the worker is about to give up on it, or is stuck.
    Late,
}

impl Lateness {
    pub fn of(elapsed: Duration, timeout_secs: u64) -> Lateness {
        if timeout_secs == 0 {
            return Lateness::OnTime;
        }
        let ms = elapsed.num_milliseconds().max(0) as u128;
        let timeout_ms = timeout_secs as u128 * 1000;
        if ms > timeout_ms {
            Lateness::Late
        } else if ms * 2 > timeout_ms {
            Lateness::Slow
        } else {
            Lateness::OnTime
        }
    }

    pub fn style(self, theme: crate::console::theme::Theme) -> Style {
        match self {
            Lateness::OnTime => Style::default(),
            Lateness::Slow => theme.warn(),
            Lateness::Late => theme.error(),
        }
    }
}

/// `text` followed by `tail`, cut to `width` with the cut in `text`: the tail (a group's
/// `×12`) is never lost.
pub fn with_tail(text: &str, tail: &str, width: usize) -> String {
    let tail_len = tail.chars().count();
    let text_len = text.chars().count();
    if text_len + tail_len <= width || width <= tail_len {
        return fmt::cut(&format!("{text}{tail}"), width);
    }
    format!("{}{tail}", fmt::cut(text, width - tail_len))
}

impl QueuePane {
    /// The header names and the column widths.
    pub(super) fn header(&self) -> (Vec<&'static str>, Vec<Constraint>) {
        use Constraint::*;
        let names = std::iter::once("")
            .chain(self.kind.columns().iter().map(|c| c.header()))
            .collect();
        let widths = match self.kind {
            QueueKind::Pending => vec![
                Length(1),
                Length(1),
                Length(16),
                Length(8),
                Min(10),
                Length(6),
                Length(3),
                Length(9),
            ],
            QueueKind::Processing => vec![
                Length(1),
                Length(16),
                Length(8),
                Min(10),
                Length(7),
                Length(3),
            ],
            QueueKind::Failed => vec![
                Length(1),
                Length(1),
                Length(16),
                Length(8),
                Length(3),
                Min(16),
                Length(6),
            ],
        };
        (names, widths)
    }

    /// The position of `column` among the cells (after the mark column).
    pub(super) fn cell_of(&self, column: Column) -> Option<usize> {
        self.kind
            .columns()
            .iter()
            .position(|c| *c == column)
            .map(|i| i + 1)
    }

    /// How late a processing request's run is, against the worker's timeout.
    pub(super) fn lateness(&self, r: &Request, view: &View) -> Lateness {
        let started = started_at(r, &view.snap.worker.started);
        Lateness::of(view.now - started, view.snap.worker.request_timeout_secs)
    }

    /// The cells of one row; called for visible rows only.
    pub(super) fn cells(&self, r: &Request, view: &View) -> Vec<String> {
        #[cfg(test)]
        FORMATTED.with(|c| c.set(c.get() + 1));
        let mark = if self.marks.contains(&r.request_id) {
            "*"
        } else {
            " "
        };
        // Everything but ibq's own enums and numbers came from outside: cleaned before
        // the table cuts it to the column.
        let summary = || {
            fmt::ext(
                &Params::parse(r.request_type, &r.parameters)
                    .map(|p| p.summary())
                    .unwrap_or_else(|e| format!("invalid: {}", e.message)),
            )
        };
        let symbol = || fmt::ext(&r.symbol);
        match self.kind {
            QueueKind::Pending => vec![
                mark.into(),
                r.priority.to_string(),
                r.request_type.as_str().into(),
                symbol(),
                summary(),
                fmt::age(view.now, r.created_at),
                r.attempts.to_string(),
                match r.window_wait() {
                    Some(t) => crate::market::window::waits_for_text(t, view.now),
                    None => r
                        .next_attempt_at
                        .filter(|t| *t > view.now)
                        .map(|t| fmt::until(view.now, t))
                        .unwrap_or_default(),
                },
            ],
            QueueKind::Processing => vec![
                mark.into(),
                r.request_type.as_str().into(),
                symbol(),
                summary(),
                fmt::age(view.now, started_at(r, &view.snap.worker.started)),
                r.attempts.to_string(),
            ],
            QueueKind::Failed => vec![
                mark.into(),
                r.priority.to_string(),
                r.request_type.as_str().into(),
                symbol(),
                r.attempts.to_string(),
                fmt::ext(r.error_message.as_deref().unwrap_or_default()),
                fmt::age(view.now, r.updated_at),
            ],
        }
    }

    /// The cells of a group line in the failed pane's columns; the ERROR cell holds the
    /// cause, which the table cuts keeping its `×N` (see [`with_tail`]).
    pub(super) fn group_cells(&self, members: &[u32], view: &View) -> Vec<String> {
        let rows = self.kind.rows(view.snap);
        let members: Vec<&Arc<Request>> = members
            .iter()
            .filter_map(|&j| rows.get(j as usize))
            .collect();
        let all_marked = members.iter().all(|r| self.marks.contains(&r.request_id));
        let cause = members
            .first()
            .map(|r| causes::cause_of(r))
            .unwrap_or_default();
        let open = self.expanded.contains(&cause);
        let mut symbols: Vec<&str> = Vec::new();
        for r in &members {
            if !symbols.contains(&r.symbol.as_str()) {
                symbols.push(&r.symbol);
            }
        }
        let newest = members.iter().map(|r| r.updated_at).max();
        vec![
            if all_marked { "*" } else { " " }.into(),
            String::new(),
            format!(
                "{} {} request{}",
                if open { "▾" } else { "▸" },
                members.len(),
                if members.len() == 1 { "" } else { "s" }
            ),
            fmt::ext(&symbols.join(",")),
            String::new(),
            fmt::ext(&cause),
            newest.map(|t| fmt::age(view.now, t)).unwrap_or_default(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_is_measured_against_the_timeout() {
        let s = Duration::seconds;
        assert_eq!(Lateness::of(s(10), 120), Lateness::OnTime);
        assert_eq!(
            Lateness::of(s(60), 120),
            Lateness::OnTime,
            "half is not past half"
        );
        assert_eq!(Lateness::of(s(61), 120), Lateness::Slow);
        assert_eq!(Lateness::of(s(120), 120), Lateness::Slow);
        assert_eq!(Lateness::of(s(121), 120), Lateness::Late);
        assert_eq!(
            Lateness::of(s(9999), 0),
            Lateness::OnTime,
            "no timeout known"
        );
        assert_eq!(
            Lateness::of(s(-5), 120),
            Lateness::OnTime,
            "a clock step back"
        );
    }

    #[test]
    fn a_cut_keeps_the_tail() {
        let cause = "IB 354 Requested market data is not subscribed";
        assert_eq!(with_tail(cause, " ×12", 80), format!("{cause} ×12"));
        let cut = with_tail(cause, " ×12", 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with("… ×12"), "{cut}");
        assert!(cut.starts_with("IB 354 Req"), "{cut}");
        // Too narrow even for the tail: cut as one text, still with an ellipsis.
        assert_eq!(with_tail(cause, " ×12", 3).chars().count(), 3);
    }
}
