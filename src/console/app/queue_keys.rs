//! The actions of the queue panes (pending, processing, failed) that send commands: retry,
//! priorities, cancel, dismiss. Each applies to the marked rows, else the selected one.

use uuid::Uuid;

use super::{App, Deferred, PaneId, Purpose, DISMISS_REASON_CONSOLE};
use crate::console::keymap::Action;
use crate::engine::Command;
use crate::queue::Priority;

impl App {
    /// Handles `action` when it is one of the queue panes' commands; false otherwise.
    pub(super) fn queue_action(&mut self, action: Action) -> bool {
        let snap = self.snap.clone();
        match action {
            Action::Retry => {
                let t = self.targets(&[PaneId::Failed], "retry");
                self.send_for(t, "retry", Command::Retry);
            }
            Action::RetryAllFailed => {
                if snap.counts.failed == 0 && snap.failed.is_empty() {
                    self.refuse("retry all: there are no failed requests");
                    return true;
                }
                let n = snap.counts.failed.max(snap.failed.len());
                self.confirm(
                    "Retry all failed",
                    format!(
                        "Put all {} back to PENDING?",
                        Self::plural(n, "failed request")
                    ),
                    Deferred::Send {
                        command: Command::RetryAllFailed,
                        label: format!("retry all {}", Self::plural(n, "failed request")),
                    },
                );
            }
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
                    let example = if ids.len() == 1 {
                        self.pending
                            .selected(&snap)
                            .filter(|r| r.request_id == ids[0])
                            .map(|r| format!(" ({} {})", r.request_type, r.symbol))
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
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
                    self.confirm(
                        "Dismiss",
                        format!(
                            "Dismiss {what}? They become CANCELLED (reason: {DISMISS_REASON_CONSOLE}) and leave the failed pane; history keeps them."
                        ),
                        Deferred::Send {
                            command: Command::Dismiss(ids, DISMISS_REASON_CONSOLE.into()),
                            label: format!("dismiss {what}"),
                        },
                    );
                }
                Err(reason) => self.refuse(reason),
            },
            _ => return false,
        }
        true
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
