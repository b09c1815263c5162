//! What each row another program appended becomes: a request, or a visible rejection.
//! Pure logic over the state; the store commits the outcome.
//!
//! - A valid row whose id is new becomes a PENDING (or whatever status it states) request,
//!   its symbol upper-cased and its parameters in canonical form.
//! - A readable row with bad parameters or a bad symbol gets a FAILED `rejected` row under
//!   its own id, so the newest row of that id says FAILED.
//! - A row that is not readable as a request (unknown type, status or event, non-JSON
//!   parameters, priority outside 1–3, a null or non-UUID id) gets a FAILED `rejected`
//!   request that quotes the whole row in `result_data.rejected_row`. It takes the row's id
//!   when that is a UUID no request has yet, else a fresh id. The row itself stays in the
//!   lake: compaction moves it to the history table.
//! - A row naming a request that was archived (its rows are in the history table, not in
//!   the live queue) cannot reopen it as a request without its history: it gets a FAILED
//!   `rejected` request under a fresh id that names the archived one and quotes the row,
//!   and compaction moves the row to history. Only rows that may name an archived request
//!   are looked up ([`may_be_archived`]): a new PENDING request made within the last day
//!   is taken as it is.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::model::{Actor, Event, Priority, Request, RequestType, Status};
use super::params::Params;
use super::rows::{quoted, BadRow, RawRow};
use super::state::{normalize_symbol, QueueState};

/// The key under which a rejection quotes the row it rejects.
pub const REJECTED_ROW: &str = "rejected_row";

/// What a set of other writers' rows becomes.
#[derive(Debug, Default)]
pub struct Triage {
    /// Rows to take in as they are (or normalized).
    pub accepted: Vec<Request>,
    /// FAILED `rejected` rows to commit.
    pub rejections: Vec<Request>,
    /// Rows that are not requests at all, rejected now or earlier; compaction moves them
    /// to the history table.
    pub unreadable: usize,
    /// Rows naming an archived request, refused now or earlier; compaction moves them to
    /// the history table.
    pub archived: usize,
}

/// Whether a row another writer appended for an id the live queue does not hold could name
/// an archived request, so the history table must be asked before the row becomes a
/// request. Anything but a new request (PENDING, enqueued, never attempted) created within
/// the last day could: a request is archived only once it finished and at least a day
/// (the least `keep_finished_days`) passed since its last change.
pub fn may_be_archived(row: &Request, now: DateTime<Utc>) -> bool {
    let new_request = row.status == Status::Pending
        && row.event == Event::Enqueued
        && row.attempts == 0
        && row.created_at > now - Duration::days(1);
    !new_request
}

/// The rows (as JSON) that existing rejections quote.
pub fn rejected_rows(state: &QueueState) -> HashSet<String> {
    state
        .all()
        .filter_map(|r| r.result_data.as_ref()?.get(REJECTED_ROW))
        .map(|v| v.to_string())
        .collect()
}

/// Decides the fate of rows without a sequence number (other writers) and of unreadable
/// rows. `state` already holds every numbered row; `archived` holds the ids of archived
/// requests among the rows' ids (see [`may_be_archived`]).
pub fn triage(
    state: &QueueState,
    external: Vec<Request>,
    bad: Vec<BadRow>,
    archived: &HashSet<Uuid>,
    now: DateTime<Utc>,
) -> Triage {
    let mut out = Triage::default();
    let mut taken: HashSet<Uuid> = HashSet::new();
    let mut already: Option<HashSet<String>> = None;
    for row in external {
        if state.get(&row.request_id).is_none() && archived.contains(&row.request_id) {
            out.archived += 1;
            let quoted_row = serde_json::to_value(&row).expect("a request serializes");
            let already = already.get_or_insert_with(|| rejected_rows(state));
            if already.insert(quoted_row.to_string()) {
                out.rejections.push(reject_archived(&row, quoted_row, now));
            }
            continue;
        }
        if state.get(&row.request_id).is_some() || !taken.insert(row.request_id) {
            // Known: an older row of a request (a numbered row supersedes it).
            out.accepted.push(row);
            continue;
        }
        match check(&row) {
            Ok(row) => out.accepted.push(row),
            Err(message) => out.rejections.push(reject_readable(row, &message, now)),
        }
    }
    if bad.is_empty() {
        return out;
    }
    let mut already = already.unwrap_or_else(|| rejected_rows(state));
    for b in bad {
        out.unreadable += 1;
        let quoted_row = b.raw.to_json();
        if !already.insert(quoted_row.to_string()) {
            continue;
        }
        let id = b
            .request_id()
            .filter(|id| state.get(id).is_none() && taken.insert(*id));
        out.rejections
            .push(reject_unreadable(&b, quoted_row, id, now));
    }
    out
}

/// A fresh id that is the same each time the same row is rejected, so a reader that shows
/// rejections not yet recorded (`ibq list` while no engine runs) names them as the owner
/// will.
fn derived_id(row: &str) -> Uuid {
    use std::hash::{Hash, Hasher};
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (i as u8, row).hash(&mut h);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A new request from another writer, checked like the CLI's: parameters and symbol.
fn check(row: &Request) -> Result<Request, String> {
    let params = Params::parse(row.request_type, &row.parameters).map_err(|e| e.to_string())?;
    let symbol = normalize_symbol(&row.symbol).map_err(|e| e.to_string())?;
    let mut row = row.clone();
    row.parameters = params.to_json();
    row.symbol = symbol;
    Ok(row)
}

fn reject_readable(row: Request, message: &str, now: DateTime<Utc>) -> Request {
    let mut r = row;
    if normalize_symbol(&r.symbol).is_err() {
        r.symbol = crate::text::clean(&r.symbol).into_owned();
    }
    r.status = Status::Failed;
    r.event = Event::Rejected;
    r.error_message = Some(format!("rejected: {message}"));
    r.updated_at = now;
    r.changed_by = Actor::Worker;
    r.lease_owner = None;
    r.lease_expires_at = None;
    r.next_attempt_at = None;
    r
}

/// A FAILED rejection under a fresh id for a row that names an archived request: the
/// archived request stays as it was, the row is quoted.
fn reject_archived(row: &Request, quoted_row: serde_json::Value, now: DateTime<Utc>) -> Request {
    let mut r = row.clone();
    r.request_id = derived_id(&quoted_row.to_string());
    if normalize_symbol(&r.symbol).is_err() {
        r.symbol = crate::text::clean(&r.symbol).into_owned();
    }
    r.status = Status::Failed;
    r.event = Event::Rejected;
    r.error_message = Some(format!(
        "rejected: request {} is archived (its rows are in {}); a row cannot reopen it, enqueue a new request instead",
        row.request_id,
        super::rows::HISTORY_TABLE
    ));
    r.result_data = Some(json!({ REJECTED_ROW: quoted_row }));
    r.created_at = now;
    r.updated_at = now;
    r.attempts = 0;
    r.failures = 0;
    r.changed_by = Actor::Worker;
    r.seq = None;
    r.lease_owner = None;
    r.lease_expires_at = None;
    r.next_attempt_at = None;
    r.schedule_key = None;
    r
}

/// A FAILED rejection standing for an unreadable row: what could be read is kept, the rest
/// takes a new request's defaults, and the whole row is quoted in `result_data`.
fn reject_unreadable(
    b: &BadRow,
    quoted_row: serde_json::Value,
    id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Request {
    let raw: &RawRow = &b.raw;
    let request_type = raw
        .request_type
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(RequestType::Unknown);
    let symbol = raw.symbol.as_deref().unwrap_or_default();
    let symbol =
        normalize_symbol(symbol).unwrap_or_else(|_| crate::text::clean(symbol).into_owned());
    let parameters = raw
        .parameters
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter(|p| p.is_object())
        .unwrap_or_else(|| json!({}));
    let mut message = format!("rejected: {}", b.message);
    if id.is_none() {
        match raw.request_id.as_deref() {
            None => message.push_str(" (the row has no request_id)"),
            Some(text) => {
                message.push_str(&format!(" (the row's request_id was {})", quoted(text)))
            }
        }
    }
    Request {
        request_id: id.unwrap_or_else(|| derived_id(&quoted_row.to_string())),
        request_type,
        symbol,
        priority: raw
            .priority
            .and_then(|p| Priority::try_from(p).ok())
            .unwrap_or(Priority::NORMAL),
        status: Status::Failed,
        parameters,
        result_table: request_type.result_table().to_string(),
        created_at: raw.created_at.or(raw.updated_at).unwrap_or(now),
        updated_at: now,
        result_data: Some(json!({ REJECTED_ROW: quoted_row })),
        error_message: Some(message),
        attempts: 0,
        failures: 0,
        next_attempt_at: None,
        changed_by: Actor::Worker,
        event: Event::Rejected,
        seq: None,
        lease_owner: None,
        lease_expires_at: None,
        schedule_key: None,
        during: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::rows::{decode, encode_raw};

    fn t0() -> DateTime<Utc> {
        "2026-11-23T15:00:00Z".parse().unwrap()
    }

    fn raw(id: &str) -> RawRow {
        RawRow {
            request_id: Some(id.into()),
            request_type: Some("market_bars".into()),
            symbol: Some("spy".into()),
            priority: Some(2),
            status: Some("PENDING".into()),
            parameters: Some(r#"{"bar_size": "1 day"}"#.into()),
            created_at: Some(t0()),
            ..Default::default()
        }
    }

    fn split(rows: Vec<RawRow>) -> (Vec<Request>, Vec<BadRow>) {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for r in decode(&encode_raw(&rows)).unwrap() {
            match r {
                Ok(r) => ok.push(r),
                Err(b) => bad.push(b),
            }
        }
        (ok, bad)
    }

    #[test]
    fn every_row_becomes_a_request_or_a_rejection() {
        let good = Uuid::new_v4();
        let bad_symbol = Uuid::new_v4();
        let unknown_type = Uuid::new_v4();
        let rows = vec![
            raw(&good.to_string()),
            RawRow {
                symbol: Some("SP\u{1b}[31mY".into()),
                ..raw(&bad_symbol.to_string())
            },
            RawRow {
                request_type: Some("moon_shot".into()),
                ..raw(&unknown_type.to_string())
            },
            raw("row-17"),
            RawRow {
                request_id: None,
                ..raw("")
            },
        ];
        let (ok, bad) = split(rows);
        let t = triage(&QueueState::new(), ok, bad, &HashSet::new(), t0());
        assert_eq!(t.accepted.len(), 1);
        assert_eq!(t.accepted[0].request_id, good);
        assert_eq!(t.accepted[0].symbol, "SPY", "symbols are upper-cased");
        assert_eq!(t.unreadable, 3);
        assert_eq!(t.rejections.len(), 4);
        for r in &t.rejections {
            assert_eq!((r.status, r.event), (Status::Failed, Event::Rejected));
            let m = r.error_message.as_deref().unwrap();
            assert!(m.starts_with("rejected: "), "{m}");
            assert!(!m.contains('\u{1b}') && !r.symbol.contains('\u{1b}'), "{m}");
        }
        let by_id = |id: Uuid| t.rejections.iter().find(|r| r.request_id == id).unwrap();
        assert!(by_id(bad_symbol)
            .error_message
            .as_deref()
            .unwrap()
            .contains("invalid symbol"));
        let u = by_id(unknown_type);
        assert_eq!(u.request_type, RequestType::Unknown);
        assert!(u.error_message.as_deref().unwrap().contains("moon_shot"));
        assert_eq!(
            u.result_data.as_ref().unwrap()[REJECTED_ROW]["request_type"],
            "moon_shot",
            "the rejection quotes the row"
        );
        let fresh: Vec<&Request> = t
            .rejections
            .iter()
            .filter(|r| ![bad_symbol, unknown_type].contains(&r.request_id))
            .collect();
        assert_eq!(fresh.len(), 2);
        assert!(fresh.iter().any(|r| r
            .error_message
            .as_deref()
            .unwrap()
            .contains("request_id was \"row-17\"")));
        assert!(fresh.iter().any(|r| r
            .error_message
            .as_deref()
            .unwrap()
            .contains("no request_id")));
    }

    #[test]
    fn only_a_new_request_made_within_a_day_is_taken_without_asking_history() {
        let now = t0();
        let (ok, _) = split(vec![RawRow {
            created_at: Some(now - chrono::Duration::hours(23)),
            ..raw(&Uuid::new_v4().to_string())
        }]);
        let new = ok[0].clone();
        assert!(!may_be_archived(&new, now));
        let older = Request {
            created_at: now - chrono::Duration::hours(25),
            ..new.clone()
        };
        assert!(may_be_archived(&older, now));
        for changed in [
            Request {
                status: Status::Cancelled,
                ..new.clone()
            },
            Request {
                event: Event::Retried,
                ..new.clone()
            },
            Request {
                attempts: 1,
                ..new.clone()
            },
        ] {
            assert!(may_be_archived(&changed, now), "{changed:?}");
        }
    }

    #[test]
    fn a_row_naming_an_archived_request_is_refused_under_a_new_id_once() {
        let archived_id = Uuid::new_v4();
        let (ok, _) = split(vec![RawRow {
            status: Some("CANCELLED".into()),
            ..raw(&archived_id.to_string())
        }]);
        let archived: HashSet<Uuid> = [archived_id].into();
        let mut state = QueueState::new();
        let t = triage(&state, ok.clone(), vec![], &archived, t0());
        assert!(t.accepted.is_empty());
        assert_eq!((t.archived, t.rejections.len()), (1, 1));
        let r = &t.rejections[0];
        assert_ne!(
            r.request_id, archived_id,
            "the archived request is not reopened"
        );
        assert_eq!((r.status, r.event), (Status::Failed, Event::Rejected));
        let m = r.error_message.as_deref().unwrap();
        assert!(
            m.contains(&format!("request {archived_id} is archived"))
                && m.contains("ib_request_queue_history"),
            "{m}"
        );
        assert_eq!(
            r.result_data.as_ref().unwrap()[REJECTED_ROW]["request_id"],
            archived_id.to_string()
        );
        state.apply(r.clone());
        // Seen again (a restart before compaction moved it): counted, not rejected twice.
        let again = triage(&state, ok.clone(), vec![], &archived, t0());
        assert_eq!((again.archived, again.rejections.len()), (1, 0));
        assert!(again.accepted.is_empty());
        // The same row for an id history does not hold is a request as it states.
        let t = triage(&QueueState::new(), ok, vec![], &HashSet::new(), t0());
        assert_eq!(t.accepted.len(), 1);
        assert_eq!(t.accepted[0].request_id, archived_id);
    }

    #[test]
    fn a_row_already_rejected_is_not_rejected_again() {
        let (ok, bad) = split(vec![raw("row-1")]);
        assert!(ok.is_empty());
        let mut state = QueueState::new();
        let t = triage(&state, vec![], bad.clone(), &HashSet::new(), t0());
        assert_eq!(t.rejections.len(), 1);
        for r in t.rejections {
            state.apply(r);
        }
        let again = triage(&state, vec![], bad, &HashSet::new(), t0());
        assert!(again.rejections.is_empty());
        assert_eq!(
            again.unreadable, 1,
            "still counted for compaction to move it"
        );
    }

    #[test]
    fn an_unreadable_row_naming_a_known_request_gets_a_fresh_id() {
        let mut state = QueueState::new();
        let (ok, _) = split(vec![raw(&Uuid::new_v4().to_string())]);
        let known = ok[0].request_id;
        state.apply(ok[0].clone());
        let (_, bad) = split(vec![RawRow {
            status: Some("DONE".into()),
            ..raw(&known.to_string())
        }]);
        let t = triage(&state, vec![], bad, &HashSet::new(), t0());
        assert_eq!(t.rejections.len(), 1);
        assert_ne!(t.rejections[0].request_id, known);
        assert!(t.rejections[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("unknown status \"DONE\""));
    }
}
