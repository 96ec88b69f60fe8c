//! Durations as written in graph files: `250ms`, `5s`, `15m`, `36h`, `2d`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration in whole milliseconds, written with a unit in graph files.
///
/// # Examples
/// ```
/// use diffmill::declare::DurationText;
///
/// assert_eq!("15m".parse::<DurationText>().unwrap().millis(), 900_000);
/// assert_eq!("36h".parse::<DurationText>().unwrap().to_string(), "36h");
/// assert!("15".parse::<DurationText>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationText(u64);

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl DurationText {
    /// A duration of `millis` milliseconds.
    pub fn from_millis(millis: u64) -> DurationText {
        DurationText(millis)
    }

    /// The duration in milliseconds.
    pub fn millis(self) -> u64 {
        self.0
    }

    /// The duration as a `std::time::Duration`.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl std::str::FromStr for DurationText {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits);
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale);
        match (number.parse::<u64>(), scale) {
            (Ok(n), Some(scale)) => n.checked_mul(scale).map(DurationText).ok_or_else(|| {
                format!("duration `{text}` is too long")
            }),
            _ => Err(format!(
                "bad duration `{text}`: expected a whole number followed by one of ms, s, m, h, d (e.g. `15m`)"
            )),
        }
    }
}

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, scale) = UNITS
            .iter()
            .find(|(_, scale)| self.0.is_multiple_of(*scale) && self.0 > 0)
            .copied()
            .unwrap_or(("ms", 1));
        write!(f, "{}{unit}", self.0 / scale)
    }
}

impl Serialize for DurationText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
