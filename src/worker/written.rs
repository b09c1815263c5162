//! Which requests already have rows in a result table, for the worker's check before it
//! runs a request (a run whose rows were committed but whose success was not). Only the
//! files that may hold rows written since the request was made are read, and only their
//! `request_id` column: a request's rows are stamped (on the engine's clock) when its
//! attempt runs, never before it was made, so the days before are ruled out by each file's
//! statistics of the table's time column, or by its `date` partition.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use uuid::Uuid;

use crate::lake::columns::BatchReader;
use crate::lake::table::DataFile;
use crate::lake::{LakeError, LakeTable};
use crate::market::calendar::new_york_date;

/// The column each result table stamps with the time its rows were written, and whether
/// the table's `date` partition is the New York day of that time.
pub fn write_time_column(table: &str) -> (&'static str, bool) {
    use super::results::*;
    match table {
        OPTION_SNAPSHOTS | FUTURES_SNAPSHOTS => ("snapshot_at", true),
        POSITION_UPDATES => ("updated_at", true),
        // A bar is filed under its own day, written when a request fetches it.
        MARKET_BARS => ("written_at", false),
        _ => ("computed_at", false),
    }
}

/// The earliest time rows of a request made at `created_at` can carry when the engine's
/// clock reads `now`: its creation (the queue's clock) or now, whichever is earlier, less
/// a day for the two clocks to differ (a fast clock a little behind the wall clock).
pub fn earliest_write(created_at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    created_at.min(now) - Duration::days(1)
}

/// Whether a file may hold rows written at or after `since`: not when its statistics say
/// its newest write time is earlier (Delta keeps them cut to the millisecond, so the newest
/// may be up to a millisecond later than stated), nor when the table is partitioned by the write day and the file's day
/// is earlier. Without either, it may.
pub fn may_hold_since(
    file: &DataFile,
    stats: Option<&str>,
    column: &str,
    by_write_day: bool,
    since: DateTime<Utc>,
) -> bool {
    let newest = stats
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| {
            v["maxValues"][column]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        });
    if let Some(newest) = newest {
        return newest + Duration::milliseconds(1) > since;
    }
    if by_write_day {
        let day = file
            .partition
            .get(super::results::PARTITION_COLUMN)
            .and_then(|v| v.as_deref())
            .and_then(|v| v.parse::<NaiveDate>().ok());
        if let Some(day) = day {
            return day >= new_york_date(since);
        }
    }
    true
}

/// Request ids with rows in one result table, known for every row written at or after
/// `since` (rows this process writes are added as they are committed).
#[derive(Debug, Default)]
pub struct WrittenIds {
    ids: HashSet<Uuid>,
    since: Option<DateTime<Utc>>,
    /// Files already read (a later, earlier-reaching load skips them).
    read: HashSet<String>,
}

impl WrittenIds {
    pub fn contains(&self, id: &Uuid) -> bool {
        self.ids.contains(id)
    }

    pub fn insert(&mut self, id: Uuid) {
        self.ids.insert(id);
    }

    pub fn extend(&mut self, ids: impl IntoIterator<Item = Uuid>) {
        self.ids.extend(ids);
    }

    /// How many ids are known.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Makes the set complete for rows written at or after `since`: reads the `request_id`
    /// column of the live files that may hold such rows and were not read yet. Returns how
    /// many files it read.
    pub async fn load_since(
        &mut self,
        table: &LakeTable,
        since: DateTime<Utc>,
    ) -> Result<usize, LakeError> {
        if self.since.is_some_and(|s| s <= since) {
            return Ok(0);
        }
        let (column, by_day) = write_time_column(table.name());
        let files: Vec<DataFile> = table
            .files_with_stats()
            .await?
            .into_iter()
            .filter(|(f, stats)| {
                !self.read.contains(&f.path)
                    && may_hold_since(f, stats.as_deref(), column, by_day, since)
            })
            .map(|(f, _)| f)
            .collect();
        for (f, batches) in files
            .iter()
            .zip(table.read_columns(&files, &["request_id"]).await?)
        {
            for b in &batches {
                let ids = BatchReader::new(b)
                    .utf8("request_id")
                    .map_err(|m| LakeError::Table {
                        name: table.name().into(),
                        path: table.path().to_path_buf(),
                        message: format!("{}: {m}", f.path),
                    })?;
                self.ids.extend(
                    ids.into_iter()
                        .flatten()
                        .filter_map(|s| Uuid::parse_str(&s).ok()),
                );
            }
            self.read.insert(f.path.clone());
        }
        self.since = Some(since);
        Ok(files.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn file(day: Option<&str>) -> DataFile {
        DataFile {
            path: "f.parquet".into(),
            size: 1,
            partition: day
                .map(|d| BTreeMap::from([("date".to_string(), Some(d.to_string()))]))
                .unwrap_or_default(),
        }
    }

    fn stats(max: &str) -> String {
        format!(r#"{{"numRecords":3,"maxValues":{{"written_at":"{max}"}}}}"#)
    }

    #[test]
    fn a_file_written_before_since_is_ruled_out_by_its_statistics() {
        let since = at("2026-11-24T14:30:00Z");
        let f = file(Some("2026-11-20"));
        // Bars of an old day written today may hold the request's rows; written before not.
        let today = stats("2026-11-24T15:00:00.000Z");
        assert!(may_hold_since(&f, Some(&today), "written_at", false, since));
        let old = stats("2026-11-24T14:29:59.999Z");
        assert!(!may_hold_since(&f, Some(&old), "written_at", false, since));
        // The same millisecond is kept (statistics are cut to milliseconds).
        let edge = stats("2026-11-24T14:29:59.999Z");
        assert!(may_hold_since(
            &f,
            Some(&edge),
            "written_at",
            false,
            since - Duration::microseconds(500)
        ));
    }

    #[test]
    fn without_statistics_the_write_day_partition_decides_or_the_file_is_read() {
        let since = at("2026-11-24T14:30:00Z"); // 09:30 New York on the 24th
        assert!(!may_hold_since(
            &file(Some("2026-11-23")),
            None,
            "snapshot_at",
            true,
            since
        ));
        assert!(may_hold_since(
            &file(Some("2026-11-24")),
            None,
            "snapshot_at",
            true,
            since
        ));
        assert!(may_hold_since(
            &file(Some("2026-11-25")),
            None,
            "snapshot_at",
            true,
            since
        ));
        // Bars are filed under their own day: the partition says nothing about the write.
        assert!(may_hold_since(
            &file(Some("2026-11-02")),
            None,
            "written_at",
            false,
            since
        ));
        assert!(may_hold_since(
            &file(None),
            Some("{}"),
            "snapshot_at",
            true,
            since
        ));
    }

    #[test]
    fn the_earliest_write_is_a_day_before_the_earlier_clock() {
        let made = at("2026-11-24T14:30:00Z");
        assert_eq!(
            earliest_write(made, made + Duration::hours(3)),
            made - Duration::days(1)
        );
        // A fast clock behind the wall clock: its own now counts.
        let fast = at("2026-11-20T14:30:00Z");
        assert_eq!(earliest_write(made, fast), fast - Duration::days(1));
    }
}
