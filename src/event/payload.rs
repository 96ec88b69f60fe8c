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

/// The encoded fields, serialized as bytes (serde has no impls for long arrays) without
/// their trailing zeros: most declarations leave the end of the payload unused, and
/// checkpoints and exchanges between processes carry every held record.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Payload([u8; PAYLOAD_BYTES]);

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let used = self.0.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        serializer.serialize_bytes(&self.0[..used])
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {PAYLOAD_BYTES} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Payload, E> {
                let mut array = [0u8; PAYLOAD_BYTES];
                array
                    .get_mut(..bytes.len())
                    .ok_or_else(|| E::invalid_length(bytes.len(), &self))?
                    .copy_from_slice(bytes);
                Ok(Payload(array))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
                let mut array = [0u8; PAYLOAD_BYTES];
                let mut len = 0;
                while let Some(byte) = seq.next_element()? {
                    let slot = array
                        .get_mut(len)
                        .ok_or_else(|| A::Error::invalid_length(len + 1, &self))?;
                    *slot = byte;
                    len += 1;
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

    #[test]
    fn trailing_zeros_are_not_encoded() {
        let mut record = Record::new(StreamKind::Bid, 7, 9);
        record.payload_mut()[..5].copy_from_slice(&[1, 0, 0, 2, 3]);
        let bytes = crate::codec::encode(&record);
        let empty = crate::codec::encode(&Record::new(StreamKind::Bid, 7, 9));
        assert_eq!(bytes.len(), empty.len() + 5);
        assert_eq!(crate::codec::decode::<Record>(&bytes), Ok(record));
        let mut full = record;
        full.payload_mut()[PAYLOAD_BYTES - 1] = 9;
        assert_eq!(
            crate::codec::decode::<Record>(&crate::codec::encode(&full)),
            Ok(full)
        );
    }

    #[test]
    fn a_payload_longer_than_the_record_is_refused() {
        let bytes = |len: usize| serde_bytes::ByteBuf::from(vec![1u8; len]);
        let record = |len| (1u64, 2u64, bytes(len), StreamKind::Bid, 0u8);
        let fits = crate::codec::encode(&record(PAYLOAD_BYTES));
        assert!(crate::codec::decode::<Record>(&fits).is_ok());
        let long = crate::codec::encode(&record(PAYLOAD_BYTES + 1));
        assert!(crate::codec::decode::<Record>(&long).is_err());
    }
}
