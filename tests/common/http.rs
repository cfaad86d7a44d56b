//! The one HTTP client of the tests, [`Http`]: every request to the server (API, broker,
//! OTLP/HTTP) and to chromedriver goes through it and is answered as a [`Reply`] whatever its
//! status. Beside it, [`Events`] reads a Server-Sent Events response frame by frame, and
//! [`RawRequest`] writes a request over a plain TcpStream for the cases whose pace the test
//! controls (a chunked body held open mid-way, a request the server is known to have read).

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Read and write timeout of every test request: a hung server fails the test, it never
/// hangs the suite.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A response, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Header names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The status and the body as JSON, or as a JSON string when it is not JSON.
    pub fn answer(&self) -> (u16, Value) {
        let body =
            serde_json::from_slice(&self.body).unwrap_or_else(|_| Value::String(self.text()));
        (self.status, body)
    }

    /// The `Retry-After` header as delay seconds; panics when absent or not a number.
    pub fn retry_after_secs(&self) -> u64 {
        let value = self
            .header("retry-after")
            .unwrap_or_else(|| panic!("no Retry-After header in a {} answer", self.status));
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After is not delay-seconds: {value:?}"))
    }
}

/// Requests to one base URL (`http://host:port`) over a connection pool that clones share.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    /// A client with its own pool and the [`IO_TIMEOUT`] bound on every read and write.
    pub fn new(base: impl Into<String>) -> Http {
        Http::with_timeout(base, IO_TIMEOUT)
    }

    /// A client whose every request (connect, write, read) is bounded by `timeout`.
    pub fn with_timeout(base: impl Into<String>, timeout: Duration) -> Http {
        Http {
            agent: agent_builder(timeout).build(),
            base: base.into(),
        }
    }

    /// A client with its own pool that answers a redirect as it is, without following it.
    pub fn without_redirects(base: impl Into<String>) -> Http {
        Http {
            agent: agent_builder(IO_TIMEOUT).redirects(0).build(),
            base: base.into(),
        }
    }

    /// A client for another base URL on the same pool.
    pub fn at(&self, base: impl Into<String>) -> Http {
        Http {
            agent: self.agent.clone(),
            base: base.into(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// Any request; a transport error (refused, reset, timed out) is returned, not panicked.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, String> {
        let mut req = self.agent.request(method, &self.url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let bodiless = matches!(method, "GET" | "HEAD" | "DELETE") && body.is_empty();
        let result = if bodiless {
            req.call()
        } else {
            req.send_bytes(body)
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let head = head_of(&response);
        let mut body = Vec::new();
        response
            .into_reader()
            .read_to_end(&mut body)
            .map_err(|e| format!("reading the body: {e}"))?;
        Ok(Reply { body, ..head })
    }

    /// Any request; a transport error fails the test.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.try_send(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {}: {e}", self.url(path)))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], b"")
    }

    /// `GET` that must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
        reply.json()
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.send("POST", path, headers, body)
    }

    pub fn try_post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, String> {
        self.try_send("POST", path, headers, body)
    }

    pub fn put(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.send("PUT", path, headers, body)
    }

    /// A request with a JSON body (`Content-Type: application/json`).
    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> Reply {
        let headers = [("Content-Type", "application/json")];
        self.send(method, path, &headers, body.to_string().as_bytes())
    }

    /// `POST` with `Transfer-Encoding: chunked`, in chunks of at most 4 KiB.
    pub fn post_chunked(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut req = RawRequest::start(self.addr(), path, headers);
        for chunk in body.chunks(4096) {
            if req.try_chunk(chunk).is_err() {
                // The server answered before the end of the body (e.g. 413) and closed.
                return req.read_reply();
            }
        }
        req.finish()
    }

    /// Opens a Server-Sent Events stream with `GET`; it must answer 200 `text/event-stream`.
    pub fn events(&self, path: &str, headers: &[(&str, &str)]) -> Events {
        let mut req = self.agent.get(&self.url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let response = req
            .call()
            .unwrap_or_else(|e| panic!("GET {}: {e}", self.url(path)));
        assert_eq!(response.content_type(), "text/event-stream", "GET {path}");
        Events {
            lines: BufReader::new(response.into_reader()),
        }
    }

    /// The `host:port` of the base URL.
    pub fn addr(&self) -> SocketAddr {
        let rest = self.base.strip_prefix("http://").expect("http base URL");
        rest.trim_end_matches('/')
            .parse()
            .expect("base URL is host:port")
    }
}

fn agent_builder(timeout: Duration) -> ureq::AgentBuilder {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(timeout)
        .timeout_write(timeout)
}

fn head_of(response: &ureq::Response) -> Reply {
    let headers = response
        .headers_names()
        .into_iter()
        .map(|name| {
            let value = response.header(&name).unwrap_or("").to_string();
            (name.to_ascii_lowercase(), value)
        })
        .collect();
    Reply {
        status: response.status(),
        headers,
        body: Vec::new(),
    }
}

/// An open Server-Sent Events response, read frame by frame.
pub struct Events {
    lines: BufReader<Box<dyn Read + Send + Sync>>,
}

impl Events {
    /// The next frame (its lines up to the blank line) that is not only a comment.
    pub fn next_frame(&mut self) -> String {
        loop {
            let mut frame = String::new();
            loop {
                let mut line = String::new();
                assert!(self.lines.read_line(&mut line).unwrap() > 0, "stream ended");
                if line == "\n" {
                    break;
                }
                frame.push_str(&line);
            }
            if !frame.starts_with(':') {
                return frame;
            }
        }
    }

    /// The next frame with data: (id, event, data as JSON).
    pub fn next(&mut self) -> (String, String, Value) {
        loop {
            let frame = self.next_frame();
            let (mut id, mut kind, mut data) = (String::new(), String::new(), None);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_string();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).unwrap());
                }
            }
            if let Some(data) = data {
                return (id, kind, data);
            }
        }
    }

    /// Everything until the server ends the stream (or the read times out).
    pub fn rest(&mut self) -> String {
        let mut rest = String::new();
        let _ = self.lines.read_to_string(&mut rest);
        rest
    }
}

/// A request written over a plain TcpStream (`Connection: close`): the test decides when a
/// chunked body ends, or knows when the server has read the whole request.
pub struct RawRequest {
    stream: TcpStream,
    server: SocketAddr,
}

impl RawRequest {
    fn connect(addr: SocketAddr, head: String) -> RawRequest {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut req = RawRequest {
            stream,
            server: addr,
        };
        req.stream.write_all(head.as_bytes()).expect("write head");
        req
    }

    fn head(method: &str, path: &str, addr: SocketAddr, headers: &[(&str, &str)]) -> String {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head
    }

    /// Connects and sends the head of a chunked `POST` (`Transfer-Encoding: chunked`).
    pub fn start(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawRequest {
        let mut head = RawRequest::head("POST", path, addr, headers);
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        RawRequest::connect(addr, head)
    }

    /// Connects and sends a whole request with a `Content-Length` body; the answer is read
    /// later with [`RawRequest::read_reply`].
    pub fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RawRequest {
        let mut head = RawRequest::head(method, path, addr, headers);
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut req = RawRequest::connect(addr, head);
        req.stream.write_all(body).expect("write body");
        req.stream.flush().expect("flush");
        req
    }

    pub fn chunk(&mut self, data: &[u8]) {
        self.try_chunk(data).expect("write chunk");
    }

    pub fn try_chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
        frame.extend_from_slice(data);
        frame.extend_from_slice(b"\r\n");
        self.stream.write_all(&frame)?;
        self.stream.flush()
    }

    /// Sends the last chunk and reads the whole response.
    pub fn finish(mut self) -> Reply {
        // A write error means the server answered early: its response is still readable.
        let _ = self.stream.write_all(b"0\r\n\r\n");
        self.read_reply()
    }

    /// Whether the server already answered (or closed) before the body is finished.
    pub fn answered_early(&self) -> bool {
        self.stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let answered = match self.stream.peek(&mut byte) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        self.stream.set_nonblocking(false).unwrap();
        answered
    }

    /// Whether the server process has read every byte sent so far and not answered yet: the
    /// kernel's TCP table (Linux `/proc/net/tcp`) shows nothing queued towards the server, on
    /// either end of this connection, and no answer has arrived.
    pub fn read_by_server(&self) -> bool {
        let local = self.stream.local_addr().expect("local address");
        let queued = |from: SocketAddr, to: SocketAddr| tcp_queues(from, to);
        match (queued(local, self.server), queued(self.server, local)) {
            (Some((sent, _)), Some((_, received))) => {
                sent == 0 && received == 0 && !self.answered_early()
            }
            _ => false,
        }
    }

    /// Reads whatever the server sends until it closes the connection (or the read times out).
    pub fn read_to_end(&mut self, out: &mut Vec<u8>) -> std::io::Result<usize> {
        self.stream.read_to_end(out)
    }

    /// Reads the response (to the end: the request asked the server to close).
    pub fn read_reply(mut self) -> Reply {
        let mut raw = Vec::new();
        if let Err(e) = self.stream.read_to_end(&mut raw) {
            assert!(!raw.is_empty(), "reading the response: {e}");
        }
        parse_response(&raw)
    }
}

/// The (send, receive) queue sizes of the IPv4 TCP socket `local` -> `remote`, from
/// `/proc/net/tcp` (addresses in hex, the IP in host byte order).
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => panic!("the tests speak IPv4: {a}"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

fn parse_response(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("incomplete response: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        assert!(
            body.len() >= len,
            "response body shorter than Content-Length"
        );
        body.truncate(len);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}
