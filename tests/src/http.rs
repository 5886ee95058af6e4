//! One-shot HTTP requests that return a whole [`Resp`]: ureq in-process (no connection reuse,
//! bounded timeouts, no redirects) and curl for what ureq would normalise away (`--path-as-is`).
//! A body that breaks off part-way is recorded with the bytes that did arrive, not hidden.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::programs::require_tool;

/// A response as seen by a client: status, headers (names lower-cased, in order), body, and
/// whether reading the body failed part-way (aborted connection, short body, curl error).
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Header names (lower-case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes received (possibly partial when `body_error` is set).
    pub body: Vec<u8>,
    /// Why the body could not be read completely, if it could not.
    pub body_error: Option<String>,
}

impl Resp {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The `Content-Length` header as a number.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("bad Content-Length {v:?}")))
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("expected a JSON body ({e}), status {}: {:?}", self.status, self.text()))
    }

    /// Asserts the body was read completely and matches its `Content-Length` (when present).
    #[track_caller]
    pub fn assert_complete(&self, what: &str) {
        assert!(
            self.body_error.is_none(),
            "{what}: body read failed after {} bytes: {:?}",
            self.body.len(),
            self.body_error
        );
        if let Some(len) = self.content_length() {
            assert_eq!(
                len,
                self.body.len() as u64,
                "{what}: Content-Length differs from the body received"
            );
        }
    }

    /// Asserts a 4xx/5xx response of `status` with a JSON body holding a string `error`.
    #[track_caller]
    pub fn assert_json_error(&self, what: &str, status: u16) {
        assert_eq!(
            self.status,
            status,
            "{what}: status (headers {:?}, body {:?}, body error {:?})",
            self.headers,
            self.text().chars().take(300).collect::<String>(),
            self.body_error
        );
        let v: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {:?}", self.text()));
        let msg = v.get("error").and_then(Value::as_str);
        assert!(
            msg.is_some_and(|m| !m.is_empty()),
            "{what}: error body lacks a non-empty string `error`: {v}"
        );
    }
}

/// A ureq agent without connection reuse (each request is its own connection, so what the server
/// does on one connection cannot leak into the next), bounded timeouts, and no redirects.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(30))
        .timeout_write(Duration::from_secs(10))
        .redirects(0)
        .max_idle_connections(0)
        .build()
}

/// Status and headers of a ureq response, every value of a repeated header in order.
pub(crate) fn ureq_head(resp: &ureq::Response) -> Head {
    let names = resp.headers_names();
    let mut headers = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n.clone()) {
            continue;
        }
        for v in resp.all(&n) {
            headers.push((n.clone(), v.to_string()));
        }
    }
    (resp.status(), headers)
}

/// Sends a request with ureq; `Err` only for transport errors before a response head arrived.
/// Body read errors are recorded in [`Resp::body_error`] with the partial body.
pub fn try_http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Result<Resp, String> {
    let mut req = agent().request(method, url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    let result = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{method} {url}: {e}")),
    };
    let (status, headers) = ureq_head(&resp);
    let mut body = Vec::new();
    let body_error = resp.into_reader().read_to_end(&mut body).err().map(|e| e.to_string());
    Ok(Resp {
        status,
        headers,
        body,
        body_error,
    })
}

/// Sends a request with ureq; panics on transport errors before the response head.
#[track_caller]
pub fn http(method: &str, url: &str, headers: &[(&str, &str)]) -> Resp {
    try_http(method, url, headers, None).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends a request with a string body with ureq; panics on transport errors.
#[track_caller]
pub fn http_with_body(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    try_http(method, url, headers, Some(body)).unwrap_or_else(|e| panic!("{e}"))
}

/// `GET url` with ureq.
#[track_caller]
pub fn get(url: &str) -> Resp {
    http("GET", url, &[])
}

/// `GET url` with `Range: range` with ureq.
#[track_caller]
pub fn get_range(url: &str, range: &str) -> Resp {
    http("GET", url, &[("Range", range)])
}

/// Runs curl against `url` (with `--path-as-is`, no proxy, HTTP/1.1) plus `args` (e.g. `-X`,
/// `-H`), capturing status, headers (`-D` file) and body (`-o` file). A non-zero curl exit is
/// recorded in [`Resp::body_error`].
pub fn curl(args: &[&str], url: &str) -> Resp {
    let curl = require_tool("curl");
    let dir = tempfile::tempdir().expect("curl tempdir");
    let hdr = dir.path().join("headers");
    let body = dir.path().join("body");
    let out = Command::new(curl)
        .args(["-sS", "--http1.1", "--path-as-is", "--noproxy", "*", "--max-time", "60"])
        .arg("-D")
        .arg(&hdr)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    let raw = std::fs::read_to_string(&hdr).unwrap_or_default();
    // With several header blocks (1xx, redirects) the last one is the final response.
    let block = raw
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    let mut lines = block.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .or_else(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body_error = (!out.status.success()).then(|| {
        format!(
            "curl exited with {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    });
    Resp {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
        body_error,
    }
}

/// A response head: status and headers (lower-case names, in order).
pub type Head = (u16, Vec<(String, String)>);
