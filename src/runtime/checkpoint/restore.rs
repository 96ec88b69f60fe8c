//! Sending a checkpoint back into a starting dataflow: partitions to the ingest
//! operators, groups to the dedup operators, pending records to where they were going.

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};

use super::{Checkpoint, Groups, PartitionState};
use crate::codec::decode;
use crate::dataflow::GroupState;
use crate::event::{Millis, Record, Rejected};

/// What every ingest operator takes from a checkpoint: the checkpoint's frontier and
/// every partition's state (each worker picks its own by name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredPartitions {
    /// The checkpoint's frontier.
    pub frontier: Millis,
    /// Every partition of the checkpoint.
    pub partitions: Vec<PartitionState>,
}

/// The streams a checkpoint is sent back on.
pub struct Restored<'scope> {
    /// Partition states, broadcast to every worker.
    pub partitions: Stream<'scope, Millis, Vec<RestoredPartitions>>,
    /// Dedup groups of every stream, at time 0 (before any frontier a sink holds).
    pub groups: Stream<'scope, Millis, Vec<GroupState<Record>>>,
    /// Records read but not applied at the checkpoint, at their entry times.
    pub events: VecCollection<'scope, Millis, Record>,
    /// Records rejected at or after the checkpoint's frontier, with their times.
    pub rejects: Stream<'scope, Millis, Vec<(Millis, Rejected)>>,
}

/// Builds the restore operator. On the worker given the checkpoint (worker 0 of process
/// 0) it sends everything at once, then drops its capabilities; elsewhere, and without a
/// checkpoint, it sends nothing.
///
/// # Errors
/// A group sequence of the checkpoint cannot be decoded (the file passed its checksum,
/// so this means another build wrote it).
pub fn restore<'scope>(
    scope: Scope<'scope, Millis>,
    checkpoint: Option<Checkpoint>,
) -> Result<Restored<'scope>, String> {
    let mut builder = OperatorBuilder::new("Restore".to_owned(), scope);
    let (partitions_output, partitions) = builder.new_output();
    let (groups_output, groups) = builder.new_output();
    let (events_output, events) = builder.new_output();
    let (rejects_output, rejects) = builder.new_output();

    let mut contents = match checkpoint {
        Some(checkpoint) => Some(Contents::decode(checkpoint)?),
        None => None,
    };
    let mut partitions_output =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<RestoredPartitions>>>::from(
            partitions_output,
        );
    let mut groups_output =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<GroupState<Record>>>>::from(groups_output);
    let mut events_output = OutputBuilder::<
        _,
        CapacityContainerBuilder<Vec<(Record, Millis, isize)>>,
    >::from(events_output);
    let mut rejects_output =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<(Millis, Rejected)>>>::from(rejects_output);

    builder.build(move |capabilities| {
        let mut capabilities = Some(capabilities);
        move |_frontiers| {
            let (Some(caps), Some(contents)) = (capabilities.take(), contents.take()) else {
                capabilities = None;
                return;
            };
            partitions_output
                .activate()
                .session(&caps[0])
                .give(contents.partitions);
            give_all(&mut groups_output, &caps[1], contents.groups);
            let events = contents.events.into_iter().map(|(r, t)| (r, t, 1isize));
            give_all(&mut events_output, &caps[2], events);
            give_all(&mut rejects_output, &caps[3], contents.rejects);
        }
    });

    Ok(Restored {
        partitions: partitions.broadcast(),
        groups,
        events: events.as_collection(),
        rejects,
    })
}

/// Gives every item under one capability.
fn give_all<D: timely::ExchangeData>(
    output: &mut OutputBuilder<Millis, CapacityContainerBuilder<Vec<D>>>,
    capability: &Capability<Millis>,
    items: impl IntoIterator<Item = D>,
) {
    output
        .activate()
        .session(capability)
        .give_iterator(items.into_iter());
}

/// A checkpoint's contents, decoded into what each output sends.
struct Contents {
    partitions: RestoredPartitions,
    groups: Vec<GroupState<Record>>,
    events: Vec<(Record, Millis)>,
    rejects: Vec<(Millis, Rejected)>,
}

impl Contents {
    fn decode(checkpoint: Checkpoint) -> Result<Contents, String> {
        let mut groups = Vec::new();
        for Groups { stream, bytes } in &checkpoint.groups {
            let decoded: Vec<GroupState<Record>> =
                decode(bytes).map_err(|e| format!("the {stream} groups: {e}"))?;
            if let Some(other) = decoded.iter().find(|g| g.winner.stream != *stream) {
                return Err(format!(
                    "the {stream} groups hold a record of the {} stream",
                    other.winner.stream
                ));
            }
            groups.extend(decoded);
        }
        Ok(Contents {
            partitions: RestoredPartitions {
                frontier: checkpoint.frontier.unwrap_or(Millis::MAX),
                partitions: checkpoint.partitions,
            },
            groups,
            events: checkpoint.events,
            rejects: checkpoint.rejects,
        })
    }
}

/// An aggregate update with dims in a key of `N` bytes.
type Update<const N: usize> = (
    crate::dataflow::AggregateKey<N>,
    Millis,
    crate::declare::Measures,
);

/// Drops the aggregate updates at times before the restored checkpoint's frontier: the
/// restored groups' effects, which the sinks already hold. Done on every worker before
/// the exchange to the emitter, so that restoring millions of records does not send
/// millions of updates to be thrown away. Updates are held back until `restored` (the
/// broadcast partition states) is complete, which says the frontier (none: nothing to
/// drop).
pub fn drop_restored<'scope, const N: usize>(
    aggregates: crate::dataflow::Aggregates<'scope, N>,
    restored: Stream<'scope, Millis, Vec<RestoredPartitions>>,
) -> crate::dataflow::Aggregates<'scope, N> {
    use timely::dataflow::channels::pact::Pipeline;
    use timely::dataflow::operators::generic::Operator;

    let mut floor: Option<Millis> = None;
    let mut known = false;
    let mut held: Vec<(Capability<Millis>, Vec<Update<N>>)> = Vec::new();
    aggregates
        .inner
        .binary_frontier(restored, Pipeline, Pipeline, "DropRestored", move |_, _| {
            move |(updates, _), (restored, restored_frontier), output| {
                restored.for_each(|_, data| {
                    for partitions in data.drain(..) {
                        floor =
                            Some(floor.map_or(partitions.frontier, |f| f.min(partitions.frontier)));
                    }
                });
                updates.for_each(|capability, data| {
                    let least = capability.least().copied().unwrap_or_default();
                    held.push((capability.delayed(&least, 0), std::mem::take(data)));
                });
                known = known || restored_frontier.frontier().is_empty();
                if !known {
                    return;
                }
                let keep = |(_, time, _): &Update<N>| floor.is_none_or(|f| *time >= f);
                for (capability, mut data) in held.drain(..) {
                    data.retain(keep);
                    if !data.is_empty() {
                        output.session(&capability).give_container(&mut data);
                    }
                }
            }
        })
        .as_collection()
}
