//! File requests: which file a URL path names and what the request gets, decided as an
//! [`Outcome`] before any header is built.
//!
//! `GET`/`HEAD` of a file under the directory; the query string is ignored for the lookup. Checks
//! run in this order: `fail_first` (`503`, for any non-control request), `require_auth` (`401`),
//! method (`405`), path (`400` bad percent-encoding, `404` missing or escaping), then the
//! conditionals in RFC 9110 §13.2.2 order: `If-None-Match` (`304`), `If-Range` guarding `Range`
//! (`206`, `416`, or `200` when ignored). `HEAD` answers exactly the headers `GET` would, Range
//! included.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use tokio::fs::File;
use tracing::warn;

use super::faults::{Faults, Switchboard};
use super::range::{if_none_match_hits, if_range_matches, select_range, RangeOutcome};

/// What a file request gets, decided before any header is built.
pub(super) enum Outcome {
    /// A status without a file: `401`, `404`, `405`, `503`, … with a short text body.
    Error(StatusCode, &'static str),
    /// `If-None-Match` matched: `304` with the validators.
    NotModified(FileMeta),
    /// A `Range` that selects nothing: `416` with `Content-Range: bytes */LEN`.
    Unsatisfiable(FileMeta),
    /// The file, whole (`range: None`, `200`) or one inclusive byte range (`206`).
    File {
        meta: FileMeta,
        file: File,
        range: Option<(u64, u64)>,
    },
}

/// The representation metadata of a served file.
pub(super) struct FileMeta {
    /// Length in bytes.
    pub(super) len: u64,
    /// Strong entity tag, quotes included.
    pub(super) etag: String,
    /// `Last-Modified` as an IMF-fixdate, when the file system reports a modification time.
    pub(super) last_modified: Option<String>,
    pub(super) content_type: &'static str,
}

/// Decides what a file request gets. Order: injected `503`, authentication, method, path,
/// file, then the conditional headers in RFC 9110 §13.2.2 order (`If-None-Match`, then
/// `If-Range` guarding `Range`).
pub(super) async fn decide(
    dir: &Path,
    req: &Request<Incoming>,
    faults: &Faults,
    fail: bool,
    switches: &Switchboard,
) -> Outcome {
    if fail {
        return Outcome::Error(StatusCode::SERVICE_UNAVAILABLE, "origin fault: fail_first\n");
    }
    if let Some(expected) = &faults.require_auth {
        let given = req.headers().get(header::AUTHORIZATION);
        if given.is_none_or(|v| v.as_bytes() != expected.as_bytes()) {
            return Outcome::Error(StatusCode::UNAUTHORIZED, "authorization required\n");
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Outcome::Error(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    let resolved = match relative_path(req.uri().path()) {
        Ok(relative) => resolve(dir, &relative).await.map(|path| (relative, path)),
        Err(status) => Err(status),
    };
    let (relative, path) = match resolved {
        Ok(found) => found,
        Err(status) => return Outcome::Error(status, status_text(status)),
    };
    let file = match File::open(&path).await {
        Ok(file) => file,
        Err(err) => return Outcome::Error(io_status(&err), status_text(io_status(&err))),
    };
    let metadata = match file.metadata().await {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => return Outcome::Error(StatusCode::NOT_FOUND, "not found\n"),
        Err(err) => return Outcome::Error(io_status(&err), status_text(io_status(&err))),
    };
    let suffix = switches.etag_suffix(faults);
    let meta = FileMeta::new(&relative, &metadata, suffix);

    let headers = req.headers();
    if let Some(candidates) = header_str(headers, &header::IF_NONE_MATCH) {
        if if_none_match_hits(candidates, &meta.etag) {
            return Outcome::NotModified(meta);
        }
    }
    let range = if faults.ignore_range || faults.no_content_length {
        RangeOutcome::Full
    } else {
        match header_raw(headers, &header::RANGE) {
            None => RangeOutcome::Full,
            Some(range) => {
                let if_range_holds = header_raw(headers, &header::IF_RANGE).is_none_or(|v| {
                    v.to_str()
                        .is_ok_and(|v| if_range_matches(v, &meta.etag, meta.last_modified.as_deref()))
                });
                match range.to_str() {
                    Ok(range) if if_range_holds => select_range(range, meta.len),
                    // Opaque bytes are no range we can parse: ignore it.
                    _ => RangeOutcome::Full,
                }
            }
        }
    };
    match range {
        RangeOutcome::Full => Outcome::File {
            meta,
            file,
            range: None,
        },
        RangeOutcome::Partial { start, end } => Outcome::File {
            meta,
            file,
            range: Some((start, end)),
        },
        RangeOutcome::Unsatisfiable => Outcome::Unsatisfiable(meta),
    }
}

/// Finds the file a [`relative_path`] names under `dir`; after symlinks are resolved it must
/// still lie under `dir`.
async fn resolve(dir: &Path, relative: &Path) -> Result<PathBuf, StatusCode> {
    let root = tokio::fs::canonicalize(dir).await.map_err(|_| StatusCode::NOT_FOUND)?;
    let full = tokio::fs::canonicalize(root.join(relative))
        .await
        .map_err(|err| io_status(&err))?;
    if full.starts_with(&root) {
        Ok(full)
    } else {
        Err(StatusCode::NOT_FOUND)
    }
}

impl FileMeta {
    /// Validators from what the file system reports. The ETag combines size, modification time
    /// in nanoseconds and (on Unix) the inode, so rewriting or replacing a file changes it —
    /// unless a rewrite keeps the size within the file system's timestamp granularity.
    fn new(url_path: &Path, metadata: &std::fs::Metadata, suffix: Option<u64>) -> FileMeta {
        let len = metadata.len();
        let modified = metadata.modified().ok();
        let since_epoch = modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        let nanos = since_epoch.map_or(0, |d| d.as_nanos());
        let etag = match suffix {
            None => format!("\"{len:x}-{nanos:x}-{:x}\"", inode(metadata)),
            Some(n) => format!("\"{len:x}-{nanos:x}-{:x}-c{n}\"", inode(metadata)),
        };
        // httpdate cannot format times before 1970 or after 9999; such files get no date.
        let last_modified = modified
            .filter(|_| since_epoch.is_some_and(|d| d.as_secs() < 253_402_300_800))
            .map(httpdate::fmt_http_date);
        FileMeta {
            len,
            etag,
            last_modified,
            content_type: content_type(url_path),
        }
    }
}

#[cfg(unix)]
fn inode(metadata: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.ino()
}

#[cfg(not(unix))]
fn inode(_metadata: &std::fs::Metadata) -> u64 {
    0
}

/// The media types players are picky about, then mime_guess, then `application/octet-stream`.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("m4s") => "video/iso.segment",
        Some("wav") => "audio/wav",
        Some("m4a") => "audio/mp4",
        Some("aac") => "audio/aac",
        Some("mp3") => "audio/mpeg",
        _ => mime_guess::from_path(path)
            .first_raw()
            .unwrap_or("application/octet-stream"),
    }
}

/// The relative file path a URL path names: percent-decoded, empty and `.` segments skipped, and
/// anything that could leave the served directory (`..`, backslashes, NULs, non-normal
/// components) refused with `404`. Invalid percent-encoding or UTF-8 is a `400`.
fn relative_path(url_path: &str) -> Result<PathBuf, StatusCode> {
    let decoded = percent_encoding::percent_decode_str(url_path)
        .decode_utf8()
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(StatusCode::NOT_FOUND),
            // 255 bytes is the usual file-name limit; longer names cannot exist.
            s if s.contains(['\\', '\0']) || s.len() > 255 => return Err(StatusCode::NOT_FOUND),
            s => relative.push(s),
        }
    }
    let normal = relative.components().all(|c| matches!(c, Component::Normal(_)));
    if relative.as_os_str().is_empty() || !normal {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(relative)
}

/// The status a file-system error on the request path deserves.
fn io_status(err: &io::Error) -> StatusCode {
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StatusCode::NOT_FOUND,
        io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ => {
            warn!("file error: {err}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn status_text(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::NOT_FOUND => "not found\n",
        _ => "internal error\n",
    }
}

fn header_raw<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    headers.get(name)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_cannot_leave_the_directory() {
        assert_eq!(relative_path("/a/b.wav"), Ok(PathBuf::from("a/b.wav")));
        assert_eq!(relative_path("/a%20b.wav"), Ok(PathBuf::from("a b.wav")));
        assert_eq!(relative_path("//a/./b"), Ok(PathBuf::from("a/b")));
        assert_eq!(relative_path("/../etc/passwd"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/a/%2e%2e/%2e%2e/x"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/a/..%2fx"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/a%5c..%5cx"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/a%00"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/"), Err(StatusCode::NOT_FOUND));
        assert_eq!(relative_path("/%ff"), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn media_types_players_expect() {
        let cases = [
            ("a/index.m3u8", "application/vnd.apple.mpegurl"),
            ("seg1.ts", "video/mp2t"),
            ("seg1.M4S", "video/iso.segment"),
            ("song.wav", "audio/wav"),
            ("song.mp3", "audio/mpeg"),
            ("catalog.json", "application/json"),
            ("blob", "application/octet-stream"),
        ];
        for (path, expected) in cases {
            assert_eq!(content_type(Path::new(path)), expected, "{path}");
        }
    }
}
