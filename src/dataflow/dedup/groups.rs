//! The state of one dedup operator: a group per held id, and when each group is released.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::DedupCounts;
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

/// The groups of one dedup operator, by id, and the ids to release by release time.
pub(super) struct Groups<R> {
    groups: HashMap<EventId, GroupState<R>, BuildHasherDefault<IdHasher>>,
    /// Release times are window-aligned (the end of a window plus lateness and bounds),
    /// so there are few keys, and records arrive nearly in release order: far cheaper
    /// than a heap of every id.
    releases: BTreeMap<Millis, Vec<EventId>>,
}

impl<R> Default for Groups<R> {
    fn default() -> Self {
        Groups {
            groups: HashMap::default(),
            releases: BTreeMap::new(),
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

    /// Applies one record entering at `time`; returns the updates to emit now (at most
    /// two). The winner's retraction at its release time is sent by
    /// [`Groups::release_until`].
    pub(super) fn admit<F: Fn(&R) -> Millis>(
        &mut self,
        counts: &mut DedupCounts,
        record: R,
        time: Millis,
        release: &F,
    ) -> [Option<Update<R>>; 2] {
        let rank = |r: &R| (r.ts(), *r);
        match self.groups.get_mut(&record.id()) {
            None => {
                counts.applied += 1;
                let until = release(&record).max(time);
                self.groups.insert(
                    record.id(),
                    GroupState {
                        winner: record,
                        release: until,
                        others: Vec::new(),
                    },
                );
                self.releases.entry(until).or_default().push(record.id());
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
                self.releases
                    .entry(group.release)
                    .or_default()
                    .push(record.id());
                [Some((old, time, -1)), Some((record, time, 1))]
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
                if self.groups.get(&id).is_some_and(|g| g.release == release) {
                    if let Some(group) = self.groups.remove(&id) {
                        out.push((group.winner, release, -1));
                    }
                }
            }
        }
    }

    /// Takes back a group from a checkpoint, without counting it: its winner is present
    /// again until its release time.
    pub(super) fn restore(&mut self, group: GroupState<R>) {
        let id = group.winner.id();
        self.releases.entry(group.release).or_default().push(id);
        self.groups.insert(id, group);
    }

    /// The groups, serialized as a sequence of [`GroupState`] (bincode, varint).
    pub(super) fn serialize(&self) -> Vec<u8> {
        // A struct serializes as the tuple of its fields, so borrowed tuples give the
        // bytes of the owned `GroupState`s without copying the groups.
        let groups: Vec<(&R, &Vec<R>, Millis)> = self
            .groups
            .values()
            .map(|g| (&g.winner, &g.others, g.release))
            .collect();
        crate::codec::encode(&groups)
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
