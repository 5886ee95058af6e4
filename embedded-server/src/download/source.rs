//! Where a download's bytes come from: the cache, which fills what it lacks from the origin, for
//! URLs the fetcher allows. Download tasks and prefetches both reach resources through a
//! [`Source`], and both fail with a [`Failure`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use m3u8_rs::{MediaPlaylist, Playlist};
use url::Url;

use super::hls;
use crate::cache::{Cache, Handle};
use crate::error::{Error, UpstreamError};
use crate::fetch::Fetcher;

/// Resources of one HLS download fetched at once (on top of the worker pool's parallelism).
pub(super) const SEGMENTS_AT_ONCE: usize = 4;

/// Why an attempt failed, and whether another attempt may succeed.
pub(super) struct Failure {
    message: String,
    retryable: bool,
    /// The disk is full: the partial bytes are given back so the rest of the app can write.
    no_space: bool,
}

impl Failure {
    /// A failure no retry can fix (a checksum mismatch, a full cache), for a person to read.
    pub(super) fn permanent(message: String) -> Self {
        Self {
            message,
            retryable: false,
            no_space: false,
        }
    }

    /// Why it failed, for a person.
    pub(super) fn message(&self) -> &str {
        &self.message
    }

    /// Why it failed, for a person, taken out of the failure.
    pub(super) fn into_message(self) -> String {
        self.message
    }

    /// Whether another attempt may succeed (the backend dropped, timed out or answered 5xx).
    pub(super) fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Whether the disk is full.
    pub(super) fn is_no_space(&self) -> bool {
        self.no_space
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

/// The cache and the fetcher's origin check, and how long to wait for the backend.
#[derive(Clone)]
pub(super) struct Source {
    cache: Arc<Cache>,
    fetcher: Arc<Fetcher>,
    patience: Duration,
}

impl Source {
    /// A source over `cache`, allowing what `fetcher` allows, waiting `patience` for the backend.
    pub(super) fn new(cache: Arc<Cache>, fetcher: Arc<Fetcher>, patience: Duration) -> Self {
        Self {
            cache,
            fetcher,
            patience,
        }
    }

    /// The cache.
    pub(super) fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// How long to wait for the backend.
    pub(super) fn patience(&self) -> Duration {
        self.patience
    }

    /// `url` parsed, if its origin is allowed.
    pub(super) fn check_origin(&self, url: &str) -> Result<Url, Error> {
        self.fetcher.check_origin(url)
    }

    /// Registers a reader of `url` after checking its origin.
    pub(super) async fn acquire_allowed(&self, url: &Url) -> Result<Handle, Failure> {
        let url = self.check_origin(url.as_str())?;
        Ok(self.cache.acquire(url.as_str(), &url, None).await?)
    }

    /// Caches every byte of the resource `handle` reads.
    pub(super) async fn cache_whole(&self, handle: Handle) -> Result<(), Failure> {
        let generation = handle.meta(0, self.patience).await?.generation;
        let mut reader = handle.reader(generation, 0, None, self.patience);
        while reader.skip().await?.is_some() {}
        Ok(())
    }

    /// Reads a whole playlist of `generation` fetched as `requested`: its bytes and the URL its
    /// relative URIs resolve against (the reader registration is dropped).
    pub(super) async fn read_all(
        &self,
        handle: Handle,
        generation: u64,
        requested: &Url,
    ) -> Result<(Bytes, Url), Failure> {
        let (bytes, meta, _) = crate::hls::read_whole(handle, generation, self.patience).await?;
        Ok((bytes, crate::hls::base_of(&meta, requested)))
    }

    /// Reads the media playlist at `url` (a variant of a master): its cache key, contents, and
    /// the URL its relative URIs resolve against.
    pub(super) async fn media_playlist(&self, url: &Url) -> Result<(String, MediaPlaylist, Url), Failure> {
        self.read_media_playlist(self.acquire_allowed(url).await?.for_download(), url)
            .await
    }

    /// [`Source::media_playlist`] through `handle`, a reader of `url`.
    pub(super) async fn read_media_playlist(
        &self,
        handle: Handle,
        url: &Url,
    ) -> Result<(String, MediaPlaylist, Url), Failure> {
        let key = handle.key().to_string();
        let generation = handle.meta(0, self.patience).await?.generation;
        let (text, base) = self.read_all(handle, generation, url).await?;
        match hls::parse(&text)? {
            Playlist::MediaPlaylist(m) => Ok((key, m, base)),
            Playlist::MasterPlaylist(_) => {
                let message = "a variant stream names another master playlist";
                Err(Error::from(UpstreamError::protocol(message)).into())
            }
        }
    }
}
