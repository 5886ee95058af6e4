//! Prefetch: the first bytes of tracks fetched into the ordinary (evictable) cache in the
//! background, so that starting them is instant. No download is made: nothing is queued, saved
//! or pinned, and a failure is only logged.

use std::sync::Arc;

use futures_util::{stream, TryStreamExt};
use m3u8_rs::Playlist;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use super::gate::NetworkGate;
use super::hls::{self, VariantChoice};
use super::source::{Failure, Source, SEGMENTS_AT_ONCE};
use crate::cache::Handle;
use crate::catalog::{track_key, Catalog};
use crate::error::Error;

/// Segments of an HLS stream a prefetch caches (about 6-18 s of media at usual durations).
const PREFETCH_SEGMENTS: usize = 3;

/// The variant bandwidth a player most likely starts with, in bits per second.
const PLAYER_FIRST_PICK_BPS: u64 = 700_000;

/// Starts prefetches on the server's runtime, tracked with the downloader's other tasks.
pub(super) struct Prefetcher {
    source: Source,
    catalog: Arc<Catalog>,
    gate: Arc<NetworkGate>,
    /// Ends every prefetch under way.
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The server's runtime: prefetches are spawned on it from any thread (the JNI bridge calls
    /// in from threads that are not the runtime's).
    runtime: tokio::runtime::Handle,
}

impl Prefetcher {
    /// A prefetcher whose prefetches run on `runtime`, tracked by `tasks`, until `shutdown`.
    pub(super) fn new(
        source: Source,
        catalog: Arc<Catalog>,
        gate: Arc<NetworkGate>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            source,
            catalog,
            gate,
            shutdown,
            tasks,
            runtime,
        }
    }

    /// Fetches the first `bytes` of each track into the ordinary (evictable) cache, in the
    /// background, so that starting them is instant; of an HLS track, the variant a player would
    /// pick from a master capped at `variant_cap` bits per second. Skipped while offline.
    pub(super) fn prefetch(&self, tracks: &[String], bytes: u64, variant_cap: Option<u64>) -> Result<(), Error> {
        let mut targets = Vec::new();
        for id in tracks {
            let track = self
                .catalog
                .get(id)
                .ok_or_else(|| Error::NotFound(format!("no track with ID {id:?}")))?;
            let url = self.source.check_origin(&track.url)?;
            targets.push((track_key(id), url, id.clone()));
        }
        if !self.gate.get().online {
            return Ok(());
        }
        for (key, url, id) in targets {
            let (source, shutdown) = (self.source.clone(), self.shutdown.clone());
            let prefetch = async move {
                tokio::select! {
                    r = async { fetch_prefix(&source, source.cache().acquire(&key, &url, Some(&id)).await?.for_prefetch(), bytes, variant_cap).await } => {
                        if let Err(e) = r {
                            tracing::info!(track = %id, error = %e.message(), "prefetch failed");
                        }
                    }
                    () = shutdown.cancelled() => {}
                }
            };
            self.tasks.spawn_on(prefetch, &self.runtime);
        }
        Ok(())
    }
}

/// Fetches the first `bytes` of a resource into the cache (a prefetch for instant start). For
/// an HLS playlist: the first [`PREFETCH_SEGMENTS`] segments (and their init section and keys)
/// of the variant the player is likely to pick from the master it is served (capped at
/// `variant_cap` bits per second, if a cap applies).
async fn fetch_prefix(source: &Source, handle: Handle, bytes: u64, variant_cap: Option<u64>) -> Result<(), Failure> {
    let patience = source.patience();
    let described = handle.meta(0, patience).await?;
    let (meta, generation) = (described.meta, described.generation);
    let url = handle.snapshot().url;
    if crate::hls::is_playlist(meta.mime.as_deref(), url.path()) {
        return prefetch_hls(source, handle, generation, url, variant_cap).await;
    }
    let end = meta.size.map_or(bytes, |s| s.min(bytes));
    let mut reader = handle.reader(generation, 0, Some(end), patience);
    while reader.skip().await?.is_some() {}
    Ok(())
}

/// The HLS half of [`fetch_prefix`]. ExoPlayer's first pick is the best variant under its
/// initial bandwidth estimate (about 1 Mbit/s) times its bandwidth fraction (0.7), among the
/// variants a served master offers: those within `variant_cap`, or the lowest.
async fn prefetch_hls(
    source: &Source,
    top: Handle,
    generation: u64,
    top_url: Url,
    variant_cap: Option<u64>,
) -> Result<(), Failure> {
    let (text, base) = source.read_all(top, generation, &top_url).await?;
    let (mut media, base) = match hls::parse(&text)? {
        Playlist::MediaPlaylist(m) => (m, base),
        Playlist::MasterPlaylist(master) => {
            let choice = VariantChoice::MaxBandwidth(
                variant_cap.map_or(PLAYER_FIRST_PICK_BPS, |cap| cap.min(PLAYER_FIRST_PICK_BPS)),
            );
            let url = hls::choose(&master, &base, choice)?.swap_remove(0);
            let handle = source.acquire_allowed(&url).await?.for_prefetch();
            let (_, media, base) = source.read_media_playlist(handle, &url).await?;
            (media, base)
        }
    };
    media.segments.truncate(PREFETCH_SEGMENTS);
    stream::iter(hls::resources(&media, &base)?.into_iter().map(Ok))
        .try_for_each_concurrent(SEGMENTS_AT_ONCE, |url| async move {
            source
                .cache_whole(source.acquire_allowed(&url).await?.for_prefetch())
                .await
        })
        .await
}
