//! Accepted OTLP/gRPC connections, bounded: at most `max` open at once (one over is closed as
//! soon as it is accepted), and each closed once no byte has gone either way for `idle`.
//! (tonic's own keep-alive settings find dead peers, not idle ones, and are ignored with an
//! incoming stream of our own.)

use futures_util::Stream;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bounds of the connections of one listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub max: usize,
    pub idle: Duration,
}

/// The accepted connections of `listener`, within `limits`.
pub fn incoming(
    listener: TcpListener,
    limits: ConnLimits,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    let open = Arc::new(Semaphore::new(limits.max.max(1)));
    futures_util::stream::unfold((listener, open), move |(listener, open)| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => match open.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        let conn = Conn::new(stream, permit, limits.idle);
                        return Some((Ok(conn), (listener, open)));
                    }
                    Err(_) => {
                        tracing::debug!(
                            max = limits.max,
                            "OTLP/gRPC connection over the cap closed"
                        );
                        drop(stream);
                    }
                },
                Err(e) => {
                    // Out of descriptors, most likely: back off instead of spinning.
                    tracing::warn!(error = %e, "OTLP/gRPC accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// One accepted connection: holds its place under the cap, and times out when idle.
pub struct Conn {
    stream: TcpStream,
    _open: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    fn new(stream: TcpStream, open: OwnedSemaphorePermit, idle: Duration) -> Conn {
        Conn {
            stream,
            _open: open,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn active(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Called when the stream has nothing: an error once the connection has been idle too long.
    fn idle_for_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "idle OTLP/gRPC connection closed")
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.active();
                }
                Poll::Ready(r)
            }
            Poll::Pending if this.idle_for_too_long(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.active();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}
