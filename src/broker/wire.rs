//! The broker client's HTTP/1.1 transport: keep-alive connections to one server, each request
//! (head and body) written with one `write`, each answer read through one buffer. A general
//! client costs about as much CPU per request as the broker does to commit the message: it
//! re-parses the URL, writes the head and the body with separate system calls (the server then
//! wakes up twice) and probes a pooled socket with three more calls before each use.
//!
//! Invariants: a pooled connection has no unread bytes (its last answer was read to the end)
//! and was last used less than [`IDLE_LIMIT`] ago; a connection whose answer is not fully read,
//! or that the server asked to close, never returns to the pool. Only a request that may be
//! repeated (GET, HEAD, PUT, DELETE) is sent again, and only when a reused connection turns
//! out closed before any byte of the answer; a timeout is never retried.

use super::client::ClientError;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A pooled connection idle longer than this is closed instead of reused: the server closes
/// idle keep-alive connections after 5 s, and one closing while a request is on its way could
/// not be told apart from a request that failed.
const IDLE_LIMIT: Duration = Duration::from_secs(2);
/// Largest answer head (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Largest answer body read into memory (streams are read incrementally instead).
const MAX_BODY: u64 = 512 * 1024 * 1024;
/// Connections kept idle at most.
const MAX_IDLE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection idle longer than this is checked for a close by the server (a restart)
/// before it is reused; one used more recently is reused without a system call.
const CHECK_AFTER: Duration = Duration::from_millis(50);

/// Where requests go: `host:port` for the socket and the `Host` header, and a path prefix.
#[derive(Clone, Debug)]
struct Target {
    authority: String,
    prefix: String,
}

/// `http://host:port[/prefix]` or `host:port`; HTTPS is not supported.
fn parse_base(addr: &str) -> Result<Target, String> {
    let rest = match addr.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => return Err(format!("unsupported scheme {scheme} in {addr}")),
        None => addr,
    };
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("no host in {addr}"));
    }
    // A port is needed to connect; `[v6]` literals end with `]` when they have none.
    let has_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty() && !host.ends_with('[') && !port.ends_with(']')
    });
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        authority,
        prefix: prefix.to_string(),
    })
}

struct Conn {
    io: BufReader<TcpStream>,
    read_timeout: Option<Duration>,
    idle_since: Instant,
}

impl Conn {
    fn open(authority: &str) -> std::io::Result<Conn> {
        let mut last = None;
        for addr in authority.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    return Ok(Conn {
                        io: BufReader::with_capacity(16 * 1024, s),
                        read_timeout: None,
                        idle_since: Instant::now(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other(format!("{authority} did not resolve"))))
    }

    /// Whether the server closed the connection (or sent something unasked) while it sat in
    /// the pool.
    fn closed_by_server(&self) -> bool {
        let s = self.io.get_ref();
        if s.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let open =
            matches!(s.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        s.set_nonblocking(false).is_err() || !open
    }

    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        if self.read_timeout != Some(timeout) {
            self.io.get_ref().set_read_timeout(Some(timeout))?;
            self.io.get_ref().set_write_timeout(Some(timeout))?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }
}

/// An answer read to the end.
pub(super) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One request: method, path (under the base's prefix), headers and body.
pub(super) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub timeout: Duration,
}

/// How an answer's body is framed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// The parsed head of an answer.
#[derive(Debug)]
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// Keep-alive connections to one server.
pub(super) struct Wire {
    target: Result<Target, String>,
    idle: Mutex<Vec<Conn>>,
}

impl Wire {
    pub fn new(addr: &str) -> Wire {
        Wire {
            target: parse_base(addr),
            idle: Mutex::default(),
        }
    }

    fn target(&self) -> Result<&Target, ClientError> {
        self.target
            .as_ref()
            .map_err(|e| ClientError::Transport(e.clone()))
    }

    /// A pooled connection used recently enough and still open, if any.
    fn pooled(&self) -> Option<Conn> {
        loop {
            let c = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            let idle = c.idle_since.elapsed();
            if idle < CHECK_AFTER || (idle < IDLE_LIMIT && !c.closed_by_server()) {
                return Some(c);
            }
        }
    }

    fn put_back(&self, mut conn: Conn) {
        if !conn.io.buffer().is_empty() {
            // Bytes past the answer: the connection is out of step with its requests.
            return;
        }
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Sends a request and reads its answer. When a pooled connection turns out closed before
    /// any byte of the answer arrives, a request that may be repeated is sent once more on a
    /// new connection; any other fails (the server may have acted on it).
    pub fn call(&self, req: &Request) -> Result<Answer, ClientError> {
        let target = self.target()?;
        let bytes = encode_request(target, req)?;
        if let Some(conn) = self.pooled() {
            let repeatable = matches!(req.method, "GET" | "HEAD" | "PUT" | "DELETE");
            match self.exchange(conn, &bytes, req) {
                Err(Failure::Closed(_)) if repeatable => {}
                Err(Failure::Closed(e) | Failure::Other(e)) => return Err(e),
                Ok(answer) => return Ok(answer),
            }
        }
        let conn = Conn::open(&target.authority).map_err(transport)?;
        self.exchange(conn, &bytes, req)
            .map_err(Failure::into_error)
    }

    fn exchange(&self, mut conn: Conn, bytes: &[u8], req: &Request) -> Result<Answer, Failure> {
        conn.set_timeout(req.timeout)
            .map_err(|e| Failure::Other(transport(e)))?;
        conn.io.get_mut().write_all(bytes).map_err(|e| {
            if closed(&e) {
                Failure::Closed(transport(e))
            } else {
                Failure::Other(transport(e))
            }
        })?;
        let head = read_head(&mut conn.io)?;
        let body = read_body(&mut conn.io, head.framing).map_err(Failure::Other)?;
        if head.keep_alive && head.framing != Framing::Close {
            self.put_back(conn);
        }
        Ok(Answer {
            status: head.status,
            body,
        })
    }

    /// Sends a request whose answer is a stream (Server-Sent Events) on a connection of its
    /// own; returns the status, a reader of the body as it arrives (for 2xx; otherwise the
    /// error body, to be read to the end), and a handle to the connection that can shut it
    /// from another thread (a reader blocked on it then sees the end).
    pub fn open(&self, req: &Request) -> Result<(u16, Body, TcpStream), ClientError> {
        let target = self.target()?;
        let mut conn = Conn::open(&target.authority).map_err(transport)?;
        conn.set_timeout(req.timeout).map_err(transport)?;
        conn.io
            .get_mut()
            .write_all(&encode_request(target, req)?)
            .map_err(transport)?;
        let handle = conn.io.get_ref().try_clone().map_err(transport)?;
        let head = read_head(&mut conn.io).map_err(Failure::into_error)?;
        Ok((head.status, Body::new(conn.io, head.framing), handle))
    }
}

enum Failure {
    /// The connection was found closed (end of stream, reset) before any byte of the answer.
    Closed(ClientError),
    Other(ClientError),
}

impl Failure {
    fn into_error(self) -> ClientError {
        match self {
            Failure::Closed(e) | Failure::Other(e) => e,
        }
    }
}

/// Whether an I/O error means the peer closed the connection (not a timeout).
fn closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

fn transport(e: std::io::Error) -> ClientError {
    ClientError::Transport(e.to_string())
}

fn encode_request(target: &Target, req: &Request) -> Result<Vec<u8>, ClientError> {
    // The request line is the method and path as given: a space or control byte in either
    // would end it early (callers percent-encode names).
    let bad = |text: &str| text.is_empty() || text.bytes().any(|b| b <= b' ' || b == 0x7f);
    if bad(req.method) || bad(req.path) {
        return Err(ClientError::Transport(format!(
            "{:?} {:?} is not a valid request line",
            req.method, req.path
        )));
    }
    let mut out = Vec::with_capacity(160 + req.body.len());
    let _ = write!(
        out,
        "{} {}{} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
        req.method,
        target.prefix,
        req.path,
        target.authority,
        req.body.len()
    );
    for (name, value) in req.headers {
        // Header values come from the caller: CR and LF would end the header early.
        let value: String = value
            .chars()
            .filter(|c| !matches!(c, '\r' | '\n'))
            .collect();
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(req.body);
    Ok(out)
}

/// Reads and parses an answer's head, past any interim (1xx) answers. The connection found
/// closed before any byte is [`Failure::Closed`].
fn read_head(io: &mut impl BufRead) -> Result<Head, Failure> {
    let mut first = true;
    loop {
        let head = read_one_head(io, first)?;
        first = false;
        if !(100..200).contains(&head.status) || head.status == 101 {
            return Ok(head);
        }
    }
}

fn read_one_head(io: &mut impl BufRead, first: bool) -> Result<Head, Failure> {
    let mut raw = Vec::with_capacity(512);
    loop {
        let n = {
            let nothing_yet = first && raw.is_empty();
            let buf = match io.fill_buf() {
                Ok(b) => b,
                Err(e) if nothing_yet && closed(&e) => return Err(Failure::Closed(transport(e))),
                Err(e) => return Err(Failure::Other(transport(e))),
            };
            if buf.is_empty() {
                let e = ClientError::Transport("connection closed before the answer".into());
                return Err(if nothing_yet {
                    Failure::Closed(e)
                } else {
                    Failure::Other(e)
                });
            }
            raw.extend_from_slice(buf);
            buf.len()
        };
        match parse_head(&raw) {
            Ok(Some((head, len))) => {
                // Give back what belongs to the body: consume only the head's bytes.
                io.consume(len.saturating_sub(raw.len() - n));
                return Ok(head);
            }
            Ok(None) if raw.len() > MAX_HEAD => {
                return Err(Failure::Other(ClientError::Decode(
                    "answer head too large".into(),
                )))
            }
            Ok(None) => io.consume(n),
            Err(e) => return Err(Failure::Other(ClientError::Decode(e))),
        }
    }
}

/// Parses a complete head at the start of `raw`: the head and its length, or None if more
/// bytes are needed.
fn parse_head(raw: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed answer: {e}")),
    };
    let status = resp.code.ok_or("answer without a status")?;
    let mut keep_alive = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut encoding: Option<bool> = None;
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad content-length {value:?}"));
            }
            let n = value
                .parse::<u64>()
                .map_err(|_| format!("bad content-length {value:?}"))?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length headers".into());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only if it is the last coding; any other body runs until close.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            encoding = Some(last.eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            let has = |token: &str| {
                value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case(token))
            };
            if has("close") {
                keep_alive = false;
            } else if has("keep-alive") {
                keep_alive = true;
            }
        }
    }
    let mut framing = match (encoding, length) {
        (Some(true), None) => Framing::Chunked,
        // Both: the transfer coding wins, and the connection is not trusted afterwards.
        (Some(true), Some(_)) => {
            keep_alive = false;
            Framing::Chunked
        }
        (Some(false), _) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    };
    // Answers that never have a body.
    if status == 204 || status == 304 || (100..200).contains(&status) {
        framing = Framing::Length(0);
    }
    Ok(Some((
        Head {
            status,
            framing,
            keep_alive,
        },
        len,
    )))
}

fn read_body(io: &mut BufReader<TcpStream>, framing: Framing) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    Body::new(io, framing)
        .take(MAX_BODY + 1)
        .read_to_end(&mut out)
        .map_err(transport)?;
    if out.len() as u64 > MAX_BODY {
        return Err(ClientError::Decode("answer body too large".into()));
    }
    Ok(out)
}

/// An answer's body, decoded from its framing (length, chunked, or until close), read from a
/// connection owned (a stream) or borrowed (an answer read to the end, after which the
/// connection may be reused).
pub(super) struct Body<R = BufReader<TcpStream>> {
    io: R,
    framing: Framing,
    /// Bytes left in the current chunk (chunked) or in the body (length).
    left: u64,
    done: bool,
}

fn invalid(kind: std::io::ErrorKind, what: &str) -> std::io::Error {
    std::io::Error::new(kind, what.to_string())
}

impl<R: BufRead> Body<R> {
    fn new(io: R, framing: Framing) -> Body<R> {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Body {
            io,
            framing,
            left,
            done: framing == Framing::Length(0),
        }
    }

    /// Reads the size line of the next chunk; at the last chunk, its trailers too.
    fn next_chunk(&mut self) -> std::io::Result<()> {
        let mut line = String::new();
        read_line(&mut self.io, &mut line)?;
        let size = line.split(';').next().unwrap_or("").trim();
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(std::io::ErrorKind::InvalidData, "bad chunk size"));
        }
        self.left = u64::from_str_radix(size, 16)
            .map_err(|_| invalid(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
        if self.left == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                read_line(&mut self.io, &mut line)?;
                if line.trim_end().is_empty() {
                    break;
                }
            }
            self.done = true;
        }
        Ok(())
    }
}

/// Reads one line (bounded), failing at the end of the stream.
fn read_line(io: &mut impl BufRead, line: &mut String) -> std::io::Result<()> {
    let n = io.take(4096).read_line(line)?;
    if n == 0 || !line.ends_with('\n') {
        return Err(invalid(
            std::io::ErrorKind::UnexpectedEof,
            "answer ended inside a chunk header",
        ));
    }
    Ok(())
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.framing == Framing::Close {
            return self.io.read(buf);
        }
        if self.framing == Framing::Chunked && self.left == 0 {
            self.next_chunk()?;
            if self.done {
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.io.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid(
                std::io::ErrorKind::UnexpectedEof,
                "answer ended before its body did",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            match self.framing {
                Framing::Chunked => {
                    let mut crlf = [0u8; 2];
                    self.io.read_exact(&mut crlf)?;
                    if &crlf != b"\r\n" {
                        return Err(invalid(
                            std::io::ErrorKind::InvalidData,
                            "chunk not followed by CRLF",
                        ));
                    }
                }
                _ => self.done = true,
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::net::TcpListener;

    fn body_of(raw: &[u8], framing: Framing) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        // A tiny buffer: chunk headers and data arrive split across reads.
        let io = BufReader::with_capacity(3, Cursor::new(raw.to_vec()));
        Body::new(io, framing).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn bases_name_an_authority_with_a_port_and_a_prefix() {
        let t = parse_base("127.0.0.1:8080").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.prefix.as_str()),
            ("127.0.0.1:8080", "")
        );
        let t = parse_base("http://localhost/api/").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.prefix.as_str()),
            ("localhost:80", "/api")
        );
        let t = parse_base("http://[::1]:9000").unwrap();
        assert_eq!(t.authority, "[::1]:9000");
        assert_eq!(parse_base("http://[::1]").unwrap().authority, "[::1]:80");
        assert!(parse_base("https://example.test").is_err());
        assert!(parse_base("http:///path").is_err());
    }

    #[test]
    fn requests_are_one_buffer_with_a_length_and_no_injected_lines() {
        let target = parse_base("http://h:1/p").unwrap();
        let req = Request {
            method: "POST",
            path: "/x?y=1",
            headers: &[("Switchyard-Service", "a\r\nEvil: 1")],
            body: b"{}",
            timeout: Duration::from_secs(1),
        };
        let bytes = encode_request(&target, &req).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "POST /p/x?y=1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\nSwitchyard-Service: aEvil: 1\r\n\r\n{}"
        );
    }

    #[test]
    fn heads_are_parsed_across_reads_and_leave_the_body() {
        let raw =
            b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\nhello";
        let mut io = BufReader::with_capacity(4, Cursor::new(raw.to_vec()));
        let head = read_head(&mut io).ok().unwrap();
        assert_eq!(head.status, 201);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"hello");

        let (head, _) = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert!(!head.keep_alive);
        let (head, _) = parse_head(b"HTTP/1.0 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Length(0));
        assert!(!head.keep_alive);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")
            .unwrap()
            .is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
        // A closed connection before any byte may be retried; a cut head may not.
        let mut empty = BufReader::new(Cursor::new(Vec::new()));
        assert!(matches!(read_head(&mut empty), Err(Failure::Closed(_))));
        let mut cut = BufReader::new(Cursor::new(b"HTTP/1.1 200".to_vec()));
        assert!(matches!(read_head(&mut cut), Err(Failure::Other(_))));
    }

    #[test]
    fn bodies_are_decoded_by_length_chunks_or_close() {
        assert_eq!(
            body_of(b"abcdefXYZ", Framing::Length(6)).unwrap(),
            b"abcdef"
        );
        assert_eq!(body_of(b"", Framing::Length(0)).unwrap(), b"");
        assert!(body_of(b"abc", Framing::Length(6)).is_err());
        let chunked = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        assert_eq!(body_of(chunked, Framing::Chunked).unwrap(), b"hello, world");
        assert!(body_of(b"5\r\nhel", Framing::Chunked).is_err());
        assert!(body_of(b"zz\r\nhello\r\n0\r\n\r\n", Framing::Chunked).is_err());
        assert!(body_of(b"5\r\nhelloXX0\r\n\r\n", Framing::Chunked).is_err());
        assert_eq!(
            body_of(b"until close", Framing::Close).unwrap(),
            b"until close"
        );
    }

    /// A server that answers each connection's first request, then closes it, for `n`
    /// connections; returns how many requests it answered.
    fn one_answer_per_connection(n: usize) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let mut served = 0;
            for stream in listener.incoming().take(n) {
                let mut io = BufReader::new(stream.unwrap());
                let mut line = String::new();
                // Head up to the empty line; the requests here have no body.
                while io.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                io.get_mut().write_all(answer).unwrap();
                served += 1;
            }
            served
        });
        (addr, server)
    }

    fn request(method: &str) -> Request<'_> {
        Request {
            method,
            path: "/",
            headers: &[],
            body: b"",
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_repeatable_request_is_sent_again_when_its_pooled_connection_was_closed() {
        let (addr, server) = one_answer_per_connection(2);
        let wire = Wire::new(&addr);
        for _ in 0..2 {
            let answer = wire
                .call(&request("GET"))
                .map_err(|e| e.to_string())
                .unwrap();
            assert_eq!((answer.status, answer.body.as_slice()), (200, &b"{}"[..]));
            // Reused at once, without a check: the closed connection shows on the request.
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(server.join().unwrap(), 2);
    }

    #[test]
    fn a_post_on_a_closed_connection_fails_and_a_checked_one_is_not_reused() {
        let (addr, server) = one_answer_per_connection(3);
        let wire = Wire::new(&addr);
        wire.call(&request("POST"))
            .map_err(|e| e.to_string())
            .unwrap();
        // Reused at once: the server may have acted on a POST it did not answer.
        let err = wire.call(&request("POST")).err().expect("not sent again");
        assert!(matches!(err, ClientError::Transport(_)), "{err}");
        wire.call(&request("POST"))
            .map_err(|e| e.to_string())
            .unwrap();
        // Idle past CHECK_AFTER: found closed before use, so a new connection takes it.
        std::thread::sleep(CHECK_AFTER + Duration::from_millis(30));
        wire.call(&request("POST"))
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(server.join().unwrap(), 3);
    }

    #[test]
    fn interim_answers_are_skipped_and_bad_request_lines_refused() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut io = BufReader::new(Cursor::new(raw.to_vec()));
        assert_eq!(read_head(&mut io).ok().unwrap().status, 200);
        let target = parse_base("h:1").unwrap();
        for path in ["/a b", "/a\r\nHost: x", ""] {
            let req = Request {
                path,
                ..request("GET")
            };
            assert!(encode_request(&target, &req).is_err(), "{path:?}");
        }
        let conflicting = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(parse_head(conflicting).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n").is_err());
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (head, _) = parse_head(both).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert!(!head.keep_alive);
        let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(parse_head(gzip).unwrap().unwrap().0.framing, Framing::Close);
        assert!(body_of(b"+5\r\nhello\r\n0\r\n\r\n", Framing::Chunked).is_err());
    }
}
