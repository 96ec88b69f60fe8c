//! The compact binary encoding of state: what checkpoints and their parts are made of.
//!
//! bincode with variable-length integers: small ids, times and counts take few bytes, and
//! every serde type of the crate (events, dedup groups, accounting) encodes without
//! hand-written code.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
}

/// Encodes `value`. Encoding the crate's own state types cannot fail (no maps with
/// non-string keys, no unsized sequences); a failure would be a bug, reported as empty
/// bytes that fail to decode rather than as a panic.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    options().serialize(value).unwrap_or_default()
}

/// Decodes a value encoded by [`encode`].
///
/// # Errors
/// A description of why the bytes are not a `T` (truncated, or of another layout).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    options().deserialize(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let value = (7u64, vec![1_700_000_000_000u64, 3], String::from("eu-west"));
        let bytes = encode(&value);
        assert_eq!(decode::<(u64, Vec<u64>, String)>(&bytes), Ok(value));
        assert!(decode::<(u64, Vec<u64>, String)>(&bytes[..bytes.len() - 1]).is_err());
    }
}
