//! Checkpoints: a run's consistent state at a frontier, written to a state folder, and
//! taken back by a restarted run so that it continues exactly (docs/design.md §11).
//!
//! # What a checkpoint holds, and why that is enough
//!
//! Under the retention rules (docs/semantics.md §1-§3) the state of the funnel at a
//! frontier `F` is a function of the *dedup groups held at `F`*: every join arrangement
//! and every aggregate that a window not yet final depends on is computed from the
//! records whose release time is after `F`, and dedup holds exactly those (winner and
//! losing payloads, with their release time). So a checkpoint at `F` keeps:
//!
//! - the dedup groups held at `F`, as each dedup operator had them after every update
//!   at a time before `F` and before any later one ([`crate::dataflow::DedupSnapshot`]);
//! - for every partition, its position and watermark after the last record read, and
//!   every record read that entered (or was rejected) at `F` or later: ingestion reads
//!   ahead of the frontier, and those records are not in the groups yet
//!   ([`IngestPart`]);
//! - the emitter's state at `F`: the next batch's sequence number and the windows with
//!   rows that are not final yet; and the accounting.
//!
//! Its size tracks the live state (the records a window that is not final can still
//! depend on), not the history: a run of weeks writes checkpoints of the same size as a
//! run of days at the same rate.
//!
//! # How one is made
//!
//! Worker 0 asks for a checkpoint on the control stream ([`super::control`]) at the
//! cluster's ingestion frontier `F`. Each dedup operator answers when it reaches `F`; each
//! worker's ingestion answers once its own frontier is at `F` or later; the emitter cuts
//! a batch at exactly `F`. Once every part has arrived *and* the batch at `F` is in every
//! sink, the emitter hands the checkpoint to a writer thread ([`CheckpointWriter`]),
//! which writes it atomically ([`file`]). So a checkpoint's frontier is never ahead of
//! what every sink holds: sinks skip, on restart, what they already have.
//!
//! # How one is taken back
//!
//! A run whose state folder holds a checkpoint starts from it ([`StateConfig::load`]):
//! the restore operator ([`restore()`]) sends the groups back to the dedup operators
//! (exchanged by id, so any number of workers and processes works), the partition states
//! to every ingest operator (each reopens its own partitions by name), and the records
//! that were read but not applied to where they were going, at their times. The emitter
//! starts at `F`: updates before `F` (the restored groups' effects) are what the sinks
//! already hold, so they are dropped, and batches continue from `F`.

pub mod file;
mod identity;
mod restore;
mod snapshot;
mod store;

pub use identity::Identity;
pub use restore::{drop_restored, restore, Restored, RestoredPartitions};
pub use snapshot::{Checkpoint, Groups, IngestPart, Part, PartitionState};
pub use store::{CheckpointWriter, Loaded, StateConfig, StateError, Written};
