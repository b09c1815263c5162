//! The `:` command line's keys and what a typed line does, and what the done and actions
//! panes add to the app: their shared place in the large layout, copy and filter.

use std::sync::Arc;

use crossterm::event::KeyEvent;
use uuid::Uuid;

use super::{App, Deferred, PaneId, Popup, Purpose};
use crate::console::cmdline::history::History as CommandHistory;
use crate::console::cmdline::CmdLine;
use crate::console::keymap::{Action, Context};
use crate::console::popups::detail::{Detail, DetailBody, History};
use crate::engine::{Command, CommandResult, Reply};

impl App {
    /// The `[contracts]` symbols for completion and the command history (its file), with
    /// why the history could not be read, if it could not.
    pub fn set_command_line(&mut self, symbols: Vec<String>, history: CommandHistory) {
        self.symbols = symbols;
        self.history = history;
    }

    pub(super) fn open_cmdline(&mut self) {
        self.history.stop();
        self.cmdline = Some(CmdLine::default());
    }

    /// The keys of the open line, as bound: `tab complete · enter run · esc close`.
    pub(super) fn cmdline_hint(&self) -> String {
        let k = |a| self.keys(Context::CommandLine, a);
        format!(
            "{} complete · {} history · {} run · {} close ",
            k(Action::Complete),
            k(Action::HistoryPrev).split('/').next().unwrap_or_default(),
            k(Action::Submit),
            k(Action::Dismiss)
        )
    }

    pub(super) fn on_cmdline_key(&mut self, key: &KeyEvent) {
        let Some(mut line) = self.cmdline.take() else {
            return;
        };
        let snap = self.snap.clone();
        let catalog = crate::console::cmdline::complete::Catalog {
            snap: &snap,
            symbols: &self.symbols,
        };
        match self.keymap.action_for(Context::CommandLine, key) {
            Some(Action::Submit) => return self.run_line(&line.input),
            // Esc closes the candidates first, then the line.
            Some(Action::Dismiss) if line.menu.is_some() => line.menu = None,
            Some(Action::Dismiss) => return self.history.stop(),
            Some(Action::Complete) => line.complete(&catalog, true),
            Some(Action::CompleteBack) => line.complete(&catalog, false),
            Some(Action::HistoryPrev) => line.walk(&mut self.history, &catalog, true),
            Some(Action::HistoryNext) => line.walk(&mut self.history, &catalog, false),
            // Backspace on an empty line closes it, as in vim.
            _ if key.code == crossterm::event::KeyCode::Backspace && line.input.is_empty() => {
                return self.history.stop();
            }
            _ => {
                if line.edit(key) {
                    self.history.stop();
                }
            }
        }
        self.cmdline = Some(line);
    }

    /// Runs a typed line: kept in the history, read with the CLI's grammar, sent (after a
    /// yes when destructive); a refusal shows in the status line.
    fn run_line(&mut self, text: &str) {
        use crate::console::cmdline::parse::{parse, Parsed};
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if let Err(e) = self.history.push(text) {
            if !self.alerts.contains(&e) {
                self.alerts.push(e);
            }
        }
        match parse(text, &self.snap) {
            Ok(Parsed::Send { command, label }) => self.send(command, Purpose::Status(label)),
            Ok(Parsed::Confirm {
                title,
                message,
                command,
                label,
            }) => self.confirm(&title, message, Deferred::Send { command, label }),
            Ok(Parsed::Show(id)) => self.show_request(id),
            Ok(Parsed::Nothing(m)) => self.info(m),
            Err(e) => self.refuse(e),
        }
    }

    /// `:show ID`: the detail view of a request on screen, else of what its history says.
    fn show_request(&mut self, id: Uuid) {
        let snap = self.snap.clone();
        let shown = snap
            .pending
            .iter()
            .chain(snap.processing.iter())
            .chain(snap.failed.iter())
            .chain(snap.done.iter())
            .find(|r| r.request_id == id)
            .cloned();
        match shown {
            Some(request) => {
                self.send(Command::History(id), Purpose::History(id));
                self.popup = Some(Popup::Detail(Detail::new(DetailBody::Request {
                    request,
                    history: History::Loading,
                })));
            }
            None => {
                self.info(format!("show {id}: reading its history…"));
                self.send(Command::History(id), Purpose::Show(id));
            }
        }
    }

    pub(super) fn on_show_reply(&mut self, id: Uuid, result: CommandResult) {
        match result {
            Ok(Reply::History(rows)) => match rows.last() {
                Some(last) => {
                    self.status = None;
                    if self.popup.is_none() {
                        let request = Arc::new(last.clone());
                        self.popup = Some(Popup::Detail(Detail::new(DetailBody::Request {
                            request,
                            history: History::Loaded(rows),
                        })));
                    }
                }
                None => self.refuse(format!("show: {}", crate::queue::QueueError::NotFound(id))),
            },
            Ok(Reply::Done(m)) => self.refuse(format!(
                "show: the engine answered `{m}` instead of the history"
            )),
            Err(e) => self.refuse(format!("show: {e}")),
        }
    }

    /// Which of logs, done and actions the large layout shows in their shared place.
    pub(super) fn side_shown(&self) -> PaneId {
        match self.focus {
            p @ (PaneId::Logs | PaneId::Done | PaneId::Actions) => p,
            _ => self.side,
        }
    }

    /// Remembers the last of logs, done and actions that had focus.
    pub fn remember_side(&mut self) {
        self.side = self.side_shown();
    }

    /// The requests `y` and `Y` copy in the done and actions panes.
    pub(super) fn side_targets(&self) -> Vec<Uuid> {
        match self.focus {
            PaneId::Done => self
                .done
                .selected(&self.snap)
                .map(|r| r.request_id)
                .into_iter()
                .collect(),
            PaneId::Actions => self
                .actions
                .selected(&self.snap)
                .map(|e| e.request_ids.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Clears the focused done or actions pane's filter; false when it had none.
    pub(super) fn side_filter_clear(&mut self) -> bool {
        let snap = self.snap.clone();
        match self.focus {
            PaneId::Done if !self.done.list.filter().is_empty() => {
                self.done.set_filter("", &snap);
                true
            }
            PaneId::Actions if !self.actions.list.filter().is_empty() => {
                self.actions.set_filter("", &snap);
                true
            }
            _ => false,
        }
    }
}
