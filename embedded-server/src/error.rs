//! Errors: one public enum for callers, with upstream failures kept apart because they carry
//! which side failed and whether a retry can help.
//!
//! The mapping to an HTTP status lives here, in one function, so the HTTP layer and the JNI layer
//! (which turns the same enum into a Kotlin exception) agree on what each failure means.

use std::io;

use http::StatusCode;

/// What went wrong talking to the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The backend answered 404 or 410.
    #[error("the backend has no such resource (HTTP {0})")]
    NotFound(u16),
    /// The backend refused access (401/403), even after asking the resolver for fresh credentials.
    #[error("the backend refused access (HTTP {0})")]
    Denied(u16),
    /// The backend answered with an error status that retrying did not fix.
    #[error("the backend answered HTTP {0}")]
    Status(u16),
    /// No connection could be made (DNS, refused, TLS handshake).
    #[error("the backend is unreachable: {0}")]
    Unreachable(String),
    /// The backend did not answer or stopped sending within the timeout.
    #[error("the backend timed out")]
    Timeout,
    /// The backend's answer broke the protocol (bad Content-Range, body cut short, ...).
    #[error("bad answer from the backend: {0}")]
    Protocol(String),
    /// A redirect pointed at an origin that is not on the allowed list.
    #[error("the backend redirected to an origin that is not allowed: {0}")]
    RedirectNotAllowed(String),
}

impl UpstreamError {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::Timeout | Self::Protocol(_) => true,
            Self::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            Self::NotFound(_) | Self::Denied(_) | Self::RedirectNotAllowed(_) => false,
        }
    }
}

/// The library's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (bad origin, unreadable CA file, non-loopback listener...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An argument was malformed (bad JSON, bad ID, bad URL).
    #[error("{0}")]
    InvalidArgument(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The URL's origin is not on the allowed list.
    #[error("origin not allowed: {0}")]
    OriginNotAllowed(String),
    /// Fetching from the backend failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The device has no space left for cache data.
    #[error("no space left on device")]
    NoSpace,
    /// The cache's files or index failed.
    #[error("cache storage failed: {0}")]
    Storage(String),
    /// The server was stopped; this handle cannot be used any more.
    #[error("the server is stopped")]
    Stopped,
}

impl Error {
    /// The HTTP status that reports this error to a client.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Config(_) | Self::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::Upstream(UpstreamError::NotFound(_)) => StatusCode::NOT_FOUND,
            Self::Upstream(UpstreamError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        // No space or over quota (ENOSPC, EDQUOT): the one storage failure the app can act on.
        if matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) {
            Self::NoSpace
        } else {
            Self::Storage(e.to_string())
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => Self::NoSpace,
            _ => Self::Storage(format!("index: {e}")),
        }
    }
}

/// A wire name that does not parse: a [`DownloadState`](crate::DownloadState) or a
/// [`VariantChoice`](crate::VariantChoice) given as text (their `FromStr`). Its message names the
/// text and the forms that would have worked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {text:?}: expected {expected}")]
pub struct ParseError {
    /// What was being parsed (`download state`, `variant`).
    what: &'static str,
    /// The text given.
    text: String,
    /// The forms accepted, for a person to read.
    expected: &'static str,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, text: &str, expected: &'static str) -> Self {
        Self {
            what,
            text: text.to_owned(),
            expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(Error::Upstream(UpstreamError::NotFound(404)).status(), 404);
        assert_eq!(Error::Upstream(UpstreamError::Timeout).status(), 504);
        assert_eq!(Error::Upstream(UpstreamError::Unreachable("x".into())).status(), 502);
        assert_eq!(Error::OriginNotAllowed("x".into()).status(), 403);
    }

    #[test]
    fn enospc_becomes_no_space() {
        // What the OS returns on a full disk (ENOSPC is 28 on Linux and Android), and the kinds.
        let e: Error = io::Error::from_raw_os_error(28).into();
        assert!(matches!(e, Error::NoSpace));
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
            assert!(matches!(Error::from(io::Error::from(kind)), Error::NoSpace));
        }
        assert!(matches!(
            Error::from(io::Error::from(io::ErrorKind::PermissionDenied)),
            Error::Storage(_)
        ));
    }
}
