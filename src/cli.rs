//! Command line: clap derive only. Every flag has an environment variable.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Topology discovery and event tracing for publish/subscribe systems"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector, API and UI (the default).
    Serve(ServeArgs),
    /// Print the topology of a database as Graphviz DOT or JSON, without a server.
    Export(ExportArgs),
    /// Load generators and query benchmarks against a running server.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// SQLite database file (created if missing).
    #[arg(long, env = "SWITCHYARD_DB", default_value = "./switchyard.db")]
    pub db: PathBuf,
    /// Store spans, search indexes and minute statistics in ClickHouse instead of the SQLite
    /// file: http://[USER:PASS@]HOST:8123/DATABASE (the database is created if missing). Any
    /// number of `serve` processes may share it; the embedded broker keeps its file (--db).
    /// (Parsed at start, not here: a refused value is then reported without its password.)
    #[arg(long, env = "SWITCHYARD_CLICKHOUSE", hide_env_values = true)]
    pub clickhouse: Option<String>,
    /// Address of the UI and API.
    #[arg(long, env = "SWITCHYARD_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Address of the OTLP/HTTP receiver.
    #[arg(
        long = "otlp-http",
        env = "SWITCHYARD_OTLP_HTTP",
        default_value = "127.0.0.1:4318"
    )]
    pub otlp_http: SocketAddr,
    /// Address of the OTLP/gRPC receiver.
    #[arg(
        long = "otlp-grpc",
        env = "SWITCHYARD_OTLP_GRPC",
        default_value = "127.0.0.1:4317"
    )]
    pub otlp_grpc: SocketAddr,
    /// How long spans and statistics are kept (e.g. 7d, 12h).
    #[arg(long, env = "SWITCHYARD_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention: std::time::Duration,
    /// Largest database size before the oldest spans are deleted (e.g. 2GiB, at least 64MiB);
    /// unset: no cap.
    #[arg(long = "retention-size", env = "SWITCHYARD_RETENTION_SIZE", value_parser = parse_retention_size)]
    pub retention_size: Option<u64>,
    /// Largest OTLP request body, compressed or inflated (e.g. 64MiB).
    #[arg(long = "max-body", env = "SWITCHYARD_MAX_BODY", default_value = "64MiB", value_parser = parse_size)]
    pub max_body: u64,
    /// OTLP requests in flight at once; more are answered 429 with Retry-After.
    #[arg(
        long = "max-in-flight",
        env = "SWITCHYARD_MAX_IN_FLIGHT",
        default_value_t = 64
    )]
    pub max_in_flight: usize,
    /// Write batches queued for the store; when full, OTLP answers 503 with Retry-After.
    #[arg(
        long = "queue-depth",
        env = "SWITCHYARD_QUEUE_DEPTH",
        default_value_t = 64
    )]
    pub queue_depth: usize,
    /// SQLite durability: normal survives process crashes (kill -9); full also power loss.
    #[arg(long, env = "SWITCHYARD_SYNC", value_enum, default_value_t = SyncMode::Normal)]
    pub sync: SyncMode,
    /// Run a simulated shop over the embedded broker, in-process (a live demo topology).
    #[arg(long, env = "SWITCHYARD_DEMO")]
    pub demo: bool,
    /// Largest broker message (event data and attributes), e.g. 1MiB; larger publishes get 413.
    #[arg(long = "broker-max-message", env = "SWITCHYARD_BROKER_MAX_MESSAGE", default_value = "1MiB", value_parser = parse_size)]
    pub broker_max_message: u64,
    /// HTTP worker threads per listener.
    #[arg(long, env = "SWITCHYARD_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// A broker to poll for its state, as KIND=URL (repeatable; the variable holds a
    /// comma-separated list): rabbitmq=http://USER:PASS@HOST:15672[/VHOST],
    /// nats=nats://HOST:4222, nats-monitor=http://HOST:8222.
    #[arg(
        long,
        env = "SWITCHYARD_DISCOVER",
        value_name = "KIND=URL",
        value_delimiter = ','
    )]
    pub discover: Vec<String>,
    /// How often each --discover broker is polled (e.g. 15s, 1m).
    #[arg(long = "discover-interval", env = "SWITCHYARD_DISCOVER_INTERVAL", default_value = "15s", value_parser = parse_discover_interval)]
    pub discover_interval: std::time::Duration,
}

/// A humantime duration of at least `discover::runner::MIN_INTERVAL`.
fn parse_discover_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    let min = crate::discover::runner::MIN_INTERVAL;
    if d < min {
        return Err(format!("at least {}", humantime::format_duration(min)));
    }
    Ok(d)
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SyncMode {
    Normal,
    Full,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExportFormat {
    Dot,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// SQLite database file written by `switchyard serve`.
    #[arg(long, env = "SWITCHYARD_DB", default_value = "./switchyard.db")]
    pub db: PathBuf,
    /// Read the ClickHouse database that `serve --clickhouse` writes instead of --db:
    /// http://[USER:PASS@]HOST:8123/DATABASE (parsed at start, reported without its password).
    #[arg(long, env = "SWITCHYARD_CLICKHOUSE", hide_env_values = true)]
    pub clickhouse: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Dot)]
    pub format: ExportFormat,
    /// Window start, RFC 3339 (default: one hour before --until).
    #[arg(long)]
    pub since: Option<String>,
    /// Window end, RFC 3339 (default: now).
    #[arg(long)]
    pub until: Option<String>,
}

fn parse_retention_size(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    let min = crate::store::RetentionConfig::MIN_SIZE_BYTES;
    if size < min {
        return Err(format!(
            "--retention-size must be at least {} MiB",
            min / 1024 / 1024
        ));
    }
    Ok(size)
}

/// Parses sizes such as `64MiB`, `2GB`, `512k`, `1000`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {text:?}: use e.g. 64MiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "invalid size unit in {text:?}: use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    Ok((value * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_sizes_parse() {
        Cli::command().debug_assert();
        assert_eq!(parse_size("64MiB").unwrap(), 64 * 1024 * 1024);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn discover_flags_repeat_and_split_on_commas() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "switchyard",
            "serve",
            "--discover",
            "rabbitmq=http://h:15672,nats=nats://h:4222",
            "--discover",
            "nats-monitor=http://h:8222",
            "--discover-interval",
            "1s",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.discover.len(), 3);
        assert_eq!(args.discover_interval, std::time::Duration::from_secs(1));
        assert!(parse_discover_interval("1ms").is_err());
        assert!(parse_discover_interval("soon").is_err());
    }
}
