//! The development origin as the tests see it: [`Origin`] runs `streamer origin` over a temporary
//! directory and speaks its control API (SPEC §4): the request log as [`LogEntry`] values and the
//! fault switches as [`Faults`].

use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tempfile::TempDir;

use crate::http::{http, http_with_body};
use crate::process::{parse_loopback_url, Proc};
use crate::programs::streamer_bin;

/// One request in the origin's log (`GET /_control/log`).
#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    /// HTTP method.
    pub method: String,
    /// Path including the query string.
    pub path: String,
    /// The request's `Range` header, if any.
    pub range: Option<String>,
    /// The request's `If-Range` header, if any.
    pub if_range: Option<String>,
    /// The response status.
    pub status: u16,
    /// Whether the request carried an `Authorization` header.
    pub authorization: bool,
    /// Body bytes sent so far.
    pub body_bytes: u64,
    /// Whether the response body was sent completely.
    pub complete: bool,
}

impl LogEntry {
    /// The first byte position of a `bytes=N-...` range header, if there is one.
    pub fn range_start(&self) -> Option<u64> {
        self.range.as_deref().and_then(range_start)
    }
}

/// `N` from `bytes=N-` / `bytes=N-M`; `None` for suffix ranges or anything else.
pub fn range_start(header: &str) -> Option<u64> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let (start, _) = spec.split_once('-')?;
    start.trim().parse().ok()
}

/// The origin's fault switches (`PUT /_control/faults`); `Default` means no faults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Bytes per second per response, or unthrottled.
    pub throttle_bps: Option<u64>,
    /// Bytes per second of one link shared by every connection's bodies, or no shared limit.
    pub shared_link_bps: Option<u64>,
    /// Cut a response's connection after this many body bytes.
    pub drop_after: Option<u64>,
    /// How many responses `drop_after` applies to.
    pub drop_times: u64,
    /// Answer the first K file requests with a 5xx.
    pub fail_first: u64,
    /// Ignore `Range` (always 200 full body).
    pub ignore_range: bool,
    /// Chunked bodies without `Content-Length` (Range ignored).
    pub no_content_length: bool,
    /// A new ETag on every response.
    pub changing_etag: bool,
    /// Required exact `Authorization` value.
    pub require_auth: Option<String>,
}

/// A running `streamer origin` serving the files of its own temporary directory.
pub struct Origin {
    proc: Proc,
    dir: TempDir,
    /// Base URL with a trailing slash, `http://127.0.0.1:PORT/`.
    pub url: String,
    /// The bound port.
    pub port: u16,
}

impl Origin {
    /// Starts an origin over a fresh empty directory with extra CLI `args` (fault switches).
    pub fn start(args: &[&str]) -> Origin {
        let dir = tempfile::tempdir().expect("origin tempdir");
        Origin::start_in(dir, args)
    }

    /// Starts an origin over `dir` with extra CLI `args`.
    pub fn start_in(dir: TempDir, args: &[&str]) -> Origin {
        Origin::start_program(&streamer_bin(), dir, args)
    }

    /// Like [`Origin::start_in`], running the `streamer` binary at `bin`.
    pub fn start_program(bin: &Path, dir: TempDir, args: &[&str]) -> Origin {
        let mut argv: Vec<String> = vec![
            "origin".into(),
            "--dir".into(),
            dir.path().display().to_string(),
            "--port".into(),
            "0".into(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let proc = Proc::spawn_program(bin, "streamer origin", &[], &argv, &[]);
        let (port, rest) = parse_loopback_url("streamer origin", proc.first_line());
        assert!(
            rest.is_empty(),
            "streamer origin: first line must be exactly http://127.0.0.1:PORT/, got {:?}",
            proc.first_line()
        );
        let url = proc.first_line().to_string();
        Origin { proc, dir, url, port }
    }

    /// The directory the origin serves.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `127.0.0.1:PORT`, as it appears in the server's `stream/http/HOST:PORT/...` route.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` for `streamer serve --origin`.
    pub fn origin_arg(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes `name` atomically (temp file + rename, so a response already reading the old file
    /// keeps reading the old inode), optionally with an explicit modification time so the
    /// size+mtime ETag is guaranteed to change.
    pub fn put_file_with_mtime(&self, name: &str, bytes: &[u8], mtime: Option<std::time::SystemTime>) {
        let tmp = self.dir().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).expect("write origin temp file");
        if let Some(t) = mtime {
            let f = File::options().write(true).open(&tmp).expect("reopen origin temp file");
            f.set_modified(t).expect("set mtime");
        }
        std::fs::rename(&tmp, self.dir().join(name)).expect("rename origin file into place");
    }

    /// Writes `name` atomically into the served directory.
    pub fn put_file(&self, name: &str, bytes: &[u8]) {
        self.put_file_with_mtime(name, bytes, None);
    }

    /// The whole request log, in order.
    pub fn log(&self) -> Vec<LogEntry> {
        let r = http("GET", &format!("{}_control/log", self.url), &[]);
        assert_eq!(r.status, 200, "origin GET /_control/log: {}", r.text());
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("origin /_control/log is not the documented JSON ({e}): {}", r.text()))
    }

    /// Log entries whose path (with query) is exactly `path` (with its leading slash).
    pub fn log_for(&self, path: &str) -> Vec<LogEntry> {
        self.log().into_iter().filter(|e| e.path == path).collect()
    }

    /// Empties the log.
    pub fn clear_log(&self) {
        let r = http("DELETE", &format!("{}_control/log", self.url), &[]);
        assert!(r.status < 300, "origin DELETE /_control/log: {} {}", r.status, r.text());
    }

    /// Replaces the fault switches (and resets their counters).
    pub fn set_faults(&self, faults: &Faults) {
        let body = serde_json::to_string(faults).expect("faults json");
        let r = http_with_body("PUT", &format!("{}_control/faults", self.url), &[], &body);
        assert!(r.status < 300, "origin PUT /_control/faults: {} {}", r.status, r.text());
    }

    /// `kill -9` the origin (for offline tests).
    pub fn kill(&mut self) {
        self.proc.kill9();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_start_parses_forms() {
        assert_eq!(range_start("bytes=10-"), Some(10));
        assert_eq!(range_start("bytes=10-20"), Some(10));
        assert_eq!(range_start("bytes=-20"), None);
        assert_eq!(range_start("items=1-2"), None);
    }
}
