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
    Serve(Box<ServeArgs>),
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
    /// With --clickhouse: the database lives on this ClickHouse cluster of the servers'
    /// remote_servers configuration (local tables on every server, distributed tables in
    /// front, created by switchyard on each server of system.clusters).
    #[arg(
        long = "clickhouse-cluster",
        env = "SWITCHYARD_CLICKHOUSE_CLUSTER",
        requires = "clickhouse"
    )]
    pub clickhouse_cluster: Option<String>,
    /// With --clickhouse: how long a consume stays unpaired from a publish stored through
    /// another collector at the same moment before the reconciliation pass pairs them (longer
    /// than an insert may take).
    #[arg(long = "clickhouse-settle", env = "SWITCHYARD_CLICKHOUSE_SETTLE", default_value = "2m", value_parser = humantime::parse_duration)]
    pub clickhouse_settle: std::time::Duration,
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
    /// unset: no cap. With --clickhouse: the database's parts on disk, whole days dropped
    /// (never the newest).
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
    /// Spans in one OTLP request; more are refused with 413 (gRPC RESOURCE_EXHAUSTED) before
    /// decoding.
    #[arg(
        long = "max-spans-per-request",
        env = "SWITCHYARD_MAX_SPANS_PER_REQUEST",
        default_value_t = 100_000
    )]
    pub max_spans_per_request: u64,
    /// Estimated decoded size of one OTLP request (read from its bytes before decoding);
    /// larger ones are refused with 413 (gRPC RESOURCE_EXHAUSTED), e.g. 256MiB.
    #[arg(long = "max-decoded", env = "SWITCHYARD_MAX_DECODED", default_value = "256MiB", value_parser = parse_size)]
    pub max_decoded: u64,
    /// Memory for OTLP requests in flight together: bodies, inflated copies and decoded
    /// requests; past it, 429 (gRPC UNAVAILABLE) with Retry-After, e.g. 1GiB.
    #[arg(long = "ingest-memory", env = "SWITCHYARD_INGEST_MEMORY", default_value = "1GiB", value_parser = parse_size)]
    pub ingest_memory: u64,
    /// OTLP/HTTP bodies being received at once (apart from --max-in-flight, taken once a body
    /// has arrived); more are answered 429 with Retry-After.
    #[arg(
        long = "max-uploads",
        env = "SWITCHYARD_MAX_UPLOADS",
        default_value_t = 128
    )]
    pub max_uploads: usize,
    /// Time a request has to send its head, and its body before --body-min-rate applies;
    /// slower bodies are answered 408 and their connection closed (e.g. 10s).
    #[arg(long = "body-timeout", env = "SWITCHYARD_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_timeout: std::time::Duration,
    /// Average rate a request body must keep after --body-timeout, per second (e.g. 64KiB).
    #[arg(long = "body-min-rate", env = "SWITCHYARD_BODY_MIN_RATE", default_value = "64KiB", value_parser = parse_size)]
    pub body_min_rate: u64,
    /// Idle connections are closed after this long: HTTP keep-alive between requests, OTLP/gRPC
    /// with no bytes either way (e.g. 30s).
    #[arg(long = "idle-timeout", env = "SWITCHYARD_IDLE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// Open connections per listener (UI, OTLP/HTTP, OTLP/gRPC); OTLP/gRPC ones over it are
    /// closed, HTTP ones wait to be accepted.
    #[arg(
        long = "max-connections",
        env = "SWITCHYARD_MAX_CONNECTIONS",
        default_value_t = 256
    )]
    pub max_connections: usize,
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
    /// Label sets of the edge and destination series on `/metrics` at most (client/server
    /// pairs, destinations, discovered brokers' gauges); past it new ones are not added and
    /// are counted in `switchyard_metrics_series_dropped_total`.
    #[arg(long = "metrics-max-series", env = "SWITCHYARD_METRICS_MAX_SERIES", default_value_t = crate::telemetry::graph::DEFAULT_MAX_SERIES)]
    pub metrics_max_series: usize,
    /// Run a simulated shop over the embedded broker, in-process (a live demo topology).
    #[arg(long, env = "SWITCHYARD_DEMO")]
    pub demo: bool,
    /// Largest broker message (event data and attributes), e.g. 1MiB; larger publishes get 413.
    #[arg(long = "broker-max-message", env = "SWITCHYARD_BROKER_MAX_MESSAGE", default_value = "1MiB", value_parser = parse_size)]
    pub broker_max_message: u64,
    /// Let push subscriptions deliver to this server's own addresses (its listeners, or
    /// loopback on their ports); refused by default, since a push into its own topic loops.
    #[arg(
        long = "broker-allow-push-to-self",
        env = "SWITCHYARD_BROKER_ALLOW_PUSH_TO_SELF"
    )]
    pub broker_allow_push_to_self: bool,
    /// HTTP worker threads per listener.
    #[arg(long, env = "SWITCHYARD_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// A broker to poll for its state, as KIND=URL (repeatable; the variable holds a
    /// comma-separated list): rabbitmq=http://USER:PASS@HOST:15672[/VHOST],
    /// nats=nats://HOST:4222, nats-monitor=http://HOST:8222, kafka=HOST:PORT[,HOST:PORT] or
    /// kafka=sasl_ssl://USER:PASS@HOST:PORT[,HOST:PORT][?mechanism=SCRAM-SHA-512&ca=FILE]
    /// (also ssl://, sasl_plaintext://).
    #[arg(
        long,
        env = "SWITCHYARD_DISCOVER",
        hide_env_values = true,
        value_name = "KIND=URL",
        value_delimiter = ','
    )]
    pub discover: Vec<String>,
    /// Require `Authorization: Bearer TOKEN` on every endpoint but /healthz (OTLP/HTTP and
    /// OTLP/gRPC included); the UI asks for it once on /login. Visible ASCII, long and random.
    /// Prefer the variable or --auth-token-file: a flag shows in the process list.
    #[arg(
        long = "auth-token",
        env = "SWITCHYARD_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "auth_token_file"
    )]
    pub auth_token: Option<crate::guard::Secret>,
    /// A file holding the --auth-token (surrounding whitespace ignored).
    #[arg(
        long = "auth-token-file",
        env = "SWITCHYARD_AUTH_TOKEN_FILE",
        value_name = "PATH"
    )]
    pub auth_token_file: Option<PathBuf>,
    /// A host name the listeners answer besides localhost names and the bound address
    /// (repeatable; the variable holds a comma-separated list; `*.example.com` for its
    /// subdomains). Other `Host` headers get 421.
    #[arg(
        long = "allowed-hosts",
        env = "SWITCHYARD_ALLOWED_HOSTS",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Mark the login cookie `Secure` (the UI is served over HTTPS by a proxy in front).
    #[arg(long = "secure-cookie", env = "SWITCHYARD_SECURE_COOKIE")]
    pub secure_cookie: bool,
    /// An AsyncAPI document (2.0 to 2.6 or 3.0, YAML or JSON, at most 4 MiB) of what services
    /// declare they send and receive (repeatable; the variable holds a comma-separated list).
    /// Read at start: a file that cannot be read stops the server with its name and the problem.
    /// The topology then carries the drift between declared and observed (findings
    /// `declared_unused`, `undeclared_flow`, `declared_silent_publisher`).
    #[arg(
        long,
        env = "SWITCHYARD_DECLARED",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub declared: Vec<PathBuf>,
    /// How often each --discover broker is polled (e.g. 15s, 1m).
    #[arg(long = "discover-interval", env = "SWITCHYARD_DISCOVER_INTERVAL", default_value = "15s", value_parser = parse_discover_interval)]
    pub discover_interval: std::time::Duration,
    /// Post a JSON summary to this URL when the architecture changes (a service, destination,
    /// peer or edge not seen in the previous hour): http[s]://[USER:PASS@]HOST[:PORT]/PATH[?QUERY]
    /// (https: the receiver's certificate is checked against the system's roots and
    /// --notify-ca).
    /// Repeatable (the variable holds a comma-separated list; write a comma inside a URL as
    /// %2C): each receiver has its own queue, thread and retries, so a slow or failing one
    /// holds up no other. The user and password are sent as basic auth; they and the query are
    /// never logged. (Parsed at start, not here: a refused value is then reported without
    /// echoing it, so no part of a password reaches the terminal.)
    #[arg(
        long = "notify-url",
        env = "SWITCHYARD_NOTIFY_URL",
        hide_env_values = true,
        value_name = "URL",
        value_delimiter = ','
    )]
    pub notify_url: Vec<String>,
    /// A PEM file of certificates also trusted for https --notify-url receivers (a private
    /// CA's, or a receiver's own self-signed one), besides the system's roots.
    #[arg(long = "notify-ca", env = "SWITCHYARD_NOTIFY_CA", value_name = "FILE")]
    pub notify_ca: Option<std::path::PathBuf>,
    /// How often the change watcher looks for new nodes and edges (e.g. 10s; at least 1s).
    #[arg(long = "changes-interval", env = "SWITCHYARD_CHANGES_INTERVAL", default_value = "10s", value_parser = parse_changes_interval)]
    pub changes_interval: std::time::Duration,
}

impl ServeArgs {
    /// The guard's configuration: the token from --auth-token or its file.
    pub fn guard_config(&self) -> Result<crate::guard::GuardConfig, String> {
        let token = match (&self.auth_token, &self.auth_token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(crate::guard::Secret::from_file(path)?),
            (None, None) => None,
        };
        Ok(crate::guard::GuardConfig {
            token,
            allowed_hosts: self.allowed_hosts.clone(),
            secure_cookie: self.secure_cookie,
            attempts: Default::default(),
        })
    }
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

/// A humantime duration of at least a second.
fn parse_changes_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(1) {
        return Err("at least 1s".into());
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
    /// The observed architecture as an AsyncAPI 3.0 document (JSON).
    Asyncapi,
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
    /// With --clickhouse: the ClickHouse cluster that `serve --clickhouse-cluster` wrote.
    #[arg(
        long = "clickhouse-cluster",
        env = "SWITCHYARD_CLICKHOUSE_CLUSTER",
        requires = "clickhouse"
    )]
    pub clickhouse_cluster: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Dot)]
    pub format: ExportFormat,
    /// Window start, RFC 3339 (default: one hour before --until).
    #[arg(long)]
    pub since: Option<String>,
    /// Window end, RFC 3339 (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Export what changed instead: the window against a base window (--base-since,
    /// --base-until; by default the period of the same length just before), as
    /// `/api/topology/diff` answers it (JSON) or its DOT.
    #[arg(long)]
    pub diff: bool,
    /// Base window start for --diff, RFC 3339.
    #[arg(long = "base-since", requires = "diff")]
    pub base_since: Option<String>,
    /// Base window end for --diff, RFC 3339.
    #[arg(long = "base-until", requires = "diff")]
    pub base_until: Option<String>,
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

    #[test]
    fn auth_flags_parse_and_the_token_stays_hidden() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "switchyard",
            "serve",
            "--auth-token",
            "flag-token-value",
            "--allowed-hosts",
            "a.example,b.example",
            "--allowed-hosts",
            "c.example",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.allowed_hosts.len(), 3);
        assert!(!format!("{args:?}").contains("flag-token-value"));
        assert!(args.guard_config().unwrap().token.is_some());
        let both = Cli::try_parse_from([
            "switchyard",
            "serve",
            "--auth-token",
            "x",
            "--auth-token-file",
            "/f",
        ]);
        assert!(both.is_err());
    }
}
