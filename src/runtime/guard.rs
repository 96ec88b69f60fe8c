//! Checks a partition makes before a record enters: the bound on distinct values of each
//! bounded dimension, and the overflow budget of each summed field.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::declare::{Beyond, FunnelSettings, Lateness, MeasureKind, Window};
use crate::event::{Invalid, Millis, Record, StreamKind};

/// The overflow budget: the most a partition's records may add up, in absolute value, of
/// one summed field in one window of the longest aggregate. With at most 2^14 partitions,
/// every aggregate value stays within ±2^61 and every change within ±2^62, exact in an
/// `i64` (docs/semantics.md §1).
pub const OVERFLOW_BUDGET: u64 = 1 << 46;

/// What a checkpoint keeps of a partition's checks: the budgets spent per window and the
/// values kept per bounded dimension.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardState {
    /// `|sum|` so far per `(stream, field, window start)`, for the windows that can still
    /// take records.
    pub spent: Vec<((usize, usize, Millis), u64)>,
    /// Per bounded dimension, the encodings of the values kept.
    pub seen: Vec<Vec<[u8; 24]>>,
}

/// A partition's checks, in arrival order, so that they are a function of the partition's
/// own sequence of records (whatever the worker or process count).
#[derive(Debug)]
pub struct Guards {
    /// The summed fields of each stream.
    summed: [Vec<usize>; 4],
    /// The windows whose budgets are kept: the longest aggregate's.
    longest: Window,
    lateness: Lateness,
    /// `|sum|` so far per `(stream, field, window start)`.
    spent: BTreeMap<(usize, usize, Millis), u64>,
    /// Per bounded dimension: the values kept so far.
    seen: Vec<HashSet<[u8; 24]>>,
}

impl Guards {
    /// The checks of `settings`, with nothing seen yet.
    pub fn new(settings: &FunnelSettings) -> Guards {
        let mut summed: [Vec<usize>; 4] = Default::default();
        for aggregate in settings.aggregates.iter() {
            for measure in &aggregate.measures {
                if let MeasureKind::Sum { field } = measure.kind {
                    let fields = &mut summed[measure.stream.index()];
                    if !fields.contains(&field) {
                        fields.push(field);
                    }
                }
            }
        }
        let longest = settings
            .lateness
            .windows()
            .iter()
            .copied()
            .max_by_key(|w| w.length)
            .unwrap_or_default();
        Guards {
            summed,
            longest,
            lateness: settings.lateness,
            spent: BTreeMap::new(),
            seen: vec![HashSet::new(); settings.bounds.len()],
        }
    }

    /// Checks `record`, which the watermark admits (`counts`: it is not attribution-only,
    /// so its measures count), marking its dimension values beyond their bound as `other`.
    ///
    /// # Errors
    /// The reason to dead-letter it: a dimension value beyond a bound that dead-letters,
    /// or a summed value beyond the overflow budget. A dead-lettered record changes no
    /// state.
    pub fn admit(
        &mut self,
        settings: &FunnelSettings,
        record: &mut Record,
        counts: bool,
    ) -> Result<(), Invalid> {
        let schema = settings.schema.stream(record.stream);
        let mut fresh: Vec<(usize, [u8; 24])> = Vec::new();
        let mut marks = 0u8;
        if record.stream == StreamKind::Bid {
            for (i, bound) in settings.bounds.iter().enumerate() {
                let value = schema.get(record, bound.field);
                let mut encoded = [0u8; 24];
                value.encode(&mut encoded);
                if self.seen[i].contains(&encoded) {
                    continue;
                }
                if self.seen[i].len() < bound.max_values {
                    fresh.push((i, encoded));
                    continue;
                }
                match bound.beyond {
                    Beyond::Other => marks |= 1 << i,
                    Beyond::DeadLetter => {
                        return Err(Invalid::TooManyValues {
                            field: bound.name.clone(),
                            value: value.to_string(),
                            max: bound.max_values,
                        })
                    }
                }
            }
        }
        let mut spend: Vec<((usize, usize, Millis), u64)> = Vec::new();
        if counts {
            let start = self.longest.start(record.ts);
            for &field in &self.summed[record.stream.index()] {
                let value = schema.get(record, field).as_i128().unwrap_or(0);
                let key = (record.stream.index(), field, start);
                let total =
                    self.spent.get(&key).copied().unwrap_or(0) as u128 + value.unsigned_abs();
                if total > u128::from(OVERFLOW_BUDGET) {
                    return Err(Invalid::SumOverflow {
                        field: schema.fields()[field].name.clone(),
                        value: value as i64,
                        window_start: start,
                        budget: OVERFLOW_BUDGET,
                    });
                }
                spend.push((key, total as u64));
            }
        }
        for (i, encoded) in fresh {
            self.seen[i].insert(encoded);
        }
        self.spent.extend(spend);
        record.marks = marks;
        Ok(())
    }

    /// What a checkpoint keeps of these checks.
    pub fn state(&self) -> GuardState {
        let mut seen: Vec<Vec<[u8; 24]>> = self
            .seen
            .iter()
            .map(|values| values.iter().copied().collect())
            .collect();
        for values in &mut seen {
            values.sort_unstable();
        }
        GuardState {
            spent: self.spent.iter().map(|(k, v)| (*k, *v)).collect(),
            seen,
        }
    }

    /// Takes back the checks' state from a checkpoint (of the same declaration: a
    /// dimension the state does not know keeps nothing).
    pub fn restore(&mut self, state: &GuardState) {
        self.spent = state.spent.iter().copied().collect();
        for (kept, values) in self.seen.iter_mut().zip(&state.seen) {
            *kept = values.iter().copied().collect();
        }
    }

    /// Forgets the budgets of windows no record can count in any more: those whose every
    /// event time is final in every aggregate at `watermark`.
    pub fn forget(&mut self, watermark: Millis) {
        let (lateness, length) = (self.lateness, self.longest.length);
        let done = |start: Millis| lateness.final_at(start + length - 1) <= watermark;
        if self.spent.keys().next().is_some_and(|k| done(k.2)) {
            self.spent.retain(|key, _| !done(key.2));
        }
    }
}
