//! CSV records decoded by a stream's declaration: columns found by a header, or taken in
//! declaration order.

use std::sync::Arc;

use crate::declare::{parse_id, parse_ts, FieldType, StreamSchema, UnknownFields};
use crate::event::{Invalid, Record};

/// Decodes CSV records of one stream, each declared field from its column.
///
/// By header (files): columns are found by name, so their order does not matter, and
/// undeclared columns are ignored (or, when the stream rejects unknown fields, make the
/// header unusable). By position (Kafka messages, generated lines): the fields in
/// declaration order.
///
/// # Examples
/// ```
/// use diffmill::declare::Schema;
/// use diffmill::format::CsvDecoder;
/// use diffmill::event::StreamKind;
///
/// let clicks = Schema::funnel().stream(StreamKind::Click).clone();
/// let header = csv::StringRecord::from(vec!["ts", "extra", "bid_id", "click_id"]);
/// let decoder = CsvDecoder::by_header(clicks, &header).unwrap();
/// let record = decoder.decode(&csv::StringRecord::from(vec!["5", "x", "7", "9"])).unwrap();
/// assert_eq!((record.id, record.ts), (9, 5));
/// ```
#[derive(Clone, Debug)]
pub struct CsvDecoder {
    schema: Arc<StreamSchema>,
    /// For each declared field, in declaration order: its column and where it goes.
    slots: Vec<Slot>,
    /// Columns a record needs: one more than the greatest of `columns`.
    needed: usize,
    /// Columns of the header (for headerless records, the declared fields): a record with
    /// more fields is rejected, as which value belongs to which column is unknown.
    width: usize,
}

impl CsvDecoder {
    /// A decoder for records laid out as `header` says.
    ///
    /// # Errors
    /// [`Invalid::HeaderMissingColumn`] when a declared field has no column, or
    /// [`Invalid::HeaderUnknownColumn`] for an undeclared column of a stream that rejects
    /// them.
    pub fn by_header(
        schema: Arc<StreamSchema>,
        header: &csv::StringRecord,
    ) -> Result<CsvDecoder, Invalid> {
        let columns = schema
            .fields()
            .iter()
            .map(|field| {
                header
                    .iter()
                    .position(|name| name.trim() == field.name)
                    .ok_or_else(|| Invalid::HeaderMissingColumn {
                        stream: schema.kind(),
                        column: field.name.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if schema.unknown_fields() == UnknownFields::Reject {
            if let Some(column) = header
                .iter()
                .find(|name| schema.index(name.trim()).is_none())
            {
                return Err(Invalid::HeaderUnknownColumn {
                    stream: schema.kind(),
                    column: column.trim().to_owned(),
                });
            }
        }
        Ok(CsvDecoder::with_columns(schema, columns, header.len()))
    }

    /// A decoder for headerless records with the fields in declaration order.
    pub fn by_position(schema: Arc<StreamSchema>) -> CsvDecoder {
        let columns: Vec<usize> = (0..schema.fields().len()).collect();
        let width = columns.len();
        CsvDecoder::with_columns(schema, columns, width)
    }

    fn with_columns(schema: Arc<StreamSchema>, columns: Vec<usize>, width: usize) -> CsvDecoder {
        let needed = columns.iter().max().map_or(0, |max| max + 1);
        let slots = columns
            .into_iter()
            .enumerate()
            .map(|(index, column)| Slot {
                column,
                ty: schema.fields()[index].ty,
                target: if index == schema.id_index() {
                    Target::Id
                } else if index == schema.time_index() {
                    Target::Time
                } else {
                    Target::Payload(schema.offset(index))
                },
            })
            .collect();
        CsvDecoder {
            schema,
            slots,
            needed,
            width,
        }
    }

    /// The stream's declaration.
    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    /// Decodes and validates one record.
    ///
    /// # Errors
    /// The first problem found, as an [`Invalid`] reason for the dead-letter output: more
    /// fields than columns, too few columns, then the fields in declaration order.
    pub fn decode(&self, fields: &csv::StringRecord) -> Result<Record, Invalid> {
        if fields.len() > self.width {
            return Err(Invalid::ExtraFields {
                found: fields.len(),
                columns: self.width,
            });
        }
        if fields.len() < self.needed {
            return Err(Invalid::Csv(format!(
                "{} columns, the header needs at least {}",
                fields.len(),
                self.needed
            )));
        }
        let schema = &self.schema;
        let mut record = Record::new(schema.kind(), 0, 0);
        for (field, slot) in schema.fields().iter().zip(&self.slots) {
            let text = fields.get(slot.column).map(str::trim).unwrap_or("");
            if text.is_empty() {
                return Err(Invalid::MissingField {
                    field: field.name.clone(),
                });
            }
            // Straight into the record: no `Value` in between.
            match slot.target {
                Target::Id => record.id = parse_id(&field.name, text)?,
                Target::Time => record.ts = parse_ts(&field.name, text)?,
                Target::Payload(offset) => {
                    slot.ty
                        .parse_into(&field.name, text, &mut record.payload_mut()[offset..])?
                }
            }
        }
        Ok(record)
    }
}

/// Where one declared field of a CSV record comes from and where it goes.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Its column.
    column: usize,
    ty: FieldType,
    target: Target,
}

/// The part of a record a field is decoded into.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The record's id.
    Id,
    /// The record's event time.
    Time,
    /// The payload, at this offset.
    Payload(usize),
}

/// Splits one line of a CSV file (without its newline) into `fields`: a fast path for
/// lines without quotes, the csv crate for the rest; a line the csv crate cannot read gives
/// no fields (so the decoder reports its columns missing).
pub fn split_csv(line: &str, fields: &mut csv::StringRecord) {
    fields.clear();
    if !line.contains('"') {
        for field in line.split(',') {
            fields.push_field(field);
        }
        return;
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    if reader.read_record(fields).is_err() {
        fields.clear();
    }
}

/// Reads one headerless CSV record (a Kafka message, a generated line) into `fields` with
/// the csv crate.
///
/// # Errors
/// [`Invalid::Csv`] for an empty text or one the csv crate cannot read.
pub fn read_csv_record(text: &str, fields: &mut csv::StringRecord) -> Result<(), Invalid> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    match reader.read_record(fields) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Invalid::Csv("empty line".into())),
        Err(e) => Err(Invalid::Csv(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declare::{Schema, StreamSpec};
    use crate::event::StreamKind;

    fn header(names: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(names.to_vec())
    }

    #[test]
    fn reasons() {
        let schema = Schema::funnel().stream(StreamKind::Impression).clone();
        let decoder = CsvDecoder::by_position(schema.clone());
        let decode = |cols: Vec<&str>| decoder.decode(&csv::StringRecord::from(cols));
        assert_eq!(
            decode(vec!["0", "1", "2", "3"]),
            Err(Invalid::ZeroId {
                field: "impression_id".into()
            })
        );
        assert!(matches!(
            decode(vec!["1", "1", "-2", "3"]),
            Err(Invalid::TsOutOfRange { .. })
        ));
        assert!(matches!(
            decode(vec!["1", "1", "2", "-3"]),
            Err(Invalid::NegativeMoney { .. })
        ));
        assert!(matches!(decode(vec!["1", "1", "2"]), Err(Invalid::Csv(_))));
        assert!(matches!(
            decode(vec!["1", "x", "2", "3"]),
            Err(Invalid::BadNumber { ref field, .. }) if field == "bid_id"
        ));
        let clicks = Schema::funnel().stream(StreamKind::Click).clone();
        assert_eq!(
            CsvDecoder::by_header(clicks, &header(&["click_id", "ts"])).unwrap_err(),
            Invalid::HeaderMissingColumn {
                stream: StreamKind::Click,
                column: "bid_id".into()
            }
        );
    }

    #[test]
    fn unknown_columns_are_rejected_when_declared_so() {
        let strict = StreamSpec::default_for(StreamKind::Click)
            .unknown_fields(UnknownFields::Reject)
            .resolve(StreamKind::Click)
            .unwrap();
        let error = CsvDecoder::by_header(
            Arc::new(strict),
            &header(&["click_id", "bid_id", "ts", "extra"]),
        )
        .unwrap_err();
        assert!(
            matches!(error, Invalid::HeaderUnknownColumn { ref column, .. } if column == "extra")
        );
    }

    #[test]
    fn splits_quoted_and_plain_lines() {
        let mut fields = csv::StringRecord::new();
        split_csv("a,\"b,c\",d", &mut fields);
        assert_eq!(fields.len(), 3);
        split_csv("1,2", &mut fields);
        assert_eq!(&fields[1], "2");
        assert!(read_csv_record("", &mut fields).is_err());
        assert!(read_csv_record("1,2", &mut fields).is_ok());
    }
}
