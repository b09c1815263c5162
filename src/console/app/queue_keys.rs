//! The actions of the queue panes (pending, processing, failed): the commands (retry,
//! priorities, cancel, dismiss, release), each on the marked rows, else the selected one;
//! the bulk ones ("retry all", "dismiss all", "cancel all") on every row shown (see
//! [`super::bulk`]); and marking and sorting.

use uuid::Uuid;

use super::bulk::{DismissPlan, Scope};
use super::{App, Deferred, PaneId, Popup, PromptKind, Purpose, DISMISS_REASON_CONSOLE};
use crate::console::keymap::Action;
use crate::console::panes::queue::QueuePane;
use crate::console::popups::prompt::Prompt;
use crate::engine::Command;
use crate::queue::Priority;

impl App {
    /// Handles `action` when it is one of the queue panes' commands; false otherwise.
    pub(super) fn queue_action(&mut self, action: Action) -> bool {
        match action {
            Action::Retry => {
                let t = self.targets(&[PaneId::Failed], "retry");
                self.send_for(t, "retry", Command::Retry);
            }
            Action::RetryAllFailed => {
                let Some(scope) = self.scope(PaneId::Failed, "retry all", "failed request") else {
                    return true;
                };
                let command = match scope.filter {
                    Some(_) => Command::Retry(scope.ids.clone()),
                    None => Command::RetryAllFailed,
                };
                self.confirm(
                    if scope.filter.is_some() {
                        "Retry all shown"
                    } else {
                        "Retry all failed"
                    },
                    format!(
                        "Retry {}? They go back to PENDING.",
                        scope.describe("failed request")
                    ),
                    Deferred::Send {
                        command,
                        label: format!("retry {}", scope.short("failed request")),
                    },
                );
            }
            Action::DismissAllFailed => {
                let Some(scope) = self.scope(PaneId::Failed, "dismiss all", "failed request")
                else {
                    return true;
                };
                self.ask_dismiss_reason(DismissPlan {
                    ids: scope.filter.is_some().then(|| scope.ids.clone()),
                    what: scope.describe("failed request"),
                    label: scope.short("failed request"),
                });
            }
            Action::CancelAllPending => {
                let Some(scope) = self.scope(PaneId::Pending, "cancel all", "pending request")
                else {
                    return true;
                };
                self.confirm(
                    if scope.filter.is_some() {
                        "Cancel all shown"
                    } else {
                        "Cancel all pending"
                    },
                    format!(
                        "Cancel {}? This cannot be undone.",
                        scope.describe("pending request")
                    ),
                    Deferred::Send {
                        command: Command::Cancel(scope.ids.clone()),
                        label: format!("cancel {}", scope.short("pending request")),
                    },
                );
            }
            Action::Release => match self.targets(&[PaneId::Processing], "release") {
                Ok(ids) => {
                    let what = Self::plural(ids.len(), "processing request");
                    let example = self.named(&self.processing, &ids);
                    self.confirm(
                        "Release",
                        format!(
                            "Release {what}{example}? The worker abandons the run and frees its lines; back to PENDING, no attempt counted."
                        ),
                        Deferred::Send {
                            command: Command::Release(ids),
                            label: format!("release {what}"),
                        },
                    );
                }
                Err(reason) => self.refuse(reason),
            },
            Action::SelectAll
            | Action::InvertMarks
            | Action::RangeSelect
            | Action::SortNext
            | Action::SortReverse => self.mark_or_sort(action),
            Action::PriorityUp | Action::PriorityDown => {
                let up = action == Action::PriorityUp;
                let t = self.targets(&[PaneId::Pending, PaneId::Failed], "priority");
                let verb = if up {
                    "raise priority of"
                } else {
                    "lower priority of"
                };
                self.send_for(t, verb, |ids| Command::BumpPriority(ids, up));
            }
            Action::Priority1 | Action::Priority2 | Action::Priority3 => {
                let p = match action {
                    Action::Priority1 => Priority::IMMEDIATE,
                    Action::Priority2 => Priority::NORMAL,
                    _ => Priority::BACKGROUND,
                };
                let t = self.targets(&[PaneId::Pending, PaneId::Failed], "priority");
                let verb = format!("set priority {p} on");
                self.send_for(t, &verb, |ids| Command::SetPriority(ids, p));
            }
            Action::Cancel => match self.targets(&[PaneId::Pending], "cancel") {
                Ok(ids) => {
                    let what = Self::plural(ids.len(), "pending request");
                    let example = self.named(&self.pending, &ids);
                    self.confirm(
                        "Cancel",
                        format!("Cancel {what}{example}? This cannot be undone."),
                        Deferred::Send {
                            command: Command::Cancel(ids),
                            label: format!("cancel {what}"),
                        },
                    );
                }
                Err(reason) => self.refuse(reason),
            },
            Action::DismissFailure => match self.targets(&[PaneId::Failed], "dismiss") {
                Ok(ids) => {
                    let what = Self::plural(ids.len(), "failed request");
                    self.ask_dismiss_reason(DismissPlan {
                        ids: Some(ids),
                        label: what.clone(),
                        what,
                    });
                }
                Err(reason) => self.refuse(reason),
            },
            _ => return false,
        }
        true
    }

    /// What a bulk action on `pane` takes: the rows its filter shows, or all of them. `None`
    /// (with the reason in the status line) when another pane has focus or nothing is shown.
    fn scope(&mut self, pane: PaneId, verb: &str, what: &str) -> Option<Scope> {
        if self.focus != pane {
            let n = pane.index() + 1;
            let name = pane.title().to_lowercase();
            self.refuse(format!("{verb}: works on the {name} pane ({n})"));
            return None;
        }
        let scope = Scope::of(self.queue(pane)?, &self.snap);
        if scope.ids.is_empty() {
            self.refuse(scope.empty_reason(verb, what));
            return None;
        }
        Some(scope)
    }

    /// Asks why the failures will never succeed (the default reason filled in), then for
    /// the yes.
    fn ask_dismiss_reason(&mut self, plan: DismissPlan) {
        let title = format!("Dismiss {}: reason", plan.label);
        self.popup = Some(Popup::Prompt(Prompt::new(
            PromptKind::DismissReason(plan),
            &title,
            "why they will never succeed; enter keeps this reason",
            DISMISS_REASON_CONSOLE,
        )));
    }

    /// Marking many rows at once, and the order of the rows: no command, the status line
    /// says what changed.
    fn mark_or_sort(&mut self, action: Action) {
        let snap = self.snap.clone();
        let focus = self.focus;
        let Some(pane) = self.queue_mut(focus) else {
            return self.refuse(format!("{action}: works on the queue panes (1, 2, 3)"));
        };
        let text = match action {
            Action::SelectAll => format!("{} marked", pane.select_all(&snap)),
            Action::InvertMarks => format!("marks inverted: {} marked", pane.invert_marks(&snap)),
            Action::RangeSelect => {
                if pane.toggle_range(&snap) {
                    "marking a range: move to extend it, v or space keeps it, esc drops it".into()
                } else {
                    format!("range kept: {} marked", pane.marks.len())
                }
            }
            _ => {
                let sort = if action == Action::SortNext {
                    pane.sort().next(pane.kind)
                } else {
                    pane.sort().reversed()
                };
                pane.set_sort(sort, &snap);
                match sort.label() {
                    l if l.is_empty() => "in the order of service".into(),
                    l => format!("sorted by {l}"),
                }
            }
        };
        self.info(text);
    }

    /// ` (option_chain SPY)` when `ids` is the one selected request of `pane`: the
    /// confirmation names what it acts on.
    fn named(&self, pane: &QueuePane, ids: &[Uuid]) -> String {
        match ids {
            [one] => pane
                .selected(&self.snap)
                .filter(|r| r.request_id == *one)
                .map(|r| format!(" ({} {})", r.request_type, r.symbol))
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// The requests of the focused queue pane an action applies to, or why there are none.
    fn targets(&self, allowed: &[PaneId], verb: &str) -> Result<Vec<Uuid>, String> {
        let names: Vec<&str> = allowed.iter().map(|p| p.title()).collect();
        let Some(pane) = self
            .queue(self.focus)
            .filter(|_| allowed.contains(&self.focus))
        else {
            return Err(format!(
                "{verb}: works on the {} pane{}",
                names.join(" or ").to_lowercase(),
                if names.len() > 1 { "s" } else { "" }
            ));
        };
        let ids = pane.targets(&self.snap);
        if ids.is_empty() {
            return Err(format!("{verb}: no request selected"));
        }
        Ok(ids)
    }

    fn send_for(
        &mut self,
        ids_result: Result<Vec<Uuid>, String>,
        verb: &str,
        make: impl FnOnce(Vec<Uuid>) -> Command,
    ) {
        match ids_result {
            Ok(ids) => {
                let label = format!("{verb} {}", Self::plural(ids.len(), "request"));
                self.send(make(ids), Purpose::Status(label));
            }
            Err(reason) => self.refuse(reason),
        }
    }
}
