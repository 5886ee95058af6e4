//! The request log behind `GET /_control/log`: one [`LogSlot`] per file request, in order of
//! arrival, so tests can tell afterwards exactly what the origin was asked for and how much of
//! each body it handed over. Control requests are not logged.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::header::{self, HeaderMap, HeaderName};
use http::Request;
use hyper::body::Incoming;
use serde::{Serialize, Serializer};

/// Every file request since start or the last `DELETE /_control/log`, in order of arrival.
/// Serializes as the JSON array that `GET /_control/log` answers.
#[derive(Default)]
pub(super) struct RequestLog {
    slots: Mutex<Vec<Arc<LogSlot>>>,
}

/// One request-log entry. The request side is fixed at arrival; status and body progress are
/// filled in as the response goes out (atomics, so the body never takes the log lock).
pub(super) struct LogSlot {
    pub(super) method: String,
    /// Path and query as the client sent them (not decoded).
    pub(super) path: String,
    /// The `Range` header value, if any.
    pub(super) range: Option<String>,
    /// The `If-Range` header value, if any.
    if_range: Option<String>,
    /// Whether an `Authorization` header was present (its value is never kept).
    authorization: bool,
    /// Response status; 0 until a response has been decided.
    status: AtomicU16,
    /// Body bytes handed to the connection so far.
    body_bytes: AtomicU64,
    /// Whether the whole body was handed over.
    complete: AtomicBool,
}

/// The JSON shape of a [`LogSlot`] in `GET /_control/log`.
#[derive(Serialize)]
struct LogEntry<'a> {
    method: &'a str,
    path: &'a str,
    range: Option<&'a str>,
    if_range: Option<&'a str>,
    status: u16,
    authorization: bool,
    body_bytes: u64,
    complete: bool,
}

impl RequestLog {
    /// Adds a log entry for a file request and returns it for the response to fill in.
    pub(super) fn record(&self, req: &Request<Incoming>) -> Arc<LogSlot> {
        let headers = req.headers();
        let slot = Arc::new(LogSlot {
            method: req.method().as_str().to_owned(),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned()),
            range: header_lossy(headers, &header::RANGE),
            if_range: header_lossy(headers, &header::IF_RANGE),
            authorization: headers.contains_key(header::AUTHORIZATION),
            status: AtomicU16::new(0),
            body_bytes: AtomicU64::new(0),
            complete: AtomicBool::new(false),
        });
        self.slots().push(Arc::clone(&slot));
        slot
    }

    /// Forgets every entry.
    pub(super) fn clear(&self) {
        self.slots().clear();
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Arc<LogSlot>>> {
        // The guarded data stays consistent across a panic (plain pushes), so poisoning is moot.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Serialize for RequestLog {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.slots().iter().map(|slot| slot.entry()))
    }
}

impl LogSlot {
    /// Records the status once a response has been decided.
    pub(super) fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Records that `bytes` body bytes in all have been handed to the connection, and whether
    /// that is the whole body (a slot never goes back to incomplete).
    pub(super) fn body_progress(&self, bytes: u64, complete: bool) {
        self.body_bytes.store(bytes, Ordering::SeqCst);
        if complete {
            self.complete.store(true, Ordering::SeqCst);
        }
    }

    fn entry(&self) -> LogEntry<'_> {
        LogEntry {
            method: &self.method,
            path: &self.path,
            range: self.range.as_deref(),
            if_range: self.if_range.as_deref(),
            status: self.status.load(Ordering::SeqCst),
            authorization: self.authorization,
            body_bytes: self.body_bytes.load(Ordering::SeqCst),
            complete: self.complete.load(Ordering::SeqCst),
        }
    }
}

fn header_lossy(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}
