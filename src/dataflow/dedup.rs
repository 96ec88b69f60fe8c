//! De-duplicate a stream of records by id, releasing each id's state at its release time.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::VecCollection;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::ExchangeData;

use crate::event::{EventId, Keyed, Millis};

/// What dedup saw: the dedup share of a stream's accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupCounts {
    /// Records that started a group (an id's first appearance while it is held).
    pub applied: u64,
    /// Records whose id was already held.
    pub duplicate: u64,
    /// Distinct payloads beyond the first, per group.
    pub conflicting: u64,
}

/// Shared dedup counters, added to once per operator activation.
#[derive(Debug, Default)]
pub struct DedupCounters {
    applied: AtomicU64,
    duplicate: AtomicU64,
    conflicting: AtomicU64,
    held: AtomicI64,
}

impl DedupCounters {
    /// The counts so far.
    pub fn snapshot(&self) -> DedupCounts {
        DedupCounts {
            applied: self.applied.load(Ordering::Relaxed),
            duplicate: self.duplicate.load(Ordering::Relaxed),
            conflicting: self.conflicting.load(Ordering::Relaxed),
        }
    }

    /// Ids whose state is held now, over all workers of the process.
    pub fn held(&self) -> i64 {
        self.held.load(Ordering::Relaxed)
    }

    fn add_held(&self, delta: i64) {
        if delta != 0 {
            self.held.fetch_add(delta, Ordering::Relaxed);
        }
    }

    fn add(&self, counts: &DedupCounts) {
        self.applied.fetch_add(counts.applied, Ordering::Relaxed);
        self.duplicate
            .fetch_add(counts.duplicate, Ordering::Relaxed);
        self.conflicting
            .fetch_add(counts.conflicting, Ordering::Relaxed);
    }
}

/// One id's state: the winning record, the other distinct payloads seen, and the time
/// at which the state is released.
struct Group<R> {
    winner: R,
    release: Millis,
    others: Vec<R>,
}

/// Dedup by id as a differential operator.
pub trait DedupById<'scope, R: Keyed> {
    /// Keeps one record per id: the winner, the record with the greatest `(ts, payload)`,
    /// so the choice does not depend on arrival order. Each record is retracted at
    /// `release(record)`, which releases its state; `release` must not decrease with `ts`
    /// (then releasing a record that lost never changes the winner).
    ///
    /// The input must be insert-only (each update `+1`), as ingestion produces. Updates
    /// are processed in time order once the input frontier passes them. `counts` receives
    /// the dedup accounting.
    ///
    /// # Examples
    /// ```
    /// use differential_dataflow::collection::AsCollection;
    /// use differential_dataflow::input::Input;
    /// use diffmill::dataflow::DedupById;
    /// use diffmill::event::Click;
    /// use timely::dataflow::operators::core::Map;
    ///
    /// let click = |click_id, ts| Click { click_id, bid_id: 9, ts };
    /// timely::example(move |scope| {
    ///     let counts = std::sync::Arc::default();
    ///     // Click 1 twice identically, then with a later ts (a conflicting payload).
    ///     let (_, clicks) = scope.new_collection_from(vec![click(1, 5), click(1, 5), click(1, 7), click(2, 3)]);
    ///     // The winners: the greatest (ts, payload) per id, each retracted at its release time.
    ///     let (_, winners) = scope.new_collection_from(vec![click(1, 7), click(2, 3)]);
    ///     let released = winners.inner.clone().map(|(c, _, r)| (c, c.ts + 1_000, -r)).as_collection();
    ///     clicks
    ///         .dedup_by_id(|c: &Click| c.ts + 1_000, std::sync::Arc::clone(&counts))
    ///         .assert_eq(winners.concat(released));
    /// });
    /// ```
    fn dedup_by_id<F>(self, release: F, counts: Arc<DedupCounters>) -> Self
    where
        F: Fn(&R) -> Millis + 'static;
}

impl<'scope, R> DedupById<'scope, R> for VecCollection<'scope, Millis, R>
where
    R: Keyed + ExchangeData,
{
    fn dedup_by_id<F>(self, release: F, counts: Arc<DedupCounters>) -> Self
    where
        F: Fn(&R) -> Millis + 'static,
    {
        let exchange = Exchange::new(|update: &(R, Millis, isize)| update.0.id().hashed());
        self.inner
            .unary_frontier(exchange, "DedupById", move |_capability, _info| {
                // Updates not yet passed by the frontier, and one capability for the least
                // of their times: every output goes out under it (differential updates may
                // carry times later than their message), so there is one message per
                // activation, not one per distinct millisecond.
                //
                // A winner's retraction at its release time is not sent when the winner
                // is, but held (as its group) until the frontier reaches the release time.
                // Sent early, it would sit in every downstream batcher until then, and each
                // batcher re-sorts what it holds at every frontier move. To send it late,
                // the capability is kept at the input frontier while groups are held; that
                // holds the output frontier no further back than the input's.
                let mut stash: Vec<(Millis, R)> = Vec::new();
                let mut held: Option<Capability<Millis>> = None;
                let mut groups: Groups<R> = Groups::default();
                let mut releases: Releases = BTreeMap::new();
                let mut ready: Vec<(Millis, R)> = Vec::new();
                let mut out: Vec<Update<R>> = Vec::new();
                let mut reported = 0i64;
                move |(input, frontier), output| {
                    input.for_each(|capability, updates| {
                        for (record, time, diff) in updates.drain(..) {
                            if held.as_ref().is_none_or(|h| time < *h.time()) {
                                held = Some(capability.delayed(&time, 0));
                            }
                            for _ in 0..diff.max(0) {
                                stash.push((time, record));
                            }
                        }
                    });
                    let frontier = frontier.frontier().iter().next().copied();
                    let passed = |time: Millis| frontier.is_none_or(|f| time < f);
                    ready.clear();
                    stash.retain(|update| {
                        let done = passed(update.0);
                        if done {
                            ready.push(*update);
                        }
                        !done
                    });
                    let mut local = DedupCounts::default();
                    ready.sort_unstable();
                    for &(time, record) in &ready {
                        release_until(&mut groups, &mut releases, time, &mut out);
                        let changes = admit(
                            &mut groups,
                            &mut releases,
                            &mut local,
                            record,
                            time,
                            &release,
                        );
                        out.extend(changes.into_iter().flatten());
                    }
                    // Every group released by the frontier sends its retraction now.
                    release_until(
                        &mut groups,
                        &mut releases,
                        frontier.unwrap_or(Millis::MAX),
                        &mut out,
                    );
                    if let (Some(capability), false) = (held.as_ref(), out.is_empty()) {
                        output.session(capability).give_iterator(out.drain(..));
                    }
                    out.clear();
                    counts.add(&local);
                    // Keep the capability at the least stashed time, and no later than
                    // the input frontier while groups wait for their release.
                    let keep = stash
                        .iter()
                        .map(|(time, _)| *time)
                        .chain(frontier.filter(|_| !groups.is_empty()))
                        .min();
                    match (keep, held.as_mut()) {
                        (Some(least), Some(capability)) => capability.downgrade(&least),
                        _ => held = None,
                    }
                    counts.add_held(groups.len() as i64 - reported);
                    reported = groups.len() as i64;
                }
            })
            .as_collection()
    }
}

/// Drops the groups whose release time is at most `time`, each sending the retraction
/// of its winner at its release time to `out`.
fn release_until<R: Keyed>(
    groups: &mut Groups<R>,
    releases: &mut Releases,
    time: Millis,
    out: &mut Vec<Update<R>>,
) {
    while let Some(entry) = releases.first_entry() {
        if *entry.key() > time {
            break;
        }
        let (release, ids) = entry.remove_entry();
        for id in ids {
            if groups.get(&id).is_some_and(|g| g.release == release) {
                if let Some(group) = groups.remove(&id) {
                    out.push((group.winner, release, -1));
                }
            }
        }
    }
}

type Update<R> = (R, Millis, isize);

/// Each id's group, by id.
type Groups<R> = HashMap<EventId, Group<R>, BuildHasherDefault<IdHasher>>;

/// The ids of the groups to release, by release time. Release times are window-aligned
/// (the end of a window plus lateness and bounds), so there are few keys, and records
/// arrive nearly in release order: far cheaper than a heap of every id.
type Releases = BTreeMap<Millis, Vec<EventId>>;

/// A hasher for ids (`u64`): a multiplication by an odd constant (Fibonacci hashing), its
/// high half folded into the low one, which spreads ids over the table whatever their
/// low bits share. Unlike the default SipHash it does not resist ids chosen to collide;
/// SipHash cost 4-5 % of the funnel's time in the profile.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Applies one record at `time`; returns the updates to emit now (at most two). The
/// winner's retraction at its release time is sent by [`release_until`].
fn admit<R: Keyed, F: Fn(&R) -> Millis>(
    groups: &mut Groups<R>,
    releases: &mut Releases,
    counts: &mut DedupCounts,
    record: R,
    time: Millis,
    release: &F,
) -> [Option<Update<R>>; 2] {
    let rank = |r: &R| (r.ts(), *r);
    match groups.get_mut(&record.id()) {
        None => {
            counts.applied += 1;
            let until = release(&record).max(time);
            groups.insert(
                record.id(),
                Group {
                    winner: record,
                    release: until,
                    others: Vec::new(),
                },
            );
            releases.entry(until).or_default().push(record.id());
            [Some((record, time, 1)), None]
        }
        Some(group) => {
            counts.duplicate += 1;
            if record == group.winner || group.others.contains(&record) {
                return [None, None];
            }
            counts.conflicting += 1;
            if rank(&record) < rank(&group.winner) {
                group.others.push(record);
                return [None, None];
            }
            let old = std::mem::replace(&mut group.winner, record);
            group.others.push(old);
            group.release = release(&record).max(time);
            releases.entry(group.release).or_default().push(record.id());
            [Some((old, time, -1)), Some((record, time, 1))]
        }
    }
}
