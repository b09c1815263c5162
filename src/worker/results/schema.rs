//! The result tables' names and columns, and the partition column `date` each row gets:
//! the New York trading date of its snapshot, bar or update.

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::RecordBatch;

use crate::lake::columns::{col, BatchReader, Col, ColumnKind::*};
use crate::market::calendar::new_york_date;

pub const OPTION_SNAPSHOTS: &str = "option_snapshots";
pub const FUTURES_SNAPSHOTS: &str = "futures_snapshots";
pub const MARKET_BARS: &str = "market_bars";
pub const POSITION_UPDATES: &str = "position_updates";
pub const DERIVED_STATS: &str = "derived_stats";

pub const OPTION_SNAPSHOT_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("snapshot_at", Timestamp),
    col("underlying", Utf8),
    col("underlying_price", Float64),
    col("conid", Int64),
    col("local_symbol", Utf8),
    col("expiry", Utf8),
    col("dte", Int64),
    col("strike", Float64),
    col("right", Utf8),
    col("bid", Float64),
    col("ask", Float64),
    col("last", Float64),
    col("bid_size", Float64),
    col("ask_size", Float64),
    col("volume", Float64),
    col("implied_vol", Float64),
    col("delta", Float64),
    col("gamma", Float64),
    col("vega", Float64),
    col("theta", Float64),
    col("model_price", Float64),
    col("market_data_type", Int64),
];

pub const FUTURES_SNAPSHOT_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("snapshot_at", Timestamp),
    col("symbol", Utf8),
    col("conid", Int64),
    col("local_symbol", Utf8),
    col("contract_month", Utf8),
    col("last_trade_date", Date),
    col("last_trade_time", Timestamp),
    col("bid", Float64),
    col("ask", Float64),
    col("last", Float64),
    col("bid_size", Float64),
    col("ask_size", Float64),
    col("volume", Float64),
    col("high", Float64),
    col("low", Float64),
    col("close", Float64),
    col("market_data_type", Int64),
];

pub const MARKET_BAR_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("symbol", Utf8),
    col("conid", Int64),
    col("bar_size", Utf8),
    col("what_to_show", Utf8),
    col("bar_time", Timestamp),
    col("open", Float64),
    col("high", Float64),
    col("low", Float64),
    col("close", Float64),
    col("volume", Float64),
    col("wap", Float64),
    col("bar_count", Int64),
    col("written_at", Timestamp),
];

pub const POSITION_UPDATE_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("source", Utf8),
    col("updated_at", Timestamp),
    col("account", Utf8),
    col("conid", Int64),
    col("symbol", Utf8),
    col("sec_type", Utf8),
    col("expiry", Utf8),
    col("strike", Float64),
    col("right", Utf8),
    col("quantity", Float64),
    col("avg_cost", Float64),
    col("market_price", Float64),
    col("market_value", Float64),
    col("market_data_type", Int64),
];

pub const DERIVED_STATS_COLUMNS: &[Col] = &[
    col("request_id", Utf8),
    col("date", Date),
    col("symbol", Utf8),
    col("open", Float64),
    col("high", Float64),
    col("low", Float64),
    col("close", Float64),
    col("daily_range", Float64),
    col("daily_return", Float64),
    col("atm_implied_vol", Float64),
    col("put_call_volume_ratio", Float64),
    col("computed_at", Timestamp),
];

/// Every result table, in the order `ibq upkeep` reports them.
pub const RESULT_TABLES: [&str; 5] = [
    OPTION_SNAPSHOTS,
    FUTURES_SNAPSHOTS,
    MARKET_BARS,
    POSITION_UPDATES,
    DERIVED_STATS,
];

/// The partition column of every result table: the New York trading date of the row.
pub const PARTITION_COLUMN: &str = "date";

/// The columns a writer builds for `table` (its batches get `date` from `with_date`).
pub fn columns_of(table: &str) -> &'static [Col] {
    match table {
        OPTION_SNAPSHOTS => OPTION_SNAPSHOT_COLUMNS,
        FUTURES_SNAPSHOTS => FUTURES_SNAPSHOT_COLUMNS,
        MARKET_BARS => MARKET_BAR_COLUMNS,
        POSITION_UPDATES => POSITION_UPDATE_COLUMNS,
        _ => DERIVED_STATS_COLUMNS,
    }
}

/// The columns stored in `table`: the writer's columns and the partition column `date`.
pub fn stored_columns(table: &str) -> Vec<Col> {
    let mut cols = columns_of(table).to_vec();
    if !cols.iter().any(|c| c.name == PARTITION_COLUMN) {
        cols.push(col(PARTITION_COLUMN, Date));
    }
    cols
}

/// The day a bar belongs to: bars of a day or longer carry their date at 00:00 UTC (IB
/// sends a date, not a time); intraday bars their New York trading day.
pub fn bar_day(bar_size: &str, bar_time: DateTime<Utc>) -> NaiveDate {
    let s = bar_size.trim().to_ascii_lowercase();
    if ["day", "days", "week", "weeks", "month", "months"]
        .iter()
        .any(|unit| s.ends_with(&format!(" {unit}")))
    {
        bar_time.date_naive()
    } else {
        new_york_date(bar_time)
    }
}

/// The New York trading date of each row of a batch of `table`: the day of its snapshot,
/// bar or update (`derived_stats` rows carry theirs).
fn days_of(table: &str, batch: &RecordBatch) -> Result<Vec<Option<NaiveDate>>, String> {
    let r = BatchReader::new(batch);
    let at = |column: &str| -> Result<Vec<Option<NaiveDate>>, String> {
        Ok(r.timestamp(column)?
            .into_iter()
            .map(|t| t.map(new_york_date))
            .collect())
    };
    match table {
        OPTION_SNAPSHOTS | FUTURES_SNAPSHOTS => at("snapshot_at"),
        POSITION_UPDATES => at("updated_at"),
        MARKET_BARS => {
            let size = r.utf8("bar_size")?;
            Ok(r.timestamp("bar_time")?
                .into_iter()
                .zip(size)
                .map(|(t, s)| t.map(|t| bar_day(s.as_deref().unwrap_or(""), t)))
                .collect())
        }
        _ => Err(format!(
            "{table}: rows carry their own `{PARTITION_COLUMN}` column"
        )),
    }
}

/// `batch` with the partition column `date` (see `days_of`) when it lacks one.
pub fn with_date(table: &str, batch: RecordBatch) -> Result<RecordBatch, String> {
    use deltalake::arrow::array::{ArrayRef, Date32Array};
    use deltalake::arrow::datatypes::{Field, Schema};
    if batch.column_by_name(PARTITION_COLUMN).is_some() {
        return Ok(batch);
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let days: ArrayRef = std::sync::Arc::new(Date32Array::from_iter(
        days_of(table, &batch)?
            .into_iter()
            .map(|d| d.map(|d| (d - epoch).num_days() as i32)),
    ));
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(PARTITION_COLUMN, Date.arrow(), true));
    let mut columns = batch.columns().to_vec();
    columns.push(days);
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod day_tests {
    use super::*;
    use crate::lake::columns::BatchBuilder;
    use deltalake::arrow::array::{Array, Date32Array};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_bar_belongs_to_its_date_or_its_new_york_day() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // A daily bar carries its date at 00:00 UTC (19:00 the evening before in New York).
        assert_eq!(
            bar_day("1 day", at("2026-11-24T00:00:00Z")),
            d("2026-11-24")
        );
        assert_eq!(
            bar_day("1 week", at("2026-11-23T00:00:00Z")),
            d("2026-11-23")
        );
        // An intraday bar at 20:00 New York (01:00 UTC the next day) is on its New York day.
        assert_eq!(
            bar_day("5 mins", at("2026-11-25T01:00:00Z")),
            d("2026-11-24")
        );
        assert_eq!(
            bar_day("1 hour", at("2026-11-24T14:30:00Z")),
            d("2026-11-24")
        );
    }

    #[test]
    fn rows_get_the_new_york_day_of_their_time_and_keep_a_date_they_have() {
        let batch = BatchBuilder::new(POSITION_UPDATE_COLUMNS)
            .utf8([None::<&str>, None])
            .utf8([Some("stream"), Some("stream")])
            // 23:30 New York on the 24th is the 25th in UTC; a null time has no day.
            .timestamp([Some(at("2026-11-25T04:30:00Z")), None])
            .utf8([Some("DU1"), Some("DU1")])
            .i64([Some(1), Some(2)])
            .utf8([Some("SPY"), Some("SPY")])
            .utf8([Some("STK"), Some("STK")])
            .utf8([None::<&str>, None])
            .f64([None, None])
            .utf8([None::<&str>, None])
            .f64([Some(1.0), Some(1.0)])
            .f64([Some(1.0), Some(1.0)])
            .f64([Some(1.0), Some(1.0)])
            .f64([Some(1.0), Some(1.0)])
            .i64([Some(1), None])
            .finish();
        let stamped = with_date(POSITION_UPDATES, batch).unwrap();
        let days = stamped
            .column_by_name(PARTITION_COLUMN)
            .unwrap()
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap()
            .clone();
        assert_eq!(days.value_as_date(0), NaiveDate::from_ymd_opt(2026, 11, 24));
        assert!(days.is_null(1));
        // A batch that has the column keeps it as it is.
        let again = with_date(POSITION_UPDATES, stamped.clone()).unwrap();
        assert_eq!(again, stamped);
        // derived_stats rows carry their own date; one without it is refused, not guessed.
        let stats = BatchBuilder::new(&DERIVED_STATS_COLUMNS[..2])
            .utf8([None::<&str>])
            .date([NaiveDate::from_ymd_opt(2026, 11, 24)])
            .finish();
        assert!(with_date(DERIVED_STATS, stats).is_ok());
        assert!(days_of(
            DERIVED_STATS,
            &RecordBatch::new_empty(std::sync::Arc::new(
                deltalake::arrow::datatypes::Schema::empty()
            ))
        )
        .is_err());
    }

    #[test]
    fn every_result_table_stores_a_date_column_once() {
        for t in RESULT_TABLES {
            let cols = stored_columns(t);
            assert_eq!(
                cols.iter().filter(|c| c.name == PARTITION_COLUMN).count(),
                1,
                "{t}"
            );
        }
    }
}
