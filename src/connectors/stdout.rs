//! Stdout sink: a short human-readable preview of each batch.

use std::io::Write;

use super::{Batch, Sink, SinkError};
use crate::declare::Aggregate;
use crate::event::utc;

/// What the stdout sink does when its reader goes away: a closed pipe, e.g. `| head`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnClosed {
    /// The preview stops and the run goes on: the other sinks still receive every
    /// batch. The sink says so once on stderr. For a run with other sinks.
    #[default]
    Detach,
    /// The run stops quietly ([`SinkError::Closed`]): for a run whose only output is the
    /// preview, nobody reads anything more.
    Stop,
}

/// Prints each non-empty batch as a heading line and up to `max_rows` rows: window start,
/// status, `dim=value` for each dim and `Δmeasure ±n` for each measure.
///
/// A closed pipe is not a crash: what happens then is its [`OnClosed`] setting.
pub struct StdoutSink {
    aggregate: Aggregate,
    max_rows: usize,
    on_closed: OnClosed,
    /// The reader went away and the preview stopped ([`OnClosed::Detach`]).
    detached: bool,
}

impl StdoutSink {
    /// A preview of `aggregate`'s rows, at most `max_rows` rows per batch, that detaches
    /// when stdout is closed.
    pub fn new(aggregate: &Aggregate, max_rows: usize) -> StdoutSink {
        StdoutSink {
            aggregate: aggregate.clone(),
            max_rows,
            on_closed: OnClosed::default(),
            detached: false,
        }
    }

    /// Sets what happens when stdout is closed.
    pub fn on_closed(mut self, on_closed: OnClosed) -> StdoutSink {
        self.on_closed = on_closed;
        self
    }

    fn format(&self, batch: &Batch) -> String {
        let mut text = format!(
            "batch {} · frontier {} · {} rows · {} windows final · {} dead letters · {} too late\n",
            batch.seq,
            batch.frontier.map_or_else(|| "complete".to_owned(), utc),
            batch.rows.len(),
            batch.finalized.len(),
            batch.dead_letters.len(),
            batch.too_late.len(),
        );
        let names = self.aggregate.measure_names();
        for row in batch.rows.iter().take(self.max_rows) {
            let dims: Vec<String> = self
                .aggregate
                .dims
                .names()
                .into_iter()
                .zip(self.aggregate.dims.texts(&row.dims))
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            let deltas: Vec<String> = names
                .iter()
                .zip(row.delta.values(names.len()))
                .map(|(name, value)| format!("Δ{} {value:+}", label(name)))
                .collect();
            text.push_str(&format!(
                "  {} {:<10} {}  {}\n",
                utc(row.window_start),
                row.status.name(),
                dims.join(" "),
                deltas.join(" ")
            ));
        }
        if batch.rows.len() > self.max_rows {
            text.push_str(&format!(
                "  … {} more rows\n",
                batch.rows.len() - self.max_rows
            ));
        }
        text
    }
}

/// A measure's label in the preview: its name, but the short labels the preview has always
/// used for today's default measures (so the default graph's preview stays as it was).
fn label(name: &str) -> &str {
    match name {
        "impressions" => "impr",
        "conversions" => "conv",
        "spend_micros" => "spend",
        "revenue_micros" => "revenue",
        other => other,
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.is_empty() || self.detached {
            return Ok(());
        }
        let text = self.format(batch);
        let mut out = std::io::stdout().lock();
        let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        match written {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => match self.on_closed {
                OnClosed::Detach => {
                    self.detached = true;
                    eprintln!(
                        "stdout was closed by its reader: the preview stops at batch {}; the \
                         run goes on and the other sinks receive every batch",
                        batch.seq
                    );
                    Ok(())
                }
                OnClosed::Stop => Err(SinkError::Closed("stdout".into())),
            },
            Err(source) => Err(SinkError::Io {
                sink: "stdout".into(),
                source,
            }),
        }
    }
}
