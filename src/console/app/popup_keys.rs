//! Keys while a popup is open: the confirm dialog, the prompts (filter, promote), the
//! new-request form, the detail view and the help.

use crossterm::event::KeyEvent;

use super::{App, Deferred, PaneId, Popup, PromptKind, Purpose};
use crate::console::keymap::{Action, Context};
use crate::console::panes::View;
use crate::console::popups::confirm::Confirm;
use crate::console::popups::help::Help;
use crate::console::popups::prompt::Prompt;
use crate::engine::Command;

impl App {
    pub(super) fn on_popup_key(&mut self, key: &KeyEvent) {
        let Some(popup) = self.popup.take() else {
            return;
        };
        let prompt_action = self.keymap.action_for(Context::Prompt, key);
        let global_action = self.keymap.action_for(Context::Global, key);
        self.popup = match popup {
            Popup::Confirm(c) => match prompt_action {
                Some(Action::Confirm) => {
                    self.run(c.then);
                    None
                }
                Some(Action::Dismiss | Action::Submit) => {
                    self.info(format!("{}: not done", c.title.to_lowercase()));
                    None
                }
                _ => Some(Popup::Confirm(c)),
            },
            Popup::Prompt(mut p) => match prompt_action {
                Some(Action::Submit) => self.submit_prompt(p),
                Some(Action::Dismiss) => {
                    if let PromptKind::Filter(pane) = p.kind {
                        self.apply_filter(pane, "");
                    } else if let PromptKind::DismissReason(plan) = &p.kind {
                        self.info(format!("dismiss {}: not done", plan.label));
                    }
                    None
                }
                _ => {
                    if p.input.edit(key) {
                        p.error = None;
                        if let PromptKind::Filter(pane) = p.kind {
                            self.apply_filter(pane, &p.input.value.clone());
                        }
                    }
                    Some(Popup::Prompt(p))
                }
            },
            Popup::NewRequest(mut f) => match prompt_action {
                Some(Action::Submit) => match f.validate() {
                    Ok(req) => {
                        let label = format!("enqueue {} {}", req.request_type, req.symbol);
                        self.send(Command::Enqueue(req), Purpose::Status(label));
                        None
                    }
                    Err((field, msg)) => {
                        f.focus = field;
                        f.error = Some((field, msg.clone()));
                        self.refuse(format!("new request: {msg}"));
                        Some(Popup::NewRequest(f))
                    }
                },
                Some(Action::Dismiss) => None,
                _ => {
                    if !f.navigate(key) {
                        f.edit(key);
                    }
                    Some(Popup::NewRequest(f))
                }
            },
            Popup::Detail(mut d) => {
                let page = d.page() as isize;
                let view_snap = self.snap.clone();
                let view = View {
                    snap: &view_snap,
                    now: self.now,
                    theme: self.theme,
                    stale_after: self.stale_after,
                };
                match global_action {
                    Some(Action::MoveUp) => d.scroll_by(-1, &view),
                    Some(Action::MoveDown) => d.scroll_by(1, &view),
                    Some(Action::PageUp) => d.scroll_by(-page, &view),
                    Some(Action::PageDown) => d.scroll_by(page, &view),
                    Some(Action::Top) => d.scroll = 0,
                    Some(Action::Bottom) => d.scroll_by(isize::MAX / 2, &view),
                    Some(Action::Dismiss | Action::Details | Action::Quit) => {
                        return;
                    }
                    _ => {}
                }
                Some(Popup::Detail(d))
            }
            Popup::Help(mut h) => {
                let total = Help::lines(&self.keymap, self.theme).len();
                let page = h.page() as isize;
                match global_action {
                    Some(Action::MoveUp) => h.scroll_by(-1, total),
                    Some(Action::MoveDown) => h.scroll_by(1, total),
                    Some(Action::PageUp) => h.scroll_by(-page, total),
                    Some(Action::PageDown) => h.scroll_by(page, total),
                    Some(Action::Top) => h.scroll = 0,
                    Some(Action::Bottom) => h.scroll_by(isize::MAX / 2, total),
                    Some(Action::Dismiss | Action::Help | Action::Quit) => return,
                    _ => {}
                }
                Some(Popup::Help(h))
            }
        };
    }

    fn apply_filter(&mut self, pane: PaneId, text: &str) {
        let snap = self.snap.clone();
        if pane == PaneId::Logs {
            self.logs.filter = text.trim().to_ascii_lowercase();
        } else if pane == PaneId::Done {
            self.done.set_filter(text, &snap);
        } else if pane == PaneId::Actions {
            self.actions.set_filter(text, &snap);
        } else if let Some(q) = self.queue_mut(pane) {
            q.set_filter(text, &snap);
        }
    }

    fn submit_prompt(&mut self, mut p: Prompt<PromptKind>) -> Option<Popup> {
        match p.kind.clone() {
            PromptKind::DismissReason(plan) => {
                let reason = p.input.value.trim().to_string();
                if reason.is_empty() {
                    let msg = "the reason is empty: say why they will never succeed, or esc";
                    p.error = Some(msg.into());
                    self.refuse(format!("dismiss: {msg}"));
                    return Some(Popup::Prompt(p));
                }
                Some(Popup::Confirm(Confirm::new(
                    "Dismiss",
                    format!(
                        "Dismiss {}? They become CANCELLED (reason: {reason}) and leave the failed pane; history keeps them.",
                        plan.what
                    ),
                    Deferred::Send {
                        label: format!("dismiss {}", plan.label),
                        command: plan.command(reason),
                    },
                )))
            }
            PromptKind::Filter(pane) => {
                let text = p.input.value.clone();
                self.apply_filter(pane, &text);
                if text.trim().is_empty() {
                    self.info("filter cleared");
                } else {
                    self.info(format!("filter /{}", text.trim()));
                }
                None
            }
            PromptKind::Promote => {
                let text = p.input.value.trim().to_string();
                let mut words = text.split_whitespace();
                let conid = words.next().map(str::parse::<i32>);
                let strategy: Vec<&str> = words.collect();
                match conid {
                    Some(Ok(conid)) if conid > 0 => {
                        let strategy = (!strategy.is_empty()).then(|| strategy.join(" "));
                        let label = match &strategy {
                            Some(s) => format!("promote {conid} ({s})"),
                            None => format!("promote {conid}"),
                        };
                        self.send(Command::Promote { conid, strategy }, Purpose::Status(label));
                        None
                    }
                    _ => {
                        let msg = if text.is_empty() {
                            "type a contract id (conid)".to_string()
                        } else {
                            format!(
                                "`{}` is not a contract id: a positive whole number",
                                text.split_whitespace().next().unwrap_or("")
                            )
                        };
                        p.error = Some(msg.clone());
                        self.refuse(format!("promote: {msg}"));
                        Some(Popup::Prompt(p))
                    }
                }
            }
        }
    }
}
