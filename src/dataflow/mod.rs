//! The operators of the funnel: dedup, joins with re-attribution, windows, emission.

mod attribute;
mod dedup;
mod dims;
mod funnel;
mod measures;
mod settings;
mod window;

pub use attribute::{Attribute, Parent, ParentTrace, Parents};
pub use dedup::{DedupById, DedupCounters, DedupCounts};
pub use dims::{Attribution, Dim, DimValues, GroupBy, UNATTRIBUTED};
pub use funnel::{ad_funnel, AggregateKey, Aggregates, FunnelDedupCounts};
pub use measures::Measures;
pub use settings::{FunnelSettings, SettingsError};
pub use window::{Lateness, WindowStatus};
