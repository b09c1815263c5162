//! Operator actions from processes that do not own the queue (an observer console, the
//! command line while an engine runs): they append a `requested` row to the Delta table
//! `ib_operator_actions`; the owning engine applies it and appends the outcome (`applied` or
//! `refused`, with the message) under the same `action_id`. Two consoles on one lake never
//! run two workers: only the owner applies anything. The owner also records there the
//! commands of its own console, as one answered row each, so the table is the one journal
//! of what operators did (`journal`).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::command::Command;
use super::journal::Journal;
use crate::lake::columns::{col, BatchBuilder, BatchReader, Col, ColumnKind::*};
use crate::lake::table::DataFile;
use crate::lake::{LakeError, LakeTable};
use crate::queue::Priority;

pub const ACTIONS_TABLE: &str = "ib_operator_actions";

pub const ACTION_COLUMNS: &[Col] = &[
    col("action_id", Utf8),
    col("action", Utf8),
    col("request_ids", Utf8),
    col("argument", Utf8),
    col("status", Utf8),
    col("message", Utf8),
    col("requested_by", Utf8),
    col("at", Timestamp),
];

/// One row of the actions table.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub action_id: Uuid,
    pub action: String,
    pub request_ids: Vec<Uuid>,
    pub argument: serde_json::Value,
    /// `requested`, `applied` or `refused`.
    pub status: String,
    pub message: Option<String>,
    pub requested_by: String,
    pub at: DateTime<Utc>,
}

fn encode(rows: &[ActionRow]) -> deltalake::arrow::array::RecordBatch {
    BatchBuilder::new(ACTION_COLUMNS)
        .utf8(rows.iter().map(|r| Some(r.action_id.to_string())))
        .utf8(rows.iter().map(|r| Some(r.action.as_str())))
        .utf8(
            rows.iter()
                .map(|r| Some(serde_json::to_string(&r.request_ids).expect("ids serialize"))),
        )
        .utf8(rows.iter().map(|r| Some(r.argument.to_string())))
        .utf8(rows.iter().map(|r| Some(r.status.as_str())))
        .utf8(rows.iter().map(|r| r.message.as_deref()))
        .utf8(rows.iter().map(|r| Some(r.requested_by.as_str())))
        .timestamp(rows.iter().map(|r| Some(r.at)))
        .finish()
}

fn decode(batch: &deltalake::arrow::array::RecordBatch) -> Result<Vec<ActionRow>, String> {
    let r = BatchReader::new(batch);
    let (id, action, ids, arg) = (
        r.utf8("action_id")?,
        r.utf8("action")?,
        r.utf8("request_ids")?,
        r.utf8("argument")?,
    );
    let (status, message, by, at) = (
        r.utf8("status")?,
        r.utf8("message")?,
        r.utf8("requested_by")?,
        r.timestamp("at")?,
    );
    Ok((0..r.len())
        .filter_map(|i| {
            Some(ActionRow {
                action_id: Uuid::parse_str(id[i].as_deref()?).ok()?,
                action: action[i].clone()?,
                request_ids: ids[i]
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default(),
                argument: arg[i]
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default(),
                status: status[i].clone()?,
                message: message[i].clone(),
                requested_by: by[i].clone().unwrap_or_default(),
                at: at[i]?,
            })
        })
        .collect())
}

/// The row that asks for `command`, or why it cannot be asked remotely.
pub fn to_row(command: &Command, requested_by: &str) -> Result<ActionRow, String> {
    let (action, ids, argument) = match command {
        Command::Retry(ids) => ("retry", ids.clone(), serde_json::Value::Null),
        Command::RetryAllFailed => ("retry_all_failed", vec![], serde_json::Value::Null),
        Command::SetPriority(ids, p) => (
            "set_priority",
            ids.clone(),
            serde_json::json!({"priority": p.get()}),
        ),
        Command::BumpPriority(ids, up) => {
            ("bump_priority", ids.clone(), serde_json::json!({"up": up}))
        }
        Command::Cancel(ids) => ("cancel", ids.clone(), serde_json::Value::Null),
        Command::Dismiss(ids, reason) => (
            "dismiss",
            ids.clone(),
            serde_json::json!({"reason": reason}),
        ),
        Command::DismissAllFailed(reason) => (
            "dismiss_all_failed",
            vec![],
            serde_json::json!({"reason": reason}),
        ),
        Command::Release(ids) => ("release", ids.clone(), serde_json::Value::Null),
        Command::Promote { conid, strategy } => (
            "promote",
            vec![],
            serde_json::json!({"conid": conid, "strategy": strategy}),
        ),
        Command::Demote(conids) => ("demote", vec![], serde_json::json!({"conids": conids})),
        Command::PauseWorker => ("pause_worker", vec![], serde_json::Value::Null),
        Command::ResumeWorker => ("resume_worker", vec![], serde_json::Value::Null),
        Command::Reconnect => ("reconnect", vec![], serde_json::Value::Null),
        Command::RunJob(job) => ("run_job", vec![], serde_json::json!({"job": job})),
        Command::Enqueue(new) => (
            "enqueue",
            vec![],
            serde_json::json!({
                "request_type": new.request_type.as_str(),
                "symbol": new.symbol,
                "priority": new.priority.get(),
                "parameters": new.parameters,
                "during": new.during.to_string(),
            }),
        ),
        Command::History(_) | Command::Shutdown => {
            return Err("this action is not sent to the owning engine".into())
        }
    };
    Ok(ActionRow {
        action_id: Uuid::new_v4(),
        action: action.into(),
        request_ids: ids,
        argument,
        status: "requested".into(),
        message: None,
        requested_by: requested_by.into(),
        at: Utc::now(),
    })
}

/// The command a requested row asks for.
pub fn to_command(row: &ActionRow) -> Result<Command, String> {
    let a = &row.argument;
    let ids = row.request_ids.clone();
    Ok(match row.action.as_str() {
        "retry" => Command::Retry(ids),
        "retry_all_failed" => Command::RetryAllFailed,
        "set_priority" => Command::SetPriority(
            ids,
            Priority::try_from(a["priority"].as_i64().unwrap_or(0))?,
        ),
        "bump_priority" => Command::BumpPriority(ids, a["up"].as_bool().unwrap_or(true)),
        "cancel" => Command::Cancel(ids),
        "dismiss" => Command::Dismiss(ids, a["reason"].as_str().unwrap_or_default().into()),
        "dismiss_all_failed" => {
            Command::DismissAllFailed(a["reason"].as_str().unwrap_or_default().into())
        }
        "release" => Command::Release(ids),
        "promote" => Command::Promote {
            conid: a["conid"].as_i64().ok_or("promote without a conid")? as i32,
            strategy: a["strategy"].as_str().map(str::to_string),
        },
        "demote" => Command::Demote(
            a["conids"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|c| c.as_i64().map(|c| c as i32))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "pause_worker" => Command::PauseWorker,
        "resume_worker" => Command::ResumeWorker,
        "reconnect" => Command::Reconnect,
        "enqueue" => Command::Enqueue(crate::queue::NewRequest {
            request_type: a["request_type"].as_str().unwrap_or_default().parse()?,
            symbol: a["symbol"]
                .as_str()
                .ok_or("enqueue without a symbol")?
                .to_string(),
            priority: Priority::try_from(a["priority"].as_i64().unwrap_or(2))?,
            parameters: a
                .get("parameters")
                .cloned()
                .unwrap_or(serde_json::json!({})),
            changed_by: crate::queue::Actor::Operator,
            schedule_key: None,
            during: a["during"].as_str().unwrap_or("any").parse()?,
        }),
        "run_job" => Command::RunJob(
            a["job"]
                .as_str()
                .ok_or("run_job without a job name")?
                .to_string(),
        ),
        other => return Err(format!("unknown action `{other}`")),
    })
}

/// Reads the rows of `ib_operator_actions` added since the last read (files not read yet).
pub struct NewRows {
    table: LakeTable,
    seen_files: HashSet<String>,
}

impl NewRows {
    /// Opens the table (created when missing); the first `next` reads every row.
    pub async fn open(root: &Path) -> Result<Self, LakeError> {
        Ok(Self {
            table: LakeTable::open_or_create(root, ACTIONS_TABLE, ACTION_COLUMNS).await?,
            seen_files: HashSet::new(),
        })
    }

    /// Rows in files this reader has not read before.
    pub async fn next(&mut self) -> Result<Vec<ActionRow>, LakeError> {
        self.table.refresh().await?;
        let files: Vec<DataFile> = self
            .table
            .files()
            .await?
            .into_iter()
            .filter(|f| !self.seen_files.contains(&f.path))
            .collect();
        if files.is_empty() {
            return Ok(vec![]);
        }
        let mut rows = Vec::new();
        for b in self.table.read(&files).await? {
            rows.extend(decode(&b).map_err(|m| LakeError::Table {
                name: ACTIONS_TABLE.into(),
                path: self.table.path().to_path_buf(),
                message: m,
            })?);
        }
        self.seen_files.extend(files.into_iter().map(|f| f.path));
        Ok(rows)
    }

    /// Appends rows in one commit; this reader does not read them back.
    async fn append(&mut self, rows: &[ActionRow]) -> Result<(), LakeError> {
        let (_, added) = self.table.append(&[encode(rows)]).await?;
        self.seen_files.extend(added.into_iter().map(|f| f.path));
        Ok(())
    }
}

/// The owner's side: finds requested actions not yet answered, answers them, records the
/// commands of its own console, and keeps the journal of what operators did.
pub struct ActionInbox {
    rows: NewRows,
    answered: HashSet<Uuid>,
    journal: Journal,
}

impl ActionInbox {
    pub async fn open(root: &Path) -> Result<Self, LakeError> {
        let mut inbox = Self {
            rows: NewRows::open(root).await?,
            answered: HashSet::new(),
            journal: Journal::default(),
        };
        // Requests older than this start are answered as refused: the operator who asked
        // has long stopped waiting, and applying them late would surprise.
        let pending = inbox.poll().await?;
        for row in pending {
            inbox
                .answer(&row, Err("ibq was not running when this was asked".into()))
                .await?;
        }
        Ok(inbox)
    }

    /// Requested actions that appeared since the last poll and are not answered.
    pub async fn poll(&mut self) -> Result<Vec<ActionRow>, LakeError> {
        let rows = self.rows.next().await?;
        for r in rows.iter().filter(|r| r.status != "requested") {
            self.answered.insert(r.action_id);
        }
        let requested = rows
            .iter()
            .filter(|r| r.status == "requested" && !self.answered.contains(&r.action_id))
            .cloned()
            .collect();
        self.journal.absorb(rows);
        Ok(requested)
    }

    /// Records the outcome of a requested action.
    pub async fn answer(
        &mut self,
        row: &ActionRow,
        outcome: Result<String, String>,
    ) -> Result<(), LakeError> {
        let mut answer = row.clone();
        answer.at = Utc::now();
        match outcome {
            Ok(m) => {
                answer.status = "applied".into();
                answer.message = Some(m);
            }
            Err(m) => {
                answer.status = "refused".into();
                answer.message = Some(m);
            }
        }
        self.answered.insert(row.action_id);
        self.journal.absorb([answer.clone()]);
        self.rows.append(&[answer]).await
    }

    /// Records a command the engine's own console sent, already answered (see
    /// [`super::journal::answered_row`]). The journal shows it even when the append fails.
    pub async fn record(&mut self, row: ActionRow) -> Result<(), LakeError> {
        self.answered.insert(row.action_id);
        self.journal.absorb([row.clone()]);
        self.rows.append(&[row]).await
    }

    /// What operators did, as read and recorded so far.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Keeps the table small to open as it grows by a file an action: small files merged
    /// (`policy`: the table has no partitions, so once it holds
    /// `open_partition_max_files`), a checkpoint, old files vacuumed, the log cleaned. The
    /// merged file is read again at the next poll: its requests are all answered, so that
    /// only confirms what is known.
    pub async fn upkeep(
        &mut self,
        policy: &crate::lake::upkeep::Policy,
        now: DateTime<Utc>,
    ) -> Result<crate::lake::upkeep::Report, LakeError> {
        crate::lake::upkeep::run(&mut self.rows.table, policy, None, now).await
    }
}

/// The asking side: appends the request and waits for the owner's answer.
pub async fn ask_owner(
    root: &Path,
    command: &Command,
    requested_by: &str,
    wait: Duration,
) -> Result<String, String> {
    let row = to_row(command, requested_by)?;
    let mut table = LakeTable::open_or_create(root, ACTIONS_TABLE, ACTION_COLUMNS)
        .await
        .map_err(|e| e.to_string())?;
    let (_, mine) = table
        .append(&[encode(std::slice::from_ref(&row))])
        .await
        .map_err(|e| e.to_string())?;
    let mut seen: HashSet<String> = mine.into_iter().map(|f| f.path).collect();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        table.refresh().await.map_err(|e| e.to_string())?;
        let files: Vec<DataFile> = table
            .files()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|f| !seen.contains(&f.path))
            .collect();
        for b in table.read(&files).await.map_err(|e| e.to_string())? {
            for r in decode(&b)? {
                if r.action_id == row.action_id && r.status != "requested" {
                    let m = r.message.unwrap_or_default();
                    return if r.status == "applied" { Ok(m) } else { Err(m) };
                }
            }
        }
        seen.extend(files.into_iter().map(|f| f.path));
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the running engine did not answer within {} s; the request stays recorded (action {})",
                wait.as_secs(),
                row.action_id
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_goes_through_the_actions_table_and_back() {
        let ids = vec![Uuid::from_u128(7), Uuid::from_u128(9)];
        let mut row = to_row(&Command::Release(ids.clone()), "ibq cli pid 1").unwrap();
        row.at = "2026-11-23T15:30:00Z".parse().unwrap();
        assert_eq!(row.action, "release");
        assert_eq!(row.request_ids, ids);
        assert_eq!(row.status, "requested");
        // Through the table's columns and back, as the owning engine reads it.
        let back = decode(&encode(std::slice::from_ref(&row))).unwrap();
        assert_eq!(back, vec![row.clone()]);
        match to_command(&back[0]).unwrap() {
            Command::Release(got) => assert_eq!(got, ids),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_table_is_kept_small_and_nothing_is_applied_twice_after_a_merge() {
        let dir = tempfile::tempdir().unwrap();
        let mut inbox = ActionInbox::open(dir.path()).await.unwrap();
        for _ in 0..5 {
            let mut row = to_row(&Command::PauseWorker, "console pid 1").unwrap();
            row.status = "applied".into();
            inbox.record(row).await.unwrap();
        }
        // Another process asks; the owner answers.
        let asked = to_row(&Command::ResumeWorker, "ibq cli pid 2").unwrap();
        let mut other = NewRows::open(dir.path()).await.unwrap();
        other.append(std::slice::from_ref(&asked)).await.unwrap();
        let requested = inbox.poll().await.unwrap();
        assert_eq!(requested.len(), 1);
        inbox
            .answer(&requested[0], Ok("worker resumed".into()))
            .await
            .unwrap();
        let before = inbox.rows.table.files().await.unwrap().len();
        assert_eq!(before, 7);

        let policy = crate::lake::upkeep::Policy {
            open_partition_max_files: 4,
            ..Default::default()
        };
        let report = inbox.upkeep(&policy, Utc::now()).await.unwrap();
        assert_eq!(report.files_merged, 7);
        assert_eq!(inbox.rows.table.files().await.unwrap().len(), 1);
        // The merged file is read again: nothing to apply, the journal unchanged.
        assert!(inbox.poll().await.unwrap().is_empty());
        let entries = inbox.journal().view(100);
        assert_eq!(entries.len(), 6);
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.outcome.as_str() == "applied")
                .count(),
            6
        );
        // A reader opening the table anew sees every row once.
        let rows = NewRows::open(dir.path())
            .await
            .unwrap()
            .next()
            .await
            .unwrap();
        assert_eq!(rows.len(), 7);
    }
}
