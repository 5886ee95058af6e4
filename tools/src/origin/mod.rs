//! The development backend ("dev origin"): a small static file server that behaves like a CDN
//! when asked to and misbehaves on purpose when told to.
//!
//! The caching proxy has to cope with everything a real backend does: Range requests answered
//! correctly or ignored, bodies without a length, connections that die mid-body, validators that
//! change under it, 5xx storms and authentication. Tests and benchmarks need a backend that does
//! each of these on demand, deterministically, and can tell afterwards exactly what it was asked
//! for. So this module is shaped as:
//!
//! - [`Origin::run`] — an accept loop over an already-bound listener (the caller binds
//!   `127.0.0.1:0`), one task per connection, hyper HTTP/1.1 with keep-alive, and a graceful
//!   shutdown that gives in-flight bodies a short grace period before dropping them.
//! - a request path that *decides* first ([`files::decide`], with the pure
//!   [`range::select_range`] for RFC 9110 §14 ranges) and *builds* the response in one place
//!   ([`response::build_response`]);
//! - file bodies streamed in chunks by a producer task into a bounded channel, so large files,
//!   throttling and "drop the connection after N bytes" are ordinary `async` code, and the body
//!   type hyper sees ([`body::ChannelBody`]) only counts what it hands over, for the request log;
//! - faults that live behind a mutex and can be replaced at run time through the control API
//!   under `/_control/` (`log` and `faults`), which is neither faulted nor logged itself.
//!
//! Nothing from the outside (request, header, file) can make it panic: bad input becomes a status
//! code, I/O trouble mid-body aborts the connection rather than sending wrong or padded bytes.
//!
//! # Layout
//!
//! - `mod.rs` — [`Origin`]: the accept loop, connections, and the path of one request;
//! - [`files`] — which file a request names and what it gets ([`files::Outcome`]), in the order
//!   the checks run;
//! - [`range`] — `Range`, `If-Range` and `If-None-Match` as pure functions (RFC 9110 §13, §14);
//! - [`response`] — the one place an outcome becomes status, headers and body;
//! - [`body`] — the producer task and the body hyper polls: chunks, throttle, deliberate cuts;
//! - [`faults`] — [`Faults`] and the budgets of the counted ones, shared and replaceable;
//! - [`link`] — the link `shared_link_bps` paces: one rate over every connection's body bytes;
//! - [`log`] — the request log the control API reports;
//! - [`control`] — the control API under `/_control/`.
//!
//! Dependencies run one way: `mod.rs` uses the modules and none of them uses `mod.rs`; `range`,
//! `link` and `log` use none of the others, `faults` only `link`.

mod body;
mod control;
mod faults;
mod files;
mod link;
mod log;
mod range;
mod response;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::header;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

pub use self::faults::Faults;
use self::faults::Switchboard;
use self::log::RequestLog;
use self::response::ResBody;

/// How long in-flight responses may run on after shutdown before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The dev origin: serves the files under one directory, with [`Faults`], and records every file
/// request for the control API.
pub struct Origin {
    /// The directory whose files are served.
    dir: PathBuf,
    /// Current faults and how much of the counted ones is left; body producers hold it too.
    switches: Arc<Switchboard>,
    /// Every file request since start or the last `DELETE /_control/log`, in order of arrival.
    log: RequestLog,
}

impl Origin {
    /// Creates an origin serving the files under `dir` with the given initial faults.
    ///
    /// Nothing is bound or checked yet; a missing `dir` simply makes every file a `404`.
    pub fn new(dir: PathBuf, faults: Faults) -> Arc<Origin> {
        Arc::new(Origin {
            dir,
            switches: Arc::new(Switchboard::new(faults)),
            log: RequestLog::default(),
        })
    }

    /// Serves `dir` on an already-bound listener until `shutdown` resolves.
    ///
    /// Each connection runs in its own task. On shutdown the listener is closed, every connection
    /// is asked to finish its current response and close, and whatever still runs after a short
    /// grace period is dropped. Accept errors (such as running out of file descriptors) are
    /// logged and retried, so this only returns once `shutdown` has resolved.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let origin = Arc::clone(&self);
                        connections.spawn(origin.serve_connection(stream, peer, stop_rx.clone()));
                    }
                    Err(err) => {
                        warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(err) = joined {
                        warn!("connection task failed: {err}");
                    }
                }
            }
        }
        drop(listener);
        // Receivers see `true` even if they start waiting after this point.
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            debug!(
                "dropping {} connection(s) still busy after the grace period",
                connections.len()
            );
        }
        connections.shutdown().await;
        Ok(())
    }

    /// One HTTP/1.1 connection, until the client closes it or shutdown finishes it.
    async fn serve_connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, mut stop: watch::Receiver<bool>) {
        // Media clients care about time to first byte; don't let Nagle hold small writes back.
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%peer, "set_nodelay failed: {err}");
        }
        let origin = self;
        let service = service_fn(move |req| {
            let origin = Arc::clone(&origin);
            async move { Ok::<_, Infallible>(origin.handle(req).await) }
        });
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).keep_alive(true);
        let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
        // The guard `wait_for` returns must not live across an await (it is not `Send`).
        let stopping = async {
            let _ = stop.wait_for(|stopping| *stopping).await;
        };
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = stopping => {
                conn.as_mut().graceful_shutdown();
                conn.as_mut().await
            }
        };
        if let Err(err) = result {
            // Includes the deliberate aborts of `drop_after`.
            debug!(%peer, "connection ended: {err}");
        }
    }

    /// One request: the control API by its prefix, anything else as a file.
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ResBody> {
        if let Some(route) = req.uri().path().strip_prefix(control::CONTROL_PREFIX) {
            let route = route.to_owned();
            return control::handle(&route, req, &self.switches, &self.log).await;
        }
        self.serve_file(req).await
    }

    /// A file request: record it, decide the outcome, build the response, log one line.
    async fn serve_file(&self, req: Request<Incoming>) -> Response<ResBody> {
        let slot = self.log.record(&req);
        let (faults, fail) = self.switches.for_request();
        let head = req.method() == Method::HEAD;
        let outcome = files::decide(&self.dir, &req, &faults, fail, &self.switches).await;
        let response = response::build_response(outcome, head, &faults, &self.switches, &slot);
        slot.set_status(response.status().as_u16());
        info!(
            method = %slot.method,
            path = %slot.path,
            range = slot.range.as_deref().unwrap_or("-"),
            status = response.status().as_u16(),
            length = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            "origin request"
        );
        response
    }
}
