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
//!
//! # Layout
//!
//! | module | what it does |
//! | --- | --- |
//! | `programs` | finds the `streamer` builds and external tools |
//! | `process` | [`Proc`]: a `streamer` child, killed on drop |
//! | `origin` | [`Origin`]: `streamer origin`, its request log and fault switches |
//! | `server` | [`Server`]: `streamer serve` and the URLs of its routes |
//! | `http` | one-shot requests with ureq and curl, returning [`Resp`] |
//! | `readers` | [`BackgroundRead`] and [`SlowReader`]: responses held open while a test watches |
//! | `data` | seeded bytes, SHA-256, byte comparison |
//! | `files` | [`files_under`]: the files of a cache directory; [`Tmpfs`]: a small real disk |
//! | `wait` | [`wait_until`] and [`poll_until`] |
//! | `checks` | [`Checks`]: every failing case of a table-driven test |
//! | `json` | typed fields of JSON answers |
//! | [`nginx`], [`hls_fixtures`] | a local nginx origin; HLS streams made with ffmpeg |
//!
//! Everything is re-exported here, so tests import `integration_tests::...` without the module.

mod checks;
mod data;
mod files;
pub mod hls_fixtures;
mod http;
mod json;
pub mod nginx;
mod origin;
mod process;
mod programs;
mod readers;
mod server;
mod wait;

pub use checks::Checks;
pub use data::{assert_bytes_eq, first_difference, seeded_bytes, sha256_hex, KIB, MIB};
pub use files::{files_under, Tmpfs};
pub use http::{agent, curl, get, get_range, http, http_with_body, try_http, Head, Resp};
pub use json::{json_bool, json_str, json_u64};
pub use origin::{range_start, Faults, LogEntry, Origin};
pub use process::Proc;
pub use programs::{ffmpeg_in, require_tool, streamer_bin, streamer_release_bin, workspace_root};
pub use readers::{BackgroundRead, SlowReader};
pub use server::Server;
pub use wait::{poll_until, wait_until};
