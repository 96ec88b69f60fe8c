//! The operators of the funnel: dedup, joins with re-attribution, windows, emission.

mod attribute;
mod dedup;
mod dims;
mod funnel;
mod measures;
mod settings;
mod window;

pub use attribute::{Attribute, Parent, ParentTrace, Parents};
pub use dedup::{Checkpointing, DedupById, DedupCounters, DedupCounts, DedupSnapshot, GroupState};
pub use dims::{Attribution, Dim, DimValues, GroupBy, UNATTRIBUTED};
pub use funnel::{
    ad_funnel, ad_funnel_checkpointed, AggregateKey, Aggregates, FunnelDedupCounts, RestoredGroups,
};
pub use measures::Measures;
pub use settings::{FunnelSettings, SettingsError};
pub use window::{Lateness, WindowStatus};
