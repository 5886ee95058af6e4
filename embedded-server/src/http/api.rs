//! The JSON control API: catalog tracks and statistics.
//!
//! Handlers parse and validate, make one call on the engine, and answer JSON; every failure is a
//! 4xx/5xx with `{"error": "..."}` that says what was wrong.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::response::{self, Body};
use crate::engine::{Inner, TrackSpec};
use crate::error::Error;

/// Largest JSON request body accepted.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// `/api/tracks` and `/api/tracks/ID`.
pub(crate) async fn tracks(inner: &Arc<Inner>, req: Request<Incoming>, id: Option<&str>) -> Response<Body> {
    match (req.method().clone(), id) {
        (Method::GET, None) => response::json(StatusCode::OK, &inner.tracks()),
        (Method::GET, Some(id)) => match inner.track(id) {
            Ok(info) => response::json(StatusCode::OK, &info),
            Err(e) => error(&e),
        },
        (Method::PUT, Some(id)) => {
            let spec: TrackSpec = match read_json(req).await {
                Ok(spec) => spec,
                Err(e) => return error(&e),
            };
            match inner.put_track(id, spec).await {
                Ok(info) => response::json(StatusCode::OK, &info),
                Err(e) => error(&e),
            }
        }
        (_, None) => method_not_allowed("GET"),
        (_, Some(_)) => method_not_allowed("GET, PUT"),
    }
}

/// `/api/stats`.
pub(crate) fn stats(inner: &Arc<Inner>, method: &Method) -> Response<Body> {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    response::json(StatusCode::OK, &inner.stats())
}

/// Reads a JSON body of at most `MAX_JSON_BYTES`.
async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Error> {
    let bytes = Limited::new(req.into_body(), MAX_JSON_BYTES)
        .collect()
        .await
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "cannot read the request body (at most {MAX_JSON_BYTES} bytes): {e}"
            ))
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Error::InvalidArgument(format!("bad JSON: {e}")))
}

/// An error as a JSON response with its status.
pub(crate) fn error(e: &Error) -> Response<Body> {
    response::error(e.status(), e.to_string())
}

/// `405` naming the allowed methods.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = response::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}"),
    );
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
}
