//! A record as read from a stream: its id, its event time and every other declared field,
//! in a fixed-size, order-preserving encoding.

use std::fmt;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{EventId, Keyed, Millis, StreamKind};

/// Bytes available for a record's declared fields other than its id and event time
/// (ids, ints, money and timestamps take 8 bytes, strings 24, booleans 1). A declaration
/// whose stream needs more is rejected when it is loaded.
pub const PAYLOAD_BYTES: usize = 96;

/// One record of a stream, decoded by the stream's declaration: the id, the event time,
/// and the other declared fields in declaration order, each in the order-preserving
/// encoding of its type (see `declare::Value::encode`) at a fixed offset.
///
/// A record is `Copy` and the same size whatever the declaration, so the dataflow never
/// allocates per record. Records order by id, then event time, then their fields in
/// declaration order: what dedup's "greatest `(ts, payload)`" compares. `marks` flags
/// dimension values that were bucketed as `other` at ingestion.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Record {
    /// The record's own id.
    pub id: EventId,
    /// Its event time.
    pub ts: Millis,
    payload: Payload,
    /// The stream it was read from.
    pub stream: StreamKind,
    /// One bit per bounded dimension whose value this record carries as `other`.
    pub marks: u8,
}

impl Record {
    /// A record of `stream` with the given id and event time and every other field zero.
    pub fn new(stream: StreamKind, id: EventId, ts: Millis) -> Record {
        Record {
            id,
            ts,
            payload: Payload([0; PAYLOAD_BYTES]),
            stream,
            marks: 0,
        }
    }

    /// The encoded fields.
    pub fn payload(&self) -> &[u8; PAYLOAD_BYTES] {
        &self.payload.0
    }

    /// The encoded fields, to write.
    pub fn payload_mut(&mut self) -> &mut [u8; PAYLOAD_BYTES] {
        &mut self.payload.0
    }
}

impl Keyed for Record {
    fn id(&self) -> EventId {
        self.id
    }

    fn ts(&self) -> Millis {
        self.ts
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self
            .payload
            .0
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i + 1);
        write!(f, "{} {} @{} [", self.stream, self.id, self.ts)?;
        for byte in &self.payload.0[..used] {
            write!(f, "{byte:02x}")?;
        }
        if self.marks != 0 {
            write!(f, "] marks {:#b}", self.marks)
        } else {
            f.write_str("]")
        }
    }
}

/// The encoded fields, serialized as bytes (serde has no impls for long arrays).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Payload([u8; PAYLOAD_BYTES]);

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{PAYLOAD_BYTES} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Payload, E> {
                let array = <[u8; PAYLOAD_BYTES]>::try_from(bytes)
                    .map_err(|_| E::invalid_length(bytes.len(), &self))?;
                Ok(Payload(array))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
                let mut array = [0u8; PAYLOAD_BYTES];
                for (i, slot) in array.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(Payload(array))
            }
        }
        deserializer.deserialize_bytes(Bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_serde() {
        let mut record = Record::new(StreamKind::Click, 7, 9);
        record.payload_mut()[3] = 42;
        let text = serde_json::to_string(&record).unwrap();
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
    }
}
