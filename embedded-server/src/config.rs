//! The server's configuration, with defaults fit for a phone.

use std::path::PathBuf;
use std::time::Duration;

use crate::download::NetworkState;

/// Everything needed to start a server. Build it with [`Config::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of evictable cached bytes (and of everything when `downloads_dir` is `None`);
    /// created if missing. On Android this is under `Context.cacheDir`, which the system and the
    /// user ("Clear cache") may empty at any time: what disappears is simply fetched again.
    pub cache_dir: PathBuf,
    /// Directory of downloaded (pinned) bytes and of the index (the download queue); created if
    /// missing. On Android this is under `Context.noBackupFilesDir`, which only the app empties and
    /// Auto Backup skips. A resource moves here when a download pins it and back when it is
    /// unpinned. `None` keeps everything in `cache_dir`.
    pub downloads_dir: Option<PathBuf>,
    /// Port to bind on `127.0.0.1` when the server binds its own listener; 0 picks a free one.
    pub port: u16,
    /// The secret path prefix; `None` generates 128 random bits (hex) at start.
    pub token: Option<String>,
    /// Backends that may be fetched from, as `scheme://host[:port]`. Anything else is refused.
    pub origins: Vec<String>,
    /// Upper bound on cached bytes; least recently used unpinned resources are evicted above it.
    pub max_cache_bytes: u64,
    /// Headers sent with every upstream request (`Authorization`, cookies...). Never logged.
    pub upstream_headers: Vec<(String, String)>,
    /// The roots upstream TLS trusts: the phone's CA store on Android, Mozilla's bundled roots
    /// elsewhere (see [`TrustRoots`]).
    pub trust_roots: TrustRoots,
    /// An extra PEM file of CA certificates trusted for upstream TLS, besides `trust_roots`.
    pub ca_cert_pem: Option<PathBuf>,
    /// Time allowed to open an upstream connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Time allowed for upstream response headers, and between two upstream body chunks.
    pub read_timeout: Duration,
    /// Time the app's credential [`Resolver`](crate::Resolver) has to answer; after it, the refused
    /// request fails with the backend's status.
    pub resolver_timeout: Duration,
    /// Attempts per upstream request before a retryable failure is reported (at least 1).
    pub upstream_attempts: u32,
    /// Most simultaneous client connections; further ones wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send request headers, and stay idle between requests.
    pub client_header_timeout: Duration,
    /// How long a response may wait on a client that does not read before it is dropped.
    pub client_stall_timeout: Duration,
    /// How often written byte ranges are synced to disk and recorded in the index.
    pub sync_interval: Duration,
    /// Downloads that run at once.
    pub download_workers: usize,
    /// Whether downloads may run on a metered network (cellular); players are never gated.
    pub allow_metered_downloads: bool,
    /// The connectivity the download gate assumes until the app reports its own
    /// ([`Server::set_network`](crate::Server::set_network)). The default, online and unmetered,
    /// fits a desktop, which has no connectivity callback; an app on a phone passes the device's
    /// state at start (Kotlin's `AndroidConfig.builder` does), or queued downloads would start on
    /// mobile data before its first callback arrives.
    pub initial_network: NetworkState,
    /// Bytes fetched per track by a prefetch when the caller names no amount (~10 s of a
    /// 320 kbit/s stream).
    pub prefetch_bytes: u64,
}

/// Where upstream TLS takes its trusted root certificates from (besides `Config::ca_cert_pem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustRoots {
    /// Mozilla's roots built into the library (`webpki-roots`): the default off Android. Not
    /// built for Android, where the phone's own store is the default and the bundle would only
    /// add to the library's size.
    #[cfg(not(target_os = "android"))]
    Bundled,
    /// A platform CA directory in Android's format (one PEM file per certificate, named by
    /// subject hash): the first of `dirs` that exists is read at start, skipping files whose
    /// name is in `disabled` (the CAs the user turned off). [`TrustRoots::android_system`] is
    /// the phone's store.
    Directories {
        /// Candidate directories, in order of preference.
        dirs: Vec<PathBuf>,
        /// A directory of disabled certificates' file names, if any.
        disabled: Option<PathBuf>,
    },
}

impl Config {
    /// A configuration with defaults for everything but the cache directory.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            downloads_dir: None,
            port: 0,
            token: None,
            origins: Vec::new(),
            max_cache_bytes: 2 * 1024 * 1024 * 1024,
            upstream_headers: Vec::new(),
            trust_roots: TrustRoots::default(),
            ca_cert_pem: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            resolver_timeout: Duration::from_secs(10),
            upstream_attempts: 5,
            max_connections: 128,
            client_header_timeout: Duration::from_secs(30),
            client_stall_timeout: Duration::from_secs(60),
            sync_interval: Duration::from_millis(1000),
            download_workers: 2,
            allow_metered_downloads: false,
            initial_network: NetworkState::default(),
            prefetch_bytes: 512 * 1024,
        }
    }
}
