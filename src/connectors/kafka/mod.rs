//! Kafka in and out through rdkafka (librdkafka).
//!
//! - [`KafkaSource`]: one topic per stream (JSON or CSV payloads); each partition of each
//!   topic is owned by one timely worker of the cluster; the watermark is kept per
//!   partition from the events' `ts` (a JSON payload without `ts` takes the message
//!   timestamp); bad payloads are dead-lettered with `topic/partition` and offset as
//!   their origin; a partition is not polled while the dataflow lags (flow control in
//!   ingest), and librdkafka's prefetch queue is bounded, so nothing buffers without
//!   bound; an idle partition stops holding the frontier back after `idle_timeout`;
//!   consumer offsets are committed only for records whose effects reached every sink.
//! - [`KafkaSink`]: aggregate diff rows as JSON keyed by window and dims (a compacted
//!   topic keeps the latest change per key) and a progress record per batch, each batch
//!   in one Kafka transaction, so a `read_committed` reader sees whole batches only. At
//!   start the sink reads its last committed progress record back, skips the batches it
//!   holds and continues the sequence: nothing is written twice across restarts.

mod backlog;
mod config;
mod produce;
mod reach;
mod resume;
mod sink;
mod source;
#[cfg(test)]
mod tests;

pub use config::{
    default_topic, kind_key, KafkaSinkSpec, KafkaSourceSpec, StartPosition, DEFAULT_CONNECT_TIMEOUT,
};
pub use produce::{create_topics, produce, topics_for, Produced};
pub use resume::last_progress;
pub use sink::{KafkaSink, Named, OutputRecord, ProgressRecord, RowRecord};
pub use source::{KafkaPartition, KafkaSource};
