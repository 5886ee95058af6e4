//! `streamer`: the command-line front end of embedded-server (SPEC §4.1).
//!
//! One binary with subcommands, so the README, the integration tests and the benchmarks all start
//! the same executable: `serve` runs the caching proxy, `download` pins tracks or URLs for offline
//! use through the download API (against a running server or one it starts in-process), `origin`
//! runs the development backend ([`origin::Origin`], optionally over the generated [`demo`]
//! catalog). `main` stays a thin layer: it parses flags with clap (bad input is a usage message
//! and exit code 2, never a panic), binds loopback only, announces the base URL as the first
//! stdout line — the one thing harnesses read — and maps failures to a message on stderr and a
//! non-zero exit code. `main` itself is not async because each subcommand owns its runtime.

#![deny(unsafe_code)]

mod demo;
mod download;
mod origin;
mod serve;

use std::future::Future;
use std::io::{self, IsTerminal, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing::info;
use tracing_subscriber::EnvFilter;

use crate::origin::{Faults, Origin};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "streamer",
    version,
    about = "A localhost caching proxy for media players, and its development tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the caching proxy on 127.0.0.1.
    Serve(serve::ServeArgs),
    /// Download tracks or URLs for offline use, through a running server or an in-process one.
    Download(download::DownloadArgs),
    /// Run the development backend: static files with Range and ETag, plus switchable faults.
    Origin(OriginArgs),
}

/// Flags of `streamer origin`. The fault flags set the initial [`Faults`]; all of them can be
/// changed later through `PUT /_control/faults`.
#[derive(Debug, Args)]
struct OriginArgs {
    /// Directory whose files are served (created if --demo is given).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,

    /// Port to bind on 127.0.0.1; 0 picks a free one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    port: u16,

    /// Send bodies at about this many bytes per second.
    #[arg(long, value_name = "BPS", value_parser = clap::value_parser!(u64).range(1..))]
    throttle: Option<u64>,

    /// Make all connections share one link of about this many bytes per second (one token
    /// bucket over every body, as a phone's mobile link), on top of --throttle.
    #[arg(long, value_name = "BPS", value_parser = clap::value_parser!(u64).range(1..))]
    shared_link: Option<u64>,

    /// Close the connection after this many body bytes (see --drop-times).
    #[arg(long, value_name = "N")]
    drop_after: Option<u64>,

    /// How many responses --drop-after cuts before bodies are whole again.
    #[arg(long, value_name = "K", default_value_t = 1)]
    drop_times: u32,

    /// Answer the first K file requests with 503.
    #[arg(long, value_name = "K", default_value_t = 0)]
    fail_first: u32,

    /// Ignore Range headers (always 200 with the full body).
    #[arg(long)]
    ignore_range: bool,

    /// Send bodies chunked, without Content-Length (implies --ignore-range).
    #[arg(long)]
    no_content_length: bool,

    /// Give every response a different ETag.
    #[arg(long)]
    changing_etag: bool,

    /// Answer 401 unless the Authorization header is exactly VALUE.
    #[arg(long, value_name = "VALUE")]
    require_auth: Option<String>,

    /// Generate the demo catalog (playable WAV tracks and catalog.json) into DIR first.
    #[arg(long)]
    demo: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Download(args) => download::run(args),
        Command::Origin(args) => {
            init_tracing();
            match run_origin(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("streamer origin: {message}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Sends tracing output to stderr (stdout belongs to the base URL), filtered by `RUST_LOG`,
/// `info` by default. Safe to call more than once.
pub(crate) fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

/// `streamer origin`: optional demo catalog, bind, announce, serve until a signal.
fn run_origin(args: OriginArgs) -> Result<(), String> {
    let tracks = if args.demo {
        let tracks = demo::generate_catalog(&args.dir)
            .map_err(|err| format!("cannot generate the demo catalog in {}: {err}", args.dir.display()))?;
        Some(tracks)
    } else {
        None
    };
    if !args.dir.is_dir() {
        return Err(format!("--dir {}: no such directory", args.dir.display()));
    }
    let faults = Faults {
        throttle_bps: args.throttle,
        shared_link_bps: args.shared_link,
        drop_after: args.drop_after,
        drop_times: args.drop_times,
        fail_first: args.fail_first,
        ignore_range: args.ignore_range,
        no_content_length: args.no_content_length,
        changing_etag: args.changing_etag,
        require_auth: args.require_auth,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    runtime.block_on(async move {
        // Handlers go in before the URL is announced, so a harness may signal right after.
        let shutdown = shutdown_signal().map_err(|err| format!("cannot install signal handlers: {err}"))?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
            .await
            .map_err(|err| format!("cannot bind 127.0.0.1:{}: {err}", args.port))?;
        let port = listener
            .local_addr()
            .map_err(|err| format!("cannot read the bound address: {err}"))?
            .port();
        let base = format!("http://127.0.0.1:{port}/");
        announce(&base, tracks.as_deref());
        info!(dir = %args.dir.display(), "dev origin listening on {base}");
        Origin::new(args.dir, faults)
            .run(listener, shutdown)
            .await
            .map_err(|err| format!("server failed: {err}"))?;
        info!("dev origin stopped");
        Ok(())
    })
}

/// Prints the base URL as the first stdout line, then the demo tracks for humans. A closed
/// stdout is not a reason to stop serving, so write errors are ignored.
fn announce(base: &str, tracks: Option<&[demo::DemoTrack]>) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{base}");
    for track in tracks.unwrap_or_default() {
        let secs = track.duration_secs.round() as u64;
        let _ = writeln!(
            out,
            "  {base}{}  {} ({}:{:02})",
            track.file,
            track.title,
            secs / 60,
            secs % 60
        );
    }
    let _ = out.flush();
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT: shutting down"),
            _ = terminate.recv() => info!("SIGTERM: shutting down"),
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!("Ctrl-C: shutting down");
        }
    })
}
