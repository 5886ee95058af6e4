//! embedded-server: a small HTTP/1.1 server that runs inside an app, on `127.0.0.1`, so the
//! app's media player can play from `http://127.0.0.1:PORT/TOKEN/...` while the server streams
//! from the backend and caches every byte it sees.
//!
//! ```no_run
//! # async fn demo() -> Result<(), embedded_server::Error> {
//! use embedded_server::{Config, Server, TrackSpec};
//!
//! let mut config = Config::new("/tmp/media-cache");
//! config.origins.push("https://cdn.example.com".into());
//! let server = Server::start(config).await?;
//! server.put_track("t1", TrackSpec { url: "https://cdn.example.com/t1.mp3".into(), ..Default::default() }).await?;
//! let url = server.track_url("t1"); // hand this to the player
//! # let _ = url;
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `config`: [`Config`], every knob with its unit
//! - `error`: [`Error`] and [`UpstreamError`], and their HTTP statuses; [`ParseError`] for wire names
//! - `engine`: the facade ([`Server`], [`BlockingServer`]) over the shared state
//! - `shared`: the state the facade and the HTTP handlers share (`Inner`), track resolution, stats
//! - `server`: the accept loop, connection limits, graceful shutdown
//! - `http`: token check, routing, Range, responses, media and API handlers
//! - `catalog`: the app's tracks by ID ([`TrackSpec`], [`TrackInfo`])
//! - `management`: what the cache-management calls return ([`CachedResource`], [`ClearedCache`])
//! - `clock`: wall-clock milliseconds, as the index and the stats record them
//! - `cache`: per-resource state, fills, sparse files, SQLite index, eviction
//! - `download`: the persistent download queue, workers, network gate, verification, pins
//! - `fetch`: the upstream client (TLS roots, redirects, retries, credential refresh)
//! - `hls`: HLS playlists rewritten to route every URI through the server; live playlist freshness
//! - `telemetry`: counters and latency histograms behind [`Stats`]
//! - `metrics`: [`Stats`] in the Prometheus text format
//! - `jni` (feature `jni`): the JNI bridge under the Kotlin API in `android/`

#![deny(unsafe_code)]
#![warn(
    missing_docs,
    unreachable_pub,
    clippy::await_holding_lock,
    clippy::dbg_macro,
    clippy::todo
)]

mod cache;
mod catalog;
mod clock;
mod config;
mod download;
mod engine;
mod error;
mod fetch;
mod hls;
mod http;
#[cfg(feature = "jni")]
// The JNI exports are `extern "system"` functions that receive raw JVM pointers and turn a
// `jlong` back into the `Box` it came from: this module alone needs `unsafe`.
#[allow(unsafe_code)]
mod jni;
mod management;
mod metrics;
mod server;
mod shared;
mod telemetry;

pub use catalog::{TrackInfo, TrackSpec};
pub use config::{Config, LinkPolicy, TrustRoots};
pub use download::{DownloadInfo, DownloadState, DownloadTarget, NetworkState, VariantChoice, MAX_DOWNLOAD_DATA};
pub use engine::{BlockingServer, DownloadEvents, Server};
pub use error::{ArgumentError, ConfigError, Error, ParseError, StorageError, UpstreamCause, UpstreamError};
pub use fetch::{Refreshed, Resolver};
pub use management::{CachedResource, ClearedCache};
pub use telemetry::{HistogramStats, Stats, UpstreamFailure};
