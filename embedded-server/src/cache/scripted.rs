//! A scripted backend for in-process tests of the cache: an [`Upstream`] that answers from byte
//! vectors seeded per URL, the way an HTTP server with range support would (206 from the asked
//! byte with `Content-Range`, 416 past the end, 200 with the whole body when `If-Range` names
//! another version), and that can be told, request by request, to misbehave: break the body off,
//! stall on tokio's clock, answer an error status, switch to a new version, omit the length.
//! It records every request so that tests can assert what the cache asked for.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use crate::error::UpstreamError;
use crate::fetch::{Body, FetchRequest, FetchResponse, Upstream};

/// Body bytes per chunk (frame).
pub(super) const CHUNK: usize = 16 * 1024;

/// One version of a resource: its bytes and its strong ETag (quoted).
#[derive(Clone)]
struct Version {
    /// The whole resource.
    bytes: Bytes,
    /// Its ETag, quoted.
    etag: String,
}

/// How the backend answers one request; the default is a well-behaved answer.
#[derive(Clone, Default)]
pub(super) struct Answer {
    /// An error status instead of an answer (404, 503...).
    status: Option<u16>,
    /// Break the body off after this many bytes of it.
    break_after: Option<usize>,
    /// Wait this long (tokio's clock) before answering.
    stall_before_headers: Option<Duration>,
    /// Wait this long (tokio's clock) before every chunk but the first.
    stall_between_chunks: Option<Duration>,
    /// Send no `Content-Length` (and `*` as the complete length of a range).
    no_length: bool,
    /// Replace the resource by this version before answering.
    new_version: Option<Version>,
}

impl Answer {
    /// Answers with error status `status`.
    pub(super) fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }

    /// Breaks the body off after `n` of its bytes.
    pub(super) fn break_after(mut self, n: usize) -> Self {
        self.break_after = Some(n);
        self
    }

    /// Waits `d` before the answer's headers.
    pub(super) fn stall_before_headers(mut self, d: Duration) -> Self {
        self.stall_before_headers = Some(d);
        self
    }

    /// Waits `d` between body chunks.
    pub(super) fn stall_between_chunks(mut self, d: Duration) -> Self {
        self.stall_between_chunks = Some(d);
        self
    }

    /// Leaves the length out.
    pub(super) fn without_length(mut self) -> Self {
        self.no_length = true;
        self
    }

    /// Makes `bytes` with ETag `"etag"` the resource's new version before answering.
    pub(super) fn new_version(mut self, bytes: &[u8], etag: &str) -> Self {
        self.new_version = Some(version(bytes, etag));
        self
    }
}

/// One request as the backend saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    /// The URL asked for.
    pub(super) url: String,
    /// The first byte asked for (`Range: bytes=start-`).
    pub(super) start: u64,
    /// The `If-Range` validator sent, if any.
    pub(super) if_range: Option<String>,
}

impl Seen {
    /// The request for `url` from `start` with `If-Range: "etag"` (if given).
    pub(super) fn new(url: &str, start: u64, etag: Option<&str>) -> Self {
        Self {
            url: url.to_string(),
            start,
            if_range: etag.map(|e| format!("\"{e}\"")),
        }
    }
}

/// What the backend knows and has seen.
#[derive(Default)]
struct Script {
    /// The current version of each URL.
    versions: HashMap<String, Version>,
    /// Answers for the next requests of each URL, in order.
    queued: HashMap<String, VecDeque<Answer>>,
    /// The answer once a URL's queue is empty.
    default: Answer,
    /// Every request, in order.
    seen: Vec<Seen>,
}

/// The scripted backend.
pub(super) struct Scripted {
    /// What fills are told to wait for a chunk.
    read_timeout: Duration,
    /// The resources, the answers still to give, the requests seen.
    script: Mutex<Script>,
}

/// A version of `bytes` with ETag `"etag"`.
fn version(bytes: &[u8], etag: &str) -> Version {
    Version {
        bytes: Bytes::copy_from_slice(bytes),
        etag: format!("\"{etag}\""),
    }
}

impl Scripted {
    /// A backend that knows nothing (404 for everything) and whose fills time out after
    /// `read_timeout` without a chunk.
    pub(super) fn new(read_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            read_timeout,
            script: Mutex::new(Script::default()),
        })
    }

    /// Locks the script.
    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `bytes` with ETag `"etag"` at `url` from now on.
    pub(super) fn serve(&self, url: &str, bytes: &[u8], etag: &str) {
        self.script().versions.insert(url.to_string(), version(bytes, etag));
    }

    /// Answers the next request of `url` (after those queued before) with `answer`.
    pub(super) fn then(&self, url: &str, answer: Answer) {
        self.script()
            .queued
            .entry(url.to_string())
            .or_default()
            .push_back(answer);
    }

    /// Answers every request without a queued answer with `answer`.
    pub(super) fn otherwise(&self, answer: Answer) {
        self.script().default = answer;
    }

    /// Every request so far, in order.
    pub(super) fn seen(&self) -> Vec<Seen> {
        self.script().seen.clone()
    }

    /// Records `req` and decides its answer: the status line and headers, and the body's bytes
    /// with how to send them.
    fn answer(&self, req: &FetchRequest) -> (Answer, Result<(StatusCode, HeaderMap, Bytes), UpstreamError>) {
        let mut script = self.script();
        let url = req.url.to_string();
        script.seen.push(Seen {
            url: url.clone(),
            start: req.start,
            if_range: req.if_range.clone(),
        });
        let queued = script.queued.get_mut(&url).and_then(VecDeque::pop_front);
        let answer = queued.unwrap_or_else(|| script.default.clone());
        if let Some(new) = answer.new_version.clone() {
            script.versions.insert(url.clone(), new);
        }
        let decided = match (answer.status, script.versions.get(&url)) {
            (Some(status), _) => Err(status_error(status)),
            (None, None) => Err(UpstreamError::NotFound(404)),
            (None, Some(v)) => Ok(respond(v, req, answer.no_length)),
        };
        (answer, decided)
    }
}

/// The error the real client returns for a non-success `status`.
fn status_error(status: u16) -> UpstreamError {
    match status {
        404 | 410 => UpstreamError::NotFound(status),
        401 | 403 => UpstreamError::Denied(status),
        _ => UpstreamError::Status(status),
    }
}

/// How a server with range support answers `req` from version `v`.
fn respond(v: &Version, req: &FetchRequest, no_length: bool) -> (StatusCode, HeaderMap, Bytes) {
    let len = v.bytes.len() as u64;
    let mut headers = HeaderMap::new();
    let value = |s: String| HeaderValue::from_str(&s).expect("header value");
    headers.insert(ETAG, value(v.etag.clone()));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("audio/mpeg"));
    let whole = req.if_range.as_ref().is_some_and(|tag| *tag != v.etag);
    let total = if no_length { "*".to_string() } else { len.to_string() };
    let (status, body) = if whole {
        (StatusCode::OK, v.bytes.clone())
    } else if req.start >= len {
        headers.insert(CONTENT_RANGE, value(format!("bytes */{len}")));
        return (StatusCode::RANGE_NOT_SATISFIABLE, headers, Bytes::new());
    } else {
        let range = format!("bytes {}-{}/{total}", req.start, len - 1);
        headers.insert(CONTENT_RANGE, value(range));
        (StatusCode::PARTIAL_CONTENT, v.bytes.slice(req.start as usize..))
    };
    if !no_length {
        headers.insert(CONTENT_LENGTH, value(body.len().to_string()));
    }
    (status, headers, body)
}

/// The body `data` in chunks, broken off and stalled as `answer` says.
fn body(data: Bytes, answer: &Answer) -> Body {
    let cut = answer.break_after.map_or(data.len(), |n| n.min(data.len()));
    let broken = answer.break_after.is_some_and(|n| n < data.len());
    let stall = answer.stall_between_chunks;
    // The state is the bytes sent so far; `None` once the body has broken off.
    let frames = futures_util::stream::unfold(Some(0usize), move |sent| {
        let data = data.clone();
        async move {
            let sent = sent?;
            if sent >= cut {
                let error = UpstreamError::protocol("body: connection reset by the script");
                return broken.then_some((Err(error), None));
            }
            if let Some(d) = stall.filter(|_| sent > 0) {
                tokio::time::sleep(d).await;
            }
            let end = (sent + CHUNK).min(cut);
            Some((Ok(Frame::data(data.slice(sent..end))), Some(end)))
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

impl Upstream for Scripted {
    fn fetch(&self, req: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, UpstreamError>> {
        let (answer, decided) = self.answer(&req);
        Box::pin(async move {
            if let Some(d) = answer.stall_before_headers {
                tokio::time::sleep(d).await;
            }
            let (status, headers, data) = decided?;
            Ok(FetchResponse {
                status,
                headers,
                body: body(data, &answer),
                refreshed_url: None,
                final_url: req.url,
            })
        })
    }

    fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
}
