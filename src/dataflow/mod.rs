//! The operators of the funnel: dedup, joins with re-attribution, windows, emission.

mod dims;
mod measures;
mod settings;
mod window;

pub use dims::{Attribution, Dim, DimValues, GroupBy, UNATTRIBUTED};
pub use measures::Measures;
pub use settings::{FunnelSettings, SettingsError};
pub use window::{Lateness, WindowStatus};
