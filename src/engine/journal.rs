//! What operators did, as the console's actions view shows it: the actions other processes
//! asked for in `ib_operator_actions` (a `requested` row, then the owner's `applied` or
//! `refused` row under the same `action_id`) and the commands of the engine's own console,
//! which the engine records there as one answered row when it has applied them. Pure
//! logic: rows in, entries (newest first) out.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::actions::ActionRow;
use super::command::{CommandResult, Reply};

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ActionOutcome {
    /// Asked; the owning engine has not answered yet.
    Waiting,
    Applied {
        at: DateTime<Utc>,
        message: String,
    },
    Refused {
        at: DateTime<Utc>,
        message: String,
    },
}

impl ActionOutcome {
    /// `applied`, `refused` or `waiting`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ActionOutcome::Waiting => "waiting",
            ActionOutcome::Applied { .. } => "applied",
            ActionOutcome::Refused { .. } => "refused",
        }
    }

    /// The owner's message (empty while waiting).
    pub fn message(&self) -> &str {
        match self {
            ActionOutcome::Waiting => "",
            ActionOutcome::Applied { message, .. } | ActionOutcome::Refused { message, .. } => {
                message
            }
        }
    }

    pub fn answered_at(&self) -> Option<DateTime<Utc>> {
        match self {
            ActionOutcome::Waiting => None,
            ActionOutcome::Applied { at, .. } | ActionOutcome::Refused { at, .. } => Some(*at),
        }
    }
}

/// One thing an operator did: when, what, on which requests, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionEntry {
    pub action_id: Uuid,
    /// The action's name in `ib_operator_actions` (`retry`, `set_priority`, `promote`, …).
    pub action: String,
    pub request_ids: Vec<Uuid>,
    pub argument: serde_json::Value,
    /// Who asked: `console pid 812`, `ibq cli pid 9031`, `observer pid 77`.
    pub requested_by: String,
    pub asked_at: DateTime<Utc>,
    pub outcome: ActionOutcome,
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

impl ActionEntry {
    /// What was done, in a few words: `retry 3 requests`, `set priority 1 on 1 request`,
    /// `promote 756733 (SPY iron condor)`, `dismiss all failed (IB 200 for good)`.
    pub fn summary(&self) -> String {
        let a = &self.argument;
        let n = self.request_ids.len();
        let requests = plural(n, "request");
        let reason = || {
            a["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        };
        match self.action.as_str() {
            "retry" => format!("retry {requests}"),
            "retry_all_failed" => "retry all failed".into(),
            "set_priority" => format!(
                "set priority {} on {requests}",
                a["priority"]
                    .as_i64()
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            ),
            "bump_priority" if a["up"].as_bool() == Some(false) => {
                format!("lower priority of {requests}")
            }
            "bump_priority" => format!("raise priority of {requests}"),
            "cancel" => format!("cancel {requests}"),
            "dismiss" => format!("dismiss {requests}{}", reason()),
            "dismiss_all_failed" => format!("dismiss all failed{}", reason()),
            "promote" => match a["strategy"].as_str() {
                Some(s) => format!("promote {} ({s})", a["conid"]),
                None => format!("promote {}", a["conid"]),
            },
            "demote" => {
                let conids: Vec<String> = a["conids"]
                    .as_array()
                    .map(|v| v.iter().map(|c| c.to_string()).collect())
                    .unwrap_or_default();
                format!("demote {}", conids.join(", "))
            }
            "pause_worker" => "pause worker".into(),
            "resume_worker" => "resume worker".into(),
            "reconnect" => "reconnect to the gateway".into(),
            "run_job" => format!("run job {}", a["job"].as_str().unwrap_or("?")),
            "enqueue" => format!(
                "enqueue {} {} priority {}",
                a["request_type"].as_str().unwrap_or("?"),
                a["symbol"].as_str().unwrap_or("?"),
                a["priority"]
            ),
            other if n > 0 => format!("{other} {requests}"),
            other => other.to_string(),
        }
    }
}

/// How many actions the journal keeps (the newest).
pub const JOURNAL_KEPT: usize = 500;

/// The entries built from the rows seen so far, paired by `action_id`.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    entries: HashMap<Uuid, ActionEntry>,
    /// Whether an entry's `requested` row was seen (its time is when it was asked).
    asked: HashMap<Uuid, bool>,
}

impl Journal {
    /// Takes in rows in any order: a `requested` row gives what and when, the answer how
    /// it ended; an answer without a request (the engine's own console) is both.
    pub fn absorb(&mut self, rows: impl IntoIterator<Item = ActionRow>) {
        for row in rows {
            let requested = row.status == "requested";
            let outcome = match row.status.as_str() {
                "applied" => ActionOutcome::Applied {
                    at: row.at,
                    message: row.message.clone().unwrap_or_default(),
                },
                "refused" => ActionOutcome::Refused {
                    at: row.at,
                    message: row.message.clone().unwrap_or_default(),
                },
                _ => ActionOutcome::Waiting,
            };
            let seen_request = self.asked.get(&row.action_id).copied();
            match self.entries.get_mut(&row.action_id) {
                None => {
                    self.asked.insert(row.action_id, requested);
                    self.entries.insert(
                        row.action_id,
                        ActionEntry {
                            action_id: row.action_id,
                            action: row.action,
                            request_ids: row.request_ids,
                            argument: row.argument,
                            requested_by: row.requested_by,
                            asked_at: row.at,
                            outcome,
                        },
                    );
                }
                Some(e) if requested => {
                    if seen_request != Some(true) {
                        e.asked_at = row.at;
                        self.asked.insert(row.action_id, true);
                    }
                }
                Some(e) => e.outcome = outcome,
            }
        }
        if self.entries.len() > JOURNAL_KEPT + JOURNAL_KEPT / 4 {
            let mut times: Vec<(DateTime<Utc>, Uuid)> = self
                .entries
                .values()
                .map(|e| (e.asked_at, e.action_id))
                .collect();
            times.sort();
            for (_, id) in &times[..times.len() - JOURNAL_KEPT] {
                self.entries.remove(id);
                self.asked.remove(id);
            }
        }
    }

    /// The newest `limit` entries, newest first.
    pub fn view(&self, limit: usize) -> Arc<[ActionEntry]> {
        let mut all: Vec<&ActionEntry> = self.entries.values().collect();
        all.sort_by(|a, b| {
            b.asked_at
                .cmp(&a.asked_at)
                .then(b.action_id.cmp(&a.action_id))
        });
        all.into_iter().take(limit).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The row recording a command the engine's own console sent, once it was answered: the
/// action as another process would have asked for it, `applied` or `refused` with the
/// reply, dated when it was asked. `None` for what is not an operator action (a history
/// read, the shutdown).
pub fn answered_row(asked: Option<ActionRow>, result: &CommandResult) -> Option<ActionRow> {
    let mut row = asked?;
    let (status, message) = match result {
        Ok(Reply::Done(m)) => ("applied", m.clone()),
        Ok(Reply::History(_)) => ("applied", String::new()),
        Err(m) => ("refused", m.clone()),
    };
    row.status = status.into();
    row.message = Some(message);
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::actions::to_row;
    use crate::engine::Command;

    fn t(s: i64) -> DateTime<Utc> {
        "2026-11-23T15:30:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(s)
    }

    fn row(command: &Command, status: &str, at: i64) -> ActionRow {
        let mut r = to_row(command, "ibq cli pid 9").unwrap();
        r.status = status.into();
        r.at = t(at);
        r
    }

    #[test]
    fn a_request_and_its_answer_are_one_entry_whatever_order_they_are_read_in() {
        let id = Uuid::from_u128(7);
        let asked = row(&Command::Retry(vec![id]), "requested", 0);
        let mut answer = asked.clone();
        answer.status = "applied".into();
        answer.message = Some("retried 1 request".into());
        answer.at = t(1);
        for rows in [
            vec![asked.clone(), answer.clone()],
            vec![answer.clone(), asked.clone()],
        ] {
            let mut j = Journal::default();
            j.absorb(rows);
            let v = j.view(10);
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].asked_at, t(0), "asked when the request was written");
            assert_eq!(v[0].request_ids, vec![id]);
            assert_eq!(
                v[0].outcome,
                ActionOutcome::Applied {
                    at: t(1),
                    message: "retried 1 request".into()
                }
            );
            assert_eq!(v[0].summary(), "retry 1 request");
        }
    }

    #[test]
    fn an_unanswered_request_waits_and_the_newest_comes_first() {
        let mut j = Journal::default();
        j.absorb([
            row(&Command::PauseWorker, "requested", 5),
            row(&Command::Reconnect, "refused", 9),
            row(&Command::Cancel(vec![Uuid::from_u128(1)]), "applied", 2),
        ]);
        let v = j.view(10);
        let order: Vec<&str> = v.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(order, ["reconnect", "pause_worker", "cancel"]);
        assert_eq!(v[1].outcome, ActionOutcome::Waiting);
        assert_eq!(v[1].outcome.as_str(), "waiting");
        assert_eq!(j.view(2).len(), 2);
    }

    #[test]
    fn the_journal_keeps_only_the_newest_actions() {
        let mut j = Journal::default();
        j.absorb((0..(JOURNAL_KEPT as i64 * 2)).map(|i| row(&Command::PauseWorker, "applied", i)));
        assert!(j.len() <= JOURNAL_KEPT + JOURNAL_KEPT / 4, "{}", j.len());
        let v = j.view(usize::MAX);
        assert_eq!(v[0].asked_at, t(JOURNAL_KEPT as i64 * 2 - 1));
    }

    #[test]
    fn summaries_say_what_was_done() {
        let ids = vec![Uuid::from_u128(1), Uuid::from_u128(2)];
        let cases = [
            (Command::RetryAllFailed, "retry all failed"),
            (
                Command::SetPriority(ids.clone(), crate::queue::Priority::IMMEDIATE),
                "set priority 1 on 2 requests",
            ),
            (
                Command::BumpPriority(ids.clone(), false),
                "lower priority of 2 requests",
            ),
            (
                Command::Dismiss(ids.clone(), "IB 200 for good".into()),
                "dismiss 2 requests (IB 200 for good)",
            ),
            (
                Command::Promote {
                    conid: 756733,
                    strategy: Some("ic".into()),
                },
                "promote 756733 (ic)",
            ),
            (
                Command::Demote(vec![756733, 756734]),
                "demote 756733, 756734",
            ),
            (
                Command::RunJob("bars_morning".into()),
                "run job bars_morning",
            ),
        ];
        for (command, want) in cases {
            let mut j = Journal::default();
            j.absorb([row(&command, "applied", 0)]);
            assert_eq!(j.view(1)[0].summary(), want);
        }
    }

    #[test]
    fn a_console_command_is_recorded_answered_and_reads_and_shutdowns_are_not() {
        let asked = to_row(&Command::Cancel(vec![Uuid::from_u128(3)]), "console pid 1").ok();
        let r = answered_row(asked, &Err("request is SUCCESS".into())).unwrap();
        assert_eq!(r.status, "refused");
        assert_eq!(r.message.as_deref(), Some("request is SUCCESS"));
        assert!(to_row(&Command::History(Uuid::from_u128(3)), "console pid 1").is_err());
        assert!(to_row(&Command::Shutdown, "console pid 1").is_err());
    }

    #[test]
    fn an_enqueue_is_recorded_and_read_back_as_the_same_request() {
        let new = crate::queue::NewRequest {
            request_type: crate::queue::RequestType::OptionChain,
            symbol: "SPY".into(),
            priority: crate::queue::Priority::IMMEDIATE,
            parameters: serde_json::json!({"target_dte": 30}),
            changed_by: crate::queue::Actor::Operator,
            schedule_key: None,
            during: crate::market::window::During::Regular,
        };
        let r = to_row(&Command::Enqueue(new.clone()), "console pid 1").unwrap();
        let mut j = Journal::default();
        j.absorb([r.clone()]);
        assert_eq!(
            j.view(1)[0].summary(),
            "enqueue option_chain SPY priority 1"
        );
        match crate::engine::actions::to_command(&r).unwrap() {
            Command::Enqueue(back) => {
                assert_eq!(back.request_type, new.request_type);
                assert_eq!(back.symbol, new.symbol);
                assert_eq!(back.priority, new.priority);
                assert_eq!(back.parameters, new.parameters);
                assert_eq!(back.during, new.during);
            }
            other => panic!("{other:?}"),
        }
    }
}
