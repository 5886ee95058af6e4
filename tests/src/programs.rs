//! Where the programs under test and the external tools are: the `streamer` builds (debug, or
//! release for the workloads that need its speed) and tools on `PATH` such as curl and ffmpeg. A
//! missing one is a panic that names the command which fixes it, never a silently skipped test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
