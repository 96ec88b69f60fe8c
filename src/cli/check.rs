//! `diffmill check`: validate a graph and print its resolved plan.

use std::path::Path;

use super::CliError;
use crate::graph::{GraphSpec, Overrides};

/// Loads, validates and resolves `graph`, then prints the plan to stdout.
///
/// # Errors
/// [`CliError::Config`] naming the file and key of the first problem.
pub fn check(graph: &Path) -> Result<(), CliError> {
    let plan = GraphSpec::load(graph)?.plan(graph, &Overrides::default())?;
    println!("{}", plan.describe());
    println!("ok: {} is valid", graph.display());
    Ok(())
}
