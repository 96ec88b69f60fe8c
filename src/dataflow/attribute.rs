//! Join children to their parents, counting a child whose parent is missing as
//! *unattributed* and moving it when the parent arrives.

use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::ExchangeData;

use crate::declare::{Attribution, KEY_BYTES};
use crate::event::{EventId, Keyed, Millis};

/// What a child needs of its parent: the parent's event time (for the match bound) and
/// the attribution it passes on (dims in a key of `N` bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Parent<const N: usize = KEY_BYTES> {
    /// The parent's event time.
    pub ts: Millis,
    /// The dims the parent passes on to its children.
    pub attribution: Attribution<N>,
}

/// The trace of parents arranged by their id.
pub type ParentTrace<const N: usize> = TraceAgent<ValSpine<EventId, Parent<N>, Millis, isize>>;

/// Parents arranged by their id, shared by every join that reads them.
pub type Parents<'scope, const N: usize> = Arranged<'scope, ParentTrace<N>>;

/// Attribution of children to parents.
pub trait Attribute<'scope, C> {
    /// Pairs each child with its attribution: the attribution of the parent with the
    /// child's parent key when that parent is present and `child.ts − parent.ts ≤ bound`
    /// (the *match bound*), and [`Attribution::Unattributed`] otherwise.
    ///
    /// No retry job and no polling: when a parent arrives after its child, differential
    /// dataflow re-evaluates the join and the output moves the child from unattributed to
    /// the parent's dims, a retraction and an insertion at the parent's time.
    ///
    /// The input is `(parent id, child)`; each child appears exactly once in the output
    /// at every time.
    ///
    /// # Examples
    /// ```
    /// use differential_dataflow::input::Input;
    /// use diffmill::dataflow::{Attribute, Parent};
    /// use diffmill::declare::{Attribution, KeyLayout, Schema, Value};
    /// use diffmill::event::{Click, StreamKind};
    ///
    /// let layout = KeyLayout::new(Schema::funnel().stream(StreamKind::Bid), &["campaign_id"], &[]).unwrap();
    /// let dims: Attribution = Attribution::Dims(layout.key(&[Some(Value::Id(7))]));
    /// timely::example(move |scope| {
    ///     let (_, bids) = scope.new_collection_from(vec![(1u64, Parent { ts: 100, attribution: dims })]);
    ///     let click = |click_id, bid_id, ts| Click { click_id, bid_id, ts };
    ///     let (_, clicks) = scope.new_collection_from(vec![
    ///         (1u64, click(10, 1, 150)), // matches bid 1
    ///         (1, click(11, 1, 900)),    // beyond the match bound of 500
    ///         (2, click(12, 2, 150)),    // bid 2 never arrives
    ///     ]);
    ///     let (_, expected) = scope.new_collection_from(vec![
    ///         (click(10, 1, 150), dims),
    ///         (click(11, 1, 900), Attribution::Unattributed),
    ///         (click(12, 2, 150), Attribution::Unattributed),
    ///     ]);
    ///     clicks.attribute(bids.arrange_by_key(), 500).assert_eq(expected);
    /// });
    /// ```
    fn attribute<const N: usize>(
        self,
        parents: Parents<'scope, N>,
        bound: Millis,
    ) -> VecCollection<'scope, Millis, (C, Attribution<N>)>;
}

impl<'scope, C> Attribute<'scope, C> for VecCollection<'scope, Millis, (EventId, C)>
where
    C: Keyed + ExchangeData,
{
    fn attribute<const N: usize>(
        self,
        parents: Parents<'scope, N>,
        bound: Millis,
    ) -> VecCollection<'scope, Millis, (C, Attribution<N>)> {
        let matched = self
            .clone()
            .join_core(parents, move |_id, child: &C, parent: &Parent<N>| {
                (child.ts() <= parent.ts.saturating_add(bound))
                    .then_some((*child, parent.attribution))
            });
        let moved_out = matched
            .clone()
            .map(|(child, _)| (child, Attribution::Unattributed))
            .negate();
        self.map(|(_, child)| (child, Attribution::Unattributed))
            .concat(matched)
            .concat(moved_out)
    }
}
