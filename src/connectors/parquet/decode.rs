//! Parquet event columns to records: a column per declared field, found by name, each
//! value as text, then the declared schema's CSV decoder, so a Parquet record is
//! validated exactly as a CSV line with the same values.
//!
//! This is the Parquet source's whole decoding: which column types stand for which
//! field type ([`EventColumns::new`]) and how a value becomes field text
//! ([`EventColumns::decode`]).

use std::fmt::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, TimeUnit};

use crate::declare::{FieldType, StreamSchema, UnknownFields};
use crate::event::{Invalid, Record, StreamKind};
use crate::format::CsvDecoder;

/// What a field's column may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Ids, ints and money: any integer type.
    Integer,
    /// A timestamp: an integer of ms, or a timestamp of any unit (read as ms).
    Time,
    /// Strings.
    Text,
    /// Booleans.
    Boolean,
}

impl Kind {
    fn of(ty: FieldType) -> Kind {
        match ty {
            FieldType::Timestamp => Kind::Time,
            FieldType::String => Kind::Text,
            FieldType::Bool => Kind::Boolean,
            FieldType::Id | FieldType::Int | FieldType::Money => Kind::Integer,
        }
    }

    fn accepts(self, data_type: &DataType) -> bool {
        let integer = data_type.is_integer();
        match self {
            Kind::Integer => integer,
            Kind::Time => integer || matches!(data_type, DataType::Timestamp(..)),
            Kind::Text => matches!(
                data_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            Kind::Boolean => *data_type == DataType::Boolean,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Integer => "an integer",
            Kind::Time => "a timestamp or an integer of milliseconds",
            Kind::Text => "a string",
            Kind::Boolean => "a boolean",
        }
    }
}

/// A column of an event file that cannot be read as its field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ColumnError {
    /// The stream declares a field the file has no column for.
    #[error("no column `{column}` (a {stream} file needs {needed}; it has {found})")]
    Missing {
        /// The stream the file is read as.
        stream: StreamKind,
        /// The missing column.
        column: String,
        /// The columns the stream needs.
        needed: String,
        /// The file's columns.
        found: String,
    },
    /// A column has a type that does not hold its field.
    #[error("column `{column}` is {found}, expected {expected}")]
    WrongType {
        /// The column.
        column: String,
        /// Its type in the file.
        found: String,
        /// What the field needs.
        expected: &'static str,
    },
    /// The file has a column the stream does not declare, and the declaration rejects
    /// unknown fields.
    #[error("column `{column}` is not a declared field of the {stream} stream (its unknown fields are rejected)")]
    Unknown {
        /// The stream the file is read as.
        stream: StreamKind,
        /// The undeclared column.
        column: String,
    },
}

/// The columns of one stream's declared fields in an event file, checked against their
/// types.
#[derive(Clone, Debug)]
pub struct EventColumns {
    schema: Arc<StreamSchema>,
    decoder: CsvDecoder,
}

/// The field values of one record as text, and the columns of the current record batch.
#[derive(Debug, Default)]
pub struct RecordText {
    columns: Vec<ArrayRef>,
    record: csv::StringRecord,
    value: String,
}

impl EventColumns {
    /// Checks that `arrow` has a column of a fitting type for every field `schema`
    /// declares (columns are found by name, in any order; extra columns are ignored,
    /// or refused when the stream rejects unknown fields).
    ///
    /// # Errors
    /// A [`ColumnError`] for the first field without a usable column.
    pub fn new(schema: Arc<StreamSchema>, arrow: &Schema) -> Result<EventColumns, ColumnError> {
        let kind = schema.kind();
        for field in schema.fields() {
            let Ok(column) = arrow.field_with_name(&field.name) else {
                let names: Vec<&str> = arrow.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(ColumnError::Missing {
                    stream: kind,
                    column: field.name.clone(),
                    needed: schema.names(),
                    found: if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    },
                });
            };
            let expected = Kind::of(field.ty);
            if !expected.accepts(column.data_type()) {
                return Err(ColumnError::WrongType {
                    column: field.name.clone(),
                    found: column.data_type().to_string(),
                    expected: expected.expected(),
                });
            }
        }
        if schema.unknown_fields() == UnknownFields::Reject {
            if let Some(column) = arrow
                .fields()
                .iter()
                .find(|f| schema.index(f.name()).is_none())
            {
                return Err(ColumnError::Unknown {
                    stream: kind,
                    column: column.name().clone(),
                });
            }
        }
        let decoder = CsvDecoder::by_position(Arc::clone(&schema));
        Ok(EventColumns { schema, decoder })
    }

    /// The indices in `arrow` of the columns read, ascending (for a projection).
    pub fn indices(&self, arrow: &Schema) -> Vec<usize> {
        let mut indices: Vec<usize> = self
            .schema
            .fields()
            .iter()
            .filter_map(|field| arrow.index_of(&field.name).ok())
            .collect();
        indices.sort_unstable();
        indices
    }

    /// Makes `batch` the source of the next [`EventColumns::decode`] calls.
    pub fn start(&self, batch: &RecordBatch, text: &mut RecordText) {
        text.columns = self
            .schema
            .fields()
            .iter()
            .filter_map(|field| batch.column_by_name(&field.name).cloned())
            .collect();
    }

    /// Decodes row `row` of the batch given to [`EventColumns::start`]: its values as
    /// text in declaration order (a null is an empty field), then the CSV decoder and
    /// its validation.
    ///
    /// # Errors
    /// The decoder's [`Invalid`] reason, with the record's text for the dead letter.
    pub fn decode(&self, row: usize, text: &mut RecordText) -> Result<Record, (Invalid, String)> {
        text.record.clear();
        for column in &text.columns {
            text.value.clear();
            value_text(column.as_ref(), row, &mut text.value);
            text.record.push_field(&text.value);
        }
        self.decoder
            .decode(&text.record)
            .map_err(|reason| (reason, text.record.iter().collect::<Vec<_>>().join(",")))
    }
}

/// Appends the text of `column[row]` to `out`: nothing for a null, an integer in
/// decimal, a timestamp in ms since the epoch, a string as is.
fn value_text(column: &dyn Array, row: usize, out: &mut String) {
    if column.is_null(row) {
        return;
    }
    let _ = match column.data_type() {
        DataType::Int8 => write!(out, "{}", column.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => write!(out, "{}", column.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => write!(out, "{}", column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => write!(out, "{}", column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => write!(out, "{}", column.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => write!(out, "{}", column.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => write!(out, "{}", column.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => write!(out, "{}", column.as_primitive::<UInt64Type>().value(row)),
        DataType::Timestamp(unit, _) => write!(out, "{}", timestamp_ms(column, *unit, row)),
        DataType::Utf8 => write!(out, "{}", column.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => write!(out, "{}", column.as_string::<i64>().value(row)),
        DataType::Utf8View => write!(out, "{}", column.as_string_view().value(row)),
        DataType::Boolean => write!(out, "{}", column.as_boolean().value(row)),
        // Excluded by the column check of `EventColumns::new`.
        _ => Ok(()),
    };
}

/// A timestamp value in ms (floored), wide enough that no unit overflows.
fn timestamp_ms(column: &dyn Array, unit: TimeUnit, row: usize) -> i128 {
    let value = |raw: i64| i128::from(raw);
    match unit {
        TimeUnit::Second => value(column.as_primitive::<TimestampSecondType>().value(row)) * 1000,
        TimeUnit::Millisecond => {
            value(column.as_primitive::<TimestampMillisecondType>().value(row))
        }
        TimeUnit::Microsecond => {
            value(column.as_primitive::<TimestampMicrosecondType>().value(row)).div_euclid(1000)
        }
        TimeUnit::Nanosecond => {
            value(column.as_primitive::<TimestampNanosecondType>().value(row)).div_euclid(1_000_000)
        }
    }
}
