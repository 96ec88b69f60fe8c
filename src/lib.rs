//! diffmill
pub mod cli;
pub mod connectors;
pub mod dataflow;
pub mod event;
pub mod graph;
pub mod runtime;
