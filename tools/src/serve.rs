//! `streamer serve`: runs the embedded-server library as a standalone caching proxy (SPEC §4.1).
//!
//! This file holds the command-line surface of `serve` — the flags the README, the test harness
//! and the benchmarks pass — apart from `main.rs`, so that the engine wiring can grow here
//! without touching the other subcommands. The argument struct is the stable part; [`run`] is a
//! placeholder until the library's engine is wired in.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use embedded_server::{Config, Server, TrackSpec};

use crate::demo::{self, DemoTrack};
use crate::origin::{Faults, Origin};

/// Flags of `streamer serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory for cached bytes and the index (default: a per-user cache directory).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Directory for downloaded (pinned) bytes and the index, apart from the evictable cache
    /// (as on Android: cache under cacheDir, downloads under noBackupFilesDir). Default: in
    /// --cache-dir.
    #[arg(long, value_name = "DIR")]
    pub downloads_dir: Option<PathBuf>,

    /// Port to bind on 127.0.0.1; 0 picks a free one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub port: u16,

    /// Secret path prefix for every route but /healthz (default: a fresh random token).
    #[arg(long, value_name = "T")]
    pub token: Option<String>,

    /// A backend the server may fetch from, as scheme://host[:port]; repeatable. Without any,
    /// a built-in demo backend with a generated catalog is started.
    #[arg(long = "origin", value_name = "URL")]
    pub origin: Vec<String>,

    /// Upper bound on cached bytes on disk, pinned downloads included.
    #[arg(long, value_name = "BYTES")]
    pub max_cache_bytes: Option<u64>,

    /// An extra request header sent to backends, as "Name: value"; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub header: Vec<String>,

    /// A PEM file of extra CA certificates to trust for HTTPS backends.
    #[arg(long, value_name = "FILE.pem")]
    pub ca_cert: Option<PathBuf>,

    /// Trust the CA certificates of this directory (Android's cacerts format, or any directory of
    /// PEM files such as /etc/ssl/certs) instead of the bundled Mozilla roots.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,

    /// Offline downloads that run at once.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub download_workers: u16,

    /// Let downloads run on metered networks (players are never held back).
    #[arg(long)]
    pub allow_metered: bool,

    /// How often written byte ranges are synced to disk and recorded in the index, in
    /// milliseconds: longer saves battery, shorter loses less to a crash.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub sync_interval_ms: u64,

    /// Idle cached resources kept in memory beyond those in use; the rest stay in the index and
    /// are loaded on first use. 0 keeps only what is in use.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub resident_resources: u32,

    /// Who gets the backend link when a player and downloads want it at once: `yield` (downloads
    /// and prefetch hold back while a player lacks bytes) or `share` (TCP decides).
    #[arg(long, value_name = "POLICY", default_value = "yield")]
    pub link_policy: embedded_server::LinkPolicy,

    /// Bytes a player must have ahead of it before downloads take the link again (`yield`).
    #[arg(long, value_name = "N", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub playback_ahead_bytes: u64,

    /// While the network is metered (POST /api/network), a served HLS master offers only the
    /// variants of at most this many bits per second (BANDWIDTH); the lowest always stays.
    #[arg(long, value_name = "BPS")]
    pub metered_max_bandwidth: Option<u64>,

    /// The same cap while the network is not metered.
    #[arg(long, value_name = "BPS")]
    pub unmetered_max_bandwidth: Option<u64>,
}

/// Runs `streamer serve` until Ctrl-C or SIGTERM; the exit code says whether it stopped cleanly.
pub fn run(args: ServeArgs) -> ExitCode {
    crate::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("streamer serve: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("streamer serve: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The demo backend started when no `--origin` is given.
struct Demo {
    tracks: Vec<DemoTrack>,
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    // Handlers go in first, so a signal right after the URL is announced stops us cleanly.
    let shutdown = crate::shutdown_signal().map_err(|err| format!("cannot install signal handlers: {err}"))?;
    let cache_dir = match args.cache_dir {
        Some(dir) => dir,
        None => default_cache_dir()?,
    };
    let mut config = Config::new(&cache_dir);
    config.downloads_dir = args.downloads_dir;
    config.sync_interval = std::time::Duration::from_millis(args.sync_interval_ms);
    config.resident_resources = args.resident_resources as usize;
    config.link_policy = args.link_policy;
    config.playback_ahead_bytes = args.playback_ahead_bytes;
    config.port = args.port;
    config.token = args.token;
    config.ca_cert_pem = args.ca_cert;
    if let Some(dir) = args.ca_dir {
        config.trust_roots = embedded_server::TrustRoots::Directories {
            dirs: vec![dir],
            disabled: None,
        };
    }
    config.download_workers = usize::from(args.download_workers);
    config.allow_metered_downloads = args.allow_metered;
    config.metered_max_bandwidth = args.metered_max_bandwidth;
    config.unmetered_max_bandwidth = args.unmetered_max_bandwidth;
    if let Some(max) = args.max_cache_bytes {
        config.max_cache_bytes = max;
    }
    config.upstream_headers = parse_headers(&args.header)?;
    let demo = if args.origin.is_empty() {
        let demo = start_demo(&cache_dir.join("demo-backend")).await?;
        config.origins.push(demo.base.clone());
        Some(demo)
    } else {
        config.origins = args.origin;
        None
    };
    let server = Server::start(config).await.map_err(|e| e.to_string())?;
    if let Some(demo) = &demo {
        for t in &demo.tracks {
            let spec = TrackSpec {
                url: format!("{}/{}", demo.base, t.file),
                sha256: Some(t.sha256.clone()),
                size: Some(t.size),
                mime: Some(t.mime.clone()),
            };
            server
                .put_track(&t.id, spec)
                .await
                .map_err(|e| format!("cannot register demo track {}: {e}", t.id))?;
        }
    }
    announce(&server, demo.as_ref());
    shutdown.await;
    let result = server.shutdown().await.map_err(|e| format!("stopping: {e}"));
    if let Some(demo) = demo {
        let _ = demo.stop.send(());
        let _ = demo.task.await;
    }
    result
}

/// Generates the demo catalog (once; later starts reuse the files) and serves it on loopback.
async fn start_demo(dir: &Path) -> Result<Demo, String> {
    let owned = dir.to_path_buf();
    let tracks = tokio::task::spawn_blocking(move || demo::generate_catalog(&owned))
        .await
        .map_err(|e| format!("demo catalog generation failed: {e}"))?
        .map_err(|e| format!("cannot generate the demo catalog in {}: {e}", dir.display()))?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| format!("cannot bind the demo backend: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("demo backend address: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let origin = Origin::new(dir.to_path_buf(), Faults::default());
    let task = tokio::spawn(origin.run(listener, async move {
        let _ = stopped.await;
    }));
    Ok(Demo {
        tracks,
        base: format!("http://{addr}"),
        stop,
        task,
    })
}

/// Prints the base URL as the first stdout line, then what a person can open, starting with the
/// dashboard (which is the base URL itself).
///
/// The dashboard URL is also logged, once, at `info`: on a phone the log (logcat) is where a
/// developer finds the token to open the dashboard through `adb forward`. This start-up line is
/// the only log output that ever carries the token; request logs name routes, never paths.
fn announce(server: &Server, demo: Option<&Demo>) {
    let mut out = std::io::stdout().lock();
    let base = server.base_url();
    let _ = writeln!(out, "{base}");
    let _ = writeln!(out, "dashboard: {base}");
    tracing::info!(url = %base, "dashboard");
    match demo {
        Some(demo) => {
            let _ = writeln!(
                out,
                "demo catalog ({} tracks, served by a built-in backend at {}):",
                demo.tracks.len(),
                demo.base
            );
            for t in &demo.tracks {
                let secs = t.duration_secs.round() as u64;
                let _ = writeln!(
                    out,
                    "  {}  {} ({}:{:02})",
                    server.track_url(&t.id),
                    t.title,
                    secs / 60,
                    secs % 60
                );
            }
            if let Some(first) = demo.tracks.first() {
                let _ = writeln!(out, "listen: ffplay -nodisp -autoexit {}", server.track_url(&first.id));
            }
        }
        None => {
            let _ = writeln!(out, "stream any allowed URL as {base}stream/SCHEME/HOST[:PORT]/PATH");
        }
    }
    let _ = writeln!(
        out,
        "catalog: {base}api/tracks   stats: {base}api/stats   (Ctrl-C stops)"
    );
    let _ = out.flush();
}

/// Parses repeated `--header "Name: value"` flags (shared by `serve` and `download`).
pub(crate) fn parse_headers(flags: &[String]) -> Result<Vec<(String, String)>, String> {
    flags
        .iter()
        .map(|header| {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| format!("--header {header:?}: expected \"Name: value\""))?;
            Ok((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// `$XDG_CACHE_HOME/embedded-server`, else `~/.cache/embedded-server`.
fn default_cache_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("embedded-server"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("embedded-server")),
        None => Err("no --cache-dir given and neither XDG_CACHE_HOME nor HOME is set".into()),
    }
}
