//! Stdout sink: a short human-readable preview of each batch.

use std::io::Write;

use super::{Batch, Sink, SinkError};
use crate::declare::Aggregate;

/// Prints each non-empty batch as a heading line and up to `max_rows` rows: window start,
/// status, `dim=value` for each dim and `Δmeasure ±n` for each measure.
///
/// A closed pipe (e.g. `| head`) is not a crash: the sink reports
/// [`SinkError::Closed`] and the run stops quietly.
pub struct StdoutSink {
    aggregate: Aggregate,
    max_rows: usize,
}

impl StdoutSink {
    /// A preview of `aggregate`'s rows, at most `max_rows` rows per batch.
    pub fn new(aggregate: &Aggregate, max_rows: usize) -> StdoutSink {
        StdoutSink {
            aggregate: aggregate.clone(),
            max_rows,
        }
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
                .map(|(name, value)| format!("Δ{name} {value:+}"))
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

/// Formats ms since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc(millis: u64) -> String {
    let secs = millis / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant), valid for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        millis % 1000
    )
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let text = self.format(batch);
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::BrokenPipe => SinkError::Closed("stdout".into()),
                _ => SinkError::Io {
                    sink: "stdout".into(),
                    source,
                },
            })
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
