//! The `diffmill` command line: parse, run, map errors to exit codes.

use clap::Parser;
use diffmill::cli::{bench, check, gen, run, Cli, Commands};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
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
