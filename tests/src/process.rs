//! Child processes: a spawned `streamer` owned by [`Proc`], which kills it on `Drop` (never
//! `pkill`), so a failing test cleans up after itself and tests can run in parallel. The child's
//! first stdout line (its URL, with the port it really bound for `--port 0`) is read with a
//! bound, the rest of stdout is drained so the child never blocks on a full pipe, and stderr goes
//! to a file that is printed when a test panics.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use crate::programs::streamer_bin;
use crate::wait::wait_until;

/// How long a child gets to print its first stdout line (the URL) before the test gives up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

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
pub(crate) fn parse_loopback_url(what: &str, line: &str) -> (u16, String) {
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
