//! diffmill
pub mod connectors;
pub mod dataflow;
pub mod event;
pub mod runtime;
