//! Building responses: the one place that sets status, range and validator headers.
//!
//! Handlers decide *what* to send (a [`RangeOutcome`] over a [`Representation`]); this module
//! decides how that looks on the wire, so GET and HEAD, 200 and 206, never disagree.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use tokio::sync::mpsc;

use super::range::RangeOutcome;

/// The response body type of every route.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A body fed by a producer task through a bounded channel. An `Err` item aborts the response
/// (hyper closes the connection), which is how a transfer that cannot be completed is reported:
/// never by padding or cutting short a body under a `Content-Length`.
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
    remaining: Option<u64>,
}

impl ChannelBody {
    /// A body of `len` bytes (or unknown length) and the sender that produces it.
    pub(crate) fn new(len: Option<u64>) -> (mpsc::Sender<Result<Bytes, io::Error>>, Self) {
        let (tx, rx) = mpsc::channel(1);
        (tx, Self { rx, remaining: len })
    }
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => {
                if let Some(r) = self.remaining.as_mut() {
                    *r = r.saturating_sub(data.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// What the client is being sent a part of.
#[derive(Debug, Clone)]
pub(crate) struct Representation {
    /// Total length, if known.
    pub(crate) len: Option<u64>,
    /// Strong ETag (only meaningful with a known length).
    pub(crate) etag: String,
    /// `Last-Modified`, verbatim from the backend.
    pub(crate) last_modified: Option<String>,
    /// `Content-Type`.
    pub(crate) mime: String,
}

/// The byte span a media response carries: `(start, length)`, `None` length when unknown.
pub(crate) fn span(outcome: RangeOutcome, len: Option<u64>) -> (u64, Option<u64>) {
    match outcome {
        RangeOutcome::Partial { start, end } => (start, Some(end - start + 1)),
        RangeOutcome::Full | RangeOutcome::Unsatisfiable => (0, len),
    }
}

/// A media response head for `outcome` with the given body (empty for HEAD and 416).
pub(crate) fn media(rep: &Representation, outcome: RangeOutcome, body: Body) -> Response<Body> {
    let mut builder = Response::builder().header(CONTENT_TYPE, header_value(&rep.mime));
    if let Some(len) = rep.len {
        builder = builder
            .header(ACCEPT_RANGES, "bytes")
            .header(ETAG, header_value(&rep.etag));
        if let Some(lm) = &rep.last_modified {
            builder = builder.header(LAST_MODIFIED, header_value(lm));
        }
        builder = match outcome {
            RangeOutcome::Full => builder.status(StatusCode::OK).header(CONTENT_LENGTH, len),
            RangeOutcome::Partial { start, end } => builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .header(CONTENT_LENGTH, end - start + 1),
            RangeOutcome::Unsatisfiable => {
                return builder
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(CONTENT_RANGE, format!("bytes */{len}"))
                    .header(CONTENT_LENGTH, 0)
                    .body(empty())
                    .unwrap_or_else(|_| internal_error());
            }
        };
    } else {
        // Length unknown: 200, chunked, no validators to promise yet.
        builder = builder.status(StatusCode::OK).header(CACHE_CONTROL, "no-store");
    }
    builder.body(body).unwrap_or_else(|_| internal_error())
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json")
            .header(CACHE_CONTROL, "no-store")
            .body(full(bytes))
            .unwrap_or_else(|_| internal_error()),
        Err(_) => internal_error(),
    }
}

/// A JSON error `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(body))
        .unwrap_or_else(|_| internal_error())
}

/// A text response of the given `Content-Type`, never cached (metrics, the dashboard).
pub(crate) fn typed(content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, content_type)
        .header(CACHE_CONTROL, "no-store")
        .body(full(body))
        .unwrap_or_else(|_| internal_error())
}

/// An empty body.
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never: Infallible| match never {}).boxed_unsync()
}

/// A body of the given bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A streamed body.
pub(crate) fn streamed(body: ChannelBody) -> Body {
    body.boxed_unsync()
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

fn internal_error() -> Response<Body> {
    let mut r = Response::new(full(r#"{"error":"internal error building a response"}"#));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}
