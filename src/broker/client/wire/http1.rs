//! HTTP/1.1 framing for the client's transport: a request encoded as one buffer, an answer's
//! head parsed past interim answers, and its body decoded by length, chunks or close.

use super::{closed, transport, Failure, Request, Target};
use crate::broker::client::ClientError;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Largest answer head (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Largest answer body read into memory (streams are read incrementally instead).
const MAX_BODY: u64 = 512 * 1024 * 1024;

/// How an answer's body is framed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// The parsed head of an answer.
#[derive(Debug)]
pub(super) struct Head {
    pub status: u16,
    pub framing: Framing,
    pub keep_alive: bool,
}

pub(super) fn encode_request(target: &Target, req: &Request) -> Result<Vec<u8>, ClientError> {
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
pub(super) fn read_head(io: &mut impl BufRead) -> Result<Head, Failure> {
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
pub(super) fn parse_head(raw: &[u8]) -> Result<Option<(Head, usize)>, String> {
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

pub(super) fn read_body(
    io: &mut BufReader<TcpStream>,
    framing: Framing,
) -> Result<Vec<u8>, ClientError> {
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
pub struct Body<R = BufReader<TcpStream>> {
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
    pub(super) fn new(io: R, framing: Framing) -> Body<R> {
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
