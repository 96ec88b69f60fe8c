//! De-duplicate a stream of records by id, releasing each id's state at its release time.
//!
//! The operator can also take part in checkpoints: given a stream of snapshot requests
//! (checkpoint frontiers `F`), it writes its groups as they are after every update at a
//! time before `F` and before any later one ([`DedupSnapshot`]); given a stream of
//! groups from a checkpoint, it takes them back before it processes any input.

mod counts;
mod groups;
mod segments;

use std::sync::Arc;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::operator::empty;
use timely::dataflow::operators::generic::{OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;
use timely::ExchangeData;

pub use counts::{DedupCounters, DedupCounts};
pub use groups::GroupState;

/// What a dedup operator does with the groups it still holds when its input is complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AtEnd {
    /// Retract every winner at its release time, as if the frontier had passed them all:
    /// the collection is the same as with more input to come.
    #[default]
    Retract,
    /// Drop the groups without a retraction. For a consumer that throws away every change
    /// at or after a record's release time (the funnel: the windows a record can affect
    /// are all final by then), the retractions are work with no effect: at the end of a
    /// replay that holds all its input they are one more update per record through every
    /// join and aggregate.
    Forget,
}

use crate::codec::SharedBytes;
use crate::event::{Keyed, Millis};
use groups::{Groups, Update};

/// One dedup operator's state at a checkpoint frontier: its groups after every update at
/// a time before `frontier` (and none at a later time), and what it counted for those
/// updates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupSnapshot {
    /// The checkpoint frontier.
    pub frontier: Millis,
    /// What the operator counted for the updates at times before `frontier`.
    pub counts: DedupCounts,
    /// The groups held at `frontier` (release time after it), in segments: each a
    /// sequence of [`GroupState`]s encoded by [`crate::codec::encode`], every group in
    /// exactly one. Segments unchanged since the operator's last snapshot are shared
    /// with it, not encoded again.
    pub groups: Vec<SharedBytes>,
}

/// The checkpoint side of a dedup operator: where snapshot requests come from and where
/// restored groups come from.
pub struct Checkpointing<'scope, R> {
    /// Checkpoint frontiers, as a stream in which each request `F` arrives at time `F`
    /// on every worker (a broadcast). Until this stream's frontier has passed a time,
    /// the operator does not process updates at that time: a request may still come.
    pub requests: Stream<'scope, Millis, Vec<Millis>>,
    /// Groups from a checkpoint, taken back (uncounted) before any input is processed;
    /// each winner is present again from the time it arrives at until its release time.
    pub restore: Stream<'scope, Millis, Vec<GroupState<R>>>,
    /// What to do with the groups held when the input is complete.
    pub at_end: AtEnd,
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

    /// [`DedupById::dedup_by_id`] taking part in checkpoints: answers each request of
    /// `checkpointing.requests` with a [`DedupSnapshot`] at the request's time, and
    /// takes back the groups of `checkpointing.restore` first.
    ///
    /// # Examples
    /// ```
    /// use differential_dataflow::input::Input;
    /// use diffmill::codec::decode;
    /// use diffmill::dataflow::{AtEnd, Checkpointing, DedupById, GroupState};
    /// use diffmill::event::Click;
    /// use timely::dataflow::operators::capture::{Capture, Event};
    /// use timely::dataflow::operators::ToStream;
    ///
    /// let click = |click_id, ts| Click { click_id, bid_id: 9, ts };
    /// let snapshots = timely::example(move |scope| {
    ///     let (_, clicks) = scope.new_collection_from(vec![click(1, 5), click(2, 3)]);
    ///     let requests = vec![0u64].to_stream(scope); // a checkpoint at frontier 0
    ///     let restore = vec![GroupState { winner: click(3, 1), others: vec![], release: 900 }].to_stream(scope);
    ///     let (_, snapshots) = clicks.dedup_by_id_checkpointed(
    ///         |c: &Click| c.ts + 1_000,
    ///         Default::default(),
    ///         Checkpointing { requests, restore, at_end: AtEnd::Retract },
    ///     );
    ///     snapshots.capture()
    /// });
    /// let snapshots: Vec<_> = snapshots
    ///     .try_iter()
    ///     .flat_map(|event| match event {
    ///         Event::Messages(_, data) => data,
    ///         Event::Progress(_) => Vec::new(),
    ///     })
    ///     .collect();
    /// let snapshot = &snapshots[0];
    /// // At frontier 0 no input was processed yet: only the restored group is held.
    /// let groups: Vec<GroupState<Click>> = decode(&snapshot.groups[0]).unwrap();
    /// assert_eq!(groups, vec![GroupState { winner: click(3, 1), others: vec![], release: 900 }]);
    /// assert_eq!(snapshot.counts.applied, 0);
    /// ```
    fn dedup_by_id_checkpointed<F>(
        self,
        release: F,
        counts: Arc<DedupCounters>,
        checkpointing: Checkpointing<'scope, R>,
    ) -> (Self, Stream<'scope, Millis, Vec<DedupSnapshot>>)
    where
        Self: Sized,
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
        let scope = self.inner.scope();
        let checkpointing = Checkpointing {
            requests: empty(scope),
            restore: empty(scope),
            at_end: AtEnd::Retract,
        };
        self.dedup_by_id_checkpointed(release, counts, checkpointing)
            .0
    }

    fn dedup_by_id_checkpointed<F>(
        self,
        release: F,
        counts: Arc<DedupCounters>,
        checkpointing: Checkpointing<'scope, R>,
    ) -> (Self, Stream<'scope, Millis, Vec<DedupSnapshot>>)
    where
        F: Fn(&R) -> Millis + 'static,
    {
        let mut builder = OperatorBuilder::new("DedupById".to_owned(), self.inner.scope());
        let mut updates_input = builder.new_input(
            self.inner,
            Exchange::new(|update: &(R, Millis, isize)| update.0.id().hashed()),
        );
        let mut requests_input = builder.new_input(checkpointing.requests, Pipeline);
        let mut restore_input = builder.new_input(
            checkpointing.restore,
            Exchange::new(|group: &GroupState<R>| group.winner.id().hashed()),
        );
        let (records_output, records) = builder.new_output();
        let (snapshots_output, snapshots) = builder.new_output();
        let mut records_output =
            OutputBuilder::<_, CapacityContainerBuilder<Vec<Update<R>>>>::from(records_output);
        let mut snapshots_output =
            OutputBuilder::<_, CapacityContainerBuilder<Vec<DedupSnapshot>>>::from(
                snapshots_output,
            );

        builder.build(move |_capabilities| {
            let mut state = Dedup::new(release, counts, checkpointing.at_end);
            move |frontiers| {
                restore_input.for_each(|capability, groups| {
                    if let Some(time) = capability.least().copied() {
                        state.restore(&capability.delayed(&time, 0), groups.drain(..));
                    }
                });
                requests_input.for_each(|capability, requests| {
                    for &frontier in requests.iter() {
                        state.request(capability.delayed(&frontier, 1));
                    }
                });
                updates_input.for_each(|capability, updates| {
                    state.stash(|time| capability.delayed(time, 0), updates.drain(..));
                });
                let first = |i: usize| frontiers[i].frontier().iter().next().copied();
                if first(2).is_some() {
                    // Groups from a checkpoint are still on their way.
                    return;
                }
                // Process no update the frontier has not passed, and none at a time a
                // snapshot request may still come for.
                let limit = match (first(0), first(1)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let mut records = records_output.activate();
                let mut snapshots = snapshots_output.activate();
                state.process(limit, &mut records, &mut snapshots);
            }
        });
        (records.as_collection(), snapshots)
    }
}

/// An output handle of the dedup operator.
type OutputSession<'a, D> = OutputBuilderSession<'a, Millis, CapacityContainerBuilder<Vec<D>>>;

/// Everything one dedup operator keeps between activations.
struct Dedup<R, F> {
    release: F,
    at_end: AtEnd,
    counts: Arc<DedupCounters>,
    groups: Groups<R>,
    /// Updates not yet processed (the frontier has not passed them), as `(time, record)`.
    stash: Vec<(Millis, R)>,
    /// One capability for the least time of the stash and of the retractions to come:
    /// every output goes out under it (differential updates may carry times later than
    /// their message), so there is one message per activation, not one per distinct
    /// millisecond.
    ///
    /// A winner's retraction at its release time is not sent when the winner is, but
    /// held (as its group) until the frontier reaches the release time. Sent early, it
    /// would sit in every downstream batcher until then, and each batcher re-sorts what it
    /// holds at every frontier move. To send it late, the capability is kept at the input
    /// frontier while groups are held; that holds the output frontier no further back
    /// than the input's.
    held: Option<Capability<Millis>>,
    /// Snapshot requests not answered yet, each with a capability at its frontier.
    requests: Vec<Capability<Millis>>,
    /// What was counted since the last snapshot (the shared counters have it all).
    counted: DedupCounts,
    ready: Vec<(Millis, R)>,
    out: Vec<Update<R>>,
    reported: i64,
}

impl<R: Keyed, F: Fn(&R) -> Millis> Dedup<R, F> {
    fn new(release: F, counts: Arc<DedupCounters>, at_end: AtEnd) -> Self {
        Dedup {
            release,
            at_end,
            counts,
            groups: Groups::default(),
            stash: Vec::new(),
            held: None,
            requests: Vec::new(),
            counted: DedupCounts::default(),
            ready: Vec::new(),
            out: Vec::new(),
            reported: 0,
        }
    }

    /// Holds a capability at `time` or earlier for the records output.
    fn hold(&mut self, time: Millis, capability: impl FnOnce() -> Capability<Millis>) {
        if self.held.as_ref().is_none_or(|h| time < *h.time()) {
            self.held = Some(capability());
        }
    }

    /// Takes back groups from a checkpoint; each winner is present again from the
    /// capability's time.
    fn restore(
        &mut self,
        capability: &Capability<Millis>,
        groups: impl Iterator<Item = GroupState<R>>,
    ) {
        let time = *capability.time();
        self.hold(time, || capability.clone());
        for group in groups {
            self.out.push((group.winner, time, 1));
            self.groups.restore(group);
        }
    }

    fn request(&mut self, capability: Capability<Millis>) {
        self.requests.push(capability);
        self.requests.sort_by_key(|c| *c.time());
    }

    fn stash(
        &mut self,
        capability: impl Fn(&Millis) -> Capability<Millis>,
        updates: impl Iterator<Item = Update<R>>,
    ) {
        for (record, time, diff) in updates {
            self.hold(time, || capability(&time));
            for _ in 0..diff.max(0) {
                self.stash.push((time, record));
            }
        }
    }

    /// Processes the stashed updates at times before `limit` (all of them when `None`) in
    /// time order, answering each snapshot request at its frontier on the way.
    fn process(
        &mut self,
        limit: Option<Millis>,
        records: &mut OutputSession<'_, Update<R>>,
        snapshots: &mut OutputSession<'_, DedupSnapshot>,
    ) {
        let before = |time: Millis| limit.is_none_or(|l| time < l);
        self.ready.clear();
        let ready = &mut self.ready;
        self.stash.retain(|update| {
            let done = before(update.0);
            if done {
                ready.push(*update);
            }
            !done
        });
        // By time alone: within one time, the order of records changes no update once
        // consolidated and no count (a group's winner is its greatest member either way).
        self.ready.sort_unstable_by_key(|(time, _)| *time);
        let mut local = DedupCounts::default();
        for i in 0..self.ready.len() {
            let (time, record) = self.ready[i];
            self.answer_requests(|frontier| frontier <= time, &mut local, snapshots);
            self.groups.release_until(time, &mut self.out);
            self.groups
                .admit(&mut local, (record, time), &self.release, &mut self.out);
        }
        self.answer_requests(
            |frontier| limit.is_none_or(|l| frontier <= l),
            &mut local,
            snapshots,
        );
        // Every group released by the limit sends its retraction now; at the end of the
        // input, unless the groups are to be forgotten.
        match (limit, self.at_end) {
            (None, AtEnd::Forget) => self.groups.forget(),
            _ => self
                .groups
                .release_until(limit.unwrap_or(Millis::MAX), &mut self.out),
        }
        if let (Some(capability), false) = (self.held.as_ref(), self.out.is_empty()) {
            records
                .session(capability)
                .give_iterator(self.out.drain(..));
        }
        self.out.clear();
        self.counts.add(&local);
        self.counted.add(&local);
        // Keep the capability at the least stashed time, and no later than the limit
        // while groups wait for their release.
        let keep = self
            .stash
            .iter()
            .map(|(time, _)| *time)
            .chain(limit.filter(|_| !self.groups.is_empty()))
            .min();
        match (keep, self.held.as_mut()) {
            (Some(least), Some(capability)) => capability.downgrade(&least),
            _ => self.held = None,
        }
        let held = self.groups.len() as i64;
        self.counts.add_held(held - self.reported);
        self.reported = held;
    }

    /// Answers the pending requests whose frontier `due` accepts, in order: the state is
    /// that after every update before the frontier (and the groups released by it).
    fn answer_requests(
        &mut self,
        due: impl Fn(Millis) -> bool,
        local: &mut DedupCounts,
        snapshots: &mut OutputSession<'_, DedupSnapshot>,
    ) {
        while self.requests.first().is_some_and(|c| due(*c.time())) {
            let capability = self.requests.remove(0);
            let frontier = *capability.time();
            self.groups.release_until(frontier, &mut self.out);
            let mut counts = self.counted;
            counts.add(local);
            let started = std::time::Instant::now();
            let snapshot = DedupSnapshot {
                frontier,
                counts,
                groups: self.groups.serialize(),
            };
            tracing::debug!(
                frontier,
                groups = self.groups.len(),
                segments = snapshot.groups.len(),
                bytes = snapshot.groups.iter().map(|s| s.len()).sum::<usize>(),
                took = ?started.elapsed(),
                "dedup snapshot"
            );
            snapshots.session(&capability).give(snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    use differential_dataflow::input::Input;
    use timely::dataflow::operators::capture::{Capture, Event};

    use super::*;
    use crate::event::Click;

    /// The updates of dedup over two clicks of one id and one of another, run to the end.
    fn updates(at_end: AtEnd) -> Vec<(Click, Millis, isize)> {
        let click = |click_id, ts| Click {
            click_id,
            bid_id: 9,
            ts,
        };
        let captured = timely::example(move |scope| {
            let (_, clicks) =
                scope.new_collection_from(vec![click(1, 5), click(1, 7), click(2, 3)]);
            let checkpointing = Checkpointing {
                requests: empty(scope),
                restore: empty(scope),
                at_end,
            };
            let (deduplicated, _) = clicks.dedup_by_id_checkpointed(
                |c: &Click| c.ts + 1_000,
                Arc::default(),
                checkpointing,
            );
            deduplicated.inner.capture()
        });
        let mut all: Vec<_> = captured
            .try_iter()
            .flat_map(|event| match event {
                Event::Messages(_, data) => data,
                Event::Progress(_) => Vec::new(),
            })
            .collect();
        differential_dataflow::consolidation::consolidate_updates(&mut all);
        all
    }

    #[test]
    fn forgetting_at_the_end_sends_no_retractions() {
        let winners = |c: &(Click, Millis, isize)| c.2 > 0;
        let retract = updates(AtEnd::Retract);
        assert_eq!(retract.iter().filter(|c| winners(c)).count(), 2);
        assert_eq!(retract.iter().filter(|c| !winners(c)).count(), 2);
        let forget = updates(AtEnd::Forget);
        assert!(forget.iter().all(winners), "{forget:?}");
        assert_eq!(
            forget,
            retract.into_iter().filter(winners).collect::<Vec<_>>()
        );
    }
}
