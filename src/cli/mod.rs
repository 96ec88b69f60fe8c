//! The `diffmill` command line: one `Commands` enum, doc comments as help text.

mod bench;
mod check;
mod gen;
mod observe;
mod run;
mod signals;
mod status;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use bench::{bench, BenchArgs};
pub use check::check;
pub use gen::{gen, write_files, GenArgs};
pub use run::{run, RunArgs};

/// diffmill: exact, incremental ad-funnel aggregates on timely and differential dataflow.
#[derive(Debug, Parser)]
#[command(name = "diffmill", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Commands,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run a graph to completion (finite sources) or until interrupted.
    Run(RunArgs),
    /// Write generated events to CSV or JSON-lines files, one file per stream and partition.
    Gen(Box<GenArgs>),
    /// Measure latency and throughput: the generator in-process at fixed offered rates
    /// (open loop, event time = wall clock), latency percentiles per rate.
    Bench(BenchArgs),
    /// Validate a graph file and print the resolved plan.
    Check {
        /// The graph file, e.g. graphs/ad_funnel.toml.
        graph: PathBuf,
        /// Replace the folder of a files source (as `run --input` does).
        #[arg(long)]
        input: Option<PathBuf>,
    },
}

/// A failure with its exit code: 2 for usage and configuration errors, 1 at run time.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The graph file or an argument cannot be used.
    #[error("{0}")]
    Config(String),
    /// The run failed.
    #[error("{0}")]
    Runtime(String),
    /// The run was stopped by a signal (here or in another process of the cluster); the
    /// summary was printed. Exits 128 + the signal's number (130 for SIGINT, 143 for
    /// SIGTERM), as a shell does.
    #[error("{message}")]
    Stopped {
        /// The exit code.
        code: i32,
        /// What stopped the run and what the sinks hold.
        message: String,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) => 2,
            CliError::Runtime(_) => 1,
            CliError::Stopped { code, .. } => *code,
        }
    }
}

impl From<crate::graph::GraphError> for CliError {
    fn from(error: crate::graph::GraphError) -> Self {
        CliError::Config(error.to_string())
    }
}
