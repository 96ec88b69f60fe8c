//! CSV sink: an aggregate change log plus dead-letter and late files, one batch per write.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Batch, Sink, SinkError};
use crate::declare::Aggregate;

/// Names of the files the CSV sink writes in its folder.
pub const AGGREGATES_FILE: &str = "aggregates.csv";
/// Dead-letter records: source, position, stream, reason, raw text.
pub const DEAD_LETTERS_FILE: &str = "dead_letters.csv";
/// Too-late records: source, position, stream, id, ts, watermark, reason.
pub const LATE_FILE: &str = "late.csv";

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
pub struct CsvSink {
    name: String,
    aggregate: Aggregate,
    aggregates: File,
    dead_letters: File,
    late: File,
}

fn io(sink: &str, source: std::io::Error) -> SinkError {
    if source.kind() == std::io::ErrorKind::BrokenPipe {
        return SinkError::Closed(sink.to_owned());
    }
    SinkError::Io {
        sink: sink.to_owned(),
        source,
    }
}

impl CsvSink {
    /// Creates `folder` if needed and starts the three files (replacing old ones) for the
    /// rows of `aggregate`.
    ///
    /// # Errors
    /// A [`SinkError::Io`] when the folder or files cannot be created.
    pub fn create(folder: &Path, aggregate: &Aggregate) -> Result<CsvSink, SinkError> {
        let name = folder.display().to_string();
        std::fs::create_dir_all(folder).map_err(|e| io(&name, e))?;
        let start = |file: &str, header: String| -> Result<File, SinkError> {
            let path: PathBuf = folder.join(file);
            let mut out = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| io(&name, e))?;
            out.write_all(header.as_bytes()).map_err(|e| io(&name, e))?;
            Ok(out)
        };
        let mut header: Vec<&str> = vec!["window_start", "window_end"];
        header.extend(aggregate.dims.names());
        header.extend(aggregate.measure_names());
        header.extend(["frontier", "status"]);
        Ok(CsvSink {
            aggregates: start(AGGREGATES_FILE, header.join(",") + "\n")?,
            dead_letters: start(
                DEAD_LETTERS_FILE,
                "source,position,stream,reason,raw\n".into(),
            )?,
            late: start(
                LATE_FILE,
                "source,position,stream,id,ts,watermark,reason\n".into(),
            )?,
            name,
            aggregate: aggregate.clone(),
        })
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

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
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
        for (file, bytes) in [
            (&mut self.dead_letters, dead),
            (&mut self.late, late),
            (&mut self.aggregates, rows),
        ] {
            if !bytes.is_empty() {
                file.write_all(&bytes).map_err(|e| io(&name, e))?;
                file.flush().map_err(|e| io(&name, e))?;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let name = self.name.clone();
        for file in [&mut self.aggregates, &mut self.dead_letters, &mut self.late] {
            file.sync_all().map_err(|e| io(&name, e))?;
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
