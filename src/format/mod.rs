//! Format apart from transport: one decoding layer turns a partition's bytes into records
//! by the stream's declaration, for every source (files, Kafka, the generator), and one
//! encoding layer writes records back as text (`gen`, dead letters).
//!
//! A transport frames bytes (a file's lines, a Kafka message); a [`Decoder`] per partition
//! turns each frame into a [`Record`](crate::event::Record) or the [`Invalid`] reason of a
//! dead letter: CSV by header (files) or by position (messages, generated lines), JSON
//! with typed serde straight into the record.

mod csv;
mod decoder;
mod encode;
mod json;

pub use self::csv::{read_csv_record, split_csv, CsvDecoder};
pub use decoder::{Decoder, Framing};
pub use encode::{csv_line, json_object};
pub use json::decode_json;

use serde::{Deserialize, Serialize};

use crate::event::Invalid;

/// Longest raw record accepted, in bytes; longer ones are dead-lettered.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// How the records of a partition are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated values (with a header line naming the fields, in files).
    Csv,
    /// One JSON object per line or message.
    Json,
}

impl Format {
    /// File extension used for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "jsonl",
        }
    }
}

/// The reason for a record longer than [`MAX_RECORD_BYTES`], if it is.
pub fn too_long(len: usize) -> Option<Invalid> {
    (len > MAX_RECORD_BYTES).then_some(Invalid::TooLong {
        len,
        max: MAX_RECORD_BYTES,
    })
}
