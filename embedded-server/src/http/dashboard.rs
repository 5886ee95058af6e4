//! The debugging dashboard at `/TOKEN/`: one self-contained HTML page compiled into the binary.
//!
//! The page (`dashboard.html`) carries its CSS and JavaScript inline and loads nothing from
//! anywhere else; it polls the JSON API with relative URLs (`api/stats`, `api/resources`, ...), which
//! resolve under `/TOKEN/` because the page is served there. So the page itself never contains the
//! token, and it can only show what the API shows (never upstream headers). The
//! `Content-Security-Policy` enforces "nothing external" in the browser, and `no-referrer` keeps
//! the token-bearing URL from leaking to anything the page might link to.

use http::header::{CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY};
use http::{HeaderValue, Method, Response, StatusCode};

use super::api;
use super::response::{self, Body};

/// The page, inline CSS and JS included.
const PAGE: &str = include_str!("dashboard.html");

/// Same-origin only; inline style and script are the page's own.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; media-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

/// `GET /TOKEN/`: the page. `/TOKEN` without the slash is redirected to it, since relative URLs
/// would otherwise resolve outside the token.
pub(crate) fn page(method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return api::method_not_allowed("GET, HEAD");
    }
    if !path.ends_with('/') {
        let mut r = response::error(
            StatusCode::PERMANENT_REDIRECT,
            "the dashboard is at the path with a slash",
        );
        // The last segment is the token: `TOKEN/` relative to `/TOKEN` is `/TOKEN/`.
        let last = path.rsplit('/').next().unwrap_or("");
        if let Ok(v) = HeaderValue::from_str(&format!("{last}/")) {
            r.headers_mut().insert(LOCATION, v);
        }
        return r;
    }
    // hyper sends no body for HEAD, but keeps the GET's Content-Length.
    let mut r = response::typed("text/html; charset=utf-8", PAGE);
    let headers = r.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}
