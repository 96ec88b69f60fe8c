//! `diffmill check`: validate a graph and print its resolved plan.

use std::path::Path;

use super::CliError;
use crate::graph::{GraphSpec, Overrides};

/// Loads, validates and resolves `graph` (with `input` replacing a files source's folder), then prints the plan to stdout.
///
/// # Errors
/// [`CliError::Config`] naming the file and key of the first problem.
pub fn check(graph: &Path, input: Option<&Path>) -> Result<(), CliError> {
    let overrides = Overrides {
        input: input.map(Path::to_owned),
        ..Overrides::default()
    };
    let plan = GraphSpec::load(graph)?.plan(graph, &overrides)?;
    println!("{}", plan.describe());
    println!("ok: {} is valid", graph.display());
    Ok(())
}
