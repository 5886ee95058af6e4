//! Running one download: wait for the network, walk a cursor over the whole resource (which
//! starts fills wherever bytes are missing), check the pin limit and the SHA-256, then pin.
//!
//! Failures are sorted into those a retry can fix (the backend dropped, timed out or answered
//! 5xx: retried with exponential backoff and jitter, a bounded number of times) and permanent
//! ones (404, checksum mismatch, no space, cache full), which fail the download at once.
//!
//! A [`DownloadTask`] knows the queue only as a [`Ledger`]: where it reads its download's row and
//! reports state, progress and members. How the run ended is the scheduler's to record.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{stream, TryStreamExt};
use m3u8_rs::Playlist;
use url::Url;

use super::gate::NetworkGate;
use super::hls::{self, VariantChoice};
use super::source::{Failure, Source, SEGMENTS_AT_ONCE};
use super::DownloadState;
use crate::cache::{DownloadRow, Handle};
use crate::catalog::Catalog;
use crate::error::Error;
use crate::fetch::backoff;

/// Least time between two progress events of one download.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Attempts at a download before a retryable failure fails it.
const ATTEMPTS: u32 = 8;

/// The queue as a task sees it: where it reads its download and reports what happens to it.
pub(super) trait Ledger: Send + Sync {
    /// Download `id`'s row as it stands now, or `None` once it was removed.
    fn row(&self, id: &str) -> Option<DownloadRow>;

    /// Sets a running download's state (running / waiting for network) and tells subscribers.
    fn set_state(&self, id: &str, state: DownloadState);

    /// Tells subscribers that download `id` has progressed.
    fn progressed(&self, id: &str);

    /// Records the resources an HLS download covers (so a restart or a delete knows them all).
    fn set_members(&self, id: &str, members: Vec<String>) -> impl Future<Output = Result<(), Error>> + Send;
}

/// One download's run: what every attempt at it needs.
pub(super) struct DownloadTask<L> {
    id: String,
    source: Source,
    catalog: Arc<Catalog>,
    gate: Arc<NetworkGate>,
    ledger: Arc<L>,
}

impl<L: Ledger> DownloadTask<L> {
    /// The task for download `id`, reporting to `ledger`.
    pub(super) fn new(
        id: String,
        source: Source,
        catalog: Arc<Catalog>,
        gate: Arc<NetworkGate>,
        ledger: Arc<L>,
    ) -> Self {
        Self {
            id,
            source,
            catalog,
            gate,
            ledger,
        }
    }

    /// The download's ID.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// Runs the download until it completes (`Ok`) or fails for good (`Err` with the reason).
    pub(super) async fn run(&self) -> Result<(), String> {
        let id = self.id.as_str();
        let mut failures = 0u32;
        loop {
            if !self.gate.is_open() {
                self.ledger.set_state(id, DownloadState::WaitingForNetwork);
                self.gate.wait_open().await;
            }
            self.ledger.set_state(id, DownloadState::Running);
            let (key, url, track_id, sha256) = self.target()?;
            let handle = self
                .source
                .cache()
                .acquire(&key, &url, track_id.as_deref())
                .await
                .map_err(|e| e.to_string())?
                .for_download();
            let attempt = tokio::select! {
                r = self.fetch_whole(handle, sha256.as_deref()) => Some(r),
                // Dropping the attempt drops its reader registration: the fill stops unless a
                // player still reads the resource.
                () = self.gate.wait_closed() => None,
            };
            match attempt {
                None => continue,
                Some(Ok(())) => return Ok(()),
                Some(Err(f)) if f.is_retryable() && failures + 1 < ATTEMPTS => {
                    failures += 1;
                    let delay = backoff(failures) * 5;
                    tracing::info!(download = %id, error = %f.message(), ?delay, "download attempt failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.gate.wait_closed() => {}
                    }
                }
                Some(Err(f)) => {
                    if f.is_no_space() {
                        self.free_partial(&key).await;
                    }
                    return Err(f.into_message());
                }
            }
        }
    }

    /// Gives back the bytes of a download that hit a full disk (unless a player reads them).
    async fn free_partial(&self, key: &str) {
        if let Err(e) = self.source.cache().remove(vec![key.to_string()], false).await {
            tracing::warn!(error = %e, "cannot free a failed download's bytes");
        }
    }

    /// The resource behind the download: key, current URL (a track's may have been re-signed),
    /// track ID and expected SHA-256.
    fn target(&self) -> Result<(String, Url, Option<String>, Option<String>), String> {
        let row = self.ledger.row(&self.id).ok_or("the download was removed")?;
        let track = row.track_id.as_deref().and_then(|t| self.catalog.get(t));
        let url = track.as_ref().map(|t| t.url.clone()).unwrap_or(row.url);
        let url = Url::parse(&url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
        Ok((row.key, url, row.track_id, track.and_then(|t| t.sha256)))
    }

    /// One attempt at caching every byte, verifying and pinning.
    async fn fetch_whole(&self, handle: Handle, sha256: Option<&str>) -> Result<(), Failure> {
        let patience = self.source.patience();
        let key = handle.key().to_string();
        let described = handle.meta(0, patience).await?;
        let (meta, generation) = (described.meta, described.generation);
        let url = handle.snapshot().url;
        if crate::hls::is_playlist(meta.mime.as_deref(), url.path()) {
            return self.fetch_hls(handle, generation, url).await;
        }
        if let Some(size) = meta.size {
            self.check_pin_room(std::slice::from_ref(&key), size)?;
        }
        let mut reader = handle.reader(generation, 0, None, patience);
        let mut last_event = Instant::now();
        while reader.skip().await?.is_some() {
            if last_event.elapsed() >= PROGRESS_EVERY {
                last_event = Instant::now();
                self.ledger.progressed(&self.id);
            }
        }
        let size = reader.pos();
        // Bytes lost on the way were fetched again in a new generation.
        let generation = reader.generation();
        let handle = reader.into_handle();
        self.check_pin_room(std::slice::from_ref(&key), size)?;
        if let Some(expected) = sha256 {
            let actual = handle.sha256(generation, size).await?;
            if !actual.eq_ignore_ascii_case(expected) {
                handle.discard(generation).await?;
                return Err(Failure::permanent(format!(
                    "checksum mismatch: expected sha256 {expected}, got {actual}; the bytes were dropped"
                )));
            }
        }
        handle.pin().await?;
        Ok(())
    }

    /// Fails with "cache full" if pinning `size` more bytes would exceed the cache's limit.
    fn check_pin_room(&self, keys: &[String], size: u64) -> Result<(), Failure> {
        let pinned = self.source.cache().pinned_bytes_except(keys);
        let limit = self.source.cache().max_bytes();
        if pinned.saturating_add(size) > limit {
            return Err(Failure::permanent(format!(
                "cache full: {size} more pinned bytes would exceed the {limit}-byte cache ({pinned} bytes are \
                 already pinned by other downloads); delete a download or raise the limit"
            )));
        }
        Ok(())
    }

    /// One attempt at an HLS download: read the playlist(s), choose the rendition, record every
    /// member, cache them [`SEGMENTS_AT_ONCE`] at a time (segments are small, so one at a time
    /// would leave the link idle for a round trip per segment), check the pin limit for their
    /// sum, then pin them all.
    async fn fetch_hls(&self, top: Handle, generation: u64, top_url: Url) -> Result<(), Failure> {
        let id = self.id.as_str();
        let cache = self.source.cache();
        // No stored choice (a plain URL download), or one this build cannot read: the middle.
        let choice = self
            .ledger
            .row(id)
            .and_then(|row| row.variant?.parse::<VariantChoice>().ok())
            .unwrap_or_default();
        let mut members = vec![top.key().to_string()];
        let mut media = Vec::new();
        let (text, base) = self.source.read_all(top, generation, &top_url).await?;
        match hls::parse(&text)? {
            Playlist::MasterPlaylist(master) => {
                for url in hls::choose(&master, &base, choice)? {
                    let (key, playlist, base) = self.source.media_playlist(&url).await?;
                    members.push(key);
                    media.push((playlist, base));
                }
            }
            Playlist::MediaPlaylist(m) => media.push((m, base)),
        }
        for (playlist, base) in &media {
            for url in hls::resources(playlist, base)? {
                self.source.check_origin(url.as_str())?;
                let key = url.to_string();
                if !members.contains(&key) {
                    members.push(key);
                }
            }
        }
        self.ledger.set_members(id, members.clone()).await?;
        self.ledger.progressed(id);
        let last_event = std::sync::Mutex::new(Instant::now());
        stream::iter(members.iter().map(Ok))
            .try_for_each_concurrent(SEGMENTS_AT_ONCE, |key: &String| {
                let last_event = &last_event;
                async move {
                    let url = Url::parse(key)
                        .map_err(|e| Failure::from(Error::invalid_caused(format_args!("bad URL {key:?}"), e)))?;
                    self.source
                        .cache_whole(cache.acquire(key, &url, None).await?.for_download())
                        .await?;
                    let mut last = last_event.lock().unwrap_or_else(|p| p.into_inner());
                    if last.elapsed() >= PROGRESS_EVERY {
                        *last = Instant::now();
                        drop(last);
                        self.ledger.progressed(id);
                    }
                    Ok::<_, Failure>(())
                }
            })
            .await?;
        let total: u64 = members
            .iter()
            .filter_map(|k| cache.info(k))
            .map(|i| i.cached_bytes)
            .sum();
        self.check_pin_room(&members, total)?;
        cache.set_pinned_keys(members, true).await?;
        Ok(())
    }
}
