//! The Parquet sink's settings, as written in a graph's `[[sink]]` table.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Rows per row group when a graph does not say: large enough for good compression and
/// few footers, small enough that a reader can skip by statistics.
pub const DEFAULT_ROW_GROUP_SIZE: usize = 128 * 1024;

/// Which rows the aggregates table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParquetMode {
    /// Each window's totals, written once when the window is final: the table holds only
    /// values that never change.
    Final,
    /// Every batch's diff rows (and a `final` row per window that became final), like the
    /// CSV change log: summing the rows up to a batch gives the totals at its frontier.
    Changes,
}

impl ParquetMode {
    /// The mode as written in a graph file.
    pub fn name(self) -> &'static str {
        match self {
            ParquetMode::Final => "final",
            ParquetMode::Changes => "changes",
        }
    }
}

/// `kind = "parquet"`: tables of Parquet files in Hive-style partitions.
///
/// Under `path`, the sink keeps three tables, each a folder: `aggregates` (by the
/// window's date and hour: `aggregates/date=2024-01-01/hour=3/part-….parquet`),
/// `too_late` (by the record's date and hour) and `dead_letters` (not partitioned: a bad
/// record has no trusted time), and its progress file `_diffmill_progress.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkSpec {
    /// Folder of the tables, created if missing. Two runs into the same folder continue
    /// each other: the second skips what the first wrote.
    pub path: PathBuf,
    /// `final` (each window's totals once, when final) or `changes` (every batch's diffs).
    pub mode: ParquetMode,
    /// Most rows in one row group of a file (default 131072).
    #[serde(default = "default_row_group_size")]
    pub row_group_size: usize,
}

fn default_row_group_size() -> usize {
    DEFAULT_ROW_GROUP_SIZE
}

impl ParquetSinkSpec {
    /// A spec with the default row group size.
    pub fn new(path: impl Into<PathBuf>, mode: ParquetMode) -> ParquetSinkSpec {
        ParquetSinkSpec {
            path: path.into(),
            mode,
            row_group_size: DEFAULT_ROW_GROUP_SIZE,
        }
    }

    /// Checks the values serde cannot: the key and the problem of the first bad one.
    ///
    /// # Errors
    /// `(key, problem)` for a value that cannot be used.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.row_group_size == 0 {
            return Err(("row_group_size", "must be at least 1".to_owned()));
        }
        if self.path.as_os_str().is_empty() {
            return Err(("path", "must name a folder".to_owned()));
        }
        Ok(())
    }
}
