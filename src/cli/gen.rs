//! `diffmill gen`: write generated events to files, one file per stream and partition.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::CliError;
use crate::connectors::generator::{Generated, Generator, GeneratorConfig};
use crate::connectors::kafka;
use crate::connectors::parquet::EventFileWriter;
use crate::connectors::FileFormat;
use crate::declare::{DurationText, FunnelSettings};
use crate::event::StreamKind;
use crate::format::{csv_line, json_object, Format};
use crate::graph::{GraphSpec, SourceSpec};

/// Arguments of `diffmill gen`. Settings not given take the graph's generator settings
/// (with `--graph`), else the defaults.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Folder to write `<stream>-<partition>.<csv|jsonl|parquet>` files into (created if
    /// missing).
    #[arg(long, required_unless_present = "kafka")]
    pub out: Option<PathBuf>,
    /// Produce into Kafka at these brokers (`host:port[,...]`) instead of writing files:
    /// topics `<prefix>bids`, `<prefix>impressions`, `<prefix>clicks`,
    /// `<prefix>conversions` (created with `--kafka-partitions` partitions if missing),
    /// generator partition `p` into Kafka partition `p % partitions`, message
    /// timestamp = event time.
    #[arg(long, conflicts_with = "out")]
    pub kafka: Option<String>,
    /// Prefix of the topic names (with `--kafka`).
    #[arg(long, default_value = "", requires = "kafka")]
    pub topic_prefix: String,
    /// Partitions per topic when creating the topics (with `--kafka`).
    #[arg(long, default_value_t = 4, requires = "kafka")]
    pub kafka_partitions: i32,
    /// Messages per second to produce (with `--kafka`; default: as fast as possible).
    #[arg(long, requires = "kafka")]
    pub produce_rate: Option<u64>,
    /// A librdkafka producer option `key=value`, passed through untouched (repeatable),
    /// e.g. `--kafka-option security.protocol=SASL_SSL`.
    #[arg(long, requires = "kafka")]
    pub kafka_option: Vec<String>,
    /// File format (Kafka messages: csv or json).
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    pub format: FormatArg,
    /// A graph whose generator and funnel settings to start from (its funnel settings
    /// place the late and too-late records).
    #[arg(long)]
    pub graph: Option<PathBuf>,
    /// Seed: the same seed and settings write the same files [default: 1, or the graph's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of bids; children and perturbations come on top [default: 1000000, or the
    /// graph's].
    #[arg(long)]
    pub bids: Option<u64>,
    /// Span of event time to cover, e.g. `6h` (sets the number of bids from the rate).
    #[arg(long, conflicts_with = "bids")]
    pub duration: Option<DurationText>,
    /// Bids per second of event time [default: 1000, or the graph's].
    #[arg(long)]
    pub rate: Option<u64>,
    /// Event time of the first bid, ms since the epoch [default: 1704067200000
    /// (2024-01-01T00:00Z), or the graph's].
    #[arg(long)]
    pub start_ms: Option<u64>,
    /// Number of partitions, one file per stream each [default: 4, or the graph's].
    #[arg(long)]
    pub partitions: Option<usize>,
    /// Max disorder the late placement assumes [default: 5s, or the graph's].
    #[arg(long)]
    pub max_disorder: Option<DurationText>,
    /// Fraction of records out of order within the max disorder [default: 0.05, or the
    /// graph's].
    #[arg(long)]
    pub disorder: Option<f64>,
    /// Fraction of records late but still applied [default: 0.001, or the graph's].
    #[arg(long)]
    pub late: Option<f64>,
    /// Fraction of records too late: they go to the late output [default: 0.0002, or the
    /// graph's].
    #[arg(long)]
    pub too_late: Option<f64>,
    /// Fraction of records sent twice identically [default: 0.002, or the graph's].
    #[arg(long)]
    pub duplicate: Option<f64>,
    /// Fraction of records sent again with a different payload [default: 0.0005, or the
    /// graph's].
    #[arg(long)]
    pub conflicting: Option<f64>,
    /// Fraction of parents never sent, so their children are orphans [default: 0.001, or
    /// the graph's].
    #[arg(long)]
    pub orphan: Option<f64>,
    /// Fraction of records followed by a malformed line [default: 0.0005, or the graph's].
    #[arg(long)]
    pub malformed: Option<f64>,
}

/// The file formats `gen` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// CSV with a header.
    Csv,
    /// JSON lines.
    Json,
    /// Parquet, a column per field (files only).
    Parquet,
}

impl From<FormatArg> for FileFormat {
    fn from(format: FormatArg) -> FileFormat {
        match format {
            FormatArg::Csv => FileFormat::Csv,
            FormatArg::Json => FileFormat::Json,
            FormatArg::Parquet => FileFormat::Parquet,
        }
    }
}

/// Writes the files and prints what was written to stderr.
///
/// # Errors
/// [`CliError::Config`] for bad settings, [`CliError::Runtime`] for I/O failures.
pub fn gen(args: &GenArgs) -> Result<(), CliError> {
    let (mut config, mut settings) = match &args.graph {
        Some(graph) => {
            let spec = GraphSpec::load(graph)?;
            let settings = spec
                .declaration()
                .resolve()
                .map_err(|e| CliError::Config(format!("{}: {e}", graph.display())))?;
            let config = match spec.source {
                SourceSpec::Generator(config) => config,
                SourceSpec::Files(_) | SourceSpec::Kafka(_) => GeneratorConfig::default(),
            };
            (config, settings)
        }
        None => (GeneratorConfig::default(), FunnelSettings::default()),
    };
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(value) = args.$field { config.$field = value; } )* };
    }
    set!(
        seed,
        bids,
        rate,
        start_ms,
        partitions,
        disorder,
        late,
        too_late,
        duplicate,
        conflicting,
        orphan,
        malformed
    );
    if let Some(duration) = args.duration {
        config.bids = duration.millis().saturating_mul(config.rate) / 1000;
    }
    if let Some(disorder) = args.max_disorder {
        settings.max_disorder = disorder.millis();
    }
    let generator =
        Generator::new(config, &settings).map_err(|e| CliError::Config(format!("gen: {e}")))?;
    let format = FileFormat::from(args.format);
    if let Some(brokers) = &args.kafka {
        let Some(format) = format.lines() else {
            return Err(CliError::Config(
                "gen: --format parquet writes files; Kafka messages are csv or json".into(),
            ));
        };
        return produce_to_kafka(args, brokers, &generator, format);
    }
    let Some(out) = &args.out else {
        return Err(CliError::Config("gen: give --out or --kafka".into()));
    };
    let written = write_files(&generator, out, format)
        .map_err(|e| CliError::Runtime(format!("gen: writing {}: {e}", out.display())))?;
    let total: u64 = written.iter().sum();
    eprintln!(
        "wrote {total} records ({}) to {}/<stream>-<partition>.{}",
        per_stream(&written),
        out.display(),
        format.extension()
    );
    Ok(())
}

fn produce_to_kafka(
    args: &GenArgs,
    brokers: &str,
    generator: &Generator,
    format: Format,
) -> Result<(), CliError> {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for option in &args.kafka_option {
        let Some((key, value)) = option.split_once('=') else {
            return Err(CliError::Config(format!(
                "gen: --kafka-option `{option}`: expected key=value"
            )));
        };
        config.set(key.trim(), value.trim());
    }
    let topics = kafka::topics_for(&args.topic_prefix);
    kafka::create_topics(&config, &topics, args.kafka_partitions).map_err(|e| {
        CliError::Runtime(format!("gen: creating topics {}: {e}", topics.join(", ")))
    })?;
    let produced = kafka::produce(
        generator,
        &config,
        &topics,
        args.kafka_partitions,
        format,
        args.produce_rate,
    )
    .map_err(|e| CliError::Runtime(format!("gen: producing to {brokers}: {e}")))?;
    eprintln!(
        "produced {} messages ({}; {} malformed) to {brokers} topics {}",
        produced.total(),
        per_stream(&produced.messages),
        produced.malformed,
        topics.join(", ")
    );
    Ok(())
}

/// Counts in [`StreamKind::ALL`] order as `bid N, impression N, click N, conversion N`.
fn per_stream(counts: &[u64; 4]) -> String {
    StreamKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.name(), counts[k.index()]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes every partition of `generator` into `out`; returns the records written per
/// stream.
///
/// # Errors
/// An I/O error creating or writing a file.
pub fn write_files(
    generator: &Generator,
    out: &Path,
    format: FileFormat,
) -> std::io::Result<[u64; 4]> {
    std::fs::create_dir_all(out)?;
    let Some(format) = format.lines() else {
        return write_parquet_files(generator, out);
    };
    let mut written = [0u64; 4];
    for p in 0..generator.partition_count() {
        let mut files = Vec::new();
        for kind in StreamKind::ALL {
            let path = out.join(format!("{}-{p}.{}", kind.name(), format.extension()));
            let mut file = BufWriter::with_capacity(1 << 20, File::create(path)?);
            if format == Format::Csv {
                let names: Vec<&str> = generator
                    .schema()
                    .stream(kind)
                    .fields()
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect();
                writeln!(file, "{}", names.join(","))?;
            }
            files.push(file);
        }
        for item in generator.partition(p) {
            let stream = item.stream();
            let file = &mut files[stream.index()];
            match &item {
                Generated::Event(event) => {
                    let record = generator.record(event);
                    let schema = generator.schema().stream(stream);
                    match format {
                        Format::Csv => writeln!(file, "{}", csv_line(schema, &record))?,
                        Format::Json => writeln!(file, "{}", json_object(schema, &record))?,
                    }
                }
                Generated::Malformed { line, .. } => writeln!(file, "{line}")?,
            }
            written[stream.index()] += 1;
        }
        for mut file in files {
            file.flush()?;
        }
    }
    Ok(written)
}

/// Writes every partition of `generator` into `out` as Parquet event files; malformed
/// records become rows whose bad values are null (see [`EventFileWriter::malformed`]).
fn write_parquet_files(generator: &Generator, out: &Path) -> std::io::Result<[u64; 4]> {
    let mut written = [0u64; 4];
    for p in 0..generator.partition_count() {
        let mut files = StreamKind::ALL
            .iter()
            .map(|kind| {
                let path = out.join(format!(
                    "{}-{p}.{}",
                    kind.name(),
                    FileFormat::Parquet.extension()
                ));
                EventFileWriter::create(&path, Arc::clone(generator.schema().stream(*kind)))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        for item in generator.partition(p) {
            let stream = item.stream();
            let file = &mut files[stream.index()];
            match &item {
                Generated::Event(event) => file.record(&generator.record(event))?,
                Generated::Malformed { line, .. } => file.malformed(line)?,
            }
            written[stream.index()] += 1;
        }
        for file in files {
            file.finish()?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::cli::Cli;
    use crate::connectors::generator::GeneratorConfig;

    /// `gen --help` states the generator's defaults, and they are the real ones.
    #[test]
    fn help_shows_the_generator_defaults() {
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("gen")
            .expect("a gen command")
            .render_long_help()
            .to_string();
        let d = GeneratorConfig::default();
        for (flag, default) in [
            ("--seed", d.seed.to_string()),
            ("--bids", d.bids.to_string()),
            ("--rate", d.rate.to_string()),
            ("--start-ms", d.start_ms.to_string()),
            ("--partitions", d.partitions.to_string()),
            ("--max-disorder", "5s".to_owned()),
            ("--disorder", d.disorder.to_string()),
            ("--late", d.late.to_string()),
            ("--too-late", d.too_late.to_string()),
            ("--duplicate", d.duplicate.to_string()),
            ("--conflicting", d.conflicting.to_string()),
            ("--orphan", d.orphan.to_string()),
            ("--malformed", d.malformed.to_string()),
        ] {
            let option = help
                .split(&format!("{flag} <"))
                .nth(1)
                .and_then(|rest| rest.split("\n\n  ").next())
                .unwrap_or_else(|| panic!("no {flag} in:\n{help}"));
            let option = option.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                option.contains(&format!("[default: {default}")),
                "{flag}: {option}"
            );
        }
    }
}
