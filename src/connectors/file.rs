//! File source: CSV (with header) or JSON-lines files, one partition per file.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{owner, Arrival, Partition, Poll, Source};
use crate::declare::Schema;
use crate::event::{raw_text, DeadLetter, Invalid, Origin, StreamKind};
use crate::format::{Decoder, Format, Framing};

/// The files of each stream, resolved from globs or a folder, decoded by the streams'
/// declarations.
///
/// Each file is one partition. Files are sorted by path and dealt to workers round-robin,
/// so each file is read by exactly one worker. Each worker reads its files in step by
/// event time (the ingest operator always polls the partition with the lowest
/// watermark), never one whole file before the next.
#[derive(Clone, Debug)]
pub struct FileSource {
    format: Format,
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
        format: Format,
        schema: Arc<Schema>,
        patterns: &[(StreamKind, String)],
    ) -> Result<FileSource, NoFiles> {
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
    pub fn folder_pattern(folder: &Path, format: Format, stream: StreamKind) -> String {
        folder
            .join(format!("{}*.{}", stream.name(), format.extension()))
            .to_string_lossy()
            .into_owned()
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
                let file = File::open(path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                })?;
                let decoder = Decoder::new(
                    Arc::clone(self.schema.stream(*stream)),
                    self.format,
                    Framing::Lines,
                );
                Ok(Box::new(FilePartition::new(
                    path.display().to_string(),
                    decoder,
                    Box::new(BufReader::with_capacity(1 << 20, file)),
                    Arc::clone(&self.bytes_read),
                )) as Box<dyn Partition>)
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

/// One file being read line by line. CSV fields may be quoted, but a record must not
/// span lines.
struct FilePartition {
    name: String,
    decoder: Decoder,
    reader: Box<dyn BufRead + Send>,
    line: Vec<u8>,
    line_no: u64,
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
            line: Vec::new(),
            line_no: 0,
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
        match self.decoder.decode(&self.line, None) {
            Ok(None) => None,
            Ok(Some(record)) => Some(Arrival::Event {
                record,
                position: self.line_no,
            }),
            Err(reason) => Some(self.dead_letter(&reason)),
        }
    }
}

impl Partition for FilePartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        let mut produced = 0;
        let mut bytes = 0;
        let poll = loop {
            if produced >= max {
                break Poll::Ready;
            }
            self.line.clear();
            let read = self.reader.read_until(b'\n', &mut self.line)?;
            if read == 0 {
                break Poll::Done;
            }
            bytes += read as u64;
            self.line_no += 1;
            if let Some(arrival) = self.decode_line() {
                out.push(arrival);
                produced += 1;
            }
        };
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        Ok(poll)
    }
}
