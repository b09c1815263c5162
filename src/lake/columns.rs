//! One column list per table gives both the Delta schema (for creating the table) and the
//! Arrow schema (for writing and reading batches), so the two never disagree; plus helpers
//! to build and read columns by name, tolerant of other writers' integer widths.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::{DataType as DeltaType, PrimitiveType, StructField};

/// The types the project's tables use. Timestamps are microseconds in UTC, which Python
/// `deltalake`, polars and DuckDB all read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Utf8,
    Int64,
    Float64,
    Bool,
    Timestamp,
    Date,
}

/// A column: name and kind. Every column is nullable so other writers may omit any.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub name: &'static str,
    pub kind: ColumnKind,
}

pub const fn col(name: &'static str, kind: ColumnKind) -> Col {
    Col { name, kind }
}

impl ColumnKind {
    pub fn arrow(self) -> DataType {
        match self {
            ColumnKind::Utf8 => DataType::Utf8,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnKind::Date => DataType::Date32,
        }
    }

    fn delta(self) -> DeltaType {
        DeltaType::Primitive(match self {
            ColumnKind::Utf8 => PrimitiveType::String,
            ColumnKind::Int64 => PrimitiveType::Long,
            ColumnKind::Float64 => PrimitiveType::Double,
            ColumnKind::Bool => PrimitiveType::Boolean,
            ColumnKind::Timestamp => PrimitiveType::Timestamp,
            ColumnKind::Date => PrimitiveType::Date,
        })
    }
}

pub fn arrow_schema(cols: &[Col]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter()
            .map(|c| Field::new(c.name, c.kind.arrow(), true))
            .collect::<Vec<_>>(),
    ))
}

pub fn delta_fields(cols: &[Col]) -> Vec<StructField> {
    cols.iter()
        .map(|c| StructField::new(c.name, c.kind.delta(), true))
        .collect()
}

/// Builds a batch column by column; the caller pushes columns in schema order.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
}

impl BatchBuilder {
    pub fn new(cols: &[Col]) -> Self {
        Self {
            schema: arrow_schema(cols),
            columns: Vec::with_capacity(cols.len()),
        }
    }

    pub fn utf8<S: AsRef<str>>(mut self, values: impl IntoIterator<Item = Option<S>>) -> Self {
        self.columns.push(Arc::new(StringArray::from_iter(values)));
        self
    }

    pub fn i64(mut self, values: impl IntoIterator<Item = Option<i64>>) -> Self {
        self.columns.push(Arc::new(Int64Array::from_iter(values)));
        self
    }

    pub fn f64(mut self, values: impl IntoIterator<Item = Option<f64>>) -> Self {
        self.columns.push(Arc::new(Float64Array::from_iter(values)));
        self
    }

    pub fn bool(mut self, values: impl IntoIterator<Item = Option<bool>>) -> Self {
        self.columns.push(Arc::new(BooleanArray::from_iter(values)));
        self
    }

    pub fn timestamp(mut self, values: impl IntoIterator<Item = Option<DateTime<Utc>>>) -> Self {
        let micros = values.into_iter().map(|v| v.map(|t| t.timestamp_micros()));
        self.columns.push(Arc::new(
            TimestampMicrosecondArray::from_iter(micros).with_timezone("UTC"),
        ));
        self
    }

    pub fn date(mut self, values: impl IntoIterator<Item = Option<NaiveDate>>) -> Self {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        let days = values
            .into_iter()
            .map(|v| v.map(|d| (d - epoch).num_days() as i32));
        self.columns.push(Arc::new(Date32Array::from_iter(days)));
        self
    }

    pub fn finish(self) -> RecordBatch {
        RecordBatch::try_new(self.schema, self.columns)
            .expect("columns are pushed in schema order with equal lengths")
    }
}

/// Reads columns of a batch by name, casting what other writers wrote (int32 priorities,
/// nanosecond timestamps, large strings) to the project's kinds; a missing column reads
/// as all nulls.
pub struct BatchReader<'a> {
    batch: &'a RecordBatch,
}

impl<'a> BatchReader<'a> {
    pub fn new(batch: &'a RecordBatch) -> Self {
        Self { batch }
    }

    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    fn column(&self, name: &str, kind: ColumnKind) -> Result<Option<ArrayRef>, String> {
        let Some(array) = self.batch.column_by_name(name) else {
            return Ok(None);
        };
        cast(array, &kind.arrow())
            .map(Some)
            .map_err(|e| format!("column `{name}` cannot be read as {:?}: {e}", kind.arrow()))
    }

    pub fn utf8(&self, name: &str) -> Result<Vec<Option<String>>, String> {
        Ok(match self.column(name, ColumnKind::Utf8)? {
            None => vec![None; self.len()],
            Some(a) => {
                let a = a
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8");
                a.iter().map(|v| v.map(str::to_string)).collect()
            }
        })
    }

    pub fn i64(&self, name: &str) -> Result<Vec<Option<i64>>, String> {
        Ok(match self.column(name, ColumnKind::Int64)? {
            None => vec![None; self.len()],
            Some(a) => a
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("cast to Int64")
                .iter()
                .collect(),
        })
    }

    pub fn f64(&self, name: &str) -> Result<Vec<Option<f64>>, String> {
        Ok(match self.column(name, ColumnKind::Float64)? {
            None => vec![None; self.len()],
            Some(a) => a
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast to Float64")
                .iter()
                .collect(),
        })
    }

    pub fn bool(&self, name: &str) -> Result<Vec<Option<bool>>, String> {
        Ok(match self.column(name, ColumnKind::Bool)? {
            None => vec![None; self.len()],
            Some(a) => a
                .as_any()
                .downcast_ref::<BooleanArray>()
                .expect("cast to Boolean")
                .iter()
                .collect(),
        })
    }

    pub fn timestamp(&self, name: &str) -> Result<Vec<Option<DateTime<Utc>>>, String> {
        Ok(match self.column(name, ColumnKind::Timestamp)? {
            None => vec![None; self.len()],
            Some(a) => a
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .expect("cast to timestamp")
                .iter()
                .map(|v| v.and_then(DateTime::from_timestamp_micros))
                .collect(),
        })
    }
}
