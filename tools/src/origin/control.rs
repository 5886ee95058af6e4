//! The control API under `/_control/`, which is neither faulted nor logged itself:
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

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use tracing::debug;

use super::faults::{Faults, Switchboard};
use super::log::RequestLog;
use super::response::{empty, ResBody};

/// Requests under this prefix are the control API, not files.
pub(super) const CONTROL_PREFIX: &str = "/_control/";
/// Largest control API request body, in bytes.
const MAX_CONTROL_BODY: usize = 64 * 1024;

/// Answers one control request; `route` is the path after [`CONTROL_PREFIX`].
pub(super) async fn handle(
    route: &str,
    req: Request<Incoming>,
    switches: &Switchboard,
    log: &RequestLog,
) -> Response<ResBody> {
    debug!(method = %req.method(), route, "control request");
    let method = req.method().clone();
    match (route, method) {
        ("log", Method::GET) => json(StatusCode::OK, log),
        ("log", Method::DELETE) => {
            log.clear();
            no_content()
        }
        ("faults", Method::GET) => json(StatusCode::OK, &switches.get()),
        ("faults", Method::PUT) => {
            let body = match Limited::new(req.into_body(), MAX_CONTROL_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) => {
                    return json_error(StatusCode::BAD_REQUEST, &format!("cannot read the request body: {err}"))
                }
            };
            match serde_json::from_slice::<Faults>(&body) {
                Ok(faults) => {
                    switches.set(faults);
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
