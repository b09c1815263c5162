//! Delta Lake access without DataFusion: tables described by a column list, appends of
//! whole batches in one commit, raw parquet reads of live files, and compaction that
//! replaces files in one commit. See DESIGN.md for the measured facts behind this shape.

pub mod columns;
pub mod table;
pub mod upkeep;

pub use columns::{Col, ColumnKind};
pub use table::{LakeError, LakeTable};
