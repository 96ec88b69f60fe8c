//! The Kafka sink: each batch's rows and progress record in one transaction.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::config::KafkaSinkSpec;
use super::reach::reach;
use super::resume::last_progress;
use crate::connectors::{AggregateRow, Batch, Resume, Sink, SinkError};
use crate::declare::{Aggregate, WindowStatus};
use crate::event::Millis;

/// How long initializing or committing a transaction may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// One message of the sink topic.
///
/// A reader with `isolation.level = read_committed` sees whole batches: every row of a
/// batch, then its progress record. Summing the rows of all batches whose progress record
/// has `frontier = F` or earlier gives the aggregates at frontier `F` (docs/design.md §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputRecord {
    /// A change to one aggregate; the message key is `[window_start, dims]` as JSON, e.g.
    /// `[1704067200000,{"campaign_id":"1","region":"eu-west"}]`.
    Row(RowRecord),
    /// The end of a batch; the message key is `"progress"`.
    Progress(ProgressRecord),
}

/// A change to one aggregate, with its batch:
///
/// ```text
/// {"type":"row","seq":3,"frontier":1704069397432,"window_start":1704067200000,
///  "window_end":1704068100000,"dims":{"campaign_id":"1","region":"eu-west"},
///  "delta":{"bids":9,"impressions":7,"clicks":0,"conversions":0,"spend_micros":19418,
///  "revenue_micros":0},"status":"correction"}
/// ```
///
/// `dims` names each grouped dim with the text the CSV and PostgreSQL sinks write for it:
/// the value, or `unattributed` for every dim of a row whose parent is missing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRecord {
    /// The batch's sequence number.
    pub seq: u64,
    /// The batch's frontier (`None`: the input is complete).
    pub frontier: Option<Millis>,
    /// Window start (inclusive), ms.
    pub window_start: Millis,
    /// Window end (exclusive), ms.
    pub window_end: Millis,
    /// The grouped dims by name (`other` for a value beyond its dimension's bound).
    pub dims: BTreeMap<String, String>,
    /// The change to the measures.
    pub delta: Named,
    /// `open`, `closed` or `correction`, as in the CSV change log.
    pub status: WindowStatus,
}

impl RowRecord {
    /// The record of `row`, a row of `aggregate` in the batch `seq` with `frontier`.
    pub fn new(
        aggregate: &Aggregate,
        seq: u64,
        frontier: Option<Millis>,
        row: &AggregateRow,
    ) -> RowRecord {
        let names = aggregate.measure_names();
        RowRecord {
            seq,
            frontier,
            window_start: row.window_start,
            window_end: row.window_end,
            dims: aggregate
                .dims
                .names()
                .into_iter()
                .map(str::to_owned)
                .zip(aggregate.dims.texts(&row.dims))
                .collect(),
            delta: Named(
                names
                    .iter()
                    .map(|n| n.to_string())
                    .zip(row.delta.values(names.len()).iter().copied())
                    .collect(),
            ),
            status: row.status,
        }
    }
}

/// Named values in their declared order (a measure's change per name), written as a JSON
/// object whose keys keep that order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Named(pub Vec<(String, i64)>);

impl Named {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

impl Serialize for Named {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Named;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of measure names and integers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named, A::Error> {
                let mut values = Vec::new();
                while let Some(entry) = map.next_entry::<String, i64>()? {
                    values.push(entry);
                }
                Ok(Named(values))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// The end of a batch: its frontier and what it carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressRecord {
    /// The batch's sequence number.
    pub seq: u64,
    /// The frontier before the batch.
    pub previous: Millis,
    /// The frontier after the batch (`None`: the input is complete).
    pub frontier: Option<Millis>,
    /// Rows in the batch.
    pub rows: usize,
    /// Starts of the windows that became final in the batch.
    pub finalized: Vec<Millis>,
    /// Dead letters in the batch.
    pub dead_letters: usize,
    /// Too-late records in the batch.
    pub too_late: usize,
}

/// Writes batches to a topic with a transactional producer.
///
/// Exactly once: when the run begins, the sink reads its topic back (`read_committed`)
/// and finds its last progress record; the emitter cuts a batch at that record's
/// frontier and numbers it with its `seq`, the sink skips every batch at or below that
/// frontier, and continues the sequence. A topic holding the progress record of a
/// complete input takes nothing more. Each batch is one transaction, so a crash leaves
/// whole batches only; the transactional id fences a producer of an earlier run.
pub struct KafkaSink {
    name: String,
    spec: KafkaSinkSpec,
    aggregate: Aggregate,
    producer: BaseProducer,
    /// The last progress record the topic held when the run began.
    held: Option<ProgressRecord>,
}

impl KafkaSink {
    /// Connects and initializes the transactional producer (which fences any older
    /// producer with the same `transactional.id`).
    ///
    /// # Errors
    /// A [`SinkError`] when the producer cannot be created or initialized.
    pub fn create(spec: &KafkaSinkSpec, aggregate: &Aggregate) -> Result<KafkaSink, SinkError> {
        let name = format!("kafka:{}", spec.topic);
        let error = |e: KafkaError| SinkError::Other {
            sink: name.clone(),
            message: e.to_string(),
        };
        let producer: BaseProducer = spec.producer_config().create().map_err(error)?;
        let who = format!("kafka sink `{}`", spec.topic);
        reach(
            producer.client(),
            &who,
            &spec.brokers,
            spec.connect_timeout.to_std(),
        )
        .map_err(|message| SinkError::Other {
            sink: name.clone(),
            message,
        })?;
        producer
            .init_transactions(TRANSACTION_TIMEOUT)
            .map_err(|e| SinkError::Other {
                sink: name.clone(),
                message: format!("initializing transactions at {}: {e}", spec.brokers),
            })?;
        Ok(KafkaSink {
            name: name.clone(),
            spec: spec.clone(),
            aggregate: aggregate.clone(),
            producer,
            held: None,
        })
    }

    fn send(&self, topic: &str, key: &str, payload: &str) -> Result<(), KafkaError> {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    fn write(&self, batch: &Batch) -> Result<(), KafkaError> {
        for row in &batch.rows {
            let record = RowRecord::new(&self.aggregate, batch.seq, batch.frontier, row);
            let key = json(&(record.window_start, &record.dims));
            self.send(&self.spec.topic, &key, &json(&OutputRecord::Row(record)))?;
        }
        if let Some(topic) = &self.spec.dead_letter_topic {
            for dead in &batch.dead_letters {
                self.send(topic, &dead.origin.to_string(), &json(dead))?;
            }
        }
        if let Some(topic) = &self.spec.late_topic {
            for late in &batch.too_late {
                self.send(topic, &late.origin.to_string(), &json(late))?;
            }
        }
        let progress = OutputRecord::Progress(ProgressRecord {
            seq: batch.seq,
            previous: batch.previous,
            frontier: batch.frontier,
            rows: batch.rows.len(),
            finalized: batch.finalized.clone(),
            dead_letters: batch.dead_letters.len(),
            too_late: batch.too_late.len(),
        });
        self.send(&self.spec.topic, "progress", &json(&progress))
    }
}

/// A record as JSON text (the records here cannot fail to serialize).
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn begin(&mut self, restored: Option<Millis>) -> Result<(), SinkError> {
        self.held = last_progress(&self.spec).map_err(|message| SinkError::Other {
            sink: self.name.clone(),
            message: format!("cannot read back what the topic holds: {message}"),
        })?;
        if let (Some(frontier), None) = (restored, &self.held) {
            return Err(SinkError::Other {
                sink: self.name.clone(),
                message: format!(
                    "the run resumes from a checkpoint at frontier {frontier}, but the topic \
                     holds no output of it: it would lack everything before; start over \
                     with --fresh"
                ),
            });
        }
        if self.held.as_ref().is_some_and(|h| h.frontier.is_none()) {
            tracing::warn!(
                sink = %self.name,
                "the topic holds the output of a complete input: this run writes nothing \
                 to it (use another topic to write again)"
            );
        }
        Ok(())
    }

    fn resume(&self) -> Option<Resume> {
        let held = self.held.as_ref()?;
        held.frontier.map(|frontier| Resume {
            frontier,
            seq: held.seq,
        })
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if let Some(held) = &self.held {
            let holds = held
                .frontier
                .is_none_or(|f| batch.frontier.is_some_and(|b| b <= f));
            if holds {
                // Written by an earlier run.
                return Ok(());
            }
        }
        let error = |e: KafkaError| SinkError::Other {
            sink: self.name.clone(),
            message: e.to_string(),
        };
        self.producer.begin_transaction().map_err(error)?;
        let written = self
            .write(batch)
            .and_then(|()| self.producer.commit_transaction(TRANSACTION_TIMEOUT));
        if let Err(failure) = written {
            // Nothing of the batch becomes visible to read_committed readers.
            let _ = self.producer.abort_transaction(TRANSACTION_TIMEOUT);
            return Err(error(failure));
        }
        Ok(())
    }
}
