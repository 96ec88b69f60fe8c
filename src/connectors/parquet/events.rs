//! Event files in Parquet, as `diffmill gen --format parquet` writes them.
//!
//! One file per stream and partition, a column per declared field in declaration order:
//! ids `UINT64`, timestamps `TIMESTAMP(MILLIS, UTC)`, ints and money `INT64`, strings
//! `UTF8`, booleans `BOOLEAN`.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Int64Builder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;

use super::columns::timestamp_type;
use super::config::DEFAULT_ROW_GROUP_SIZE;
use super::publish::writer_properties;
use crate::declare::{FieldType, StreamSchema, Value};
use crate::event::Record;

/// Rows buffered before they are handed to the Parquet writer.
const CHUNK_ROWS: usize = 64 * 1024;

/// One column being filled.
enum Column {
    Id(UInt64Builder),
    Time(TimestampMillisecondBuilder),
    Integer(Int64Builder),
    Text(StringBuilder),
    Boolean(BooleanBuilder),
}

impl Column {
    fn for_type(ty: FieldType) -> (Column, DataType) {
        match ty {
            FieldType::Timestamp => (
                Column::Time(TimestampMillisecondBuilder::new().with_timezone("UTC")),
                timestamp_type(),
            ),
            FieldType::String => (Column::Text(StringBuilder::new()), DataType::Utf8),
            FieldType::Money | FieldType::Int => {
                (Column::Integer(Int64Builder::new()), DataType::Int64)
            }
            FieldType::Bool => (Column::Boolean(BooleanBuilder::new()), DataType::Boolean),
            FieldType::Id => (Column::Id(UInt64Builder::new()), DataType::UInt64),
        }
    }

    /// Appends a value of the column's field.
    fn append(&mut self, value: Value) {
        match (self, value) {
            (Column::Id(c), Value::Id(v)) => c.append_value(v),
            (Column::Time(c), Value::Timestamp(v)) => {
                c.append_value(i64::try_from(v).unwrap_or(i64::MAX))
            }
            (Column::Integer(c), Value::Int(v) | Value::Money(v)) => c.append_value(v),
            (Column::Text(c), Value::String(label)) => c.append_value(label.as_str()),
            (Column::Boolean(c), Value::Bool(b)) => c.append_value(b),
            // A record holds a value of each field's declared type.
            (column, _) => column.append_text(None),
        }
    }

    /// Appends the value written as `text`; null when it is absent or not of the column's
    /// type (a malformed record stays malformed: a reader rejects the null).
    fn append_text(&mut self, text: Option<&str>) {
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        match self {
            Column::Id(c) => c.append_option(text.and_then(|t| t.parse().ok())),
            Column::Time(c) => c.append_option(text.and_then(|t| t.parse().ok())),
            Column::Integer(c) => c.append_option(text.and_then(|t| t.parse().ok())),
            Column::Text(c) => c.append_option(text),
            Column::Boolean(c) => c.append_option(text.and_then(|t| t.parse().ok())),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Id(c) => Arc::new(c.finish()),
            Column::Time(c) => Arc::new(c.finish()),
            Column::Integer(c) => Arc::new(c.finish()),
            Column::Text(c) => Arc::new(c.finish()),
            Column::Boolean(c) => Arc::new(c.finish()),
        }
    }
}

/// Writes the records of one stream to a Parquet file.
pub struct EventFileWriter {
    schema: SchemaRef,
    stream: Arc<StreamSchema>,
    columns: Vec<Column>,
    rows: usize,
    writer: ArrowWriter<File>,
}

impl EventFileWriter {
    /// Creates (or replaces) `path` for records of the stream `stream` declares.
    ///
    /// # Errors
    /// An I/O error creating the file.
    pub fn create(path: &Path, stream: Arc<StreamSchema>) -> std::io::Result<EventFileWriter> {
        let (columns, fields): (Vec<Column>, Vec<Field>) = stream
            .fields()
            .iter()
            .map(|field| {
                let (column, data_type) = Column::for_type(field.ty);
                (column, Field::new(field.name.as_str(), data_type, true))
            })
            .unzip();
        let schema = Arc::new(Schema::new(fields));
        let properties = writer_properties(DEFAULT_ROW_GROUP_SIZE);
        let writer =
            ArrowWriter::try_new(File::create(path)?, Arc::clone(&schema), Some(properties))
                .map_err(std::io::Error::other)?;
        Ok(EventFileWriter {
            schema,
            stream,
            columns,
            rows: 0,
            writer,
        })
    }

    /// Appends a valid record.
    ///
    /// # Errors
    /// An I/O error writing the file.
    pub fn record(&mut self, record: &Record) -> std::io::Result<()> {
        for (index, column) in self.columns.iter_mut().enumerate() {
            column.append(self.stream.get(record, index));
        }
        self.row_done()
    }

    /// Appends a malformed record given as a headerless CSV line in declaration order
    /// (as the generator makes them): each value that does not fit its column is null,
    /// so the record is rejected when read, as the line is.
    ///
    /// # Errors
    /// An I/O error writing the file.
    pub fn malformed(&mut self, line: &str) -> std::io::Result<()> {
        let mut values = line.split(',');
        for column in &mut self.columns {
            column.append_text(values.next());
        }
        self.row_done()
    }

    fn row_done(&mut self) -> std::io::Result<()> {
        self.rows += 1;
        if self.rows >= CHUNK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let columns = self.columns.iter_mut().map(Column::finish).collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(std::io::Error::other)?;
        self.rows = 0;
        self.writer.write(&batch).map_err(std::io::Error::other)
    }

    /// Writes what is buffered and the file's footer.
    ///
    /// # Errors
    /// An I/O error writing the file.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.flush()?;
        self.writer
            .into_inner()
            .map_err(std::io::Error::other)?
            .sync_all()
    }
}
