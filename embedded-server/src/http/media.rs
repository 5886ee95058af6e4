//! Serving a media resource (`/stream/...` and `/tracks/ID`): the reader side of the cache.
//!
//! A response first needs the representation's length and validator; a resource the backend has
//! never described starts a fill at the requested position and waits for its headers. The body
//! is produced by a task that sends present bytes straight from the data file and, where bytes
//! are missing, waits for the fill that will bring them soon — or starts its own fill at once
//! (a seek), never waiting behind a sequential download.
//!
//! HLS playlists are the one exception, kept in their own section at the end: they are read
//! whole from the cache, rewritten (`crate::hls`) and sent from memory, because the rewritten
//! body's length is only known once every byte has been seen.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::Instrument;
use url::Url;

use super::range::{RangeOutcome, RangeRequest};
use super::response::{self, Body, ChannelBody, Representation};
use crate::cache::range_set::RangeSet;
use crate::cache::{Handle, Reader};
use crate::error::Error;
use crate::hls;
use crate::shared::Inner;
use crate::telemetry::Counters;

/// A request for a media resource, decoded by the router.
pub(crate) struct MediaRequest {
    /// Cache key.
    pub(crate) key: String,
    /// Where to fetch it.
    pub(crate) url: Url,
    /// The catalog track, if any.
    pub(crate) track_id: Option<String>,
    /// The catalog's MIME type, if any.
    pub(crate) catalog_mime: Option<String>,
    /// HEAD rather than GET.
    pub(crate) head: bool,
    /// The `Range` and `If-Range` headers, parsed when the request arrived.
    pub(crate) range: RangeRequest,
    /// When the request arrived (the body's producer logs the whole response's duration).
    pub(crate) arrived: Instant,
}

/// Answers a media request. If the cached bytes it waits for are dropped before its head is
/// sent (the backend's validator changed, the data file vanished), it starts over once with the
/// new state, rather than failing a request that has sent nothing yet.
pub(crate) async fn serve(inner: &Arc<Inner>, req: MediaRequest) -> Response<Body> {
    match serve_once(inner, &req).await {
        Attempt::Done(response) => response,
        Attempt::Stale(_) => match serve_once(inner, &req).await {
            Attempt::Done(response) | Attempt::Stale(response) => response,
        },
    }
}

/// One try at [`serve`].
enum Attempt {
    /// The answer.
    Done(Response<Body>),
    /// An error answer because the resource's bytes were dropped while it waited.
    Stale(Response<Body>),
}

async fn serve_once(inner: &Arc<Inner>, req: &MediaRequest) -> Attempt {
    let handle = match inner.cache().acquire(&req.key, &req.url, req.track_id.as_deref()).await {
        Ok(h) => h.for_player(),
        Err(e) => return Attempt::Done(response::error(e.status(), e.to_string())),
    };
    let hint = req.range.start_hint();
    // Bytes the backend describes only after this moment were fetched after it (playlist age).
    let asked = Instant::now();
    // What was cached when the request arrived (before any fill this request starts), for the
    // hit/miss and bytes-from-cache counters.
    let before = handle.snapshot();
    let described = match handle.meta(hint, inner.patience()).await {
        Ok(d) => d,
        Err(e) => return Attempt::Done(response::error(e.status(), e.to_string())),
    };
    let (meta, generation) = (described.meta, described.generation);
    if hls::is_playlist(meta.mime.as_deref().or(req.catalog_mime.as_deref()), req.url.path()) {
        let cached = Cached {
            fetched_since: (!before.described).then_some(asked),
            complete: before.complete,
        };
        return Attempt::Done(playlist(inner, req, handle, generation, cached).await);
    }
    let snapshot = before.present;
    let mime = meta
        .mime
        .clone()
        .or_else(|| req.catalog_mime.clone())
        .unwrap_or_else(|| {
            mime_guess::from_path(req.url.path())
                .first_or_octet_stream()
                .to_string()
        });
    let rep = Representation {
        len: meta.size,
        etag: meta.served_etag(&req.key),
        last_modified: meta.last_modified.clone(),
        mime,
    };
    let outcome = match meta.size {
        Some(len) => req.range.evaluate(&rep.etag, rep.last_modified.as_deref(), len),
        None => RangeOutcome::Full,
    };
    if req.head || outcome == RangeOutcome::Unsatisfiable {
        return Attempt::Done(response::media(&rep, outcome, response::empty()));
    }
    let (start, len) = response::span(outcome, meta.size);
    let end = len.map(|l| start + l);
    let hit = end.is_some_and(|e| snapshot.covers(start, e));
    // Counted once the attempt is final (a stale one is tried again and counted then).
    let count = || {
        Counters::add(
            if hit {
                &inner.counters().hits
            } else {
                &inner.counters().misses
            },
            1,
        )
    };
    let (tx, body) = ChannelBody::new(len);
    let mut producer = Producer {
        reader: handle
            .reader(generation, start, end, inner.patience())
            .passing_through(),
        snapshot,
        tx,
        counters: inner.counters().clone(),
        stall: inner.config().client_stall_timeout,
        arrived: req.arrived,
        sent: 0,
    };
    // Headers promise bytes: send them only once the first byte is here (or the backend failed,
    // which then gets its own status instead of an aborted 206).
    if let Err(e) = producer.ready().await {
        let response = response::error(e.status(), e.to_string());
        return if !producer.reader.is_current() {
            Attempt::Stale(response)
        } else {
            count();
            Attempt::Done(response)
        };
    }
    count();
    // Counted before the task runs, so a stats reader never sees a committed response as idle.
    Counters::add(&inner.counters().active_streams, 1);
    // In the request's span, which it completes with `bytes` and `duration_ms`.
    tokio::spawn(producer.run().instrument(tracing::Span::current()));
    let mut response = response::media(&rep, outcome, response::streamed(body));
    // The first byte is ready now: the router times the response from its arrival.
    response.extensions_mut().insert(FirstByte {
        seek: start > 0 && !hit,
        streamed: true,
    });
    Attempt::Done(response)
}

/// Marks a media response (segment, track or playlist) whose first body byte is ready, for the
/// time-to-first-byte histograms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FirstByte {
    /// A range starting past byte 0 whose bytes were not all cached.
    pub(crate) seek: bool,
    /// The body comes from a producer task, which records `bytes` and `duration_ms` in the
    /// request's span when it ends; otherwise the body is in memory already.
    pub(crate) streamed: bool,
}

/// The task that feeds one response body.
struct Producer {
    reader: Reader,
    /// What was present when the request arrived (for the `bytes_from_cache` counter).
    snapshot: RangeSet,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    counters: Arc<Counters>,
    stall: Duration,
    /// When the request arrived.
    arrived: Instant,
    /// Body bytes handed to the connection so far.
    sent: u64,
}

impl Producer {
    async fn run(mut self) {
        if let Err(e) = self.feed().await {
            let key = crate::cache::loggable_key(self.reader.handle().key());
            tracing::info!(%key, pos = self.reader.pos(), error = %e, "aborting response");
            // The error aborts the connection: the client sees a broken transfer, not wrong bytes.
            // A client that does not read for `stall` has its connection closed by the server's
            // stall guard meanwhile, so this wait is bounded either way.
            let abort = Err(io::Error::other(e.to_string()));
            let _ = tokio::time::timeout(self.stall, self.tx.send(abort)).await;
        }
        let span = tracing::Span::current();
        span.record("bytes", self.sent);
        span.record("duration_ms", super::millis(self.arrived));
        tracing::debug!("response body ended");
        self.counters
            .active_streams
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits for the next bytes, or for the client to leave (`None` either way at the end).
    async fn ready(&mut self) -> Result<Option<u64>, Arc<Error>> {
        tokio::select! {
            ready = self.reader.ready() => ready,
            () = self.tx.closed() => Ok(None),
        }
    }

    /// Sends bytes until the end; `Err` if the response must be aborted.
    async fn feed(&mut self) -> Result<(), Arc<Error>> {
        loop {
            // Room in the body channel first, then the read: a slow client holds no chunk read
            // ahead of what the channel can take (memory per stream stays ~2-3 chunks).
            let permit = match tokio::time::timeout(self.stall, self.tx.clone().reserve_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Ok(()), // the client went away
                Err(_) => return Err(Arc::new(Error::invalid("the client stopped reading"))),
            };
            let pos = self.reader.pos();
            let data = tokio::select! {
                next = self.reader.next_chunk() => match next? {
                    Some(data) => data,
                    None => return Ok(()),
                },
                () = self.tx.closed() => return Ok(()),
            };
            let n = data.len() as u64;
            let from_cache = overlap(&self.snapshot, pos, pos + n);
            permit.send(Ok(data));
            Counters::add(&self.counters.bytes_from_cache, from_cache);
            self.sent += n;
        }
    }
}

/// Bytes of `[start, end)` present in `set`.
fn overlap(set: &RangeSet, start: u64, end: u64) -> u64 {
    set.runs()
        .iter()
        .map(|&(s, e)| e.min(end).saturating_sub(s.max(start)))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// HLS playlists (SPEC §7)
// ---------------------------------------------------------------------------------------------

/// What the cache held of a playlist when its request arrived.
struct Cached {
    /// Not yet described by the backend: bytes described later were fetched after this moment.
    fetched_since: Option<Instant>,
    /// Every byte was present (a hit, unless a stale live copy has to be fetched again).
    complete: bool,
}

/// Serves an HLS playlist with every URI it names rewritten to come through this server:
/// `Content-Type: application/vnd.apple.mpegurl`, its own length, and a strong ETag derived from
/// the cached one and the rewritten bytes. Ranges are honoured on the rewritten body.
async fn playlist(
    inner: &Arc<Inner>,
    req: &MediaRequest,
    handle: Handle,
    generation: u64,
    cached: Cached,
) -> Response<Body> {
    let (etag, body) = match rewritten_playlist(inner, req, handle, generation, cached).await {
        Ok(p) => p,
        Err(e) => return response::error(e.status(), e.to_string()),
    };
    let len = body.len() as u64;
    let rep = Representation {
        len: Some(len),
        etag,
        last_modified: None,
        mime: hls::PLAYLIST_MIME.to_string(),
    };
    let outcome = req.range.evaluate(&rep.etag, None, len);
    if req.head || outcome == RangeOutcome::Unsatisfiable {
        return response::media(&rep, outcome, response::empty());
    }
    let (start, part_len) = response::span(outcome, Some(len));
    let part = body.slice(start as usize..(start + part_len.unwrap_or(len)) as usize);
    let mut response = response::media(&rep, outcome, response::full(part));
    response.extensions_mut().insert(FirstByte {
        seek: false,
        streamed: false,
    });
    response
}

/// Reads the playlist whole, makes sure a live one is fresh, and rewrites it: `(ETag, body)`.
///
/// Freshness of a live playlist (no `EXT-X-ENDLIST`): `inner.live_playlists()` remembers, per cache
/// generation, a time no later than the fetch (`fetched_since`: the moment a request found the
/// resource not yet described by the backend). A copy older than its target duration, or of
/// unknown age (cached before a restart), is dropped with `Cache::discard` — while this request
/// still holds its reader registration, so the resource cannot be evicted and replaced meanwhile —
/// and fetched again through an ordinary fill, at most once per request. Dropping rather than
/// fetching beside the cached copy keeps one resource per URL and needs nothing new in the cache;
/// the cost is that an expired live playlist is not served when the backend is unreachable, which
/// is right: a player cannot follow a live stream offline anyway. Master and VOD playlists stay
/// cached like any resource.
async fn rewritten_playlist(
    inner: &Arc<Inner>,
    req: &MediaRequest,
    mut handle: Handle,
    mut generation: u64,
    cached: Cached,
) -> Result<(String, Bytes), Arc<Error>> {
    let mut fetched_since = cached.fetched_since;
    let mut refetched = false;
    loop {
        let hit = !refetched && cached.complete;
        let (bytes, meta, held) = hls::read_whole(handle, generation, inner.patience()).await?;
        handle = held;
        let checked = hls::check(&bytes).map_err(Arc::new)?;
        if let Some(target) = checked.live_target {
            let live = &inner.live_playlists();
            if let Some(at) = fetched_since {
                live.record(&req.key, generation, at, target);
            }
            if !refetched && !live.is_fresh(&req.key, generation, target, Instant::now()) {
                refetched = true;
                let dropped_at = Instant::now();
                fetched_since = handle.discard(generation).await?.then_some(dropped_at);
                generation = handle.meta(0, inner.patience()).await?.generation;
                continue;
            }
        }
        let counter = if hit {
            &inner.counters().hits
        } else {
            &inner.counters().misses
        };
        Counters::add(counter, 1);
        if hit {
            Counters::add(&inner.counters().bytes_from_cache, bytes.len() as u64);
        }
        // Relative URIs resolve against where the playlist really came from (after redirects).
        let from = hls::base_of(&meta, &req.url);
        // A downloaded (pinned) master offers only the renditions that were downloaded; any
        // other master only the variants the current network's quality policy allows.
        let narrowed;
        let text = if checked.master && handle.snapshot().pinned {
            narrowed = hls::narrow(checked.text, &from, |url| {
                inner.cache().info(url.as_str()).is_some_and(|i| i.pinned)
            });
            narrowed.as_str()
        } else if let Some(cap) = inner.variant_cap().filter(|_| checked.master) {
            narrowed = hls::cap_variants(checked.text, cap);
            narrowed.as_str()
        } else {
            checked.text
        };
        let rewritten = hls::rewrite(text, &from, inner.base_url(), |url| {
            inner.fetcher().check_origin(url.as_str()).is_ok()
        });
        let mut h = Sha256::new();
        h.update(meta.served_etag(&req.key).as_bytes());
        h.update([0]);
        h.update(rewritten.as_bytes());
        let etag = format!("\"hls-{}\"", &hex::encode(h.finalize())[..20]);
        return Ok((etag, Bytes::from(rewritten)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_cached_bytes() {
        let set = RangeSet::parse("0-10,20-30").unwrap();
        assert_eq!(overlap(&set, 5, 25), 10);
        assert_eq!(overlap(&set, 30, 40), 0);
    }
}
