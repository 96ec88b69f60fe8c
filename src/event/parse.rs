//! Parse and validate events from CSV (by header) and JSON lines.

use serde::Deserialize;

use super::invalid::MAX_TS;
use super::{
    Bid, Click, Conversion, Event, Impression, Invalid, Label, StreamKind, LABEL_MAX_BYTES,
};

/// Longest raw record accepted, in bytes; longer ones are dead-lettered.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// How the records of a partition are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated values with a header line naming the fields.
    Csv,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// File extension used for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "jsonl",
        }
    }
}

/// The fields of each stream, in the canonical column order (docs/design.md §2).
pub fn fields(kind: StreamKind) -> &'static [&'static str] {
    match kind {
        StreamKind::Bid => &[
            "bid_id",
            "ts",
            "campaign_id",
            "ad_id",
            "publisher_id",
            "region",
            "device",
            "bid_price_micros",
        ],
        StreamKind::Impression => &["impression_id", "bid_id", "ts", "cost_micros"],
        StreamKind::Click => &["click_id", "bid_id", "ts"],
        StreamKind::Conversion => &["conversion_id", "click_id", "ts", "value_micros"],
    }
}

/// Decodes CSV records of one stream, mapping columns by the file's header, so the
/// column order does not matter and extra columns are ignored.
#[derive(Clone, Debug)]
pub struct CsvDecoder {
    kind: StreamKind,
    /// For each canonical field, the column index in the file.
    columns: Vec<usize>,
    /// Columns of the header: a record with more fields is rejected.
    width: usize,
}

impl CsvDecoder {
    /// Builds a decoder from a header record.
    ///
    /// # Errors
    /// [`Invalid::HeaderMissingColumn`] when a required column is absent.
    pub fn new(kind: StreamKind, header: &csv::StringRecord) -> Result<CsvDecoder, Invalid> {
        let columns = fields(kind)
            .iter()
            .map(|field| {
                header.iter().position(|name| name.trim() == *field).ok_or(
                    Invalid::HeaderMissingColumn {
                        stream: kind,
                        column: field,
                    },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CsvDecoder {
            kind,
            columns,
            width: header.len(),
        })
    }

    /// A decoder for headerless records in the canonical column order (Kafka CSV payloads).
    pub fn canonical(kind: StreamKind) -> CsvDecoder {
        CsvDecoder {
            kind,
            columns: (0..fields(kind).len()).collect(),
            width: fields(kind).len(),
        }
    }

    /// The stream this decoder reads.
    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// Decodes and validates one record.
    ///
    /// # Errors
    /// The first problem found, as an [`Invalid`] reason for the dead-letter output.
    pub fn decode(&self, record: &csv::StringRecord) -> Result<Event, Invalid> {
        let names = fields(self.kind);
        let field = |i: usize| -> Result<&str, Invalid> {
            let value = record.get(self.columns[i]).map(str::trim).unwrap_or("");
            if value.is_empty() {
                Err(Invalid::MissingField { field: names[i] })
            } else {
                Ok(value)
            }
        };
        if record.len() > self.width {
            return Err(Invalid::ExtraFields {
                found: record.len(),
                columns: self.width,
            });
        }
        if let Some(&max) = self.columns.iter().max() {
            if record.len() <= max {
                return Err(Invalid::Csv(format!(
                    "{} columns, the header needs at least {}",
                    record.len(),
                    max + 1
                )));
            }
        }
        let event = match self.kind {
            StreamKind::Bid => Event::Bid(Bid {
                bid_id: id(names[0], field(0)?)?,
                ts: ts(field(1)?)?,
                campaign_id: id(names[2], field(2)?)?,
                ad_id: id(names[3], field(3)?)?,
                publisher_id: id(names[4], field(4)?)?,
                region: label(names[5], field(5)?)?,
                device: label(names[6], field(6)?)?,
                bid_price_micros: money(names[7], field(7)?)?,
            }),
            StreamKind::Impression => Event::Impression(Impression {
                impression_id: id(names[0], field(0)?)?,
                bid_id: id(names[1], field(1)?)?,
                ts: ts(field(2)?)?,
                cost_micros: money(names[3], field(3)?)?,
            }),
            StreamKind::Click => Event::Click(Click {
                click_id: id(names[0], field(0)?)?,
                bid_id: id(names[1], field(1)?)?,
                ts: ts(field(2)?)?,
            }),
            StreamKind::Conversion => Event::Conversion(Conversion {
                conversion_id: id(names[0], field(0)?)?,
                click_id: id(names[1], field(1)?)?,
                ts: ts(field(2)?)?,
                value_micros: money(names[3], field(3)?)?,
            }),
        };
        validate(event)
    }
}

/// Parses one headerless CSV line as an event of `kind`, columns in canonical order, the
/// way a partition of CSV text (a generated malformed line, a Kafka message) is read.
///
/// # Errors
/// The decoder's reason, or [`Invalid::Csv`] when the line is not CSV at all.
pub fn parse_csv_line(kind: StreamKind, line: &str) -> Result<Event, Invalid> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => CsvDecoder::canonical(kind).decode(&record),
        Ok(false) => Err(Invalid::Csv("empty line".into())),
        Err(e) => Err(Invalid::Csv(e.to_string())),
    }
}

/// Parses one JSON line as an event of `kind`. Unknown keys are ignored; numbers may be
/// JSON numbers or strings of digits.
///
/// # Errors
/// An [`Invalid`] reason: bad JSON, a missing or mistyped field, or a failed validation.
pub fn parse_json(kind: StreamKind, line: &str) -> Result<Event, Invalid> {
    if line.len() > MAX_RECORD_BYTES {
        return Err(Invalid::TooLong {
            len: line.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|e| Invalid::Json(e.to_string()))?;
    let names = fields(kind);
    let field = |i: usize| -> Result<String, Invalid> {
        match object.get(names[i]) {
            None | Some(serde_json::Value::Null) => Err(Invalid::MissingField { field: names[i] }),
            Some(serde_json::Value::String(text)) if text.trim().is_empty() => {
                Err(Invalid::MissingField { field: names[i] })
            }
            Some(serde_json::Value::String(text)) => Ok(text.trim().to_owned()),
            Some(serde_json::Value::Number(number)) => Ok(number.to_string()),
            Some(other) => Err(Invalid::Json(format!(
                "field `{}` must be a number or a string, got {other}",
                names[i]
            ))),
        }
    };
    let mut record = csv::StringRecord::new();
    for i in 0..names.len() {
        record.push_field(&field(i)?);
    }
    CsvDecoder::canonical(kind).decode(&record)
}

/// Checks the rules every event must satisfy beyond its field types: positive ids,
/// event time in range, money not negative. (String bounds are enforced by [`Label`].)
///
/// # Errors
/// The first rule broken.
pub fn validate(event: Event) -> Result<Event, Invalid> {
    let check_money = |field: &'static str, value: i64| {
        if value < 0 {
            Err(Invalid::NegativeMoney { field, value })
        } else {
            Ok(())
        }
    };
    match &event {
        Event::Bid(b) => check_money("bid_price_micros", b.bid_price_micros)?,
        Event::Impression(i) => check_money("cost_micros", i.cost_micros)?,
        Event::Click(_) => {}
        Event::Conversion(c) => check_money("value_micros", c.value_micros)?,
    }
    if event.ts() > MAX_TS {
        return Err(Invalid::TsOutOfRange {
            ts: event.ts().to_string(),
        });
    }
    Ok(event)
}

fn id(field: &'static str, text: &str) -> Result<u64, Invalid> {
    let value: u64 = text.parse().map_err(|_| Invalid::BadNumber {
        field,
        value: shorten(text),
        expected: "positive integer id",
    })?;
    if value == 0 {
        return Err(Invalid::ZeroId { field });
    }
    Ok(value)
}

fn ts(text: &str) -> Result<u64, Invalid> {
    match text.parse::<i128>() {
        Ok(value) if (0..=MAX_TS as i128).contains(&value) => Ok(value as u64),
        Ok(_) => Err(Invalid::TsOutOfRange { ts: shorten(text) }),
        Err(_) => Err(Invalid::BadNumber {
            field: "ts",
            value: shorten(text),
            expected: "integer of milliseconds since the epoch",
        }),
    }
}

fn money(field: &'static str, text: &str) -> Result<i64, Invalid> {
    let value: i64 = text.parse().map_err(|_| Invalid::BadNumber {
        field,
        value: shorten(text),
        expected: "integer amount of micros",
    })?;
    if value < 0 {
        return Err(Invalid::NegativeMoney { field, value });
    }
    Ok(value)
}

fn label(field: &'static str, text: &str) -> Result<Label, Invalid> {
    Label::new(text).ok_or(Invalid::StringTooLong {
        field,
        len: text.len(),
        max: LABEL_MAX_BYTES,
    })
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Writes an event as a CSV record in canonical column order (no header).
pub fn to_csv_fields(event: &Event) -> Vec<String> {
    match event {
        Event::Bid(b) => vec![
            b.bid_id.to_string(),
            b.ts.to_string(),
            b.campaign_id.to_string(),
            b.ad_id.to_string(),
            b.publisher_id.to_string(),
            b.region.to_string(),
            b.device.to_string(),
            b.bid_price_micros.to_string(),
        ],
        Event::Impression(i) => vec![
            i.impression_id.to_string(),
            i.bid_id.to_string(),
            i.ts.to_string(),
            i.cost_micros.to_string(),
        ],
        Event::Click(c) => vec![
            c.click_id.to_string(),
            c.bid_id.to_string(),
            c.ts.to_string(),
        ],
        Event::Conversion(c) => vec![
            c.conversion_id.to_string(),
            c.click_id.to_string(),
            c.ts.to_string(),
            c.value_micros.to_string(),
        ],
    }
}

/// Writes an event as one JSON object (no trailing newline).
pub fn to_json(event: &Event) -> String {
    let value = match event {
        Event::Bid(b) => serde_json::to_value(b),
        Event::Impression(i) => serde_json::to_value(i),
        Event::Click(c) => serde_json::to_value(c),
        Event::Conversion(c) => serde_json::to_value(c),
    };
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(names.to_vec())
    }

    #[test]
    fn csv_by_header_in_any_order() {
        let decoder = CsvDecoder::new(
            StreamKind::Click,
            &header(&["ts", "extra", "bid_id", "click_id"]),
        )
        .unwrap();
        let event = decoder
            .decode(&csv::StringRecord::from(vec!["5", "x", "7", "9"]))
            .unwrap();
        assert_eq!(
            event,
            Event::Click(Click {
                click_id: 9,
                bid_id: 7,
                ts: 5
            })
        );
    }

    #[test]
    fn csv_reasons() {
        let decoder = CsvDecoder::canonical(StreamKind::Impression);
        let decode = |cols: Vec<&str>| decoder.decode(&csv::StringRecord::from(cols));
        assert_eq!(
            decode(vec!["0", "1", "2", "3"]),
            Err(Invalid::ZeroId {
                field: "impression_id"
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
            Err(Invalid::BadNumber {
                field: "bid_id",
                ..
            })
        ));
        assert!(matches!(
            CsvDecoder::new(StreamKind::Click, &header(&["click_id", "ts"])),
            Err(Invalid::HeaderMissingColumn {
                column: "bid_id",
                ..
            })
        ));
    }

    #[test]
    fn json_ignores_extra_and_names_missing() {
        let event = parse_json(
            StreamKind::Conversion,
            r#"{"conversion_id":1,"click_id":"2","ts":3,"value_micros":4,"extra":true}"#,
        )
        .unwrap();
        assert_eq!(event.id(), 1);
        assert_eq!(
            parse_json(StreamKind::Click, r#"{"click_id":1,"ts":3}"#),
            Err(Invalid::MissingField { field: "bid_id" })
        );
        assert!(matches!(
            parse_json(StreamKind::Click, "{"),
            Err(Invalid::Json(_))
        ));
    }

    #[test]
    fn json_round_trip() {
        let bid = Event::Bid(Bid {
            bid_id: 1,
            ts: 2,
            campaign_id: 3,
            ad_id: 4,
            publisher_id: 5,
            region: Label::new("eu").unwrap(),
            device: Label::new("ios").unwrap(),
            bid_price_micros: 6,
        });
        assert_eq!(parse_json(StreamKind::Bid, &to_json(&bid)), Ok(bid));
    }
}
