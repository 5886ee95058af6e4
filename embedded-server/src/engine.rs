//! The facade: one plain Rust API over the server, used by Rust apps, the CLI, the HTTP control
//! API and (later) the JNI bridge alike.
//!
//! [`Server`] is the async API for tokio users; [`BlockingServer`] owns its own small runtime
//! for callers without one (the JNI layer). Both delegate to the [`Inner`] state that the HTTP
//! handlers share (`shared.rs`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::{TrackInfo, TrackSpec};
use crate::config::Config;
use crate::download::{DownloadInfo, DownloadTarget, NetworkState};
use crate::error::Error;
use crate::fetch::Resolver;
use crate::management::{CachedResource, ClearedCache};
use crate::shared::Inner;
use crate::telemetry::Stats;

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
            .map_err(|e| Error::config_caused(format_args!("cannot bind 127.0.0.1:{}", config.port), e))?;
        Self::with_listener(listener, config).await
    }

    /// Starts serving on an already-bound listener, which must be on a loopback address.
    pub async fn with_listener(listener: TcpListener, config: Config) -> Result<Self, Error> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::config_caused("listener has no address", e))?;
        if !addr.ip().is_loopback() {
            return Err(Error::config(format!(
                "refusing to serve on {addr}: only loopback addresses are allowed"
            )));
        }
        let inner = Inner::open(config, addr).await?;
        let (cache, downloader, sync_interval) = (
            inner.cache().clone(),
            inner.downloader().clone(),
            inner.config().sync_interval,
        );
        downloader.set_network(inner.config().initial_network);
        let cancel = CancellationToken::new();
        let accept = tokio::spawn(crate::server::run(listener, inner.clone(), cancel.clone()));
        let persister = tokio::spawn(cache.clone().persist_loop(sync_interval));
        let upkeep = tokio::spawn(cache.upkeep());
        downloader.start();
        tracing::info!(%addr, "embedded server started");
        Ok(Self {
            inner,
            addr,
            cancel,
            tasks: Mutex::new(vec![accept, persister, upkeep]),
            stopped: AtomicBool::new(false),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/TOKEN/`.
    pub fn base_url(&self) -> &str {
        self.inner.base_url()
    }

    /// The secret path token.
    pub fn token(&self) -> &str {
        self.inner.token()
    }

    /// The local URL of catalog track `id`.
    pub fn track_url(&self, id: &str) -> String {
        format!("{}tracks/{id}", self.inner.base_url())
    }

    /// The local URL that serves `remote` through the cache; fails if its origin is not allowed.
    pub fn stream_url(&self, remote: &str) -> Result<String, Error> {
        let url = self.inner.fetcher().check_origin(remote)?;
        Ok(crate::hls::local_url(self.inner.base_url(), &url))
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

    /// Removes catalog track `id`: cancels its downloads, frees its cached bytes (those a player
    /// reads now leave with ordinary eviction) and forgets it, in the index too.
    pub async fn remove_track(&self, id: &str) -> Result<(), Error> {
        self.check()?;
        self.inner.remove_track(id).await
    }

    /// How much of remote `url` (on an allowed origin) the cache holds: `complete` means it
    /// plays offline.
    pub fn cached(&self, url: &str) -> Result<CachedResource, Error> {
        self.check()?;
        self.inner.cached(url)
    }

    /// Removes every evictable resource from the cache: pinned (downloaded) resources and those
    /// being read or filled stay. Returns what went; the totals in [`stats`](Self::stats) follow.
    pub async fn clear_cache(&self) -> Result<ClearedCache, Error> {
        self.check()?;
        self.inner.clear_cache().await
    }

    /// Sets the cache limit (bytes, pins included) and evicts at once down to it, least
    /// recently used first; pinned and in-use resources stay, so pins alone may keep the cache
    /// above a limit lowered under them (and new downloads then fail "cache full"). Lasts until
    /// the server stops: the next start takes `Config::max_cache_bytes` again.
    pub async fn set_cache_limit(&self, bytes: u64) -> Result<(), Error> {
        self.check()?;
        self.inner.set_cache_limit(bytes).await
    }

    /// Sets (`Some`) or removes (`None`) a header sent upstream, e.g. a refreshed bearer token.
    pub fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error> {
        self.check()?;
        self.inner.fetcher().set_header(name, value)
    }

    /// Installs (or removes) the hook asked for fresh credentials on 401/403.
    pub fn set_resolver(&self, resolver: Option<Arc<dyn Resolver>>) {
        self.inner.fetcher().set_resolver(resolver);
    }

    /// Queues an offline download (or returns the existing one for the same resource).
    pub async fn download(&self, target: DownloadTarget, priority: i64) -> Result<DownloadInfo, Error> {
        self.download_with_data(target, priority, None).await
    }

    /// Queues an offline download carrying `data`, the app's own metadata (opaque text of at
    /// most [`MAX_DOWNLOAD_DATA`](crate::MAX_DOWNLOAD_DATA) bytes, kept with it across restarts);
    /// for a download that already exists, `Some` data replaces its data.
    pub async fn download_with_data(
        &self,
        target: DownloadTarget,
        priority: i64,
        data: Option<String>,
    ) -> Result<DownloadInfo, Error> {
        self.check()?;
        self.inner.downloader().enqueue(target, priority, data).await
    }

    /// Replaces (or with `None` removes) download `id`'s app data.
    pub async fn set_download_data(&self, id: &str, data: Option<String>) -> Result<DownloadInfo, Error> {
        self.check()?;
        self.inner.downloader().set_data(id, data).await
    }

    /// Every download, highest priority first.
    pub fn downloads(&self) -> Vec<DownloadInfo> {
        self.inner.downloader().list()
    }

    /// One download.
    pub fn download_info(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.inner.downloader().info(id)
    }

    /// Pauses a download.
    pub async fn pause_download(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.check()?;
        self.inner.downloader().pause(id).await
    }

    /// Resumes a paused download, or retries a failed one.
    pub async fn resume_download(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.check()?;
        self.inner.downloader().resume(id).await
    }

    /// Cancels a download, unpins it and frees its bytes.
    pub async fn cancel_download(&self, id: &str) -> Result<(), Error> {
        self.check()?;
        self.inner.downloader().cancel(id).await
    }

    /// Updates of every download: state changes at once, progress at most every 250 ms each.
    /// A slow subscriber misses intermediate updates (`RecvError::Lagged`), never the latest.
    pub fn download_events(&self) -> tokio::sync::broadcast::Receiver<DownloadInfo> {
        self.inner.downloader().subscribe()
    }

    /// Reports the device's connectivity (from the app's connectivity callback).
    pub fn set_network(&self, state: NetworkState) {
        self.inner.downloader().set_network(state);
    }

    /// The last reported connectivity.
    pub fn network(&self) -> NetworkState {
        self.inner.downloader().network()
    }

    /// Fetches the first `bytes` (default `Config::prefetch_bytes`) of each track in the
    /// background, into the ordinary evictable cache, so that starting them is instant.
    pub fn prefetch(&self, tracks: &[String], bytes: Option<u64>) -> Result<(), Error> {
        self.check()?;
        self.inner
            .prefetch(tracks, bytes.unwrap_or(self.inner.config().prefetch_bytes))
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.inner.config().cache_dir.clone()
    }

    /// The directory of downloaded bytes and the index, if apart from the cache directory.
    pub fn downloads_dir(&self) -> Option<PathBuf> {
        self.inner.config().downloads_dir.clone()
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
        self.inner.downloader().shutdown().await;
        let result = self.inner.cache().shutdown().await;
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
            .map_err(|e| Error::config_caused("cannot start a runtime", e))?;
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

/// Writes [`BlockingServer`]'s versions of [`Server`]'s methods: each takes the running server
/// (or fails with [`Error::Stopped`]) and calls the method of the same name. `wait` marks an
/// `async` method (the calling thread waits for it on the runtime), `fallible` a method that
/// returns a `Result`, `infallible` one whose value is wrapped in `Ok`.
macro_rules! blocking {
    ($( $(#[$meta:meta])* $how:ident fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        impl BlockingServer {$(
            $(#[$meta])*
            pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret, Error> {
                let server = self.server()?;
                blocking!(@$how self, server.$name($($arg),*))
            }
        )*}
    };
    (@wait $self:ident, $call:expr) => { $self.runtime()?.block_on($call) };
    (@fallible $self:ident, $call:expr) => { $call };
    (@infallible $self:ident, $call:expr) => { Ok($call) };
}

blocking! {
    /// The local URL of catalog track `id`.
    infallible fn track_url(&self, id: &str) -> String;
    /// The local URL that serves `remote` through the cache.
    fallible fn stream_url(&self, remote: &str) -> String;
    /// Registers or updates catalog track `id`.
    wait fn put_track(&self, id: &str, spec: TrackSpec) -> TrackInfo;
    /// Catalog track `id` with its cache state.
    fallible fn track(&self, id: &str) -> TrackInfo;
    /// A statistics snapshot.
    infallible fn stats(&self) -> Stats;
    /// Sets or removes an upstream header.
    fallible fn set_header(&self, name: &str, value: Option<&str>) -> ();
    /// Installs or removes the credential refresh hook.
    infallible fn set_resolver(&self, resolver: Option<Arc<dyn Resolver>>) -> ();
    /// Queues an offline download.
    wait fn download(&self, target: DownloadTarget, priority: i64) -> DownloadInfo;
    /// Queues an offline download carrying the app's data.
    wait fn download_with_data(&self, target: DownloadTarget, priority: i64, data: Option<String>) -> DownloadInfo;
    /// Replaces or removes a download's app data.
    wait fn set_download_data(&self, id: &str, data: Option<String>) -> DownloadInfo;
    /// Every catalog track.
    infallible fn tracks(&self) -> Vec<TrackInfo>;
    /// Removes a catalog track, its downloads and its cached bytes.
    wait fn remove_track(&self, id: &str) -> ();
    /// How much of a remote URL the cache holds.
    fallible fn cached(&self, url: &str) -> CachedResource;
    /// Removes every evictable resource.
    wait fn clear_cache(&self) -> ClearedCache;
    /// Sets the cache limit, evicting down to it.
    wait fn set_cache_limit(&self, bytes: u64) -> ();
    /// Every download.
    infallible fn downloads(&self) -> Vec<DownloadInfo>;
    /// One download.
    fallible fn download_info(&self, id: &str) -> DownloadInfo;
    /// Pauses a download.
    wait fn pause_download(&self, id: &str) -> DownloadInfo;
    /// Resumes a download.
    wait fn resume_download(&self, id: &str) -> DownloadInfo;
    /// Cancels a download and frees its bytes.
    wait fn cancel_download(&self, id: &str) -> ();
    /// Reports the device's connectivity.
    infallible fn set_network(&self, state: NetworkState) -> ();
    /// Prefetches the first bytes of tracks.
    fallible fn prefetch(&self, tracks: &[String], bytes: Option<u64>) -> ();
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
