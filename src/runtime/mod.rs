//! Running a graph: workers, ingestion with watermarks, accounting.

mod accounting;
mod funnel;

pub use accounting::{Accounting, StreamCounts};
pub use funnel::{Funnel, RunError, RunReport};
