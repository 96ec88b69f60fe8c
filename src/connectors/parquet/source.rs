//! The files source's Parquet partition: one event file read in record batches.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;

use super::decode::{EventColumns, RecordText};
use crate::connectors::{Arrival, Partition, PartitionPosition, Poll};
use crate::declare::StreamSchema;
use crate::event::{DeadLetter, Origin};

/// Rows decoded from the file at a time.
const BATCH_ROWS: usize = 8192;

/// A Parquet file of one stream as a partition: rows in file order, each row a record or
/// a dead letter, its position the row's 1-based index in the file. Its
/// [`PartitionPosition`] counts rows (`offset` and `line` alike), and a checkpoint
/// reopens it there by skipping that many rows.
///
/// Columns are found by the declared fields' names ([`EventColumns`]); only those are read. The
/// Arrow schema a writer may have embedded is ignored, so dictionary-encoded strings
/// (pandas categoricals, say) read as plain strings.
pub struct ParquetPartition {
    name: String,
    path: std::path::PathBuf,
    schema: Arc<StreamSchema>,
    reader: ParquetRecordBatchReader,
    columns: EventColumns,
    text: RecordText,
    batch: Option<RecordBatch>,
    row: usize,
    position: u64,
    /// The file's size over its row count: the bytes counted as read per row.
    bytes_per_row: f64,
    bytes_read: Arc<AtomicU64>,
}

/// Opens `path` as an event file of the stream `schema` declares and checks its columns.
fn open(
    path: &Path,
    schema: &Arc<StreamSchema>,
) -> std::io::Result<(ParquetRecordBatchReaderBuilder<File>, EventColumns)> {
    let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = File::open(path).map_err(|e| std::io::Error::new(e.kind(), named(&e)))?;
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, named(&e)))?;
    let columns = EventColumns::new(Arc::clone(schema), builder.schema())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, named(&e)))?;
    Ok((builder, columns))
}

/// Checks that `path` is a Parquet file with a usable column for every field `schema`
/// declares, reading its footer only.
///
/// # Errors
/// A message naming the file, and the column when one is missing or of the wrong type.
pub fn check_event_file(path: &Path, schema: &Arc<StreamSchema>) -> Result<(), String> {
    open(path, schema).map(|_| ()).map_err(|e| e.to_string())
}

/// A reader of the stream's columns of `path` from row `skip` on, its columns, and the
/// file's row count.
fn read_from(
    path: &Path,
    schema: &Arc<StreamSchema>,
    skip: usize,
) -> std::io::Result<(ParquetRecordBatchReader, EventColumns, i64)> {
    let (builder, columns) = open(path, schema)?;
    let rows = builder.metadata().file_metadata().num_rows();
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns.indices(builder.schema()));
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .with_offset(skip)
        .build()
        .map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
    Ok((reader, columns, rows))
}

impl ParquetPartition {
    /// Opens `path` as a partition of the stream `schema` declares; rows read are counted in `bytes_read` in
    /// proportion of the file's size.
    ///
    /// # Errors
    /// An I/O error, a file that is not Parquet, or a column missing or of the wrong
    /// type; each message names the file (and the column).
    pub fn open(
        path: &Path,
        schema: Arc<StreamSchema>,
        bytes_read: Arc<AtomicU64>,
    ) -> std::io::Result<ParquetPartition> {
        let (reader, columns, rows) = read_from(path, &schema, 0)?;
        let size = std::fs::metadata(path)?.len();
        Ok(ParquetPartition {
            name: path.display().to_string(),
            path: path.to_owned(),
            schema,
            reader,
            columns,
            text: RecordText::default(),
            batch: None,
            row: 0,
            position: 0,
            bytes_per_row: size as f64 / rows.max(1) as f64,
            bytes_read,
        })
    }

    /// The next record batch with rows left, or `None` at the end of the file.
    fn current(&mut self) -> std::io::Result<Option<&RecordBatch>> {
        while self.batch.as_ref().is_none_or(|b| self.row >= b.num_rows()) {
            match self.reader.next() {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", self.name),
                    ))
                }
                Some(Ok(batch)) => {
                    self.columns.start(&batch, &mut self.text);
                    let bytes = (batch.num_rows() as f64 * self.bytes_per_row) as u64;
                    self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
                    self.batch = Some(batch);
                    self.row = 0;
                }
            }
        }
        Ok(self.batch.as_ref())
    }
}

impl Partition for ParquetPartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        for _ in 0..max {
            if self.current()?.is_none() {
                return Ok(Poll::Done);
            }
            self.position += 1;
            let decoded = self.columns.decode(self.row, &mut self.text);
            self.row += 1;
            out.push(match decoded {
                Ok(record) => Arrival::Event {
                    record,
                    position: self.position,
                },
                Err((reason, raw)) => Arrival::DeadLetter(DeadLetter {
                    stream: self.schema.kind(),
                    origin: Origin {
                        source: self.name.clone(),
                        position: self.position,
                    },
                    raw,
                    reason: reason.to_string(),
                }),
            });
        }
        Ok(Poll::Ready)
    }

    fn position(&self) -> Option<PartitionPosition> {
        Some(PartitionPosition {
            offset: self.position,
            line: self.position,
        })
    }

    /// Reopens the file after its first `position.offset` rows.
    fn seek(&mut self, position: PartitionPosition) -> Result<(), std::io::Error> {
        let skip = usize::try_from(position.offset).map_err(std::io::Error::other)?;
        let (reader, columns, _) = read_from(&self.path, &self.schema, skip)?;
        self.reader = reader;
        self.columns = columns;
        self.batch = None;
        self.row = 0;
        self.position = position.offset;
        Ok(())
    }
}
