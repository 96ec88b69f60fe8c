//! The Parquet sink: Hive-style partitioned tables, each batch committed once across
//! restarts.
//!
//! What is written when. Each batch that carries something becomes, under the sink's
//! folder, one file per partition it touches, all named `part-<seq>.parquet` after the
//! batch's sequence number (which continues over restarts):
//!
//! - `aggregates/date=…/hour=…/`: in `changes` mode every diff row of the batch, and a
//!   row with status `final`, null dims and zero measures per window that became final
//!   (the CSV change log's rows); in `final` mode the totals of each window that became
//!   final in the batch, one row per `(window, dims)`, written once;
//! - `dead_letters/`: the batch's bad records;
//! - `too_late/date=…/hour=…/`: the batch's too-late records, by their own event time.
//!
//! Each file appears atomically: written under a hidden temporary name, fsynced, renamed,
//! and its folder fsynced. Then the progress record `_diffmill_progress.json` (the last
//! committed batch's sequence number and frontier, and in `final` mode the totals of the
//! windows not final yet) is published the same way. That rename commits the batch. A
//! batch with nothing to write (and, in `final` mode, no row to add to the open totals)
//! changes nothing in the folder and is not committed: the sink only notes, in memory,
//! that it holds everything up to its frontier.
//!
//! Visibility: a reader sees whole files only. The files of one batch appear one after
//! another, before its commit: a reader listing the tables while a batch is being written
//! may see part of it, and after a crash, until the next run, the files of the batch
//! that did not commit. To read committed batches only, keep `batch_seq <= seq` of the
//! progress record.
//!
//! Restart (or re-run over the same input): the sink reads its progress record, deletes
//! temporary files and every `part-<seq>.parquet` whose `seq` did not commit, reports
//! the last committed batch as its [`Sink::resume`] and skips every batch at or below its
//! frontier. A run restored from a checkpoint at `F` ([`Sink::begin`]) needs a folder
//! that an earlier run wrote (the record is written when a folder is first opened);
//! if the record's frontier is below `F`, every batch between was written with nothing
//! to hold (the checkpoint follows the batch at `F` into every sink, and any batch with
//! something to hold commits), so the sink holds everything below `F`. `final` mode takes back the open windows' totals from the record, so the
//! windows that become final later are written with their exact totals. (The totals
//! are all the state `final` mode needs: a runtime that restores them itself from a
//! checkpoint can hand them to [`OpenWindows::restore`] instead, and the record then
//! need not carry them.) Nothing is
//! written twice and no partial file is left; a killed run restarted gives the same
//! tables as one uninterrupted run (with batches cut at other frontiers). Once a batch of
//! a complete input has committed, later runs into the folder write nothing.
//!
//! One folder has one writer: two runs writing the same folder at once are not
//! detected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::file::properties::WriterProperties;

use super::columns::{self, AggregateColumns, AggregateLine};
use super::config::{ParquetMode, ParquetSinkSpec};
use super::layout::{file_name, file_seq, hour_partition, is_temporary, partition_dir, Table};
use super::open_windows::OpenWindows;
use super::progress::Committed;
use super::publish::{ensure_dir, publish_parquet, sync_dir, writer_properties};
use crate::connectors::{Batch, Resume, Sink, SinkError};
use crate::declare::{Aggregate, Measures, Window};
use crate::event::Millis;

/// Writes batches as Parquet tables in a folder (see the module doc).
pub struct ParquetSink {
    name: String,
    root: PathBuf,
    mode: ParquetMode,
    columns: AggregateColumns,
    window: Window,
    properties: WriterProperties,
    committed: Committed,
    /// The progress record existed when the sink was opened: an earlier run wrote here.
    held_before: bool,
    open: OpenWindows,
}

/// One file to publish: its folder and its rows.
struct Pending {
    dir: PathBuf,
    batch: RecordBatch,
}

impl ParquetSink {
    /// Opens the folder of `spec` for the rows of `aggregate` (its dims, measures and
    /// windows):
    /// creates it if missing, reads its progress record, and removes what an interrupted
    /// run left (temporary files, files of a batch that did not commit).
    ///
    /// # Errors
    /// A [`SinkError`] when the folder cannot be used: an I/O error, an unreadable
    /// progress record, or tables of another mode or other columns.
    pub fn open(spec: &ParquetSinkSpec, aggregate: &Aggregate) -> Result<ParquetSink, SinkError> {
        let name = spec.path.display().to_string();
        let io = |source: std::io::Error| SinkError::Io {
            sink: name.clone(),
            source,
        };
        let other = |message: String| SinkError::Other {
            sink: name.clone(),
            message,
        };
        if let Err((key, problem)) = spec.check() {
            return Err(other(format!("`{key}`: {problem}")));
        }
        let columns = AggregateColumns::new(aggregate);
        ensure_dir(&spec.path).map_err(io)?;
        let recorded = Committed::read(&spec.path).map_err(other)?;
        let held_before = recorded.is_some();
        let committed = recorded.unwrap_or_else(|| Committed::empty(spec.mode, columns.names()));
        if committed.mode != spec.mode || committed.columns != columns.names() {
            return Err(other(format!(
                "the folder holds `{}` tables with columns [{}]; this graph writes `{}` \
                 tables with columns [{}]: use another path",
                committed.mode.name(),
                committed.columns.join(", "),
                spec.mode.name(),
                columns.names().join(", ")
            )));
        }
        Committed::remove_temporary(&spec.path).map_err(io)?;
        for table in Table::ALL {
            remove_uncommitted(&partition_dir(&spec.path, table, None), committed.seq)
                .map_err(io)?;
        }
        if !held_before {
            committed.write(&spec.path).map_err(io)?;
        }
        if committed.complete {
            tracing::warn!(
                sink = %name,
                "the progress record says an earlier run wrote a complete input: this run \
                 writes nothing (use another path to write again)"
            );
        }
        let mut open = OpenWindows::new(aggregate.window);
        open.restore(committed.open_windows.iter().copied());
        Ok(ParquetSink {
            root: spec.path.clone(),
            mode: spec.mode,
            properties: writer_properties(spec.row_group_size),
            columns,
            window: aggregate.window,
            committed,
            held_before,
            open,
            name,
        })
    }

    /// What the folder holds, as of the last committed batch.
    pub fn committed(&self) -> &Committed {
        &self.committed
    }

    /// The aggregate lines `batch` adds to the table in this sink's mode.
    fn aggregate_lines(&mut self, batch: &Batch) -> Vec<AggregateLine> {
        match self.mode {
            ParquetMode::Final => {
                self.open.add(&batch.rows);
                self.open.take_final(&batch.finalized, batch.frontier)
            }
            ParquetMode::Changes => {
                let mut lines: Vec<AggregateLine> = batch
                    .rows
                    .iter()
                    .map(|row| AggregateLine {
                        window_start: row.window_start,
                        window_end: row.window_end,
                        dims: Some(row.dims),
                        measures: row.delta,
                        status: row.status.name(),
                    })
                    .collect();
                lines.extend(batch.finalized.iter().map(|&start| AggregateLine {
                    window_start: start,
                    window_end: self.window.end(start),
                    dims: None,
                    measures: Measures::default(),
                    status: "final",
                }));
                lines
            }
        }
    }

    /// The files of `batch` at sequence `seq`, by partition.
    fn files(&mut self, batch: &Batch, seq: u64) -> Result<Vec<Pending>, arrow_schema::ArrowError> {
        let mut files = Vec::new();
        let lines = self.aggregate_lines(batch);
        let mut by_hour: BTreeMap<String, Vec<&AggregateLine>> = BTreeMap::new();
        for line in &lines {
            by_hour
                .entry(hour_partition(line.window_start))
                .or_default()
                .push(line);
        }
        for (hour, lines) in by_hour {
            files.push(Pending {
                dir: partition_dir(&self.root, Table::Aggregates, Some(&hour)),
                batch: self.columns.batch(&lines, batch.frontier, seq)?,
            });
        }
        if !batch.dead_letters.is_empty() {
            let letters: Vec<_> = batch.dead_letters.iter().collect();
            files.push(Pending {
                dir: partition_dir(&self.root, Table::DeadLetters, None),
                batch: columns::dead_letters(&letters, batch.frontier, seq)?,
            });
        }
        let mut late_by_hour: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for record in &batch.too_late {
            late_by_hour
                .entry(hour_partition(record.ts))
                .or_default()
                .push(record);
        }
        for (hour, records) in late_by_hour {
            files.push(Pending {
                dir: partition_dir(&self.root, Table::TooLate, Some(&hour)),
                batch: columns::too_late(&records, batch.frontier, seq)?,
            });
        }
        Ok(files)
    }

    /// Publishes `files` as batch `seq`; on failure removes the ones already published.
    fn publish(&self, files: &[Pending], seq: u64) -> std::io::Result<()> {
        let name = file_name(seq);
        let mut dirs = BTreeSet::new();
        let published = files.iter().try_for_each(|file| {
            ensure_dir(&file.dir)?;
            publish_parquet(
                &file.dir,
                &name,
                std::slice::from_ref(&file.batch),
                &self.properties,
            )?;
            dirs.insert(file.dir.clone());
            Ok(())
        });
        let synced = published.and_then(|()| dirs.iter().try_for_each(|dir| sync_dir(dir)));
        if synced.is_err() {
            for dir in &dirs {
                let _ = std::fs::remove_file(dir.join(&name));
            }
        }
        synced
    }
}

/// Removes, under `dir`, temporary files and the files of batches after `committed`
/// (written by a run that died before committing them; all of them when `None`).
fn remove_uncommitted(dir: &Path, committed: Option<u64>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut removed = false;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            remove_uncommitted(&path, committed)?;
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let uncommitted = file_seq(&name).is_some_and(|seq| committed.is_none_or(|c| seq > c));
        if is_temporary(&name) || uncommitted {
            tracing::info!(file = %path.display(), "removing a file of a batch that did not commit");
            std::fs::remove_file(&path)?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

impl Sink for ParquetSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn begin(&mut self, restored: Option<Millis>) -> Result<(), SinkError> {
        let Some(frontier) = restored else {
            return Ok(());
        };
        if !self.held_before {
            return Err(SinkError::Other {
                sink: self.name.clone(),
                message: format!(
                    "the run resumes from a checkpoint at frontier {frontier}, but this \
                     folder holds nothing of an earlier run: its tables would lack \
                     everything before; start over with --fresh"
                ),
            });
        }
        // Every batch below the checkpoint was written here; those after the last commit
        // held nothing (see the module doc).
        self.committed.frontier = self.committed.frontier.max(frontier);
        Ok(())
    }

    fn resume(&self) -> Option<Resume> {
        let seq = self.committed.seq.filter(|_| !self.committed.complete)?;
        Some(Resume {
            frontier: self.committed.frontier,
            seq,
        })
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let recorded = self.committed.frontier;
        if self.committed.complete || batch.frontier.is_some_and(|f| f <= recorded) {
            // Committed by an earlier run.
            return Ok(());
        }
        if batch.previous != recorded {
            return Err(SinkError::Other {
                sink: self.name.clone(),
                message: format!(
                    "batch {} covers [{}, {}) but the tables hold everything below \
                     {recorded}: writing it would count part of it twice",
                    batch.seq,
                    batch.previous,
                    batch
                        .frontier
                        .map_or("complete".to_owned(), |f| f.to_string())
                ),
            });
        }
        let seq = batch.seq;
        let files = self.files(batch, seq).map_err(|e| SinkError::Other {
            sink: self.name.clone(),
            message: format!("batch {seq}: {e}"),
        })?;
        let changes_state = self.mode == ParquetMode::Final && !batch.rows.is_empty();
        if let (true, false, Some(frontier)) = (files.is_empty(), changes_state, batch.frontier) {
            // Nothing to hold: noted, not committed.
            self.committed.frontier = frontier;
            return Ok(());
        }
        let io = |source| SinkError::Io {
            sink: self.name.clone(),
            source,
        };
        self.publish(&files, seq).map_err(io)?;
        let committed = Committed {
            version: self.committed.version,
            mode: self.mode,
            columns: self.committed.columns.clone(),
            seq: Some(seq),
            frontier: batch.frontier.unwrap_or(recorded),
            complete: batch.frontier.is_none(),
            open_windows: match self.mode {
                ParquetMode::Final => self.open.snapshot(),
                ParquetMode::Changes => Vec::new(),
            },
        };
        committed.write(&self.root).map_err(io)?;
        self.committed = committed;
        Ok(())
    }
}
