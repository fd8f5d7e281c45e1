//! Lingering close for refused handshakes: the connection is closed only once the client has
//! nothing left in flight.
//!
//! With TLS 1.3 a client's handshake is over before the server has judged its certificate, so
//! browsers and curl send their request right behind their Finished message. When the server
//! refuses the certificate it sends an alert and closes; bytes that reach a closed socket make
//! the kernel answer with a reset, and the client reports "connection reset" or "socket not
//! connected" (Chromium, one time in two here) instead of the alert that says why. nginx avoids
//! this with its `lingering_close`; so do we: when a connection ends before its handshake
//! completed, the server reads and discards what the client still sends for a moment (until the
//! client, having read the alert, closes), then closes.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use actix_web::rt::net::{ActixStream, Ready, TcpStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::limits::{LINGER_BYTES, LINGER_TIME, MAX_LINGERING};
use crate::metrics::Shared;

static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// A TCP connection that lingers on close if its TLS handshake never completed.
#[derive(Debug)]
pub struct Lingering {
    // Always Some until drop.
    tcp: Option<TcpStream>,
    established: Cell<bool>,
    /// Counts open and lingering connections, when metrics are on.
    metrics: Shared,
}

impl Lingering {
    /// Wraps an accepted connection.
    pub fn new(tcp: TcpStream, metrics: Shared) -> Lingering {
        if let Some(m) = &metrics {
            m.connections_open.inc();
        }
        Lingering {
            tcp: Some(tcp),
            established: Cell::new(false),
            metrics,
        }
    }

    /// Marks the handshake complete: from now on, HTTP decides how the connection ends.
    pub fn established(&self) {
        self.established.set(true);
    }

    /// The connection.
    pub fn tcp(&self) -> &TcpStream {
        self.tcp.as_ref().expect("the stream is there until drop")
    }

    fn tcp_mut(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.tcp.as_mut().expect("the stream is there until drop"))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let metrics = self.metrics.take();
        if let Some(m) = &metrics {
            m.connections_open.dec();
        }
        let Some(tcp) = self.tcp.take() else { return };
        if self.established.get() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
            LINGERING.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if let Some(m) = &metrics {
            m.connections_lingering.inc();
        }
        runtime.spawn(async move {
            linger(tcp).await;
            LINGERING.fetch_sub(1, Ordering::Relaxed);
            if let Some(m) = metrics {
                m.connections_lingering.dec();
            }
        });
    }
}

/// Reads and discards until the client closes, [`LINGER_BYTES`] were read, or [`LINGER_TIME`]
/// passed. No FIN first: Chromium takes a half-closed socket for a dead one ("socket not
/// connected") before it reads the alert waiting in it.
async fn linger(mut tcp: TcpStream) {
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.tcp_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tcp_mut().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.tcp_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp().is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp_mut().poll_shutdown(cx)
    }
}

impl ActixStream for Lingering {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_read_ready(self.tcp(), cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_write_ready(self.tcp(), cx)
    }
}
