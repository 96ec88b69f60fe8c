//! A short inline string for dimension values (region, device).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest dimension string accepted, in bytes of UTF-8.
pub const LABEL_MAX_BYTES: usize = 23;

/// A bounded, inline, copyable string used for string dimensions.
///
/// Region and device names are short; keeping them inline makes every event `Copy`
/// and keeps the hot path free of allocations. Longer strings are rejected when an
/// event is validated (they become dead-letter records), never truncated.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Label {
    len: u8,
    bytes: [u8; LABEL_MAX_BYTES],
}

impl Label {
    /// Makes a label, or `None` when `text` is longer than [`LABEL_MAX_BYTES`].
    pub fn new(text: &str) -> Option<Label> {
        let raw = text.as_bytes();
        if raw.len() > LABEL_MAX_BYTES {
            return None;
        }
        let mut bytes = [0u8; LABEL_MAX_BYTES];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Label {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// The label's text.
    pub fn as_str(&self) -> &str {
        // Built only from a `&str` in `new` (or deserialized through it), so always UTF-8.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }

    /// True for the empty label.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Label::new(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "string of {} bytes is longer than the {LABEL_MAX_BYTES}-byte limit",
                text.len()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds() {
        let label = Label::new("eu-west").unwrap();
        assert_eq!(label.as_str(), "eu-west");
        assert!(Label::new(&"x".repeat(LABEL_MAX_BYTES)).is_some());
        assert!(Label::new(&"x".repeat(LABEL_MAX_BYTES + 1)).is_none());
        assert!(Label::new("a") < Label::new("b"));
    }
}
