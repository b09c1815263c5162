//! `ib_request_queue` rows ↔ `Request`: the column list, encoding a batch, decoding what
//! this process or any other writer appended.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::RecordBatch;
use uuid::Uuid;

use super::model::{Actor, Event, Priority, Request, RequestType, Status};
use crate::lake::columns::{col, BatchBuilder, BatchReader, Col, ColumnKind::*};

pub const QUEUE_TABLE: &str = "ib_request_queue";
pub const HISTORY_TABLE: &str = "ib_request_queue_history";

/// The columns of the system ibq replaces come first, with their names unchanged.
pub const QUEUE_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("request_type", Utf8),
    col("symbol", Utf8),
    col("priority", Int64),
    col("status", Utf8),
    col("parameters", Utf8),
    col("result_table", Utf8),
    col("created_at", Timestamp),
    col("updated_at", Timestamp),
    col("result_data", Utf8),
    col("error_message", Utf8),
    col("seq", Int64),
    col("event", Utf8),
    col("attempts", Int64),
    col("failures", Int64),
    col("next_attempt_at", Timestamp),
    col("changed_by", Utf8),
    col("lease_owner", Utf8),
    col("lease_expires_at", Timestamp),
    col("schedule_key", Utf8),
];

pub fn encode(rows: &[Request]) -> RecordBatch {
    BatchBuilder::new(QUEUE_COLUMNS)
        .utf8(rows.iter().map(|r| Some(r.request_id.to_string())))
        .utf8(rows.iter().map(|r| Some(r.request_type.as_str())))
        .utf8(rows.iter().map(|r| Some(r.symbol.as_str())))
        .i64(rows.iter().map(|r| Some(r.priority.get() as i64)))
        .utf8(rows.iter().map(|r| Some(r.status.as_str())))
        .utf8(rows.iter().map(|r| Some(r.parameters.to_string())))
        .utf8(rows.iter().map(|r| Some(r.result_table.as_str())))
        .timestamp(rows.iter().map(|r| Some(r.created_at)))
        .timestamp(rows.iter().map(|r| Some(r.updated_at)))
        .utf8(
            rows.iter()
                .map(|r| r.result_data.as_ref().map(|v| v.to_string())),
        )
        .utf8(rows.iter().map(|r| r.error_message.as_deref()))
        .i64(rows.iter().map(|r| r.seq))
        .utf8(rows.iter().map(|r| Some(r.event.as_str())))
        .i64(rows.iter().map(|r| Some(r.attempts as i64)))
        .i64(rows.iter().map(|r| Some(r.failures as i64)))
        .timestamp(rows.iter().map(|r| r.next_attempt_at))
        .utf8(rows.iter().map(|r| Some(r.changed_by.as_str())))
        .utf8(rows.iter().map(|r| r.lease_owner.as_deref()))
        .timestamp(rows.iter().map(|r| r.lease_expires_at))
        .utf8(rows.iter().map(|r| r.schedule_key.as_deref()))
        .finish()
}

/// A stored row that is not a valid request, with as much of it as could be read so the
/// rejection can be recorded against its id.
#[derive(Debug, Clone)]
pub struct BadRow {
    pub request_id: Option<Uuid>,
    pub raw: RawRow,
    pub message: String,
}

/// A row's text as stored, for rows that could not be decoded.
#[derive(Debug, Clone, Default)]
pub struct RawRow {
    pub request_type: Option<String>,
    pub symbol: Option<String>,
    pub status: Option<String>,
    pub parameters: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Decodes every row of a batch. Columns other writers leave out take the defaults a new
/// request has (event enqueued, changed by external, no attempts).
pub fn decode(batch: &RecordBatch) -> Result<Vec<Result<Request, BadRow>>, String> {
    let r = BatchReader::new(batch);
    let ids = r.utf8("request_id")?;
    let types = r.utf8("request_type")?;
    let symbols = r.utf8("symbol")?;
    let priorities = r.i64("priority")?;
    let statuses = r.utf8("status")?;
    let params = r.utf8("parameters")?;
    let result_tables = r.utf8("result_table")?;
    let created = r.timestamp("created_at")?;
    let updated = r.timestamp("updated_at")?;
    let result_data = r.utf8("result_data")?;
    let errors = r.utf8("error_message")?;
    let seqs = r.i64("seq")?;
    let events = r.utf8("event")?;
    let attempts = r.i64("attempts")?;
    let failures = r.i64("failures")?;
    let next_at = r.timestamp("next_attempt_at")?;
    let changed_by = r.utf8("changed_by")?;
    let lease_owner = r.utf8("lease_owner")?;
    let lease_exp = r.timestamp("lease_expires_at")?;
    let schedule_key = r.utf8("schedule_key")?;

    let mut out = Vec::with_capacity(r.len());
    for i in 0..r.len() {
        let raw = RawRow {
            request_type: types[i].clone(),
            symbol: symbols[i].clone(),
            status: statuses[i].clone(),
            parameters: params[i].clone(),
            created_at: created[i],
        };
        let id = ids[i]
            .as_deref()
            .and_then(|s| Uuid::parse_str(s.trim()).ok());
        let row = (|| -> Result<Request, String> {
            let request_id = id.ok_or_else(|| match &ids[i] {
                None => "request_id is missing".to_string(),
                Some(s) => format!("request_id `{s}` is not a UUID"),
            })?;
            let request_type: RequestType = types[i]
                .as_deref()
                .ok_or("request_type is missing")?
                .parse()?;
            let status: Status = statuses[i].as_deref().ok_or("status is missing")?.parse()?;
            let priority = Priority::try_from(priorities[i].unwrap_or(2))?;
            let parameters = match params[i].as_deref().map(str::trim) {
                None | Some("") => serde_json::json!({}),
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| format!("parameters are not JSON: {e}"))?,
            };
            let created_at = created[i].or(updated[i]).ok_or("created_at is missing")?;
            let changed_by = match changed_by[i].as_deref() {
                None => Actor::External,
                Some(s) => s.parse()?,
            };
            let event = match events[i].as_deref() {
                None => Event::Enqueued,
                Some(s) => s.parse()?,
            };
            Ok(Request {
                request_id,
                request_type,
                symbol: symbols[i].clone().unwrap_or_default(),
                priority,
                status,
                parameters,
                result_table: result_tables[i]
                    .clone()
                    .unwrap_or_else(|| request_type.result_table().to_string()),
                created_at,
                updated_at: updated[i].unwrap_or(created_at),
                result_data: result_data[i]
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok()),
                error_message: errors[i].clone(),
                attempts: attempts[i].unwrap_or(0).max(0) as u32,
                failures: failures[i].unwrap_or(0).max(0) as u32,
                next_attempt_at: next_at[i],
                changed_by,
                event,
                seq: seqs[i],
                lease_owner: lease_owner[i].clone(),
                lease_expires_at: lease_exp[i],
                schedule_key: schedule_key[i].clone(),
            })
        })();
        out.push(row.map_err(|message| BadRow {
            request_id: id,
            raw: raw.clone(),
            message,
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_round_trip() {
        let now: DateTime<Utc> = "2026-11-23T15:00:00.123456Z".parse().unwrap();
        let r = Request {
            request_id: Uuid::new_v4(),
            request_type: RequestType::OptionChain,
            symbol: "SPY".into(),
            priority: Priority::IMMEDIATE,
            status: Status::Processing,
            parameters: json!({"target_dte": 45}),
            result_table: "option_snapshots".into(),
            created_at: now,
            updated_at: now,
            result_data: Some(json!({"rows": 3})),
            error_message: Some("x".into()),
            attempts: 2,
            failures: 1,
            next_attempt_at: Some(now),
            changed_by: Actor::Worker,
            event: Event::Claimed,
            seq: Some(7),
            lease_owner: Some("w".into()),
            lease_expires_at: Some(now),
            schedule_key: Some("k".into()),
        };
        let decoded = decode(&encode(std::slice::from_ref(&r))).unwrap();
        assert_eq!(decoded[0].as_ref().unwrap(), &r);
    }
}
