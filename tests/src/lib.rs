//! Harness for the host-side integration tests: it runs the real `streamer` binary as child
//! processes (`streamer origin`, the development backend with fault switches, and `streamer serve`,
//! the product) and talks to them with real HTTP clients (ureq in-process, curl, ffprobe, ffmpeg).
//!
//! Why it is shaped this way:
//! - Children are owned by [`Proc`], which kills them on `Drop` (never `pkill`), so a failing test
//!   cleans up after itself and tests can run in parallel; every port is 0 and the real port is
//!   read from the child's first stdout line, the rest of stdout is drained so the child never
//!   blocks on a full pipe, and stderr goes to a file that is printed when a test panics.
//! - Test files are seeded and deterministic ([`seeded_bytes`]) so every served byte is compared
//!   with the truth, and failures report the first differing offset instead of megabytes of hex.
//! - Synchronisation is always "wait for an observable condition, with a bound"
//!   ([`wait_until`]): tests assert ordering and progress, never wall-clock durations.
//! - Missing prerequisites (the binary, curl, ffprobe, ffmpeg) make tests panic with the command
//!   that fixes them; nothing is skipped silently.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub mod hls_fixtures;
pub mod nginx;

/// One kibibyte, in bytes.
pub const KIB: usize = 1024;
/// One mebibyte, in bytes.
pub const MIB: usize = 1024 * 1024;

/// How long a child gets to print its first stdout line (the URL) before the test gives up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Locating binaries and tools
// ---------------------------------------------------------------------------------------------

/// The workspace root (`CARGO_MANIFEST_DIR/..`).
pub fn workspace_root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// The `streamer` binary: `$STREAMER_BIN`, else `<workspace>/target/debug/streamer`.
///
/// Panics (never skips) when it is missing, saying how to build it.
pub fn streamer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STREAMER_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "STREAMER_BIN={} does not exist; unset it or run `cargo build -p tools`",
            p.display()
        );
        return p;
    }
    let p = workspace_root().join("target").join("debug").join("streamer");
    assert!(
        p.is_file(),
        "the streamer binary is missing at {}: run `cargo build -p tools` first \
         (or point STREAMER_BIN at it)",
        p.display()
    );
    p
}

/// The release build of `streamer`: `$STREAMER_RELEASE_BIN`, else
/// `<workspace>/target/release/streamer`, for tests whose workload is only meaningful at release
/// speed (the churn test). Panics (never skips) when it is missing, saying how to build it.
pub fn streamer_release_bin() -> PathBuf {
    let p = std::env::var_os("STREAMER_RELEASE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("release").join("streamer"));
    assert!(
        p.is_file(),
        "the release streamer binary is missing at {}: run `cargo build --release -p tools` first \
         (or point STREAMER_RELEASE_BIN at it)",
        p.display()
    );
    p
}

/// Finds an external tool on `PATH`, or panics saying which one is missing and how to install it.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    let package = match name {
        "ffprobe" => "ffmpeg",
        "nginx" => "nginx-light",
        other => other,
    };
    panic!("required tool `{name}` not found on PATH; install it with `apt-get install -y {package}`");
}

/// Runs ffmpeg (errors only) in `dir` with `args`; panics with its stderr when it fails.
#[track_caller]
pub fn ffmpeg_in(dir: &Path, args: &[&str]) {
    let out = Command::new(require_tool("ffmpeg"))
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Deterministic data and byte comparison
// ---------------------------------------------------------------------------------------------

/// `len` pseudo-random bytes from a xorshift64 generator seeded with `seed`: the same seed always
/// gives the same bytes, different seeds give different bytes.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Index of the first differing byte, or `None` when the shorter one is a prefix of the other
/// (lengths are not compared).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b.iter()).position(|(x, y)| x != y)
}

/// Asserts `got == want` byte for byte, reporting lengths and the first differing offset.
#[track_caller]
pub fn assert_bytes_eq(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    panic!(
        "{what}: bytes differ: got {} bytes (sha256 {}), want {} bytes (sha256 {}), \
         first difference at offset {:?}",
        got.len(),
        sha256_hex(got),
        want.len(),
        sha256_hex(want),
        first_difference(got, want)
    );
}

// ---------------------------------------------------------------------------------------------
// Bounded waiting
// ---------------------------------------------------------------------------------------------

/// Polls `cond` every 20 ms until it holds; panics after `timeout` naming `what` was awaited.
///
/// Polling an observable condition with a bound is the only synchronisation the tests use.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    if !poll_until(timeout, cond) {
        panic!("timed out after {timeout:?} waiting until {what}");
    }
}

/// Polls `cond` every 20 ms until it holds (`true`) or `timeout` passes (`false`), for the rare
/// wait whose expiry is an acceptable outcome rather than a failure.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Collects failed checks so that one run of a table-driven test reports every failing case, not
/// only the first; [`Checks::finish`] then fails the test listing them all.
#[derive(Debug, Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Runs `f`; a panic inside it is recorded under `what` instead of ending the test.
    pub fn check(&mut self, what: &str, f: impl FnOnce()) {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic without a message".into());
            self.failures.push(format!("{what}: {msg}"));
        }
    }

    /// Fails the test if any check failed, listing every failure.
    #[track_caller]
    pub fn finish(self) {
        if !self.failures.is_empty() {
            panic!(
                "{} check(s) failed:\n- {}",
                self.failures.len(),
                self.failures.join("\n- ")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// A running `streamer` child; killed (SIGKILL) and reaped on drop.
pub struct Proc {
    name: String,
    child: Child,
    first_line: String,
    stderr_path: PathBuf,
    _logdir: TempDir,
    /// Run by a wrapper, in a process group of its own: killing kills the group, so the
    /// wrapped `streamer` cannot outlive its wrapper (strace leaves its tracee running).
    group: bool,
}

impl Proc {
    /// Starts `streamer ARGS...` and waits for its first stdout line.
    pub fn spawn(name: &str, args: &[String]) -> Proc {
        Proc::spawn_with_env(name, args, &[])
    }

    /// Like [`Proc::spawn`], with extra environment variables for the child (`RUST_LOG`, say).
    pub fn spawn_with_env(name: &str, args: &[String], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_wrapped(name, &[], args, env)
    }

    /// Like [`Proc::spawn_with_env`], run by `wrapper` (`strace -o FILE`, say): the child is
    /// `WRAPPER... streamer ARGS...`.
    pub fn spawn_wrapped(name: &str, wrapper: &[String], args: &[String], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_program(&streamer_bin(), name, wrapper, args, env)
    }

    /// Like [`Proc::spawn_wrapped`], running the `streamer` binary at `bin` (a release build, say).
    pub fn spawn_program(bin: &Path, name: &str, wrapper: &[String], args: &[String], env: &[(&str, &str)]) -> Proc {
        let logdir = tempfile::tempdir().expect("tempdir for child logs");
        let stderr_path = logdir.path().join("stderr.log");
        let stderr = File::create(&stderr_path).expect("create child stderr log");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {args:?}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = match reader.read_line(&mut line) {
                Ok(n) if n > 0 => Some(line),
                _ => None,
            };
            let _ = tx.send(first);
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut proc = Proc {
            name: name.to_string(),
            child,
            first_line: String::new(),
            stderr_path,
            _logdir: logdir,
            group: !wrapper.is_empty(),
        };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(line)) => proc.first_line = line.trim_end_matches(['\r', '\n']).to_string(),
            Ok(None) => {
                let _ = proc.child.wait();
                panic!(
                    "{name} ({args:?}) exited or closed stdout before printing its URL; stderr:\n{}",
                    proc.stderr_tail()
                );
            }
            Err(_) => panic!(
                "{name} ({args:?}) printed no URL within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                proc.stderr_tail()
            ),
        }
        proc
    }

    /// The first stdout line, without the line end.
    pub fn first_line(&self) -> &str {
        &self.first_line
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last few KiB of the child's stderr (for failure messages).
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read(&self.stderr_path).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Everything the child wrote to stderr so far (lossy UTF-8).
    pub fn stderr_all(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM (as a service manager or Ctrl-C would) and waits, bounded, for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
        let mut exit = None;
        wait_until(timeout, &format!("{} exits after SIGTERM", self.name), || {
            exit = self.child.try_wait().ok().flatten();
            exit.is_some()
        });
        exit.expect("exit status")
    }

    /// `kill -9` the child and reap it.
    pub fn kill9(&mut self) {
        if self.group {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "---- stderr of {} (pid {}) ----\n{}",
                self.name,
                self.child.id(),
                self.stderr_tail()
            );
        }
        self.kill9();
    }
}

/// Splits `http://127.0.0.1:PORT/REST` into the port and `REST`; panics if it is not that form.
fn parse_loopback_url(what: &str, line: &str) -> (u16, String) {
    let rest = line
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("{what}: first stdout line must be `http://127.0.0.1:PORT/...`, got {line:?}"));
    let (port, path) = rest
        .split_once('/')
        .unwrap_or_else(|| panic!("{what}: first stdout line lacks a path: {line:?}"));
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("{what}: bad port in first stdout line {line:?}"));
    assert!(port != 0, "{what}: reported port 0 in {line:?}");
    (port, path.to_string())
}

// ---------------------------------------------------------------------------------------------
// The development origin
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The product server
// ---------------------------------------------------------------------------------------------

/// A running `streamer serve`.
pub struct Server {
    proc: Proc,
    _owned_cache: Option<TempDir>,
    cache_dir: PathBuf,
    /// `http://127.0.0.1:PORT/TOKEN/`.
    pub base: String,
    /// The secret path token.
    pub token: String,
    /// The bound port.
    pub port: u16,
}

impl Server {
    /// `streamer serve` over a fresh cache directory, allowed to fetch from `origins`.
    pub fn start(origins: &[&Origin]) -> Server {
        let list: Vec<String> = origins.iter().map(|o| o.origin_arg()).collect();
        Server::start_with(None, &list, &[])
    }

    /// `streamer serve` with no `--origin`: the built-in demo backend and catalog.
    pub fn demo() -> Server {
        Server::start_with(None, &[], &[])
    }

    /// `streamer serve --cache-dir DIR --port 0 [--origin O]... EXTRA...`; a fresh temporary cache
    /// directory (owned by the returned value) when `cache_dir` is `None`.
    pub fn start_with(cache_dir: Option<&Path>, origins: &[String], extra: &[&str]) -> Server {
        Server::start_with_env(cache_dir, origins, extra, &[])
    }

    /// Like [`Server::start_with`], with extra environment variables for the child.
    pub fn start_with_env(
        cache_dir: Option<&Path>,
        origins: &[String],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::start_wrapped(&[], cache_dir, origins, extra, env)
    }

    /// Like [`Server::start_with_env`], run by `wrapper` (see [`Proc::spawn_wrapped`]).
    pub fn start_wrapped(
        wrapper: &[String],
        cache_dir: Option<&Path>,
        origins: &[String],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::start_program(&streamer_bin(), wrapper, cache_dir, origins, extra, env)
    }

    /// Like [`Server::start_wrapped`], running the `streamer` binary at `bin`.
    pub fn start_program(
        bin: &Path,
        wrapper: &[String],
        cache_dir: Option<&Path>,
        origins: &[String],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let (owned, dir) = match cache_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let t = tempfile::tempdir().expect("cache tempdir");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut argv: Vec<String> = vec![
            "serve".into(),
            "--cache-dir".into(),
            dir.display().to_string(),
            "--port".into(),
            "0".into(),
        ];
        for o in origins {
            argv.push("--origin".into());
            argv.push(o.clone());
        }
        argv.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn_program(bin, "streamer serve", wrapper, &argv, env);
        let (port, rest) = parse_loopback_url("streamer serve", proc.first_line());
        let token = rest.strip_suffix('/').unwrap_or_else(|| {
            panic!(
                "streamer serve: first line must be exactly http://127.0.0.1:PORT/TOKEN/, got {:?}",
                proc.first_line()
            )
        });
        assert!(
            !token.is_empty() && !token.contains('/'),
            "streamer serve: bad token in first line {:?}",
            proc.first_line()
        );
        let token = token.to_string();
        let base = proc.first_line().to_string();
        let server = Server {
            proc,
            _owned_cache: owned,
            cache_dir: dir,
            base,
            token,
            port,
        };
        // The URL is printed after binding, but be tolerant of a short gap before accepting.
        wait_until(Duration::from_secs(10), "the server answers /healthz", || {
            try_http("GET", &format!("{}healthz", server.root_url()), &[], None).is_ok()
        });
        server
    }

    /// `http://127.0.0.1:PORT/` (no token).
    pub fn root_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The cache directory in use.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// `BASE/stream/http/127.0.0.1:PORT/PATH` for a path (with optional query, no leading slash)
    /// on `origin`.
    pub fn stream_url(&self, origin: &Origin, path: &str) -> String {
        format!("{}stream/http/{}/{}", self.base, origin.host_port(), path)
    }

    /// `BASE/tracks/ID`.
    pub fn track_url(&self, id: &str) -> String {
        format!("{}tracks/{id}", self.base)
    }

    /// `BASE/api/REST`.
    pub fn api_url(&self, rest: &str) -> String {
        format!("{}api/{rest}", self.base)
    }

    /// `GET BASE/api/REST` expecting 200 and JSON.
    pub fn api_get(&self, rest: &str) -> Value {
        let r = http("GET", &self.api_url(rest), &[]);
        assert_eq!(r.status, 200, "GET api/{rest}: {}", r.text());
        r.json()
    }

    /// `PUT BASE/api/tracks/ID` with `body`, expecting 2xx.
    pub fn put_track(&self, id: &str, body: &Value) {
        let r = http_with_body("PUT", &self.api_url(&format!("tracks/{id}")), &[], &body.to_string());
        assert!(
            (200..300).contains(&r.status),
            "PUT api/tracks/{id}: {} {}",
            r.status,
            r.text()
        );
    }

    /// `GET BASE/api/stats`.
    pub fn stats(&self) -> Value {
        self.api_get("stats")
    }

    /// The process (for `kill -9`, stderr).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// `kill -9` the server and reap it.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP clients
// ---------------------------------------------------------------------------------------------

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

fn ureq_head(resp: &ureq::Response) -> Head {
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

/// A body being read on a background thread, with a live count of bytes received.
pub struct BackgroundRead {
    received: Arc<AtomicU64>,
    head: mpsc::Receiver<Result<Head, String>>,
    handle: JoinHandle<Result<Resp, String>>,
}

impl BackgroundRead {
    /// Starts `GET url` with `headers` on a new thread, reading the body in 16 KiB chunks.
    pub fn start(url: &str, headers: &[(&str, &str)]) -> BackgroundRead {
        let received = Arc::new(AtomicU64::new(0));
        let (tx, head) = mpsc::channel();
        let url = url.to_string();
        let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let count = Arc::clone(&received);
        let handle = thread::spawn(move || {
            let mut req = agent().get(&url);
            for (n, v) in &headers {
                req = req.set(n, v);
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(e) => {
                    let msg = format!("GET {url}: {e}");
                    let _ = tx.send(Err(msg.clone()));
                    return Err(msg);
                }
            };
            let (status, hdrs) = ureq_head(&resp);
            let _ = tx.send(Ok((status, hdrs.clone())));
            let mut reader = resp.into_reader();
            let mut body = Vec::new();
            let mut buf = vec![0u8; 16 * KIB];
            let mut body_error = None;
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        body.extend_from_slice(&buf[..n]);
                        count.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        body_error = Some(e.to_string());
                        break;
                    }
                }
            }
            Ok(Resp {
                status,
                headers: hdrs,
                body,
                body_error,
            })
        });
        BackgroundRead { received, head, handle }
    }

    /// Body bytes received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Waits (bounded) for the response head: status and headers.
    #[track_caller]
    pub fn head(&self, timeout: Duration) -> Head {
        match self.head.recv_timeout(timeout) {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => panic!("background GET failed before the response head: {e}"),
            Err(_) => panic!("no response head within {timeout:?}"),
        }
    }

    /// Waits for the thread and returns the response (or the transport error before its head).
    pub fn join(self) -> Result<Resp, String> {
        self.handle.join().expect("reader thread panicked")
    }
}

// ---------------------------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------------------------

/// `v[key]` as `u64`; panics naming the key and showing `v` otherwise.
#[track_caller]
pub fn json_u64(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("JSON field `{key}` missing or not an unsigned integer in {v}"))
}

/// `v[key]` as `&str`; panics naming the key otherwise.
#[track_caller]
pub fn json_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("JSON field `{key}` missing or not a string in {v}"))
}

/// `v[key]` as `bool`; panics naming the key otherwise.
#[track_caller]
pub fn json_bool(v: &Value, key: &str) -> bool {
    v.get(key)
        .and_then(Value::as_bool)
        .unwrap_or_else(|| panic!("JSON field `{key}` missing or not a bool in {v}"))
}

// ---------------------------------------------------------------------------------------------
// A client that really stalls
// ---------------------------------------------------------------------------------------------

/// A GET whose client keeps its receive buffer tiny (64 KiB, which also turns off the kernel's
/// buffer autotuning) and does not read: the server cannot park the body in socket buffers and
/// really waits on this client. Loopback autotuning can otherwise absorb tens of MiB.
pub struct SlowReader {
    stream: std::net::TcpStream,
    /// Status code of the response.
    pub status: u16,
    /// `Content-Length` of the response.
    pub content_length: u64,
    /// Body bytes received with the head.
    body: Vec<u8>,
}

impl SlowReader {
    /// Sends `GET url` and reads the response head (and whatever body bytes came with it).
    pub fn open(url: &str) -> SlowReader {
        let rest = url.strip_prefix("http://").expect("http URL");
        let (host, path) = rest.split_once('/').expect("URL with a path");
        let addr: std::net::SocketAddr = host.parse().expect("IP:PORT host");
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
        socket.connect(&addr.into()).expect("connect");
        let mut stream: std::net::TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("send request");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut chunk).expect("read head");
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let content_length = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("Content-Length");
        SlowReader {
            stream,
            status,
            content_length,
            body: buf[head_end..].to_vec(),
        }
    }

    /// Reads the rest of the body and returns all of it.
    pub fn read_rest(mut self) -> Vec<u8> {
        let want = self.content_length as usize;
        let mut chunk = vec![0u8; 65536];
        while self.body.len() < want {
            let n = self.stream.read(&mut chunk).expect("read body");
            assert!(
                n > 0,
                "connection closed after {} of {want} body bytes",
                self.body.len()
            );
            self.body.extend_from_slice(&chunk[..n]);
        }
        self.body
    }

    /// Reads and discards until the server closes the connection; false if it stays open
    /// (no EOF, no error) for `timeout`.
    pub fn closed_by_server(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(timeout)).expect("timeout");
        let mut chunk = vec![0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_bytes_are_deterministic_and_seed_dependent() {
        assert_eq!(seeded_bytes(7, 1000), seeded_bytes(7, 1000));
        assert_ne!(seeded_bytes(7, 1000), seeded_bytes(8, 1000));
        assert_eq!(seeded_bytes(7, 13).len(), 13);
        assert_eq!(&seeded_bytes(7, 1000)[..13], &seeded_bytes(7, 13)[..]);
    }

    #[test]
    fn range_start_parses_forms() {
        assert_eq!(range_start("bytes=10-"), Some(10));
        assert_eq!(range_start("bytes=10-20"), Some(10));
        assert_eq!(range_start("bytes=-20"), None);
        assert_eq!(range_start("items=1-2"), None);
    }
}
