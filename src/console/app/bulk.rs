//! Bulk actions scoped to what a queue pane shows: with a filter, "all" means the rows the
//! filter shows; without one, every row of the pane. The confirmation says how many and
//! which filter, and the command names exactly those requests.

use uuid::Uuid;

use super::App;
use crate::console::panes::queue::QueuePane;
use crate::engine::{Command, Snapshot};

/// The requests a bulk action takes, and the filter that chose them.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub ids: Vec<Uuid>,
    /// `None`: no filter, the whole pane.
    pub filter: Option<String>,
}

impl Scope {
    pub fn of(pane: &QueuePane, snap: &Snapshot) -> Scope {
        let filter = Some(pane.filter().to_string()).filter(|f| !f.is_empty());
        Scope {
            ids: pane.shown_ids(snap),
            filter,
        }
    }

    /// For a confirmation: `12 failed requests shown by filter "code:354"`, or
    /// `all 12 failed requests`.
    pub fn describe(&self, what: &str) -> String {
        let n = App::plural(self.ids.len(), what);
        match &self.filter {
            Some(f) => format!("{n} shown by filter \"{f}\""),
            None if self.ids.len() == 1 => n,
            None => format!("all {n}"),
        }
    }

    /// For the status line: `12 failed requests (filter code:354)`.
    pub fn short(&self, what: &str) -> String {
        let n = App::plural(self.ids.len(), what);
        match &self.filter {
            Some(f) => format!("{n} (filter {f})"),
            None => n,
        }
    }

    /// Why there is nothing to act on.
    pub fn empty_reason(&self, verb: &str, what: &str) -> String {
        match &self.filter {
            Some(f) => format!("{verb}: no {what} is shown by filter \"{f}\""),
            None => format!("{verb}: there are no {what}s"),
        }
    }
}

/// A dismissal waiting for its reason, then for its yes.
#[derive(Debug, Clone, PartialEq)]
pub struct DismissPlan {
    /// `None`: every failed request (the whole pane, no filter).
    pub ids: Option<Vec<Uuid>>,
    /// What is dismissed, for the confirmation: `2 failed requests`.
    pub what: String,
    /// Shorter, for the prompt's title and the status line.
    pub label: String,
}

impl DismissPlan {
    pub fn command(&self, reason: String) -> Command {
        match &self.ids {
            Some(ids) => Command::Dismiss(ids.clone(), reason),
            None => Command::DismissAllFailed(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(n: u128, filter: Option<&str>) -> Scope {
        Scope {
            ids: (0..n).map(Uuid::from_u128).collect(),
            filter: filter.map(str::to_string),
        }
    }

    #[test]
    fn a_scope_says_how_many_and_which_filter() {
        assert_eq!(
            scope(12, Some("code:354")).describe("failed request"),
            "12 failed requests shown by filter \"code:354\""
        );
        assert_eq!(
            scope(12, None).describe("failed request"),
            "all 12 failed requests"
        );
        assert_eq!(
            scope(1, None).describe("pending request"),
            "1 pending request"
        );
        assert_eq!(
            scope(3, Some("symbol:spy")).short("pending request"),
            "3 pending requests (filter symbol:spy)"
        );
        assert_eq!(
            scope(0, Some("code:999")).empty_reason("retry all", "failed request"),
            "retry all: no failed request is shown by filter \"code:999\""
        );
        assert_eq!(
            scope(0, None).empty_reason("cancel all", "pending request"),
            "cancel all: there are no pending requests"
        );
    }

    #[test]
    fn a_dismissal_of_the_whole_pane_dismisses_every_failure_and_a_filtered_one_its_ids() {
        let all = DismissPlan {
            ids: None,
            what: "all 3 failed requests".into(),
            label: "3 failed requests".into(),
        };
        assert!(matches!(all.command("why".into()), Command::DismissAllFailed(r) if r == "why"));
        let some = DismissPlan {
            ids: Some(vec![Uuid::from_u128(1)]),
            ..all
        };
        assert!(
            matches!(some.command("why".into()), Command::Dismiss(ids, r) if ids == vec![Uuid::from_u128(1)] && r == "why")
        );
    }
}
