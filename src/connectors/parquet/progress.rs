//! The sink's commit record: how far it has written, and what `final` mode carries over.
//!
//! The record is one small JSON file, published atomically after a batch's data files.
//! Its rename is the batch's commit: a data file whose sequence is above `seq` belongs to
//! a batch that never committed, and the next run removes it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::ParquetMode;
use super::layout::{temporary_name, PROGRESS_FILE};
use super::open_windows::WindowKey;
use super::publish::{publish_bytes, sync_dir};
use crate::declare::Measures;
use crate::event::Millis;

/// Version of the record's layout; a record of another version is not read.
const VERSION: u32 = 1;

/// What a sink folder holds, as of its last committed batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The layout version of this record.
    pub version: u32,
    /// The mode the tables were written in.
    pub mode: ParquetMode,
    /// The aggregates table's columns.
    pub columns: Vec<String>,
    /// The sequence number of the last committed batch; `None` before the first.
    pub seq: Option<u64>,
    /// The frontier of the last committed batch (0 before the first).
    pub frontier: Millis,
    /// True once a batch of a complete input (no frontier) committed: later runs write
    /// nothing.
    pub complete: bool,
    /// `final` mode: the totals of the windows not final at `frontier`, which the next
    /// batches add to. Empty in `changes` mode.
    pub open_windows: Vec<(WindowKey, Measures)>,
}

impl Committed {
    /// The record of a folder nothing has been committed to.
    pub fn empty(mode: ParquetMode, columns: Vec<String>) -> Committed {
        Committed {
            version: VERSION,
            mode,
            columns,
            seq: None,
            frontier: 0,
            complete: false,
            open_windows: Vec::new(),
        }
    }

    /// Reads the record of the sink folder `root`; `None` when there is none.
    ///
    /// # Errors
    /// A message when the file cannot be read or is not a record of this version.
    pub fn read(root: &Path) -> Result<Option<Committed>, String> {
        let path = root.join(PROGRESS_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let committed: Committed = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "{} is not a diffmill Parquet progress record: {e}",
                path.display()
            )
        })?;
        if committed.version != VERSION {
            return Err(format!(
                "{} has layout version {}, this diffmill writes version {VERSION}",
                path.display(),
                committed.version
            ));
        }
        Ok(Some(committed))
    }

    /// Publishes the record in `root` (atomically, durably): the commit point.
    ///
    /// # Errors
    /// An I/O error; the previous record then still stands.
    pub fn write(&self, root: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        publish_bytes(root, PROGRESS_FILE, &bytes)?;
        sync_dir(root)
    }

    /// Removes a temporary record left by a run that died while committing.
    ///
    /// # Errors
    /// An I/O error other than the file being absent.
    pub fn remove_temporary(root: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(root.join(temporary_name(PROGRESS_FILE))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
