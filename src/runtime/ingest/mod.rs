//! Ingestion: read a worker's partitions in step by event time, judge lateness, and emit
//! records (as a differential collection) and rejected records, with the frontier.

mod reading;
mod recorder;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::operator::empty;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Scope, Stream};

pub use reading::MAX_LEAD;

use super::checkpoint::{IngestPart, RestoredPartitions};
use super::{Accounting, Progress, Stop, StopNotice, StopReason};
use crate::connectors::{Arrival, Partition};
use crate::declare::{FunnelSettings, Tick};
use crate::event::{Millis, Record, Rejected};
use crate::observe::Observer;
use reading::{read_slice, release_idle, Admitted, Reading, SliceBounds, POLL_CHUNK};
use recorder::Recorder;

/// How soon an operator held back by flow control looks again.
const LEAD_RETRY: Duration = Duration::from_micros(200);
/// How soon an operator whose partitions are all idle looks again.
const IDLE_RETRY: Duration = Duration::from_millis(1);

/// Shared state the ingest operator reports into.
#[derive(Clone)]
pub struct IngestContext {
    /// The process's live counters.
    pub progress: Arc<Progress>,
    /// The process's stop handle: a stop requested here is announced to the cluster, and
    /// a stop requested or heard ends reading.
    pub stop: Stop,
    /// The first transport failure of this worker's partitions.
    pub failure: Rc<RefCell<Option<std::io::Error>>>,
    /// The frontier of the whole dataflow (at the emitter's inputs), for flow control.
    pub output_frontier: ProbeHandle<Millis>,
    /// The frontier of the last batch written to every sink (the emitter's output):
    /// every record with a time below it has its effect in the sinks. Sources that
    /// commit read positions (Kafka offsets) commit up to it. In a run that writes
    /// checkpoints it is the frontier of the last durable checkpoint, and the positions
    /// committed are the checkpoint's.
    pub written_frontier: ProbeHandle<Millis>,
    /// Told each partition's counts and watermark, and the worker's frontier.
    pub observer: Observer,
}

/// The checkpoint side of ingestion (see [`ingest_checkpointed`]).
pub struct IngestCheckpointing<'scope> {
    /// Partition states from a checkpoint, broadcast to every worker: each takes back
    /// its own partitions' positions and watermarks before it reads anything.
    pub restore: Stream<'scope, Millis, Vec<RestoredPartitions>>,
    /// Checkpoint frontiers heard on this worker's control stream.
    pub heard: Rc<RefCell<Vec<Millis>>>,
    /// The control stream's frontier, probed after hearing: no checkpoint is ever
    /// requested below it.
    pub control: ProbeHandle<Millis>,
}

/// The streams that ingestion produces.
pub struct Ingested<'scope> {
    /// Admitted records, each `(record, entry time, +1)`.
    pub records: VecCollection<'scope, Millis, Record>,
    /// Dead letters and too-late records, each with the time it was rejected at (its
    /// partition's watermark when read; at or after the message's time).
    pub rejects: Stream<'scope, Millis, Vec<(Millis, Rejected)>>,
    /// Stop notices announced by this worker (see [`super::control`]).
    pub notices: Stream<'scope, Millis, Vec<StopNotice>>,
    /// This worker's parts of checkpoints (empty without checkpointing).
    pub parts: Stream<'scope, Millis, Vec<IngestPart>>,
}

/// Builds the ingest operator over this worker's `partitions`.
///
/// The operator holds a capability at the worker's frontier: the least watermark over its
/// open partitions (docs/design.md §3). It always reads from the open partition whose watermark
/// is lowest, so the frontier advances during a replay. Each valid record is admitted by
/// its partition's [`super::PartitionClock`], then checked against the bounds of bounded
/// dimensions and the overflow budget of summed fields ([`super::Guards`]); entering
/// records become `(record, entry, +1)` updates; dead letters and too-late records go to
/// the second stream. When every
/// partition is done the capability is dropped, completing every window downstream.
///
/// When the process's [`Stop`] is stopping (requested here or heard from the cluster),
/// the operator announces a [`StopNotice`] on the third stream, at its frontier, and
/// stops reading. Broadcast that stream to every worker (see [`super::control`]) and
/// give it to the emitter, which then knows the end of input is an abandonment.
pub fn ingest<'scope>(
    scope: Scope<'scope, Millis>,
    settings: &FunnelSettings,
    partitions: Vec<Box<dyn Partition>>,
    context: IngestContext,
) -> Ingested<'scope> {
    build(scope, settings, partitions, context, None)
}

/// [`ingest`] taking part in checkpoints: it first takes back its partitions' states
/// from `checkpointing.restore`, keeps what it read that the dataflow has not applied,
/// and answers every checkpoint request it hears at `F` once its frontier reaches `F`
/// with an [`IngestPart`] (when it has read all its partitions, with a last part that
/// serves every later request).
pub fn ingest_checkpointed<'scope>(
    scope: Scope<'scope, Millis>,
    settings: &FunnelSettings,
    partitions: Vec<Box<dyn Partition>>,
    context: IngestContext,
    checkpointing: IngestCheckpointing<'scope>,
) -> Ingested<'scope> {
    build(scope, settings, partitions, context, Some(checkpointing))
}

fn build<'scope>(
    scope: Scope<'scope, Millis>,
    settings: &FunnelSettings,
    partitions: Vec<Box<dyn Partition>>,
    context: IngestContext,
    checkpointing: Option<IngestCheckpointing<'scope>>,
) -> Ingested<'scope> {
    let worker = scope.index();
    let mut builder = OperatorBuilder::new("Ingest".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let (restore, recorder) = match checkpointing {
        Some(c) => (c.restore, Some(Recorder::new(worker, c.heard, c.control))),
        None => (empty(scope), None),
    };
    // Restored partitions are read before anything else; they do not hold the outputs.
    let mut restore_input = builder.new_input_connection(restore, Pipeline, []);
    let (records_output, records) = builder.new_output();
    let (rejects_output, rejects) = builder.new_output();
    let (notices_output, notices) = builder.new_output();
    let (parts_output, parts) = builder.new_output();
    let mut outputs = Outputs {
        records: OutputBuilder::from(records_output),
        rejects: OutputBuilder::from(rejects_output),
        notices: OutputBuilder::from(notices_output),
        parts: OutputBuilder::from(parts_output),
    };
    let mut state = Ingest {
        worker,
        tick: settings.tick,
        settings: settings.clone(),
        partitions: partitions
            .into_iter()
            .map(|p| Reading::new(p, settings, &context.observer))
            .collect(),
        context,
        recorder,
        restored: false,
        restoring: Vec::new(),
        arrivals: Vec::with_capacity(POLL_CHUNK),
    };
    builder.build(move |capabilities| {
        let mut capabilities = Some(capabilities);
        move |frontiers| {
            let Some(caps) = capabilities.as_mut() else {
                return;
            };
            if !state.restored {
                restore_input.for_each(|_, data| state.restoring.append(data));
                if !frontiers[0].frontier().is_empty() {
                    return;
                }
                let restored = std::mem::take(&mut state.restoring);
                if let Err(error) = state.restore(restored, caps) {
                    // Announced as a stop by the step below, which reads nothing.
                    state.fail(String::new(), error);
                }
            }
            match state.step(caps, &mut outputs) {
                Next::Now => activator.activate(),
                Next::After(delay) => activator.activate_after(delay),
                Next::Never => capabilities = None,
            }
        }
    });

    Ingested {
        records: records.as_collection(),
        rejects,
        notices,
        parts,
    }
}

/// An output of the ingest operator, carrying `D`s.
type Output<D> = OutputBuilder<Millis, CapacityContainerBuilder<Vec<D>>>;

/// The ingest operator's outputs.
struct Outputs {
    records: Output<(Record, Millis, isize)>,
    rejects: Output<(Millis, Rejected)>,
    notices: Output<StopNotice>,
    parts: Output<IngestPart>,
}

/// When the operator runs next.
enum Next {
    Now,
    After(Duration),
    /// It is done: its capabilities are dropped.
    Never,
}

/// Everything the ingest operator keeps between activations.
struct Ingest {
    worker: usize,
    /// Entry times and the frontier are rounded down by it (from a restored frontier).
    tick: Tick,
    settings: FunnelSettings,
    partitions: Vec<Reading>,
    context: IngestContext,
    recorder: Option<Recorder>,
    /// True once the partitions' states from a checkpoint (if any) are taken back.
    restored: bool,
    /// What the restore input gave so far.
    restoring: Vec<RestoredPartitions>,
    arrivals: Vec<Arrival>,
}

impl Ingest {
    /// Takes back this worker's partitions from a checkpoint and starts the outputs at
    /// the worker's frontier.
    fn restore(
        &mut self,
        restored: Vec<RestoredPartitions>,
        caps: &mut [Capability<Millis>],
    ) -> Result<(), std::io::Error> {
        self.restored = true;
        let checkpointing = self.recorder.is_some();
        if let Some(reading) = self
            .partitions
            .iter()
            .find(|r| checkpointing && r.state().is_none())
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "partition `{}` cannot say where it stands, so a run with state cannot \
                     checkpoint it (files, Kafka and the generator can)",
                    reading.partition.name()
                ),
            ));
        }
        let Some(restored) = restored.into_iter().next() else {
            return Ok(());
        };
        for reading in &mut self.partitions {
            let state = restored
                .partitions
                .iter()
                .find(|s| s.name == reading.partition.name());
            reading.restore(state, restored.frontier)?;
        }
        self.tick = self.tick.from(restored.frontier);
        if let Some(frontier) = self.frontier(0) {
            for cap in caps.iter_mut() {
                cap.downgrade(&frontier);
            }
        }
        Ok(())
    }

    /// The worker's frontier (see [`release_idle`], from `current`), rounded down to the
    /// tick; `None` when every partition is done.
    fn frontier(&mut self, current: Millis) -> Option<Millis> {
        release_idle(&mut self.partitions, current).map(|f| self.tick.floor(f))
    }

    /// Records a failure of partition `name` and asks the run to stop.
    fn fail(&mut self, name: String, error: std::io::Error) {
        let message = match name.as_str() {
            "" => error.to_string(),
            name => format!("{name}: {error}"),
        };
        self.context.stop.request(StopReason::Failure {
            worker: self.worker,
            message,
        });
        self.context.failure.borrow_mut().get_or_insert(error);
    }

    /// One activation: read a slice, move the frontier, answer checkpoint requests,
    /// commit positions, and stop when asked.
    fn step(&mut self, caps: &mut [Capability<Millis>], outputs: &mut Outputs) -> Next {
        let slice = self.read(caps, outputs);
        if let Some((name, error)) = slice.failure {
            self.fail(name, error);
        }
        let frontier = self.frontier(*caps[0].time());
        self.context.observer.worker_frontier(self.worker, frontier);
        self.commit();
        if self.context.stop.is_stopping() {
            // Announce at the frontier, then stop: the notice holds the frontier until
            // every worker (and the emitter) has received it.
            if let Some(reason) = self.context.stop.reason() {
                let mut notices = outputs.notices.activate();
                notices.session(&caps[2]).give(StopNotice { reason });
            }
            return Next::Never;
        }
        let Some(time) = frontier else {
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.hear();
                let part = recorder.last_part(&self.partitions);
                outputs.parts.activate().session(&caps[3]).give(part);
            }
            return Next::Never;
        };
        for cap in caps.iter_mut() {
            if *cap.time() < time {
                cap.downgrade(&time);
            }
        }
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.hear();
            let parts = recorder.answer(time, &self.partitions);
            if !parts.is_empty() {
                outputs
                    .parts
                    .activate()
                    .session(&caps[3])
                    .give_iterator(parts.into_iter());
            }
            recorder.trim();
        }
        if slice.waiting {
            Next::After(LEAD_RETRY)
        } else if slice.all_idle {
            Next::After(IDLE_RETRY)
        } else {
            Next::Now
        }
    }

    /// Reads for one slice, giving records and rejected records to the outputs and
    /// counting them.
    fn read(&mut self, caps: &[Capability<Millis>], outputs: &mut Outputs) -> reading::Slice {
        let output_frontier = self
            .context
            .output_frontier
            .with_frontier(|f| f.iter().next().copied());
        let frontier = *caps[1].time();
        let mut records_handle = outputs.records.activate();
        let mut rejects_handle = outputs.rejects.activate();
        let mut records = records_handle.session(&caps[0]);
        let mut rejects = rejects_handle.session(&caps[1]);
        let mut accounting = Accounting::default();
        let stop = self.context.stop.clone();
        let recorder = &mut self.recorder;
        let bounds = SliceBounds {
            settings: &self.settings,
            output_frontier,
            frontier,
            tick: self.tick,
        };
        let slice = read_slice(
            &mut self.partitions,
            &bounds,
            &mut self.arrivals,
            &mut accounting,
            || !stop.is_stopping(),
            |admitted| {
                if let Some(recorder) = recorder.as_mut() {
                    recorder.record(&admitted);
                }
                match admitted {
                    Admitted::Enter(record, entry) => records.give((record, entry, 1isize)),
                    Admitted::Rejected(time, rejected) => rejects.give((time, rejected)),
                }
            },
        );
        self.context.progress.add_ingest(&accounting);
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.count(&accounting);
        }
        slice
    }

    /// Commits read positions up to what every sink holds (or, with checkpoints, to the
    /// last durable checkpoint's positions).
    fn commit(&mut self) {
        let written = self
            .context
            .written_frontier
            .with_frontier(|f| f.iter().next().copied());
        match self.recorder.as_mut() {
            Some(recorder) => recorder.commit(written, &mut self.partitions),
            None => {
                if let Some(written) = written {
                    for reading in &mut self.partitions {
                        reading.partition.written_through(Some(written));
                    }
                }
            }
        }
    }
}
