//! `--discover kafka=HOST:PORT[,HOST:PORT]`: a Kafka cluster over the Kafka protocol itself
//! (any broker that speaks it: Apache Kafka, Redpanda, tansu). The bootstrap servers are
//! tried in turn for Metadata (brokers, topics, partitions and their leaders); every broker
//! is asked for the groups it coordinates (ListGroups), and the coordinator for their
//! members and assignments (DescribeGroups) and committed offsets (OffsetFetch); each
//! partition's leader for its first and end offsets (ListOffsets). [`map`] makes the
//! snapshot.
//!
//! One plain TCP connection per broker it needs, kept from poll to poll (a kept connection
//! that fails on its first call of a poll is made again once); every call has the per-call
//! timeout, the whole poll the poll budget, every answer a largest size ([`wire`] checks every
//! length inside it), and the counts of topics, partitions and groups read are capped.
//! Committed offsets come from OffsetFetch v8, many groups a request, where the cluster
//! answers it (ApiVersions says), else one group a request.
//!
//! TLS and SASL as Kafka's `security.protocol` names them ([`security`]: `ssl://`,
//! `sasl_plaintext://`, `sasl_ssl://USER:PASS@...`): each new connection makes its TLS
//! handshake (rustls, the system's roots and `?ca=`, the broker's host name checked against
//! its certificate) and authenticates ([`sasl`]: PLAIN, SCRAM-SHA-256/512) before its first
//! request, within the per-call timeout.
//!
//! The protocol codec is our own ([`wire`]), not a client crate's: see docs/ARCHITECTURE.md
//! ("Discovery from Kafka") for the crates weighed and why.

pub mod map;
pub mod sasl;
pub mod security;
pub mod wire;

pub use security::bootstrap;

use super::{DiscoverError, Source};
use crate::model::BrokerSnapshot;
use map::{GroupState, MemberState, Memory, Polled, TopicState};
use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::{Conn, WireError, Writer};

/// How discovery introduces itself to the brokers (their request logs show it).
const CLIENT_ID: &str = "switchyard-discovery";

/// Groups described in one DescribeGroups request.
const DESCRIBE_CHUNK: usize = 100;

/// Groups whose offsets one OffsetFetch v8 request asks for.
const FETCH_CHUNK: usize = 100;

/// The bounds of one source's calls.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest wait for any one call (connect, request and answer).
    pub timeout: Duration,
    /// Longest wait for all the calls of one poll together.
    pub poll_budget: Duration,
    /// Largest answer read.
    pub max_frame: u64,
    /// Most topics, partitions (all topics together) and groups read per poll; the rest is
    /// left out (and logged).
    pub max_topics: usize,
    pub max_partitions: usize,
    pub max_groups: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(5),
            poll_budget: Duration::from_secs(30),
            max_frame: 32 << 20,
            max_topics: 10_000,
            max_partitions: 100_000,
            max_groups: 10_000,
        }
    }
}

/// A `kafka=` value as shown: `kafka` and its label, never credentials (an unreadable value:
/// none of it).
pub fn shown(value: &str) -> String {
    security::parse(value).map_or_else(|_| "kafka (unreadable value)".to_string(), |t| t.label())
}

/// How connections are made: TLS (its client configuration) and SASL credentials.
#[derive(Clone, Default)]
struct Access {
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<security::Sasl>,
}

pub struct KafkaSource {
    label: String,
    servers: Vec<String>,
    limits: Limits,
    access: Arc<Access>,
    memory: Memory,
    /// The cluster answered an OffsetFetch for all topics (null) with something that is not
    /// an answer: its groups' offsets are asked for by topic and partition.
    by_topic: bool,
    /// Whether the cluster answers OffsetFetch v8 (many groups a request); unknown until
    /// ApiVersions said, false after a v8 answer could not be read.
    batched: Option<bool>,
    /// Connections kept from the previous poll, by address.
    conns: HashMap<String, Conn>,
}

impl KafkaSource {
    /// A source for a `kafka=` value; a `?ca=` file that cannot be read or holds no
    /// certificate is an error here (so `serve` stops before anything starts).
    pub fn new(value: &str, limits: Limits) -> Result<KafkaSource, String> {
        let target = security::parse(value)?;
        let tls = if target.tls {
            let config = crate::changes::tls::client_config(
                target.ca.as_deref(),
                "kafka ?ca=",
                "kafka discovery over TLS",
            )?;
            Some(config)
        } else {
            None
        };
        Ok(KafkaSource {
            label: target.label(),
            servers: target.servers,
            limits,
            access: Arc::new(Access {
                tls,
                sasl: target.sasl,
            }),
            memory: Memory::default(),
            by_topic: false,
            batched: None,
            conns: HashMap::new(),
        })
    }
}

impl Source for KafkaSource {
    fn label(&self) -> &str {
        &self.label
    }

    fn poll(&mut self) -> Result<BrokerSnapshot, DiscoverError> {
        let mut poll = Poll::new(self.limits, self.by_topic, self.batched);
        poll.access = self.access.clone();
        poll.kept = std::mem::take(&mut self.conns);
        let polled = poll.read(&self.servers);
        // The connections this poll used and did not fail are kept, even after a failed
        // poll; one it did not need (a broker gone from the metadata) is closed.
        self.conns = std::mem::take(&mut poll.conns);
        self.by_topic = poll.by_topic;
        self.batched = poll.batched;
        Ok(map::snapshot(&self.label, &polled?, &mut self.memory))
    }
}

/// One poll: its deadline and its connections, by address.
struct Poll {
    limits: Limits,
    access: Arc<Access>,
    /// Offsets are asked for by topic and partition (see [`KafkaSource`]).
    by_topic: bool,
    batched: Option<bool>,
    deadline: Instant,
    /// Connections used in this poll.
    conns: HashMap<String, Conn>,
    /// Connections from the previous poll not used yet in this one.
    kept: HashMap<String, Conn>,
    addresses: HashMap<i32, String>,
}

/// Broker id of the bootstrap connection until Metadata names the brokers.
const BOOTSTRAP: i32 = i32::MIN;

impl Poll {
    fn new(limits: Limits, by_topic: bool, batched: Option<bool>) -> Poll {
        Poll {
            limits,
            access: Arc::default(),
            by_topic,
            batched,
            deadline: Instant::now() + limits.poll_budget,
            conns: HashMap::new(),
            kept: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    fn timeout_error(&self) -> DiscoverError {
        DiscoverError::Timeout(super::nats::millis(self.limits.timeout))
    }

    fn error(&self, at: &str, e: WireError) -> DiscoverError {
        match e {
            WireError::Timeout => self.timeout_error(),
            WireError::Io(e) => DiscoverError::Unreachable(format!("{at}: {e}")),
            WireError::Denied(e) => DiscoverError::Refused(format!("{at}: {e}")),
            other => DiscoverError::BadAnswer(format!("{at}: {other}")),
        }
    }

    /// The time one call may take: the timeout, or what is left of the poll's budget.
    fn call_timeout(&self) -> Result<Duration, DiscoverError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DiscoverError::Timeout(super::nats::millis(
                self.limits.poll_budget,
            )));
        }
        Ok(left.min(self.limits.timeout))
    }

    fn connect(&self, address: &str) -> Result<Conn, DiscoverError> {
        let timeout = self.call_timeout()?;
        let addrs: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|e| DiscoverError::Unreachable(format!("{address}: {e}")))?
            .collect();
        let mut last = format!("{address}: no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return self.secure(stream, address, timeout);
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(self.timeout_error())
                }
                Err(e) => last = format!("{address}: {e}"),
            }
        }
        Err(DiscoverError::Unreachable(last))
    }

    /// A new connection made ready: its TLS handshake and SASL authentication, if the value
    /// asks for them, each bounded by `timeout`.
    fn secure(
        &self,
        stream: TcpStream,
        address: &str,
        timeout: Duration,
    ) -> Result<Conn, DiscoverError> {
        let stream = match &self.access.tls {
            None => wire::Stream::Plain(stream),
            Some(config) => {
                stream
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| stream.set_write_timeout(Some(timeout)))
                    .map_err(|e| self.error(address, e.into()))?;
                let tls = handshake(config, stream, address)
                    .map_err(|e| DiscoverError::Unreachable(format!("{address}: tls: {e}")))?;
                wire::Stream::Tls(Box::new(tls))
            }
        };
        let mut conn = Conn::over(stream, CLIENT_ID, self.limits.max_frame);
        if let Some(sasl) = &self.access.sasl {
            conn.set_timeout(timeout)
                .and_then(|()| sasl::authenticate(&mut conn, sasl))
                .map_err(|e| self.error(&format!("{address}: sasl"), e))?;
        }
        Ok(conn)
    }

    /// One request to broker `node` (classic encoding).
    fn call(
        &mut self,
        node: i32,
        api: (i16, i16),
        body: &Writer,
        what: &str,
    ) -> Result<Vec<u8>, DiscoverError> {
        self.call_as(node, api, body, false, what)
    }

    /// One request to broker `node`, over its connection: this poll's, else the one kept
    /// from the previous poll, else a new one. A kept connection the broker closed meanwhile
    /// fails its first call: that call is made once more over a new connection.
    fn call_as(
        &mut self,
        node: i32,
        api: (i16, i16),
        body: &Writer,
        flexible: bool,
        what: &str,
    ) -> Result<Vec<u8>, DiscoverError> {
        let address = self.addresses.get(&node).cloned().ok_or_else(|| {
            DiscoverError::BadAnswer(format!("{what}: broker {node} is not in the metadata"))
        })?;
        let mut retry = false;
        if !self.conns.contains_key(&address) {
            let conn = match self.kept.remove(&address) {
                Some(kept) => {
                    retry = true;
                    kept
                }
                None => self.connect(&address)?,
            };
            self.conns.insert(address.clone(), conn);
        }
        loop {
            let timeout = self.call_timeout()?;
            let Some(conn) = self.conns.get_mut(&address) else {
                return Err(DiscoverError::Unreachable(format!("broker {node}")));
            };
            let answer = conn
                .set_timeout(timeout)
                .and_then(|()| conn.call_as(api.0, api.1, body, flexible));
            match answer {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    // A connection that failed mid-call is in an unknown state: not reused.
                    self.conns.remove(&address);
                    if retry && matches!(e, WireError::Io(_)) {
                        retry = false;
                        let conn = self.connect(&address)?;
                        self.conns.insert(address.clone(), conn);
                        continue;
                    }
                    return Err(self.error(what, e));
                }
            }
        }
    }

    fn read(&mut self, servers: &[String]) -> Result<Polled, DiscoverError> {
        let taken = super::nats::now_unix_nanos();
        let metadata = self.metadata(servers)?;
        for b in &metadata.brokers {
            let host = if b.host.contains(':') && !b.host.starts_with('[') {
                format!("[{}]", b.host)
            } else {
                b.host.clone()
            };
            self.addresses
                .insert(b.node_id, format!("{host}:{}", b.port));
        }
        let topics = self.topics(&metadata)?;
        let groups = self.groups(&metadata, &topics)?;
        Ok(Polled {
            taken_unix_nanos: taken,
            topics,
            groups,
        })
    }

    /// Metadata from the first bootstrap server that answers (and, the first time, the
    /// versions it answers).
    fn metadata(&mut self, servers: &[String]) -> Result<wire::Metadata, DiscoverError> {
        let mut last = DiscoverError::Unreachable("no bootstrap server".to_string());
        for server in servers {
            self.addresses.insert(BOOTSTRAP, server.clone());
            let answer = match self.batched {
                Some(_) => Ok(()),
                None => self.versions(),
            };
            let body = wire::metadata_request();
            let answer =
                answer.and_then(|()| self.call(BOOTSTRAP, (wire::METADATA, 5), &body, "metadata"));
            match answer {
                Ok(answer) => {
                    return wire::metadata_answer(&answer).map_err(|e| self.error("metadata", e));
                }
                Err(DiscoverError::Timeout(ms)) if self.call_timeout().is_err() => {
                    return Err(DiscoverError::Timeout(ms))
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Topics with their partitions' first and end offsets (asked of each leader).
    fn topics(&mut self, metadata: &wire::Metadata) -> Result<Vec<TopicState>, DiscoverError> {
        let mut topics = Vec::new();
        let mut partitions = 0usize;
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        let mut left_out = 0usize;
        for t in &metadata.topics {
            if t.name.is_empty() || t.error_code != 0 && t.partitions.is_empty() {
                continue;
            }
            if topics.len() >= self.limits.max_topics
                || partitions + t.partitions.len() > self.limits.max_partitions
            {
                left_out += 1;
                continue;
            }
            partitions += t.partitions.len();
            let mut state = TopicState {
                name: t.name.clone(),
                internal: t.internal,
                partitions: BTreeMap::new(),
            };
            for p in &t.partitions {
                state.partitions.insert(p.index, (None, None));
                if p.leader >= 0 && self.addresses.contains_key(&p.leader) {
                    by_leader
                        .entry(p.leader)
                        .or_default()
                        .entry(t.name.as_str())
                        .or_default()
                        .push(p.index);
                }
            }
            topics.push(state);
        }
        if left_out > 0 {
            tracing::warn!(left_out, "kafka discovery: topics over the limits left out");
        }
        let at: HashMap<String, usize> = topics
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        for (leader, asked) in by_leader {
            let asked: Vec<(&str, Vec<i32>)> = asked.into_iter().collect();
            for (which, timestamp) in [(1, wire::LATEST), (0, wire::EARLIEST)] {
                let body = wire::list_offsets_request(&asked, timestamp);
                let answer = self.call(leader, (wire::LIST_OFFSETS, 1), &body, "list offsets")?;
                let offsets = wire::list_offsets_answer(&answer)
                    .map_err(|e| self.error("list offsets", e))?;
                for o in offsets.into_iter().filter(|o| o.error_code == 0) {
                    let Some(slot) = at
                        .get(&o.topic)
                        .and_then(|&i| topics[i].partitions.get_mut(&o.partition))
                    else {
                        continue;
                    };
                    if which == 1 {
                        slot.1 = Some(o.offset);
                    } else {
                        slot.0 = Some(o.offset);
                    }
                }
            }
        }
        Ok(topics)
    }

    /// Consumer groups: listed by every broker, described by and fetched from their
    /// coordinator (the broker that listed them).
    fn groups(
        &mut self,
        metadata: &wire::Metadata,
        topics: &[TopicState],
    ) -> Result<Vec<GroupState>, DiscoverError> {
        let every: Vec<(&str, Vec<i32>)> = topics
            .iter()
            .map(|t| (t.name.as_str(), t.partitions.keys().copied().collect()))
            .collect();
        let mut by_coordinator: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        let mut count = 0usize;
        for b in &metadata.brokers {
            let answer = self.call(
                b.node_id,
                (wire::LIST_GROUPS, 1),
                &Writer::default(),
                "list groups",
            )?;
            let (error, listed) =
                wire::list_groups_answer(&answer).map_err(|e| self.error("list groups", e))?;
            if error != 0 {
                return Err(DiscoverError::BadAnswer(format!(
                    "list groups: error code {error}"
                )));
            }
            for g in listed {
                let consumer = g.protocol_type.is_empty() || g.protocol_type == "consumer";
                if consumer && count < self.limits.max_groups {
                    count += 1;
                    by_coordinator
                        .entry(b.node_id)
                        .or_default()
                        .push(g.group_id);
                }
            }
        }
        let mut out = Vec::new();
        for (node, ids) in by_coordinator {
            let mut batched = match self.batched {
                Some(true) => self.committed_batched(node, &ids)?,
                _ => None,
            };
            for chunk in ids.chunks(DESCRIBE_CHUNK) {
                let body = wire::describe_groups_request(chunk);
                let answer =
                    self.call(node, (wire::DESCRIBE_GROUPS, 1), &body, "describe groups")?;
                let described = wire::describe_groups_answer(&answer)
                    .map_err(|e| self.error("describe groups", e))?;
                for d in described.into_iter().filter(|d| d.error_code == 0) {
                    let (committed, error) = match batched.as_mut() {
                        Some(all) => (all.remove(&d.group_id).unwrap_or_default(), 0),
                        None => self.committed(node, &d.group_id, &every)?,
                    };
                    let committed = if error == 0 {
                        committed
                            .into_iter()
                            .filter(|c| c.error_code == 0 && c.offset >= 0)
                            .map(|c| ((c.topic, c.partition), c.offset))
                            .collect()
                    } else {
                        BTreeMap::new()
                    };
                    out.push(GroupState {
                        id: d.group_id,
                        state: d.state,
                        members: d
                            .members
                            .into_iter()
                            .map(|m| MemberState {
                                client_id: m.client_id,
                                assignment: m.assignment,
                            })
                            .collect(),
                        committed,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// A TLS client handshake with the broker at `address` (`HOST:PORT`), whose certificate must
/// name HOST.
fn handshake(
    config: &Arc<rustls::ClientConfig>,
    mut stream: TcpStream,
    address: &str,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = rustls::pki_types::ServerName::try_from(host)
        .map_err(|_| "the host is not a name or an IP address a certificate can name")?
        .to_owned();
    let mut conn =
        rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    // The whole handshake now, so that a certificate error is this connection's error.
    while conn.is_handshaking() {
        conn.complete_io(&mut stream).map_err(|e| e.to_string())?;
    }
    Ok(rustls::StreamOwned::new(conn, stream))
}

impl Poll {
    /// Whether the bootstrap server answers OffsetFetch v8 (ApiVersions v0, which every
    /// version answers).
    fn versions(&mut self) -> Result<(), DiscoverError> {
        let answer = self.call(
            BOOTSTRAP,
            (wire::API_VERSIONS, 0),
            &Writer::default(),
            "api versions",
        )?;
        let versions =
            wire::api_versions_answer(&answer).map_err(|e| self.error("api versions", e))?;
        self.batched = Some(
            versions
                .get(&wire::OFFSET_FETCH)
                .is_some_and(|&(low, high)| low <= 8 && high >= 8),
        );
        Ok(())
    }

    /// Every committed offset of these groups, many groups a request (OffsetFetch v8);
    /// `None` when the cluster's answer could not be read (then never asked so again).
    fn committed_batched(
        &mut self,
        node: i32,
        groups: &[String],
    ) -> Result<Option<HashMap<String, Vec<wire::Committed>>>, DiscoverError> {
        let mut out = HashMap::new();
        for chunk in groups.chunks(FETCH_CHUNK) {
            let body = wire::offset_fetch_groups_request(chunk);
            let answer = self.call_as(node, (wire::OFFSET_FETCH, 8), &body, true, "offset fetch");
            let answer = match answer {
                Ok(a) => a,
                Err(DiscoverError::BadAnswer(e)) => {
                    tracing::warn!(error = %e, "kafka discovery: OffsetFetch v8 not answered, asking group by group");
                    self.batched = Some(false);
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            match wire::offset_fetch_groups_answer(&answer) {
                Ok(read) => {
                    for g in read.into_iter().filter(|g| g.error_code == 0) {
                        out.insert(g.group, g.committed);
                    }
                }
                Err(WireError::Malformed(e)) => {
                    tracing::warn!(
                        error = e,
                        "kafka discovery: OffsetFetch v8 answer unreadable, asking group by group"
                    );
                    self.batched = Some(false);
                    return Ok(None);
                }
                Err(e) => return Err(self.error("offset fetch", e)),
            }
        }
        Ok(Some(out))
    }

    /// A group's committed offsets: all of them in one ask, or topic by topic where the
    /// cluster does not answer that.
    fn committed(
        &mut self,
        node: i32,
        group: &str,
        every: &[(&str, Vec<i32>)],
    ) -> Result<(Vec<wire::Committed>, i16), DiscoverError> {
        if !self.by_topic {
            let body = wire::offset_fetch_request(group, None);
            let answer = self.call(node, (wire::OFFSET_FETCH, 2), &body, "offset fetch")?;
            match wire::offset_fetch_answer(&answer) {
                Ok(read) => return Ok(read),
                Err(WireError::Malformed(_)) => self.by_topic = true,
                Err(e) => return Err(self.error("offset fetch", e)),
            }
        }
        if every.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let body = wire::offset_fetch_request(group, Some(every));
        let answer = self.call(node, (wire::OFFSET_FETCH, 2), &body, "offset fetch")?;
        wire::offset_fetch_answer(&answer).map_err(|e| self.error("offset fetch", e))
    }
}
