//! The ad funnel: dedup, the three joins with re-attribution, and windowed measures.

use std::sync::Arc;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::dataflow::operators::core::{Concat, Partition};
use timely::dataflow::operators::generic::operator::empty;
use timely::dataflow::Stream;

use super::{
    Attribute, Attribution, Checkpointing, DedupById, DedupCounters, DedupSnapshot, FunnelSettings,
    GroupState, Measures, Parent, ParentTrace,
};
use crate::event::{Bid, Click, Conversion, Event, Impression, Millis, Record};

/// The aggregate key: window start and dims.
pub type AggregateKey = (Millis, Attribution);

/// The funnel's output: contributions to the measures of each `(window, dims)`, with the
/// measures as the difference type, so the aggregate of a key is the sum of its updates.
pub type Aggregates<'scope> = VecCollection<'scope, Millis, AggregateKey, Measures>;

/// Dedup counts per stream, indexed by [`StreamKind::index`].
pub type FunnelDedupCounts = [Arc<DedupCounters>; 4];

/// Dedup groups to take back from a checkpoint, one stream per record type.
pub struct RestoredGroups<'scope> {
    /// Bid groups.
    pub bids: Stream<'scope, Millis, Vec<GroupState<Bid>>>,
    /// Impression groups.
    pub impressions: Stream<'scope, Millis, Vec<GroupState<Impression>>>,
    /// Click groups.
    pub clicks: Stream<'scope, Millis, Vec<GroupState<Click>>>,
    /// Conversion groups.
    pub conversions: Stream<'scope, Millis, Vec<GroupState<Conversion>>>,
}

/// Builds the ad funnel over ingested events (docs/design.md §4-§6).
///
/// - each stream is de-duplicated by id, and every record is retracted at its release
///   time, which releases its join state (retention);
/// - impressions and clicks are attributed to their bid, conversions to their click's
///   attribution; a child without a parent is *unattributed* until the parent arrives;
/// - every record contributes its measures to the window of its own `ts`.
///
/// It also returns handles to the join arrangements, so the runtime can report how many
/// updates they hold (the handles must have their compaction advanced, or be dropped).
///
/// Contributions to a window at times at or after the window is final (releases of state,
/// parents arriving after their child's window is final) are still in the collection;
/// the emitter drops them, so that a final window's last value stands.
pub fn ad_funnel<'scope>(
    events: VecCollection<'scope, Millis, Event>,
    settings: &FunnelSettings,
    counts: &FunnelDedupCounts,
) -> (Aggregates<'scope>, Vec<ParentTrace>) {
    let scope = events.inner.scope();
    let restored = RestoredGroups {
        bids: empty(scope),
        impressions: empty(scope),
        clicks: empty(scope),
        conversions: empty(scope),
    };
    let (aggregates, traces, _) =
        ad_funnel_checkpointed(events, settings, counts, empty(scope), restored);
    (aggregates, traces)
}

/// [`ad_funnel`] taking part in checkpoints: its dedup operators answer every request of
/// `requests` (checkpoint frontiers, broadcast, each at its own time) with a
/// [`DedupSnapshot`], and first take back the `restored` groups. Everything downstream of
/// dedup (joins, aggregates) is a function of the groups, so it needs no state of its
/// own in a checkpoint.
pub fn ad_funnel_checkpointed<'scope>(
    events: VecCollection<'scope, Millis, Event>,
    settings: &FunnelSettings,
    counts: &FunnelDedupCounts,
    requests: Stream<'scope, Millis, Vec<Millis>>,
    restored: RestoredGroups<'scope>,
) -> (
    Aggregates<'scope>,
    Vec<ParentTrace>,
    Stream<'scope, Millis, Vec<DedupSnapshot>>,
) {
    let lateness = settings.lateness;
    let group_by = settings.group_by.clone();
    let window = move |ts: Millis| lateness.window_start(ts);

    let mut parts = events
        .inner
        .partition::<timely::container::CapacityContainerBuilder<Vec<_>>, _, _>(4, |update| {
            (update.0.kind().index() as u64, update)
        })
        .into_iter()
        .map(AsCollection::as_collection);
    let mut next = || parts.next().expect("four streams");
    let (bids, impressions, clicks, conversions) = (next(), next(), next(), next());

    let (bids, bid_snapshots) = dedup_stream(
        bids.flat_map(|e| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        }),
        lateness,
        counts,
        requests.clone(),
        restored.bids,
    );
    let (impressions, impression_snapshots) = dedup_stream(
        impressions.flat_map(|e| match e {
            Event::Impression(i) => Some(i),
            _ => None,
        }),
        lateness,
        counts,
        requests.clone(),
        restored.impressions,
    );
    let (clicks, click_snapshots) = dedup_stream(
        clicks.flat_map(|e| match e {
            Event::Click(c) => Some(c),
            _ => None,
        }),
        lateness,
        counts,
        requests.clone(),
        restored.clicks,
    );
    let (conversions, conversion_snapshots) = dedup_stream(
        conversions.flat_map(|e| match e {
            Event::Conversion(c) => Some(c),
            _ => None,
        }),
        lateness,
        counts,
        requests.clone(),
        restored.conversions,
    );
    let snapshots = bid_snapshots
        .concat(impression_snapshots)
        .concat(click_snapshots)
        .concat(conversion_snapshots);

    let bid_dims = {
        let group_by = group_by.clone();
        bids.clone()
            .map(move |b| {
                let attribution = Attribution::Dims(group_by.project(&b));
                (
                    b.bid_id,
                    Parent {
                        ts: b.ts,
                        attribution,
                    },
                )
            })
            .arrange_by_key_named("BidsById")
    };
    let mut traces = vec![bid_dims.trace.clone()];
    let impressions = impressions
        .map(|i| (i.bid_id, i))
        .attribute(bid_dims.clone(), lateness.bid_bound);
    let clicks = clicks
        .map(|c| (c.bid_id, c))
        .attribute(bid_dims, lateness.bid_bound);
    let click_attribution = clicks
        .clone()
        .map(|(c, attribution)| {
            (
                c.click_id,
                Parent {
                    ts: c.ts,
                    attribution,
                },
            )
        })
        .arrange_by_key_named("ClicksById");
    traces.push(click_attribution.trace.clone());
    let conversions = conversions
        .map(|c| (c.click_id, c))
        .attribute(click_attribution, lateness.click_bound);

    let bids = bids.explode(move |b| {
        Some((
            (window(b.ts), Attribution::Dims(group_by.project(&b))),
            Measures::bid(),
        ))
    });
    let impressions = impressions
        .explode(move |(i, a)| Some(((window(i.ts), a), Measures::impression(i.cost_micros))));
    let clicks = clicks.explode(move |(c, a)| Some(((window(c.ts), a), Measures::click())));
    let conversions = conversions
        .explode(move |(c, a)| Some(((window(c.ts), a), Measures::conversion(c.value_micros))));
    let aggregates = bids.concat(impressions).concat(clicks).concat(conversions);
    (aggregates, traces, snapshots)
}

/// Dedups one stream, releasing each record at its release time.
fn dedup_stream<'scope, R: Record + timely::ExchangeData>(
    records: VecCollection<'scope, Millis, R>,
    lateness: super::Lateness,
    counts: &FunnelDedupCounts,
    requests: Stream<'scope, Millis, Vec<Millis>>,
    restore: Stream<'scope, Millis, Vec<GroupState<R>>>,
) -> (
    VecCollection<'scope, Millis, R>,
    Stream<'scope, Millis, Vec<DedupSnapshot>>,
) {
    records.dedup_by_id_checkpointed(
        move |r| lateness.release_time(R::KIND, r.ts()),
        Arc::clone(&counts[R::KIND.index()]),
        Checkpointing { requests, restore },
    )
}
