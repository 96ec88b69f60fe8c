//! Records that could not be applied: dead letters (bad input) and too-late records.

use std::fmt::Write;

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
    /// The raw text, escaped and bounded by [`raw_text`].
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

/// Longest raw text kept in a dead-letter record, in characters after escaping (see
/// [`raw_text`]); longer text is cut with a marker.
pub const MAX_RAW_KEPT: usize = 4096;

/// The raw text of a dead-letter record: printable, valid UTF-8, one line, and bounded.
///
/// Bytes that are not UTF-8 and control characters other than tab are written as
/// `\xNN` (C1 controls as `\u{NN}`), and a backslash as `\\`, so the output files stay
/// text for `grep` and the database's `text` columns, and the original bytes can be told
/// apart from an escape. Text beyond [`MAX_RAW_KEPT`] characters is cut with a marker
/// saying how many bytes were left out.
///
/// # Examples
/// ```
/// use diffmill::event::raw_text;
///
/// assert_eq!(raw_text(b"1,caf\xc3\xa9,x"), "1,café,x");
/// assert_eq!(raw_text(b"1,\xff\x00,a\\b\tc"), "1,\\xff\\x00,a\\\\b\tc");
/// ```
pub fn raw_text(bytes: &[u8]) -> String {
    let mut text = String::new();
    // Characters written, and bytes of `bytes` they stand for.
    let (mut kept, mut consumed) = (0, 0);
    'chunks: for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if kept >= MAX_RAW_KEPT {
                break 'chunks;
            }
            kept += push_printable(&mut text, c);
            consumed += c.len_utf8();
        }
        for byte in chunk.invalid() {
            if kept >= MAX_RAW_KEPT {
                break 'chunks;
            }
            let _ = write!(text, "\\x{byte:02x}");
            kept += 4;
            consumed += 1;
        }
    }
    if consumed < bytes.len() {
        text.push_str(&format!("…[{} more bytes]", bytes.len() - consumed));
    }
    text
}

/// `text` with control characters and backslashes escaped as [`raw_text`] does, for
/// quoting input in a reason.
///
/// # Examples
/// ```
/// use diffmill::event::printable;
///
/// assert_eq!(printable("12\u{0}3"), "12\\x003");
/// ```
pub fn printable(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        push_printable(&mut escaped, c);
    }
    escaped
}

/// Pushes `c`, escaped if need be; returns the characters pushed.
fn push_printable(text: &mut String, c: char) -> usize {
    let before = text.len();
    // Writing to a String cannot fail.
    let _ = match c {
        '\\' => text.write_str("\\\\"),
        '\t' => text.write_char(c),
        c if c.is_ascii_control() => write!(text, "\\x{:02x}", c as u32),
        c if c.is_control() => write!(text, "\\u{{{:x}}}", c as u32),
        c => text.write_char(c),
    };
    text[before..].chars().count()
}
