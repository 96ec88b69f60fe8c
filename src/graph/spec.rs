//! The graph file format: typed serde structs mirroring `graphs/*.toml`.
//!
//! Each field's doc comment is the user documentation of the key. Unknown keys are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::connectors::generator::GeneratorConfig;
use crate::connectors::kafka::{KafkaSinkSpec, KafkaSourceSpec};
use crate::connectors::parquet::ParquetSinkSpec;
use crate::connectors::FileFormat;
use crate::declare::{
    AggregateSpec, Declaration, DimensionSpec, DurationText, FunnelSpec, MeasureSpec, StreamSpec,
};
use crate::event::StreamKind;
use crate::observe::ListenAddress;

/// A graph: where records come from, what the funnel computes, where batches go.
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
    /// Declared streams (`[stream.bid]`, ...): their fields and types. A stream not
    /// declared has today's fields.
    #[serde(default)]
    pub stream: BTreeMap<StreamKind, StreamSpec>,
    /// Bounds on the distinct values of dimensions (`[dimensions.<bid field>]`).
    #[serde(default)]
    pub dimensions: BTreeMap<String, DimensionSpec>,
    /// The aggregates (`[[aggregate]]` tables), each with its own sinks; none: one
    /// aggregate of the `[funnel]` window and group_by with today's six measures.
    #[serde(default, rename = "aggregate")]
    pub aggregates: Vec<AggregateTable>,
    /// The outputs of the single aggregate of a graph without `[[aggregate]]` tables;
    /// every sink receives every batch.
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

/// An `[[aggregate]]` table: an aggregate's declaration and its sinks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateTable {
    /// The aggregate's name, for messages and for its folder under `run --output`.
    pub name: String,
    /// Tumbling window length, aligned to the epoch (e.g. `1h`).
    pub window: DurationText,
    /// How long after its end a window takes corrections (default: `[funnel]`
    /// `allowed_lateness`).
    #[serde(default)]
    pub allowed_lateness: Option<DurationText>,
    /// Bid fields to group by (columns in the bid's field order).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The measures (`[[aggregate.measure]]`), in column order.
    #[serde(default)]
    pub measure: Vec<MeasureSpec>,
    /// The aggregate's outputs (`[[aggregate.sink]]`).
    #[serde(default)]
    pub sink: Vec<SinkSpec>,
}

impl GraphSpec {
    /// What the graph declares it computes.
    pub fn declaration(&self) -> Declaration {
        Declaration {
            funnel: self.funnel.clone(),
            streams: self.stream.clone(),
            dimensions: self.dimensions.clone(),
            aggregates: self
                .aggregates
                .iter()
                .map(|table| AggregateSpec {
                    name: table.name.clone(),
                    window: table.window,
                    allowed_lateness: table.allowed_lateness,
                    group_by: table.group_by.clone(),
                    measures: table.measure.clone(),
                })
                .collect(),
        }
    }

    /// The sinks of each aggregate, in declaration order, with the key path of their
    /// array (`sink` or `aggregate[i].sink`).
    pub fn aggregate_sinks(&self) -> Vec<(String, &[SinkSpec])> {
        if self.aggregates.is_empty() {
            return vec![("sink".to_owned(), &self.sinks)];
        }
        self.aggregates
            .iter()
            .enumerate()
            .map(|(i, table)| (format!("aggregate[{i}].sink"), table.sink.as_slice()))
            .collect()
    }

    /// Every sink of the graph, with its key path.
    pub fn all_sinks(&self) -> Vec<(String, &SinkSpec)> {
        self.aggregate_sinks()
            .into_iter()
            .flat_map(|(key, sinks)| {
                sinks
                    .iter()
                    .enumerate()
                    .map(move |(i, sink)| (format!("{key}[{i}]"), sink))
            })
            .collect()
    }

    /// Every sink of the graph, to change (e.g. `run --output`).
    pub fn sinks_mut(&mut self) -> Vec<&mut SinkSpec> {
        let mut all: Vec<&mut SinkSpec> = self.sinks.iter_mut().collect();
        for table in &mut self.aggregates {
            all.extend(table.sink.iter_mut());
        }
        all
    }
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
