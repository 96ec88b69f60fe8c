//! The compact binary encoding of state: what checkpoints and their parts are made of.
//!
//! bincode with variable-length integers: small ids, times and counts take few bytes, and
//! every serde type of the crate (events, dedup groups, accounting) encodes without
//! hand-written code.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// Encoded bytes, shared rather than copied: a part of a checkpoint that is kept from one
/// checkpoint to the next while the state it encodes does not change. Serializes as a
/// byte string, like `serde_bytes` on a `Vec<u8>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SharedBytes(Arc<Vec<u8>>);

impl From<Vec<u8>> for SharedBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SharedBytes(Arc::new(bytes))
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.0.len())
    }
}

impl Serialize for SharedBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_bytes::ByteBuf::deserialize(deserializer).map(|bytes| bytes.into_vec().into())
    }
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

    #[test]
    fn shared_bytes_encode_as_a_byte_string() {
        #[derive(Serialize)]
        struct Plain(#[serde(with = "serde_bytes")] Vec<u8>);
        let shared = SharedBytes::from(vec![1, 2, 250]);
        assert_eq!(encode(&shared), encode(&Plain(vec![1, 2, 250])));
        assert_eq!(decode::<SharedBytes>(&encode(&shared)), Ok(shared));
    }
}
