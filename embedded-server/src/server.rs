//! The accept loop: a connection cap, per-connection limits, and graceful shutdown.
//!
//! The library never binds by itself here: it is handed a listener (the facade or a test binds
//! `127.0.0.1`). A semaphore permit travels with each connection task, so at most
//! `max_connections` are served at once; hyper enforces the header size and the header/idle
//! timeout. On shutdown each connection is asked to finish its current response and is dropped
//! after a short grace period, so a long stream cannot hold the process open. A client that
//! stops reading is dropped once a write has made no progress for `client_stall_timeout`, so it
//! cannot pin a connection slot or a resource forever (hyper has no write timeout of its own).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use crate::shared::Inner;

/// How long open connections get to finish after shutdown starts.
const GRACE: Duration = Duration::from_secs(1);

/// Largest request head (request line + headers) accepted, in bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves `listener` until `cancel` fires.
pub(crate) async fn run(listener: TcpListener, inner: Arc<Inner>, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(inner.config().max_connections));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = cancel.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        let (inner, cancel) = (inner.clone(), cancel.clone());
        connections.spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let header_timeout = inner.config().client_header_timeout;
            let stream = StallGuard::new(stream, inner.config().client_stall_timeout);
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let inner = inner.clone();
                async move {
                    let req = req.map(|body| {
                        http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(body, std::io::Error::other))
                    });
                    Ok::<_, Infallible>(crate::http::handle(inner, req).await)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(GRACE, conn).await;
                }
            }
        });
    }
    let _ = tokio::time::timeout(GRACE * 2, async { while connections.join_next().await.is_some() {} }).await;
    connections.shutdown().await;
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for `limit`.
struct StallGuard {
    inner: TcpStream,
    limit: Duration,
    /// Armed while a write is pending.
    timer: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn new(inner: TcpStream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
        }
    }

    /// Maps a pending write to a timeout once the stall has lasted `limit`.
    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Pending => {
                let limit = self.limit;
                let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.timer = None;
                ready
            }
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
