//! ClickHouse's HTTP interface, through ureq (blocking; the store's writer thread and the read
//! API's blocking threads call it): queries as the request body, answers read as
//! `JSONEachRow` with a size cap, inserts as `RowBinary` bodies. Every call has connect, read
//! and write timeouts. Errors are built from the failure's kind and ClickHouse's own message,
//! never from the URL (which may hold credentials).

use super::rowbinary::Rows;
use super::url::ClickHouseUrl;
use crate::store::StoreError;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// On a cluster, the suffix of the local tables behind the distributed ones.
pub const LOCAL_SUFFIX: &str = "_local";

/// The largest answer read from ClickHouse.
const MAX_ANSWER: u64 = 64 << 20;

/// Settings sent with every request: 64-bit integers as JSON numbers (not strings), and
/// errors reported in the status even when they happen while the answer is produced.
///
/// `max_query_size`: a search settles up to 21,000 traces on their spans, named as literals
/// (`trace_id IN (unhex('...'), ...)`, 44 bytes each: under 1 MiB); ClickHouse's default of
/// 256 KiB would refuse more than about 6,000.
const SETTINGS: &str =
    "output_format_json_quote_64bit_integers=0&wait_end_of_query=1&max_query_size=2097152";

/// Added on a cluster (`--clickhouse-cluster`): an `IN (subquery)` over two distributed
/// tables runs the subquery once, on the server asked, and sends its result to every shard
/// (18.16 refuses such a query otherwise); an insert into a distributed table is answered
/// after every shard wrote its rows, not when they are queued for sending.
const CLUSTER_SETTINGS: &str = "distributed_product_mode=global&insert_distributed_sync=1";

/// ClickHouse's error codes for a shard that did not answer (`SOCKET_TIMEOUT`,
/// `NETWORK_ERROR`, `ALL_CONNECTION_TRIES_FAILED`, `TOO_FEW_LIVE_REPLICAS`): the server asked
/// answers 500 with one of them when a distributed query or insert could not reach a shard.
const SHARD_UNREACHABLE: &[u32] = &[209, 210, 279, 285];

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// Reading an answer (a query or an insert can take this long to answer).
    pub read: Duration,
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(30),
            write: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection, a reset, or no answer in time: ClickHouse is down or overloaded.
    #[error("clickhouse is unreachable: {0}")]
    Unreachable(String),
    #[error("clickhouse refused the credentials (HTTP {0})")]
    Unauthorized(u16),
    /// ClickHouse answered with an error (its exception text).
    #[error("clickhouse answered HTTP {status}: {message}")]
    Server { status: u16, message: String },
    #[error("clickhouse answered something unexpected: {0}")]
    BadAnswer(String),
    /// A query sent with external data would make a URL longer than ClickHouse takes.
    #[error("a query of {0} bytes (URL-encoded) is too long to send with external data")]
    QueryTooLong(usize),
}

/// The longest query sent in the URL (with external data): ClickHouse's HTTP server takes a
/// request line of at most 16 KiB, and the settings and table parameters need some of it.
const QUERY_IN_URL: usize = 14 * 1024;

impl ClientError {
    /// Whether retrying later may succeed (the server is down, restarting or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable(_) => true,
            // An HTTP 400 with no text is the HTTP server refusing a request it could not
            // read (ClickHouse's own errors carry their exception): nothing of it ran.
            ClientError::Server { status, message } => {
                *status == 503
                    || (*status == 400 && message.trim().is_empty())
                    || error_code(message).is_some_and(|c| SHARD_UNREACHABLE.contains(&c))
            }
            _ => false,
        }
    }
}

/// The code of a ClickHouse exception text (`Code: 279, e.displayText() = ...`).
fn error_code(message: &str) -> Option<u32> {
    let rest = message.trim_start().strip_prefix("Code: ")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

impl From<ClientError> for StoreError {
    fn from(e: ClientError) -> StoreError {
        if e.is_transient() {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}

/// A connection pool to one server, scoped to one database; with `--clickhouse-cluster`, also
/// the cluster that server belongs to (its queries then read and write the distributed tables).
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    auth: Option<String>,
    database: String,
    cluster: Option<Arc<Cluster>>,
}

/// A ClickHouse cluster of `remote_servers` (`--clickhouse-cluster NAME`), as `cluster.rs`
/// found it in `system.clusters`.
pub struct Cluster {
    pub name: String,
    /// A client for every server of the cluster (every replica of every shard), each on the
    /// URL's port and database: where the local tables are created, sized and dropped.
    pub servers: Vec<Client>,
}

impl Client {
    pub fn new(url: &ClickHouseUrl, timeouts: Timeouts) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeouts.connect)
            .timeout_read(timeouts.read)
            .timeout_write(timeouts.write)
            .max_idle_connections_per_host(16)
            .build();
        let auth = url.user.as_ref().map(|user| {
            let pair = format!("{user}:{}", url.password.as_deref().unwrap_or(""));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Client {
            agent,
            endpoint: url.endpoint(),
            auth,
            database: url.database.clone(),
            cluster: None,
        }
    }

    /// This client with another read timeout, for a statement that may run long (the index
    /// backfill of a migration); connect and write timeouts are the defaults.
    pub fn with_read_timeout(&self, read: Duration) -> Client {
        let d = Timeouts::default();
        let mut c = self.clone();
        c.agent = ureq::AgentBuilder::new()
            .timeout_connect(d.connect)
            .timeout_read(read)
            .timeout_write(d.write)
            .max_idle_connections_per_host(1)
            .build();
        c
    }

    /// This client, sending the settings distributed tables need, for a cluster's servers.
    pub fn in_cluster(mut self, cluster: Cluster) -> Client {
        self.cluster = Some(Arc::new(cluster));
        self
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_deref()
    }

    /// The servers that hold the data: the cluster's, or this client's one server.
    pub fn servers(&self) -> Vec<&Client> {
        match &self.cluster {
            Some(c) => c.servers.iter().collect(),
            None => vec![self],
        }
    }

    /// The name of a table's rows on each server: on a cluster, `TABLE_local` (the table's
    /// own name is the distributed table in front of them); else the table itself.
    pub fn local_table(&self, table: &str) -> String {
        match &self.cluster {
            Some(_) => format!("{table}{LOCAL_SUFFIX}"),
            None => table.to_string(),
        }
    }

    /// Runs a statement that answers nothing (DDL). `in_database`: false for statements that
    /// must run before the database exists.
    pub fn execute(&self, sql: &str, in_database: bool) -> Result<(), ClientError> {
        self.post(sql.as_bytes(), None, in_database).map(|_| ())
    }

    /// Runs a query and parses each line of its `JSONEachRow` answer.
    pub fn rows<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, ClientError> {
        self.rows_in(sql, true)
    }

    /// [`Client::rows`] outside the database (which may not exist yet): `system` tables.
    pub fn system_rows<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, ClientError> {
        self.rows_in(sql, false)
    }

    fn rows_in<T: DeserializeOwned>(
        &self,
        sql: &str,
        in_database: bool,
    ) -> Result<Vec<T>, ClientError> {
        let body = format!("{sql}\nFORMAT JSONEachRow");
        let text = self.post(body.as_bytes(), None, in_database)?;
        parse_rows(&text)
    }

    /// [`Client::rows`] with tables sent along with the query (ClickHouse's "external data":
    /// a table the query reads by name, `WHERE (a, b) IN keys`, and that a distributed query
    /// forwards to the shards). Sets of ids go this way rather than as SQL literals: no SQL is
    /// parsed for them, which costs ClickHouse 18.16 more than the lookup itself.
    pub fn rows_with<T: DeserializeOwned>(
        &self,
        sql: &str,
        tables: &[External<'_>],
    ) -> Result<Vec<T>, ClientError> {
        let query = format!("{sql}\nFORMAT JSONEachRow");
        // With external data the query travels in the URL, and ClickHouse's HTTP server
        // answers a request line over 16 KiB with an empty HTTP 400: say so instead.
        let encoded: usize = query
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { 1 } else { 3 })
            .sum();
        if encoded > QUERY_IN_URL {
            return Err(ClientError::QueryTooLong(encoded));
        }
        let boundary = boundary(tables);
        let mut body = Vec::with_capacity(tables.iter().map(|t| t.rows.buf.len() + 160).sum());
        let mut params = vec![("query".to_string(), query)];
        for t in tables {
            params.push((format!("{}_structure", t.name), t.structure.to_string()));
            params.push((format!("{}_format", t.name), "RowBinary".to_string()));
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{0}\"; filename=\"{0}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                    t.name
                )
                .as_bytes(),
            );
            body.extend_from_slice(&t.rows.buf);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let text = self.send(&body, Some(&content_type), &params, true)?;
        parse_rows(&text)
    }

    /// Inserts rows encoded as `RowBinary` (`rowbinary.rs`) into `table (columns)`; returns
    /// once ClickHouse has written them.
    pub fn insert(&self, table: &str, columns: &str, rows: &[u8]) -> Result<(), ClientError> {
        let query = format!("INSERT INTO {table} ({columns}) FORMAT RowBinary");
        self.post(rows, Some(&query), true).map(|_| ())
    }

    fn post(
        &self,
        body: &[u8],
        query: Option<&str>,
        in_database: bool,
    ) -> Result<String, ClientError> {
        let params: Vec<(String, String)> = query
            .map(|q| ("query".to_string(), q.to_string()))
            .into_iter()
            .collect();
        self.send(body, None, &params, in_database)
    }

    fn send(
        &self,
        body: &[u8],
        content_type: Option<&str>,
        params: &[(String, String)],
        in_database: bool,
    ) -> Result<String, ClientError> {
        let mut req = self.agent.post(&self.endpoint);
        if in_database {
            req = req.query("database", &self.database);
        }
        for (k, v) in params {
            req = req.query(k, v);
        }
        if let Some(t) = content_type {
            req = req.set("Content-Type", t);
        }
        let cluster = self.cluster.as_ref().map_or("", |_| CLUSTER_SETTINGS);
        for pair in SETTINGS.split('&').chain(cluster.split('&')) {
            if let Some((k, v)) = pair.split_once('=') {
                req = req.query(k, v);
            }
        }
        if let Some(auth) = &self.auth {
            req = req.set("Authorization", auth);
        }
        match req.send_bytes(body) {
            Ok(resp) => read_capped(resp),
            Err(ureq::Error::Status(status @ (401 | 403), _)) => {
                Err(ClientError::Unauthorized(status))
            }
            Err(ureq::Error::Status(status, resp)) => {
                let message = read_capped(resp).unwrap_or_default();
                // Code 192 (unknown user) and 193 (wrong password) come as 500 from older servers.
                if message.starts_with("Code: 192") || message.starts_with("Code: 193") {
                    return Err(ClientError::Unauthorized(status));
                }
                Err(ClientError::Server {
                    status,
                    message: message.trim().chars().take(1_000).collect(),
                })
            }
            Err(ureq::Error::Transport(t)) => Err(ClientError::Unreachable(
                match t.kind() {
                    ureq::ErrorKind::Dns => "unknown host",
                    ureq::ErrorKind::ConnectionFailed => "connection refused",
                    ureq::ErrorKind::Io => "connection failed or timed out",
                    _ => "transport error",
                }
                .to_string(),
            )),
        }
    }
}

/// A table sent with a query ([`Client::rows_with`]): its name in the query, its columns
/// (`name Type, ...`) and its rows in `RowBinary`.
pub struct External<'a> {
    pub name: &'static str,
    pub structure: &'static str,
    pub rows: &'a Rows,
}

/// A multipart boundary found in none of the tables' bytes.
fn boundary(tables: &[External<'_>]) -> String {
    let mut n = 0u64;
    loop {
        let b = format!("switchyard-{n:016x}");
        let found = tables
            .iter()
            .any(|t| memchr::memmem::find(&t.rows.buf, b.as_bytes()).is_some());
        if !found {
            return b;
        }
        n = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    }
}

/// Each line of a `JSONEachRow` answer.
fn parse_rows<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, ClientError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| ClientError::BadAnswer(format!("{e} in a row")))
        })
        .collect()
}

fn read_capped(resp: ureq::Response) -> Result<String, ClientError> {
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(MAX_ANSWER + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| ClientError::Unreachable("connection failed or timed out".into()))?;
    if bytes.len() as u64 > MAX_ANSWER {
        return Err(ClientError::BadAnswer(format!(
            "an answer over {} MiB",
            MAX_ANSWER >> 20
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| ClientError::BadAnswer("an answer that is not UTF-8".into()))
}
