//! Resolving a graph spec into a runnable plan: the funnel builder, its source and sinks.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{GraphError, GraphSpec, SinkSpec, SourceSpec};
use crate::connectors::generator::Generator;
use crate::connectors::kafka::{KafkaSink, KafkaSource};
use crate::connectors::parquet::check_event_file;
use crate::connectors::{
    CsvSink, FileFormat, FileSource, OnClosed, ParquetSink, PostgresSink, Sink, SinkError, Source,
    StdoutSink,
};
use crate::declare::{Aggregate, DurationText, FunnelSettings};
use crate::event::StreamKind;
use crate::format::Format;
use crate::runtime::checkpoint::StateConfig;
use crate::runtime::Funnel;

/// A validated graph, its source resolved (files found), ready to build a [`Funnel`].
pub struct Plan {
    /// The graph as written.
    pub spec: GraphSpec,
    /// The funnel settings it resolves to.
    pub settings: FunnelSettings,
    source: Arc<dyn Source>,
    source_description: String,
    /// For a files source: total bytes and a counter of bytes read, for a progress bar.
    pub file_progress: Option<(u64, Arc<std::sync::atomic::AtomicU64>)>,
    fresh: bool,
}

/// Changes the command line makes to a graph.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replaces the files source's `path` (and drops its per-stream globs).
    pub input: Option<PathBuf>,
    /// Replaces the folder of every CSV sink (with several aggregates: a folder per
    /// aggregate, named after it, inside this one).
    pub output: Option<PathBuf>,
    /// Replaces the generator source's number of bids.
    pub bids: Option<u64>,
    /// Starts from the beginning whatever the state folder holds.
    pub fresh: bool,
    /// Replaces the state folder (or gives the graph one).
    pub state: Option<PathBuf>,
}

impl GraphSpec {
    /// Resolves the graph: applies `overrides`, finds the source's files.
    ///
    /// # Errors
    /// A [`GraphError`] naming the key whose value cannot be used (e.g. `source.bids`
    /// when its pattern matches no file).
    pub fn plan(mut self, file: &Path, overrides: &Overrides) -> Result<Plan, GraphError> {
        if let Some(output) = &overrides.output {
            if self.aggregates.is_empty() {
                for sink in &mut self.sinks {
                    if let SinkSpec::Csv(csv) = sink {
                        csv.path = output.clone();
                    }
                }
            }
            for table in &mut self.aggregates {
                for sink in &mut table.sink {
                    if let SinkSpec::Csv(csv) = sink {
                        csv.path = output.join(&table.name);
                    }
                }
            }
        }
        if let Some(dir) = &overrides.state {
            match &mut self.state {
                Some(state) => state.dir = dir.clone(),
                None => {
                    self.state = Some(super::StateSpec {
                        dir: dir.clone(),
                        checkpoint_interval: DurationText::from_millis(30_000),
                        keep: 2,
                    })
                }
            }
        }
        for (key, sink) in self.all_sinks() {
            if let SinkSpec::Postgres(postgres) = sink {
                postgres
                    .resolve_url()
                    .map_err(|p| GraphError::at_key(file, format!("{key}.{}", p.key), p.problem))?;
            }
        }
        let settings = self
            .declaration()
            .resolve()
            .map_err(|e| GraphError::at_key(file, e.key(), e.problem))?;
        let mut file_progress = None;
        let (source, source_description): (Arc<dyn Source>, String) = match &mut self.source {
            SourceSpec::Generator(config) => {
                if let Some(bids) = overrides.bids {
                    config.bids = bids;
                }
                let description = config.describe().join("\n            ");
                let generator = Generator::new(config.clone(), &settings).map_err(|e| {
                    GraphError::at_key(file, format!("source.{}", e.setting), e.problem)
                })?;
                (Arc::new(generator), description)
            }
            SourceSpec::Files(files) => {
                if let Some(input) = &overrides.input {
                    files.path = Some(input.clone());
                    files.bids = None;
                    files.impressions = None;
                    files.clicks = None;
                    files.conversions = None;
                }
                let mut patterns = Vec::new();
                for (kind, key, glob) in [
                    (StreamKind::Bid, "bids", &files.bids),
                    (StreamKind::Impression, "impressions", &files.impressions),
                    (StreamKind::Click, "clicks", &files.clicks),
                    (StreamKind::Conversion, "conversions", &files.conversions),
                ] {
                    let pattern = match (glob, &files.path) {
                        (Some(glob), _) => (glob.clone(), format!("source.{key}")),
                        (None, Some(path)) => (
                            FileSource::folder_pattern(path, files.format, kind),
                            if overrides.input.is_some() {
                                "source.path (set by --input)".to_owned()
                            } else {
                                "source.path".to_owned()
                            },
                        ),
                        (None, None) => {
                            return Err(GraphError::at_key(
                                file,
                                format!("source.{key}"),
                                "no files: give `path` (a folder) or a glob for this stream",
                            ))
                        }
                    };
                    patterns.push((kind, pattern));
                }
                let mut resolved = Vec::new();
                let schema = Arc::clone(&settings.schema);
                for (kind, (pattern, key)) in patterns {
                    FileSource::from_globs(
                        files.format,
                        Arc::clone(&schema),
                        &[(kind, pattern.clone())],
                    )
                    .map_err(|e| GraphError::at_key(file, key, e.to_string()))?;
                    resolved.push((kind, pattern));
                }
                let source = FileSource::from_globs(files.format, schema, &resolved)
                    .map_err(|e| GraphError::at_key(file, "source", e.to_string()))?;
                if files.format == FileFormat::Parquet {
                    for (kind, path) in source.files() {
                        check_event_file(path, settings.schema.stream(*kind))
                            .map_err(|problem| GraphError::at_key(file, "source", problem))?;
                    }
                }
                let mut description = format!("files ({})", files.format.name());
                for (kind, path) in source.files() {
                    let _ = write!(
                        description,
                        "\n      {:<10} {}",
                        kind.name(),
                        path.display()
                    );
                }
                file_progress = Some((source.total_bytes(), source.bytes_read()));
                (Arc::new(source), description)
            }
            SourceSpec::Kafka(kafka) => {
                kafka.check().map_err(|(key, problem)| {
                    GraphError::at_key(file, format!("source.{key}"), problem)
                })?;
                let topics: Vec<String> = kafka.topics().into_iter().map(|(_, t)| t).collect();
                let description = format!(
                    "kafka {} ({}) topics [{}], group `{}`, start {}{}",
                    kafka.brokers,
                    format_name(kafka.format),
                    topics.join(", "),
                    kafka.group_id,
                    kafka.start,
                    if kafka.stop_at_end {
                        ", up to the end offsets at start"
                    } else {
                        ""
                    },
                );
                let schema = Arc::clone(&settings.schema);
                (
                    Arc::new(KafkaSource::new(kafka.clone(), schema)),
                    description,
                )
            }
        };
        for (path, sink) in self.all_sinks() {
            let checked = match sink {
                SinkSpec::Kafka(kafka) => kafka.check(),
                SinkSpec::Parquet(parquet) => parquet.check().map_err(|(k, p)| (k.to_owned(), p)),
                _ => Ok(()),
            };
            checked.map_err(|(key, problem)| {
                GraphError::at_key(file, format!("{path}.{key}"), problem)
            })?;
        }
        Ok(Plan {
            spec: self,
            settings,
            source,
            source_description,
            file_progress,
            fresh: overrides.fresh,
        })
    }
}

impl Plan {
    /// True for a live source, whose event time follows the wall clock: a Kafka source
    /// read until stopped. Files, the generator and a Kafka read up to its end offsets
    /// are replays.
    pub fn is_live(&self) -> bool {
        matches!(&self.spec.source, SourceSpec::Kafka(kafka) if !kafka.stop_at_end)
    }

    /// The resolved plan as text: sources, operators, aggregates, lateness, retention,
    /// sinks.
    pub fn describe(&self) -> String {
        let s = &self.settings;
        let l = s.lateness;
        let d = |ms: u64| DurationText::from_millis(ms).to_string();
        let mut text = format!("graph `{}`", self.spec.name);
        if !self.spec.description.is_empty() {
            let _ = write!(text, ": {}", self.spec.description);
        }
        let _ = write!(
            text,
            "\n  source    {}\n  streams   {}\n  operators ingest (per-partition watermark = max ts − {}) → dedup by id per stream\n            \
             → impression ⋈ bid, click ⋈ bid (match bound {}) → conversion ⋈ click (match bound {})\n            \
             → the aggregates below → batches every ≥ {}, the frontier moving in ticks of {}",
            self.source_description,
            streams(s),
            d(s.max_disorder),
            d(l.bid_bound),
            d(l.click_bound),
            d(s.emit_interval.as_millis() as u64),
            d(s.tick.step()),
        );
        let sinks = self.spec.aggregate_sinks();
        for (aggregate, (_, specs)) in s.aggregates.iter().zip(sinks) {
            let w = aggregate.window;
            let _ = write!(
                text,
                "\n  aggregate `{}`: tumbling windows of {} by [{}] measuring {}\n    \
                 lateness: a window [s, e) is closed at e, takes corrections until e + {}, final at e + {}",
                aggregate.name,
                d(w.length),
                aggregate.dims.names().join(", "),
                measures(s, aggregate),
                d(w.allowed_lateness),
                d(w.allowed_lateness),
            );
            text.push_str("\n    sinks");
            if specs.is_empty() {
                text.push_str("  (none: results are computed and discarded)");
            }
            for sink in specs {
                describe_sink(&mut text, sink);
            }
        }
        let _ = write!(
            text,
            "\n  retention a record is kept until every window of every aggregate it can reach is final: \
             bids until final_at(ts + {} + {}), clicks until final_at(ts + {}), impressions and \
             conversions until final_at(ts)",
            d(l.bid_bound),
            d(l.click_bound),
            d(l.click_bound),
        );
        let _ = match &self.spec.state {
            Some(state) => write!(
                text,
                "\n  state     {}: a checkpoint every {}, the newest {} kept; a run resumes \
                 from the last one",
                state.dir.display(),
                state.checkpoint_interval,
                state.keep
            ),
            None => write!(
                text,
                "\n  state     none: a restarted run starts from the beginning"
            ),
        };
        if let Some(address) = self.spec.observe.metrics_addr {
            let _ = write!(
                text,
                "\n  observe   http://{address}/metrics, /health, /ready and the dashboard at /"
            );
        }
        text
    }

    /// The funnel with its source and settings but no sinks: what processes other than
    /// process 0 of a cluster run (only process 0 writes the sinks).
    pub fn funnel_without_sinks(&self) -> Funnel {
        let funnel = Funnel::new(self.settings.clone())
            .named(self.spec.name.clone())
            .shared_source(Arc::clone(&self.source))
            .fresh(self.fresh);
        match &self.spec.state {
            Some(state) => funnel.state(StateConfig {
                dir: state.dir.clone(),
                interval: state.checkpoint_interval.to_std(),
                keep: state.keep,
            }),
            None => funnel,
        }
    }

    /// Opens the sinks and returns the funnel, ready to run.
    ///
    /// # Errors
    /// A [`SinkError`] when a sink cannot be opened.
    pub fn funnel(&self) -> Result<Funnel, SinkError> {
        let mut funnel = self.funnel_without_sinks();
        let aggregates = Arc::clone(&self.settings.aggregates);
        // Alone, the preview is the run's only output: a closed pipe ends it.
        let on_closed = match self.spec.all_sinks().len() {
            1 => OnClosed::Stop,
            _ => OnClosed::Detach,
        };
        for (index, (aggregate, (_, specs))) in aggregates
            .iter()
            .zip(self.spec.aggregate_sinks())
            .enumerate()
        {
            for spec in specs {
                funnel = funnel.aggregate_sink(index, open_sink(spec, aggregate, on_closed)?);
            }
        }
        Ok(funnel)
    }
}

/// Opens the sink `spec` for the rows of `aggregate` (a stdout preview doing `on_closed`
/// when its reader goes away).
fn open_sink(
    spec: &SinkSpec,
    aggregate: &Aggregate,
    on_closed: OnClosed,
) -> Result<Box<dyn Sink>, SinkError> {
    Ok(match spec {
        SinkSpec::Csv(csv) => Box::new(CsvSink::create(&csv.path, aggregate)?),
        SinkSpec::Stdout(out) => {
            Box::new(StdoutSink::new(aggregate, out.max_rows).on_closed(on_closed))
        }
        SinkSpec::Postgres(postgres) => Box::new(PostgresSink::open(postgres, aggregate)?),
        SinkSpec::Kafka(kafka) => Box::new(KafkaSink::create(kafka, aggregate)?),
        SinkSpec::Parquet(parquet) => Box::new(ParquetSink::open(parquet, aggregate)?),
    })
}

/// The declared streams, one line: each stream's fields and types.
fn streams(settings: &FunnelSettings) -> String {
    StreamKind::ALL
        .iter()
        .map(|&kind| {
            let fields: Vec<String> = settings
                .schema
                .stream(kind)
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name, f.ty))
                .collect();
            format!("{kind}({})", fields.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n            ")
}

/// An aggregate's measures, e.g. `orders = count(conversion) where type = 'order'`.
fn measures(settings: &FunnelSettings, aggregate: &Aggregate) -> String {
    use crate::declare::MeasureKind;
    aggregate
        .measures
        .iter()
        .map(|m| {
            let fields = settings.schema.stream(m.stream).fields();
            let schema_field = |field: usize| format!("{}.{}", m.stream, fields[field].name);
            let what = match m.kind {
                MeasureKind::Count => format!("count({})", m.stream),
                MeasureKind::Sum { field } => format!("sum({})", schema_field(field)),
                MeasureKind::CountDistinct { field } => {
                    format!("count(distinct {})", schema_field(field))
                }
            };
            match &m.filter {
                Some(filter) => format!("{} = {what} where {filter}", m.name),
                None => format!("{} = {what}", m.name),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line describing a sink.
fn describe_sink(text: &mut String, sink: &SinkSpec) {
    match sink {
        SinkSpec::Csv(csv) => {
            let _ = write!(
                text,
                "\n      csv     {}/{{aggregates,dead_letters,late}}.csv",
                csv.path.display()
            );
        }
        SinkSpec::Kafka(kafka) => {
            let _ = write!(
                text,
                "\n      kafka   {} topic `{}` (one transaction per batch)",
                kafka.brokers, kafka.topic
            );
        }
        SinkSpec::Parquet(parquet) => {
            let _ = write!(
                text,
                "\n      parquet {}/{{aggregates,dead_letters,too_late}} ({} mode, zstd, row groups \
                 of at most {} rows, progress in {}/_diffmill_progress.json)",
                parquet.path.display(),
                parquet.mode.name(),
                parquet.row_group_size,
                parquet.path.display()
            );
        }
        SinkSpec::Stdout(out) => {
            let _ = write!(
                text,
                "\n      stdout  preview, at most {} rows per batch",
                out.max_rows
            );
        }
        SinkSpec::Postgres(postgres) => {
            let _ = write!(
                text,
                "\n      postgres {}.{} (progress in {}.{} as `{}`{})",
                postgres.schema,
                postgres.table,
                postgres.schema,
                postgres.progress_table,
                postgres.sink_name(),
                postgres
                    .change_log_table
                    .as_ref()
                    .map(|c| format!(", change log {}.{c}", postgres.schema))
                    .unwrap_or_default()
            );
        }
    }
}

/// A payload format as graph files write it.
fn format_name(format: Format) -> &'static str {
    match format {
        Format::Csv => "csv",
        Format::Json => "json",
    }
}
