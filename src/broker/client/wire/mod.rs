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

mod http1;

use super::ClientError;
use http1::{encode_request, read_body, read_head, Body, Framing};
use std::io::{BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A pooled connection idle longer than this is closed instead of reused: the server closes
/// idle keep-alive connections after 5 s, and one closing while a request is on its way could
/// not be told apart from a request that failed.
const IDLE_LIMIT: Duration = Duration::from_secs(2);
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

#[cfg(test)]
mod tests;
