//! The `diffmill` command line.

fn main() {}
