//! The decoder of one partition: frames in, records or reasons out.

use std::sync::Arc;

use super::{decode_json, read_csv_record, split_csv, too_long, CsvDecoder, Format};
use crate::declare::StreamSchema;
use crate::event::{Invalid, Millis, Record};

/// How a transport frames records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Lines of a file: a line break ends each; blank lines carry nothing; a CSV file
    /// starts with a header naming its columns.
    Lines,
    /// Messages (Kafka, generated lines): one record each, CSV without a header.
    Messages,
}

/// Decodes the frames of one partition of one stream by the stream's declaration.
///
/// # Examples
/// ```
/// use diffmill::declare::Schema;
/// use diffmill::event::StreamKind;
/// use diffmill::format::{Decoder, Format, Framing};
///
/// let bids = Schema::funnel().stream(StreamKind::Bid).clone();
/// let mut file = Decoder::new(bids, Format::Csv, Framing::Lines);
/// let header = b"bid_id,ts,campaign_id,ad_id,publisher_id,region,device,bid_price_micros\n";
/// assert_eq!(file.decode(header, None), Ok(None));
/// let bid = file.decode(b"7,1000,1,2,3,eu,web,5\n", None).unwrap().unwrap();
/// assert_eq!((bid.id, bid.ts), (7, 1000));
/// assert!(file.decode(b"8,1000,1,2,3,eu,web,-5", None).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    format: Format,
    framing: Framing,
    /// Decodes CSV by position (messages), or by the header once read (lines).
    csv: Option<Result<CsvDecoder, Invalid>>,
    schema: Arc<StreamSchema>,
    fields: csv::StringRecord,
}

impl Decoder {
    /// A decoder of `format` frames of `schema`'s stream.
    pub fn new(schema: Arc<StreamSchema>, format: Format, framing: Framing) -> Decoder {
        let csv = match framing {
            Framing::Messages => Some(Ok(CsvDecoder::by_position(Arc::clone(&schema)))),
            Framing::Lines => None,
        };
        Decoder {
            format,
            framing,
            csv,
            schema,
            fields: csv::StringRecord::new(),
        }
    }

    /// The stream's declaration.
    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    /// True while a CSV file's header has not been read: the decoder does not know the
    /// columns yet.
    pub fn needs_header(&self) -> bool {
        self.format == Format::Csv && self.csv.is_none()
    }

    /// Forgets the header read, to read a file again from its start.
    pub fn restart(&mut self) {
        if self.framing == Framing::Lines {
            self.csv = None;
        }
    }

    /// Decodes one frame: `Ok(None)` when it carries no record (a blank line, a CSV
    /// header). A record whose event time field is missing takes `fallback_ts` when given.
    ///
    /// # Errors
    /// The [`Invalid`] reason of a frame that is no valid record.
    pub fn decode(
        &mut self,
        frame: &[u8],
        fallback_ts: Option<Millis>,
    ) -> Result<Option<Record>, Invalid> {
        let mut bytes = frame;
        if self.framing == Framing::Lines {
            while let Some(stripped) = bytes
                .strip_suffix(b"\n")
                .or_else(|| bytes.strip_suffix(b"\r"))
            {
                bytes = stripped;
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
        }
        if let Some(reason) = too_long(bytes.len()) {
            return Err(reason);
        }
        let mut text = std::str::from_utf8(bytes).map_err(|e| Invalid::NotUtf8(e.to_string()))?;
        if self.framing == Framing::Messages {
            text = text.trim_end_matches(['\n', '\r']);
        }
        match (self.format, self.framing) {
            (Format::Json, _) => decode_json(&self.schema, text, fallback_ts).map(Some),
            (Format::Csv, Framing::Messages) => {
                read_csv_record(text, &mut self.fields)?;
                self.decode_fields().map(Some)
            }
            (Format::Csv, Framing::Lines) => {
                split_csv(text, &mut self.fields);
                if self.csv.is_none() {
                    self.csv = Some(CsvDecoder::by_header(
                        Arc::clone(&self.schema),
                        &self.fields,
                    ));
                    return Ok(None);
                }
                self.decode_fields().map(Some)
            }
        }
    }

    fn decode_fields(&self) -> Result<Record, Invalid> {
        match &self.csv {
            Some(Ok(decoder)) => decoder.decode(&self.fields),
            Some(Err(header)) => Err(header.clone()),
            None => Err(Invalid::Csv("no header".into())),
        }
    }
}
