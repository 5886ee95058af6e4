//! The one place that turns a decided [`Outcome`] into status, headers and body: validators,
//! `Accept-Ranges`, `Content-Range`, `Content-Length` (or none, for `no_content_length`), HEAD
//! without a body, and the streamed file body with its deliberate cut, if a drop fault picks it.
//! Handlers decide; they don't assemble headers.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

use super::body;
use super::faults::{Faults, Switchboard};
use super::files::{FileMeta, Outcome};
use super::log::LogSlot;

/// The response body type of every route.
pub(super) type ResBody = BoxBody<Bytes, io::Error>;

/// Builds the response for `outcome`; a file body starts streaming, cut where a drop fault says.
pub(super) fn build_response(
    outcome: Outcome,
    head: bool,
    faults: &Faults,
    switches: &Arc<Switchboard>,
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
            validators(&meta, &mut headers);
            (StatusCode::NOT_MODIFIED, empty())
        }
        Outcome::Unsatisfiable(meta) => {
            validators(&meta, &mut headers);
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            insert(&mut headers, header::CONTENT_RANGE, &format!("bytes */{}", meta.len));
            (StatusCode::RANGE_NOT_SATISFIABLE, small_body("", head, &mut headers))
        }
        Outcome::File { meta, file, range } => {
            validators(&meta, &mut headers);
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
                let cut_at = switches.take_drop(len, faults);
                body::stream(Arc::clone(switches), file, start, len, cut_at, Arc::clone(slot)).boxed()
            };
            (status, body)
        }
    };
    // Streamed bodies account for themselves; the small fixed ones go out in one piece.
    if let Some(len) = body.size_hint().exact() {
        slot.body_progress(len, true);
    }
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `ETag` and, when known, `Last-Modified`.
fn validators(meta: &FileMeta, headers: &mut HeaderMap) {
    insert(headers, header::ETAG, &meta.etag);
    if let Some(date) = &meta.last_modified {
        insert(headers, header::LAST_MODIFIED, date);
    }
}

/// Inserts a header whose value we formatted ourselves (always valid; skipped if not).
fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

pub(super) fn empty() -> ResBody {
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
