//! One worker's dataflow: ingestion, the control stream, the funnel, the emitter, and (in
//! a run with state) the restore operator and checkpoint parts.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use differential_dataflow::trace::implementations::spine_fueled::SpineBatch;
use differential_dataflow::trace::TraceReader;
use timely::dataflow::operators::core::{Concat, Map};
use timely::dataflow::{ProbeHandle, Scope};
use timely::progress::frontier::AntichainRef;

use super::checkpoint::{drop_restored, restore, Checkpoint, Part};
use super::control::{control, CheckpointClock, Control};
use super::emit::{emit, Emission, EmitCheckpoints, EmitInputs, EmitStart};
use super::ingest::{ingest, ingest_checkpointed, IngestCheckpointing, IngestContext};
use super::{EmitContext, Progress};
use crate::connectors::{Partition, Sink};
use crate::dataflow::{ad_funnel_checkpointed, ParentTrace};
use crate::declare::{FunnelSettings, COMPACT_KEY_BYTES, KEY_BYTES};
use crate::event::Millis;
use crate::observe::{Observer, StateGauge};

/// What one worker builds its dataflow from.
pub(super) struct WorkerPlan {
    pub(super) settings: FunnelSettings,
    pub(super) partitions: Vec<Box<dyn Partition>>,
    /// The sinks of each aggregate (worker 0 of process 0 only).
    pub(super) sinks: Vec<Vec<Box<dyn Sink>>>,
    pub(super) ingest: IngestContext,
    pub(super) emit: EmitContext,
    /// The run writes checkpoints (every worker of the cluster builds the same shape).
    pub(super) checkpointing: bool,
    /// Worker 0 of process 0 of a run with state: the checkpoint to restore, where the
    /// emitter starts, and what it needs to write checkpoints.
    pub(super) lead: Option<Lead>,
}

/// What the worker that owns the sinks gets in a run with state.
pub(super) struct Lead {
    pub(super) checkpoint: Option<Checkpoint>,
    pub(super) start: Option<EmitStart>,
    pub(super) checkpoints: EmitCheckpoints,
}

/// Builds the funnel's dataflow on one worker, with dims in compact keys when the dims
/// of all aggregates fit ([`COMPACT_KEY_BYTES`]); returns the handles to its join
/// arrangements (for the gauge of records held).
///
/// # Errors
/// The checkpoint to restore cannot be decoded.
pub(super) fn build(
    scope: Scope<'_, Millis>,
    plan: WorkerPlan,
    probe: &ProbeHandle<Millis>,
    written: &ProbeHandle<Millis>,
) -> Result<Vec<Box<dyn HeldTrace>>, String> {
    if plan.settings.dims.width() <= COMPACT_KEY_BYTES {
        build_keyed::<COMPACT_KEY_BYTES>(scope, plan, probe, written)
    } else {
        build_keyed::<KEY_BYTES>(scope, plan, probe, written)
    }
}

/// [`build`] with dims in keys of `N` bytes.
fn build_keyed<const N: usize>(
    scope: Scope<'_, Millis>,
    plan: WorkerPlan,
    probe: &ProbeHandle<Millis>,
    written: &ProbeHandle<Millis>,
) -> Result<Vec<Box<dyn HeldTrace>>, String> {
    let WorkerPlan {
        settings,
        partitions,
        sinks,
        ingest: ingest_context,
        emit: emit_context,
        checkpointing,
        lead,
    } = plan;
    let (checkpoint, start, checkpoints) = match lead {
        Some(lead) => (lead.checkpoint, lead.start, Some(lead.checkpoints)),
        None => (None, None, None),
    };
    let clock: Option<CheckpointClock> = checkpoints.as_ref().map(|c| c.clock.clone());
    let restored = restore(scope, checkpoint)?;
    let heard = Rc::new(RefCell::new(Vec::new()));
    let control_probe = ProbeHandle::new();
    let stop = ingest_context.stop.clone();
    let restored_partitions = restored.partitions.clone();
    let ingested = if checkpointing {
        let checkpointing = IngestCheckpointing {
            restore: restored.partitions,
            heard: Rc::clone(&heard),
            control: control_probe.clone(),
        };
        ingest_checkpointed(scope, &settings, partitions, ingest_context, checkpointing)
    } else {
        ingest(scope, &settings, partitions, ingest_context)
    };
    let control = control(ingested.notices, clock, stop, heard, &control_probe);
    let requests = control.clone().flat_map(|c| match c {
        Control::Checkpoint(frontier) => Some(frontier),
        Control::Stop(_) => None,
    });
    let records = ingested.records.concat(restored.events);
    let rejects = ingested.rejects.concat(restored.rejects);
    let dedup_counts = emit_context.progress.dedup.clone();
    let (aggregates, traces, snapshots) =
        ad_funnel_checkpointed::<N>(records, &settings, &dedup_counts, requests, restored.groups);
    let aggregates = drop_restored(aggregates, restored_partitions);
    let parts = ingested
        .parts
        .map(|part| Part::Ingest(Box::new(part)))
        .concat(snapshots.map(|(stream, snapshot)| Part::Dedup(stream, snapshot)));
    emit(
        EmitInputs {
            aggregates,
            rejects,
            control,
            parts,
        },
        Emission {
            settings,
            sinks,
            context: emit_context,
            processed: probe.clone(),
            written: written.clone(),
            start,
            checkpoints,
        },
    );
    Ok(traces
        .into_iter()
        .map(|trace| Box::new(trace) as Box<dyn HeldTrace>)
        .collect())
}

/// A handle to a join arrangement, whatever the width of its keys.
pub(super) trait HeldTrace {
    /// Advances the compaction of the handle to `frontier`; returns the updates held.
    fn advance_to(&mut self, frontier: AntichainRef<'_, Millis>) -> i64;
}

impl<const N: usize> HeldTrace for ParentTrace<N> {
    fn advance_to(&mut self, frontier: AntichainRef<'_, Millis>) -> i64 {
        self.set_logical_compaction(frontier);
        self.set_physical_compaction(frontier);
        let mut held = 0;
        self.map_spans(|span| {
            held += span.inner.as_ref().map_or(0, |batch| batch.len() as i64);
        });
        held
    }
}

/// Reports how many updates this worker's join arrangements hold, advancing the
/// compaction of its trace handles with the frontier so that holding them never keeps
/// state alive.
pub(super) struct ArrangedGauge {
    traces: Vec<Box<dyn HeldTrace>>,
    progress: Arc<Progress>,
    reported: i64,
    observer: Observer,
    state: StateGauge,
}

impl ArrangedGauge {
    pub(super) fn new(
        traces: Vec<Box<dyn HeldTrace>>,
        progress: Arc<Progress>,
        observer: &Observer,
    ) -> ArrangedGauge {
        ArrangedGauge {
            traces,
            progress,
            reported: 0,
            observer: observer.clone(),
            state: observer.state_gauge(),
        }
    }

    pub(super) fn observe(&mut self, probe: &ProbeHandle<Millis>) {
        let frontier = probe.with_frontier(|f| f.to_owned());
        self.observer.dataflow_frontier(frontier.first().copied());
        if frontier.is_empty() {
            self.traces.clear();
        }
        let mut per_trace = vec![0i64; self.traces.len()];
        for (trace, held) in self.traces.iter_mut().zip(per_trace.iter_mut()) {
            *held = trace.advance_to(frontier.borrow());
        }
        self.state.report(&per_trace);
        let held: i64 = per_trace.iter().sum();
        self.progress
            .arranged
            .fetch_add(held - self.reported, Ordering::Relaxed);
        self.reported = held;
    }
}
