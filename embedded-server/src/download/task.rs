//! Running one download: wait for the network, walk a cursor over the whole resource (which
//! starts fills wherever bytes are missing), check the pin limit and the SHA-256, then pin.
//!
//! Failures are sorted into those a retry can fix (the backend dropped, timed out or answered
//! 5xx: retried with exponential backoff and jitter, a bounded number of times) and permanent
//! ones (404, checksum mismatch, no space, cache full), which fail the download at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{stream, TryStreamExt};
use url::Url;

use m3u8_rs::{MediaPlaylist, Playlist};

use super::hls::{self, VariantChoice};
use super::{DownloadState, Downloader};
use crate::cache::Handle;
use crate::error::{Error, UpstreamError};
use crate::fetch::backoff;

/// Least time between two progress events of one download.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Why an attempt failed, and whether another attempt may succeed.
pub(super) struct Failure {
    message: String,
    retryable: bool,
    /// The disk is full: the partial bytes are given back so the rest of the app can write.
    no_space: bool,
}

impl Failure {
    /// Why it failed, for a person.
    pub(super) fn message(&self) -> &str {
        &self.message
    }
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        let retryable = matches!(e, Error::Upstream(u) if u.is_retryable());
        Self {
            message: e.to_string(),
            retryable,
            no_space: matches!(e, Error::NoSpace),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::from(&e)
    }
}

impl From<Arc<Error>> for Failure {
    fn from(e: Arc<Error>) -> Self {
        Self::from(e.as_ref())
    }
}

impl Downloader {
    /// Runs download `id` until it completes (`Ok`) or fails for good (`Err` with the reason).
    pub(super) async fn run(self: &Arc<Self>, id: &str) -> Result<(), String> {
        let mut failures = 0u32;
        loop {
            if !self.gate.is_open() {
                self.set_state(id, DownloadState::WaitingForNetwork);
                self.gate.wait_open().await;
            }
            self.set_state(id, DownloadState::Running);
            let (key, url, track_id, sha256) = self.target(id)?;
            let handle = self
                .cache
                .acquire(&key, &url, track_id.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let attempt = tokio::select! {
                r = self.fetch_whole(id, handle, sha256.as_deref()) => Some(r),
                // Dropping the attempt drops its reader registration: the fill stops unless a
                // player still reads the resource.
                () = self.gate.wait_closed() => None,
            };
            match attempt {
                None => continue,
                Some(Ok(())) => return Ok(()),
                Some(Err(f)) if f.retryable && failures + 1 < self.attempts => {
                    failures += 1;
                    let delay = backoff(failures) * 5;
                    tracing::info!(download = %id, error = %f.message, ?delay, "download attempt failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.gate.wait_closed() => {}
                    }
                }
                Some(Err(f)) => {
                    if f.no_space {
                        self.free_partial(&key).await;
                    }
                    return Err(f.message);
                }
            }
        }
    }

    /// Gives back the bytes of a download that hit a full disk (unless a player reads them).
    async fn free_partial(&self, key: &str) {
        if let Err(e) = self.cache.remove(vec![key.to_string()], false).await {
            tracing::warn!(error = %e, "cannot free a failed download's bytes");
        }
    }

    /// The resource behind download `id`: key, current URL (a track's may have been re-signed),
    /// track ID and expected SHA-256.
    fn target(&self, id: &str) -> Result<(String, Url, Option<String>, Option<String>), String> {
        let row = self
            .lock()
            .get(id)
            .map(|e| e.row.clone())
            .ok_or("the download was removed")?;
        let track = row.track_id.as_deref().and_then(|t| self.catalog.get(t));
        let url = track.as_ref().map(|t| t.url.clone()).unwrap_or(row.url);
        let url = Url::parse(&url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
        Ok((row.key, url, row.track_id, track.and_then(|t| t.sha256)))
    }

    /// One attempt at caching every byte, verifying and pinning.
    async fn fetch_whole(&self, id: &str, handle: Handle, sha256: Option<&str>) -> Result<(), Failure> {
        let key = handle.key().to_string();
        let described = handle.meta(0, self.patience).await?;
        let (meta, generation) = (described.meta, described.generation);
        let url = handle.snapshot().url;
        if crate::hls::is_playlist(meta.mime.as_deref(), url.path()) {
            return self.fetch_hls(id, handle, generation, url).await;
        }
        if let Some(size) = meta.size {
            self.check_pin_room(std::slice::from_ref(&key), size)?;
        }
        let mut reader = handle.reader(generation, 0, None, self.patience);
        let mut last_event = Instant::now();
        while reader.skip().await?.is_some() {
            if last_event.elapsed() >= PROGRESS_EVERY {
                last_event = Instant::now();
                self.changed(id);
            }
        }
        let size = reader.pos();
        let handle = reader.into_handle();
        self.check_pin_room(std::slice::from_ref(&key), size)?;
        if let Some(expected) = sha256 {
            let actual = handle.sha256(generation, size).await?;
            if !actual.eq_ignore_ascii_case(expected) {
                handle.discard(generation).await?;
                return Err(Failure {
                    message: format!(
                        "checksum mismatch: expected sha256 {expected}, got {actual}; the bytes were dropped"
                    ),
                    retryable: false,
                    no_space: false,
                });
            }
        }
        handle.pin().await?;
        Ok(())
    }

    /// Fails with "cache full" if pinning `size` more bytes would exceed the cache's limit.
    fn check_pin_room(&self, keys: &[String], size: u64) -> Result<(), Failure> {
        let pinned = self.cache.pinned_bytes_except(keys);
        let limit = self.cache.max_bytes();
        if pinned.saturating_add(size) > limit {
            return Err(Failure {
                message: format!(
                    "cache full: {size} more pinned bytes would exceed the {limit}-byte cache ({pinned} bytes are \
                     already pinned by other downloads); delete a download or raise the limit"
                ),
                retryable: false,
                no_space: false,
            });
        }
        Ok(())
    }
}

impl Downloader {
    /// One attempt at an HLS download: read the playlist(s), choose the rendition, record every
    /// member, cache them [`SEGMENTS_AT_ONCE`] at a time (segments are small, so one at a time
    /// would leave the link idle for a round trip per segment), check the pin limit for their
    /// sum, then pin them all.
    async fn fetch_hls(&self, id: &str, top: Handle, generation: u64, top_url: Url) -> Result<(), Failure> {
        // No stored choice (a plain URL download), or one this build cannot read: the middle.
        let choice = self
            .lock()
            .get(id)
            .and_then(|e| e.row.variant.as_deref()?.parse::<VariantChoice>().ok())
            .unwrap_or_default();
        let mut members = vec![top.key().to_string()];
        let mut media = Vec::new();
        let (text, base) = read_all(top, generation, self.patience, &top_url).await?;
        match hls::parse(&text)? {
            Playlist::MasterPlaylist(master) => {
                for url in hls::choose(&master, &base, choice)? {
                    let (key, playlist, base) = self.media_playlist(&url).await?;
                    members.push(key);
                    media.push((playlist, base));
                }
            }
            Playlist::MediaPlaylist(m) => media.push((m, base)),
        }
        for (playlist, base) in &media {
            for url in hls::resources(playlist, base)? {
                self.fetcher.check_origin(url.as_str())?;
                let key = url.to_string();
                if !members.contains(&key) {
                    members.push(key);
                }
            }
        }
        self.set_members(id, members.clone()).await?;
        self.changed(id);
        let last_event = std::sync::Mutex::new(Instant::now());
        stream::iter(members.iter().map(Ok))
            .try_for_each_concurrent(SEGMENTS_AT_ONCE, |key: &String| {
                let last_event = &last_event;
                async move {
                    let url = Url::parse(key)
                        .map_err(|e| Failure::from(Error::InvalidArgument(format!("bad URL {key:?}: {e}"))))?;
                    self.cache_whole(self.cache.acquire(key, &url, None).await?).await?;
                    let mut last = last_event.lock().unwrap_or_else(|p| p.into_inner());
                    if last.elapsed() >= PROGRESS_EVERY {
                        *last = Instant::now();
                        drop(last);
                        self.changed(id);
                    }
                    Ok::<_, Failure>(())
                }
            })
            .await?;
        let total: u64 = members
            .iter()
            .filter_map(|k| self.cache.info(k))
            .map(|i| i.cached_bytes)
            .sum();
        self.check_pin_room(&members, total)?;
        self.cache.set_pinned_keys(members, true).await?;
        Ok(())
    }

    /// Reads the media playlist at `url` (a variant of a master): its cache key, contents, and
    /// the URL its relative URIs resolve against.
    async fn media_playlist(&self, url: &Url) -> Result<(String, MediaPlaylist, Url), Failure> {
        let handle = self.acquire_allowed(url).await?;
        let key = handle.key().to_string();
        let generation = handle.meta(0, self.patience).await?.generation;
        let (text, base) = read_all(handle, generation, self.patience, url).await?;
        match hls::parse(&text)? {
            Playlist::MediaPlaylist(m) => Ok((key, m, base)),
            Playlist::MasterPlaylist(_) => {
                let message = "a variant stream names another master playlist";
                Err(Error::from(UpstreamError::Protocol(message.into())).into())
            }
        }
    }

    /// Caches every byte of the resource `handle` reads.
    async fn cache_whole(&self, handle: Handle) -> Result<(), Failure> {
        let generation = handle.meta(0, self.patience).await?.generation;
        let mut reader = handle.reader(generation, 0, None, self.patience);
        while reader.skip().await?.is_some() {}
        Ok(())
    }

    /// Registers a reader of `url` after checking its origin.
    async fn acquire_allowed(&self, url: &Url) -> Result<Handle, Failure> {
        let url = self.fetcher.check_origin(url.as_str())?;
        Ok(self.cache.acquire(url.as_str(), &url, None).await?)
    }
}

/// Reads a whole playlist of `generation` fetched as `requested`: its bytes and the URL its
/// relative URIs resolve against (the reader registration is dropped).
async fn read_all(
    handle: Handle,
    generation: u64,
    patience: Duration,
    requested: &Url,
) -> Result<(Bytes, Url), Failure> {
    let (bytes, meta, _) = crate::hls::read_whole(handle, generation, patience).await?;
    Ok((bytes, crate::hls::base_of(&meta, requested)))
}

impl Downloader {
    /// Fetches the first `bytes` of a resource into the cache (a prefetch for instant start). For
    /// an HLS playlist: the first [`PREFETCH_SEGMENTS`] segments (and their init section and
    /// keys) of the variant the player is likely to pick.
    pub(super) async fn fetch_prefix(&self, handle: Handle, bytes: u64) -> Result<(), Failure> {
        let described = handle.meta(0, self.patience).await?;
        let (meta, generation) = (described.meta, described.generation);
        let url = handle.snapshot().url;
        if crate::hls::is_playlist(meta.mime.as_deref(), url.path()) {
            return self.prefetch_hls(handle, generation, url).await;
        }
        let end = meta.size.map_or(bytes, |s| s.min(bytes));
        let mut reader = handle.reader(generation, 0, Some(end), self.patience);
        while reader.skip().await?.is_some() {}
        Ok(())
    }

    /// The HLS half of [`Downloader::fetch_prefix`]. ExoPlayer's first pick is the best variant
    /// under its initial bandwidth estimate (about 1 Mbit/s) times its bandwidth fraction (0.7).
    async fn prefetch_hls(&self, top: Handle, generation: u64, top_url: Url) -> Result<(), Failure> {
        let (text, base) = read_all(top, generation, self.patience, &top_url).await?;
        let (mut media, base) = match hls::parse(&text)? {
            Playlist::MediaPlaylist(m) => (m, base),
            Playlist::MasterPlaylist(master) => {
                let choice = VariantChoice::MaxBandwidth(PLAYER_FIRST_PICK_BPS);
                let url = hls::choose(&master, &base, choice)?.swap_remove(0);
                let (_, media, base) = self.media_playlist(&url).await?;
                (media, base)
            }
        };
        media.segments.truncate(PREFETCH_SEGMENTS);
        stream::iter(hls::resources(&media, &base)?.into_iter().map(Ok))
            .try_for_each_concurrent(SEGMENTS_AT_ONCE, |url| async move {
                self.cache_whole(self.acquire_allowed(&url).await?).await
            })
            .await
    }
}

/// Resources of one HLS download fetched at once (on top of the worker pool's parallelism).
const SEGMENTS_AT_ONCE: usize = 4;

/// Segments of an HLS stream a prefetch caches (about 6-18 s of media at usual durations).
const PREFETCH_SEGMENTS: usize = 3;

/// The variant bandwidth a player most likely starts with, in bits per second.
const PLAYER_FIRST_PICK_BPS: u64 = 700_000;
