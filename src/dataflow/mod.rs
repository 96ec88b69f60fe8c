//! The operators of the funnel: dedup, joins with re-attribution, facts and measures,
//! distinct counts.

mod attribute;
mod dedup;
mod distinct;
mod facts;
mod funnel;

pub use attribute::{Attribute, Parent, ParentTrace, Parents};
pub use dedup::{
    AtEnd, Checkpointing, DedupById, DedupCounters, DedupCounts, DedupSnapshot, GroupState,
};
pub use distinct::Sighting;
pub use facts::{Fact, Facts};
pub use funnel::{
    ad_funnel, ad_funnel_checkpointed, AggregateKey, Aggregates, FunnelDedupCounts, StreamSnapshot,
};
