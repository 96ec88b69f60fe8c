//! The checkpoint file: a header, a format version, a checksum, the encoded body.
//!
//! ```text
//! magic    "diffmill checkpoint\n"   20 bytes
//! version  u32, little endian        FORMAT_VERSION
//! length   u64, little endian        bytes of the body
//! crc32    u32, little endian        CRC-32 (IEEE) of the body
//! body     codec::encode(Checkpoint)
//! ```
//!
//! A file is written under a temporary name, synced, renamed into place and the folder
//! synced, so a crash at any instant leaves either the whole file or none of it; a file
//! cut short or altered fails its length or checksum and is never used.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::Checkpoint;
use crate::codec;

/// The first bytes of every checkpoint file.
pub const MAGIC: &[u8; 20] = b"diffmill checkpoint\n";
/// The layout of the body this build writes and reads (2: declared records, guards and
/// windows per aggregate).
pub const FORMAT_VERSION: u32 = 2;
const HEADER: usize = 20 + 4 + 8 + 4;

/// Why a checkpoint file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// It does not start like a checkpoint file.
    #[error("it is not a diffmill checkpoint (no header)")]
    NotACheckpoint,
    /// Written by another version of the format.
    #[error("it has format version {found}; this diffmill reads version {FORMAT_VERSION}")]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// Shorter than its header says: cut short.
    #[error("it is truncated: {found} bytes of body, the header says {expected}")]
    Truncated {
        /// Body bytes present.
        found: u64,
        /// Body bytes announced.
        expected: u64,
    },
    /// The body does not match its checksum.
    #[error("its checksum does not match (crc32 {found:08x}, the header says {expected:08x})")]
    Checksum {
        /// The body's checksum.
        found: u32,
        /// The checksum in the header.
        expected: u32,
    },
    /// The body is not a checkpoint of this layout.
    #[error("its body cannot be decoded: {0}")]
    Body(String),
}

/// The file's bytes for `checkpoint`.
pub fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    let body = codec::encode(checkpoint);
    let mut bytes = Vec::with_capacity(HEADER + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

/// Decodes a checkpoint file's bytes, checking header, version, length and checksum.
///
/// # Errors
/// Why the bytes are not a usable checkpoint.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, Unusable> {
    if bytes.len() < HEADER || &bytes[..20] != MAGIC {
        return Err(Unusable::NotACheckpoint);
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
    let found = word(20);
    if found != FORMAT_VERSION {
        return Err(Unusable::Version { found });
    }
    let expected = u64::from_le_bytes(bytes[24..32].try_into().unwrap_or_default());
    let body = &bytes[HEADER..];
    if body.len() as u64 != expected {
        return Err(Unusable::Truncated {
            found: body.len() as u64,
            expected,
        });
    }
    let (crc, expected_crc) = (crc32fast::hash(body), word(32));
    if crc != expected_crc {
        return Err(Unusable::Checksum {
            found: crc,
            expected: expected_crc,
        });
    }
    codec::decode(body).map_err(Unusable::Body)
}

/// Reads and decodes the checkpoint file at `path`.
///
/// # Errors
/// Why the file is not a usable checkpoint.
pub fn read(path: &Path) -> Result<Checkpoint, Unusable> {
    decode(&std::fs::read(path)?)
}

/// Writes `bytes` to `path` atomically and durably: a temporary file in the same folder,
/// synced, renamed to `path`, the folder synced.
///
/// # Errors
/// The first I/O failure (the temporary file is removed; `path` is untouched).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), std::io::Error> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = folder.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)?;
        File::open(folder)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declare::FunnelSettings;
    use crate::runtime::checkpoint::Identity;

    fn checkpoint() -> Checkpoint {
        let mut checkpoint = Checkpoint::complete(Identity::of("g", &FunnelSettings::default()), 7);
        checkpoint.frontier = Some(1_700_000_000_000);
        checkpoint.windows = vec![vec![1_699_999_200_000]];
        checkpoint
    }

    #[test]
    fn round_trips() {
        assert_eq!(decode(&encode(&checkpoint())).unwrap(), checkpoint());
    }

    #[test]
    fn every_damage_is_refused() {
        let bytes = encode(&checkpoint());
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(Unusable::Truncated { .. })
        ));
        assert!(matches!(
            decode(&bytes[..10]),
            Err(Unusable::NotACheckpoint)
        ));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(decode(&flipped), Err(Unusable::Checksum { .. })));
        let mut future = bytes.clone();
        future[20] = 9;
        assert!(matches!(
            decode(&future),
            Err(Unusable::Version { found: 9 })
        ));
        let mut longer = bytes;
        longer.push(0);
        assert!(matches!(decode(&longer), Err(Unusable::Truncated { .. })));
    }

    #[test]
    fn writes_atomically() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("checkpoint-1.ckpt");
        write_atomically(&path, &encode(&checkpoint())).unwrap();
        assert_eq!(read(&path).unwrap(), checkpoint());
        let names: Vec<_> = std::fs::read_dir(folder.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }
}
