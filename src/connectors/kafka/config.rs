//! The Kafka source and sink settings as written in a graph file, and the librdkafka
//! client configurations they make.

use std::collections::BTreeMap;

use rdkafka::config::FromClientConfig;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::declare::DurationText;
use crate::event::{time_text, StreamKind};
use crate::format::Format;

/// Where a partition starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest retained offset.
    Earliest,
    /// The end of the partition: only records produced after the start are read.
    Latest,
    /// The consumer group's committed offset (the earliest offset when there is none).
    #[default]
    Committed,
    /// The first offset whose message timestamp is at or after this time (ms since the
    /// epoch), found with `offsets_for_times`; written `{ timestamp = 1700000000000 }`.
    Timestamp(u64),
}

impl std::fmt::Display for StartPosition {
    /// As a graph file writes it; a timestamp also as UTC.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartPosition::Earliest => f.write_str("earliest"),
            StartPosition::Latest => f.write_str("latest"),
            StartPosition::Committed => f.write_str("committed"),
            StartPosition::Timestamp(ms) => write!(f, "at timestamp {}", time_text(*ms)),
        }
    }
}

/// A Kafka source: one topic per stream, every partition of every topic owned by one
/// timely worker of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// Bootstrap servers, `host:port[,host:port...]` (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Payload encoding: `json` (one object per message) or `csv` (one headerless record
    /// in canonical column order per message).
    pub format: Format,
    /// Consumer group whose offsets are committed (default `diffmill`). Offsets are
    /// committed only for records whose effects reached every sink.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Prefix of the default topic names `<prefix>bids`, `<prefix>impressions`,
    /// `<prefix>clicks`, `<prefix>conversions` (default empty).
    #[serde(default)]
    pub topic_prefix: String,
    /// Topic of the bids (overrides the prefix).
    #[serde(default)]
    pub bids: Option<String>,
    /// Topic of the impressions (overrides the prefix).
    #[serde(default)]
    pub impressions: Option<String>,
    /// Topic of the clicks (overrides the prefix).
    #[serde(default)]
    pub clicks: Option<String>,
    /// Topic of the conversions (overrides the prefix).
    #[serde(default)]
    pub conversions: Option<String>,
    /// Where each partition starts: `earliest`, `latest`, `committed` (default) or
    /// `{ timestamp = <ms> }`.
    #[serde(default)]
    pub start: StartPosition,
    /// Read each partition up to its end offset as of the start, then finish (a bounded
    /// replay that completes every window). Default `false`: read forever.
    #[serde(default)]
    pub stop_at_end: bool,
    /// A partition that delivered nothing for this long (wall clock) stops holding the
    /// frontier back (default `30s`).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: DurationText,
    /// How long to wait at the start for the brokers to answer (default `30s`); while
    /// they do not, a warning says so every 5 s, and the run stops with an error naming
    /// them after this.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: DurationText,
    /// Any librdkafka consumer option, passed through untouched (security settings
    /// included), e.g. `"security.protocol" = "SASL_SSL"`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// A Kafka sink: aggregate diff rows and a progress record per batch, each batch in one
/// transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkSpec {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Topic of the aggregate rows and progress records.
    pub topic: String,
    /// Topic for dead letters (default: not written to Kafka).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Topic for too-late records (default: not written to Kafka).
    #[serde(default)]
    pub late_topic: Option<String>,
    /// The producer's `transactional.id` (default `diffmill-<topic>`). Two runs with the
    /// same id fence each other: the older one can no longer commit.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// How long to wait at the start for the brokers to answer (default `30s`), as for
    /// the source.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: DurationText,
    /// Any librdkafka producer option, passed through untouched.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_group() -> String {
    "diffmill".to_owned()
}

fn default_idle_timeout() -> DurationText {
    DurationText::from_millis(30_000)
}

/// How long a source, a sink or `gen --kafka` waits at the start for the brokers to
/// answer, unless a graph says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn default_connect_timeout() -> DurationText {
    DurationText::from_millis(DEFAULT_CONNECT_TIMEOUT.as_millis() as u64)
}

impl KafkaSourceSpec {
    /// A spec with defaults for everything but the brokers and the format.
    pub fn new(brokers: impl Into<String>, format: Format) -> KafkaSourceSpec {
        KafkaSourceSpec {
            brokers: brokers.into(),
            format,
            group_id: default_group(),
            topic_prefix: String::new(),
            bids: None,
            impressions: None,
            clicks: None,
            conversions: None,
            start: StartPosition::default(),
            stop_at_end: false,
            idle_timeout: default_idle_timeout(),
            connect_timeout: default_connect_timeout(),
            options: BTreeMap::new(),
        }
    }

    /// The topic of each stream, in stream order.
    pub fn topics(&self) -> Vec<(StreamKind, String)> {
        [
            (StreamKind::Bid, &self.bids),
            (StreamKind::Impression, &self.impressions),
            (StreamKind::Click, &self.clicks),
            (StreamKind::Conversion, &self.conversions),
        ]
        .into_iter()
        .map(|(kind, topic)| {
            let topic = topic
                .clone()
                .unwrap_or_else(|| default_topic(&self.topic_prefix, kind));
            (kind, topic)
        })
        .collect()
    }

    /// The consumer configuration: the defaults diffmill needs, then `options` on top.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            // Bounded prefetch: while the dataflow lags, the partition is not polled and
            // librdkafka stops fetching it once this much (or `queued.min.messages`) is
            // in its queue. Each partition has its own queue (split off the worker's
            // consumer), so the limit holds per partition: a partition that is not polled
            // is in effect paused, and does not starve the others (backpressure).
            .set("queued.max.messages.kbytes", "16384");
        with_options(config, &self.options)
    }

    /// Checks the values that can be checked without a broker (librdkafka rejects unknown
    /// options and bad values when a client is created, which does not connect); `Err((key, problem))`.
    ///
    /// # Errors
    /// The first key whose value cannot work.
    pub fn check(&self) -> Result<(), (String, String)> {
        check_brokers(&self.brokers)?;
        if self.group_id.trim().is_empty() {
            return Err(("group_id".into(), "empty".into()));
        }
        for (kind, topic) in self.topics() {
            if topic.trim().is_empty() {
                return Err((
                    kind_key(kind).into(),
                    "empty topic name (set it or topic_prefix)".into(),
                ));
            }
        }
        if self.idle_timeout.millis() == 0 {
            return Err(("idle_timeout".into(), "must be more than 0".into()));
        }
        check_connect_timeout(self.connect_timeout)?;
        check_client::<rdkafka::consumer::BaseConsumer>(&self.consumer_config())
    }
}

impl KafkaSinkSpec {
    /// A spec with defaults for everything but the brokers and the topic.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> KafkaSinkSpec {
        KafkaSinkSpec {
            brokers: brokers.into(),
            topic: topic.into(),
            dead_letter_topic: None,
            late_topic: None,
            transactional_id: None,
            connect_timeout: default_connect_timeout(),
            options: BTreeMap::new(),
        }
    }

    /// The transactional id of the producer.
    pub fn transactional_id(&self) -> String {
        self.transactional_id
            .clone()
            .unwrap_or_else(|| format!("diffmill-{}", self.topic))
    }

    /// The producer configuration: transactional, idempotent, then `options` on top.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("transactional.id", self.transactional_id())
            .set("enable.idempotence", "true");
        with_options(config, &self.options)
    }

    /// The configuration of the consumer that reads the sink's own topic back (to find
    /// its last committed progress record): committed transactions only, `options` on
    /// top (for security settings).
    pub fn reader_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}-resume", self.transactional_id()))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true");
        let options = self
            .options
            .iter()
            .filter(|(key, _)| !PRODUCER_ONLY.iter().any(|p| key.starts_with(p)));
        for (key, value) in options {
            config.set(key, value);
        }
        config
    }

    /// Checks the values that can be checked without a broker (librdkafka rejects unknown
    /// options and bad values when a client is created, which does not connect); `Err((key, problem))`.
    ///
    /// # Errors
    /// The first key whose value cannot work.
    pub fn check(&self) -> Result<(), (String, String)> {
        check_brokers(&self.brokers)?;
        if self.topic.trim().is_empty() {
            return Err(("topic".into(), "empty topic name".into()));
        }
        check_connect_timeout(self.connect_timeout)?;
        check_client::<rdkafka::producer::BaseProducer>(&self.producer_config())
    }
}

/// Prefixes of producer settings that a consumer refuses (the sink's options are given
/// to its producer; its reader takes the rest, such as security settings).
const PRODUCER_ONLY: [&str; 12] = [
    "acks",
    "request.required.acks",
    "compression",
    "linger.ms",
    "queue.buffering",
    "batch.",
    "message.send.max.retries",
    "retries",
    "transaction",
    "enable.idempotence",
    "delivery.",
    "partitioner",
];

/// `config` with every pass-through option of a spec set on top.
fn with_options(mut config: ClientConfig, options: &BTreeMap<String, String>) -> ClientConfig {
    for (key, value) in options {
        config.set(key, value);
    }
    config
}

/// Checks that the bootstrap servers are given.
fn check_brokers(brokers: &str) -> Result<(), (String, String)> {
    if brokers.trim().is_empty() {
        return Err(("brokers".into(), "empty: give host:port".into()));
    }
    Ok(())
}

/// Checks that the brokers get some time to answer.
fn check_connect_timeout(timeout: DurationText) -> Result<(), (String, String)> {
    if timeout.millis() == 0 {
        return Err(("connect_timeout".into(), "must be more than 0".into()));
    }
    Ok(())
}

/// Creates (without connecting) a client of `config`: librdkafka rejects unknown options
/// and bad values here.
fn check_client<C: FromClientConfig>(config: &ClientConfig) -> Result<(), (String, String)> {
    match config.create::<C>() {
        Ok(_) => Ok(()),
        Err(error) => Err(("options".into(), error.to_string())),
    }
}

/// The default topic of a stream: `<prefix>bids`, `<prefix>impressions`, ...
pub fn default_topic(prefix: &str, kind: StreamKind) -> String {
    format!("{prefix}{}", kind_key(kind))
}

/// The graph key (and default topic suffix) of a stream.
pub fn kind_key(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Bid => "bids",
        StreamKind::Impression => "impressions",
        StreamKind::Click => "clicks",
        StreamKind::Conversion => "conversions",
    }
}
