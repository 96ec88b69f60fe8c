//! Malformed lines: corrupted copies of generated events that the CSV decoder rejects.

use rand::RngCore;

use crate::declare::{FieldType, StreamSchema};
use crate::event::Record;

/// How a copy of a record is broken. Every variant makes a line that decoding by the
/// stream's declaration (CSV by position) rejects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Corruption {
    /// A letter `O` typed into the event time.
    BadNumber,
    /// The field at this column left empty.
    MissingField(usize),
    /// The money field made negative (for clicks, which carry no money: a zero id).
    NegativeMoney,
    /// The record's own id set to 0.
    ZeroId,
    /// The last column cut off.
    TooFewColumns,
}

impl Corruption {
    /// Picks a corruption for a record with `fields` declared fields, each kind of damage
    /// equally often.
    pub(super) fn draw(rng: &mut impl RngCore, fields: usize) -> Corruption {
        let x = rng.next_u64();
        match x % 5 {
            0 => Corruption::BadNumber,
            1 => Corruption::MissingField(((x >> 32) % fields as u64) as usize),
            2 => Corruption::NegativeMoney,
            3 => Corruption::ZeroId,
            _ => Corruption::TooFewColumns,
        }
    }

    /// The broken CSV line (declaration order, no header, no newline): a letter in the
    /// event time, an empty field, a negative first money field (a zero id where there is
    /// none), a zero id, or the last column cut off.
    pub(super) fn render(self, schema: &StreamSchema, record: &Record) -> String {
        let mut columns = schema.texts(record);
        let money = schema
            .fields()
            .iter()
            .position(|f| f.ty == FieldType::Money);
        match self {
            Corruption::BadNumber => {
                let text = &mut columns[schema.time_index()];
                text.insert(text.len() / 2, 'O');
            }
            Corruption::MissingField(i) => {
                let last = columns.len() - 1;
                columns[i.min(last)].clear();
            }
            Corruption::NegativeMoney => match money {
                Some(money) if columns[money] == "0" => columns[money] = "-1".into(),
                Some(money) => columns[money].insert(0, '-'),
                None => columns[schema.id_index()] = "0".into(),
            },
            Corruption::ZeroId => columns[schema.id_index()] = "0".into(),
            Corruption::TooFewColumns => {
                columns.pop();
            }
        }
        columns.join(",")
    }
}
