//! Streaming consume: a subscription's deliveries over Server-Sent Events, read as an iterator.

use super::wire::Request;
use super::{encode, status_error, Client, ClientError, ANSWER_TIMEOUT};
use crate::broker::proto::types::Delivery;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

impl Client {
    /// A streaming pull (Server-Sent Events): deliveries pushed as they are published, up to
    /// `max` leased per step. Settle them with [`Client::ack`]/[`Client::nack`] as usual. The
    /// iterator ends when the server ends the stream (at shutdown; reconnect to go on) or when
    /// its [`Closer`] closes it; dropping it closes the connection.
    pub fn consume(&self, sub: &str, max: usize) -> Result<Deliveries, ClientError> {
        let path = format!("/broker/subscriptions/{}/events?max={max}", encode(sub));
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (status, mut body, conn) = self.wire.open(&Request {
            method: "GET",
            path: &path,
            headers: &self.headers(None),
            body: b"",
            timeout: ANSWER_TIMEOUT,
        })?;
        if !(200..300).contains(&status) {
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut body, &mut text);
            return Err(status_error(status, &text));
        }
        Ok(Deliveries {
            lines: std::io::BufReader::new(Box::new(body)),
            data: String::new(),
            closer: Closer(Arc::new(Shut {
                conn,
                closed: AtomicBool::new(false),
            })),
        })
    }
}

/// The deliveries of a [`Client::consume`] stream, in order.
pub struct Deliveries {
    lines: std::io::BufReader<Box<dyn std::io::Read + Send + Sync + 'static>>,
    /// The `data` of the frame being read.
    data: String,
    closer: Closer,
}

impl Deliveries {
    /// A handle that ends this stream from another thread.
    pub fn closer(&self) -> Closer {
        self.closer.clone()
    }
}

impl Drop for Deliveries {
    /// A closer may outlive the stream: the connection goes with the stream all the same, so
    /// the broker stops leasing to it.
    fn drop(&mut self) {
        self.closer.close();
    }
}

/// Ends a [`Deliveries`] stream from any thread: its connection is shut, so a reader blocked
/// on it sees the end of the stream (`None`, then `None` again). Deliveries leased but not yet
/// read come again once their leases expire.
#[derive(Clone)]
pub struct Closer(Arc<Shut>);

/// A stream's connection, and whether it was closed on purpose (a read that fails after that
/// is the end of the stream, not an error).
struct Shut {
    conn: std::net::TcpStream,
    closed: AtomicBool,
}

impl Closer {
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        let _ = self.0.conn.shutdown(std::net::Shutdown::Both);
    }

    fn closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }
}

impl Iterator for Deliveries {
    type Item = Result<Delivery, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        let mut line = String::new();
        loop {
            line.clear();
            if self.closer.closed() {
                return None;
            }
            match self.lines.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                // Closed meanwhile: the error is the shutdown, not a failure.
                Err(_) if self.closer.closed() => return None,
                Err(e) => return Some(Err(ClientError::Transport(e.to_string()))),
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if self.data.is_empty() {
                    continue;
                }
                let data = std::mem::take(&mut self.data);
                return Some(
                    serde_json::from_str(&data)
                        .map_err(|e| ClientError::Decode(format!("{e}: {data}"))),
                );
            }
            // `id:` and `event:` lines repeat what the data holds; comments keep the line warm.
            if let Some(d) = line.strip_prefix("data:") {
                self.data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
    }
}
