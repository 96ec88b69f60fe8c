//! The `diffmill` command line: parse, run, map errors to exit codes.

use clap::Parser;
use diffmill::cli::{bench, check, gen, run, Cli, Commands};

fn main() {
    // What connectors and the cluster are trying (connecting, retrying) is said on
    // stderr by default; RUST_LOG replaces the filter.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,diffmill=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Commands::Run(args) => run(args),
        Commands::Gen(args) => gen(args),
        Commands::Bench(args) => bench(args),
        Commands::Check { graph, input } => check(graph, input.as_deref()),
    };
    match outcome {
        Ok(()) => {}
        Err(stopped @ diffmill::cli::CliError::Stopped { .. }) => {
            eprintln!("{stopped}");
            std::process::exit(stopped.exit_code());
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(error.exit_code());
        }
    }
}
