//! The graph file format: typed serde structs mirroring `graphs/*.toml`.
//!
//! Each field's doc comment is the user documentation of the key. Unknown keys are errors.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::DurationText;
use crate::connectors::generator::GeneratorConfig;
use crate::connectors::kafka::{KafkaSinkSpec, KafkaSourceSpec};
use crate::connectors::parquet::ParquetSinkSpec;
use crate::connectors::FileFormat;
use crate::dataflow::{Dim, FunnelSettings, GroupBy, Lateness};
use crate::observe::ListenAddress;

/// A graph: where events come from, what the funnel computes, where batches go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSpec {
    /// The graph's name, used in messages.
    pub name: String,
    /// A sentence saying what the graph is for.
    #[serde(default)]
    pub description: String,
    /// The input.
    pub source: SourceSpec,
    /// The funnel's settings; every key has a default.
    #[serde(default)]
    pub funnel: FunnelSpec,
    /// The outputs (`[[sink]]` tables); every sink receives every batch.
    #[serde(default, rename = "sink")]
    pub sinks: Vec<SinkSpec>,
    /// Metrics, health and the dashboard (`[observe]`); off unless an address is given.
    #[serde(default)]
    pub observe: ObserveSpec,
    /// Where the run keeps checkpoints (`[state]`); without it a restarted run starts
    /// from the beginning.
    #[serde(default)]
    pub state: Option<StateSpec>,
}

/// The `[observe]` table: serve the run's metrics, health and dashboard over HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveSpec {
    /// Where to serve `/metrics`, `/health`, `/ready` and the dashboard, e.g.
    /// `"127.0.0.1:9184"`; a port alone listens on loopback. `--metrics-addr` replaces
    /// it. Unset (the default): nothing is served.
    #[serde(default)]
    pub metrics_addr: Option<ListenAddress>,
    /// How long to keep serving after the run ends, e.g. `"10m"` (Ctrl-C ends it
    /// sooner). `--linger` replaces it. Unset: until Ctrl-C when stderr is a terminal,
    /// otherwise not at all.
    #[serde(default)]
    pub linger: Option<DurationText>,
}

/// The `[state]` table: checkpoints of the run's state, for exact restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// The state folder, relative to the working directory (created if missing). A run
    /// whose folder holds a checkpoint resumes from it.
    pub dir: PathBuf,
    /// Least wall-clock time between two checkpoints (default `30s`).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: DurationText,
    /// Checkpoint files kept, newest first (default 2, at least 2: a damaged newest file
    /// leaves an older one to fall back to).
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_checkpoint_interval() -> DurationText {
    DurationText::from_millis(30_000)
}

fn default_keep() -> usize {
    2
}

/// Where events come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    /// The built-in deterministic generator.
    Generator(GeneratorConfig),
    /// CSV, JSON-lines or Parquet files, one set per stream.
    Files(FilesSpec),
    /// Kafka topics, one per stream (see [`KafkaSourceSpec`]).
    Kafka(KafkaSourceSpec),
}

/// Files to replay: one folder holding `bid*`, `impression*`, `click*`, `conversion*`
/// files, or one glob per stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSpec {
    /// Encoding of the files: `csv` (with a header), `json` (JSON lines) or `parquet`
    /// (a column per field, found by name).
    pub format: FileFormat,
    /// Folder holding the files, relative to the working directory. Each stream's files
    /// are `<path>/<stream>*.<csv|jsonl|parquet>` unless a glob for the stream is given.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Glob of the bid files (overrides `path`).
    #[serde(default)]
    pub bids: Option<String>,
    /// Glob of the impression files (overrides `path`).
    #[serde(default)]
    pub impressions: Option<String>,
    /// Glob of the click files (overrides `path`).
    #[serde(default)]
    pub clicks: Option<String>,
    /// Glob of the conversion files (overrides `path`).
    #[serde(default)]
    pub conversions: Option<String>,
}

/// The funnel's settings as written in a graph file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunnelSpec {
    /// Tumbling window length, aligned to the epoch (default `15m`).
    pub window: DurationText,
    /// Bid dimensions to group by: any of `campaign_id`, `ad_id`, `publisher_id`,
    /// `region`, `device` (default `["campaign_id", "region"]`).
    pub group_by: Vec<Dim>,
    /// A partition's watermark is `max ts seen − max_disorder` (default `5s`).
    pub max_disorder: DurationText,
    /// A record more than this ahead of its partition's watermark is dead-lettered, so
    /// it cannot drag the watermark forward (default `24h`).
    pub max_future_skew: DurationText,
    /// How long after its end a window takes corrections before it is final
    /// (default `1h`).
    pub allowed_lateness: DurationText,
    /// Match bound of bids: impressions and clicks up to this much later than their bid
    /// are attributed to it; bid state is kept accordingly (default `36h`).
    pub bid_retention: DurationText,
    /// Match bound of clicks: conversions up to this much later than their click are
    /// attributed to it (default `36h`).
    pub click_retention: DurationText,
    /// Least wall-clock time between two batches (default `1s`; `0ms` = every frontier
    /// move).
    pub emit_interval: DurationText,
}

impl Default for FunnelSpec {
    fn default() -> Self {
        FunnelSpec::from(&FunnelSettings::default())
    }
}

impl From<&FunnelSettings> for FunnelSpec {
    fn from(settings: &FunnelSettings) -> Self {
        let l = settings.lateness;
        FunnelSpec {
            window: DurationText::from_millis(l.window),
            group_by: settings.group_by.dims().to_vec(),
            max_disorder: DurationText::from_millis(settings.max_disorder),
            max_future_skew: DurationText::from_millis(settings.max_future_skew),
            allowed_lateness: DurationText::from_millis(l.allowed_lateness),
            bid_retention: DurationText::from_millis(l.bid_bound),
            click_retention: DurationText::from_millis(l.click_bound),
            emit_interval: DurationText::from_millis(settings.emit_interval.as_millis() as u64),
        }
    }
}

impl FunnelSpec {
    /// The settings this spec describes.
    pub fn settings(&self) -> FunnelSettings {
        FunnelSettings {
            lateness: Lateness {
                window: self.window.millis(),
                allowed_lateness: self.allowed_lateness.millis(),
                bid_bound: self.bid_retention.millis(),
                click_bound: self.click_retention.millis(),
            },
            group_by: GroupBy::new(self.group_by.iter().copied()),
            max_disorder: self.max_disorder.millis(),
            max_future_skew: self.max_future_skew.millis(),
            emit_interval: self.emit_interval.to_std(),
        }
    }
}

/// Where batches go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkSpec {
    /// A folder of CSV files: the aggregate change log, dead letters, late records.
    Csv(CsvSinkSpec),
    /// A human-readable preview on standard output.
    Stdout(StdoutSinkSpec),
    /// A PostgreSQL table of aggregate totals, one transaction per batch.
    Postgres(crate::connectors::PostgresConfig),
    /// A Kafka topic, one transaction per batch (see [`KafkaSinkSpec`]).
    Kafka(KafkaSinkSpec),
    /// Parquet tables in Hive-style partitions (see [`ParquetSinkSpec`]).
    Parquet(ParquetSinkSpec),
}

/// The CSV sink's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSinkSpec {
    /// Folder for `aggregates.csv`, `dead_letters.csv` and `late.csv` (created if
    /// missing; existing files are replaced at start).
    pub path: PathBuf,
}

/// The stdout sink's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkSpec {
    /// Most rows printed per batch; the rest are counted (default 10).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
}

fn default_max_rows() -> usize {
    10
}
