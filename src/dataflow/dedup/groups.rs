//! The state of one dedup operator: a group per held id, and when each group is released.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::segments::{SegmentId, Segments};
use super::DedupCounts;
use crate::codec::SharedBytes;
use crate::event::{EventId, Keyed, Millis};

/// One update to the deduplicated collection: `(record, time, ±1)`.
pub(super) type Update<R> = (R, Millis, isize);

/// One id's state: the winning record, the other distinct payloads seen, and the time
/// at which the state is released. It is also what a checkpoint keeps of the id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState<R> {
    /// The record with the greatest `(ts, payload)` of the group.
    pub winner: R,
    /// The other distinct payloads seen (the losers), so that a repeat of one is an
    /// identical duplicate, not a new conflicting one.
    pub others: Vec<R>,
    /// The time at which the group is released and its winner retracted.
    pub release: Millis,
}

/// A held group and the segment it is encoded in.
struct Held<R> {
    state: GroupState<R>,
    segment: SegmentId,
}

/// The groups of one dedup operator, by id, the ids to release by release time, and
/// the segments the groups are encoded in for checkpoints.
pub(super) struct Groups<R> {
    groups: Table<R>,
    /// Release times are window-aligned (the end of a window plus lateness and bounds),
    /// so there are few keys, and records arrive nearly in release order: far cheaper
    /// than a heap of every id.
    releases: BTreeMap<Millis, Vec<EventId>>,
    segments: Segments,
}

impl<R> Default for Groups<R> {
    fn default() -> Self {
        Groups {
            groups: Table::default(),
            releases: BTreeMap::new(),
            segments: Segments::default(),
        }
    }
}

impl<R: Keyed> Groups<R> {
    /// Number of groups held.
    pub(super) fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when no group is held.
    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Applies one record entering at `time`, pushing the updates to emit now (at most
    /// two) to `out`. The winner's retraction at its release time is sent by
    /// [`Groups::release_until`].
    pub(super) fn admit<F: Fn(&R) -> Millis>(
        &mut self,
        counts: &mut DedupCounts,
        (record, time): (R, Millis),
        release: &F,
        out: &mut Vec<Update<R>>,
    ) {
        let rank = |r: &R| (r.ts(), *r);
        match self.groups.get_mut(&record.id()) {
            None => {
                counts.applied += 1;
                let until = release(&record).max(time);
                let state = GroupState {
                    winner: record,
                    release: until,
                    others: Vec::new(),
                };
                self.hold(state);
                out.push((record, time, 1));
            }
            Some(held) => {
                counts.duplicate += 1;
                let group = &mut held.state;
                if record == group.winner || group.others.contains(&record) {
                    return;
                }
                counts.conflicting += 1;
                self.segments.touch(held.segment);
                if rank(&record) < rank(&group.winner) {
                    group.others.push(record);
                    return;
                }
                let old = std::mem::replace(&mut group.winner, record);
                group.others.push(old);
                group.release = release(&record).max(time);
                self.releases
                    .entry(group.release)
                    .or_default()
                    .push(record.id());
                out.push((old, time, -1));
                out.push((record, time, 1));
            }
        }
    }

    /// Drops the groups whose release time is at most `time`, each sending the
    /// retraction of its winner at its release time to `out`.
    pub(super) fn release_until(&mut self, time: Millis, out: &mut Vec<Update<R>>) {
        while let Some(entry) = self.releases.first_entry() {
            if *entry.key() > time {
                break;
            }
            let (release, ids) = entry.remove_entry();
            for id in ids {
                if self
                    .groups
                    .get(&id)
                    .is_some_and(|g| g.state.release == release)
                {
                    if let Some(held) = self.groups.remove(&id) {
                        self.segments.touch(held.segment);
                        out.push((held.state.winner, release, -1));
                    }
                }
            }
        }
    }

    /// Drops every group without a retraction (the input is complete).
    pub(super) fn forget(&mut self) {
        *self = Groups::default();
    }

    /// Takes back a group from a checkpoint, without counting it: its winner is present
    /// again until its release time.
    pub(super) fn restore(&mut self, group: GroupState<R>) {
        self.hold(group);
    }

    /// Holds a new group: in the open segment, released at its release time.
    fn hold(&mut self, state: GroupState<R>) {
        let id = state.winner.id();
        self.releases.entry(state.release).or_default().push(id);
        let segment = self.segments.join(id);
        self.groups.insert(id, Held { state, segment });
    }

    /// The groups, as encoded segments: each a sequence of [`GroupState`]s (bincode,
    /// varint), every held group in exactly one. Only the segments changed since the
    /// last call are encoded again.
    pub(super) fn serialize(&mut self) -> Vec<SharedBytes> {
        let groups = &self.groups;
        self.segments.encode(|segment, ids| {
            ids.retain(|id| groups.get(id).is_some_and(|g| g.segment == segment));
            // A struct serializes as the tuple of its fields, so borrowed tuples give the
            // bytes of the owned `GroupState`s without copying the groups.
            let states: Vec<(&R, &Vec<R>, Millis)> = ids
                .iter()
                .filter_map(|id| groups.get(id))
                .map(|g| (&g.state.winner, &g.state.others, g.state.release))
                .collect();
            crate::codec::encode(&states)
        })
    }
}

/// The held groups by id: the groups themselves in a dense vector, and a hash table from
/// id to position. A group is a whole record and more (about 180 bytes); kept in the hash
/// table itself, every growth of the table moved them all, and every insert wrote one to
/// a random place in gigabytes: a quarter of a replay's time in the profile (issue #14).
/// The table now holds 16 bytes per id, and new groups are appended.
struct Table<R> {
    index: HashMap<EventId, usize, BuildHasherDefault<IdHasher>>,
    slots: Vec<Held<R>>,
}

impl<R> Default for Table<R> {
    fn default() -> Self {
        Table {
            index: HashMap::default(),
            slots: Vec::new(),
        }
    }
}

impl<R: Keyed> Table<R> {
    fn len(&self) -> usize {
        self.slots.len()
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn get(&self, id: &EventId) -> Option<&Held<R>> {
        self.index.get(id).map(|&i| &self.slots[i])
    }

    fn get_mut(&mut self, id: &EventId) -> Option<&mut Held<R>> {
        self.index.get(id).map(|&i| &mut self.slots[i])
    }

    /// Holds `held` under `id`, which must not be held yet.
    fn insert(&mut self, id: EventId, held: Held<R>) {
        self.index.insert(id, self.slots.len());
        self.slots.push(held);
    }

    /// Removes the group of `id`; the last group takes its place.
    fn remove(&mut self, id: &EventId) -> Option<Held<R>> {
        let i = self.index.remove(id)?;
        let held = self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.state.winner.id(), i);
        }
        Some(held)
    }
}

/// A hasher for ids (`u64`): a multiplication by an odd constant (Fibonacci hashing), its
/// high half folded into the low one, which spreads ids over the table whatever their
/// low bits share. Unlike the default SipHash it does not resist ids chosen to collide;
/// SipHash cost 4-5 % of the funnel's time in the profile.
#[derive(Default)]
pub(super) struct IdHasher(u64);

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

#[cfg(test)]
mod tests {
    use super::super::segments::SEGMENT_GROUPS;
    use super::*;
    use crate::codec::decode;
    use crate::event::Click;

    const LATER: Millis = 1_000_000;

    fn click(click_id: EventId, ts: Millis) -> Click {
        Click {
            click_id,
            bid_id: 1,
            ts,
        }
    }

    fn release(c: &Click) -> Millis {
        c.ts + LATER
    }

    fn fresh(id: EventId) -> GroupState<Click> {
        GroupState {
            winner: click(id, id),
            others: Vec::new(),
            release: id + LATER,
        }
    }

    /// Every group the parts hold, by id; panics if one is held twice.
    fn decoded(parts: &[SharedBytes]) -> BTreeMap<EventId, GroupState<Click>> {
        let mut all = BTreeMap::new();
        for part in parts {
            for group in decode::<Vec<GroupState<Click>>>(part).unwrap() {
                let id = group.winner.click_id;
                assert!(all.insert(id, group).is_none(), "id {id} held twice");
            }
        }
        all
    }

    fn shared(a: &SharedBytes, b: &SharedBytes) -> bool {
        std::ptr::eq(a.as_ptr(), b.as_ptr())
    }

    #[test]
    fn a_checkpoint_encodes_again_only_the_segments_that_changed() {
        let mut groups = Groups::default();
        let mut counts = DedupCounts::default();
        let segment = SEGMENT_GROUPS as EventId;
        let n = 3 * segment + 10;
        let mut want: BTreeMap<EventId, GroupState<Click>> = BTreeMap::new();
        for id in 0..n {
            groups.admit(&mut counts, (click(id, id), id), &release, &mut Vec::new());
            want.insert(id, fresh(id));
        }
        let first = groups.serialize();
        assert_eq!(first.len(), 4);
        assert_eq!(decoded(&first), want);

        let again = groups.serialize();
        assert!(first.iter().zip(&again).all(|(a, b)| shared(a, b)));

        // A conflicting duplicate with a later time wins in segment 1; a new id joins the
        // open segment 3.
        let id = segment + 5;
        groups.admit(
            &mut counts,
            (click(id, n + 100), n + 100),
            &release,
            &mut Vec::new(),
        );
        want.insert(
            id,
            GroupState {
                winner: click(id, n + 100),
                others: vec![click(id, id)],
                release: n + 100 + LATER,
            },
        );
        groups.admit(&mut counts, (click(n, n), n), &release, &mut Vec::new());
        want.insert(n, fresh(n));
        let third = groups.serialize();
        assert_eq!(decoded(&third), want);
        let kept: Vec<bool> = again
            .iter()
            .zip(&third)
            .map(|(a, b)| shared(a, b))
            .collect();
        assert_eq!(kept, [true, false, true, false]);

        // Segment 0 released whole: it is gone; id 3 comes back and is held once, in the
        // open segment.
        let mut out = Vec::new();
        groups.release_until(segment - 1 + LATER, &mut out);
        assert_eq!(out.len(), SEGMENT_GROUPS);
        want.retain(|&id, _| id >= segment);
        groups.admit(
            &mut counts,
            (click(3, 3), LATER + segment),
            &release,
            &mut Vec::new(),
        );
        want.insert(
            3,
            GroupState {
                release: LATER + segment,
                ..fresh(3)
            },
        );
        let fourth = groups.serialize();
        assert_eq!(fourth.len(), 3);
        assert_eq!(groups.segments.len(), 3);
        assert_eq!(decoded(&fourth), want);
        assert!(shared(&third[2], &fourth[1]));
    }
}
