//! The ad funnel: dedup, the three joins with re-attribution, and every declared
//! aggregate's windowed measures.

use std::sync::Arc;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::dataflow::operators::core::{Concat, Map, Partition};
use timely::dataflow::operators::generic::operator::empty;
use timely::dataflow::Stream;

use super::distinct::distinct_counts;
use super::{
    AtEnd, Attribute, Checkpointing, DedupById, DedupCounters, DedupSnapshot, Fact, Facts,
    GroupState, Parent, ParentTrace,
};
use crate::declare::{Attribution, FunnelSettings, Measures};
use crate::event::{Millis, Record, StreamKind};

pub use super::facts::AggregateKey;

/// The funnel's output: contributions to the measures of each `(aggregate, window, dims)`,
/// with the measures as the difference type, so the aggregate of a key is the sum of its
/// updates.
pub type Aggregates<'scope, const N: usize> =
    VecCollection<'scope, Millis, AggregateKey<N>, Measures>;

/// Dedup counts per stream, indexed by [`StreamKind::index`].
pub type FunnelDedupCounts = [Arc<DedupCounters>; 4];

/// A dedup operator's answer to a checkpoint request, with the stream it deduplicates.
pub type StreamSnapshot = (StreamKind, DedupSnapshot);

/// Each stream's deduplicated records paired with their attribution.
pub(super) type Attributed<'scope, C, const N: usize> =
    VecCollection<'scope, Millis, (C, Attribution<N>)>;

/// Builds the ad funnel over ingested records (docs/design.md §4-§6, §12).
///
/// - each stream is de-duplicated by id, and every record is retracted at its release
///   time, which releases its join state (retention);
/// - impressions and clicks are attributed to their bid, conversions to their click's
///   attribution; a child without a parent is *unattributed* until the parent arrives;
///   what a parent passes on is its dims for every aggregate at once;
/// - every record contributes to each aggregate's window of its own `ts`: counts and sums
///   through its compact [`Fact`], distinct counts through a differential `distinct`.
///
/// It also returns handles to the join arrangements, so the runtime can report how many
/// updates they hold (the handles must have their compaction advanced, or be dropped).
///
/// Contributions to a window at times at or after the window is final (releases of state,
/// parents arriving after their child's window is final) are still in the collection;
/// the emitter drops them, so that a final window's last value stands. For the same
/// reason, the state still held when the input is complete is dropped without its
/// releases ([`AtEnd::Forget`]): they would all come at such times.
pub fn ad_funnel<'scope, const N: usize>(
    records: VecCollection<'scope, Millis, Record>,
    settings: &FunnelSettings,
    counts: &FunnelDedupCounts,
) -> (Aggregates<'scope, N>, Vec<ParentTrace<N>>) {
    let scope = records.inner.scope();
    let (aggregates, traces, _) =
        ad_funnel_checkpointed(records, settings, counts, empty(scope), empty(scope));
    (aggregates, traces)
}

/// [`ad_funnel`] taking part in checkpoints: its dedup operators answer every request of
/// `requests` (checkpoint frontiers, broadcast, each at its own time) with a
/// [`DedupSnapshot`] of their stream, and first take back the `restored` groups (each goes
/// to the dedup operator of its winner's stream). Everything downstream of dedup (joins,
/// facts, distinct counts, aggregates) is a function of the groups, so it needs no state
/// of its own in a checkpoint.
pub fn ad_funnel_checkpointed<'scope, const N: usize>(
    records: VecCollection<'scope, Millis, Record>,
    settings: &FunnelSettings,
    counts: &FunnelDedupCounts,
    requests: Stream<'scope, Millis, Vec<Millis>>,
    restored: Stream<'scope, Millis, Vec<GroupState<Record>>>,
) -> (
    Aggregates<'scope, N>,
    Vec<ParentTrace<N>>,
    Stream<'scope, Millis, Vec<StreamSnapshot>>,
) {
    let lateness = settings.lateness;
    let facts = Arc::new(Facts::new(settings));

    let mut parts = records
        .inner
        .partition::<timely::container::CapacityContainerBuilder<Vec<_>>, _, _>(4, |update| {
            (update.0.stream.index() as u64, update)
        })
        .into_iter()
        .map(AsCollection::as_collection);
    let mut restored = restored
        .partition::<timely::container::CapacityContainerBuilder<Vec<_>>, _, _>(4, |group| {
            (group.winner.stream.index() as u64, group)
        })
        .into_iter();
    let mut snapshots: Option<Stream<'scope, Millis, Vec<StreamSnapshot>>> = None;
    let [bids, impressions, clicks, conversions] = StreamKind::ALL.map(|kind| {
        let stream = parts.next().expect("four streams");
        // Every change at or after a record's release time is thrown away by the emitter
        // (the windows it can affect are final), so the end of the input need not
        // retract what dedup holds.
        let checkpointing = Checkpointing {
            requests: requests.clone(),
            restore: restored.next().expect("four streams"),
            at_end: AtEnd::Forget,
        };
        let (deduplicated, answers) = stream.dedup_by_id_checkpointed(
            move |r: &Record| lateness.release_time(kind, r.ts),
            Arc::clone(&counts[kind.index()]),
            checkpointing,
        );
        let answers = answers.map(move |snapshot| (kind, snapshot));
        snapshots = Some(match snapshots.take() {
            Some(all) => all.concat(answers),
            None => answers,
        });
        deduplicated
    });
    let snapshots = snapshots.expect("four streams");

    let bid_facts = {
        let facts = Arc::clone(&facts);
        bids.clone()
            .map(move |r| (facts.fact(&r), facts.bid_attribution(&r)))
    };
    let bid_parents = bid_facts
        .clone()
        .map(as_parent)
        .arrange_by_key_named("BidsById");
    let mut traces = vec![bid_parents.trace.clone()];
    let keyed = |records: VecCollection<'scope, Millis, Record>| {
        let facts = Arc::clone(&facts);
        records.map(move |r| (facts.parent(&r), facts.fact(&r)))
    };
    let impression_facts =
        keyed(impressions.clone()).attribute(bid_parents.clone(), lateness.bid_bound);
    let click_facts = keyed(clicks.clone()).attribute(bid_parents.clone(), lateness.bid_bound);
    let click_parents = click_facts
        .clone()
        .map(as_parent)
        .arrange_by_key_named("ClicksById");
    traces.push(click_parents.trace.clone());
    let conversion_facts =
        keyed(conversions.clone()).attribute(click_parents.clone(), lateness.click_bound);

    let attributed: [(StreamKind, Attributed<'scope, Fact, N>); 4] = [
        (StreamKind::Bid, bid_facts),
        (StreamKind::Impression, impression_facts),
        (StreamKind::Click, click_facts),
        (StreamKind::Conversion, conversion_facts),
    ];
    let mut aggregates: Option<Aggregates<'scope, N>> = None;
    for aggregate in 0..settings.aggregates.len() {
        for (stream, facts_of_stream) in &attributed {
            if !facts.reads(aggregate, *stream) {
                continue;
            }
            let (facts, stream) = (Arc::clone(&facts), *stream);
            let measured = facts_of_stream.clone().explode(move |(fact, attribution)| {
                facts.contribution(aggregate, stream, &fact, &attribution)
            });
            aggregates = Some(match aggregates {
                Some(all) => all.concat(measured),
                None => measured,
            });
        }
    }
    let streams = [bids, impressions, clicks, conversions];
    let parents = (bid_parents, click_parents);
    if let Some(distinct) = distinct_counts(settings, &streams, &parents) {
        aggregates = Some(match aggregates {
            Some(all) => all.concat(distinct),
            None => distinct,
        });
    }
    let aggregates = aggregates.unwrap_or_else(|| {
        streams[0]
            .clone()
            .explode(|_| None::<(AggregateKey<N>, Measures)>)
    });
    (aggregates, traces, snapshots)
}

/// An attributed parent record as its children look it up: by its id, with its event
/// time and the attribution it passes on.
fn as_parent<const N: usize>(
    (fact, attribution): (Fact, Attribution<N>),
) -> (crate::event::EventId, Parent<N>) {
    (
        fact.id,
        Parent {
            ts: fact.ts,
            attribution,
        },
    )
}
