//! The few Kafka protocol messages discovery sends, at versions every broker from Kafka 1.0 to
//! 4.x answers (the classic, non-flexible encoding): ApiVersions v0, Metadata v5, ListGroups
//! v1, DescribeGroups v1, OffsetFetch v2 and ListOffsets v1, plus the consumer protocol's
//! assignment; and OffsetFetch v8 (flexible encoding: compact strings and arrays, tagged
//! fields), which asks for many groups' offsets at once, where the broker answers it. Requests are written here; answers are read by a [`Reader`] that checks every
//! length against the bytes that are left before it takes or allocates anything, so a
//! garbage answer is an error, never a panic or a huge allocation.

use std::io::{Read, Write};
use std::net::TcpStream;

pub const METADATA: i16 = 3;
pub const LIST_GROUPS: i16 = 16;
pub const DESCRIBE_GROUPS: i16 = 15;
pub const OFFSET_FETCH: i16 = 9;
pub const LIST_OFFSETS: i16 = 2;
pub const API_VERSIONS: i16 = 18;

/// ListOffsets' timestamps for "the next offset to be written" and "the first one kept".
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("io: {0}")]
    Io(String),
    #[error("timed out")]
    Timeout,
    #[error("an answer of {0} bytes is over the limit")]
    TooLarge(u64),
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
    /// The broker refused the credentials, or they could not be used (TLS, SASL).
    #[error("{0}")]
    Denied(String),
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> WireError {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => WireError::Timeout,
            _ => WireError::Io(e.to_string()),
        }
    }
}

/// A request body under construction (after the header).
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.0.push(u8::from(v));
        self
    }
    /// A string (names are far below 32 KiB; a longer one is cut at a character boundary).
    pub fn string(&mut self, s: &str) -> &mut Self {
        let mut end = s.len().min(i16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.i16(end as i16);
        self.0.extend_from_slice(&s.as_bytes()[..end]);
        self
    }
    /// Bytes, their length first.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
        self.0
            .extend_from_slice(&b[..b.len().min(i32::MAX as usize)]);
        self
    }
    /// An array's length (`None`: null).
    pub fn len(&mut self, n: Option<usize>) -> &mut Self {
        self.i32(n.map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)))
    }
    /// An unsigned varint (the flexible encoding's lengths and tag counts).
    pub fn uvarint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }
    /// A compact string (its length plus one as a varint; cut like [`Writer::string`]).
    pub fn compact_string(&mut self, s: &str) -> &mut Self {
        let mut end = s.len().min(i16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.uvarint(end as u64 + 1);
        self.0.extend_from_slice(&s.as_bytes()[..end]);
        self
    }
    /// A compact array's length (`None`: null).
    pub fn compact_len(&mut self, n: Option<usize>) -> &mut Self {
        self.uvarint(n.map_or(0, |n| n as u64 + 1))
    }
    /// No tagged fields.
    pub fn no_tags(&mut self) -> &mut Self {
        self.uvarint(0)
    }
}

/// A cursor over one answer's body.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Malformed("cut short"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn bool(&mut self) -> Result<bool, WireError> {
        Ok(self.array::<1>()?[0] != 0)
    }
    pub fn i16(&mut self) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn nullable_string(&mut self) -> Result<Option<String>, WireError> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let bytes = self.take(n as usize)?;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }

    pub fn string(&mut self) -> Result<String, WireError> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(&[]);
        }
        self.take(n as usize)
    }

    /// An array's element count (null: none). Every element takes at least `min` bytes, so a
    /// count the bytes left cannot hold is refused before anything is allocated for it.
    pub fn count(&mut self, min: usize) -> Result<usize, WireError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        self.fits(n as usize, min)
    }

    /// `n`, when `n` elements of at least `min` bytes each fit in what is left.
    fn fits(&self, n: usize, min: usize) -> Result<usize, WireError> {
        if n.saturating_mul(min.max(1)) > self.buf.len() {
            return Err(WireError::Malformed("an array longer than its answer"));
        }
        Ok(n)
    }

    /// `n` elements read by `each`, collected.
    fn elements<T>(
        &mut self,
        n: usize,
        mut each: impl FnMut(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(each(self)?);
        }
        Ok(out)
    }

    /// `count` elements read by `each`, collected.
    pub fn list<T>(
        &mut self,
        min: usize,
        each: impl FnMut(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let n = self.count(min)?;
        self.elements(n, each)
    }

    pub fn i32s(&mut self) -> Result<Vec<i32>, WireError> {
        self.list(4, |r| r.i32())
    }

    /// An unsigned varint of at most 5 bytes (every length here fits 32 bits).
    pub fn uvarint(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for i in 0..5 {
            let b = self.array::<1>()?[0];
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::Malformed("a varint longer than 5 bytes"))
    }

    pub fn compact_nullable_string(&mut self) -> Result<Option<String>, WireError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let n = usize::try_from(n - 1).map_err(|_| WireError::Malformed("a string too long"))?;
        let bytes = self.take(n)?;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }

    pub fn compact_string(&mut self) -> Result<String, WireError> {
        Ok(self.compact_nullable_string()?.unwrap_or_default())
    }

    /// A compact array's element count (null: none), checked as [`Reader::count`] does.
    pub fn compact_count(&mut self, min: usize) -> Result<usize, WireError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(0);
        }
        self.fits(usize::try_from(n - 1).unwrap_or(usize::MAX), min)
    }

    /// `compact_count` elements read by `each`, collected.
    pub fn compact_list<T>(
        &mut self,
        min: usize,
        each: impl FnMut(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let n = self.compact_count(min)?;
        self.elements(n, each)
    }

    /// Tagged fields: skipped.
    pub fn skip_tags(&mut self) -> Result<(), WireError> {
        let n = self.uvarint()?;
        if n > self.buf.len() as u64 {
            return Err(WireError::Malformed("more tagged fields than bytes"));
        }
        for _ in 0..n {
            self.uvarint()?; // tag
            let size = self.uvarint()?;
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            self.take(size)?;
        }
        Ok(())
    }
}

/// A connection's bytes: plain TCP, or TLS over it (`ssl://`, `sasl_ssl://`).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One connection to one broker: requests in turn, each answer bounded in size and time (the
/// stream's read and write timeouts).
pub struct Conn {
    stream: Stream,
    correlation: i32,
    client_id: String,
    max_frame: u64,
}

impl Conn {
    pub fn new(stream: TcpStream, client_id: &str, max_frame: u64) -> Conn {
        Conn::over(Stream::Plain(stream), client_id, max_frame)
    }

    /// A connection over a plain or TLS stream.
    pub fn over(stream: Stream, client_id: &str, max_frame: u64) -> Conn {
        Conn {
            stream,
            correlation: 0,
            client_id: client_id.to_string(),
            max_frame,
        }
    }

    /// Bounds the next call's write and each read of its answer.
    pub fn set_timeout(&mut self, timeout: std::time::Duration) -> Result<(), WireError> {
        self.stream.tcp().set_read_timeout(Some(timeout))?;
        self.stream.tcp().set_write_timeout(Some(timeout))?;
        Ok(())
    }

    /// Sends `body` as request `api_key` v`version` and returns the answer's body (after the
    /// correlation id, which must be this request's).
    pub fn call(
        &mut self,
        api_key: i16,
        version: i16,
        body: &Writer,
    ) -> Result<Vec<u8>, WireError> {
        self.call_as(api_key, version, body, false)
    }

    /// [`Conn::call`] for a request of the flexible encoding (`flexible`): its header ends with
    /// tagged fields, and so does the answer's (skipped here).
    pub fn call_as(
        &mut self,
        api_key: i16,
        version: i16,
        body: &Writer,
        flexible: bool,
    ) -> Result<Vec<u8>, WireError> {
        self.correlation = self.correlation.wrapping_add(1);
        let mut head = Writer::default();
        head.i16(api_key)
            .i16(version)
            .i32(self.correlation)
            .string(&self.client_id);
        if flexible {
            head.no_tags();
        }
        let size = head.0.len() + body.0.len();
        let mut frame = Vec::with_capacity(4 + size);
        frame.extend_from_slice(&(size as i32).to_be_bytes());
        frame.extend_from_slice(&head.0);
        frame.extend_from_slice(&body.0);
        self.stream.write_all(&frame)?;
        self.stream.flush()?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if len < 4 {
            return Err(WireError::Malformed("a frame shorter than its header"));
        }
        if len as u64 > self.max_frame {
            return Err(WireError::TooLarge(len as u64));
        }
        let mut answer = Vec::new();
        (&mut self.stream)
            .take(len as u64)
            .read_to_end(&mut answer)?;
        if answer.len() != len as usize {
            return Err(WireError::Malformed("a frame cut short"));
        }
        let correlation = i32::from_be_bytes([answer[0], answer[1], answer[2], answer[3]]);
        if correlation != self.correlation {
            return Err(WireError::Malformed("an answer to another request"));
        }
        let skip = if flexible {
            let mut r = Reader::new(&answer[4..]);
            r.skip_tags()?;
            answer.len() - r.buf.len()
        } else {
            4
        };
        answer.drain(..skip);
        Ok(answer)
    }
}

/// A broker of the cluster, as Metadata lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub error_code: i16,
    pub index: i32,
    pub leader: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub error_code: i16,
    pub name: String,
    pub internal: bool,
    pub partitions: Vec<Partition>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub brokers: Vec<Broker>,
    pub topics: Vec<Topic>,
}

/// Metadata v5 for every topic.
pub fn metadata_request() -> Writer {
    let mut w = Writer::default();
    w.len(None).bool(false);
    w
}

pub fn metadata_answer(body: &[u8]) -> Result<Metadata, WireError> {
    let mut r = Reader::new(body);
    r.i32()?; // throttle
    let brokers = r.list(12, |r| {
        let node_id = r.i32()?;
        let host = r.string()?;
        let port = r.i32()?;
        r.nullable_string()?; // rack
        Ok(Broker {
            node_id,
            host,
            port,
        })
    })?;
    r.nullable_string()?; // cluster id
    r.i32()?; // controller
    let topics = r.list(5, |r| {
        let error_code = r.i16()?;
        let name = r.string()?;
        let internal = r.bool()?;
        let partitions = r.list(22, |r| {
            let error_code = r.i16()?;
            let index = r.i32()?;
            let leader = r.i32()?;
            r.i32s()?; // replicas
            r.i32s()?; // in sync
            r.i32s()?; // offline
            Ok(Partition {
                error_code,
                index,
                leader,
            })
        })?;
        Ok(Topic {
            error_code,
            name,
            internal,
            partitions,
        })
    })?;
    Ok(Metadata { brokers, topics })
}

/// A group a broker coordinates, and its protocol type (`consumer` for consumer groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub group_id: String,
    pub protocol_type: String,
}

/// ListGroups v1: every group the broker coordinates.
pub fn list_groups_answer(body: &[u8]) -> Result<(i16, Vec<Listed>), WireError> {
    let mut r = Reader::new(body);
    r.i32()?; // throttle
    let error = r.i16()?;
    let groups = r.list(4, |r| {
        Ok(Listed {
            group_id: r.string()?,
            protocol_type: r.string()?,
        })
    })?;
    Ok((error, groups))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// Partitions assigned to the member, by topic (empty when the broker gives none).
    pub assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    pub error_code: i16,
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub members: Vec<Member>,
}

/// DescribeGroups v1 for these groups.
pub fn describe_groups_request(groups: &[String]) -> Writer {
    let mut w = Writer::default();
    w.len(Some(groups.len()));
    for g in groups {
        w.string(g);
    }
    w
}

pub fn describe_groups_answer(body: &[u8]) -> Result<Vec<Described>, WireError> {
    let mut r = Reader::new(body);
    r.i32()?; // throttle
    r.list(14, |r| {
        let error_code = r.i16()?;
        let group_id = r.string()?;
        let state = r.string()?;
        let protocol_type = r.string()?;
        r.string()?; // protocol (the assignor)
        let members = r.list(14, |r| {
            let member_id = r.string()?;
            let client_id = r.string()?;
            let client_host = r.string()?;
            r.bytes()?; // subscription metadata
            let assignment = r.bytes()?;
            Ok(Member {
                member_id,
                client_id,
                client_host,
                // A member whose assignment is not the consumer protocol's: none known.
                assignment: consumer_assignment(assignment).unwrap_or_default(),
            })
        })?;
        Ok(Described {
            error_code,
            group_id,
            state,
            protocol_type,
            members,
        })
    })
}

/// The consumer protocol's assignment: version, then partitions by topic (user data after
/// them is not read).
pub fn consumer_assignment(bytes: &[u8]) -> Result<Vec<(String, Vec<i32>)>, WireError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader::new(bytes);
    r.i16()?; // version
    r.list(6, |r| Ok((r.string()?, r.i32s()?)))
}

/// A group's committed offset of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub topic: String,
    pub partition: i32,
    /// -1: nothing committed.
    pub offset: i64,
    pub error_code: i16,
}

/// OffsetFetch v2: the offsets the group committed for these topics' partitions, or (`None`)
/// every offset it committed.
pub fn offset_fetch_request(group: &str, topics: Option<&[(&str, Vec<i32>)]>) -> Writer {
    let mut w = Writer::default();
    w.string(group);
    match topics {
        None => {
            w.len(None);
        }
        Some(topics) => {
            w.len(Some(topics.len()));
            for (name, partitions) in topics {
                w.string(name).len(Some(partitions.len()));
                for p in partitions {
                    w.i32(*p);
                }
            }
        }
    }
    w
}

pub fn offset_fetch_answer(body: &[u8]) -> Result<(Vec<Committed>, i16), WireError> {
    let mut r = Reader::new(body);
    let topics = r.list(6, |r| {
        let topic = r.string()?;
        r.list(16, |r| {
            let partition = r.i32()?;
            let offset = r.i64()?;
            r.nullable_string()?; // metadata
            let error_code = r.i16()?;
            Ok(Committed {
                topic: topic.clone(),
                partition,
                offset,
                error_code,
            })
        })
    })?;
    let error = r.i16()?;
    Ok((topics.into_iter().flatten().collect(), error))
}

/// ListOffsets v1 for these partitions, each at `timestamp` ([`LATEST`] or [`EARLIEST`]).
pub fn list_offsets_request(topics: &[(&str, Vec<i32>)], timestamp: i64) -> Writer {
    let mut w = Writer::default();
    w.i32(-1).len(Some(topics.len()));
    for (name, partitions) in topics {
        w.string(name).len(Some(partitions.len()));
        for p in partitions {
            w.i32(*p).i64(timestamp);
        }
    }
    w
}

/// One partition's offset, or its error code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offset {
    pub topic: String,
    pub partition: i32,
    pub error_code: i16,
    pub offset: i64,
}

pub fn list_offsets_answer(body: &[u8]) -> Result<Vec<Offset>, WireError> {
    let mut r = Reader::new(body);
    let topics = r.list(6, |r| {
        let topic = r.string()?;
        r.list(22, |r| {
            let partition = r.i32()?;
            let error_code = r.i16()?;
            r.i64()?; // timestamp
            let offset = r.i64()?;
            Ok(Offset {
                topic: topic.clone(),
                partition,
                error_code,
                offset,
            })
        })
    })?;
    Ok(topics.into_iter().flatten().collect())
}

/// ApiVersions v0's answer: the versions the broker answers, by api key.
pub fn api_versions_answer(
    body: &[u8],
) -> Result<std::collections::HashMap<i16, (i16, i16)>, WireError> {
    let mut r = Reader::new(body);
    let error = r.i16()?;
    if error != 0 {
        return Err(WireError::Malformed("api versions refused"));
    }
    let keys = r.list(6, |r| Ok((r.i16()?, (r.i16()?, r.i16()?))))?;
    Ok(keys.into_iter().collect())
}

/// OffsetFetch v8: every offset each of `groups` committed (topics null), in one request.
pub fn offset_fetch_groups_request(groups: &[String]) -> Writer {
    let mut w = Writer::default();
    w.compact_len(Some(groups.len()));
    for g in groups {
        w.compact_string(g).compact_len(None).no_tags();
    }
    w.bool(false).no_tags();
    w
}

/// One group's part of an OffsetFetch v8 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOffsets {
    pub group: String,
    pub committed: Vec<Committed>,
    pub error_code: i16,
}

pub fn offset_fetch_groups_answer(body: &[u8]) -> Result<Vec<GroupOffsets>, WireError> {
    let mut r = Reader::new(body);
    r.i32()?; // throttle time
    let groups = r.compact_list(5, |r| {
        let group = r.compact_string()?;
        let topics = r.compact_list(3, |r| {
            let topic = r.compact_string()?;
            let partitions = r.compact_list(20, |r| {
                let partition = r.i32()?;
                let offset = r.i64()?;
                r.i32()?; // leader epoch
                r.compact_nullable_string()?; // metadata
                let error_code = r.i16()?;
                r.skip_tags()?;
                Ok(Committed {
                    topic: String::new(),
                    partition,
                    offset,
                    error_code,
                })
            })?;
            r.skip_tags()?;
            Ok((topic, partitions))
        })?;
        let error_code = r.i16()?;
        r.skip_tags()?;
        let committed = topics
            .into_iter()
            .flat_map(|(topic, partitions)| {
                partitions.into_iter().map(move |c| Committed {
                    topic: topic.clone(),
                    ..c
                })
            })
            .collect();
        Ok(GroupOffsets {
            group,
            committed,
            error_code,
        })
    })?;
    r.skip_tags()?;
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_longer_than_the_answer_are_refused_before_allocating() {
        // A Metadata answer claiming two billion brokers in 8 bytes.
        let body = [0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff];
        assert_eq!(
            metadata_answer(&body),
            Err(WireError::Malformed("an array longer than its answer"))
        );
        assert!(list_groups_answer(&[0, 0]).is_err());
        assert!(consumer_assignment(&[0, 0, 0x7f, 0, 0, 0]).is_err());
        // A string longer than what is left.
        assert!(Reader::new(&[0, 9, b'a']).string().is_err());
    }

    /// Every answer this codec reads, with the count of its first array at its largest (a
    /// real decode each): a clear error, and nothing allocated for the count (an allocation
    /// of `count * size_of::<T>()` would abort the test).
    #[test]
    fn a_count_of_i32_max_in_any_answer_is_refused() {
        const MAX: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];
        let after = |head: &[u8]| [head, &MAX[..], &[0u8; 16][..]].concat();
        let refused = Some(WireError::Malformed("an array longer than its answer"));
        assert_eq!(metadata_answer(&after(&[0; 4])).err(), refused);
        assert_eq!(list_groups_answer(&after(&[0; 6])).err(), refused);
        assert_eq!(describe_groups_answer(&after(&[0; 4])).err(), refused);
        assert_eq!(offset_fetch_answer(&after(&[])).err(), refused);
        assert_eq!(list_offsets_answer(&after(&[])).err(), refused);
        assert_eq!(api_versions_answer(&after(&[0; 2])).err(), refused);
        assert_eq!(consumer_assignment(&after(&[0; 2])).err(), refused);
        // The flexible encoding: a compact count of 2^32 - 2 (a 5-byte varint).
        let body = [&[0u8; 4][..], &[0xff, 0xff, 0xff, 0xff, 0x0f], &[0; 16]].concat();
        assert_eq!(offset_fetch_groups_answer(&body).err(), refused);
        // A nested count: one topic of Metadata with i32::MAX partitions.
        let mut w = Writer::default();
        w.i32(0).len(Some(0)).i16(-1).i32(1).len(Some(1));
        w.i16(0).string("t").bool(false).i32(i32::MAX);
        assert_eq!(metadata_answer(&w.0).err(), refused);
    }

    #[test]
    fn every_cut_of_a_good_answer_is_an_error_not_a_panic() {
        let mut w = Writer::default();
        w.i32(0).len(Some(1)).i32(1).string("h").i32(9092).i16(-1);
        w.i16(-1)
            .i32(1)
            .len(Some(1))
            .i16(0)
            .string("orders")
            .bool(false);
        w.len(Some(1)).i16(0).i32(0).i32(1);
        w.len(Some(1)).i32(1).len(Some(1)).i32(1).len(Some(0));
        let full = w.0.clone();
        let m = metadata_answer(&full).unwrap();
        assert_eq!(m.brokers[0].port, 9092);
        assert_eq!(m.topics[0].name, "orders");
        assert_eq!(m.topics[0].partitions[0].leader, 1);
        for cut in 0..full.len() {
            assert!(metadata_answer(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn assignments_read_topics_and_partitions() {
        let mut w = Writer::default();
        w.i16(1)
            .len(Some(1))
            .string("orders")
            .len(Some(2))
            .i32(0)
            .i32(2);
        w.i32(-1); // user data: null
        assert_eq!(
            consumer_assignment(&w.0).unwrap(),
            vec![("orders".to_string(), vec![0, 2])]
        );
    }

    #[test]
    fn offset_fetch_v8_reads_every_group_and_refuses_every_cut() {
        let request = offset_fetch_groups_request(&["g1".into(), "g2".into()]);
        assert_eq!(
            request.0,
            [3, 3, b'g', b'1', 0, 0, 3, b'g', b'2', 0, 0, 0, 0],
            "two groups, topics null, no tags, require_stable false"
        );
        // As tansu answers it (after the header): g1 committed 5 on t1/0, g2 7 on t1/1.
        let mut w = Writer::default();
        w.i32(0).compact_len(Some(2));
        for (g, p, o) in [("g1", 0, 5), ("g2", 1, 7)] {
            w.compact_string(g).compact_len(Some(1));
            w.compact_string("t1").compact_len(Some(1));
            w.i32(p).i64(o).i32(-1).compact_len(None).i16(0).no_tags();
            w.no_tags().i16(0).no_tags();
        }
        w.no_tags();
        let full = w.0.clone();
        let groups = offset_fetch_groups_answer(&full).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1].group, "g2");
        assert_eq!(
            groups[1].committed,
            vec![Committed {
                topic: "t1".into(),
                partition: 1,
                offset: 7,
                error_code: 0
            }]
        );
        for cut in 0..full.len() {
            assert!(
                offset_fetch_groups_answer(&full[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A varint that never ends, and a count past the answer.
        assert!(Reader::new(&[0xff; 8]).uvarint().is_err());
        assert!(offset_fetch_groups_answer(&[0, 0, 0, 0, 0xff, 0xff, 0x7f]).is_err());
    }
}
