use clap::Parser;
use switchyard::cli::{Cli, Command, ServeArgs};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Export(args)) => switchyard::app::export(args),
        Some(Command::Bench(args)) => switchyard::bench::run(args),
        Some(Command::Serve(args)) => serve(args),
        None => match Cli::parse_from(["switchyard", "serve"]).command {
            Some(Command::Serve(args)) => serve(args),
            _ => unreachable!("serve parses"),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Decoding and SQLite reads run here; a few threads keep two cores busy, and fewer
        // threads mean fewer malloc arenas (less memory).
        .max_blocking_threads(8)
        .enable_all()
        .build()?
        .block_on(switchyard::app::run(args))
}
