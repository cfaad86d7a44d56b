//! The transport against scripted servers and recorded answers.

use super::http1::parse_head;
use super::*;
use std::io::{BufRead, Cursor, Read};
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
    let raw = b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\nhello";
    let mut io = BufReader::with_capacity(4, Cursor::new(raw.to_vec()));
    let head = read_head(&mut io).ok().unwrap();
    assert_eq!(head.status, 201);
    assert_eq!(head.framing, Framing::Length(5));
    assert!(head.keep_alive);
    let mut rest = Vec::new();
    io.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"hello");

    let (head, _) =
        parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
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
