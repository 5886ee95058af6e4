//! The facade: one plain Rust API over the server, used by Rust apps, the CLI, the HTTP control
//! API and (later) the JNI bridge alike.
//!
//! [`Server`] is the async API for tokio users; [`BlockingServer`] owns its own small runtime
//! for callers without one (the JNI layer). Both delegate to a private [`Inner`] that the HTTP
//! handlers share.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::cache::{fill::join_error, Cache, TrackRow};
use crate::catalog::{track_key, Catalog};
use crate::config::Config;
use crate::download::{DownloadInfo, DownloadTarget, Downloader, NetworkState};
use crate::error::Error;
use crate::fetch::{Fetcher, Resolver};
use crate::http::MediaTarget;
use crate::telemetry::{Counters, Stats};

/// A track to register in the catalog (the body of `PUT /api/tracks/ID`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackSpec {
    /// Where the backend serves it; may be re-signed later by registering again.
    pub url: String,
    /// Expected SHA-256 of the whole body, hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Expected size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// MIME type to serve if the backend sends none.
    #[serde(default)]
    pub mime: Option<String>,
}

/// A catalog track and its cache state (the JSON of `GET /api/tracks/ID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackInfo {
    /// The track's ID.
    pub id: String,
    /// Its backend URL.
    pub url: String,
    /// Expected SHA-256, lowercase hex.
    pub sha256: Option<String>,
    /// Total size in bytes: from the backend once known, else from the catalog.
    pub size: Option<u64>,
    /// MIME type from the catalog.
    pub mime: Option<String>,
    /// Bytes cached (servable now).
    pub cached_bytes: u64,
    /// Bytes durably recorded in the index (survive a crash).
    pub recorded_bytes: u64,
    /// Every byte is cached.
    pub complete: bool,
    /// Pinned by an offline download.
    pub pinned: bool,
}

/// State shared by the facade and the HTTP handlers.
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) token: String,
    pub(crate) base_url: String,
    pub(crate) cache: Arc<Cache>,
    pub(crate) fetcher: Arc<Fetcher>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) downloader: Arc<Downloader>,
    /// When the cached live HLS playlists were fetched (refetched once older than their target duration).
    pub(crate) live_playlists: crate::hls::LiveTable,
    /// Held for the server's lifetime: one server per cache (and downloads) directory.
    _lock: Vec<std::fs::File>,
}

impl Inner {
    /// How long a request may wait for the backend before giving up: every attempt's timeout.
    pub(crate) fn patience(&self) -> Duration {
        self.config.patience()
    }

    /// Resolves `tracks/ID` to its cache key and backend URL.
    pub(crate) fn track_target(&self, id: &str) -> Result<MediaTarget, Error> {
        let track = self
            .catalog
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("no track with ID {id:?}")))?;
        let url = Url::parse(&track.url).map_err(|e| Error::InvalidArgument(format!("bad track URL: {e}")))?;
        Ok(MediaTarget {
            key: track_key(id),
            url,
            track_id: Some(id.to_string()),
            mime: track.mime.clone(),
        })
    }

    /// Every catalog track, sorted by ID.
    pub(crate) fn tracks(&self) -> Vec<TrackInfo> {
        self.catalog.all().iter().map(|t| self.info_of(t)).collect()
    }

    /// One catalog track.
    pub(crate) fn track(&self, id: &str) -> Result<TrackInfo, Error> {
        let track = self
            .catalog
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("no track with ID {id:?}")))?;
        Ok(self.info_of(&track))
    }

    fn info_of(&self, track: &TrackRow) -> TrackInfo {
        let cached = self.cache.info(&track_key(&track.id)).unwrap_or_default();
        TrackInfo {
            id: track.id.clone(),
            url: track.url.clone(),
            sha256: track.sha256.clone(),
            size: cached.size.or(track.size),
            mime: track.mime.clone(),
            cached_bytes: cached.cached_bytes,
            recorded_bytes: cached.recorded_bytes,
            complete: cached.complete,
            pinned: cached.pinned,
        }
    }

    /// Registers or updates a track.
    pub(crate) async fn put_track(&self, id: &str, spec: TrackSpec) -> Result<TrackInfo, Error> {
        validate_track_id(id)?;
        let url = self.fetcher.check_origin(&spec.url)?;
        let sha256 = match spec.sha256 {
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Some(h.to_ascii_lowercase()),
            Some(_) => return Err(Error::InvalidArgument("sha256 must be 64 hex digits".into())),
            None => None,
        };
        if let Some(mime) = &spec.mime {
            if mime.parse::<mime_guess::mime::Mime>().is_err() {
                return Err(Error::InvalidArgument(format!("bad MIME type {mime:?}")));
            }
        }
        let row = TrackRow {
            id: id.to_string(),
            url: url.to_string(),
            sha256,
            size: spec.size,
            mime: spec.mime,
        };
        let (cache, stored) = (self.cache.clone(), row.clone());
        tokio::task::spawn_blocking(move || cache.put_track(&stored))
            .await
            .map_err(join_error)??;
        self.cache.retarget(&track_key(id), &url);
        self.catalog.insert(row.clone());
        Ok(self.info_of(&row))
    }

    /// A statistics snapshot.
    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        let (cache_bytes, pinned_bytes, entries) = self.cache.totals();
        Stats {
            hits: Counters::get(&c.hits),
            misses: Counters::get(&c.misses),
            bytes_from_cache: Counters::get(&c.bytes_from_cache),
            bytes_from_upstream: Counters::get(&c.bytes_from_upstream),
            cache_bytes,
            pinned_bytes,
            entries,
            active_streams: Counters::get(&c.active_streams),
            evictions: Counters::get(&c.evictions),
            max_cache_bytes: self.cache.max_bytes(),
            requests: c.requests(),
            upstream_fetches: Counters::get(&c.upstream_fetches),
            upstream_retries: Counters::get(&c.upstream_retries),
            upstream_failures: Counters::get(&c.upstream_failures),
            ttfb: c.ttfb.snapshot(),
            seek_ttfb: c.seek_ttfb.snapshot(),
            downloads: self.downloader.count_by_state(),
            recent_errors: c.recent_errors(),
        }
    }
}

/// Track IDs appear in URLs: 1–128 characters of `A-Z a-z 0-9 . _ ~ -`, not starting with `.`.
fn validate_track_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "bad track ID {id:?}: use 1-128 characters of A-Z a-z 0-9 . _ ~ - (not starting with .)"
        )))
    }
}

/// A running server (async API).
pub struct Server {
    inner: Arc<Inner>,
    addr: SocketAddr,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stopped: AtomicBool,
}

impl Server {
    /// Binds `127.0.0.1:config.port` and starts serving.
    pub async fn start(config: Config) -> Result<Self, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
            .await
            .map_err(|e| Error::Config(format!("cannot bind 127.0.0.1:{}: {e}", config.port)))?;
        Self::with_listener(listener, config).await
    }

    /// Starts serving on an already-bound listener, which must be on a loopback address.
    pub async fn with_listener(listener: TcpListener, config: Config) -> Result<Self, Error> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("listener has no address: {e}")))?;
        if !addr.ip().is_loopback() {
            return Err(Error::Config(format!(
                "refusing to serve on {addr}: only loopback addresses are allowed"
            )));
        }
        config.validate()?;
        let token = match &config.token {
            Some(t) => t.clone(),
            None => random_token()?,
        };
        let counters = Arc::new(Counters::default());
        let fetcher = Arc::new(Fetcher::new(&config, counters.clone())?);
        let (dir, downloads, f2, c2, max, attempts) = (
            config.cache_dir.clone(),
            config.downloads_dir.clone(),
            fetcher.clone(),
            counters.clone(),
            config.max_cache_bytes,
            config.upstream_attempts,
        );
        let (workers, allow_metered) = (config.download_workers, config.allow_metered_downloads);
        let patience = config.patience();
        let f3 = fetcher.clone();
        let (lock, cache, catalog, downloader) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let mut lock = vec![lock_dir(&dir)?];
            if let Some(downloads) = downloads.as_deref().filter(|d| *d != dir) {
                lock.push(lock_dir(downloads)?);
            }
            let (cache, tracks) = Cache::open(&dir, downloads.as_deref(), f2, c2, max, attempts)?;
            let catalog = Arc::new(Catalog::new(tracks));
            let downloader = Downloader::open(cache.clone(), catalog.clone(), f3, workers, allow_metered, patience)?;
            Ok((lock, cache, catalog, downloader))
        })
        .await
        .map_err(join_error)??;
        let base_url = format!("http://{addr}/{token}/");
        let sync_interval = config.sync_interval;
        let inner = Arc::new(Inner {
            config,
            token,
            base_url,
            cache: cache.clone(),
            fetcher,
            counters,
            catalog,
            downloader: downloader.clone(),
            live_playlists: crate::hls::LiveTable::default(),
            _lock: lock,
        });
        downloader.set_network(inner.config.initial_network);
        let cancel = CancellationToken::new();
        let accept = tokio::spawn(crate::server::run(listener, inner.clone(), cancel.clone()));
        let persister = tokio::spawn(cache.persist_loop(sync_interval));
        downloader.start();
        tracing::info!(%addr, "embedded server started");
        Ok(Self {
            inner,
            addr,
            cancel,
            tasks: Mutex::new(vec![accept, persister]),
            stopped: AtomicBool::new(false),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/TOKEN/`.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The secret path token.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// The local URL of catalog track `id`.
    pub fn track_url(&self, id: &str) -> String {
        format!("{}tracks/{id}", self.inner.base_url)
    }

    /// The local URL that serves `remote` through the cache; fails if its origin is not allowed.
    pub fn stream_url(&self, remote: &str) -> Result<String, Error> {
        let url = self.inner.fetcher.check_origin(remote)?;
        Ok(crate::hls::local_url(&self.inner.base_url, &url))
    }

    /// Registers or updates catalog track `id`.
    pub async fn put_track(&self, id: &str, spec: TrackSpec) -> Result<TrackInfo, Error> {
        self.check()?;
        self.inner.put_track(id, spec).await
    }

    /// Catalog track `id` with its cache state.
    pub fn track(&self, id: &str) -> Result<TrackInfo, Error> {
        self.check()?;
        self.inner.track(id)
    }

    /// Every catalog track.
    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.inner.tracks()
    }

    /// A statistics snapshot.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Sets (`Some`) or removes (`None`) a header sent upstream, e.g. a refreshed bearer token.
    pub fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error> {
        self.check()?;
        self.inner.fetcher.set_header(name, value)
    }

    /// Installs (or removes) the hook asked for fresh credentials on 401/403.
    pub fn set_resolver(&self, resolver: Option<Arc<dyn Resolver>>) {
        self.inner.fetcher.set_resolver(resolver);
    }

    /// Queues an offline download (or returns the existing one for the same resource).
    pub async fn download(&self, target: DownloadTarget, priority: i64) -> Result<DownloadInfo, Error> {
        self.check()?;
        self.inner.downloader.enqueue(target, priority).await
    }

    /// Every download, highest priority first.
    pub fn downloads(&self) -> Vec<DownloadInfo> {
        self.inner.downloader.list()
    }

    /// One download.
    pub fn download_info(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.inner.downloader.info(id)
    }

    /// Pauses a download.
    pub async fn pause_download(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.check()?;
        self.inner.downloader.pause(id).await
    }

    /// Resumes a paused download, or retries a failed one.
    pub async fn resume_download(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.check()?;
        self.inner.downloader.resume(id).await
    }

    /// Cancels a download, unpins it and frees its bytes.
    pub async fn cancel_download(&self, id: &str) -> Result<(), Error> {
        self.check()?;
        self.inner.downloader.cancel(id).await
    }

    /// Updates of every download: state changes at once, progress at most every 250 ms each.
    /// A slow subscriber misses intermediate updates (`RecvError::Lagged`), never the latest.
    pub fn download_events(&self) -> tokio::sync::broadcast::Receiver<DownloadInfo> {
        self.inner.downloader.subscribe()
    }

    /// Reports the device's connectivity (from the app's connectivity callback).
    pub fn set_network(&self, state: NetworkState) {
        self.inner.downloader.set_network(state);
    }

    /// The last reported connectivity.
    pub fn network(&self) -> NetworkState {
        self.inner.downloader.network()
    }

    /// Fetches the first `bytes` (default `Config::prefetch_bytes`) of each track in the
    /// background, into the ordinary evictable cache, so that starting them is instant.
    pub fn prefetch(&self, tracks: &[String], bytes: Option<u64>) -> Result<(), Error> {
        self.check()?;
        self.inner
            .downloader
            .prefetch(tracks, bytes.unwrap_or(self.inner.config.prefetch_bytes))
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.inner.config.cache_dir.clone()
    }

    /// The directory of downloaded bytes and the index, if apart from the cache directory.
    pub fn downloads_dir(&self) -> Option<PathBuf> {
        self.inner.config.downloads_dir.clone()
    }

    /// Stops accepting, ends connections (after a short grace), stops fills and records every
    /// written range. Idempotent.
    pub async fn shutdown(&self) -> Result<(), Error> {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.cancel.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let mut handles = tasks.into_iter();
        if let Some(accept) = handles.next() {
            let _ = accept.await;
        }
        self.inner.downloader.shutdown().await;
        let result = self.inner.cache.shutdown().await;
        for handle in handles {
            let _ = handle.await;
        }
        tracing::info!("embedded server stopped");
        result
    }

    fn check(&self) -> Result<(), Error> {
        if self.stopped.load(Ordering::SeqCst) {
            Err(Error::Stopped)
        } else {
            Ok(())
        }
    }
}

/// Time [`BlockingServer::shutdown`] gives the orderly stop (connections' grace, downloads,
/// the final sync of written ranges) before it gives up waiting.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);

/// Time a dropped [`BlockingServer`] waits for blocking work still running on its runtime (a
/// file read, a credential resolver call) before it leaves it behind.
const RUNTIME_BUDGET: Duration = Duration::from_secs(2);

/// A running server with its own runtime, for callers without tokio (the JNI layer).
///
/// Nothing here waits without a bound: [`shutdown`](Self::shutdown) gives the orderly stop
/// 5 s, and dropping the value gives blocking work 2 s more (a resolver that never returns is
/// left running on its own thread). Calls never wait for a shutdown in progress: they fail with
/// [`Error::Stopped`] as soon as it has begun.
pub struct BlockingServer {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    server: RwLock<Option<Arc<Server>>>,
}

impl BlockingServer {
    /// Starts a runtime with two worker threads and a server on it.
    pub fn start(config: Config) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(8)
            .thread_name("embedded-server")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start a runtime: {e}")))?;
        let server = match runtime.block_on(Server::start(config)) {
            Ok(server) => server,
            Err(e) => {
                runtime.shutdown_timeout(RUNTIME_BUDGET);
                return Err(e);
            }
        };
        Ok(Self {
            runtime: Some(runtime),
            server: RwLock::new(Some(Arc::new(server))),
        })
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, Error> {
        self.runtime.as_ref().ok_or(Error::Stopped)
    }

    fn server(&self) -> Result<Arc<Server>, Error> {
        self.server
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Error::Stopped)
    }

    /// `http://127.0.0.1:PORT/TOKEN/`.
    pub fn base_url(&self) -> Result<String, Error> {
        Ok(self.server()?.base_url().to_string())
    }

    /// The local URL of catalog track `id`.
    pub fn track_url(&self, id: &str) -> Result<String, Error> {
        Ok(self.server()?.track_url(id))
    }

    /// The local URL that serves `remote` through the cache.
    pub fn stream_url(&self, remote: &str) -> Result<String, Error> {
        self.server()?.stream_url(remote)
    }

    /// Registers or updates catalog track `id`.
    pub fn put_track(&self, id: &str, spec: TrackSpec) -> Result<TrackInfo, Error> {
        let server = self.server()?;
        self.runtime()?.block_on(server.put_track(id, spec))
    }

    /// Catalog track `id` with its cache state.
    pub fn track(&self, id: &str) -> Result<TrackInfo, Error> {
        self.server()?.track(id)
    }

    /// A statistics snapshot.
    pub fn stats(&self) -> Result<Stats, Error> {
        Ok(self.server()?.stats())
    }

    /// Sets or removes an upstream header.
    pub fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error> {
        self.server()?.set_header(name, value)
    }

    /// Installs or removes the credential refresh hook.
    pub fn set_resolver(&self, resolver: Option<Arc<dyn Resolver>>) -> Result<(), Error> {
        self.server()?.set_resolver(resolver);
        Ok(())
    }

    /// Queues an offline download.
    pub fn download(&self, target: DownloadTarget, priority: i64) -> Result<DownloadInfo, Error> {
        let server = self.server()?;
        self.runtime()?.block_on(server.download(target, priority))
    }

    /// Every download.
    pub fn downloads(&self) -> Result<Vec<DownloadInfo>, Error> {
        Ok(self.server()?.downloads())
    }

    /// One download.
    pub fn download_info(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.server()?.download_info(id)
    }

    /// Pauses a download.
    pub fn pause_download(&self, id: &str) -> Result<DownloadInfo, Error> {
        let server = self.server()?;
        self.runtime()?.block_on(server.pause_download(id))
    }

    /// Resumes a download.
    pub fn resume_download(&self, id: &str) -> Result<DownloadInfo, Error> {
        let server = self.server()?;
        self.runtime()?.block_on(server.resume_download(id))
    }

    /// Cancels a download and frees its bytes.
    pub fn cancel_download(&self, id: &str) -> Result<(), Error> {
        let server = self.server()?;
        self.runtime()?.block_on(server.cancel_download(id))
    }

    /// Reports the device's connectivity.
    pub fn set_network(&self, state: NetworkState) -> Result<(), Error> {
        self.server()?.set_network(state);
        Ok(())
    }

    /// Prefetches the first bytes of tracks.
    pub fn prefetch(&self, tracks: &[String], bytes: Option<u64>) -> Result<(), Error> {
        self.server()?.prefetch(tracks, bytes)
    }

    /// Download updates for a thread without a runtime (the JNI listener): block on
    /// [`DownloadEvents::recv`], which ends once the server stops.
    pub fn download_events(&self) -> Result<DownloadEvents, Error> {
        let server = self.server()?;
        Ok(DownloadEvents {
            receiver: server.download_events(),
            stopped: server.cancel.child_token(),
            runtime: self.runtime()?.handle().clone(),
            server,
            pending: Default::default(),
        })
    }

    /// Stops the server, waiting at most 5 s for the orderly stop; later calls return
    /// [`Error::Stopped`]. Idempotent.
    pub fn shutdown(&self) -> Result<(), Error> {
        let server = self.server.write().unwrap_or_else(|p| p.into_inner()).take();
        let Some(server) = server else { return Ok(()) };
        let runtime = self.runtime()?;
        match runtime.block_on(async { tokio::time::timeout(SHUTDOWN_BUDGET, server.shutdown()).await }) {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("the server did not stop within {SHUTDOWN_BUDGET:?}; its tasks are dropped");
                Ok(())
            }
        }
    }
}

impl Drop for BlockingServer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "shutdown on drop failed");
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(RUNTIME_BUDGET);
        }
    }
}

/// A blocking subscription to download updates (see [`Server::download_events`]).
pub struct DownloadEvents {
    receiver: tokio::sync::broadcast::Receiver<DownloadInfo>,
    stopped: CancellationToken,
    runtime: tokio::runtime::Handle,
    server: Arc<Server>,
    /// The current state of every download, queued after this reader fell behind.
    pending: std::collections::VecDeque<DownloadInfo>,
}

impl DownloadEvents {
    /// Blocks until the next update; `None` once the server stops. A reader too slow for the
    /// updates loses none that matter: when it falls behind, the updates it missed are replaced
    /// by the current state of every download. Keep the one with the highest
    /// [`DownloadInfo::version`] per ID.
    pub fn recv(&mut self) -> Option<DownloadInfo> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            if let Some(info) = self.pending.pop_front() {
                return Some(info);
            }
            let (receiver, stopped) = (&mut self.receiver, &self.stopped);
            let event = self.runtime.block_on(async {
                tokio::select! {
                    _ = stopped.cancelled() => None,
                    event = receiver.recv() => Some(event),
                }
            })?;
            match event {
                Ok(info) => return Some(info),
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "a download listener fell behind; sending every download");
                    self.pending.extend(self.server.downloads());
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// 128 random bits, hex.
fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Config(format!("no randomness for the token: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Creates the cache directory and takes its exclusive lock.
fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Config(format!("cannot create cache directory {}: {e}", dir.display())))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Config(format!("cannot open {}: {e}", path.display())))?;
    file.try_lock().map_err(|_| {
        Error::Config(format!(
            "the cache directory {} is in use by another server",
            dir.display()
        ))
    })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_ids_are_url_safe() {
        assert!(validate_track_id("abc-1.mp3_~").is_ok());
        for bad in ["", ".", "..", ".x", "a/b", "a b", "a%2f", &"x".repeat(129)] {
            assert!(validate_track_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_128_bit_hex() {
        let t = random_token().unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, random_token().unwrap());
    }
}
