//! The server's configuration, with defaults fit for a phone.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The longest timeout or interval accepted: a day. Anything longer is a mistake (a unit mix-up,
/// `Long.MAX_VALUE` from Kotlin), and arithmetic on it could overflow.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The largest `Config::playback_ahead_bytes` accepted (1 GiB): beyond it a player would never
/// count as satisfied and downloads would wait for the whole of every track.
const MAX_AHEAD_BYTES: u64 = 1 << 30;

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
    /// Idle resources kept in memory, beyond those being read or written; the rest of the cache
    /// stays in the index and is loaded on first use (a point read, tens of microseconds). At
    /// about a kilobyte each, the default costs well under a megabyte; 0 keeps only what is in
    /// use.
    pub resident_resources: usize,
    /// Whether downloads and prefetch give the link to a player that is waiting for bytes (and
    /// downloads to a running prefetch) ([`LinkPolicy::Yield`], the default) or share it as TCP
    /// does ([`LinkPolicy::Share`]).
    pub link_policy: LinkPolicy,
    /// How far ahead of a player's position the bytes of its resource must be present before
    /// the player counts as satisfied and downloads and prefetch may take the link again
    /// (1 MiB: about 26 s of a 320 kbit/s stream). The end of the resource satisfies it too.
    pub playback_ahead_bytes: u64,
    /// The most bits per second (an HLS variant's `BANDWIDTH`) of the variants a served HLS master
    /// offers the player while the network is metered: those above it are left out, the lowest
    /// always stays. `None`: no cap. Applies from the next fetch of a master after the network
    /// changes; downloads keep their own variant choice, and a downloaded master is not capped.
    pub metered_max_bandwidth: Option<u64>,
    /// The same cap while the network is not metered (Wi-Fi, Ethernet); `None`: no cap.
    pub unmetered_max_bandwidth: Option<u64>,
}

/// Who gets the backend link when a player and downloads (or prefetch) want it at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkPolicy {
    /// While a player waits for bytes (or has less than `playback_ahead_bytes` ahead of it),
    /// downloads and prefetch take no bytes from their connections and start none; they go on
    /// once every player is satisfied. The playing resource's own fill never waits.
    #[default]
    Yield,
    /// Nothing waits: every transfer takes what TCP gives it.
    Share,
}

impl std::fmt::Display for LinkPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Yield => "yield",
            Self::Share => "share",
        })
    }
}

impl std::str::FromStr for LinkPolicy {
    type Err = crate::error::ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "yield" => Ok(Self::Yield),
            "share" => Ok(Self::Share),
            _ => Err(crate::error::ParseError::new(
                "link policy",
                s,
                "\"yield\" or \"share\"",
            )),
        }
    }
}

/// The device's connectivity, as reported by the app's connectivity callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// Any network is available.
    pub online: bool,
    /// The network is metered (cellular, hotspot).
    pub metered: bool,
}

impl Default for NetworkState {
    /// Online and unmetered: what a desktop, which reports nothing, starts from (the default of
    /// `Config::initial_network`).
    fn default() -> Self {
        Self {
            online: true,
            metered: false,
        }
    }
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
            resident_resources: 256,
            link_policy: LinkPolicy::Yield,
            playback_ahead_bytes: 1024 * 1024,
            metered_max_bandwidth: None,
            unmetered_max_bandwidth: None,
        }
    }

    /// Checks every value before a server starts with it: a clear [`Error::Config`] naming the
    /// field for a value that is zero where that cannot work, absurdly large, or malformed,
    /// instead of a panic or a silent adjustment later. Called by the server's start.
    pub fn validate(&self) -> Result<(), Error> {
        let durations = [
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
            ("resolver_timeout", self.resolver_timeout),
            ("client_header_timeout", self.client_header_timeout),
            ("client_stall_timeout", self.client_stall_timeout),
            ("sync_interval", self.sync_interval),
        ];
        for (name, value) in durations {
            if value < Duration::from_millis(1) || value > MAX_DURATION {
                return Err(Error::config(format!(
                    "{name} must be between 1 ms and 24 h, not {value:?}"
                )));
            }
        }
        let counts = [
            ("upstream_attempts", u64::from(self.upstream_attempts), 100),
            ("download_workers", self.download_workers as u64, 64),
            ("max_connections", self.max_connections as u64, 65_536),
        ];
        for (name, value, max) in counts {
            if value == 0 || value > max {
                return Err(Error::config(format!(
                    "{name} must be between 1 and {max}, not {value}"
                )));
            }
        }
        if self.resident_resources > 1_000_000 {
            return Err(Error::config(format!(
                "resident_resources must be at most 1000000, not {}",
                self.resident_resources
            )));
        }
        if self.playback_ahead_bytes == 0 || self.playback_ahead_bytes > MAX_AHEAD_BYTES {
            return Err(Error::config(format!(
                "playback_ahead_bytes must be between 1 and {MAX_AHEAD_BYTES}, not {}",
                self.playback_ahead_bytes
            )));
        }
        if self.cache_dir.as_os_str().is_empty() {
            return Err(Error::config("cache_dir must not be empty"));
        }
        if let Some(token) = &self.token {
            if token.is_empty()
                || !token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Error::config(
                    "the token must be non-empty and use only A-Z a-z 0-9 - _",
                ));
            }
        }
        Ok(())
    }

    /// The bandwidth cap on the HLS variants a served master offers on a network of `network`'s
    /// kind, if any.
    pub(crate) fn variant_cap(&self, network: NetworkState) -> Option<u64> {
        if network.metered {
            self.metered_max_bandwidth
        } else {
            self.unmetered_max_bandwidth
        }
    }

    /// How long a request may wait for the backend before giving up: every attempt's timeouts.
    /// Bounded (at most 100 attempts of two days) once [`validate`](Self::validate) passed.
    pub(crate) fn patience(&self) -> Duration {
        (self.read_timeout.saturating_add(self.connect_timeout)).saturating_mul(self.upstream_attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(adjust: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::new("/tmp/x");
        adjust(&mut config);
        match config.validate() {
            Err(Error::Config(message)) => message.to_string(),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Config::new("/tmp/x").validate().is_ok());
    }

    #[test]
    fn zero_and_absurd_values_are_refused_by_name() {
        assert!(refused(|c| c.read_timeout = Duration::ZERO).starts_with("read_timeout"));
        // Long.MAX_VALUE milliseconds from Kotlin: once an overflow panic in `patience`.
        assert!(refused(|c| c.connect_timeout = Duration::from_millis(u64::MAX)).starts_with("connect_timeout"));
        assert!(refused(|c| c.sync_interval = Duration::from_secs(25 * 3600)).starts_with("sync_interval"));
        assert!(refused(|c| c.resolver_timeout = Duration::from_micros(10)).starts_with("resolver_timeout"));
        assert!(refused(|c| c.upstream_attempts = 0).starts_with("upstream_attempts"));
        assert!(refused(|c| c.download_workers = 0).starts_with("download_workers"));
        assert!(refused(|c| c.max_connections = usize::MAX).starts_with("max_connections"));
        assert!(refused(|c| c.cache_dir = PathBuf::new()).starts_with("cache_dir"));
        assert!(refused(|c| c.resident_resources = usize::MAX).starts_with("resident_resources"));
        assert!(refused(|c| c.token = Some("a/b".into())).contains("token"));
        assert!(refused(|c| c.playback_ahead_bytes = 0).starts_with("playback_ahead_bytes"));
        assert!(refused(|c| c.playback_ahead_bytes = u64::MAX).starts_with("playback_ahead_bytes"));
    }

    #[test]
    fn patience_of_the_largest_valid_config_does_not_overflow() {
        let mut c = Config::new("/tmp/x");
        (c.read_timeout, c.connect_timeout, c.upstream_attempts) = (MAX_DURATION, MAX_DURATION, 100);
        assert!(c.validate().is_ok());
        assert_eq!(c.patience(), MAX_DURATION * 200);
    }
}
