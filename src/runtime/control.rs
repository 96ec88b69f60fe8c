//! The control stream: stop notices and checkpoint requests, broadcast to every worker.
//!
//! Every worker's stop notices (from ingestion) pass through a *checkpoint clock* and are
//! broadcast. On worker 0 of a run that writes checkpoints, the clock also asks for a
//! checkpoint every `interval`: a request at frontier `F`, sent at time `F`, where `F` is
//! the frontier of ingestion over the whole cluster at that moment. The clock holds its
//! capability at that frontier, so no operator downstream of the control stream can
//! pass a time before learning whether a checkpoint is requested there: the dedup
//! operators snapshot their state exactly at `F`, the emitter cuts a batch exactly at
//! `F`, and each worker's ingestion answers once its own frontier has reached `F`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::{Inspect, Probe};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::{ProbeHandle, Stream};

use super::{Stop, StopNotice};
use crate::event::Millis;

/// One message of the control stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// A worker stops reading; the run is being abandoned.
    Stop(StopNotice),
    /// A checkpoint at this frontier (the message's time).
    Checkpoint(Millis),
}

/// Worker 0's checkpoint schedule, shared with its emitter.
#[derive(Clone, Debug)]
pub struct CheckpointClock {
    /// Least wall-clock time between the starts of two checkpoints.
    pub interval: Duration,
    /// True from a request until the emitter has made its checkpoint durable (or given it
    /// up): one checkpoint at a time.
    pub in_progress: Rc<Cell<bool>>,
    /// The frontier of the last checkpoint requested (or restored): a new one must be
    /// later.
    pub last: Rc<Cell<Millis>>,
}

/// Builds the control stream from every worker's stop `notices`: through the checkpoint
/// clock (`clock`, on worker 0 of a run with checkpoints), broadcast, and heard on each
/// worker: a stop notice makes `stop` stop; a checkpoint request is pushed to `heard`
/// (for this worker's ingestion). `probe` sees the stream's frontier after hearing.
pub fn control<'scope>(
    notices: Stream<'scope, Millis, Vec<StopNotice>>,
    clock: Option<CheckpointClock>,
    stop: Stop,
    heard: Rc<RefCell<Vec<Millis>>>,
    probe: &ProbeHandle<Millis>,
) -> Stream<'scope, Millis, Vec<Control>> {
    let scope = notices.scope();
    let mut builder = OperatorBuilder::new("CheckpointClock".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let mut input = builder.new_input(notices, Pipeline);
    let (output, controls) = builder.new_output();
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Control>>>::from(output);
    builder.build(move |mut capabilities| {
        let mut held = clock.as_ref().and(capabilities.pop());
        let mut due = clock.as_ref().map(|c| Instant::now() + c.interval);
        move |frontiers| {
            let mut output = output.activate();
            input.for_each(|capability, notices| {
                output
                    .session(&capability)
                    .give_iterator(notices.drain(..).map(Control::Stop));
            });
            let (Some(clock), Some(capability), Some(next)) = (&clock, held.as_mut(), due) else {
                return;
            };
            let Some(frontier) = frontiers[0].frontier().iter().next().copied() else {
                held = None;
                return;
            };
            if *capability.time() < frontier {
                capability.downgrade(&frontier);
            }
            let now = Instant::now();
            if now < next {
                activator.activate_after(next - now);
                return;
            }
            if clock.in_progress.get() || frontier <= clock.last.get() {
                // Wait for the checkpoint in flight, or for the frontier to move.
                activator.activate_after(Duration::from_millis(10));
                return;
            }
            clock.in_progress.set(true);
            clock.last.set(frontier);
            output
                .session(&*capability)
                .give(Control::Checkpoint(frontier));
            due = Some(now + clock.interval);
            activator.activate_after(clock.interval);
        }
    });
    controls
        .broadcast()
        .inspect(move |control| match control {
            Control::Stop(notice) => stop.hear(notice.reason.clone()),
            Control::Checkpoint(frontier) => heard.borrow_mut().push(*frontier),
        })
        .probe_with(probe)
}
