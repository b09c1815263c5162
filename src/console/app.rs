//! The console's UI state and logic: which pane has focus, the popups, the status line, the
//! commands waiting for replies. Keys come in as actions; commands go out through `outbox`
//! (the run loop sends them on spawned tasks); replies come back through `on_reply`.
//! Drawing is a pure function of the snapshot and this state (`draw(&self)`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;
use uuid::Uuid;

mod act;
pub mod bulk;
mod draw;
mod popup_keys;
mod queue_keys;

mod cmdline_keys;

use super::cmdline::history::History as CommandHistory;
use super::cmdline::CmdLine;
use super::keymap::{Action, Context, Key, KeyMap};
use super::logs::LogBuffer;
use super::panes::actions::ActionsPane;
use super::panes::done::DonePane;
use super::panes::legs::LegsPane;
use super::panes::logs::LogsPane;
use super::panes::queue::{QueueKind, QueuePane};
use super::panes::schedule::SchedulePane;
use super::panes::{Component, Handled, View};
use super::popups::confirm::Confirm;
use super::popups::detail::{Detail, DetailBody, History};
use super::popups::form::NewRequestForm;
use super::popups::help::Help;
use super::popups::prompt::Prompt;
use super::theme::Theme;
use crate::engine::{Command, CommandResult, Reply, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaneId {
    Pending,
    Processing,
    Failed,
    Legs,
    Logs,
    Schedule,
    Done,
    Actions,
}

impl PaneId {
    pub const ALL: [PaneId; 8] = [
        PaneId::Pending,
        PaneId::Processing,
        PaneId::Failed,
        PaneId::Legs,
        PaneId::Logs,
        PaneId::Schedule,
        PaneId::Done,
        PaneId::Actions,
    ];

    pub fn context(self) -> Context {
        match self {
            PaneId::Pending | PaneId::Processing | PaneId::Failed => Context::Queue,
            PaneId::Legs => Context::Legs,
            PaneId::Logs => Context::Logs,
            PaneId::Schedule => Context::Schedule,
            // Movement, details, filter and copy: the global keys.
            PaneId::Done | PaneId::Actions => Context::Global,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            PaneId::Pending => "Pending",
            PaneId::Processing => "Processing",
            PaneId::Failed => "Failed",
            PaneId::Legs => "Legs",
            PaneId::Logs => "Logs",
            PaneId::Schedule => "Schedule",
            PaneId::Done => "Done",
            PaneId::Actions => "Actions",
        }
    }

    /// The title in four letters, for tabs on a narrow screen.
    pub fn short(self) -> &'static str {
        match self {
            PaneId::Pending => "Pend",
            PaneId::Processing => "Proc",
            PaneId::Failed => "Fail",
            PaneId::Legs => "Legs",
            PaneId::Logs => "Logs",
            PaneId::Schedule => "Sched",
            PaneId::Done => "Done",
            PaneId::Actions => "Acts",
        }
    }

    pub fn index(self) -> usize {
        PaneId::ALL.iter().position(|p| *p == self).unwrap()
    }
}

/// What a confirmed dialog does.
#[derive(Debug, Clone)]
pub enum Deferred {
    Send { command: Command, label: String },
    Quit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PromptKind {
    Filter(PaneId),
    Promote,
    /// The reason for a dismissal, asked before its confirmation.
    DismissReason(bulk::DismissPlan),
}

pub enum Popup {
    Confirm(Confirm<Deferred>),
    Detail(Detail),
    Help(Help),
    Prompt(Prompt<PromptKind>),
    NewRequest(NewRequestForm),
}

/// Why a command was sent, so its reply lands in the right place.
#[derive(Debug, Clone)]
pub enum Purpose {
    Status(String),
    History(Uuid),
    /// `:show ID` of a request not on screen: its history opens the detail view.
    Show(Uuid),
    Shutdown,
}

/// A command for the run loop to send; its reply comes back with the same ticket.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub ticket: u64,
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Info,
    Done,
    Refused,
}

#[derive(Debug, Clone)]
pub struct StatusLine {
    pub text: String,
    pub kind: StatusKind,
}

/// The reason recorded when a failure is dismissed in the console.
pub const DISMISS_REASON_CONSOLE: &str = "dismissed in the console";

pub struct App {
    pub keymap: KeyMap,
    pub theme: Theme,
    pub stale_after: chrono::Duration,
    pub snap: Arc<Snapshot>,
    pub now: DateTime<Utc>,
    pub focus: PaneId,
    pub pending: QueuePane,
    pub processing: QueuePane,
    pub failed: QueuePane,
    pub legs: LegsPane,
    pub logs: LogsPane,
    pub schedule: SchedulePane,
    pub done: DonePane,
    pub actions: ActionsPane,
    /// Which of logs, done and actions the large layout's shared place shows: the one
    /// focused last.
    side: PaneId,
    /// The `:` line while it is open.
    pub cmdline: Option<CmdLine>,
    /// The `:` line's history (`[console] history_file`).
    pub history: CommandHistory,
    /// The symbols of `[contracts]`, for the `:` line's completion.
    pub symbols: Vec<String>,
    pub popup: Option<Popup>,
    pub status: Option<StatusLine>,
    /// Problems the console itself saw (a background task that panicked).
    pub alerts: Vec<String>,
    pub outbox: Vec<Outgoing>,
    waiting: HashMap<u64, Purpose>,
    next_ticket: u64,
    /// Set once the run loop should leave.
    pub exit: bool,
    pub shutting_down: bool,
    /// Text to put on the clipboard (OSC 52), taken by the run loop.
    pub clipboard: Option<String>,
}

/// The last guard before the terminal: every draw site cleans outside text
/// (`crate::text::clean`), so no cell should hold a character a terminal acts on. One that
/// does (a site that forgot) shows U+FFFD instead of reaching the terminal.
pub fn scrub(buf: &mut ratatui::buffer::Buffer) {
    for cell in buf.content.iter_mut() {
        if cell.symbol().contains(crate::text::is_unsafe) {
            cell.set_symbol(SCRUBBED);
        }
    }
}

/// What [`scrub`] draws in place of a cell that held a control character.
pub const SCRUBBED: &str = "\u{fffd}";

impl App {
    pub fn new(
        keymap: KeyMap,
        theme: Theme,
        stale_after: chrono::Duration,
        snap: Arc<Snapshot>,
        logs: LogBuffer,
    ) -> Self {
        let now = snap.taken_at;
        let mut app = Self {
            keymap,
            theme,
            stale_after,
            snap,
            now,
            focus: PaneId::Pending,
            pending: QueuePane::new(QueueKind::Pending),
            processing: QueuePane::new(QueueKind::Processing),
            failed: QueuePane::new(QueueKind::Failed),
            legs: LegsPane::default(),
            logs: LogsPane::new(logs),
            schedule: SchedulePane::default(),
            done: DonePane::default(),
            actions: ActionsPane::default(),
            side: PaneId::Logs,
            cmdline: None,
            history: CommandHistory::default(),
            symbols: Vec::new(),
            popup: None,
            status: None,
            alerts: Vec::new(),
            outbox: Vec::new(),
            waiting: HashMap::new(),
            next_ticket: 1,
            exit: false,
            clipboard: None,
            shutting_down: false,
        };
        let new = app.keys(Context::Global, Action::NewRequest);
        for pane in [&mut app.pending, &mut app.processing, &mut app.failed] {
            pane.empty_hint = format!("{new} new request");
        }
        app.sync();
        app
    }

    pub fn view(&self) -> View<'_> {
        View {
            snap: &self.snap,
            now: self.now,
            theme: self.theme,
            stale_after: self.stale_after,
        }
    }

    pub fn set_snapshot(&mut self, snap: Arc<Snapshot>) {
        self.snap = snap;
        self.sync();
    }

    fn sync(&mut self) {
        let snap = self.snap.clone();
        self.pending.sync(&snap);
        self.processing.sync(&snap);
        self.failed.sync(&snap);
        let view = View {
            snap: &snap,
            now: self.now,
            theme: self.theme,
            stale_after: self.stale_after,
        };
        self.legs.sync(&view);
        self.schedule.sync(&view);
        self.done.sync(&snap);
        self.actions.sync(&snap);
    }

    pub fn queue(&self, pane: PaneId) -> Option<&QueuePane> {
        match pane {
            PaneId::Pending => Some(&self.pending),
            PaneId::Processing => Some(&self.processing),
            PaneId::Failed => Some(&self.failed),
            _ => None,
        }
    }

    fn queue_mut(&mut self, pane: PaneId) -> Option<&mut QueuePane> {
        match pane {
            PaneId::Pending => Some(&mut self.pending),
            PaneId::Processing => Some(&mut self.processing),
            PaneId::Failed => Some(&mut self.failed),
            _ => None,
        }
    }

    /// The keys bound to `action` in `context`, as the help prints them.
    pub fn keys(&self, context: Context, action: Action) -> String {
        self.keymap
            .bindings()
            .find(|(c, a, _)| *c == context && *a == action)
            .map(|(_, _, ks)| ks.iter().map(Key::to_string).collect::<Vec<_>>().join("/"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "(unbound)".into())
    }

    fn info(&mut self, text: impl Into<String>) {
        self.status = Some(StatusLine {
            text: text.into(),
            kind: StatusKind::Info,
        });
    }

    fn refuse(&mut self, text: impl Into<String>) {
        self.status = Some(StatusLine {
            text: text.into(),
            kind: StatusKind::Refused,
        });
    }

    /// Queues `command` for the run loop; the reply goes where `purpose` says.
    pub fn send(&mut self, command: Command, purpose: Purpose) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Purpose::Status(label) = &purpose {
            self.info(format!("{label}…"));
        }
        self.waiting.insert(ticket, purpose);
        self.outbox.push(Outgoing { ticket, command });
    }

    /// Text waiting to be copied (taken).
    pub fn take_clipboard(&mut self) -> Option<String> {
        self.clipboard.take()
    }

    /// `y`: the ids of the marked (or selected) requests, the legs' conids, or the log line;
    /// `Y`: `ibq show ID` for each request. One per line.
    fn copy(&mut self, show: bool) {
        let snap = self.snap.clone();
        let (lines, what): (Vec<String>, &str) = match self.focus {
            PaneId::Legs if !show => (
                self.legs
                    .targets(&self.view())
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
                "conid",
            ),
            PaneId::Logs if !show => (
                self.logs.current().map(|l| l.message).into_iter().collect(),
                "log line",
            ),
            PaneId::Done | PaneId::Actions => {
                let ids = self.side_targets();
                if show {
                    (
                        ids.iter().map(|id| format!("ibq show {id}")).collect(),
                        "command",
                    )
                } else {
                    (ids.iter().map(|id| id.to_string()).collect(), "id")
                }
            }
            p => match self.queue(p) {
                Some(q) => {
                    let ids = q.targets(&snap);
                    if show {
                        (
                            ids.iter().map(|id| format!("ibq show {id}")).collect(),
                            "command",
                        )
                    } else {
                        (ids.iter().map(|id| id.to_string()).collect(), "id")
                    }
                }
                None => {
                    return self.refuse("copy show: works on the request panes (1, 2, 3, 7, 8)");
                }
            },
        };
        if lines.is_empty() {
            return self.refuse("copy: nothing selected");
        }
        let n = lines.len();
        self.clipboard = Some(lines.join("\n"));
        self.info(format!("copied {} to the clipboard", Self::plural(n, what)));
    }

    /// Commands waiting for the run loop (taken).
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    pub fn on_reply(&mut self, ticket: u64, result: CommandResult) {
        let Some(purpose) = self.waiting.remove(&ticket) else {
            return;
        };
        match purpose {
            Purpose::Status(label) => {
                self.status = Some(match result {
                    Ok(Reply::Done(msg)) if msg.is_empty() => StatusLine {
                        text: format!("{label}: done"),
                        kind: StatusKind::Done,
                    },
                    Ok(Reply::Done(msg)) => StatusLine {
                        text: format!("{label}: done · {msg}"),
                        kind: StatusKind::Done,
                    },
                    Ok(Reply::History(_)) => StatusLine {
                        text: format!("{label}: done"),
                        kind: StatusKind::Done,
                    },
                    Err(reason) => StatusLine {
                        text: format!("{label}: refused · {reason}"),
                        kind: StatusKind::Refused,
                    },
                });
            }
            Purpose::History(id) => {
                if let Some(Popup::Detail(d)) = &mut self.popup {
                    if d.request_id() == Some(id) {
                        if let DetailBody::Request { history, .. } = &mut d.body {
                            *history = match result {
                                Ok(Reply::History(rows)) => History::Loaded(rows),
                                Ok(Reply::Done(msg)) => History::Failed(format!(
                                    "the engine answered `{msg}` instead of the history"
                                )),
                                Err(reason) => History::Failed(reason),
                            };
                        }
                    }
                }
            }
            Purpose::Show(id) => self.on_show_reply(id, result),
            Purpose::Shutdown => {
                self.exit = true;
            }
        }
    }

    /// The action a key means where the focus is.
    pub fn action_for(&self, key: &KeyEvent) -> Option<Action> {
        self.keymap.action_for(self.focus.context(), key)
    }

    pub fn on_key(&mut self, key: &KeyEvent) {
        if self.cmdline.is_some() {
            self.on_cmdline_key(key);
        } else if self.popup.is_some() {
            self.on_popup_key(key);
        } else if let Some(action) = self.action_for(key) {
            self.act(action);
        }
        self.remember_side();
    }

    fn focused_component(&mut self) -> &mut dyn Component {
        match self.focus {
            PaneId::Pending => &mut self.pending,
            PaneId::Processing => &mut self.processing,
            PaneId::Failed => &mut self.failed,
            PaneId::Legs => &mut self.legs,
            PaneId::Logs => &mut self.logs,
            PaneId::Schedule => &mut self.schedule,
            PaneId::Done => &mut self.done,
            PaneId::Actions => &mut self.actions,
        }
    }

    fn confirm(&mut self, title: &str, message: String, then: Deferred) {
        self.popup = Some(Popup::Confirm(Confirm::new(title, message, then)));
    }

    fn plural(n: usize, what: &str) -> String {
        if n == 1 {
            format!("1 {what}")
        } else {
            format!("{n} {what}s")
        }
    }
}
