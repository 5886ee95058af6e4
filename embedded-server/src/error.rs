//! Errors: one public enum for callers, with upstream failures kept apart because they carry
//! which side failed and whether a retry can help.
//!
//! The mapping to an HTTP status lives here, in one function, so the HTTP layer and the JNI layer
//! (which turns the same enum into a Kotlin exception) agree on what each failure means.
//!
//! Two tiers: [`Error`] says what a caller can act on (fix the configuration, free space, retry
//! later); [`ConfigError`] and [`StorageError`] behind it say what exactly failed and keep the
//! underlying `io::Error`, SQLite error or task failure as their
//! [`source`](std::error::Error::source), for logs and bug reports. Their messages already name
//! the cause, as they did when it was flattened into a string.

use std::fmt;
use std::io;
use std::sync::Arc;

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
    Unreachable(#[source] UpstreamCause),
    /// The backend did not answer or stopped sending within the timeout.
    #[error("the backend timed out")]
    Timeout,
    /// The backend's answer broke the protocol (bad Content-Range, body cut short, the connection
    /// broken mid-answer, ...).
    #[error("bad answer from the backend: {0}")]
    Protocol(#[source] UpstreamCause),
    /// A redirect pointed at an origin that is not on the allowed list.
    #[error("the backend redirected to an origin that is not allowed: {0}")]
    RedirectNotAllowed(String),
}

impl UpstreamError {
    /// A protocol violation that no underlying error explains (a missing header, a short body).
    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol(UpstreamCause::text(message))
    }

    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::Timeout | Self::Protocol(_) => true,
            Self::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            Self::NotFound(_) | Self::Denied(_) | Self::RedirectNotAllowed(_) => false,
        }
    }

    /// The backend's HTTP status, when it answered with one (not when it was unreachable, timed
    /// out, broke the protocol or redirected off the allowed origins).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::NotFound(s) | Self::Denied(s) | Self::Status(s) => Some(*s),
            Self::Unreachable(_) | Self::Timeout | Self::Protocol(_) | Self::RedirectNotAllowed(_) => None,
        }
    }
}

/// Why talking to the backend failed: the whole chain on one line, and the client's error itself,
/// when there is one, as the [`source`](std::error::Error::source). Cheap to clone (the source is
/// shared); two are equal when their messages are.
#[derive(Debug, Clone)]
pub struct UpstreamCause {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl UpstreamCause {
    /// `source`, described by `message` (which names the source's own message).
    pub(crate) fn new(message: String, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message,
            source: Some(Arc::new(source)),
        }
    }

    /// A cause with no underlying error.
    pub(crate) fn text(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }
}

impl PartialEq for UpstreamCause {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for UpstreamCause {}

impl fmt::Display for UpstreamCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// By hand: derived, the source would be the `Arc`, whose own `source()` skips the error inside.
impl std::error::Error for UpstreamCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// The library's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (bad origin, unreadable CA file, non-loopback listener...).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// An argument was malformed (bad JSON, bad ID, bad URL).
    #[error("{0}")]
    InvalidArgument(#[source] ArgumentError),
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
    Storage(#[from] StorageError),
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

impl Error {
    /// A configuration error with no underlying error.
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Config(ConfigError(Described::text(message)))
    }

    /// A configuration error caused by `source`: the message is `"{context}: {source}"`.
    pub(crate) fn config_caused(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Config(ConfigError(Described::caused(context, source)))
    }

    /// A malformed argument with no underlying error.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(ArgumentError(Described::text(message)))
    }

    /// A malformed argument that `source` (a parser's error) explains: the message is
    /// `"{context}: {source}"`.
    pub(crate) fn invalid_caused(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::InvalidArgument(ArgumentError(Described::caused(context, source)))
    }

    /// A storage error with no underlying error: the cache's files or index are not in a state
    /// this build can use.
    pub(crate) fn storage(message: impl Into<String>) -> Self {
        Self::Storage(StorageError::new(StorageFault::State(message.into())))
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        // No space or over quota (ENOSPC, EDQUOT): the one storage failure the app can act on.
        if matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) {
            Self::NoSpace
        } else {
            Self::Storage(StorageError::io(e))
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => Self::NoSpace,
            _ => Self::Storage(StorageError::new(StorageFault::Index(e))),
        }
    }
}

/// Why the configuration cannot work, in words a person can act on, with the error behind it
/// when there is one (the `io::Error` of a cache directory that cannot be created or a CA file
/// that cannot be read) as its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConfigError(Described);

/// Why an argument cannot be used (bad JSON, a bad URL or header, an ID that is too long), in
/// words a person can act on, with the parser's error behind it, when there is one, as its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ArgumentError(Described);

/// A message for a person and, when there is one, the error behind it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Described {
    /// What is wrong; names the source's message too, when there is a source.
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Described {
    fn text(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    fn caused(context: impl fmt::Display, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: format!("{context}: {source}"),
            source: Some(Box::new(source)),
        }
    }
}

/// What failed in the cache's files or index: for logs and bug reports, not for a decision (the
/// one storage failure an app can act on, a full disk, is [`Error::NoSpace`] instead). Its
/// [`source`](std::error::Error::source) leads to the `rusqlite::Error`, `io::Error` or
/// `tokio::task::JoinError` behind it, when there is one.
#[derive(Debug)]
pub struct StorageError(Box<StorageFault>);

/// The kinds of [`StorageError`]; private, so they can change without breaking callers.
#[derive(Debug, thiserror::Error)]
enum StorageFault {
    /// The SQLite index failed.
    #[error("index: {0}")]
    Index(#[source] rusqlite::Error),
    /// A data file or directory operation failed.
    #[error("{0}")]
    File(#[source] io::Error),
    /// A blocking background task (index or file work) panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The files or index are not in a state this build can use; no underlying error.
    #[error("{0}")]
    State(String),
    /// Another storage error, with what was being done when it happened.
    #[error("{context}: {inner}")]
    Context {
        context: String,
        #[source]
        inner: StorageError,
    },
}

impl StorageError {
    fn new(fault: StorageFault) -> Self {
        Self(Box::new(fault))
    }

    /// An operating-system call that failed (a file, a directory, the random source).
    pub(crate) fn io(e: io::Error) -> Self {
        Self::new(StorageFault::File(e))
    }

    /// A blocking task that did not finish (it panicked, or its runtime shut down).
    pub(crate) fn task(e: tokio::task::JoinError) -> Self {
        Self::new(StorageFault::Task(e))
    }

    /// This error, saying what was being done: its message becomes `"{context}: {self}"`.
    pub(crate) fn context(self, context: impl Into<String>) -> Self {
        Self::new(StorageFault::Context {
            context: context.into(),
            inner: self,
        })
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
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
        assert_eq!(
            Error::Upstream(UpstreamError::Unreachable(UpstreamCause::new(
                "x".into(),
                io::Error::other("x")
            )))
            .status(),
            502
        );
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
        assert_eq!(Error::from(io::Error::from(io::ErrorKind::StorageFull)).status(), 507);
        assert_eq!(Error::NoSpace.to_string(), "no space left on device");
    }

    #[test]
    fn sqlite_disk_full_becomes_no_space() {
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        let e = Error::from(full);
        assert!(matches!(e, Error::NoSpace));
        assert_eq!(e.status(), 507);
    }

    /// The chain of `e`'s sources, `e` excluded.
    fn sources(e: &dyn std::error::Error) -> Vec<&(dyn std::error::Error + 'static)> {
        std::iter::successors(e.source(), |s| s.source()).collect()
    }

    /// The kind of the first `io::Error` among `e`'s sources.
    fn io_kind(e: &dyn std::error::Error) -> Option<io::ErrorKind> {
        sources(e)
            .into_iter()
            .find_map(|s| s.downcast_ref::<io::Error>())
            .map(io::Error::kind)
    }

    #[test]
    fn storage_errors_keep_the_io_error() {
        let e = Error::from(io::Error::new(io::ErrorKind::PermissionDenied, "denied here"));
        assert_eq!(e.to_string(), "cache storage failed: denied here");
        assert_eq!(e.status(), 500);
        assert_eq!(io_kind(&e), Some(io::ErrorKind::PermissionDenied));
    }

    #[test]
    fn storage_errors_keep_the_sqlite_error() {
        // SQLite cannot open a directory as a database.
        let dir = tempfile::tempdir().unwrap();
        let e = Error::from(rusqlite::Connection::open(dir.path()).unwrap_err());
        let sqlite = sources(&e)
            .into_iter()
            .find_map(|s| s.downcast_ref::<rusqlite::Error>());
        let Some(rusqlite::Error::SqliteFailure(failure, _)) = sqlite else {
            panic!("no SQLite error behind {e:?}");
        };
        assert_eq!(failure.code, rusqlite::ErrorCode::CannotOpen);
        assert_eq!(
            e.to_string(),
            format!("cache storage failed: index: {}", sqlite.unwrap())
        );
        assert_eq!(e.status(), 500);

        // With context, the chain still reaches it, and the message reads as before.
        let Error::Storage(inner) = e else { unreachable!() };
        let e = Error::Storage(inner.context("cannot upgrade"));
        assert!(
            e.to_string()
                .starts_with("cache storage failed: cannot upgrade: index: "),
            "{e}"
        );
        assert!(sources(&e).into_iter().any(|s| s.is::<rusqlite::Error>()));
    }

    #[test]
    fn unreachable_keeps_the_client_error() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
        let e = Error::from(UpstreamError::Unreachable(UpstreamCause::new(
            "client error (Connect): connection refused".into(),
            refused,
        )));
        assert_eq!(
            e.to_string(),
            "the backend is unreachable: client error (Connect): connection refused"
        );
        assert_eq!(e.status(), 502);
        assert_eq!(io_kind(&e), Some(io::ErrorKind::ConnectionRefused));
        // Clones share the source; equality is by message.
        let Error::Upstream(upstream) = e else { unreachable!() };
        assert_eq!(upstream.clone(), upstream);
        assert!(upstream.is_retryable());
        assert_eq!(upstream.status(), None);
        assert_eq!(UpstreamError::NotFound(410).status(), Some(410));
        assert_eq!(UpstreamError::Denied(403).status(), Some(403));
        assert_eq!(UpstreamError::Status(503).status(), Some(503));
        assert_eq!(UpstreamError::Timeout.status(), None);
    }

    #[tokio::test]
    async fn storage_errors_keep_a_failed_task() {
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        let join = task.await.unwrap_err();
        let e = Error::Storage(StorageError::task(join));
        assert!(
            e.to_string()
                .starts_with("cache storage failed: background task failed: "),
            "{e}"
        );
        assert!(sources(&e).into_iter().any(|s| s.is::<tokio::task::JoinError>()));
    }

    #[test]
    fn storage_errors_without_a_cause_read_as_before() {
        let e = Error::storage("index: the totals row is missing");
        assert_eq!(e.to_string(), "cache storage failed: index: the totals row is missing");
        assert_eq!(sources(&e).len(), 1, "only the StorageError itself");
    }

    #[test]
    fn config_errors_keep_the_io_error() {
        let e = Error::config_caused(
            "cannot create cache directory /x",
            io::Error::new(io::ErrorKind::PermissionDenied, "Permission denied"),
        );
        assert_eq!(
            e.to_string(),
            "invalid configuration: cannot create cache directory /x: Permission denied"
        );
        assert_eq!(e.status(), 400);
        assert_eq!(io_kind(&e), Some(io::ErrorKind::PermissionDenied));

        let e = Error::config("cache_dir must not be empty");
        assert_eq!(e.to_string(), "invalid configuration: cache_dir must not be empty");
        assert_eq!(sources(&e).len(), 1, "only the ConfigError itself");
    }
}
