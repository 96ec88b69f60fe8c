//! Where the sink's files go: tables, Hive-style partitions, file names by batch sequence.

use std::path::{Path, PathBuf};

use crate::event::{utc, Millis};

/// The sink's commit record, in its folder beside the tables. Readers of the tables
/// never see it: Hive readers skip names starting with `_`, and it is not `*.parquet`.
pub const PROGRESS_FILE: &str = "_diffmill_progress.json";

/// One of the sink's tables: a folder of Parquet files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// The aggregate rows, by the window's date and hour.
    Aggregates,
    /// Bad input, not partitioned.
    DeadLetters,
    /// Records too late to apply, by the record's date and hour.
    TooLate,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 3] = [Table::Aggregates, Table::DeadLetters, Table::TooLate];

    /// The table's folder name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Aggregates => "aggregates",
            Table::DeadLetters => "dead_letters",
            Table::TooLate => "too_late",
        }
    }
}

/// The Hive-style partition of the hour holding `ms` (UTC): `date=YYYY-MM-DD/hour=H`,
/// the hour without a leading zero so that readers infer an integer column.
///
/// # Examples
/// ```
/// use diffmill::connectors::parquet::layout::hour_partition;
///
/// // 2024-01-01T03:15:00Z
/// assert_eq!(hour_partition(1_704_078_900_000), "date=2024-01-01/hour=3");
/// ```
pub fn hour_partition(ms: Millis) -> String {
    let text = utc(ms);
    let hour = text[11..13].trim_start_matches('0');
    format!(
        "date={}/hour={}",
        &text[..10],
        if hour.is_empty() { "0" } else { hour }
    )
}

/// The name of the file holding batch `seq` of a partition.
pub fn file_name(seq: u64) -> String {
    format!("part-{seq:010}.parquet")
}

/// The name a file has while it is written: hidden from readers (a leading `.`, not
/// `*.parquet`), renamed to its [`file_name`] once complete.
pub fn temporary_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// The batch sequence of a file named by [`file_name`]; `None` for any other name.
pub fn file_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// True for a name that [`temporary_name`] makes.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with(".part-") && name.ends_with(".parquet.tmp")
}

/// The folder of one partition of `table` under the sink's `root`.
pub fn partition_dir(root: &Path, table: Table, partition: Option<&str>) -> PathBuf {
    let dir = root.join(table.name());
    match partition {
        Some(partition) => dir.join(partition),
        None => dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(42), "part-0000000042.parquet");
        assert_eq!(file_seq(&file_name(42)), Some(42));
        assert_eq!(file_seq(&file_name(12_345_678_901)), Some(12_345_678_901));
        assert_eq!(file_seq("part-.parquet"), None);
        assert_eq!(file_seq("part-12.parquet.tmp"), None);
        assert_eq!(file_seq("other.parquet"), None);
        assert!(is_temporary(&temporary_name(&file_name(3))));
        assert!(!is_temporary(&file_name(3)));
    }

    #[test]
    fn partitions_are_utc_hours() {
        assert_eq!(hour_partition(0), "date=1970-01-01/hour=0");
        assert_eq!(hour_partition(3_600_000 * 25 - 1), "date=1970-01-02/hour=0");
        assert_eq!(hour_partition(3_600_000 * 25), "date=1970-01-02/hour=1");
        assert_eq!(hour_partition(3_600_000 * 23), "date=1970-01-01/hour=23");
    }
}
