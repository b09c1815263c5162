//! `ib_request_queue` rows ↔ `Request`: the column list, encoding a batch, decoding what
//! this process or any other writer appended.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::RecordBatch;
use uuid::Uuid;

use super::model::{Actor, During, Event, Priority, Request, RequestType, Status};
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
    col("during", Utf8),
];

/// The history table's columns: the queue's, then `date`, the New York calendar date of
/// the row's `updated_at` (its `created_at` when that is missing), by which the table is
/// partitioned.
pub const HISTORY_COLUMNS: &[Col] = &[
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
    col("during", Utf8),
    col(HISTORY_PARTITION, Date),
];

/// The history table's partition column.
pub const HISTORY_PARTITION: &str = "date";

/// The New York date a history row is filed under: that of its last change, else of its
/// creation, else `fallback` (a row with neither time).
pub fn history_date(raw: &RawRow, fallback: DateTime<Utc>) -> chrono::NaiveDate {
    crate::market::calendar::new_york_date(raw.updated_at.or(raw.created_at).unwrap_or(fallback))
}

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
        .utf8(rows.iter().map(|r| Some(r.during.as_str())))
        .finish()
}

/// A stored row that is not a valid request: every column as it was stored, so the row
/// can be kept (compaction moves it to the history table) and its rejection can quote it.
#[derive(Debug, Clone)]
pub struct BadRow {
    pub raw: Box<RawRow>,
    pub message: String,
}

impl BadRow {
    /// The row's id, when it is a UUID.
    pub fn request_id(&self) -> Option<Uuid> {
        self.raw
            .request_id
            .as_deref()
            .and_then(|s| Uuid::parse_str(s.trim()).ok())
    }
}

/// Every column of a row exactly as stored (text, numbers and times, none interpreted).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawRow {
    pub request_id: Option<String>,
    pub request_type: Option<String>,
    pub symbol: Option<String>,
    pub priority: Option<i64>,
    pub status: Option<String>,
    pub parameters: Option<String>,
    pub result_table: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub result_data: Option<String>,
    pub error_message: Option<String>,
    pub seq: Option<i64>,
    pub event: Option<String>,
    pub attempts: Option<i64>,
    pub failures: Option<i64>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub changed_by: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub schedule_key: Option<String>,
    pub during: Option<String>,
}

impl RawRow {
    /// The row as a JSON object: what a rejection quotes, and the identity by which a
    /// rejection is matched to its row (serde_json sorts the keys, so equal rows give equal
    /// values).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a raw row serializes")
    }
}

/// Writes raw rows back with the queue's columns, unchanged.
pub fn encode_raw(rows: &[RawRow]) -> RecordBatch {
    raw_columns(BatchBuilder::new(QUEUE_COLUMNS), rows).finish()
}

/// Writes raw rows unchanged with the history table's columns: each filed under its
/// `history_date` (`now` for a row without any time).
pub fn encode_history(rows: &[RawRow], now: DateTime<Utc>) -> RecordBatch {
    raw_columns(BatchBuilder::new(HISTORY_COLUMNS), rows)
        .date(rows.iter().map(|r| Some(history_date(r, now))))
        .finish()
}

fn raw_columns(b: BatchBuilder, rows: &[RawRow]) -> BatchBuilder {
    b.utf8(rows.iter().map(|r| r.request_id.as_deref()))
        .utf8(rows.iter().map(|r| r.request_type.as_deref()))
        .utf8(rows.iter().map(|r| r.symbol.as_deref()))
        .i64(rows.iter().map(|r| r.priority))
        .utf8(rows.iter().map(|r| r.status.as_deref()))
        .utf8(rows.iter().map(|r| r.parameters.as_deref()))
        .utf8(rows.iter().map(|r| r.result_table.as_deref()))
        .timestamp(rows.iter().map(|r| r.created_at))
        .timestamp(rows.iter().map(|r| r.updated_at))
        .utf8(rows.iter().map(|r| r.result_data.as_deref()))
        .utf8(rows.iter().map(|r| r.error_message.as_deref()))
        .i64(rows.iter().map(|r| r.seq))
        .utf8(rows.iter().map(|r| r.event.as_deref()))
        .i64(rows.iter().map(|r| r.attempts))
        .i64(rows.iter().map(|r| r.failures))
        .timestamp(rows.iter().map(|r| r.next_attempt_at))
        .utf8(rows.iter().map(|r| r.changed_by.as_deref()))
        .utf8(rows.iter().map(|r| r.lease_owner.as_deref()))
        .timestamp(rows.iter().map(|r| r.lease_expires_at))
        .utf8(rows.iter().map(|r| r.schedule_key.as_deref()))
        .utf8(rows.iter().map(|r| r.during.as_deref()))
}

/// Reads every row of a batch as stored.
pub fn decode_raw(batch: &RecordBatch) -> Result<Vec<RawRow>, String> {
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
    let during = r.utf8("during")?;
    Ok((0..r.len())
        .map(|i| RawRow {
            request_id: ids[i].clone(),
            request_type: types[i].clone(),
            symbol: symbols[i].clone(),
            priority: priorities[i],
            status: statuses[i].clone(),
            parameters: params[i].clone(),
            result_table: result_tables[i].clone(),
            created_at: created[i],
            updated_at: updated[i],
            result_data: result_data[i].clone(),
            error_message: errors[i].clone(),
            seq: seqs[i],
            event: events[i].clone(),
            attempts: attempts[i],
            failures: failures[i],
            next_attempt_at: next_at[i],
            changed_by: changed_by[i].clone(),
            lease_owner: lease_owner[i].clone(),
            lease_expires_at: lease_exp[i],
            schedule_key: schedule_key[i].clone(),
            during: during[i].clone(),
        })
        .collect())
}

/// Text quoted in a message with control characters escaped, so a stored message never
/// carries raw terminal bytes.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", crate::text::clean(text))
}

/// Interprets one stored row as a request. Columns other writers leave out take the
/// defaults a new request has (event enqueued, changed by external, no attempts).
pub fn to_request(raw: &RawRow) -> Result<Request, String> {
    let request_id = match raw.request_id.as_deref() {
        None => return Err("request_id is missing".into()),
        Some(s) => Uuid::parse_str(s.trim())
            .map_err(|_| format!("request_id {} is not a UUID", quoted(s)))?,
    };
    let event = match raw.event.as_deref() {
        None => Event::Enqueued,
        Some(s) => s
            .parse()
            .map_err(|_| format!("unknown event {}", quoted(s)))?,
    };
    let request_type: RequestType = match raw.request_type.as_deref() {
        None => return Err("request_type is missing".into()),
        // Only ibq's own rejection of a row with an unknown type carries this type.
        Some("unknown") if event == Event::Rejected => RequestType::Unknown,
        Some(s) => s.parse().map_err(|_| {
            let names: Vec<_> = RequestType::ALL.iter().map(|t| t.as_str()).collect();
            format!(
                "unknown request type {} (expected one of {})",
                quoted(s),
                names.join(", ")
            )
        })?,
    };
    let status: Status = match raw.status.as_deref() {
        None => return Err("status is missing".into()),
        Some(s) => s.parse().map_err(|_| {
            format!(
                "unknown status {} (expected PENDING, PROCESSING, SUCCESS, FAILED or CANCELLED)",
                quoted(s)
            )
        })?,
    };
    let priority = Priority::try_from(raw.priority.unwrap_or(2))?;
    // A null window (older writers) is `any`.
    let during = match raw.during.as_deref().map(str::trim) {
        None | Some("") => During::Any,
        Some(s) => s.parse().map_err(|_| {
            format!(
                "unknown during {} (expected regular, extended or any)",
                quoted(s)
            )
        })?,
    };
    let parameters = match raw.parameters.as_deref().map(str::trim) {
        None | Some("") => serde_json::json!({}),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| format!("parameters are not JSON: {e}"))?
        }
    };
    let created_at = raw
        .created_at
        .or(raw.updated_at)
        .ok_or("created_at is missing")?;
    let changed_by = match raw.changed_by.as_deref() {
        None => Actor::External,
        Some(s) => s
            .parse()
            .map_err(|_| format!("unknown changed_by {}", quoted(s)))?,
    };
    Ok(Request {
        request_id,
        request_type,
        symbol: raw.symbol.clone().unwrap_or_default(),
        priority,
        status,
        parameters,
        result_table: raw
            .result_table
            .clone()
            .unwrap_or_else(|| request_type.result_table().to_string()),
        created_at,
        updated_at: raw.updated_at.unwrap_or(created_at),
        result_data: raw
            .result_data
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
        error_message: raw.error_message.clone(),
        attempts: raw.attempts.unwrap_or(0).max(0) as u32,
        failures: raw.failures.unwrap_or(0).max(0) as u32,
        next_attempt_at: raw.next_attempt_at,
        changed_by,
        event,
        seq: raw.seq,
        lease_owner: raw.lease_owner.clone(),
        lease_expires_at: raw.lease_expires_at,
        schedule_key: raw.schedule_key.clone(),
        during,
    })
}

/// Decodes every row of a batch: a request, or the row as stored with why it is not one.
pub fn decode(batch: &RecordBatch) -> Result<Vec<Result<Request, BadRow>>, String> {
    Ok(decode_raw(batch)?
        .into_iter()
        .map(|raw| {
            to_request(&raw).map_err(|message| BadRow {
                raw: Box::new(raw),
                message,
            })
        })
        .collect())
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
            during: During::Extended,
        };
        let decoded = decode(&encode(std::slice::from_ref(&r))).unwrap();
        assert_eq!(decoded[0].as_ref().unwrap(), &r);
    }

    #[test]
    fn history_rows_are_the_queue_columns_filed_under_their_new_york_date() {
        let names = |cols: &[Col]| cols.iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(
            names(&HISTORY_COLUMNS[..QUEUE_COLUMNS.len()]),
            names(QUEUE_COLUMNS)
        );
        assert_eq!(HISTORY_COLUMNS.last().unwrap().name, HISTORY_PARTITION);
        let fallback: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        // 03:30 UTC is 22:30 the day before in New York (EST).
        let late: DateTime<Utc> = "2026-11-25T03:30:00Z".parse().unwrap();
        let rows = [
            RawRow {
                updated_at: Some(late),
                created_at: Some(fallback),
                ..RawRow::default()
            },
            RawRow {
                created_at: Some("2026-07-01T03:30:00Z".parse().unwrap()),
                ..RawRow::default()
            },
            RawRow::default(),
        ];
        let day = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        assert_eq!(history_date(&rows[0], fallback), day("2026-11-24"));
        assert_eq!(history_date(&rows[1], fallback), day("2026-06-30"), "EDT");
        assert_eq!(history_date(&rows[2], fallback), day("2026-11-30"));
        let batch = encode_history(&rows, fallback);
        assert_eq!(batch.num_columns(), HISTORY_COLUMNS.len());
        let back = decode_raw(&batch).unwrap();
        assert_eq!(back, rows, "the queue columns are written unchanged");
    }

    #[test]
    fn the_window_of_another_writers_row_is_read_and_a_bad_one_refused() {
        let row = |during: Option<&str>| RawRow {
            request_id: Some(Uuid::new_v4().to_string()),
            request_type: Some("market_bars".into()),
            symbol: Some("SPY".into()),
            status: Some("PENDING".into()),
            created_at: Some("2026-11-23T15:00:00Z".parse().unwrap()),
            during: during.map(Into::into),
            ..RawRow::default()
        };
        assert_eq!(to_request(&row(None)).unwrap().during, During::Any);
        assert_eq!(to_request(&row(Some(""))).unwrap().during, During::Any);
        assert_eq!(
            to_request(&row(Some("regular"))).unwrap().during,
            During::Regular
        );
        assert_eq!(
            to_request(&row(Some("EXTENDED"))).unwrap().during,
            During::Extended
        );
        let err = to_request(&row(Some("lunch"))).unwrap_err();
        assert!(err.contains("unknown during \"lunch\""), "{err}");
    }

    #[test]
    fn bad_rows_keep_every_column_and_say_why() {
        let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
        let raw = RawRow {
            request_id: Some("not-a-uuid".into()),
            request_type: Some("market_bars".into()),
            symbol: Some("SPY".into()),
            priority: Some(2),
            status: Some("PENDING".into()),
            created_at: Some(now),
            ..Default::default()
        };
        let cases = [
            (RawRow { ..raw.clone() }, "is not a UUID"),
            (
                RawRow {
                    request_id: None,
                    ..raw.clone()
                },
                "request_id is missing",
            ),
            (
                RawRow {
                    request_id: Some(Uuid::new_v4().to_string()),
                    request_type: Some("moon\x1b[2J".into()),
                    ..raw.clone()
                },
                "unknown request type \"moon\\x1b[2J\"",
            ),
            (
                RawRow {
                    request_id: Some(Uuid::new_v4().to_string()),
                    priority: Some(4),
                    ..raw.clone()
                },
                "got 4",
            ),
            (
                RawRow {
                    request_id: Some(Uuid::new_v4().to_string()),
                    parameters: Some("{oops".into()),
                    ..raw.clone()
                },
                "not JSON",
            ),
        ];
        for (row, why) in cases {
            let decoded = decode(&encode_raw(std::slice::from_ref(&row))).unwrap();
            let bad = decoded.into_iter().next().unwrap().unwrap_err();
            assert!(bad.message.contains(why), "{} lacks {why}", bad.message);
            assert!(!bad.message.contains('\x1b'), "{}", bad.message);
            assert_eq!(*bad.raw, row, "the row is kept as stored");
        }
    }
}
