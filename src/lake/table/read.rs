//! Reading a table: its live files (all, with statistics, by partition, at an older
//! version) and the rows of chosen files.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, RecordBatch, StringArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::datafile::reader::ParquetFileReader;
use deltalake::datafile::DataFileReader;
use futures::TryStreamExt;

use super::*;

impl LakeTable {
    /// The live data files of the loaded version.
    pub async fn files(&self) -> Result<Vec<DataFile>, LakeError> {
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        let log_store = self.table.log_store();
        snapshot
            .snapshot()
            .file_views(log_store.as_ref(), None)
            .map_ok(|v| data_file(&v))
            .try_collect()
            .await
            .map_err(|e| self.err(e))
    }

    /// The live data files of the loaded version, each with its Delta statistics (the
    /// JSON of its add action: `numRecords`, `minValues`, `maxValues`, `nullCount`) when
    /// its writer recorded them.
    pub async fn files_with_stats(&self) -> Result<Vec<(DataFile, Option<String>)>, LakeError> {
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        let log_store = self.table.log_store();
        snapshot
            .snapshot()
            .file_views(log_store.as_ref(), None)
            .map_ok(|v| (data_file(&v), v.stats()))
            .try_collect()
            .await
            .map_err(|e| self.err(e))
    }

    /// The live files whose value of the partition column `column` passes `keep` (only
    /// those files are read, so a one-day read of a table partitioned by day opens one
    /// day's files). `None` when the table is not partitioned by `column`: the caller then
    /// reads every file and filters rows itself.
    pub async fn files_where(
        &self,
        column: &str,
        keep: impl Fn(Option<&str>) -> bool,
    ) -> Result<Option<Vec<DataFile>>, LakeError> {
        if !self.partition_columns().iter().any(|c| c == column) {
            return Ok(None);
        }
        let files = self.files().await?;
        Ok(Some(
            files
                .into_iter()
                .filter(|f| keep(f.partition.get(column).and_then(|v| v.as_deref())))
                .collect(),
        ))
    }

    /// Reads whole data files (raw parquet, each with the schema its writer used). A
    /// partition column, which Delta keeps in the file's path rather than in the file, is
    /// added to each batch from the file's partition value.
    pub async fn read(&self, files: &[DataFile]) -> Result<Vec<RecordBatch>, LakeError> {
        let reader = ParquetFileReader::new(self.table.log_store().object_store(None));
        let schema = self
            .table
            .snapshot()
            .map_err(|e| self.err(e))?
            .snapshot()
            .arrow_schema();
        let mut batches = Vec::new();
        for f in files {
            self.files_read.fetch_add(1, Ordering::Relaxed);
            let path = deltalake::Path::parse(&f.path)
                .unwrap_or_else(|_| deltalake::Path::from(f.path.as_str()));
            let stream = reader
                .read_file(path)
                .await
                .map_err(|e| self.err(format!("reading {}: {e}", f.path)))?;
            let mut part: Vec<RecordBatch> = stream
                .try_collect()
                .await
                .map_err(|e| self.err(format!("reading {}: {e}", f.path)))?;
            if !f.partition.is_empty() {
                for b in part.iter_mut() {
                    *b = with_partition_values(b, &f.partition, &schema)
                        .map_err(|e| self.err(format!("reading {}: {e}", f.path)))?;
                }
            }
            batches.append(&mut part);
        }
        Ok(batches)
    }

    /// Reads only the named columns of each file (raw parquet; a column a file lacks is
    /// left out of its batches), one list of batches per file, in the order given. For
    /// finding which files hold a key without decoding every column.
    // The object-store reader deltalake's own `ParquetFileReader` uses; deprecated upstream
    // in favour of hand-written readers.
    #[allow(deprecated)]
    pub async fn read_columns(
        &self,
        files: &[DataFile],
        names: &[&str],
    ) -> Result<Vec<Vec<RecordBatch>>, LakeError> {
        use deltalake::parquet::arrow::async_reader::{
            ParquetObjectReader, ParquetRecordBatchStreamBuilder,
        };
        use deltalake::parquet::arrow::ProjectionMask;
        let store = self.table.log_store().object_store(None);
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            self.files_read.fetch_add(1, Ordering::Relaxed);
            let path = deltalake::Path::parse(&f.path)
                .unwrap_or_else(|_| deltalake::Path::from(f.path.as_str()));
            let mut reader = ParquetObjectReader::new(store.clone(), path);
            if let Ok(size) = u64::try_from(f.size) {
                reader = reader.with_file_size(size);
            }
            let fail = |e: &dyn std::fmt::Display| self.err(format!("reading {}: {e}", f.path));
            let builder = ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(|e| fail(&e))?;
            let mask = ProjectionMask::columns(builder.parquet_schema(), names.iter().copied());
            let stream = builder
                .with_projection(mask)
                .build()
                .map_err(|e| fail(&e))?;
            out.push(stream.try_collect().await.map_err(|e| fail(&e))?);
        }
        Ok(out)
    }

    /// Every row of the loaded version.
    pub async fn read_all(&self) -> Result<Vec<RecordBatch>, LakeError> {
        let files = self.files().await?;
        self.read(&files).await
    }

    /// The data files that were live at `version` (none before the table's first commit).
    pub async fn files_at(&self, version: i64) -> Result<Vec<DataFile>, LakeError> {
        if version < 0 {
            return Ok(Vec::new());
        }
        let url = table_url(&self.path).map_err(|e| self.err(e))?;
        let old = deltalake::open_table_with_version(url, version as _)
            .await
            .map_err(|e| self.err(format!("opening version {version}: {e}")))?;
        let snapshot = old.snapshot().map_err(|e| self.err(e))?;
        let log_store = old.log_store();
        snapshot
            .snapshot()
            .file_views(log_store.as_ref(), None)
            .map_ok(|v| data_file(&v))
            .try_collect()
            .await
            .map_err(|e| self.err(e))
    }
}

fn data_file(v: &deltalake::kernel::LogicalFileView) -> DataFile {
    DataFile {
        path: v.path().to_string(),
        size: v.size(),
        partition: v.partition_values_map().into_iter().collect(),
    }
}

/// `batch` with the partition columns of the table that it lacks, each filled with the
/// file's value cast to the column's type.
fn with_partition_values(
    batch: &RecordBatch,
    values: &BTreeMap<String, Option<String>>,
    schema: &SchemaRef,
) -> Result<RecordBatch, String> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (name, value) in values {
        if batch.column_by_name(name).is_some() {
            continue;
        }
        let field = schema
            .field_with_name(name)
            .map_err(|_| format!("partition column `{name}` is not in the table's schema"))?;
        let text: ArrayRef = Arc::new(StringArray::from(vec![value.as_deref(); batch.num_rows()]));
        let column = cast(&text, field.data_type())
            .map_err(|e| format!("partition value {value:?} of `{name}`: {e}"))?;
        fields.push(Field::new(name, field.data_type().clone(), true));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}
