//! The PostgreSQL sink: each batch in one transaction, exactly once across restarts.

use std::sync::Arc;

use super::config::{target, PostgresConfig};
use super::layout::Layout;
use super::retry::{Backoff, Failure};
use super::session::{Applied, Session};
use crate::connectors::{Batch, Resume, Sink, SinkError, SinkHealth};
use crate::declare::Aggregate;
use crate::event::{time_text, Millis};

/// Writes batches into an aggregates table (see [`super::layout`]) that readers can
/// query at any time.
///
/// Visibility: each batch is one transaction: its deltas are added to the totals, its
/// finalized windows are marked `final`, its dead letters and too-late records are
/// appended to their tables and its frontier is recorded in the progress table,
/// together or not at all. A reader sees the totals at some batch boundary,
/// never half a batch.
///
/// Exactly once: at open the sink reads its progress row (keyed by the sink's name) and
/// reports the frontier recorded there as its [`Sink::resume`]; the emitter
/// then cuts a batch at exactly that frontier, and the sink skips every batch at or
/// below it. A re-run over the same input therefore adds only what the previous runs
/// did not: the totals equal a single run's, and each rejected record is held once.
///
/// Failures: a transient error (connection lost, server restarting) is retried with
/// backoff for `retry_for`, reconnecting; before retrying, the progress row tells
/// whether the lost transaction committed. A permanent error (refused login, a table of
/// another shape, another writer using the same sink name) stops the run at once; the
/// failed transaction is rolled back.
pub struct PostgresSink {
    name: String,
    url: String,
    /// Where `url` points, for messages ([`target`]).
    target: String,
    config: PostgresConfig,
    layout: Layout,
    session: Option<Session>,
    applied: Applied,
    health: Arc<SinkHealth>,
}

impl PostgresSink {
    /// Connects (retrying transient errors for `retry_for`), creates the tables if
    /// missing, checks their columns, and reads the sink's progress.
    ///
    /// # Errors
    /// A [`SinkError::Other`] naming the problem: a config problem with its key, a
    /// permanent database error, or transient errors that outlasted `retry_for`.
    pub fn open(config: &PostgresConfig, aggregate: &Aggregate) -> Result<PostgresSink, SinkError> {
        let name = config.sink_name();
        let url = config.resolve_url().map_err(|p| SinkError::Other {
            sink: name.clone(),
            message: format!("`{}`: {}", p.key, p.problem),
        })?;
        let mut sink = PostgresSink {
            layout: Layout::new(config, aggregate),
            config: config.clone(),
            target: target(&url),
            url,
            session: None,
            applied: Applied::default(),
            health: Arc::default(),
            name,
        };
        tracing::info!(
            "postgres sink `{}`: connecting to PostgreSQL at {}",
            sink.name,
            sink.target
        );
        let mut backoff = Backoff::new(config.retry_for.to_std());
        loop {
            match sink.connect() {
                Ok(()) => {
                    if sink.applied.complete {
                        tracing::warn!(
                            sink = %sink.name,
                            "the progress table says an earlier run wrote a complete input: \
                             this run writes nothing (use another sink `name`, or delete its \
                             progress row and totals, to write again)"
                        );
                    }
                    return Ok(sink);
                }
                Err(Failure::Transient(message)) => {
                    tracing::warn!(
                        "postgres sink `{}`: cannot connect to PostgreSQL at {} ({message}); \
                         retrying for up to {}",
                        sink.name,
                        sink.target,
                        sink.config.retry_for
                    );
                    if !backoff.wait() {
                        let failure = Failure::Transient(message);
                        return Err(sink.error("cannot open the sink", &failure, true));
                    }
                }
                Err(failure) => return Err(sink.error("cannot open the sink", &failure, true)),
            }
        }
    }

    /// What the progress table says this sink has applied.
    pub fn applied(&self) -> Applied {
        self.applied
    }

    fn connect(&mut self) -> Result<(), Failure> {
        self.session = None;
        let mut session = Session::open(&self.url, self.config.tls, &self.layout, &self.name)?;
        self.applied = session.applied(&self.name)?;
        self.session = Some(session);
        Ok(())
    }

    fn error(&self, what: &str, failure: &Failure, retried: bool) -> SinkError {
        let kind = match failure {
            Failure::Transient(_) if retried => {
                format!("still failing after retrying for {}", self.config.retry_for)
            }
            Failure::Transient(_) => "transient error".to_owned(),
            Failure::Permanent(_) => "permanent error".to_owned(),
        };
        SinkError::Other {
            sink: self.name.clone(),
            message: format!("{what} ({kind}) at {}: {}", self.target, failure.message()),
        }
    }

    /// Applies `batch` once: on a transient failure, reconnects and asks the progress
    /// row whether the transaction committed before trying again.
    fn apply(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let before = self.applied;
        let mut backoff = Backoff::new(self.config.retry_for.to_std());
        loop {
            let attempt = match self.session.as_mut() {
                Some(session) => session.apply(&self.name, before, batch),
                None => self.connect().and_then(|()| {
                    if self.applied == before {
                        let session = self.session.as_mut().expect("just connected");
                        session.apply(&self.name, before, batch)
                    } else if self.applied.batches == before.batches + 1 {
                        // The lost transaction had committed.
                        Ok(self.applied)
                    } else {
                        Err(Failure::Permanent(format!(
                            "the progress of sink `{}` changed under it (from {before:?} to \
                             {:?}): another writer uses the same sink name",
                            self.name, self.applied
                        )))
                    }
                }),
            };
            match attempt {
                Ok(after) => {
                    self.applied = after;
                    self.health.recovered();
                    return Ok(());
                }
                Err(Failure::Transient(message)) if backoff.wait() => {
                    self.health.retrying();
                    tracing::warn!(
                        "postgres sink `{}`: batch {} failed at {} ({message}); reconnecting \
                         and retrying for up to {}",
                        self.name,
                        batch.seq,
                        self.target,
                        self.config.retry_for
                    );
                    self.session = None;
                    self.applied = before;
                }
                Err(failure) => {
                    self.session = None;
                    self.applied = before;
                    self.health.recovered();
                    let what = format!(
                        "batch {} (frontier {}) not applied, its transaction rolled back",
                        batch.seq,
                        frontier_text(batch.frontier)
                    );
                    let retried = matches!(failure, Failure::Transient(_));
                    return Err(self.error(&what, &failure, retried));
                }
            }
        }
    }
}

fn frontier_text(frontier: Option<Millis>) -> String {
    frontier.map_or("complete".to_owned(), time_text)
}

impl Sink for PostgresSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn health(&self) -> Option<Arc<SinkHealth>> {
        Some(Arc::clone(&self.health))
    }

    fn begin(&mut self, restored: Option<Millis>) -> Result<(), SinkError> {
        match restored {
            Some(frontier) if self.applied.batches == 0 => Err(SinkError::Other {
                sink: self.name.clone(),
                message: format!(
                    "the run resumes from a checkpoint at frontier {frontier}, but the \
                     progress table holds nothing for this sink: its totals would lack \
                     everything before; start over with --fresh"
                ),
            }),
            _ => Ok(()),
        }
    }

    fn resume(&self) -> Option<Resume> {
        (self.applied.batches > 0 && !self.applied.complete).then(|| Resume {
            frontier: self.applied.frontier,
            seq: self.applied.batches - 1,
        })
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let recorded = self.applied.frontier;
        if self.applied.complete || batch.frontier.is_some_and(|f| f <= recorded) {
            // Applied by an earlier run.
            return Ok(());
        }
        if self.applied.batches > 0 && batch.previous != recorded {
            return Err(SinkError::Other {
                sink: self.name.clone(),
                message: format!(
                    "batch {} covers [{}, {}) but the table holds everything below {recorded}: \
                     applying it would count part of it twice",
                    batch.seq,
                    batch.previous,
                    frontier_text(batch.frontier)
                ),
            });
        }
        self.apply(batch)
    }
}
