//! What the joins and windows carry of a record: a compact, fixed-size fact (id, event
//! time, the fields its measures sum, the results of their filters), and how a fact
//! contributes to each aggregate's measures.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::declare::{
    Attribution, FunnelSettings, MeasureKind, Measures, StreamSchema, MAX_SUMMED_FIELDS,
};
use crate::event::{EventId, Keyed, Millis, Record, StreamKind};

/// A deduplicated record as the joins and windows see it.
///
/// `values[k]` is the `k`-th summed field of the record's stream; bit `b` of `flags` says
/// whether the record meets the stream's `b`-th filter. Nothing else of the record is
/// carried: its dims come from its parent through the joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fact {
    /// The record's own id.
    pub id: EventId,
    /// Its event time.
    pub ts: Millis,
    /// The values of the stream's summed fields.
    pub values: [i64; MAX_SUMMED_FIELDS],
    /// The results of the stream's filters, one bit each.
    pub flags: u32,
}

impl Keyed for Fact {
    fn id(&self) -> EventId {
        self.id
    }

    fn ts(&self) -> Millis {
        self.ts
    }
}

/// How one measure reads a fact: count or a summed field, under a filter or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Term {
    /// The measure's position in its aggregate.
    slot: usize,
    /// `None`: 1 per record; `Some(k)`: the `k`-th summed field.
    value: Option<usize>,
    /// The filter bit, if filtered.
    filter: Option<u32>,
}

/// The facts of one stream: which fields are summed and which filters are evaluated.
#[derive(Clone, Debug)]
struct StreamFacts {
    schema: Arc<StreamSchema>,
    summed: Vec<usize>,
    filters: Vec<crate::declare::Filter>,
}

/// The plan that turns records into facts and facts into measures, from the settings.
///
/// # Examples
/// ```
/// use diffmill::dataflow::Facts;
/// use diffmill::declare::{Attribution, FunnelSettings, Measures};
/// use diffmill::event::{Event, Impression, Record, StreamKind};
///
/// let facts = Facts::new(&FunnelSettings::default());
/// let impression = Record::from(Event::Impression(Impression {
///     impression_id: 1, bid_id: 2, ts: 3, cost_micros: 250 }));
/// let fact = facts.fact(&impression);
/// let unattributed: Attribution = Attribution::Unattributed;
/// let (key, delta) = facts
///     .contribution(0, StreamKind::Impression, &fact, &unattributed)
///     .unwrap();
/// assert_eq!(key, (0, 0, Attribution::Unattributed));
/// assert_eq!(delta, Measures::impression(250));
/// ```
#[derive(Clone, Debug)]
pub struct Facts {
    settings: FunnelSettings,
    streams: Vec<StreamFacts>,
    /// Per aggregate, per stream: the terms of its measures over that stream.
    terms: Vec<[Vec<Term>; 4]>,
}

impl Facts {
    /// The plan of `settings` (validated: at most [`MAX_SUMMED_FIELDS`] summed fields and
    /// 32 filters per stream).
    pub fn new(settings: &FunnelSettings) -> Facts {
        let mut streams: Vec<StreamFacts> = StreamKind::ALL
            .iter()
            .map(|&kind| StreamFacts {
                schema: Arc::clone(settings.schema.stream(kind)),
                summed: Vec::new(),
                filters: Vec::new(),
            })
            .collect();
        let mut terms = Vec::with_capacity(settings.aggregates.len());
        for aggregate in settings.aggregates.iter() {
            let mut mine: [Vec<Term>; 4] = Default::default();
            for (slot, measure) in aggregate.measures.iter().enumerate() {
                let stream = &mut streams[measure.stream.index()];
                let value = match measure.kind {
                    MeasureKind::Count => None,
                    MeasureKind::Sum { field } => Some(position(&mut stream.summed, field)),
                    MeasureKind::CountDistinct { .. } => continue,
                };
                let filter = measure
                    .filter
                    .as_ref()
                    .map(|f| position(&mut stream.filters, f.clone()) as u32);
                mine[measure.stream.index()].push(Term {
                    slot,
                    value,
                    filter,
                });
            }
            terms.push(mine);
        }
        Facts {
            settings: settings.clone(),
            streams,
            terms,
        }
    }

    /// The fact of a record.
    pub fn fact(&self, record: &Record) -> Fact {
        let stream = &self.streams[record.stream.index()];
        let mut values = [0i64; MAX_SUMMED_FIELDS];
        for (value, &field) in values.iter_mut().zip(&stream.summed) {
            *value = stream
                .schema
                .get(record, field)
                .as_i128()
                .map_or(0, |v| v as i64);
        }
        let mut flags = 0u32;
        for (bit, filter) in stream.filters.iter().enumerate() {
            if filter.matches(&stream.schema, record) {
                flags |= 1 << bit;
            }
        }
        Fact {
            id: record.id,
            ts: record.ts,
            values,
            flags,
        }
    }

    /// The parent's id of a record (0 for bids).
    pub fn parent(&self, record: &Record) -> EventId {
        self.streams[record.stream.index()].schema.parent(record)
    }

    /// A bid's own attribution: its dims for every aggregate, in a key of `N` bytes.
    pub fn bid_attribution<const N: usize>(&self, record: &Record) -> Attribution<N> {
        let bids = &self.streams[StreamKind::Bid.index()].schema;
        Attribution::Dims(self.settings.dims.key_of(bids, record))
    }

    /// Whether aggregate `aggregate` has a measure (other than a distinct count) over
    /// `stream`.
    pub fn reads(&self, aggregate: usize, stream: StreamKind) -> bool {
        !self.terms[aggregate][stream.index()].is_empty()
    }

    /// What a fact of `stream` attributed to `attribution` adds to aggregate `aggregate`:
    /// its key `(aggregate, window start, dims)` and its measures; `None` when it adds
    /// nothing (no measure reads it, or every filter fails).
    pub fn contribution<const N: usize>(
        &self,
        aggregate: usize,
        stream: StreamKind,
        fact: &Fact,
        attribution: &Attribution<N>,
    ) -> Option<(AggregateKey<N>, Measures)> {
        let mut delta = Measures::default();
        let mut any = false;
        for term in &self.terms[aggregate][stream.index()] {
            if term.filter.is_some_and(|bit| fact.flags & (1 << bit) == 0) {
                continue;
            }
            let value = term.value.map_or(1, |k| fact.values[k]);
            delta.set(term.slot, value);
            any = true;
        }
        if !any {
            return None;
        }
        let declared = &self.settings.aggregates[aggregate];
        let key = (
            aggregate as u8,
            declared.window.start(fact.ts),
            declared.projection.apply(attribution),
        );
        Some((key, delta))
    }
}

/// The aggregate key: the aggregate's position, the window start and the dims (in a key
/// of `N` bytes).
pub type AggregateKey<const N: usize> = (u8, Millis, Attribution<N>);

/// The position of `item` in `items`, added at the end if missing.
fn position<T: PartialEq>(items: &mut Vec<T>, item: T) -> usize {
    match items.iter().position(|i| *i == item) {
        Some(p) => p,
        None => {
            items.push(item);
            items.len() - 1
        }
    }
}
