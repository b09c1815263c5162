//! What the console does for an action of the key map that the queue panes leave (moving
//! between panes, help, the `:` line, a new request, pause, reconnect, filters, details,
//! copy, promote and demote, running a job, quitting), and for a confirmed dialog.

use super::*;

impl App {
    pub fn act(&mut self, action: Action) {
        if self.queue_action(action) {
            return;
        }
        let snap = self.snap.clone();
        match action {
            Action::NextPane => {
                self.focus = PaneId::ALL[(self.focus.index() + 1) % PaneId::ALL.len()]
            }
            Action::PrevPane => {
                let n = PaneId::ALL.len();
                self.focus = PaneId::ALL[(self.focus.index() + n - 1) % n]
            }
            Action::FocusPending => self.focus = PaneId::Pending,
            Action::FocusProcessing => self.focus = PaneId::Processing,
            Action::FocusFailed => self.focus = PaneId::Failed,
            Action::FocusLegs => self.focus = PaneId::Legs,
            Action::FocusLogs => self.focus = PaneId::Logs,
            Action::FocusSchedule => self.focus = PaneId::Schedule,
            Action::FocusDone => self.focus = PaneId::Done,
            Action::FocusActions => self.focus = PaneId::Actions,
            Action::CommandLine => self.open_cmdline(),
            Action::RunJobNow => self.run_job_now(),
            Action::Help => self.popup = Some(Popup::Help(Help::default())),
            Action::Quit => {
                if self.shutting_down {
                    self.exit = true;
                } else if !snap.processing.is_empty() {
                    self.confirm(
                        "Quit",
                        match snap.processing.len() {
                            1 => "1 request is PROCESSING. Quit and shut the engine down (it finishes or is released)?".to_string(),
                            n => format!("{n} requests are PROCESSING. Quit and shut the engine down (in-flight requests finish or are released)?"),
                        },
                        Deferred::Quit,
                    );
                } else {
                    self.run(Deferred::Quit);
                }
            }
            Action::NewRequest => self.popup = Some(Popup::NewRequest(NewRequestForm::default())),
            Action::TogglePause => {
                if snap.worker.paused {
                    self.send(Command::ResumeWorker, Purpose::Status("resume worker".into()));
                } else {
                    self.send(Command::PauseWorker, Purpose::Status("pause worker".into()));
                }
            }
            Action::Reconnect => self.confirm(
                "Reconnect",
                "Drop the gateway connection and connect again now? Streams and in-flight requests are interrupted.".into(),
                Deferred::Send {
                    command: Command::Reconnect,
                    label: "reconnect".into(),
                },
            ),
            Action::Filter => {
                let current = match self.focus {
                    PaneId::Logs => self.logs.filter.clone(),
                    PaneId::Done => self.done.list.filter().to_string(),
                    PaneId::Actions => self.actions.list.filter().to_string(),
                    p => match self.queue(p) {
                        Some(q) => q.filter().to_string(),
                        None => {
                            return self.refuse("filter: works on the queue and logs panes");
                        }
                    },
                };
                let help = match self.focus {
                    PaneId::Logs => "text in the message, target or fields; empty shows all",
                    PaneId::Actions => "words in any column (what, requests, who, outcome)",
                    _ => "text in any column; type: symbol: code: status: param.NAME:, ! negates",
                };
                self.popup = Some(Popup::Prompt(Prompt::new(
                    PromptKind::Filter(self.focus),
                    &format!("Filter {}", self.focus.title().to_lowercase()),
                    help,
                    &current,
                )));
            }
            Action::Dismiss => {
                let focus = self.focus;
                let cleared = if let Some(q) = self.queue_mut(focus) {
                    if q.cancel_range() {
                        Some("range dropped")
                    } else if !q.marks.is_empty() {
                        q.marks.clear();
                        Some("marks cleared")
                    } else if !q.filter().is_empty() {
                        q.set_filter("", &snap);
                        Some("filter cleared")
                    } else {
                        None
                    }
                } else if focus == PaneId::Legs && !self.legs.marks.is_empty() {
                    self.legs.marks.clear();
                    Some("marks cleared")
                } else if focus == PaneId::Logs && !self.logs.filter.is_empty() {
                    self.logs.filter.clear();
                    Some("filter cleared")
                } else if matches!(focus, PaneId::Done | PaneId::Actions)
                    && self.side_filter_clear()
                {
                    Some("filter cleared")
                } else {
                    None
                };
                if let Some(text) = cleared {
                    self.info(text);
                }
            }
            Action::Details => {
                if self.focus == PaneId::Failed && self.failed.toggle_expanded(&snap) {
                    return;
                }
                self.open_details()
            }
            Action::Copy | Action::CopyShow => self.copy(action == Action::CopyShow),
            Action::Promote => {
                self.popup = Some(Popup::Prompt(Prompt::new(
                    PromptKind::Promote,
                    "Promote a contract to a streaming leg",
                    "CONID [STRATEGY], e.g. 756733 iron-condor",
                    "",
                )))
            }
            Action::Demote => {
                if self.focus != PaneId::Legs {
                    return self.refuse("demote: select a leg in the legs pane (4) first");
                }
                let conids = self.legs.targets(&self.view());
                if conids.is_empty() {
                    return self.refuse("demote: no leg selected");
                }
                let list = conids.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
                let what = Self::plural(conids.len(), "leg");
                self.confirm(
                    "Demote",
                    format!("Stop streaming {what} ({list}) and free the lines?"),
                    Deferred::Send {
                        command: Command::Demote(conids),
                        label: format!("demote {what}"),
                    },
                );
            }
            Action::Confirm | Action::Submit => {}
            _ => {
                let view_snap = snap.clone();
                let view = View {
                    snap: &view_snap,
                    now: self.now,
                    theme: self.theme,
                    stale_after: self.stale_after,
                };
                if self.focused_component().handle(action, &view) == Handled::NotConsumed {
                    let place = self.focus.title().to_lowercase();
                    self.refuse(format!("{action}: does nothing in the {place} pane"));
                }
            }
        }
    }

    /// Asks before running the selected job now: its occurrence at priority 1.
    fn run_job_now(&mut self) {
        if self.focus != PaneId::Schedule {
            return self.refuse("run now: select a job in the schedule pane (6) first");
        }
        let Some(job) = self.schedule.selected(&self.view()).cloned() else {
            return self.refuse("run now: no job selected");
        };
        let what = if job.symbols.is_empty() {
            format!("1 {} request", job.request_type)
        } else {
            format!(
                "{} ({})",
                Self::plural(job.symbols.len(), &format!("{} request", job.request_type)),
                job.symbols.join(", ")
            )
        };
        self.confirm(
            "Run now",
            format!("Run {} now? Enqueues {what} at priority 1.", job.name),
            Deferred::Send {
                command: Command::RunJob(job.name.clone()),
                label: format!("run {}", job.name),
            },
        );
    }

    fn open_details(&mut self) {
        let snap = self.snap.clone();
        let body = match self.focus {
            PaneId::Schedule => match self.schedule.selected(&self.view()) {
                Some(j) => DetailBody::JobDay(j.clone()),
                None => return self.refuse("details: no job selected"),
            },
            PaneId::Legs => match self.legs.selected(&self.view()) {
                Some(l) => DetailBody::Leg(l.clone()),
                None => return self.refuse("details: no leg selected"),
            },
            PaneId::Logs => match self.logs.current() {
                Some(l) => DetailBody::Log(l),
                None => return self.refuse("details: no log line"),
            },
            PaneId::Actions => match self.actions.selected(&snap) {
                Some(e) => DetailBody::Action(e.clone()),
                None => return self.refuse("details: no action selected"),
            },
            p => match self
                .queue(p)
                .and_then(|q| q.selected(&snap))
                .or_else(|| self.done.selected(&snap).filter(|_| p == PaneId::Done))
            {
                Some(r) => {
                    let id = r.request_id;
                    let body = DetailBody::Request {
                        request: r.clone(),
                        history: History::Loading,
                    };
                    self.send(Command::History(id), Purpose::History(id));
                    body
                }
                None => return self.refuse("details: no request selected"),
            },
        };
        self.popup = Some(Popup::Detail(Detail::new(body)));
    }

    /// Does what a confirmed dialog (or an action needing no confirmation) decided.
    pub fn run(&mut self, deferred: Deferred) {
        match deferred {
            Deferred::Send { command, label } => {
                // The marks were what the action applied to; start afresh.
                self.pending.marks.clear();
                self.failed.marks.clear();
                self.processing.marks.clear();
                self.legs.marks.clear();
                self.send(command, Purpose::Status(label));
            }
            Deferred::Quit => {
                self.shutting_down = true;
                self.send(Command::Shutdown, Purpose::Shutdown);
                self.info("shutting down: in-flight requests finish or are released…");
            }
        }
    }
}
