//! HTTP clients: ureq for ordinary requests, and a raw HTTP/1.1 client over a TcpStream for
//! chunked uploads whose pace the test controls (a request held open mid-body).

use serde_json::Value;
use std::io::{Read, Write};
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

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(IO_TIMEOUT)
        .timeout_write(IO_TIMEOUT)
        .build()
}

fn into_reply(result: Result<ureq::Response, ureq::Error>) -> Result<Reply, String> {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|name| {
            let value = response.header(&name).unwrap_or("").to_string();
            (name.to_ascii_lowercase(), value)
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the body: {e}"))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// POST with a Content-Length body; transport errors are returned, not panicked.
pub fn try_post(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let mut req = agent.post(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    into_reply(req.send_bytes(body))
}

pub fn post(agent: &ureq::Agent, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    try_post(agent, url, headers, body).unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

pub fn get(agent: &ureq::Agent, url: &str) -> Reply {
    into_reply(agent.get(url).call()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// POST with `Transfer-Encoding: chunked`, in chunks of at most 4 KiB.
pub fn post_chunked(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("URL with a path"));
    let addr: SocketAddr = host.parse().expect("host:port");
    let mut req = RawRequest::start(addr, path, headers);
    for chunk in body.chunks(4096) {
        if req.try_chunk(chunk).is_err() {
            // The server answered before the end of the body (e.g. 413) and closed.
            return req.read_reply();
        }
    }
    req.finish()
}

/// A chunked POST written piece by piece: the test decides when the body ends.
pub struct RawRequest {
    stream: TcpStream,
}

impl RawRequest {
    /// Connects and sends the request head (`Transfer-Encoding: chunked`, `Connection: close`).
    pub fn start(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawRequest {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut req = RawRequest { stream };
        req.stream.write_all(head.as_bytes()).expect("write head");
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

    /// Reads the response without finishing the body (the server answered early).
    pub fn read_reply(mut self) -> Reply {
        let mut raw = Vec::new();
        if let Err(e) = self.stream.read_to_end(&mut raw) {
            assert!(!raw.is_empty(), "reading the response: {e}");
        }
        parse_response(&raw)
    }
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
