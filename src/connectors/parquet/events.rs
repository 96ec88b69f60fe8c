//! Event files in Parquet, as `diffmill gen --format parquet` writes them.
//!
//! One file per stream and partition, a column per field in the canonical order: ids
//! `UINT64`, `ts` a `TIMESTAMP(MILLIS, UTC)`, money `INT64`, region and device strings.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    Int64Builder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;

use super::columns::timestamp_type;
use super::config::DEFAULT_ROW_GROUP_SIZE;
use super::publish::writer_properties;
use crate::event::{fields, to_csv_fields, Event, StreamKind};

/// Rows buffered before they are handed to the Parquet writer.
const CHUNK_ROWS: usize = 64 * 1024;

/// One column being filled.
enum Column {
    Id(UInt64Builder),
    Time(TimestampMillisecondBuilder),
    Money(Int64Builder),
    Text(StringBuilder),
}

impl Column {
    fn for_field(field: &str) -> (Column, DataType) {
        match field {
            "ts" => (
                Column::Time(TimestampMillisecondBuilder::new().with_timezone("UTC")),
                timestamp_type(),
            ),
            "region" | "device" => (Column::Text(StringBuilder::new()), DataType::Utf8),
            money if money.ends_with("_micros") => {
                (Column::Money(Int64Builder::new()), DataType::Int64)
            }
            _ => (Column::Id(UInt64Builder::new()), DataType::UInt64),
        }
    }

    /// Appends the value written as `text`; null when it is absent or not of the column's
    /// type (a malformed record stays malformed: a reader rejects the null).
    fn append(&mut self, text: Option<&str>) {
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        match self {
            Column::Id(c) => c.append_option(text.and_then(|t| t.parse().ok())),
            Column::Time(c) => c.append_option(text.and_then(|t| t.parse().ok())),
            Column::Money(c) => c.append_option(text.and_then(|t| t.parse().ok())),
            Column::Text(c) => c.append_option(text),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Id(c) => Arc::new(c.finish()),
            Column::Time(c) => Arc::new(c.finish()),
            Column::Money(c) => Arc::new(c.finish()),
            Column::Text(c) => Arc::new(c.finish()),
        }
    }
}

/// Writes the records of one stream to a Parquet file.
pub struct EventFileWriter {
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: usize,
    writer: ArrowWriter<File>,
}

impl EventFileWriter {
    /// Creates (or replaces) `path` for records of `kind`.
    ///
    /// # Errors
    /// An I/O error creating the file.
    pub fn create(path: &Path, kind: StreamKind) -> std::io::Result<EventFileWriter> {
        let (columns, fields): (Vec<Column>, Vec<Field>) = fields(kind)
            .iter()
            .map(|name| {
                let (column, data_type) = Column::for_field(name);
                (column, Field::new(*name, data_type, true))
            })
            .unzip();
        let schema = Arc::new(Schema::new(fields));
        let properties = writer_properties(DEFAULT_ROW_GROUP_SIZE);
        let writer =
            ArrowWriter::try_new(File::create(path)?, Arc::clone(&schema), Some(properties))
                .map_err(std::io::Error::other)?;
        Ok(EventFileWriter {
            schema,
            columns,
            rows: 0,
            writer,
        })
    }

    /// Appends a valid event.
    ///
    /// # Errors
    /// An I/O error writing the file.
    pub fn event(&mut self, event: &Event) -> std::io::Result<()> {
        let values = to_csv_fields(event);
        self.record(values.iter().map(String::as_str))
    }

    /// Appends a malformed record given as a headerless CSV line in canonical column
    /// order (as the generator makes them): each value that does not fit its column is
    /// null, so the record is rejected when read, as the line is.
    ///
    /// # Errors
    /// An I/O error writing the file.
    pub fn malformed(&mut self, line: &str) -> std::io::Result<()> {
        self.record(line.split(','))
    }

    fn record<'a>(&mut self, values: impl Iterator<Item = &'a str>) -> std::io::Result<()> {
        let mut values = values;
        for column in &mut self.columns {
            column.append(values.next());
        }
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
