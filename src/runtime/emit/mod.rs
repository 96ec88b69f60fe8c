//! Emission: turn aggregate updates into consistent batches and hand them to the sinks;
//! put checkpoints together and have them written.

mod assembly;
mod emitter;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Probe;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{ProbeHandle, Stream};

pub use emitter::EmitStart;

use super::checkpoint::{Checkpoint, CheckpointWriter, Identity, Part};
use super::control::{CheckpointClock, Control};
use super::{Progress, Stop, StopReason};
use crate::connectors::{Sink, SinkError};
use crate::dataflow::{AggregateKey, Aggregates};
use crate::declare::{FunnelSettings, Measures};
use crate::event::{Millis, Rejected};
use assembly::{Assembly, Earlier};
use emitter::Emitter;

/// How soon the emitter looks again at a checkpoint being written.
const WRITER_POLL: Duration = Duration::from_millis(10);

/// Shared state the emitter reports into.
#[derive(Clone)]
pub struct EmitContext {
    /// The process's stop handle; the emitter requests a stop when a sink fails.
    pub stop: Stop,
    /// The first sink failure.
    pub failure: Rc<RefCell<Option<SinkError>>>,
    /// The process's live counters (frontier, batches).
    pub progress: Arc<Progress>,
}

/// The streams the emitter reads (the aggregate updates with dims in keys of `N` bytes).
pub struct EmitInputs<'scope, const N: usize> {
    /// The funnel's aggregate updates.
    pub aggregates: Aggregates<'scope, N>,
    /// Dead letters and too-late records, each with the time it was rejected at.
    pub rejects: Stream<'scope, Millis, Vec<(Millis, Rejected)>>,
    /// The control stream (stop notices, checkpoint requests), broadcast: each worker
    /// reads its own copy.
    pub control: Stream<'scope, Millis, Vec<Control>>,
    /// Parts of checkpoints from the ingest and dedup operators of every worker.
    pub parts: Stream<'scope, Millis, Vec<Part>>,
}

/// What the emitter writes and where it reports.
pub struct Emission {
    /// The funnel's settings.
    pub settings: FunnelSettings,
    /// The sinks of each aggregate (`sinks[a]`: those of aggregate `a`; worker 0 of
    /// process 0 only, empty elsewhere).
    pub sinks: Vec<Vec<Box<dyn Sink>>>,
    /// Where the emitter reports.
    pub context: EmitContext,
    /// Sees the emitter's input frontier (for flow control).
    pub processed: ProbeHandle<Millis>,
    /// Sees the emitter's output frontier: what every sink holds (see
    /// [`IngestContext::written_frontier`](super::IngestContext::written_frontier)).
    pub written: ProbeHandle<Millis>,
    /// Where a restored run starts (`None`: from the beginning).
    pub start: Option<EmitStart>,
    /// Checkpoints to put together and write (worker 0 of a run with a state folder).
    pub checkpoints: Option<EmitCheckpoints>,
}

/// The emitter's part in checkpoints.
pub struct EmitCheckpoints {
    /// Writes checkpoint files.
    pub writer: CheckpointWriter,
    /// The graph and settings checkpoints are written with.
    pub identity: Identity,
    /// Worker 0's checkpoint schedule: the emitter says when a checkpoint is done.
    pub clock: CheckpointClock,
    /// Workers in the cluster (each sends one ingest part and four dedup parts).
    pub workers: usize,
}

/// What the emitter's exchanged input carries.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Notice {
    Rejected(Millis, Rejected),
    Part(Box<Part>),
}

/// Builds the emitter on every worker; worker 0 of process 0 receives all aggregate
/// updates, rejected records and checkpoint parts, and owns the sinks.
///
/// The emitter's input frontier is reported to `processed` (for flow control), and its
/// output frontier to `written`, on every worker of the cluster.
///
/// When the frontier (the least frontier of its inputs) has advanced and at least
/// `emit_interval` has passed since the last batch — or the input is complete — it builds
/// one [`crate::connectors::Batch`] per aggregate (all with the same sequence number and
/// frontiers) and writes each to its aggregate's sinks, in order. A sink
/// failure stops the run and is reported. A batch also ends at every frontier where a
/// sink resumes ([`Sink::resume`]) and at every checkpoint's frontier.
///
/// A stop notice on the control stream means the run is abandoned: the emitter writes
/// one last batch up to the frontier reached — a consistent state, not a final one: no
/// window is finalized for the end of input and the sinks are not closed — and writes
/// nothing after it.
///
/// With checkpoints, once every part of a requested checkpoint has arrived and the batch
/// at its frontier is in every sink, the emitter hands it to the writer; when the file is
/// durable, the output frontier moves to the checkpoint's frontier. When the input is
/// complete it writes a checkpoint that says so. A checkpoint that cannot be written
/// (a full disk) stops the run with the error; the previous checkpoint stays usable.
pub fn emit<'scope, const N: usize>(inputs: EmitInputs<'scope, N>, emission: Emission) {
    let scope = inputs.aggregates.inner.scope();
    let worker = scope.index();
    let mut builder = OperatorBuilder::new("Emit".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let notices = {
        use timely::dataflow::operators::core::{Concat, Map};
        inputs
            .rejects
            .probe_with(&emission.processed)
            .map(|(time, rejected)| Notice::Rejected(time, rejected))
            .concat(inputs.parts.map(|part| Notice::Part(Box::new(part))))
    };
    let mut updates_input = builder.new_input(
        inputs.aggregates.inner.probe_with(&emission.processed),
        Exchange::new(|_: &(AggregateKey<N>, Millis, Measures)| 0u64),
    );
    let mut notices_input = builder.new_input(notices, Exchange::new(|_: &Notice| 0u64));
    let mut control_input = builder.new_input(inputs.control, Pipeline);
    let (output, written_stream) = builder.new_output();
    let _output = OutputBuilder::<_, CapacityContainerBuilder<Vec<()>>>::from(output);
    written_stream.probe_with(&emission.written);

    builder.build(move |mut capabilities| {
        let Emission {
            settings,
            sinks,
            context,
            start,
            checkpoints,
            ..
        } = emission;
        let written = capabilities
            .pop()
            .filter(|_| sinks.iter().any(|s| !s.is_empty()));
        let earlier = start
            .as_ref()
            .map(|s| Earlier {
                accounting: s.accounting,
                events: s.events.clone(),
                rejects: s.rejects.clone(),
            })
            .unwrap_or_default();
        let mut state = Operator {
            interval: settings.emit_interval,
            emitter: Emitter::new(settings, sinks, start, written),
            checkpoints: checkpoints.map(|c| Checkpoints {
                assembly: Assembly::new(c.identity, c.workers, earlier),
                writer: c.writer,
                clock: c.clock,
            }),
            last_emit: None,
            context,
            worker,
        };
        move |frontiers| {
            updates_input.for_each(|_, data| state.take_updates(data));
            notices_input.for_each(|_, data| state.take_notices(data));
            control_input.for_each(|capability, data| {
                let time = capability.least().copied().unwrap_or_default();
                state.take_control(time, data);
            });
            let frontier = (0..3)
                .filter_map(|i| frontiers[i].frontier().iter().next().copied())
                .min();
            if let Some(delay) = state.step(frontier) {
                activator.activate_after(delay);
            }
        }
    });
}

/// The checkpoint side of the emitter.
struct Checkpoints {
    assembly: Assembly,
    writer: CheckpointWriter,
    clock: CheckpointClock,
}

/// The emitter operator's state: the batches, the checkpoints, the schedule.
struct Operator<const N: usize> {
    emitter: Emitter<N>,
    checkpoints: Option<Checkpoints>,
    interval: Duration,
    last_emit: Option<Instant>,
    context: EmitContext,
    worker: usize,
}

impl<const N: usize> Operator<N> {
    fn take_updates(&mut self, data: &mut Vec<(AggregateKey<N>, Millis, Measures)>) {
        let floor = self.emitter.floor;
        self.emitter
            .updates
            .extend(data.drain(..).filter(|(_, time, _)| *time >= floor));
    }

    fn take_notices(&mut self, data: &mut Vec<Notice>) {
        for notice in data.drain(..) {
            match notice {
                Notice::Rejected(time, rejected) if time >= self.emitter.floor => {
                    self.emitter.rejects.push((time, rejected));
                }
                Notice::Rejected(..) => {}
                Notice::Part(part) => {
                    if let Some(checkpoints) = self.checkpoints.as_mut() {
                        checkpoints.assembly.add(*part);
                    }
                }
            }
        }
    }

    fn take_control(&mut self, time: Millis, data: &mut Vec<Control>) {
        for control in data.drain(..) {
            match control {
                Control::Stop(notice) => {
                    self.emitter.stop_at = Some(self.emitter.stop_at.map_or(time, |t| t.min(time)));
                    self.context.stop.hear(notice.reason);
                }
                Control::Checkpoint(frontier) => {
                    if let Some(checkpoints) = self.checkpoints.as_mut() {
                        checkpoints.assembly.request(frontier);
                    }
                }
            }
        }
    }

    /// One activation: batches, checkpoints. Returns when to look again, if the
    /// emitter must without new input.
    fn step(&mut self, frontier: Option<Millis>) -> Option<Duration> {
        if self.emitter.finished {
            return None;
        }
        if let Some(stop_at) = self.emitter.stop_at {
            // Abandoned: everything below the frontier reached (which the notice holds at
            // or below its time) is complete, so one last consistent batch up to it; then
            // nothing more.
            let reached = frontier.map_or(stop_at, |f| f.min(stop_at));
            self.emitter.finished = true;
            self.emitter
                .cut_resumes(Some(reached), &self.context, self.worker);
            self.emitter.emit(Some(reached), &self.context, self.worker);
            if let Some(checkpoints) = self.checkpoints.as_mut() {
                checkpoints.assembly.abandon();
                checkpoints.writer.wait();
            }
            self.emitter.written = None;
            return None;
        }
        self.emitter
            .cut_resumes(frontier, &self.context, self.worker);
        self.cut_checkpoint(frontier);
        let mut again = None;
        if !self.emitter.finished && !self.emitter.catching_up(frontier) {
            again = self.emit_due(frontier);
        }
        self.write_checkpoints(frontier);
        if self
            .checkpoints
            .as_ref()
            .is_some_and(|c| c.writer.is_writing())
        {
            again = Some(again.map_or(WRITER_POLL, |d| d.min(WRITER_POLL)));
        }
        again
    }

    /// Writes the regular batch up to `frontier` when the interval has passed; returns
    /// the delay until it has, when it has not.
    fn emit_due(&mut self, frontier: Option<Millis>) -> Option<Duration> {
        if frontier.is_some_and(|f| f <= self.emitter.previous) {
            return None;
        }
        if let (Some(_), Some(last)) = (frontier, self.last_emit) {
            let since = last.elapsed();
            if since < self.interval {
                return Some(self.interval - since);
            }
        }
        self.emitter.emit(frontier, &self.context, self.worker);
        self.last_emit = Some(Instant::now());
        if frontier.is_none() {
            self.emitter.finished = true;
        }
        None
    }

    /// Ends a batch at the frontier of the checkpoint being put together, once the
    /// frontier has reached it.
    fn cut_checkpoint(&mut self, frontier: Option<Millis>) {
        let Some(checkpoints) = self.checkpoints.as_mut() else {
            return;
        };
        let Some(at) = checkpoints.assembly.needs_cut() else {
            return;
        };
        if self.emitter.catching_up(Some(at)) || at < self.emitter.previous {
            // Batches here end only where sinks resume, or it is behind: no checkpoint.
            checkpoints.assembly.abandon();
            checkpoints.clock.in_progress.set(false);
            return;
        }
        if frontier.is_some_and(|f| f < at) {
            return;
        }
        if self.emitter.emit(Some(at), &self.context, self.worker) {
            let windows = self
                .emitter
                .windows
                .iter()
                .map(|w| w.iter().copied().collect())
                .collect();
            checkpoints.assembly.cut(self.emitter.seq, windows);
        }
    }

    /// Hands a complete checkpoint to the writer, learns of durable ones, and at the end
    /// of a complete input writes the checkpoint that says so.
    fn write_checkpoints(&mut self, frontier: Option<Millis>) {
        let Some(checkpoints) = self.checkpoints.as_mut() else {
            if self.emitter.finished {
                self.emitter.written = None;
            } else if let (Some(capability), f) =
                (self.emitter.written.as_mut(), self.emitter.previous)
            {
                if *capability.time() < f {
                    capability.downgrade(&f);
                }
            }
            return;
        };
        if let Some(checkpoint) = checkpoints.assembly.take_complete() {
            checkpoints.writer.submit(checkpoint);
        }
        let mut outcomes = Vec::new();
        outcomes.extend(checkpoints.writer.poll());
        let complete =
            self.emitter.finished && frontier.is_none() && self.context.failure.borrow().is_none();
        if complete {
            outcomes.extend(checkpoints.writer.wait());
            let marker =
                Checkpoint::complete(checkpoints.assembly.identity().clone(), self.emitter.seq);
            checkpoints.writer.submit(marker);
            outcomes.extend(checkpoints.writer.wait());
        }
        for outcome in outcomes {
            match outcome {
                Ok(written) => {
                    tracing::debug!(frontier = ?written.frontier, bytes = written.bytes, took = ?written.took, path = %written.path.display(), "checkpoint written");
                    self.context.progress.note_checkpoint(&written);
                    checkpoints.clock.in_progress.set(false);
                    if let (Some(capability), Some(f)) =
                        (self.emitter.written.as_mut(), written.frontier)
                    {
                        if *capability.time() < f {
                            capability.downgrade(&f);
                        }
                    }
                }
                Err(error) => {
                    let message = format!("cannot write a checkpoint: {error}");
                    self.context.stop.request(StopReason::Failure {
                        worker: self.worker,
                        message: message.clone(),
                    });
                    self.context
                        .failure
                        .borrow_mut()
                        .get_or_insert(SinkError::Other {
                            sink: "state".to_owned(),
                            message,
                        });
                    self.emitter.finished = true;
                    self.emitter.written = None;
                    return;
                }
            }
        }
        if self.emitter.finished {
            self.emitter.written = None;
        }
    }
}
