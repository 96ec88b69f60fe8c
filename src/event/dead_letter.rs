//! Records that could not be applied: dead letters (bad input) and too-late records.

use serde::{Deserialize, Serialize};

use super::{Millis, StreamKind};

/// Where a raw record came from: a file and line, or a topic, partition and offset.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The source's name for the partition (a file path, `topic/partition`, `memory/3`).
    pub source: String,
    /// Position within the partition: a 1-based line number or an offset.
    pub position: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.position)
    }
}

/// A record that failed to parse or validate. It goes to the dead-letter output and is
/// counted; it never enters the dataflow and never panics.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The stream the record was read as.
    pub stream: StreamKind,
    /// Where it was read.
    pub origin: Origin,
    /// The raw text (invalid UTF-8 replaced, very long records shortened).
    pub raw: String,
    /// Why it was rejected.
    pub reason: String,
}

/// A record too late for every window it could affect: it is not applied, it goes to the
/// late output with its reason, and it is counted.
///
/// *Too late* means: when the record was ingested, its partition's watermark had already
/// reached the record's release time (see `Lateness::release_time`), i.e. its own window is
/// final and — for a parent — so is the window of its latest possible child.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TooLate {
    /// The record's stream.
    pub stream: StreamKind,
    /// Where it was read.
    pub origin: Origin,
    /// The record's own id.
    pub id: u64,
    /// The record's event time.
    pub ts: Millis,
    /// The partition watermark it was judged against.
    pub watermark: Millis,
    /// Why it was not applied.
    pub reason: String,
}

/// Either kind of rejected record, as it travels to the reject outputs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rejected {
    /// Bad input.
    DeadLetter(DeadLetter),
    /// Too late to apply.
    TooLate(TooLate),
}

/// Longest raw text kept in a dead-letter record; longer text is cut with a marker.
pub const MAX_RAW_KEPT: usize = 4096;

/// Shortens raw text for a dead-letter record, replacing invalid UTF-8.
pub fn raw_text(bytes: &[u8]) -> String {
    let cut = bytes.len().min(MAX_RAW_KEPT);
    let mut text = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    if bytes.len() > cut {
        text.push_str(&format!("…[{} more bytes]", bytes.len() - cut));
    }
    text
}
