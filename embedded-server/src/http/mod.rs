//! The HTTP layer: the token check first, then routing to media or API handlers.
//!
//! Every route but `/healthz` lives under `/TOKEN/`; a wrong or missing token gets a bare `403`
//! that reveals nothing (compared in constant time). Paths are checked for dot segments before
//! anything else looks at them, so no request can walk out of its namespace.
//!
//! # Layout
//! - `range`: the pure Range/If-Range decision
//! - `response`: the one place that builds responses
//! - `media`: serving `/stream/...` and `/tracks/ID` through the cache
//! - `api`: the JSON control API (and `/metrics`)
//! - `dashboard`: the debugging page at `/TOKEN/`
//!
//! # Tracing
//! Each request runs in an `info` span `request{id, method, route, range, status, bytes,
//! duration_ms}`. The span never holds the path (it carries the token and, for `/stream/`, a
//! signed query), nor a header value: `route` is a fixed label such as `tracks/:id`, and `range`
//! is the `Range` header only when it is a plain `bytes=` spec. `status` is recorded when the
//! head is ready; `bytes` and `duration_ms` then too, except for a streamed media body, whose
//! producer records them when it ends. So the first event (the head, `debug`) and the last (the
//! body's end, `debug`) of a request carry everything; 5xx heads are logged at `info`.

mod api;
mod dashboard;
mod media;
pub(crate) mod range;
pub(crate) mod response;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::header::{IF_RANGE, RANGE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use subtle::ConstantTimeEq;
use tracing::field::Empty;
use tracing::Instrument;

use crate::engine::Inner;
use crate::error::Error;
use crate::telemetry::Route;
use media::MediaRequest;
use response::Body;

/// Process-wide request numbers for the `request` span's `id` (1, 2, ...).
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Answers one request, counting it by route and status (and its time to first byte), inside its
/// `request` span (see "Tracing" above).
pub(crate) async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let arrived = Instant::now();
    let rest = strip_token(req.uri().path(), &inner.token);
    let route = Route::of(rest);
    let span = tracing::info_span!(
        "request",
        id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed),
        method = %req.method(),
        route = route_label(req.uri().path(), rest),
        range = loggable_range(req.headers()),
        status = Empty,
        bytes = Empty,
        duration_ms = Empty,
    );
    let counters = inner.counters.clone();
    let response = dispatch(inner, req, arrived).instrument(span.clone()).await;
    let status = response.status();
    counters.count_request(route, status);
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

/// The route a request took, as a fixed label fit for logs: IDs, the token and remote URLs
/// (whose query strings may be signatures) never appear in it.
fn route_label(path: &str, rest: Option<&str>) -> &'static str {
    let Some(rest) = rest else {
        return if path == "/healthz" { "healthz" } else { "forbidden" };
    };
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["stream", ..] => "stream",
        ["tracks", _] => "tracks/:id",
        ["api", "tracks"] => "api/tracks",
        ["api", "tracks", _] => "api/tracks/:id",
        ["api", "stats"] => "api/stats",
        ["api", "downloads"] => "api/downloads",
        ["api", "downloads", _] => "api/downloads/:id",
        ["api", "downloads", _, _] => "api/downloads/:id/:action",
        ["api", "network"] => "api/network",
        ["api", "prefetch"] => "api/prefetch",
        ["api", "resources"] => "api/resources",
        ["metrics"] => "metrics",
        [""] => "dashboard",
        _ => "unknown",
    }
}

/// The `Range` header when it is a short, plain `bytes=` spec (digits, `-`, `,`, spaces); empty
/// otherwise, so no arbitrary header text reaches the logs.
fn loggable_range(headers: &HeaderMap) -> &str {
    let value = headers.get(RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let plain = value.len() <= 64
        && value
            .strip_prefix("bytes=")
            .is_some_and(|spec| spec.bytes().all(|b| b.is_ascii_digit() || b"-, ".contains(&b)));
    if plain {
        value
    } else {
        ""
    }
}

/// Routes one request.
async fn dispatch(inner: Arc<Inner>, req: Request<Incoming>, arrived: Instant) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return response::text(StatusCode::OK, "ok");
    }
    let Some(rest) = strip_token(&path, &inner.token) else {
        return response::error(StatusCode::FORBIDDEN, "forbidden");
    };
    if has_dot_segment(rest) {
        return response::error(
            StatusCode::BAD_REQUEST,
            "dot segments (. or ..) are not allowed in paths",
        );
    }
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["stream", ..] => {
            let target = stream_target(&inner, rest, req.uri().query());
            media_route(&inner, req, target, arrived).await
        }
        ["tracks", id] => {
            let target = inner.track_target(id);
            media_route(&inner, req, target, arrived).await
        }
        ["api", "tracks"] => api::tracks(&inner, req, None).await,
        ["api", "tracks", id] => {
            let id = id.to_string();
            api::tracks(&inner, req, Some(&id)).await
        }
        ["api", "stats"] => api::stats(&inner, req.method()),
        ["api", "downloads"] => api::downloads(&inner, req, None, None).await,
        ["api", "downloads", id] => {
            let id = id.to_string();
            api::downloads(&inner, req, Some(&id), None).await
        }
        ["api", "downloads", id, action] => {
            let (id, action) = (id.to_string(), action.to_string());
            api::downloads(&inner, req, Some(&id), Some(&action)).await
        }
        ["api", "network"] => api::network(&inner, req).await,
        ["api", "prefetch"] => api::prefetch(&inner, req).await,
        ["api", "resources"] => api::resources(&inner, req.method()),
        ["metrics"] => api::metrics(&inner, req.method()),
        [""] => dashboard::page(req.method(), &path),
        _ => response::error(StatusCode::NOT_FOUND, format!("no such route: /{rest}")),
    }
}

/// A media route: GET or HEAD of a resolved target.
async fn media_route(
    inner: &Arc<Inner>,
    req: Request<Incoming>,
    target: Result<MediaTarget, Error>,
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
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let request = MediaRequest {
        key: target.key,
        url: target.url,
        track_id: target.track_id,
        catalog_mime: target.mime,
        head,
        range: header(RANGE),
        if_range: header(IF_RANGE),
        arrived,
    };
    media::serve(inner, request).await
}

/// What a media route resolves to.
pub(crate) struct MediaTarget {
    pub(crate) key: String,
    pub(crate) url: url::Url,
    pub(crate) track_id: Option<String>,
    pub(crate) mime: Option<String>,
}

/// Resolves `stream/SCHEME/HOST[:PORT]/PATH` (+ query) to a remote URL on the allow-list.
fn stream_target(inner: &Inner, rest: &str, query: Option<&str>) -> Result<MediaTarget, Error> {
    // The route form is defined next to the playlist rewriter that writes it.
    let text = crate::hls::route_remote(rest, query)?;
    let url = inner.fetcher.check_origin(&text)?;
    Ok(MediaTarget {
        key: url.to_string(),
        url,
        track_id: None,
        mime: None,
    })
}

/// The part of `path` after `/TOKEN/`, if the token matches (constant time).
fn strip_token<'a>(path: &'a str, token: &str) -> Option<&'a str> {
    let rest = path.strip_prefix('/')?;
    let (given, rest) = rest.split_once('/').unwrap_or((rest, ""));
    bool::from(given.as_bytes().ct_eq(token.as_bytes())).then_some(rest)
}

/// Whether any segment is `.` or `..`, literally or percent-encoded.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_must_match_exactly() {
        assert_eq!(strip_token("/abc/stream/x", "abc"), Some("stream/x"));
        assert_eq!(strip_token("/abc", "abc"), Some(""));
        assert_eq!(strip_token("/abd/stream", "abc"), None);
        assert_eq!(strip_token("/ab/stream", "abc"), None);
        assert_eq!(strip_token("/abcd/stream", "abc"), None);
        assert_eq!(strip_token("/", "abc"), None);
    }

    #[test]
    fn route_labels_hold_no_ids_tokens_or_urls() {
        assert_eq!(
            route_label("/t/stream/https/h/a?sig=x", Some("stream/https/h/a")),
            "stream"
        );
        assert_eq!(route_label("/t/tracks/song", Some("tracks/song")), "tracks/:id");
        assert_eq!(
            route_label("/t/api/downloads/d1/pause", Some("api/downloads/d1/pause")),
            "api/downloads/:id/:action"
        );
        assert_eq!(route_label("/t/", Some("")), "dashboard");
        assert_eq!(route_label("/healthz", None), "healthz");
        assert_eq!(route_label("/wrong/tracks/x", None), "forbidden");
    }

    #[test]
    fn only_plain_byte_ranges_are_logged() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RANGE, http::HeaderValue::from_str(v).unwrap());
            loggable_range(&h).to_string()
        };
        assert_eq!(with("bytes=0-99"), "bytes=0-99");
        assert_eq!(with("bytes=-5, 7-"), "bytes=-5, 7-");
        assert_eq!(with("bytes=0-1;secret"), "");
        assert_eq!(with("items=0-1"), "");
        assert_eq!(loggable_range(&HeaderMap::new()), "");
    }

    #[test]
    fn dot_segments_are_found_in_any_spelling() {
        assert!(has_dot_segment("stream/http/h/../etc"));
        assert!(has_dot_segment("stream/http/h/%2e%2E/etc"));
        assert!(has_dot_segment("stream/http/h/.%2e/etc"));
        assert!(has_dot_segment("./x"));
        assert!(!has_dot_segment("stream/http/h/a..b/.hidden"));
    }
}
