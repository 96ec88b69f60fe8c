//! Exact distinct counts: each declared `count_distinct` measure as a differential
//! `distinct` over `(aggregate, window, dims, value)`.

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

use super::funnel::{AggregateKey, Aggregates, Attributed};
use super::{Attribute, Parents};
use crate::declare::{Attribution, FunnelSettings, MeasureKind, Measures};
use crate::event::{EventId, Keyed, Millis, Record, StreamKind};

/// Bytes of a distinct-counted value: the longest value encoding (a string's).
const VALUE_BYTES: usize = 24;

/// A record as a distinct count sees it: its id and event time (for the joins) and the
/// encoding of the counted field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sighting {
    /// The record's id.
    pub id: EventId,
    /// Its event time.
    pub ts: Millis,
    /// The counted value's encoding.
    pub value: [u8; VALUE_BYTES],
}

impl Keyed for Sighting {
    fn id(&self) -> EventId {
        self.id
    }

    fn ts(&self) -> Millis {
        self.ts
    }
}

/// The distinct counts of every aggregate: for each `count_distinct` measure `j` of
/// aggregate `a`, one `+1` in slot `j` per distinct value present in `(a, window, dims)`.
/// `None` when no aggregate counts distinct values.
pub(super) fn distinct_counts<'scope, const N: usize>(
    settings: &FunnelSettings,
    streams: &[VecCollection<'scope, Millis, Record>; 4],
    parents: &(Parents<'scope, N>, Parents<'scope, N>),
) -> Option<Aggregates<'scope, N>> {
    let mut all: Option<Aggregates<'scope, N>> = None;
    for (a, aggregate) in settings.aggregates.iter().enumerate() {
        for (j, measure) in aggregate.measures.iter().enumerate() {
            let MeasureKind::CountDistinct { field } = measure.kind else {
                continue;
            };
            let stream = measure.stream;
            let schema = std::sync::Arc::clone(settings.schema.stream(stream));
            let filter = measure.filter.clone();
            let sighted = streams[stream.index()].clone().flat_map(move |record| {
                if filter
                    .as_ref()
                    .is_some_and(|f| !f.matches(&schema, &record))
                {
                    return None;
                }
                let mut value = [0u8; VALUE_BYTES];
                schema.get(&record, field).encode(&mut value);
                let sighting = Sighting {
                    id: record.id,
                    ts: record.ts,
                    value,
                };
                Some((schema.parent(&record), record, sighting))
            });
            let attributed = attribute(settings, stream, sighted, parents);
            let (window, projection) = (aggregate.window, aggregate.projection.clone());
            let counted = attributed
                .map(move |(sighting, attribution)| {
                    (
                        (
                            a as u8,
                            window.start(sighting.ts),
                            projection.apply(&attribution),
                        ),
                        sighting.value,
                    )
                })
                .distinct()
                .explode(move |(key, _value): (AggregateKey<N>, _)| {
                    let mut one = Measures::default();
                    one.set(j, 1);
                    Some((key, one))
                });
            all = Some(match all {
                Some(all) => all.concat(counted),
                None => counted,
            });
        }
    }
    all
}

/// Pairs each sighting with its record's attribution: a bid's own dims, or its parent's.
fn attribute<'scope, const N: usize>(
    settings: &FunnelSettings,
    stream: StreamKind,
    sighted: VecCollection<'scope, Millis, (EventId, Record, Sighting)>,
    parents: &(Parents<'scope, N>, Parents<'scope, N>),
) -> Attributed<'scope, Sighting, N> {
    let lateness = settings.lateness;
    match stream {
        StreamKind::Bid => {
            let (bids, dims) = (
                std::sync::Arc::clone(settings.schema.stream(StreamKind::Bid)),
                settings.dims.clone(),
            );
            sighted.map(move |(_, record, sighting)| {
                (sighting, Attribution::Dims(dims.key_of(&bids, &record)))
            })
        }
        StreamKind::Impression | StreamKind::Click => sighted
            .map(|(parent, _, sighting)| (parent, sighting))
            .attribute(parents.0.clone(), lateness.bid_bound),
        StreamKind::Conversion => sighted
            .map(|(parent, _, sighting)| (parent, sighting))
            .attribute(parents.1.clone(), lateness.click_bound),
    }
}
