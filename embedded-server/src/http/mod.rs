//! The HTTP layer: the token check first, then routing to media or API handlers.
//!
//! Every route but `/healthz` lives under `/TOKEN/`; a wrong or missing token gets a bare `403`
//! that reveals nothing (compared in constant time). Paths are checked for dot segments before
//! anything else looks at them, so no request can walk out of its namespace.
//!
//! # Layout
//! - `route`: the [`Route`] a path names, parsed once for dispatch, logs and metrics
//! - `range`: the Range/If-Range headers parsed once, and the pure decision on them
//! - `response`: the one place that builds responses
//! - `media`: serving `/stream/...` and `/tracks/ID` through the cache
//! - `api`: the JSON control API (and `/metrics`)
//! - `dashboard`: the debugging page at `/TOKEN/`
//! - `oneshot_tests` (tests): the handler driven in-process, without sockets
//!
//! # Tracing
//! Each request runs in an `info` span `request{id, method, route, range, status, bytes,
//! duration_ms}`. The span never holds the path (it carries the token and, for `/stream/`, a
//! signed query), nor a header value: `route` is a fixed label such as `tracks/:id`
//! ([`Route::label`]), and `range` is the `Range` header only when it is a plain `bytes=` spec
//! ([`RangeRequest::loggable`]). `status` is recorded when the
//! head is ready; `bytes` and `duration_ms` then too, except for a streamed media body, whose
//! producer records them when it ends. So the first event (the head, `debug`) and the last (the
//! body's end, `debug`) of a request carry everything; 5xx heads are logged at `info`.

mod api;
mod dashboard;
mod media;
#[cfg(test)]
mod oneshot_tests;
pub(crate) mod range;
pub(crate) mod response;
mod route;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use tracing::field::Empty;
use tracing::Instrument;

use crate::error::Error;
use crate::shared::{Inner, MediaTarget};
use media::MediaRequest;
use range::RangeRequest;
use response::Body;
use route::Route;

/// A request's body as the handlers take it: hyper's for a connection, any other (a test's
/// `Full`) boxed the same way, its errors as `io::Error`s.
pub(crate) type RequestBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// Process-wide request numbers for the `request` span's `id` (1, 2, ...).
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Answers one request, counting it by route and status (and its time to first byte), inside its
/// `request` span (see "Tracing" above).
pub(crate) async fn handle(inner: Arc<Inner>, req: Request<RequestBody>) -> Response<Body> {
    let arrived = Instant::now();
    // The route borrows from the path while `req` moves on to its handler.
    let uri = req.uri().clone();
    let route = Route::parse(uri.path(), inner.token());
    let range = RangeRequest::from_headers(req.headers());
    let span = tracing::info_span!(
        "request",
        id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed),
        method = %req.method(),
        route = route.label(),
        range = range.loggable(),
        status = Empty,
        bytes = Empty,
        duration_ms = Empty,
    );
    let counters = inner.counters().clone();
    let response = dispatch(inner, req, route, range, arrived)
        .instrument(span.clone())
        .await;
    let status = response.status();
    counters.count_request(route.family(), status);
    let head_ms = millis(arrived);
    span.record("status", status.as_u16());
    let first = response.extensions().get::<media::FirstByte>().copied();
    if let Some(first) = first {
        counters.observe_first_byte(arrived.elapsed(), first.seek);
    }
    // A producer records `bytes` and `duration_ms` itself when a streamed body ends.
    if !first.is_some_and(|f| f.streamed) {
        span.record("bytes", response.body().size_hint().exact().unwrap_or(0));
        span.record("duration_ms", head_ms);
    }
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::info!(head_ms, "response head");
        } else {
            tracing::debug!(head_ms, "response head");
        }
    });
    response
}

/// Whole milliseconds since `t`, for logs.
pub(crate) fn millis(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Routes one request.
async fn dispatch(
    inner: Arc<Inner>,
    req: Request<RequestBody>,
    route: Route<'_>,
    range: RangeRequest,
    arrived: Instant,
) -> Response<Body> {
    if route.has_dot_segment() {
        return response::error(
            StatusCode::BAD_REQUEST,
            "dot segments (. or ..) are not allowed in paths",
        );
    }
    match route {
        Route::Healthz => response::text(StatusCode::OK, "ok"),
        Route::Forbidden => response::error(StatusCode::FORBIDDEN, "forbidden"),
        Route::Stream(rest) => {
            let target = stream_target(&inner, rest, req.uri().query());
            media_route(&inner, req, target, range, arrived).await
        }
        Route::Track(id) => {
            let target = inner.track_target(id);
            media_route(&inner, req, target, range, arrived).await
        }
        Route::ApiTracks => api::tracks(&inner, req, None).await,
        Route::ApiTrack(id) => api::tracks(&inner, req, Some(id)).await,
        Route::ApiStats => api::stats(&inner, req.method()),
        Route::ApiDownloads => api::downloads(&inner, req, None, None).await,
        Route::ApiDownload(id) => api::downloads(&inner, req, Some(id), None).await,
        Route::ApiDownloadAction(id, action) => api::downloads(&inner, req, Some(id), Some(action)).await,
        Route::ApiNetwork => api::network(&inner, req).await,
        Route::ApiPrefetch => api::prefetch(&inner, req).await,
        Route::ApiResources => api::resources(&inner, req.method()).await,
        Route::ApiCache => api::cache(&inner, req).await,
        Route::ApiCached => api::cached(&inner, &req),
        Route::Metrics => api::metrics(&inner, req.method()),
        Route::Dashboard => dashboard::page(req.method(), req.uri().path()),
        Route::NotFound(rest) => response::error(StatusCode::NOT_FOUND, format!("no such route: /{rest}")),
    }
}

/// A media route: GET or HEAD of a resolved target.
async fn media_route(
    inner: &Arc<Inner>,
    req: Request<RequestBody>,
    target: Result<MediaTarget, Error>,
    range: RangeRequest,
    arrived: Instant,
) -> Response<Body> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return api::method_not_allowed("GET, HEAD"),
    };
    let target = match target {
        Ok(t) => t,
        Err(e) => return api::error(&e),
    };
    let request = MediaRequest {
        key: target.key,
        url: target.url,
        track_id: target.track_id,
        catalog_mime: target.mime,
        head,
        range,
        arrived,
    };
    media::serve(inner, request).await
}

/// Resolves `stream/SCHEME/HOST[:PORT]/PATH` (+ query) to a remote URL on the allow-list.
fn stream_target(inner: &Inner, rest: &str, query: Option<&str>) -> Result<MediaTarget, Error> {
    // The route form is defined next to the playlist rewriter that writes it.
    let text = crate::hls::route_remote(rest, query)?;
    let url = inner.fetcher().check_origin(&text)?;
    Ok(MediaTarget {
        key: url.to_string(),
        url,
        track_id: None,
        mime: None,
    })
}
