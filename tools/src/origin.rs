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
//! - a request path that *decides* first ([`Outcome`], with the pure [`select_range`] for
//!   RFC 9110 §14 ranges) and *builds* the response in one place ([`Origin::build_response`]);
//! - file bodies streamed in chunks by a producer task into a bounded channel, so large files,
//!   throttling and "drop the connection after N bytes" are ordinary `async` code, and the body
//!   type hyper sees ([`ChannelBody`]) only counts what it hands over, for the request log;
//! - faults that live behind a mutex and can be replaced at run time through the control API
//!   under `/_control/` (`log` and `faults`), which is neither faulted nor logged itself.
//!
//! Nothing from the outside (request, header, file) can make it panic: bad input becomes a status
//! code, I/O trouble mid-body aborts the connection rather than sending wrong or padded bytes.
//!
//! # File requests
//!
//! `GET`/`HEAD` of a file under the directory; the query string is ignored for the lookup. Checks
//! run in this order: `fail_first` (`503`, for any non-control request), `require_auth` (`401`),
//! method (`405`), path (`400` bad percent-encoding, `404` missing or escaping), then the
//! conditionals in RFC 9110 §13.2.2 order: `If-None-Match` (`304`), `If-Range` guarding `Range`
//! (`206`, `416`, or `200` when ignored). `HEAD` answers exactly the headers `GET` would, Range
//! included.
//!
//! # Control API
//!
//! - `GET /_control/log` — JSON array, in arrival order, of every file request since start or the
//!   last clear: `{"method", "path" (with query), "range", "if_range" (header values or null),
//!   "status", "authorization" (whether the header was present; never its value), "body_bytes"
//!   (bytes handed to the connection so far), "complete" (the whole body was handed over)}`.
//!   `status` is 0 if the client left before a response was decided.
//! - `DELETE /_control/log` — clears it; `204`.
//! - `GET /_control/faults` — the current [`Faults`] as JSON.
//! - `PUT /_control/faults` — replaces them (missing fields take their defaults, unknown fields
//!   are an error) and resets the `fail_first`/`drop_times` budgets; `204`, or `400` with
//!   `{"error": "..."}`.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, SeekFrom};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Largest body chunk read from disk and handed to hyper, in bytes.
const CHUNK: u64 = 64 * 1024;
/// Chunks a producer may run ahead of hyper; small so throttling tracks the wire.
const CHANNEL_CHUNKS: usize = 4;
/// A throttled body is sent in about this many chunks per second.
const THROTTLE_TICKS_PER_SEC: u64 = 20;
/// Requests under this prefix are the control API, not files.
const CONTROL_PREFIX: &str = "/_control/";
/// Largest control API request body, in bytes.
const MAX_CONTROL_BODY: usize = 64 * 1024;
/// How long in-flight responses may run on after shutdown before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The response body type of every route.
type ResBody = BoxBody<Bytes, io::Error>;

/// Misbehaviours the origin can be told to show; all off by default.
///
/// Replaced as a whole at run time with `PUT /_control/faults`; fields missing from that JSON take
/// their default. Unknown fields are rejected so that a typo cannot silently switch nothing on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Pace file bodies at about this many bytes per second. `None` or `0`: full speed. Applies
    /// live, also to bodies already in flight.
    pub throttle_bps: Option<u64>,
    /// Abort the connection after this many body bytes of a file response (the client sees a body
    /// shorter than its `Content-Length`, or an unterminated chunked body). Only responses whose
    /// body is longer than this are cut.
    pub drop_after: Option<u64>,
    /// How many responses `drop_after` cuts before bodies are whole again. Defaults to 1.
    pub drop_times: u32,
    /// Answer the first this-many file requests with `503 Service Unavailable`.
    pub fail_first: u32,
    /// Ignore `Range` headers: always `200` with the full body.
    pub ignore_range: bool,
    /// Send bodies with chunked transfer encoding and no `Content-Length`; implies `ignore_range`
    /// and drops `Accept-Ranges`.
    pub no_content_length: bool,
    /// Give every response a different `ETag` (a per-response counter suffix).
    pub changing_etag: bool,
    /// Answer `401` unless the `Authorization` header is exactly this value.
    pub require_auth: Option<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            throttle_bps: None,
            drop_after: None,
            // One drop is what "drop after N bytes" means when nobody says how many.
            drop_times: 1,
            fail_first: 0,
            ignore_range: false,
            no_content_length: false,
            changing_etag: false,
            require_auth: None,
        }
    }
}

/// The dev origin: serves the files under one directory, with [`Faults`], and records every file
/// request for the control API.
pub struct Origin {
    /// The directory whose files are served.
    dir: PathBuf,
    /// Current faults and how much of the counted ones is left.
    faults: Mutex<FaultState>,
    /// Every file request since start or the last `DELETE /_control/log`, in order of arrival.
    log: Mutex<Vec<Arc<LogSlot>>>,
    /// Source of the per-response suffix for `changing_etag`.
    etag_counter: AtomicU64,
}

/// Faults plus the remaining budget of the counted ones; reset whenever faults are replaced.
struct FaultState {
    faults: Faults,
    fails_left: u32,
    drops_left: u32,
}

impl FaultState {
    fn new(faults: Faults) -> Self {
        FaultState {
            fails_left: faults.fail_first,
            drops_left: faults.drop_times,
            faults,
        }
    }
}

/// One request-log entry. The request side is fixed at arrival; status and body progress are
/// filled in as the response goes out (atomics, so the body never takes the log lock).
struct LogSlot {
    method: String,
    /// Path and query as the client sent them (not decoded).
    path: String,
    /// The `Range` header value, if any.
    range: Option<String>,
    /// The `If-Range` header value, if any.
    if_range: Option<String>,
    /// Whether an `Authorization` header was present (its value is never kept).
    authorization: bool,
    /// Response status; 0 until a response has been decided.
    status: AtomicU16,
    /// Body bytes handed to the connection so far.
    body_bytes: AtomicU64,
    /// Whether the whole body was handed over.
    complete: AtomicBool,
}

/// The JSON shape of a [`LogSlot`] in `GET /_control/log`.
#[derive(Serialize)]
struct LogEntry<'a> {
    method: &'a str,
    path: &'a str,
    range: Option<&'a str>,
    if_range: Option<&'a str>,
    status: u16,
    authorization: bool,
    body_bytes: u64,
    complete: bool,
}

/// What a file request gets, decided before any header is built.
enum Outcome {
    /// A status without a file: `401`, `404`, `405`, `503`, … with a short text body.
    Error(StatusCode, &'static str),
    /// `If-None-Match` matched: `304` with the validators.
    NotModified(FileMeta),
    /// A `Range` that selects nothing: `416` with `Content-Range: bytes */LEN`.
    Unsatisfiable(FileMeta),
    /// The file, whole (`range: None`, `200`) or one inclusive byte range (`206`).
    File {
        meta: FileMeta,
        file: File,
        range: Option<(u64, u64)>,
    },
}

/// The representation metadata of a served file.
struct FileMeta {
    /// Length in bytes.
    len: u64,
    /// Strong entity tag, quotes included.
    etag: String,
    /// `Last-Modified` as an IMF-fixdate, when the file system reports a modification time.
    last_modified: Option<String>,
    content_type: &'static str,
}

/// What a single `Range` header asks of a representation of a given length (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeOutcome {
    /// No usable range: send the whole representation with `200`.
    Full,
    /// Send bytes `start..=end` with `206`.
    Partial { start: u64, end: u64 },
    /// Nothing of the representation is selected: `416`.
    Unsatisfiable,
}

impl Origin {
    /// Creates an origin serving the files under `dir` with the given initial faults.
    ///
    /// Nothing is bound or checked yet; a missing `dir` simply makes every file a `404`.
    pub fn new(dir: PathBuf, faults: Faults) -> Arc<Origin> {
        Arc::new(Origin {
            dir,
            faults: Mutex::new(FaultState::new(faults)),
            log: Mutex::new(Vec::new()),
            etag_counter: AtomicU64::new(0),
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

    /// The faults in force now.
    pub fn faults(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    /// Replaces the faults and resets the `fail_first` and `drop_times` budgets.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = FaultState::new(faults);
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

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ResBody> {
        if let Some(route) = req.uri().path().strip_prefix(CONTROL_PREFIX) {
            let route = route.to_owned();
            return self.control(&route, req).await;
        }
        self.serve_file(req).await
    }

    /// A file request: record it, decide the outcome, build the response, log one line.
    async fn serve_file(self: Arc<Self>, req: Request<Incoming>) -> Response<ResBody> {
        let slot = self.record(&req);
        let (faults, fail) = {
            let mut state = lock(&self.faults);
            let fail = state.fails_left > 0;
            if fail {
                state.fails_left -= 1;
            }
            (state.faults.clone(), fail)
        };
        let head = req.method() == Method::HEAD;
        let outcome = self.decide(&req, &faults, fail).await;
        let response = self.build_response(outcome, head, &faults, &slot);
        slot.status.store(response.status().as_u16(), Ordering::SeqCst);
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

    /// Adds a log entry for a file request and returns it for the response to fill in.
    fn record(&self, req: &Request<Incoming>) -> Arc<LogSlot> {
        let headers = req.headers();
        let slot = Arc::new(LogSlot {
            method: req.method().as_str().to_owned(),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned()),
            range: header_lossy(headers, &header::RANGE),
            if_range: header_lossy(headers, &header::IF_RANGE),
            authorization: headers.contains_key(header::AUTHORIZATION),
            status: AtomicU16::new(0),
            body_bytes: AtomicU64::new(0),
            complete: AtomicBool::new(false),
        });
        lock(&self.log).push(Arc::clone(&slot));
        slot
    }

    /// Decides what a file request gets. Order: injected `503`, authentication, method, path,
    /// file, then the conditional headers in RFC 9110 §13.2.2 order (`If-None-Match`, then
    /// `If-Range` guarding `Range`).
    async fn decide(&self, req: &Request<Incoming>, faults: &Faults, fail: bool) -> Outcome {
        if fail {
            return Outcome::Error(StatusCode::SERVICE_UNAVAILABLE, "origin fault: fail_first\n");
        }
        if let Some(expected) = &faults.require_auth {
            let given = req.headers().get(header::AUTHORIZATION);
            if given.is_none_or(|v| v.as_bytes() != expected.as_bytes()) {
                return Outcome::Error(StatusCode::UNAUTHORIZED, "authorization required\n");
            }
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Outcome::Error(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        }
        let resolved = match relative_path(req.uri().path()) {
            Ok(relative) => self.resolve(&relative).await.map(|path| (relative, path)),
            Err(status) => Err(status),
        };
        let (relative, path) = match resolved {
            Ok(found) => found,
            Err(status) => return Outcome::Error(status, status_text(status)),
        };
        let file = match File::open(&path).await {
            Ok(file) => file,
            Err(err) => return Outcome::Error(io_status(&err), status_text(io_status(&err))),
        };
        let metadata = match file.metadata().await {
            Ok(metadata) if metadata.is_file() => metadata,
            Ok(_) => return Outcome::Error(StatusCode::NOT_FOUND, "not found\n"),
            Err(err) => return Outcome::Error(io_status(&err), status_text(io_status(&err))),
        };
        let suffix = faults
            .changing_etag
            .then(|| self.etag_counter.fetch_add(1, Ordering::SeqCst) + 1);
        let meta = FileMeta::new(&relative, &metadata, suffix);

        let headers = req.headers();
        if let Some(candidates) = header_str(headers, &header::IF_NONE_MATCH) {
            if if_none_match_hits(candidates, &meta.etag) {
                return Outcome::NotModified(meta);
            }
        }
        let range = if faults.ignore_range || faults.no_content_length {
            RangeOutcome::Full
        } else {
            match header_raw(headers, &header::RANGE) {
                None => RangeOutcome::Full,
                Some(range) => {
                    let if_range_holds = header_raw(headers, &header::IF_RANGE).is_none_or(|v| {
                        v.to_str()
                            .is_ok_and(|v| if_range_matches(v, &meta.etag, meta.last_modified.as_deref()))
                    });
                    match range.to_str() {
                        Ok(range) if if_range_holds => select_range(range, meta.len),
                        // Opaque bytes are no range we can parse: ignore it.
                        _ => RangeOutcome::Full,
                    }
                }
            }
        };
        match range {
            RangeOutcome::Full => Outcome::File {
                meta,
                file,
                range: None,
            },
            RangeOutcome::Partial { start, end } => Outcome::File {
                meta,
                file,
                range: Some((start, end)),
            },
            RangeOutcome::Unsatisfiable => Outcome::Unsatisfiable(meta),
        }
    }

    /// Finds the file a [`relative_path`] names under `dir`; after symlinks are resolved it must
    /// still lie under `dir`.
    async fn resolve(&self, relative: &Path) -> Result<PathBuf, StatusCode> {
        let root = tokio::fs::canonicalize(&self.dir)
            .await
            .map_err(|_| StatusCode::NOT_FOUND)?;
        let full = tokio::fs::canonicalize(root.join(relative))
            .await
            .map_err(|err| io_status(&err))?;
        if full.starts_with(&root) {
            Ok(full)
        } else {
            Err(StatusCode::NOT_FOUND)
        }
    }

    /// The one place that turns an [`Outcome`] into status, headers and body.
    fn build_response(
        self: &Arc<Self>,
        outcome: Outcome,
        head: bool,
        faults: &Faults,
        slot: &Arc<LogSlot>,
    ) -> Response<ResBody> {
        let mut headers = HeaderMap::new();
        let (status, body) = match outcome {
            Outcome::Error(status, text) => {
                match status {
                    StatusCode::UNAUTHORIZED => {
                        headers.insert(
                            header::WWW_AUTHENTICATE,
                            HeaderValue::from_static("Bearer realm=\"origin\""),
                        );
                    }
                    StatusCode::METHOD_NOT_ALLOWED => {
                        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    }
                    _ => {}
                }
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                (status, small_body(text, head, &mut headers))
            }
            Outcome::NotModified(meta) => {
                meta.validators(&mut headers);
                (StatusCode::NOT_MODIFIED, empty())
            }
            Outcome::Unsatisfiable(meta) => {
                meta.validators(&mut headers);
                headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                insert(&mut headers, header::CONTENT_RANGE, &format!("bytes */{}", meta.len));
                (StatusCode::RANGE_NOT_SATISFIABLE, small_body("", head, &mut headers))
            }
            Outcome::File { meta, file, range } => {
                meta.validators(&mut headers);
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(meta.content_type));
                let (status, start, len) = match range {
                    None => (StatusCode::OK, 0, meta.len),
                    Some((start, end)) => {
                        let value = format!("bytes {start}-{end}/{}", meta.len);
                        insert(&mut headers, header::CONTENT_RANGE, &value);
                        (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
                    }
                };
                if !faults.no_content_length {
                    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                }
                let body = if head || (len == 0 && !faults.no_content_length) {
                    empty()
                } else {
                    let cut_at = self.take_drop(len, faults);
                    self.stream_body(file, start, len, cut_at, slot)
                };
                (status, body)
            }
        };
        // Streamed bodies account for themselves; the small fixed ones go out in one piece.
        if let Some(len) = body.size_hint().exact() {
            slot.body_bytes.store(len, Ordering::SeqCst);
            slot.complete.store(true, Ordering::SeqCst);
        }
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }

    /// Spends one `drop_times` budget if this body is long enough to be cut; returns where.
    fn take_drop(&self, body_len: u64, faults: &Faults) -> Option<u64> {
        let cut_at = faults.drop_after.filter(|&n| body_len > n)?;
        let mut state = lock(&self.faults);
        if state.drops_left == 0 {
            return None;
        }
        state.drops_left -= 1;
        Some(cut_at)
    }

    /// Starts the producer task for a file body and returns the body hyper polls.
    fn stream_body(
        self: &Arc<Self>,
        file: File,
        start: u64,
        len: u64,
        cut_at: Option<u64>,
        slot: &Arc<LogSlot>,
    ) -> ResBody {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        tokio::spawn(pump(Arc::clone(self), file, start, len, cut_at, tx));
        ChannelBody::new(rx, Arc::clone(slot), len).boxed()
    }

    /// The current throttle in bytes per second; `None` when off (`0` counts as off).
    fn throttle_bps(&self) -> Option<u64> {
        lock(&self.faults).faults.throttle_bps.filter(|&bps| bps > 0)
    }

    /// The control API: `GET|DELETE /_control/log`, `GET|PUT /_control/faults`.
    async fn control(&self, route: &str, req: Request<Incoming>) -> Response<ResBody> {
        debug!(method = %req.method(), route, "control request");
        let method = req.method().clone();
        match (route, method) {
            ("log", Method::GET) => {
                let log = lock(&self.log);
                let entries: Vec<LogEntry<'_>> = log.iter().map(|slot| slot.entry()).collect();
                json(StatusCode::OK, &entries)
            }
            ("log", Method::DELETE) => {
                lock(&self.log).clear();
                no_content()
            }
            ("faults", Method::GET) => json(StatusCode::OK, &self.faults()),
            ("faults", Method::PUT) => {
                let body = match Limited::new(req.into_body(), MAX_CONTROL_BODY).collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(err) => {
                        return json_error(StatusCode::BAD_REQUEST, &format!("cannot read the request body: {err}"))
                    }
                };
                match serde_json::from_slice::<Faults>(&body) {
                    Ok(faults) => {
                        self.set_faults(faults);
                        no_content()
                    }
                    Err(err) => json_error(StatusCode::BAD_REQUEST, &format!("bad faults JSON: {err}")),
                }
            }
            ("log", _) => method_not_allowed("GET, DELETE"),
            ("faults", _) => method_not_allowed("GET, PUT"),
            _ => json_error(
                StatusCode::NOT_FOUND,
                "unknown control route; try /_control/log or /_control/faults",
            ),
        }
    }
}

/// Producer of a file body: reads `len` bytes from `start`, paced by the live throttle and cut at
/// `cut_at` bytes when a drop fault chose this response. An error sent down the channel makes
/// hyper abort the connection, which is how the client learns the body is incomplete.
async fn pump(
    origin: Arc<Origin>,
    mut file: File,
    start: u64,
    len: u64,
    cut_at: Option<u64>,
    tx: mpsc::Sender<io::Result<Bytes>>,
) {
    if let Err(err) = pump_chunks(&origin, &mut file, start, len, cut_at, &tx).await {
        // The receiver may be gone already; then nobody needs to hear about it.
        let _ = tx.send(Err(err)).await;
    }
}

async fn pump_chunks(
    origin: &Origin,
    file: &mut File,
    start: u64,
    len: u64,
    cut_at: Option<u64>,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await?;
    }
    let limit = cut_at.map_or(len, |cut| cut.min(len));
    let mut pacer = Pacer::new();
    let mut sent = 0;
    while sent < limit {
        let chunk = pacer.next_chunk(origin.throttle_bps()).await.min(limit - sent);
        let mut buf = vec![0; usize::try_from(chunk).map_err(io::Error::other)?];
        // A file that shrank under us ends in an error (and an aborted response), never padding.
        file.read_exact(&mut buf).await?;
        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
            return Ok(()); // the client went away
        }
        pacer.sent(chunk);
        sent += chunk;
    }
    if sent < len {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("origin fault: connection dropped after {sent} body bytes"),
        ));
    }
    Ok(())
}

/// Spaces chunks so that bytes leave at the throttle rate; restarts its clock when the rate
/// changes, so a new rate applies from that moment on.
struct Pacer {
    rate: Option<u64>,
    since: Instant,
    bytes: u64,
}

impl Pacer {
    fn new() -> Self {
        Pacer {
            rate: None,
            since: Instant::now(),
            bytes: 0,
        }
    }

    /// Waits until the next chunk is due and returns its size in bytes.
    async fn next_chunk(&mut self, rate: Option<u64>) -> u64 {
        let Some(bps) = rate else {
            self.rate = None;
            return CHUNK;
        };
        if self.rate != Some(bps) {
            *self = Pacer {
                rate: Some(bps),
                since: Instant::now(),
                bytes: 0,
            };
        }
        let nanos = u128::from(self.bytes) * 1_000_000_000 / u128::from(bps);
        let offset = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        if let Some(due) = self.since.checked_add(offset) {
            tokio::time::sleep_until(due).await;
        }
        (bps / THROTTLE_TICKS_PER_SEC).clamp(1, CHUNK)
    }

    fn sent(&mut self, bytes: u64) {
        self.bytes += bytes;
    }
}

/// The body hyper polls for a file: chunks from the producer task, counted into the log entry as
/// they are handed over. `complete` is set when the last byte is handed over, before the client
/// can have read it, so a client that read a whole body always finds its entry complete.
///
/// An error from the producer aborts the connection. hyper drops what it has buffered but not yet
/// written when that happens, so the error is held back for one `Pending`: hyper flushes whenever
/// the body is pending, and the bytes before the cut really reach the client.
struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    slot: Arc<LogSlot>,
    /// Body length in bytes that the response promised.
    expected: u64,
    /// Bytes handed to hyper so far.
    sent: u64,
    /// Data was handed over since hyper last saw `Pending` (it may still sit in hyper's buffer).
    unflushed: bool,
    /// An error waiting for hyper to flush first.
    held_error: Option<io::Error>,
}

impl ChannelBody {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>, slot: Arc<LogSlot>, expected: u64) -> Self {
        ChannelBody {
            rx,
            slot,
            expected,
            sent: 0,
            unflushed: false,
            held_error: None,
        }
    }

    /// Returns `err` now if hyper has flushed everything, else holds it for one `Pending`.
    fn fail(&mut self, err: io::Error, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if !self.unflushed {
            return Poll::Ready(Some(Err(err)));
        }
        self.unflushed = false;
        self.held_error = Some(err);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(err) = this.held_error.take() {
            return Poll::Ready(Some(Err(err)));
        }
        let polled = this.rx.poll_recv(cx);
        if polled.is_pending() {
            this.unflushed = false;
        }
        match ready!(polled) {
            Some(Ok(data)) => {
                this.sent += data.len() as u64;
                this.unflushed = true;
                this.slot.body_bytes.store(this.sent, Ordering::SeqCst);
                if this.sent >= this.expected {
                    this.slot.complete.store(true, Ordering::SeqCst);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Err(err)) => this.fail(err, cx),
            // The producer stopped without saying why: still never end a body short silently.
            None if this.sent < this.expected => this.fail(
                io::Error::new(io::ErrorKind::UnexpectedEof, "body producer stopped early"),
                cx,
            ),
            None => Poll::Ready(None),
        }
    }
}

impl LogSlot {
    fn entry(&self) -> LogEntry<'_> {
        LogEntry {
            method: &self.method,
            path: &self.path,
            range: self.range.as_deref(),
            if_range: self.if_range.as_deref(),
            status: self.status.load(Ordering::SeqCst),
            authorization: self.authorization,
            body_bytes: self.body_bytes.load(Ordering::SeqCst),
            complete: self.complete.load(Ordering::SeqCst),
        }
    }
}

impl FileMeta {
    /// Validators from what the file system reports. The ETag combines size, modification time
    /// in nanoseconds and (on Unix) the inode, so rewriting or replacing a file changes it —
    /// unless a rewrite keeps the size within the file system's timestamp granularity.
    fn new(url_path: &Path, metadata: &std::fs::Metadata, suffix: Option<u64>) -> FileMeta {
        let len = metadata.len();
        let modified = metadata.modified().ok();
        let since_epoch = modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        let nanos = since_epoch.map_or(0, |d| d.as_nanos());
        let etag = match suffix {
            None => format!("\"{len:x}-{nanos:x}-{:x}\"", inode(metadata)),
            Some(n) => format!("\"{len:x}-{nanos:x}-{:x}-c{n}\"", inode(metadata)),
        };
        // httpdate cannot format times before 1970 or after 9999; such files get no date.
        let last_modified = modified
            .filter(|_| since_epoch.is_some_and(|d| d.as_secs() < 253_402_300_800))
            .map(httpdate::fmt_http_date);
        FileMeta {
            len,
            etag,
            last_modified,
            content_type: content_type(url_path),
        }
    }

    fn validators(&self, headers: &mut HeaderMap) {
        insert(headers, header::ETAG, &self.etag);
        if let Some(date) = &self.last_modified {
            insert(headers, header::LAST_MODIFIED, date);
        }
    }
}

#[cfg(unix)]
fn inode(metadata: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.ino()
}

#[cfg(not(unix))]
fn inode(_metadata: &std::fs::Metadata) -> u64 {
    0
}

/// The media types players are picky about, then mime_guess, then `application/octet-stream`.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("m4s") => "video/iso.segment",
        Some("wav") => "audio/wav",
        Some("m4a") => "audio/mp4",
        Some("aac") => "audio/aac",
        Some("mp3") => "audio/mpeg",
        _ => mime_guess::from_path(path)
            .first_raw()
            .unwrap_or("application/octet-stream"),
    }
}

/// Interprets one `Range` header value for a representation of `len` bytes (RFC 9110 §14.1.2,
/// §14.2). Only single ranges are honoured; multi-range and malformed headers are ignored (`Full`),
/// which §14.2 allows. A range whose last position is below its first is invalid, so ignored too.
fn select_range(value: &str, len: u64) -> RangeOutcome {
    let parsed = match http_range_header::parse_range_header(value) {
        Ok(parsed) => parsed,
        // `bytes=-0` is well-formed but can never be satisfied (§14.1.2).
        Err(RangeUnsatisfiableError::ZeroSuffix) if !value.contains(',') => return RangeOutcome::Unsatisfiable,
        Err(_) => return RangeOutcome::Full,
    };
    let [range] = parsed.ranges.as_slice() else {
        return RangeOutcome::Full;
    };
    match (range.start, range.end) {
        (StartPosition::Index(start), EndPosition::Index(end)) if end < start => RangeOutcome::Full,
        (StartPosition::Index(start), _) if start >= len => RangeOutcome::Unsatisfiable,
        (StartPosition::Index(start), EndPosition::Index(end)) => RangeOutcome::Partial {
            start,
            end: end.min(len - 1),
        },
        (StartPosition::Index(start), EndPosition::LastByte) => RangeOutcome::Partial { start, end: len - 1 },
        // A suffix longer than the representation selects all of it; an empty representation
        // has no bytes to put in a 206, so it is sent whole (and empty).
        (StartPosition::FromLast(_), _) if len == 0 => RangeOutcome::Full,
        (StartPosition::FromLast(suffix), _) => RangeOutcome::Partial {
            start: len - suffix.min(len),
            end: len - 1,
        },
    }
}

/// `If-Range` (RFC 9110 §13.1.5): an entity tag must match ours by strong comparison (a weak tag
/// never does); a date must equal our `Last-Modified` exactly.
fn if_range_matches(value: &str, etag: &str, last_modified: Option<&str>) -> bool {
    let value = value.trim();
    if value.starts_with('"') {
        value == etag
    } else if value.starts_with("W/") {
        false
    } else {
        last_modified == Some(value)
    }
}

/// `If-None-Match` (RFC 9110 §13.1.2), weak comparison: true when the client's copy is current,
/// so the answer is `304`.
fn if_none_match_hits(value: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

/// The relative file path a URL path names: percent-decoded, empty and `.` segments skipped, and
/// anything that could leave the served directory (`..`, backslashes, NULs, non-normal
/// components) refused with `404`. Invalid percent-encoding or UTF-8 is a `400`.
fn relative_path(url_path: &str) -> Result<PathBuf, StatusCode> {
    let decoded = percent_encoding::percent_decode_str(url_path)
        .decode_utf8()
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(StatusCode::NOT_FOUND),
            // 255 bytes is the usual file-name limit; longer names cannot exist.
            s if s.contains(['\\', '\0']) || s.len() > 255 => return Err(StatusCode::NOT_FOUND),
            s => relative.push(s),
        }
    }
    let normal = relative.components().all(|c| matches!(c, Component::Normal(_)));
    if relative.as_os_str().is_empty() || !normal {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(relative)
}

/// The status a file-system error on the request path deserves.
fn io_status(err: &io::Error) -> StatusCode {
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StatusCode::NOT_FOUND,
        io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ => {
            warn!("file error: {err}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn status_text(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::NOT_FOUND => "not found\n",
        _ => "internal error\n",
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent across a panic (plain assignments), so poisoning is moot.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn header_raw<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    headers.get(name)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_lossy(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Inserts a header whose value we formatted ourselves (always valid; skipped if not).
fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn empty() -> ResBody {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed()
}

/// A short fixed body with its `Content-Length`; HEAD gets the header but not the bytes.
fn small_body(text: &'static str, head: bool, headers: &mut HeaderMap) -> ResBody {
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    if head || text.is_empty() {
        empty()
    } else {
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed()
    }
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<ResBody> {
    let (status, bytes) = match serde_json::to_vec(value) {
        Ok(bytes) => (status, bytes),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{{\"error\":\"cannot encode JSON: {err}\"}}").into_bytes(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(bytes)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn json_error(status: StatusCode, message: &str) -> Response<ResBody> {
    json(status, &serde_json::json!({ "error": message }))
}

fn method_not_allowed(allow: &'static str) -> Response<ResBody> {
    let mut response = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn no_content() -> Response<ResBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeOutcome::{Full, Partial, Unsatisfiable};
        let cases = [
            ("bytes=0-9", 100, Partial { start: 0, end: 9 }),
            ("bytes=10-", 100, Partial { start: 10, end: 99 }),
            ("bytes=-10", 100, Partial { start: 90, end: 99 }),
            ("bytes=-500", 100, Partial { start: 0, end: 99 }),
            ("bytes=90-500", 100, Partial { start: 90, end: 99 }),
            ("bytes=99-99", 100, Partial { start: 99, end: 99 }),
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=100-200", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=-5", 0, Full),
            ("bytes=9-3", 100, Full),
            ("bytes=0-1,5-6", 100, Full),
            ("bytes=abc", 100, Full),
            ("items=0-5", 100, Full),
            ("bytes= 0-5", 100, Full),
            ("", 100, Full),
        ];
        for (header, len, expected) in cases {
            assert_eq!(select_range(header, len), expected, "{header:?} on {len} bytes");
        }
    }

    #[test]
    fn validators_compare_as_rfc_9110_says() {
        let etag = "\"a-b-c\"";
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert!(if_range_matches("\"a-b-c\"", etag, Some(date)));
        assert!(!if_range_matches("\"a-b-d\"", etag, Some(date)));
        assert!(!if_range_matches("W/\"a-b-c\"", etag, Some(date)));
        assert!(if_range_matches(date, etag, Some(date)));
        assert!(!if_range_matches("Thu, 22 Oct 2015 07:28:00 GMT", etag, Some(date)));
        assert!(!if_range_matches(date, etag, None));
        assert!(if_none_match_hits("\"x\", W/\"a-b-c\"", etag));
        assert!(if_none_match_hits("*", etag));
        assert!(!if_none_match_hits("\"x\"", etag));
    }

    #[test]
    fn url_paths_cannot_leave_the_directory() {
        assert_eq!(relative_path("/a/b.wav"), Ok(PathBuf::from("a/b.wav")));
        assert_eq!(relative_path("/a%20b.wav"), Ok(PathBuf::from("a b.wav")));
        assert_eq!(relative_path("//a/./b"), Ok(PathBuf::from("a/b")));
        assert_eq!(relative_path("/../etc/passwd"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/a/%2e%2e/%2e%2e/x"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/a/..%2fx"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/a%5c..%5cx"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/a%00"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/%ff"), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn media_types_players_expect() {
        let cases = [
            ("a/index.m3u8", "application/vnd.apple.mpegurl"),
            ("seg1.ts", "video/mp2t"),
            ("seg1.M4S", "video/iso.segment"),
            ("song.wav", "audio/wav"),
            ("song.mp3", "audio/mpeg"),
            ("catalog.json", "application/json"),
            ("blob", "application/octet-stream"),
        ];
        for (path, expected) in cases {
            assert_eq!(content_type(Path::new(path)), expected, "{path}");
        }
    }

    /// A running origin over a temp dir holding `data.bin` (1000 patterned bytes).
    struct Running {
        addr: SocketAddr,
        origin: Arc<Origin>,
        data: Vec<u8>,
        _dir: tempfile::TempDir,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    async fn start(faults: Faults) -> Running {
        let dir = tempfile::tempdir().expect("temp dir");
        let data: Vec<u8> = (0..1000_u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join("data.bin"), &data).expect("fixture");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let origin = Origin::new(dir.path().to_path_buf(), faults);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(Arc::clone(&origin).run(listener, async move {
            let _ = stopped.await;
        }));
        Running {
            addr,
            origin,
            data,
            _dir: dir,
            _stop: stop,
        }
    }

    struct Reply {
        status: u16,
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    /// One request on a fresh connection with `Connection: close`; the body is whatever arrived
    /// before the connection ended (chunked bodies are decoded as far as they go).
    async fn send(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)], body: &str) -> Reply {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await; // an aborted response may end in a reset
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status");
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers.get("transfer-encoding").is_some_and(|v| v == "chunked") {
            body = dechunk(&body);
        }
        Reply { status, headers, body }
    }

    fn dechunk(mut raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap_or("0"), 16).unwrap_or(0);
            raw = &raw[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&raw[..size.min(raw.len())]);
            raw = &raw[(size + 2).min(raw.len())..];
        }
        out
    }

    async fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Reply {
        send(addr, "GET", path, extra, "").await
    }

    async fn put_faults(addr: SocketAddr, json: &str) -> Reply {
        send(
            addr,
            "PUT",
            "/_control/faults",
            &[("Content-Type", "application/json")],
            json,
        )
        .await
    }

    #[tokio::test]
    async fn serves_files_with_ranges_and_validators() {
        let o = start(Faults::default()).await;
        let full = get(o.addr, "/data.bin?sig=1", &[]).await;
        assert_eq!(full.status, 200);
        assert_eq!(full.body, o.data);
        assert_eq!(full.headers["content-length"], "1000");
        assert_eq!(full.headers["accept-ranges"], "bytes");
        assert_eq!(full.headers["content-type"], "application/octet-stream");
        assert!(full.headers.contains_key("last-modified"));
        let etag = full.headers["etag"].clone();
        assert!(etag.starts_with('"') && etag.ends_with('"'));

        let part = get(o.addr, "/data.bin", &[("Range", "bytes=10-19")]).await;
        assert_eq!(part.status, 206);
        assert_eq!(part.headers["content-range"], "bytes 10-19/1000");
        assert_eq!(part.body, &o.data[10..20]);

        let suffix = get(o.addr, "/data.bin", &[("Range", "bytes=-5")]).await;
        assert_eq!((suffix.status, suffix.body.as_slice()), (206, &o.data[995..]));

        let past = get(o.addr, "/data.bin", &[("Range", "bytes=1000-")]).await;
        assert_eq!(past.status, 416);
        assert_eq!(past.headers["content-range"], "bytes */1000");

        let same = get(o.addr, "/data.bin", &[("Range", "bytes=0-0"), ("If-Range", &etag)]).await;
        assert_eq!((same.status, same.body.len()), (206, 1));
        let stale = get(o.addr, "/data.bin", &[("Range", "bytes=0-0"), ("If-Range", "\"old\"")]).await;
        assert_eq!((stale.status, stale.body.len()), (200, 1000));
        let cached = get(o.addr, "/data.bin", &[("If-None-Match", &etag)]).await;
        assert_eq!((cached.status, cached.body.len()), (304, 0));

        let head = send(o.addr, "HEAD", "/data.bin", &[("Range", "bytes=0-99")], "").await;
        assert_eq!(head.status, 206);
        assert_eq!(head.headers["content-length"], "100");
        assert!(head.body.is_empty());

        assert_eq!(get(o.addr, "/missing.bin", &[]).await.status, 404);
        assert_eq!(get(o.addr, "/../data.bin", &[]).await.status, 404);
        assert_eq!(send(o.addr, "POST", "/data.bin", &[], "").await.status, 405);

        // Rewriting the file changes the ETag.
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::fs::write(o._dir.path().join("data.bin"), b"new bytes").expect("rewrite");
        let rewritten = get(o.addr, "/data.bin", &[]).await;
        assert_ne!(rewritten.headers["etag"], etag);
        assert_eq!(rewritten.body, b"new bytes");
    }

    #[tokio::test]
    async fn faults_fail_drop_and_reshape_responses() {
        let o = start(Faults {
            fail_first: 1,
            drop_after: Some(100),
            drop_times: 1,
            ..Faults::default()
        })
        .await;
        assert_eq!(get(o.addr, "/data.bin", &[]).await.status, 503);
        let cut = get(o.addr, "/data.bin", &[]).await;
        assert_eq!((cut.status, cut.headers["content-length"].as_str()), (200, "1000"));
        assert_eq!(cut.body, &o.data[..100]);
        let short = get(o.addr, "/data.bin", &[("Range", "bytes=0-9")]).await;
        assert_eq!(short.body, &o.data[..10], "short bodies are not cut and cost no drop");
        assert_eq!(get(o.addr, "/data.bin", &[]).await.body, o.data);

        o.origin.set_faults(Faults {
            no_content_length: true,
            changing_etag: true,
            ..Faults::default()
        });
        let first = get(o.addr, "/data.bin", &[("Range", "bytes=0-9")]).await;
        assert_eq!(first.status, 200);
        assert_eq!(
            first.headers.get("transfer-encoding").map(String::as_str),
            Some("chunked")
        );
        assert!(!first.headers.contains_key("content-length"));
        assert!(!first.headers.contains_key("accept-ranges"));
        assert_eq!(first.body, o.data);
        let second = get(o.addr, "/data.bin", &[]).await;
        assert_ne!(first.headers["etag"], second.headers["etag"]);

        o.origin.set_faults(Faults {
            ignore_range: true,
            require_auth: Some("Bearer s3cret".into()),
            ..Faults::default()
        });
        let denied = get(o.addr, "/data.bin", &[("Authorization", "Bearer wrong")]).await;
        assert_eq!(denied.status, 401);
        assert!(denied.headers.contains_key("www-authenticate"));
        let allowed = get(
            o.addr,
            "/data.bin",
            &[("Authorization", "Bearer s3cret"), ("Range", "bytes=0-9")],
        )
        .await;
        assert_eq!((allowed.status, allowed.body.len()), (200, 1000));
    }

    #[tokio::test]
    async fn throttled_bodies_take_their_time() {
        let o = start(Faults {
            throttle_bps: Some(4_000),
            ..Faults::default()
        })
        .await;
        let started = std::time::Instant::now();
        let reply = get(o.addr, "/data.bin", &[]).await;
        let elapsed = started.elapsed();
        assert_eq!(reply.body, o.data);
        // 1000 bytes at 4000 B/s in 200-byte chunks: the last chunk leaves after 0.2 s.
        assert!(elapsed >= Duration::from_millis(180), "took {elapsed:?}");
    }

    #[tokio::test]
    async fn control_api_reports_and_replaces() {
        let o = start(Faults::default()).await;
        let faults: Faults =
            serde_json::from_slice(&get(o.addr, "/_control/faults", &[]).await.body).expect("faults JSON");
        assert_eq!(faults, Faults::default());
        assert_eq!(put_faults(o.addr, "{\"fail_first\": 1}").await.status, 204);
        assert_eq!(o.origin.faults().fail_first, 1);
        let bad = put_faults(o.addr, "{\"fail_frist\": 1}").await;
        assert_eq!(bad.status, 400);
        assert!(String::from_utf8_lossy(&bad.body).contains("\"error\""));
        assert_eq!(put_faults(o.addr, "{}").await.status, 204);

        get(
            o.addr,
            "/data.bin?x=1",
            &[("Range", "bytes=0-"), ("Authorization", "secret")],
        )
        .await;
        get(o.addr, "/missing", &[]).await;
        let log: serde_json::Value =
            serde_json::from_slice(&get(o.addr, "/_control/log", &[]).await.body).expect("log JSON");
        assert_eq!(
            log,
            serde_json::json!([
                {"method": "GET", "path": "/data.bin?x=1", "range": "bytes=0-", "if_range": null,
                 "status": 206, "authorization": true, "body_bytes": 1000, "complete": true},
                {"method": "GET", "path": "/missing", "range": null, "if_range": null,
                 "status": 404, "authorization": false, "body_bytes": 10, "complete": true},
            ])
        );
        assert_eq!(send(o.addr, "DELETE", "/_control/log", &[], "").await.status, 204);
        let log = get(o.addr, "/_control/log", &[]).await;
        assert_eq!(log.body, b"[]");
        assert_eq!(send(o.addr, "POST", "/_control/log", &[], "").await.status, 405);
        assert_eq!(get(o.addr, "/_control/nope", &[]).await.status, 404);
    }
}
