//! Reading the queue without owning it: the current state as the owner would make it,
//! every row of one request, and archived requests, found in the history table by reading
//! its `request_id` column before any whole file. None of these needs the owner lock.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ingest;
use super::model::Request;
use super::rows::{self, HISTORY_TABLE, QUEUE_COLUMNS, QUEUE_TABLE};
use super::state::QueueState;
use super::store::{split, StoreError};
use crate::lake::table::DataFile;
use crate::lake::LakeTable;

/// Ids of the history table's rows that `keep` accepts, with the files holding them. Reads
/// only the `request_id` column; an id is compared as a UUID, whatever its spelling.
async fn history_ids(
    root: &Path,
    keep: impl Fn(&Uuid) -> bool,
) -> Result<Vec<(Uuid, DataFile)>, StoreError> {
    let Some(table) = LakeTable::open_existing(root, HISTORY_TABLE, QUEUE_COLUMNS).await? else {
        return Ok(Vec::new());
    };
    let files = table.files().await?;
    let read = table.read_columns(&files, &["request_id"]).await?;
    let mut out = Vec::new();
    for (file, batches) in files.into_iter().zip(read) {
        let mut ids = HashSet::new();
        for b in &batches {
            let column = crate::lake::columns::BatchReader::new(b)
                .utf8("request_id")
                .map_err(|message| StoreError::Corrupt {
                    table: HISTORY_TABLE.into(),
                    message,
                })?;
            for text in column.into_iter().flatten() {
                match Uuid::parse_str(text.trim()) {
                    Ok(id) if keep(&id) => {
                        ids.insert(id);
                    }
                    _ => {}
                }
            }
        }
        out.extend(ids.into_iter().map(|id| (id, file.clone())));
    }
    Ok(out)
}

/// Which of other writers' rows name a request the live state does not hold but the
/// history table does (an archived request), among those `ingest::may_be_archived` says
/// could. Reads the history table only when there is such a row.
pub(super) async fn archived_among(
    root: &Path,
    state: &QueueState,
    external: &[Request],
    now: DateTime<Utc>,
) -> Result<HashSet<Uuid>, StoreError> {
    let ask: HashSet<Uuid> = external
        .iter()
        .filter(|r| state.get(&r.request_id).is_none() && ingest::may_be_archived(r, now))
        .map(|r| r.request_id)
        .collect();
    if ask.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(history_ids(root, |id| ask.contains(id))
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// Archived requests (in the history table, not in the live queue) whose id starts with
/// `prefix` (lower-case hex), or is `prefix` when it is a whole id.
pub async fn archived_ids(root: &Path, prefix: &str) -> Result<Vec<Uuid>, StoreError> {
    let live = read_state(root).await?;
    let prefix = prefix.to_ascii_lowercase();
    let mut ids: Vec<Uuid> = history_ids(root, |id| id.to_string().starts_with(&prefix))
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| live.get(id).is_none())
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Every stored row of one request, oldest first: its rows in the history table
/// (superseded ones, or all of them once it is archived) and the rows still in the queue
/// table. Reads whole only the history files that hold the id. Read-only; needs no lock.
pub async fn history(root: &Path, id: Uuid) -> Result<Vec<Request>, StoreError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let history_files: Vec<DataFile> = history_ids(root, |other| *other == id)
        .await?
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    for name in [HISTORY_TABLE, QUEUE_TABLE] {
        let Some(table) = LakeTable::open_existing(root, name, QUEUE_COLUMNS).await? else {
            continue;
        };
        let batches = if name == HISTORY_TABLE {
            table.read(&history_files).await?
        } else {
            table.read_all().await?
        };
        for batch in batches {
            let decoded = rows::decode(&batch).map_err(|message| StoreError::Corrupt {
                table: name.into(),
                message,
            })?;
            for r in decoded.into_iter().flatten() {
                // A crash between the history append and the compaction commit can leave a
                // row in both tables; show it once.
                if r.request_id == id && seen.insert((r.seq, r.updated_at, r.event.as_str())) {
                    out.push(r);
                }
            }
        }
    }
    out.sort_by_key(|r| (r.seq, r.updated_at));
    Ok(out)
}

/// The current state of the queue without owning it (for `ibq list` while an engine runs).
pub async fn read_state(root: &Path) -> Result<QueueState, StoreError> {
    let mut state = QueueState::new();
    let Some(table) = LakeTable::open_existing(root, QUEUE_TABLE, QUEUE_COLUMNS).await? else {
        return Ok(state);
    };
    let (numbered, external, bad) = split(&table.read_all().await?, QUEUE_TABLE)?;
    for r in numbered {
        state.replay(r);
    }
    if let Some(next) = table.txn_version(super::compact::NEXT_SEQ).await? {
        state.continue_seq_from(next);
    }
    // What the owner makes of other writers' rows, including rejections it has not
    // recorded yet (shown, not stored).
    let now = Utc::now();
    let archived = archived_among(root, &state, &external, now).await?;
    let triage = ingest::triage(&state, external, bad, &archived, now);
    for r in triage.accepted.into_iter().chain(triage.rejections) {
        state.replay(r);
    }
    Ok(state)
}

/// The archived requests: the newest row of every request the history table holds and the
/// live queue does not. Reads the whole history table. Read-only; needs no lock.
pub async fn read_archived(root: &Path) -> Result<QueueState, StoreError> {
    let live = read_state(root).await?;
    let mut state = QueueState::new();
    let Some(table) = LakeTable::open_existing(root, HISTORY_TABLE, QUEUE_COLUMNS).await? else {
        return Ok(state);
    };
    let (numbered, external, _) = split(&table.read_all().await?, HISTORY_TABLE)?;
    for r in external.into_iter().chain(numbered) {
        if live.get(&r.request_id).is_none() {
            state.replay(r);
        }
    }
    Ok(state)
}
