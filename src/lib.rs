//! diffmill: the ad funnel as one incremental timely / differential dataflow.
//!
//! Bids, impressions, clicks and conversions are de-duplicated, joined and aggregated
//! per tumbling event-time window and per dimension. Late and out-of-order records are
//! just more updates: every join and window they touch is re-evaluated, and sinks receive
//! exact, consistent diffs (docs/design.md; precisely, `docs/semantics.md`).
//!
//! The layers, from input to output:
//!
//! - [`event`]: the four event types, CSV / JSON-lines parsing and validation, and the
//!   records that are rejected (dead letters, too-late records), carried as data.
//! - [`connectors`]: the source contract (partitions yielding events and dead letters)
//!   and the sink contract (consistent [`connectors::Batch`]es); the generator, file
//!   (CSV, JSON lines, Parquet), CSV, stdout and in-memory connectors, and the Kafka,
//!   PostgreSQL and Parquet (warehouse tables) connector folders.
//! - [`runtime`]: ingestion (per-partition watermarks decide lateness and the entry
//!   time), emission of batches at frontier moves, accounting of every record, and the
//!   [`runtime::Funnel`] builder that runs it all on timely workers.
//! - [`dataflow`]: the operators on differential collections: [`dataflow::DedupById`]
//!   (dedup with state release), [`dataflow::Attribute`] (joins that count a missing
//!   parent as *unattributed* and move the child when it arrives), windows and
//!   lateness ([`dataflow::Lateness`]), [`dataflow::Measures`] as the difference type,
//!   and [`dataflow::ad_funnel`], which composes them.
//! - [`graph`]: graph files (`graphs/*.toml`), the declarative front end to the builder.
//! - [`observe`]: Prometheus metrics, `/health` and `/ready`, and the live funnel
//!   dashboard of a run, served over HTTP (`diffmill run --metrics-addr`).
//! - [`cli`]: the `diffmill` commands `run`, `gen`, `check` and `bench`.
//! - [`bench`]: the open-loop latency and throughput harness behind `diffmill bench`.

pub mod bench;
pub mod cli;
pub mod codec;
pub mod connectors;
pub mod dataflow;
pub mod declare;
pub mod event;
pub mod format;
pub mod graph;
pub mod observe;
pub mod runtime;
