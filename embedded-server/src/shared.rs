//! The state the facade ([`crate::Server`]) and the HTTP handlers share: the server's parts, and
//! what resolving a track or a stats snapshot needs of them.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::cache::{fill::join_error, Cache, TrackRow};
use crate::catalog::{track_key, Catalog, TrackInfo, TrackSpec};
use crate::config::Config;
use crate::download::Downloader;
use crate::error::Error;
use crate::fetch::Fetcher;
use crate::management::{CachedResource, ClearedCache};
use crate::telemetry::{Counters, Stats};

/// What a media route resolves to.
pub(crate) struct MediaTarget {
    pub(crate) key: String,
    pub(crate) url: Url,
    pub(crate) track_id: Option<String>,
    pub(crate) mime: Option<String>,
}

/// State shared by the facade and the HTTP handlers. Built only by [`Inner::open`]; its parts
/// are read through the accessors below and never replaced.
pub(crate) struct Inner {
    config: Config,
    token: String,
    base_url: String,
    cache: Arc<Cache>,
    fetcher: Arc<Fetcher>,
    counters: Arc<Counters>,
    catalog: Arc<Catalog>,
    downloader: Arc<Downloader>,
    /// When the cached live HLS playlists were fetched (refetched once older than their target duration).
    live_playlists: crate::hls::LiveTable,
    /// Held for the server's lifetime: one server per cache (and downloads) directory.
    _lock: Vec<std::fs::File>,
}

impl Inner {
    /// Opens everything a server needs that is not its listener: checks `config`, locks the
    /// directories, opens the cache and the download queue; `addr` names the local address
    /// the base URL points at. Background tasks are the caller's to start.
    pub(crate) async fn open(config: Config, addr: std::net::SocketAddr) -> Result<Arc<Self>, Error> {
        config.validate()?;
        let token = match &config.token {
            Some(t) => t.clone(),
            None => random_token()?,
        };
        let counters = Arc::new(Counters::default());
        let fetcher = Arc::new(Fetcher::new(&config, counters.clone())?);
        let (dir, downloads, f2, c2) = (
            config.cache_dir.clone(),
            config.downloads_dir.clone(),
            fetcher.clone(),
            counters.clone(),
        );
        let options = crate::cache::Options {
            max_bytes: config.max_cache_bytes,
            attempts: config.upstream_attempts,
            resident_max: config.resident_resources,
            link_policy: config.link_policy,
            playback_ahead: config.playback_ahead_bytes,
        };
        let (workers, allow_metered) = (config.download_workers, config.allow_metered_downloads);
        let patience = config.patience();
        let f3 = fetcher.clone();
        let (lock, cache, catalog, downloader) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let mut lock = vec![lock_dir(&dir)?];
            if let Some(downloads) = downloads.as_deref().filter(|d| *d != dir) {
                lock.push(lock_dir(downloads)?);
            }
            let (cache, tracks) = Cache::open(&dir, downloads.as_deref(), f2, c2, options)?;
            let catalog = Arc::new(Catalog::new(tracks));
            let downloader = Downloader::open(cache.clone(), catalog.clone(), f3, workers, allow_metered, patience)?;
            Ok((lock, cache, catalog, downloader))
        })
        .await
        .map_err(join_error)??;
        let base_url = format!("http://{addr}/{token}/");
        Ok(Arc::new(Inner {
            config,
            token,
            base_url,
            cache,
            fetcher,
            counters,
            catalog,
            downloader,
            live_playlists: crate::hls::LiveTable::default(),
            _lock: lock,
        }))
    }

    /// The configuration the server was started with (validated).
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The secret every route but `/healthz` is under.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// `http://ADDR/TOKEN/`: what every local URL starts with.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The cache.
    pub(crate) fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The backend client (its origin list and headers).
    pub(crate) fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// The counters behind stats and metrics.
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The download queue and its workers.
    pub(crate) fn downloader(&self) -> &Arc<Downloader> {
        &self.downloader
    }

    /// When each cached live playlist was fetched.
    pub(crate) fn live_playlists(&self) -> &crate::hls::LiveTable {
        &self.live_playlists
    }

    /// How long a request may wait for the backend before giving up: every attempt's timeout.
    pub(crate) fn patience(&self) -> Duration {
        self.config.patience()
    }

    /// The bandwidth cap on the HLS variants a served master offers now: the configured cap of the
    /// network kind the app last reported, if any (SPEC §7).
    pub(crate) fn variant_cap(&self) -> Option<u64> {
        self.variant_cap_on(self.downloader.network())
    }

    /// The bandwidth cap on the HLS variants a served master offers on a network like `network`.
    pub(crate) fn variant_cap_on(&self, network: crate::config::NetworkState) -> Option<u64> {
        self.config.variant_cap(network)
    }

    /// Fetches the first `bytes` of each track into the evictable cache in the background; of an
    /// HLS track, the start of the variant a player would pick under the current variant cap.
    pub(crate) fn prefetch(&self, tracks: &[String], bytes: u64) -> Result<(), Error> {
        self.downloader.prefetch(tracks, bytes, self.variant_cap())
    }

    /// Resolves `tracks/ID` to its cache key and backend URL.
    pub(crate) fn track_target(&self, id: &str) -> Result<MediaTarget, Error> {
        let track = self
            .catalog
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("no track with ID {id:?}")))?;
        let url = Url::parse(&track.url).map_err(|e| Error::invalid_caused("bad track URL", e))?;
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
            Some(_) => return Err(Error::invalid("sha256 must be 64 hex digits")),
            None => None,
        };
        if let Some(mime) = &spec.mime {
            if mime.parse::<mime_guess::mime::Mime>().is_err() {
                return Err(Error::invalid(format!("bad MIME type {mime:?}")));
            }
        }
        let row = TrackRow {
            id: id.to_string(),
            url: url.to_string(),
            sha256,
            size: spec.size,
            mime: spec.mime,
        };
        self.cache.put_track(row.clone()).await?;
        self.cache.retarget(&track_key(id), &url).await?;
        self.catalog.insert(row.clone());
        Ok(self.info_of(&row))
    }

    /// Removes catalog track `id`: cancels its downloads (unpinning their bytes), removes its
    /// cached bytes unless a player reads them now (then they leave with ordinary eviction), and
    /// forgets the track, in the index too.
    pub(crate) async fn remove_track(&self, id: &str) -> Result<(), Error> {
        if self.catalog.get(id).is_none() {
            return Err(Error::NotFound(format!("no track with ID {id:?}")));
        }
        for download in self.downloader.list() {
            if download.track.as_deref() == Some(id) {
                match self.downloader.cancel(&download.id).await {
                    Ok(()) | Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.cache.remove(vec![track_key(id)], true).await?;
        self.cache.delete_track(id.to_string()).await?;
        self.catalog.remove(id);
        Ok(())
    }

    /// How much of remote `url` (on an allowed origin) the cache holds, under the key a stream
    /// URL or a URL download uses; all zero when it holds nothing.
    pub(crate) fn cached(&self, url: &str) -> Result<CachedResource, Error> {
        let url = self.fetcher.check_origin(url)?.to_string();
        let info = self.cache.info(&url).unwrap_or_default();
        Ok(CachedResource {
            url,
            cached_bytes: info.cached_bytes,
            size: info.size,
            complete: info.complete,
            pinned: info.pinned,
        })
    }

    /// Removes every evictable resource (see [`Cache::clear_evictable`]).
    pub(crate) async fn clear_cache(&self) -> Result<ClearedCache, Error> {
        let (resources, bytes) = self.cache.clear_evictable().await?;
        tracing::info!(resources, bytes, "evictable cache cleared");
        Ok(ClearedCache { resources, bytes })
    }

    /// Sets the cache limit, evicting at once down to it (see [`Cache::set_max_bytes`]).
    pub(crate) async fn set_cache_limit(&self, bytes: u64) -> Result<(), Error> {
        self.cache.set_max_bytes(bytes).await?;
        tracing::info!(bytes, "cache limit set");
        Ok(())
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
            storage_full: self.cache.storage_full(),
            storage_write_errors: Counters::get(&c.storage_write_errors),
            bytes_passed_through: Counters::get(&c.bytes_passed_through),
            ttfb: c.ttfb.snapshot(),
            seek_ttfb: c.seek_ttfb.snapshot(),
            downloads: self.downloader.count_by_state(),
            playback_hungry: self.cache.arbiter().hungry() as u64,
            fills_yielding: self.cache.arbiter().waiting_fills() as u64,
            yield_ms: self.cache.arbiter().yield_ms(),
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
        Err(Error::invalid(format!(
            "bad track ID {id:?}: use 1-128 characters of A-Z a-z 0-9 . _ ~ - (not starting with .)"
        )))
    }
}

/// 128 random bits, hex.
fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::config_caused("no randomness for the token", e))?;
    Ok(hex::encode(bytes))
}

/// Creates the cache directory and takes its exclusive lock.
fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::config_caused(format_args!("cannot create cache directory {}", dir.display()), e))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::config_caused(format_args!("cannot open {}", path.display()), e))?;
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => Error::config(format!(
            "the cache directory {} is in use by another server",
            dir.display()
        )),
        std::fs::TryLockError::Error(e) => Error::config_caused(format_args!("cannot lock {}", path.display()), e),
    })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_hex() {
        let t = random_token().unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, random_token().unwrap());
    }

    #[test]
    fn track_ids_are_url_safe() {
        assert!(validate_track_id("abc-1.mp3_~").is_ok());
        for bad in ["", ".", "..", ".x", "a/b", "a b", "a%2f", &"x".repeat(129)] {
            assert!(validate_track_id(bad).is_err(), "{bad:?}");
        }
    }
}
