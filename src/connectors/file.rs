//! File source: CSV (with header), JSON-lines or Parquet files, one partition per file.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::parquet::ParquetPartition;
use super::{owner, Arrival, Partition, PartitionPosition, Poll, Source};
use crate::declare::Schema;
use crate::event::{raw_text, DeadLetter, Invalid, Origin, StreamKind};
use crate::format::{Decoder, Format, Framing, MAX_RECORD_BYTES};

/// How the files of a files source are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// CSV with a header line naming the fields.
    Csv,
    /// One JSON object per line.
    Json,
    /// Parquet, a column per field (see [`super::parquet::EventColumns`]).
    Parquet,
}

impl FileFormat {
    /// The format's name in graph files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
            FileFormat::Parquet => "parquet",
        }
    }

    /// File extension used for this format.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => Format::Csv.extension(),
            FileFormat::Json => Format::Json.extension(),
            FileFormat::Parquet => "parquet",
        }
    }

    /// The record encoding of a format read line by line; `None` for Parquet.
    pub fn lines(self) -> Option<Format> {
        match self {
            FileFormat::Csv => Some(Format::Csv),
            FileFormat::Json => Some(Format::Json),
            FileFormat::Parquet => None,
        }
    }
}

impl From<Format> for FileFormat {
    fn from(format: Format) -> FileFormat {
        match format {
            Format::Csv => FileFormat::Csv,
            Format::Json => FileFormat::Json,
        }
    }
}

/// The files of each stream, resolved from globs or a folder, decoded by the streams'
/// declarations.
///
/// Each file is one partition. Files are sorted by path and dealt to workers round-robin,
/// so each file is read by exactly one worker. Each worker reads its files in step by
/// event time (the ingest operator always polls the partition with the lowest
/// watermark), never one whole file before the next.
#[derive(Clone, Debug)]
pub struct FileSource {
    format: FileFormat,
    schema: Arc<Schema>,
    files: Vec<(StreamKind, PathBuf)>,
    bytes_read: Arc<AtomicU64>,
}

/// A stream whose files could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {stream} files match `{pattern}`")]
pub struct NoFiles {
    /// The stream.
    pub stream: StreamKind,
    /// The pattern that matched nothing.
    pub pattern: String,
}

impl FileSource {
    /// The files matching one glob per stream, read as `schema` declares the streams. A
    /// stream without a pattern has no input.
    ///
    /// # Errors
    /// [`NoFiles`] when a pattern is invalid or matches no file.
    pub fn from_globs(
        format: impl Into<FileFormat>,
        schema: Arc<Schema>,
        patterns: &[(StreamKind, String)],
    ) -> Result<FileSource, NoFiles> {
        let format = format.into();
        let mut files = Vec::new();
        for (stream, pattern) in patterns {
            let no_files = || NoFiles {
                stream: *stream,
                pattern: pattern.clone(),
            };
            let mut matched: Vec<PathBuf> = glob::glob(pattern)
                .map_err(|_| no_files())?
                .filter_map(Result::ok)
                .filter(|path| path.is_file())
                .collect();
            if matched.is_empty() {
                return Err(no_files());
            }
            matched.sort();
            files.extend(matched.into_iter().map(|path| (*stream, path)));
        }
        Ok(FileSource {
            format,
            schema,
            files,
            bytes_read: Arc::default(),
        })
    }

    /// Total size of the files in bytes, for a progress bar.
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|(_, path)| std::fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum()
    }

    /// Bytes read so far by all partitions of this source in this process.
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.bytes_read)
    }

    /// The glob for a stream's files in `folder`: `<folder>/<stream>*.<ext>`.
    pub fn folder_pattern(
        folder: &Path,
        format: impl Into<FileFormat>,
        stream: StreamKind,
    ) -> String {
        folder
            .join(format!("{}*.{}", stream.name(), format.into().extension()))
            .to_string_lossy()
            .into_owned()
    }

    /// The files' format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The files, with their streams, in partition order.
    pub fn files(&self) -> &[(StreamKind, PathBuf)] {
        &self.files
    }
}

impl Source for FileSource {
    fn partitions(
        &self,
        worker: usize,
        workers: usize,
    ) -> Result<Vec<Box<dyn Partition>>, std::io::Error> {
        self.files
            .iter()
            .enumerate()
            .filter(|(i, _)| owner(*i, workers) == worker)
            .map(|(_, (stream, path))| {
                let schema = Arc::clone(self.schema.stream(*stream));
                let Some(format) = self.format.lines() else {
                    let partition =
                        ParquetPartition::open(path, schema, Arc::clone(&self.bytes_read))?;
                    return Ok(Box::new(partition) as Box<dyn Partition>);
                };
                let decoder = Decoder::new(schema, format, Framing::Lines);
                let mut partition = FilePartition::new(
                    path.display().to_string(),
                    decoder,
                    open_at(path, 0)?,
                    Arc::clone(&self.bytes_read),
                );
                partition.path = Some(path.clone());
                Ok(Box::new(partition) as Box<dyn Partition>)
            })
            .collect()
    }
}

/// A partition that reads `reader` exactly as a file of `stream` (declared by `schema`)
/// in `format` is read: the same line splitting, header handling, limits and decoding.
/// For tests and fuzzing of the file format without touching the file system.
pub fn reader_partition(
    name: impl Into<String>,
    schema: &Schema,
    stream: StreamKind,
    format: Format,
    reader: impl BufRead + Send + 'static,
) -> Box<dyn Partition> {
    let decoder = Decoder::new(Arc::clone(schema.stream(stream)), format, Framing::Lines);
    Box::new(FilePartition::new(
        name.into(),
        decoder,
        Box::new(reader),
        Arc::default(),
    ))
}

/// Opens `path` for reading from byte `offset`.
fn open_at(path: &Path, offset: u64) -> Result<Box<dyn BufRead + Send>, std::io::Error> {
    let named =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut file = File::open(path).map_err(named)?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset)).map_err(named)?;
    }
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// One file being read line by line. CSV fields may be quoted, but a record must not
/// span lines.
struct FilePartition {
    name: String,
    decoder: Decoder,
    reader: Box<dyn BufRead + Send>,
    /// The file, when the partition reads one (it can then be reopened at a position).
    path: Option<PathBuf>,
    line: Vec<u8>,
    /// Bytes of the current line beyond what `line` keeps (a line longer than
    /// [`MAX_RECORD_BYTES`] is not kept whole).
    cut: usize,
    line_no: u64,
    /// Bytes read from the start of the file.
    offset: u64,
    bytes_read: Arc<AtomicU64>,
}

impl FilePartition {
    fn new(
        name: String,
        decoder: Decoder,
        reader: Box<dyn BufRead + Send>,
        bytes_read: Arc<AtomicU64>,
    ) -> FilePartition {
        FilePartition {
            name,
            decoder,
            reader,
            path: None,
            line: Vec::new(),
            cut: 0,
            line_no: 0,
            offset: 0,
            bytes_read,
        }
    }

    fn dead_letter(&self, reason: &Invalid) -> Arrival {
        let mut raw = self.line.as_slice();
        while let Some(stripped) = raw.strip_suffix(b"\n").or_else(|| raw.strip_suffix(b"\r")) {
            raw = stripped;
        }
        Arrival::DeadLetter(DeadLetter {
            stream: self.decoder.schema().kind(),
            origin: Origin {
                source: self.name.clone(),
                position: self.line_no,
            },
            raw: raw_text(raw),
            reason: reason.to_string(),
        })
    }

    /// Decodes the current line; `None` for a line that carries no record (blank, header).
    fn decode_line(&mut self) -> Option<Arrival> {
        if self.cut > 0 {
            let mut kept = self.line.as_slice();
            while let Some(stripped) = kept
                .strip_suffix(b"\n")
                .or_else(|| kept.strip_suffix(b"\r"))
            {
                kept = stripped;
            }
            if kept.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            let reason = Invalid::TooLong {
                len: kept.len() + self.cut,
                max: MAX_RECORD_BYTES,
            };
            return Some(self.dead_letter(&reason));
        }
        match self.decoder.decode(&self.line, None) {
            Ok(None) => None,
            Ok(Some(record)) => Some(Arrival::Event {
                record,
                position: self.line_no,
            }),
            Err(reason) => Some(self.dead_letter(&reason)),
        }
    }

    /// Reads the next line into `line`, keeping at most one byte more than
    /// [`MAX_RECORD_BYTES`] of it (the rest is counted in `cut`, so an endless line
    /// never fills the memory); returns the bytes consumed, 0 at the end of the file.
    fn read_line(&mut self) -> Result<usize, std::io::Error> {
        self.line.clear();
        self.cut = 0;
        let mut consumed = 0;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let (take, end) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            let room = (MAX_RECORD_BYTES + 1)
                .saturating_sub(self.line.len())
                .min(take);
            self.line.extend_from_slice(&available[..room]);
            // The bytes cut off, not counting the line's end.
            self.cut += take - room - usize::from(end && room < take);
            self.reader.consume(take);
            consumed += take;
            if end {
                break;
            }
        }
        if consumed > 0 {
            self.line_no += 1;
            self.offset += consumed as u64;
        }
        Ok(consumed)
    }
}

impl Partition for FilePartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn position(&self) -> Option<PartitionPosition> {
        self.path.as_ref().map(|_| PartitionPosition {
            offset: self.offset,
            line: self.line_no,
        })
    }

    /// Reopens the file at `position`. A CSV file's header is read again first, the
    /// way the partition read it, so that the columns are known.
    fn seek(&mut self, position: PartitionPosition) -> Result<(), std::io::Error> {
        let Some(path) = self.path.clone() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "partition `{}` is not a file and cannot be reopened",
                    self.name
                ),
            ));
        };
        self.reader = open_at(&path, 0)?;
        self.line_no = 0;
        self.offset = 0;
        self.decoder.restart();
        while self.decoder.needs_header() && self.offset < position.offset {
            if self.read_line()? == 0 {
                break;
            }
            self.decode_line();
        }
        self.reader = open_at(&path, position.offset)?;
        self.offset = position.offset;
        self.line_no = position.line;
        self.bytes_read
            .fetch_add(position.offset, Ordering::Relaxed);
        Ok(())
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        let mut produced = 0;
        let mut bytes = 0;
        let poll = loop {
            if produced >= max {
                break Poll::Ready;
            }
            let read = self.read_line()?;
            if read == 0 {
                break Poll::Done;
            }
            bytes += read as u64;
            if let Some(arrival) = self.decode_line() {
                out.push(arrival);
                produced += 1;
            }
        };
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        Ok(poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader of `len` bytes of `x` without a newline, then one line.
    struct Endless {
        left: usize,
        tail: &'static [u8],
        chunk: Vec<u8>,
    }

    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.left);
            if n > 0 {
                buf[..n].fill(b'x');
                self.left -= n;
                return Ok(n);
            }
            let n = buf.len().min(self.tail.len());
            buf[..n].copy_from_slice(&self.tail[..n]);
            self.tail = &self.tail[n..];
            Ok(n)
        }
    }

    impl BufRead for Endless {
        fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
            if self.chunk.is_empty() {
                let mut buf = vec![0; 64 * 1024];
                let n = std::io::Read::read(self, &mut buf)?;
                buf.truncate(n);
                self.chunk = buf;
            }
            Ok(&self.chunk)
        }

        fn consume(&mut self, amount: usize) {
            self.chunk.drain(..amount);
        }
    }

    #[test]
    fn a_line_without_end_is_read_in_bounded_memory() {
        let reader = Endless {
            left: 50 << 20,
            tail: b"\n1,1,5\n",
            chunk: Vec::new(),
        };
        let clicks = Arc::clone(Schema::funnel().stream(StreamKind::Click));
        let mut partition = FilePartition::new(
            "endless.csv".into(),
            Decoder::new(clicks, Format::Json, Framing::Lines),
            Box::new(reader),
            Arc::default(),
        );
        let mut out = Vec::new();
        partition.poll(&mut out, 1).expect("the reader reads");
        assert!(
            partition.line.capacity() <= 4 * MAX_RECORD_BYTES,
            "a 50 MB line was kept in a buffer of {} bytes",
            partition.line.capacity()
        );
        match &out[..] {
            [Arrival::DeadLetter(dead)] => {
                assert!(
                    dead.reason.contains(&format!("{} bytes", 50 << 20)),
                    "{}",
                    dead.reason
                );
            }
            other => panic!("expected one dead letter, got {other:?}"),
        }
    }
}
