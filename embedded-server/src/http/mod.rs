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

mod api;
mod dashboard;
mod media;
pub(crate) mod range;
pub(crate) mod response;

use std::sync::Arc;
use std::time::Instant;

use http::header::{IF_RANGE, RANGE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use crate::engine::Inner;
use crate::error::Error;
use crate::telemetry::Route;
use media::MediaRequest;
use response::Body;

/// Answers one request, counting it by route and status (and its time to first byte).
pub(crate) async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let arrived = Instant::now();
    let route = Route::of(strip_token(req.uri().path(), &inner.token));
    let counters = inner.counters.clone();
    let response = dispatch(inner, req).await;
    counters.count_request(route, response.status());
    if let Some(first) = response.extensions().get::<media::FirstByte>() {
        counters.observe_first_byte(arrived.elapsed(), first.seek);
    }
    response
}

/// Routes one request.
async fn dispatch(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
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
            media_route(&inner, req, target).await
        }
        ["tracks", id] => {
            let target = inner.track_target(id);
            media_route(&inner, req, target).await
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
async fn media_route(inner: &Arc<Inner>, req: Request<Incoming>, target: Result<MediaTarget, Error>) -> Response<Body> {
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
    fn dot_segments_are_found_in_any_spelling() {
        assert!(has_dot_segment("stream/http/h/../etc"));
        assert!(has_dot_segment("stream/http/h/%2e%2E/etc"));
        assert!(has_dot_segment("stream/http/h/.%2e/etc"));
        assert!(has_dot_segment("./x"));
        assert!(!has_dot_segment("stream/http/h/a..b/.hidden"));
    }
}
