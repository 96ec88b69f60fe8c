//! CSV sink: an aggregate change log plus dead-letter and late files, one batch per write.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Batch, Resume, Sink, SinkError};
use crate::declare::Aggregate;
use crate::event::Millis;

/// Names of the files the CSV sink writes in its folder.
pub const AGGREGATES_FILE: &str = "aggregates.csv";
/// Dead-letter records: source, position, stream, reason, raw text.
pub const DEAD_LETTERS_FILE: &str = "dead_letters.csv";
/// Too-late records: source, position, stream, id, ts, watermark, reason.
pub const LATE_FILE: &str = "late.csv";
/// How far the files hold complete batches: the last batch's sequence number and
/// frontier, and each file's length after it.
pub const PROGRESS_FILE: &str = "progress.json";

/// The CSV sink's progress record: what the files held after the last complete batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    seq: u64,
    /// `None`: the batch of a complete input.
    frontier: Option<Millis>,
    aggregates_bytes: u64,
    dead_letters_bytes: u64,
    late_bytes: u64,
}

/// Writes batches as CSV change logs in a folder.
///
/// `aggregates.csv` has the header `window_start,window_end,<dims…>,<measures…>,frontier,status`
/// (for the default declaration: `…,bids,impressions,clicks,conversions,spend_micros,
/// revenue_micros,…`) and one row per aggregate change (the measures are deltas), plus one
/// row with status `final` and zero deltas per window that became final. Summing the measures per
/// `(window, dims)` over all rows gives the current aggregates. `frontier` is the batch's
/// frontier in ms, empty when the input is complete.
///
/// Visibility: each batch is formatted in memory, then appended with one `write_all`
/// per file and flushed, aggregates last, so a reader that sees a batch's
/// aggregate rows also sees its rejects. A batch is visible when `write_batch` returns.
///
/// Restarts: after each batch, `progress.json` records the batch's sequence number and
/// frontier and each file's length (written to a temporary file and renamed, so it is
/// whole or absent). A run that starts from the beginning replaces the files. A run that
/// resumes from a checkpoint cuts each file back to the length recorded — dropping the
/// rows of a batch a crash interrupted — and reports the recorded frontier as its
/// [`Sink::resume`], so the batches it holds are not written again and the change log
/// sums to exactly what an uninterrupted run's does. Files and progress are flushed to
/// the operating system, not synced: they survive the process dying at any instant, and
/// the machine losing power as far as the system had written them out.
pub struct CsvSink {
    name: String,
    folder: PathBuf,
    aggregate: Aggregate,
    files: Option<Files>,
    progress: Option<Progress>,
}

/// The three open files.
struct Files {
    aggregates: File,
    dead_letters: File,
    late: File,
}

fn io(sink: &str, source: std::io::Error) -> SinkError {
    SinkError::Io {
        sink: sink.to_owned(),
        source,
    }
}

impl CsvSink {
    /// A sink writing the rows of `aggregate` into `folder` (created if needed). Its files
    /// are replaced, or cut back to the last complete batch, when the run begins
    /// ([`Sink::begin`]).
    ///
    /// # Errors
    /// A [`SinkError::Io`] when the folder cannot be created.
    pub fn create(folder: &Path, aggregate: &Aggregate) -> Result<CsvSink, SinkError> {
        let name = folder.display().to_string();
        std::fs::create_dir_all(folder).map_err(|e| io(&name, e))?;
        Ok(CsvSink {
            name,
            folder: folder.to_owned(),
            aggregate: aggregate.clone(),
            files: None,
            progress: None,
        })
    }

    /// The header line of `aggregates.csv`.
    fn aggregates_header(&self) -> String {
        let mut header: Vec<&str> = vec!["window_start", "window_end"];
        header.extend(self.aggregate.dims.names());
        header.extend(self.aggregate.measure_names());
        header.extend(["frontier", "status"]);
        header.join(",") + "\n"
    }

    /// Starts the three files again, with their headers.
    fn start_files(&mut self) -> Result<Files, SinkError> {
        let _ = std::fs::remove_file(self.folder.join(PROGRESS_FILE));
        let start = |file: &str, header: String| -> Result<File, SinkError> {
            let mut out = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(self.folder.join(file))
                .map_err(|e| io(&self.name, e))?;
            out.write_all(header.as_bytes())
                .map_err(|e| io(&self.name, e))?;
            Ok(out)
        };
        Ok(Files {
            aggregates: start(AGGREGATES_FILE, self.aggregates_header())?,
            dead_letters: start(
                DEAD_LETTERS_FILE,
                "source,position,stream,reason,raw\n".into(),
            )?,
            late: start(
                LATE_FILE,
                "source,position,stream,id,ts,watermark,reason\n".into(),
            )?,
        })
    }

    /// Opens the three files cut back to the lengths of `progress`, to append to.
    fn resume_files(&self, progress: &Progress) -> Result<Files, SinkError> {
        let open = |file: &str, length: u64| -> Result<File, SinkError> {
            let path = self.folder.join(file);
            let out = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| io(&self.name, e))?;
            let present = out.metadata().map_err(|e| io(&self.name, e))?.len();
            if present < length {
                return Err(SinkError::Other {
                    sink: self.name.clone(),
                    message: format!(
                        "{} has {present} bytes but its progress says {length}: it was cut \
                         short outside diffmill; delete the folder's files to start over",
                        path.display()
                    ),
                });
            }
            out.set_len(length).map_err(|e| io(&self.name, e))?;
            Ok(out)
        };
        Ok(Files {
            aggregates: open(AGGREGATES_FILE, progress.aggregates_bytes)?,
            dead_letters: open(DEAD_LETTERS_FILE, progress.dead_letters_bytes)?,
            late: open(LATE_FILE, progress.late_bytes)?,
        })
    }

    /// Reads `progress.json`, if the folder has one.
    fn read_progress(&self) -> Result<Option<Progress>, SinkError> {
        let path = self.folder.join(PROGRESS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| SinkError::Other {
                    sink: self.name.clone(),
                    message: format!("{} cannot be read: {e}", path.display()),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&self.name, e)),
        }
    }

    /// Records the files' lengths after batch `seq` at `frontier`.
    fn write_progress(&mut self, seq: u64, frontier: Option<Millis>) -> Result<(), SinkError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let length = |file: &File| file.metadata().map(|m| m.len());
        let progress = Progress {
            seq,
            frontier,
            aggregates_bytes: length(&files.aggregates).map_err(|e| io(&self.name, e))?,
            dead_letters_bytes: length(&files.dead_letters).map_err(|e| io(&self.name, e))?,
            late_bytes: length(&files.late).map_err(|e| io(&self.name, e))?,
        };
        let path = self.folder.join(PROGRESS_FILE);
        let temporary = self.folder.join(".progress.json.tmp");
        std::fs::write(
            &temporary,
            serde_json::to_vec(&progress).unwrap_or_default(),
        )
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| io(&self.name, e))?;
        self.progress = Some(progress);
        Ok(())
    }
}

/// Appends one CSV record to `out`.
fn record<I, S>(out: &mut Vec<u8>, fields: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(fields);
    if let Ok(bytes) = writer.into_inner() {
        out.extend_from_slice(&bytes);
    }
}

impl Sink for CsvSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn begin(&mut self, restored: Option<Millis>) -> Result<(), SinkError> {
        let progress = match restored {
            Some(frontier) => Some(self.read_progress()?.ok_or_else(|| SinkError::Other {
                sink: self.name.clone(),
                message: format!(
                    "the run resumes from a checkpoint at frontier {frontier}, but this \
                     folder holds no output of it (no {PROGRESS_FILE}): its change log \
                     would lack everything before; write to the folder the run wrote to, \
                     or start over with --fresh"
                ),
            })?),
            None => None,
        };
        self.files = Some(match &progress {
            Some(progress) => self.resume_files(progress)?,
            None => self.start_files()?,
        });
        self.progress = progress;
        Ok(())
    }

    fn resume(&self) -> Option<Resume> {
        let progress = self.progress?;
        progress.frontier.map(|frontier| Resume {
            frontier,
            seq: progress.seq,
        })
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if self.files.is_none() {
            self.begin(None)?;
        }
        if let Some(held) = self.progress {
            let holds = held
                .frontier
                .is_none_or(|f| batch.frontier.is_some_and(|b| b <= f));
            if holds {
                // Written by an earlier run.
                return Ok(());
            }
        }
        let frontier = batch.frontier.map(|f| f.to_string()).unwrap_or_default();
        let measures = self.aggregate.measures.len();
        let mut rows = Vec::new();
        for row in &batch.rows {
            let mut fields = vec![row.window_start.to_string(), row.window_end.to_string()];
            fields.extend(self.aggregate.dims.texts(&row.dims));
            fields.extend(row.delta.values(measures).iter().map(|v| v.to_string()));
            fields.push(frontier.clone());
            fields.push(row.status.name().to_owned());
            record(&mut rows, fields);
        }
        for window_start in &batch.finalized {
            let mut fields = vec![
                window_start.to_string(),
                self.aggregate.window.end(*window_start).to_string(),
            ];
            fields.extend(self.aggregate.dims.slots().iter().map(|_| String::new()));
            fields.extend(std::iter::repeat_n("0".to_owned(), measures));
            fields.push(frontier.clone());
            fields.push("final".to_owned());
            record(&mut rows, fields);
        }
        let mut dead = Vec::new();
        for letter in &batch.dead_letters {
            record(
                &mut dead,
                [
                    letter.origin.source.clone(),
                    letter.origin.position.to_string(),
                    letter.stream.name().to_owned(),
                    letter.reason.clone(),
                    letter.raw.clone(),
                ],
            );
        }
        let mut late = Vec::new();
        for record_late in &batch.too_late {
            record(
                &mut late,
                [
                    record_late.origin.source.clone(),
                    record_late.origin.position.to_string(),
                    record_late.stream.name().to_owned(),
                    record_late.id.to_string(),
                    record_late.ts.to_string(),
                    record_late.watermark.to_string(),
                    record_late.reason.clone(),
                ],
            );
        }
        let name = self.name.clone();
        if let Some(files) = self.files.as_mut() {
            for (file, bytes) in [
                (&mut files.dead_letters, dead),
                (&mut files.late, late),
                (&mut files.aggregates, rows),
            ] {
                if !bytes.is_empty() {
                    file.write_all(&bytes).map_err(|e| io(&name, e))?;
                    file.flush().map_err(|e| io(&name, e))?;
                }
            }
        }
        self.write_progress(batch.seq, batch.frontier)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let name = self.name.clone();
        if let Some(files) = self.files.as_mut() {
            for file in [
                &mut files.aggregates,
                &mut files.dead_letters,
                &mut files.late,
            ] {
                file.sync_all().map_err(|e| io(&name, e))?;
            }
        }
        Ok(())
    }
}

/// Summed aggregates read back from a change log: `[window_start, window_end, dims…]` to
/// the measures in column order.
pub type ChangeLogTotals = std::collections::BTreeMap<Vec<String>, Vec<i64>>;

/// Reads an `aggregates.csv` change log of an aggregate with `measures` measures back and
/// sums it per `(window_start, window_end, dims…)`: the current aggregates, as a serving
/// layer would merge them.
///
/// # Errors
/// An I/O or CSV error reading the file.
pub fn sum_change_log(
    path: &Path,
    measures: usize,
) -> Result<ChangeLogTotals, Box<dyn std::error::Error>> {
    let mut reader = csv::Reader::from_path(path)?;
    let header = reader.headers()?.clone();
    let measures_at = header
        .len()
        .checked_sub(measures + 2)
        .filter(|at| *at >= 2)
        .ok_or("fewer columns than the measures need")?;
    let mut totals = ChangeLogTotals::new();
    for row in reader.records() {
        let row = row?;
        if row.get(row.len() - 1) == Some("final") {
            continue;
        }
        let key: Vec<String> = row.iter().take(measures_at).map(str::to_owned).collect();
        let entry = totals.entry(key).or_insert_with(|| vec![0; measures]);
        for (i, slot) in entry.iter_mut().enumerate() {
            *slot += row.get(measures_at + i).unwrap_or("0").parse::<i64>()?;
        }
    }
    totals.retain(|_, v| v.iter().any(|x| *x != 0));
    Ok(totals)
}
