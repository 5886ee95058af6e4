//! Running one download: wait for the network, walk a cursor over the whole resource (which
//! starts fills wherever bytes are missing), check the pin limit and the SHA-256, then pin.
//!
//! Failures are sorted into those a retry can fix (the backend dropped, timed out or answered
//! 5xx: retried with exponential backoff and jitter, a bounded number of times) and permanent
//! ones (404, checksum mismatch, no space, cache full), which fail the download at once.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{stream, TryStreamExt};
use sha2::{Digest, Sha256};
use url::Url;

use m3u8_rs::{MediaPlaylist, Playlist};

use super::hls::{self, VariantChoice};
use super::{DownloadState, Downloader};
use crate::cache::cursor::{wait_meta, Cursor};
use crate::cache::fill::join_error;
use crate::cache::ReadGuard;
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
            let guard = self.cache.acquire(&key, &url, track_id.as_deref());
            let attempt = tokio::select! {
                r = self.fetch_whole(id, guard, sha256.as_deref()) => Some(r),
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
        self.cache.settle(key, Duration::from_secs(5)).await;
        let (cache, key) = (self.cache.clone(), key.to_string());
        match tokio::task::spawn_blocking(move || cache.remove_idle(&key, false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot free a failed download's bytes"),
            Err(e) => tracing::warn!(error = %e, "cannot free a failed download's bytes"),
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
    async fn fetch_whole(&self, id: &str, guard: ReadGuard, sha256: Option<&str>) -> Result<(), Failure> {
        let res = guard.resource().clone();
        let (meta, generation) = wait_meta(&guard, 0, self.patience).await?;
        let url = res.lock().url.clone();
        if crate::hls::is_playlist(meta.mime.as_deref(), url.path()) {
            return self.fetch_hls(id, guard, generation, url).await;
        }
        if let Some(size) = meta.size {
            self.check_pin_room(std::slice::from_ref(&res.key), size)?;
        }
        let mut cursor = Cursor::new(guard, generation, 0, None, self.patience);
        let mut last_event = Instant::now();
        while let Some(n) = cursor.ready().await? {
            cursor.pos += n;
            if last_event.elapsed() >= PROGRESS_EVERY {
                last_event = Instant::now();
                self.changed(id);
            }
        }
        let size = cursor.pos;
        self.check_pin_room(std::slice::from_ref(&res.key), size)?;
        if let Some(expected) = sha256 {
            let (cache, res2) = (self.cache.clone(), res.clone());
            let actual = tokio::task::spawn_blocking(move || {
                Ok::<_, Error>(hash_prefix(cache.open_data(&res2, generation)?, size)?)
            })
            .await
            .map_err(|e| Failure::from(join_error(e)))?
            .map_err(Failure::from)?;
            if res.lock().generation != generation {
                // The hash is of bytes dropped meanwhile: what is cached now was never checked.
                return Err(Failure::from(crate::cache::cursor::stale_error()));
            }
            if !actual.eq_ignore_ascii_case(expected) {
                let cache = self.cache.clone();
                let res2 = res.clone();
                tokio::task::spawn_blocking(move || cache.discard(&res2))
                    .await
                    .map_err(|e| Failure::from(join_error(e)))??;
                return Err(Failure {
                    message: format!(
                        "checksum mismatch: expected sha256 {expected}, got {actual}; the bytes were dropped"
                    ),
                    retryable: false,
                    no_space: false,
                });
            }
        }
        self.cache.set_pinned(&res, true);
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
    async fn fetch_hls(&self, id: &str, top: ReadGuard, generation: u64, top_url: Url) -> Result<(), Failure> {
        // No stored choice (a plain URL download), or one this build cannot read: the middle.
        let choice = self
            .lock()
            .get(id)
            .and_then(|e| e.row.variant.as_deref()?.parse::<VariantChoice>().ok())
            .unwrap_or_default();
        let mut members = vec![top.resource().key.clone()];
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
                    self.cache_whole(self.cache.acquire(key, &url, None)).await?;
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
        // Pinning moves each file to the downloads directory: hundreds of renames, off the
        // async threads.
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            for key in &members {
                cache.set_pinned_key(key, true);
            }
        })
        .await
        .map_err(|e| Failure::from(join_error(e)))?;
        Ok(())
    }

    /// Reads the media playlist at `url` (a variant of a master): its cache key, contents, and
    /// the URL its relative URIs resolve against.
    async fn media_playlist(&self, url: &Url) -> Result<(String, MediaPlaylist, Url), Failure> {
        let guard = self.acquire_allowed(url)?;
        let key = guard.resource().key.clone();
        let (_, generation) = wait_meta(&guard, 0, self.patience).await?;
        let (text, base) = read_all(guard, generation, self.patience, url).await?;
        match hls::parse(&text)? {
            Playlist::MediaPlaylist(m) => Ok((key, m, base)),
            Playlist::MasterPlaylist(_) => {
                let message = "a variant stream names another master playlist";
                Err(Error::from(UpstreamError::Protocol(message.into())).into())
            }
        }
    }

    /// Caches every byte of the resource `guard` reads.
    async fn cache_whole(&self, guard: ReadGuard) -> Result<(), Failure> {
        let (_, generation) = wait_meta(&guard, 0, self.patience).await?;
        let mut cursor = Cursor::new(guard, generation, 0, None, self.patience);
        while let Some(n) = cursor.ready().await? {
            cursor.pos += n;
        }
        Ok(())
    }

    /// Registers a reader of `url` after checking its origin.
    fn acquire_allowed(&self, url: &Url) -> Result<ReadGuard, Failure> {
        let url = self.fetcher.check_origin(url.as_str())?;
        Ok(self.cache.acquire(url.as_str(), &url, None))
    }
}

/// Reads a whole playlist of `generation` fetched as `requested`: its bytes and the URL its
/// relative URIs resolve against (the reader registration is dropped).
async fn read_all(
    guard: ReadGuard,
    generation: u64,
    patience: Duration,
    requested: &Url,
) -> Result<(Bytes, Url), Failure> {
    let (bytes, meta, _) = crate::hls::read_whole(guard, generation, patience).await?;
    Ok((bytes, crate::hls::base_of(&meta, requested)))
}

impl Downloader {
    /// Fetches the first `bytes` of a resource into the cache (a prefetch for instant start). For
    /// an HLS playlist: the first [`PREFETCH_SEGMENTS`] segments (and their init section and
    /// keys) of the variant the player is likely to pick.
    pub(super) async fn fetch_prefix(&self, guard: ReadGuard, bytes: u64) -> Result<(), Failure> {
        let (meta, generation) = wait_meta(&guard, 0, self.patience).await?;
        let url = guard.resource().lock().url.clone();
        if crate::hls::is_playlist(meta.mime.as_deref(), url.path()) {
            return self.prefetch_hls(guard, generation, url).await;
        }
        let end = meta.size.map_or(bytes, |s| s.min(bytes));
        let mut cursor = Cursor::new(guard, generation, 0, Some(end), self.patience);
        while let Some(n) = cursor.ready().await? {
            cursor.pos += n;
        }
        Ok(())
    }

    /// The HLS half of [`Downloader::fetch_prefix`]. ExoPlayer's first pick is the best variant
    /// under its initial bandwidth estimate (about 1 Mbit/s) times its bandwidth fraction (0.7).
    async fn prefetch_hls(&self, top: ReadGuard, generation: u64, top_url: Url) -> Result<(), Failure> {
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
                self.cache_whole(self.acquire_allowed(&url)?).await
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

/// SHA-256 of the first `len` bytes of a file, lowercase hex.
fn hash_prefix(file: std::fs::File, len: u64) -> std::io::Result<String> {
    let mut file = file.take(len);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
