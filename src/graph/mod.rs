//! Graph files (`graphs/*.toml`): the declarative front end to the funnel builder.
//!
//! A graph file is parsed into a [`GraphSpec`] (typed serde, unknown keys rejected),
//! resolved into a [`Plan`] (files found, settings validated), and the plan builds the
//! same [`crate::runtime::Funnel`] a Rust program would.

mod load;
mod plan;
mod spec;

pub use load::GraphError;
pub use plan::{Overrides, Plan};
pub use spec::{
    AggregateTable, CsvSinkSpec, FilesSpec, GraphSpec, ObserveSpec, SinkSpec, SourceSpec,
    StateSpec, StdoutSinkSpec,
};
