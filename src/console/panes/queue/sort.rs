//! The order of a queue pane's rows: the order of service (the queue's own: priority, then
//! age), or one of the pane's columns, either way up. Pure logic over the snapshot's rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::QueueKind;
use crate::queue::params::Params;
use crate::queue::Request;

/// A column of a queue pane (after the mark column), each of which can order the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Priority,
    Type,
    Symbol,
    Params,
    Age,
    Attempts,
    Next,
    Elapsed,
    Error,
}

impl Column {
    /// The column's header, as the pane prints it.
    pub fn header(self) -> &'static str {
        match self {
            Column::Priority => "P",
            Column::Type => "TYPE",
            Column::Symbol => "SYMBOL",
            Column::Params => "PARAMS",
            Column::Age => "AGE",
            Column::Attempts => "ATT",
            Column::Next => "NEXT",
            Column::Elapsed => "ELAPSED",
            Column::Error => "ERROR",
        }
    }
}

impl QueueKind {
    /// The pane's columns after the mark column, left to right.
    pub fn columns(self) -> &'static [Column] {
        use Column::*;
        match self {
            QueueKind::Pending => &[Priority, Type, Symbol, Params, Age, Attempts, Next],
            QueueKind::Processing => &[Type, Symbol, Params, Elapsed, Attempts],
            QueueKind::Failed => &[Priority, Type, Symbol, Attempts, Error, Age],
        }
    }
}

/// How a pane orders its rows. The default is the order of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    /// `None`: the order of service.
    pub column: Option<Column>,
    /// Descending (the last first) instead of ascending.
    pub reverse: bool,
}

impl Sort {
    /// The next column of `kind` to sort by, after the last one back to the order of
    /// service. The direction is kept.
    pub fn next(self, kind: QueueKind) -> Sort {
        let cols = kind.columns();
        let column = match self.column.and_then(|c| cols.iter().position(|x| *x == c)) {
            None => cols.first().copied(),
            Some(i) => cols.get(i + 1).copied(),
        };
        Sort { column, ..self }
    }

    pub fn reversed(self) -> Sort {
        Sort {
            reverse: !self.reverse,
            ..self
        }
    }

    pub fn is_default(self) -> bool {
        self == Sort::default()
    }

    /// `AGE ▲`, `service ▼`; empty for the default order.
    pub fn label(self) -> String {
        if self.is_default() {
            return String::new();
        }
        let arrow = if self.reverse { "▼" } else { "▲" };
        match self.column {
            Some(c) => format!("{} {arrow}", c.header()),
            None => format!("service {arrow}"),
        }
    }
}

/// What ordering needs beyond the rows.
pub struct Context<'a> {
    pub kind: QueueKind,
    pub now: DateTime<Utc>,
    /// When the worker started each running request (its ELAPSED counts from there).
    pub started: &'a BTreeMap<Uuid, DateTime<Utc>>,
}

/// When a processing request's run started: the worker's own clock of it, else the time
/// of its last row.
pub fn started_at(r: &Request, started: &BTreeMap<Uuid, DateTime<Utc>>) -> DateTime<Utc> {
    started.get(&r.request_id).copied().unwrap_or(r.updated_at)
}

/// Reorders `shown` (indices into `rows`, in the order of service) by `sort`. Rows that
/// compare equal keep the order of service, either way up.
pub fn order(rows: &[Arc<Request>], shown: &mut [u32], sort: Sort, ctx: &Context) {
    let Some(column) = sort.column else {
        if sort.reverse {
            shown.reverse();
        }
        return;
    };
    // Each row's key is made once, not once per comparison; the sort is stable.
    let mut keyed: Vec<(Key, u32)> = shown
        .iter()
        .map(|&i| (key(&rows[i as usize], column, ctx), i))
        .collect();
    keyed.sort_by(|a, b| {
        let o = a.0.cmp(&b.0);
        if sort.reverse {
            o.reverse()
        } else {
            o
        }
    });
    for (slot, (_, i)) in shown.iter_mut().zip(keyed) {
        *slot = i;
    }
}

/// What a row is ordered by, ascending by what the column shows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Number(i64),
    Text(String),
    /// `None` (nothing to wait for) first.
    Time(Option<DateTime<Utc>>),
}

fn summary(r: &Request) -> String {
    Params::parse(r.request_type, &r.parameters)
        .map(|p| p.summary())
        .unwrap_or_default()
}

/// A smaller age, elapsed time or wait comes first: a later time is a smaller age.
fn key(r: &Request, column: Column, ctx: &Context) -> Key {
    let newest_first = |t: DateTime<Utc>| Key::Number(-t.timestamp_micros());
    match column {
        Column::Priority => Key::Number(r.priority.get() as i64),
        Column::Type => Key::Text(r.request_type.as_str().into()),
        Column::Symbol => Key::Text(r.symbol.clone()),
        Column::Params => Key::Text(summary(r)),
        Column::Age => match ctx.kind {
            QueueKind::Pending => newest_first(r.created_at),
            _ => newest_first(r.updated_at),
        },
        Column::Elapsed => newest_first(started_at(r, ctx.started)),
        Column::Attempts => Key::Number(r.attempts as i64),
        // Due now (nothing shown) before a wait, then the shorter wait.
        Column::Next => Key::Time(next_at(r, ctx.now)),
        Column::Error => Key::Text(r.error_message.clone().unwrap_or_default()),
    }
}

/// When a pending request may next run, if later than `now` (what NEXT shows).
fn next_at(r: &Request, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    r.window_wait().or(r.next_attempt_at).filter(|t| *t > now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;
    use crate::queue::{Priority, Status};
    use chrono::Duration;

    fn rows(n: usize, status: Status) -> Vec<Arc<Request>> {
        (0..n)
            .map(|i| Arc::new(sample::request(i, status, sample::t0())))
            .collect()
    }

    fn ctx(kind: QueueKind, started: &BTreeMap<Uuid, DateTime<Utc>>) -> Context<'_> {
        Context {
            kind,
            now: sample::t0(),
            started,
        }
    }

    fn sorted(rows: &[Arc<Request>], sort: Sort, ctx: &Context) -> Vec<u32> {
        let mut shown: Vec<u32> = (0..rows.len() as u32).collect();
        order(rows, &mut shown, sort, ctx);
        shown
    }

    #[test]
    fn the_default_is_the_order_of_service_and_s_cycles_through_every_column_back_to_it() {
        let kind = QueueKind::Failed;
        let mut s = Sort::default();
        assert!(s.is_default() && s.label().is_empty());
        let mut seen = Vec::new();
        for _ in 0..kind.columns().len() {
            s = s.next(kind);
            seen.push(s.column.expect("a column"));
        }
        assert_eq!(seen, kind.columns());
        assert_eq!(s.next(kind), Sort::default(), "after the last: service");
        // The direction survives a change of column.
        let r = Sort::default().next(kind).reversed().next(kind);
        assert_eq!((r.column, r.reverse), (Some(Column::Type), true));
        assert_eq!(r.label(), "TYPE ▼");
        assert_eq!(Sort::default().reversed().label(), "service ▼");
    }

    #[test]
    fn rows_sort_by_a_column_either_way_and_ties_keep_the_order_of_service() {
        let rows = rows(12, Status::Failed);
        let none = BTreeMap::new();
        let c = ctx(QueueKind::Failed, &none);
        let by_symbol = sorted(
            &rows,
            Sort::default()
                .next(QueueKind::Failed)
                .next(QueueKind::Failed)
                .next(QueueKind::Failed),
            &c,
        );
        let symbols: Vec<&str> = by_symbol
            .iter()
            .map(|&i| rows[i as usize].symbol.as_str())
            .collect();
        let mut want = symbols.clone();
        want.sort();
        assert_eq!(symbols, want);
        // Equal symbols stay in the order of service (their index order here).
        for w in by_symbol.windows(2) {
            let (a, b) = (&rows[w[0] as usize], &rows[w[1] as usize]);
            if a.symbol == b.symbol {
                assert!(w[0] < w[1], "{w:?}");
            }
        }
        let sort = Sort {
            column: Some(Column::Symbol),
            reverse: true,
        };
        let down = sorted(&rows, sort, &c);
        let symbols: Vec<&str> = down
            .iter()
            .map(|&i| rows[i as usize].symbol.as_str())
            .collect();
        want.reverse();
        assert_eq!(symbols, want);
        for w in down.windows(2) {
            if rows[w[0] as usize].symbol == rows[w[1] as usize].symbol {
                assert!(
                    w[0] < w[1],
                    "ties keep the order of service reversed too: {w:?}"
                );
            }
        }
    }

    #[test]
    fn priority_age_and_elapsed_sort_by_what_the_column_shows() {
        let mut rows = rows(6, Status::Pending);
        // Make the priorities and ages distinct and known.
        for (i, r) in rows.iter_mut().enumerate() {
            let r = Arc::make_mut(r);
            r.priority = Priority::try_from(1 + (i % 3) as i64).unwrap();
            r.created_at = sample::t0() - Duration::seconds(10 * (i as i64 + 1));
        }
        let none = BTreeMap::new();
        let c = ctx(QueueKind::Pending, &none);
        let p = sorted(
            &rows,
            Sort {
                column: Some(Column::Priority),
                reverse: false,
            },
            &c,
        );
        assert_eq!(p, vec![0, 3, 1, 4, 2, 5]);
        // Youngest first: row 0 was made 10 s ago, row 5 60 s ago.
        let age = sorted(
            &rows,
            Sort {
                column: Some(Column::Age),
                reverse: false,
            },
            &c,
        );
        assert_eq!(age, vec![0, 1, 2, 3, 4, 5]);
        let age = sorted(
            &rows,
            Sort {
                column: Some(Column::Age),
                reverse: true,
            },
            &c,
        );
        assert_eq!(age, vec![5, 4, 3, 2, 1, 0]);
        // The processing pane's elapsed time counts from the worker's start of the run.
        let mut started = BTreeMap::new();
        started.insert(rows[4].request_id, sample::t0() - Duration::seconds(500));
        started.insert(rows[2].request_id, sample::t0() - Duration::seconds(1));
        let c = ctx(QueueKind::Processing, &started);
        let e = sorted(
            &rows,
            Sort {
                column: Some(Column::Elapsed),
                reverse: true,
            },
            &c,
        );
        assert_eq!(e[0], 4, "the longest run first: {e:?}");
        assert_eq!(*e.last().unwrap(), 2, "the shortest last: {e:?}");
    }

    #[test]
    fn the_order_of_service_reversed_is_the_rows_backwards() {
        let rows = rows(5, Status::Pending);
        let none = BTreeMap::new();
        let c = ctx(QueueKind::Pending, &none);
        assert_eq!(sorted(&rows, Sort::default(), &c), vec![0, 1, 2, 3, 4]);
        assert_eq!(
            sorted(&rows, Sort::default().reversed(), &c),
            vec![4, 3, 2, 1, 0]
        );
        // Only the shown rows are ordered.
        let mut shown = vec![3, 1];
        order(&rows, &mut shown, Sort::default().reversed(), &c);
        assert_eq!(shown, vec![1, 3]);
    }
}
