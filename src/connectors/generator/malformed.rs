//! Malformed lines: corrupted copies of generated events that the CSV decoder rejects.

use rand::RngCore;

use crate::event::{fields, to_csv_fields, Event, StreamKind};

/// How a copy of an event is broken. Every variant makes a line that
/// `CsvDecoder::canonical(stream).decode` rejects.
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
    /// Picks a corruption for a record of `kind`, each kind of damage equally often.
    pub(super) fn draw(rng: &mut impl RngCore, kind: StreamKind) -> Corruption {
        let x = rng.next_u64();
        match x % 5 {
            0 => Corruption::BadNumber,
            1 => Corruption::MissingField(((x >> 32) % fields(kind).len() as u64) as usize),
            2 => Corruption::NegativeMoney,
            3 => Corruption::ZeroId,
            _ => Corruption::TooFewColumns,
        }
    }

    /// The broken CSV line (canonical column order, no header, no newline).
    pub(super) fn render(self, event: &Event) -> String {
        let names = fields(event.kind());
        let column = |wanted: fn(&str) -> bool| names.iter().position(|name| wanted(name));
        let mut columns = to_csv_fields(event);
        match self {
            Corruption::BadNumber => {
                if let Some(ts) = column(|name| name == "ts") {
                    let text = &mut columns[ts];
                    text.insert(text.len() / 2, 'O');
                }
            }
            Corruption::MissingField(i) => columns[i.min(names.len() - 1)].clear(),
            Corruption::NegativeMoney => match column(|name| name.ends_with("_micros")) {
                Some(money) if columns[money] == "0" => columns[money] = "-1".into(),
                Some(money) => columns[money].insert(0, '-'),
                None => columns[0] = "0".into(),
            },
            Corruption::ZeroId => columns[0] = "0".into(),
            Corruption::TooFewColumns => {
                columns.pop();
            }
        }
        columns.join(",")
    }
}
