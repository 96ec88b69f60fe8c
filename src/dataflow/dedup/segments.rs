//! A dedup operator's groups in segments, each kept encoded between checkpoints, so that
//! a checkpoint encodes again only the segments whose groups changed since the last one.
//!
//! A new group joins the open segment; a segment is closed once it has
//! [`SEGMENT_GROUPS`] ids and a new one opens. A segment's encoded bytes are dropped
//! (it is *dirty*) when a group joins it, when one of its groups changes (a conflicting
//! duplicate) and when one is released. Groups arrive and are released roughly in
//! event-time order, so between two checkpoints only the newest segments and those being
//! released are dirty: the work on the worker at a checkpoint follows what changed, not
//! the state held. The encoded segments stay in memory (about 40 bytes per held group).

use std::collections::BTreeMap;

use crate::codec::SharedBytes;
use crate::event::EventId;

/// A segment's number, in the order segments are opened.
pub(super) type SegmentId = u32;

/// Ids per segment: small enough that a duplicate dirties little, large enough that the
/// per-segment overhead (a map entry, a vector, the encoding's header) is negligible.
pub(super) const SEGMENT_GROUPS: usize = 8192;

#[derive(Default)]
struct Segment {
    /// The ids that joined the segment; some may have been released since, or released
    /// and joined a later segment (filtered out when the segment is encoded).
    ids: Vec<EventId>,
    /// The segment's groups, encoded at the last checkpoint; `None` when dirty.
    bytes: Option<SharedBytes>,
}

/// The segments of one dedup operator.
#[derive(Default)]
pub(super) struct Segments {
    /// The closed segments, by number.
    closed: BTreeMap<SegmentId, Segment>,
    /// The segment new groups join, kept out of the map: joining it is a push.
    open: Segment,
    open_id: SegmentId,
    /// The closed segment made dirty last: releases and duplicates come in runs from one
    /// segment, which then costs no map lookup.
    last_dirty: Option<SegmentId>,
}

impl Segments {
    /// Adds a new group's id to the open segment; returns that segment.
    pub(super) fn join(&mut self, id: EventId) -> SegmentId {
        if self.open.ids.len() >= SEGMENT_GROUPS {
            let full = std::mem::take(&mut self.open);
            self.closed.insert(self.open_id, full);
            self.open_id += 1;
        }
        self.open.ids.push(id);
        self.open.bytes = None;
        self.open_id
    }

    /// Marks `segment` dirty: one of its groups changed or was released.
    pub(super) fn touch(&mut self, segment: SegmentId) {
        if segment == self.open_id {
            self.open.bytes = None;
        } else if self.last_dirty != Some(segment) {
            if let Some(s) = self.closed.get_mut(&segment) {
                s.bytes = None;
            }
            self.last_dirty = Some(segment);
        }
    }

    /// Every segment's bytes, in segment order: a dirty segment is encoded again by
    /// `encode(segment, ids)`, which drops from `ids` those no longer held in that
    /// segment. Closed segments left empty are removed.
    pub(super) fn encode(
        &mut self,
        mut encode: impl FnMut(SegmentId, &mut Vec<EventId>) -> Vec<u8>,
    ) -> Vec<SharedBytes> {
        self.last_dirty = None;
        let mut parts = Vec::with_capacity(self.closed.len() + 1);
        let mut encoded = 0usize;
        let mut visit = |number: SegmentId, segment: &mut Segment| {
            if segment.bytes.is_none() {
                encoded += 1;
                segment.ids.sort_unstable();
                segment.ids.dedup();
                segment.bytes = Some(encode(number, &mut segment.ids).into());
            }
            if !segment.ids.is_empty() {
                parts.extend(segment.bytes.clone());
            }
            !segment.ids.is_empty()
        };
        self.closed
            .retain(|&number, segment| visit(number, segment));
        visit(self.open_id, &mut self.open);
        tracing::trace!(encoded, segments = parts.len(), "dedup segments");
        parts
    }

    /// Number of segments (open one included), for tests.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.closed.len() + 1
    }
}
