//! A fill: one upstream fetch writing a resource's bytes into its data file from some offset on.
//!
//! A fill keeps going while someone reads the resource and stops when it reaches bytes that are
//! already present (or that another fill is writing), at the end of the resource, or when its
//! last reader leaves. Before it writes bytes that would cross the cache's limit it evicts to
//! make room; if everything left is pinned or in use it fails ("cache full"), and a player's
//! response reads on from the backend unstored. It runs at most `AHEAD_BYTES` past the
//! furthest reader, so a client that stops reading does not make the server fetch the whole
//! resource (downloads read as fast as bytes arrive, so they fill whole). A connection that drops mid-body is resumed from the last byte written
//! with `Range` + `If-Range`, so readers see a stall, never an error; only when the retries are
//! exhausted does the fill fail, and then its waiting readers abort their responses.
//!
//! A fill of a resource no player reads (a download, a prefetch) waits for its turn before each
//! request and each body chunk while a player is hungry (see `priority`).
//!
//! Each fill runs in an `info` span `fill{id, key, start, upstream_status, retries}`, a child of
//! the request span that started it (if any). `key` is the cache key as `loggable_key` shows it
//! (a URL without its query or credentials); `upstream_status` is the backend's first
//! answer, `retries` how often the body was resumed, both recorded when the fill ends.

use std::future::Future;
use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use http::HeaderMap;
use http_body_util::BodyExt;
use tracing::field::Empty;
use tracing::Instrument;

use super::resource::{Meta, Resource};
use super::Cache;
use crate::error::{Error, UpstreamError};
use crate::fetch::{backoff, redact, Body, FetchRequest, FetchResponse};
use crate::telemetry::Counters;

/// Runs fill `id` of `res` from byte `start` and records its outcome for waiting readers. The
/// span is made here, when the fill is started, so that it is a child of the caller's span.
pub(crate) fn run(cache: Arc<Cache>, res: Arc<Resource>, id: u64, start: u64) -> impl Future<Output = ()> + Send {
    let span = tracing::info_span!(
        "fill",
        id,
        key = %super::loggable_key(&res.key),
        start,
        upstream_status = Empty,
        retries = Empty
    );
    run_in_span(cache, res, id, start).instrument(span)
}

/// What a fill reports on its span when it ends.
#[derive(Default)]
struct Trace {
    /// The backend's status for the first request.
    upstream_status: Option<u16>,
    /// Resumptions after the body broke off.
    retries: u32,
}

async fn run_in_span(cache: Arc<Cache>, res: Arc<Resource>, id: u64, start: u64) {
    let mut trace = Trace::default();
    let result = tokio::select! {
        r = fill(&cache, &res, id, start, &mut trace) => r,
        () = cache.cancelled() => Err(Error::Stopped),
    };
    let span = tracing::Span::current();
    if let Some(status) = trace.upstream_status {
        span.record("upstream_status", status);
    }
    span.record("retries", trace.retries);
    let error = match result {
        Ok(()) => {
            tracing::debug!("fill ended");
            None
        }
        Err(e) => {
            let url = redact(&res.lock().url);
            tracing::warn!(%url, start, error = %e, "fill failed");
            if !matches!(e, Error::Stopped) {
                cache.counters.record_failure(url, e.to_string());
            }
            Some(Arc::new(e))
        }
    };
    {
        let mut st = res.lock();
        st.finish_fill(id, error);
        cache.fill_ended(&res, &mut st);
    }
    res.notify();
}

/// Why the fill's body loop ended.
enum BodyEnd {
    /// The fill has nothing more to do.
    Done,
    /// The body broke off; try again from `pos`. `progressed` says whether bytes arrived.
    Broken { error: UpstreamError, progressed: bool },
    /// A player is hungry: the body was dropped (closing its connection, so the backend stops
    /// sending at once) to be asked for again from `pos` once the player is satisfied.
    Yielded,
}

async fn fill(cache: &Arc<Cache>, res: &Arc<Resource>, id: u64, start: u64, trace: &mut Trace) -> Result<(), Error> {
    // The data file of the incarnation being written, with its generation: bytes are only ever
    // written into the file of the generation they were fetched for.
    let mut file: Option<(u64, Arc<std::fs::File>)> = None;
    let mut pos = start;
    let mut failures = 0u32;
    Counters::add(&cache.counters.upstream_fetches, 1);
    loop {
        // Downloads and prefetch send no request while a player is hungry.
        cache.arbiter().turn(res).await;
        let (url, track_id, if_range, asked_in) = {
            let st = res.lock();
            if should_stop(&st, id, pos) {
                return Ok(());
            }
            let if_range = st.meta.as_ref().and_then(|m| m.strong_etag().map(str::to_owned));
            (st.url.clone(), st.track_id.clone(), if_range, st.generation)
        };
        let response = cache
            .upstream()
            .fetch(FetchRequest {
                url,
                start: pos,
                if_range,
                track_id,
            })
            .await?;
        trace.upstream_status.get_or_insert(response.status.as_u16());
        let location = {
            let mut st = res.lock();
            if let Some(url) = response.refreshed_url.clone() {
                st.url = url;
            }
            (response.final_url != st.url).then(|| response.final_url.to_string())
        };
        let (meta, body_start) = match answered(&response, pos, location)? {
            Answered::Body { meta, start } => (meta, start),
            Answered::PastEnd(meta) => {
                // The backend says we asked past the end: learn the length and stop.
                cache.adopt_meta(res, meta).await?;
                return Ok(());
            }
        };
        let generation = cache.adopt_meta(res, meta).await?;
        if generation != asked_in {
            // The bytes before `pos` were another incarnation's (a new version answered, or the
            // bytes were dropped): this one has none of them, so the body is kept from its first
            // byte (a 200 brings all of it), and readers of it wait for this fill from there.
            pos = body_start;
            let mut st = res.lock();
            if let Some(slot) = st.fills.iter_mut().find(|f| f.id == id) {
                (slot.start, slot.pos) = (pos, pos);
            }
            if should_stop(&st, id, pos) {
                return Ok(());
            }
        }
        let handle = match &file {
            Some((g, f)) if *g == generation => f.clone(),
            _ => {
                let open = || {
                    let (c, r) = (cache.clone(), res.clone());
                    cache.blocking(move || c.open_for_fill(&r, id, generation))
                };
                let opened = with_room(cache, ROOM, open).await?;
                // Superseded before it wrote anything: the readers were woken by whoever
                // dropped the bytes, and start what the new incarnation needs.
                let Some(opened) = opened else { return Ok(()) };
                let opened = Arc::new(opened);
                file = Some((generation, opened.clone()));
                opened
            }
        };
        match stream_body(cache, res, &handle, id, generation, response.body, body_start, &mut pos).await? {
            BodyEnd::Done => return Ok(()),
            // Not a failure: the loop's first step waits for the turn, then resumes by Range.
            BodyEnd::Yielded => Counters::add(&cache.counters.upstream_retries, 1),
            BodyEnd::Broken { error, progressed } => {
                failures = if progressed { 1 } else { failures + 1 };
                if failures >= cache.attempts() {
                    return Err(error.into());
                }
                tracing::info!(url = %redact(&res.lock().url), pos, error = %error, "upstream body broke off; resuming");
                tokio::time::sleep(backoff(failures)).await;
                Counters::add(&cache.counters.upstream_retries, 1);
                trace.retries += 1;
            }
        }
    }
}

/// Copies the body into the data file from `*pos` on (skipping what precedes it).
#[allow(clippy::too_many_arguments)]
async fn stream_body(
    cache: &Arc<Cache>,
    res: &Arc<Resource>,
    file: &Arc<std::fs::File>,
    id: u64,
    generation: u64,
    mut body: Body,
    mut offset: u64,
    pos: &mut u64,
) -> Result<BodyEnd, Error> {
    let read_timeout = cache.upstream().read_timeout();
    let mut progressed = false;
    let mut rx = res.subscribe();
    loop {
        // A download's or prefetch's fill takes no bytes while a player is hungry. Merely not
        // reading would leave the backend filling the socket's receive buffer (megabytes, once
        // TCP has grown it) on the link the player needs: the connection is closed instead,
        // and the bytes asked for again by Range once the player is satisfied (measured in
        // tools/bench/playback_while_downloading.sh).
        if cache.arbiter().must_wait(res) {
            return Ok(BodyEnd::Yielded);
        }
        if res.lock().far_ahead(*pos) && !wait_for_readers(res, &mut rx, *pos).await {
            return Ok(BodyEnd::Done);
        }
        let next = tokio::select! {
            next = tokio::time::timeout(read_timeout, body.frame()) => next,
            // The last reader left (a paused or cancelled download, a player that stopped):
            // stop now rather than when the next chunk arrives.
            () = no_readers(res, &mut rx) => return Ok(BodyEnd::Done),
        };
        let frame = match next {
            Err(_) => {
                return Ok(BodyEnd::Broken {
                    error: UpstreamError::Timeout,
                    progressed,
                })
            }
            Ok(Some(Err(error))) => return Ok(BodyEnd::Broken { error, progressed }),
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let len = data.len() as u64;
        if offset + len <= *pos {
            offset += len;
            continue;
        }
        if offset < *pos {
            data = data.slice((*pos - offset) as usize..);
        }
        let n = data.len() as u64;
        if !cache.fits(n) {
            let c = cache.clone();
            if !cache.blocking(move || Ok(c.room_under_limit(n))).await? {
                // Readers of a player response pass the rest through from the backend.
                return Err(Error::storage(format!(
                    "cache full: {n} more bytes would exceed the {}-byte limit, and every cached byte is \
                     pinned or in use",
                    cache.max_bytes()
                )));
            }
        }
        let write = || std::future::ready(cache.write_chunk(res, file, id, generation, *pos, data.clone()));
        if !with_room(cache, n.max(ROOM), write).await? {
            return Ok(BodyEnd::Done);
        }
        *pos += n;
        offset = *pos;
        progressed = true;
        if should_stop(&res.lock(), id, *pos) {
            return Ok(BodyEnd::Done);
        }
    }
    // A clean end of body. With a known length, ending early is a broken transfer.
    let mut st = res.lock();
    if st.generation != generation {
        return Ok(BodyEnd::Done);
    }
    let size = st.meta.as_ref().and_then(|m| m.size);
    match size {
        Some(size) if *pos < size => Ok(BodyEnd::Broken {
            error: UpstreamError::protocol(format!("body ended at byte {} of {size}", *pos)),
            progressed,
        }),
        Some(_) => Ok(BodyEnd::Done),
        None => {
            // No length was given: the end of the body is the end of the resource.
            if let Some(m) = st.meta.as_mut() {
                m.size = Some(*pos);
            }
            cache.mark_dirty(res, &mut st);
            drop(st);
            res.notify();
            Ok(BodyEnd::Done)
        }
    }
}

/// Bytes freed at least when a write fails for want of room (a few network chunks, so a fill
/// does not stop again at the next one).
const ROOM: u64 = 1024 * 1024;

/// Runs a cache write (`op`); if the disk refuses it (full, failing, read-only or removed),
/// makes room by evicting at least `need` bytes of unpinned resources nobody uses and tries once
/// more. A second failure is the fill's error (readers of a player response then read on from
/// the backend without storing), counted, and the cache is marked full until a write succeeds.
async fn with_room<T, F>(cache: &Arc<Cache>, need: u64, mut op: impl FnMut() -> F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let first = match op().await {
        Ok(done) => return Ok(done),
        Err(e @ (Error::NoSpace | Error::Storage(_))) => e,
        Err(e) => return Err(e),
    };
    let c = cache.clone();
    let freed = cache.blocking(move || Ok(c.make_room(need))).await.unwrap_or(0);
    tracing::info!(error = %first, freed, "a cache write failed; evicted to make room");
    op().await.inspect_err(|e| cache.write_failed(e))
}

/// What a backend answer to a request for bytes from some position brings.
pub(super) enum Answered {
    /// A body, described by `meta`, whose first byte is at `start`.
    Body { meta: Meta, start: u64 },
    /// `416`: the position was at or past the end, whose offset is in `meta.size`.
    PastEnd(Meta),
}

/// Reads a 200, 206 or 416 `response` to a request for bytes from `pos` on; `location` is the
/// URL it was redirected to, if any.
pub(super) fn answered(response: &FetchResponse, pos: u64, location: Option<String>) -> Result<Answered, Error> {
    let headers = &response.headers;
    let mut meta = Meta {
        size: None,
        etag: header_str(headers, ETAG),
        last_modified: header_str(headers, LAST_MODIFIED),
        mime: header_str(headers, CONTENT_TYPE),
        location,
    };
    let start = match response.status.as_u16() {
        416 => {
            let total = header_str(headers, CONTENT_RANGE)
                .and_then(|v| parse_content_range(&v)?.total)
                .ok_or_else(|| UpstreamError::protocol("HTTP 416 without a usable Content-Range"))?;
            if total > pos {
                return Err(UpstreamError::protocol(format!("HTTP 416 for byte {pos} of {total}")).into());
            }
            meta.size = Some(total);
            return Ok(Answered::PastEnd(meta));
        }
        206 => {
            let range = header_str(headers, CONTENT_RANGE)
                .and_then(|v| parse_content_range(&v))
                .ok_or_else(|| UpstreamError::protocol("HTTP 206 without a usable Content-Range"))?;
            if range.start > pos {
                return Err(UpstreamError::protocol(format!(
                    "asked for bytes from {pos}, got a range starting at {}",
                    range.start
                ))
                .into());
            }
            meta.size = range.total;
            range.start
        }
        _ => {
            meta.size = header_str(headers, CONTENT_LENGTH).and_then(|v| v.parse().ok());
            0
        }
    };
    Ok(Answered::Body { meta, start })
}

/// Waits until a reader of `res` is less than `AHEAD_BYTES` behind a fill at `pos` (meanwhile
/// the backend's body is not read, so TCP holds the backend back); `false` if nobody reads
/// `res` any more. A client that stops reading has its connection closed by the stall guard,
/// which ends the wait.
async fn wait_for_readers(res: &Resource, rx: &mut tokio::sync::watch::Receiver<u64>, pos: u64) -> bool {
    res.lock().fills_waiting += 1;
    let near = loop {
        rx.borrow_and_update();
        {
            let st = res.lock();
            if st.readers == 0 || st.evicted {
                break false;
            }
            if !st.far_ahead(pos) {
                break true;
            }
        }
        if rx.changed().await.is_err() {
            break false;
        }
    };
    res.lock().fills_waiting -= 1;
    near
}

/// Resolves once nobody reads `res` any more.
async fn no_readers(res: &Resource, rx: &mut tokio::sync::watch::Receiver<u64>) {
    loop {
        rx.borrow_and_update();
        if res.lock().readers == 0 {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Whether fill `id`, about to write at `pos`, has no more to do: another fill is writing there.
/// Two fills at the same position (one caught up with the other's start) would each see the
/// other; the older one (lower ID) goes on, so exactly one stops.
pub(super) fn should_stop(st: &super::resource::State, id: u64, pos: u64) -> bool {
    let at_end = st.meta.as_ref().and_then(|m| m.size).is_some_and(|size| pos >= size);
    let other_fill_here = st
        .fills
        .iter()
        .any(|f| f.id != id && f.start <= pos && pos <= f.pos && (pos < f.pos || f.id < id));
    st.evicted || st.readers == 0 || at_end || st.present.contains(pos) || other_fill_here
}

/// A `Content-Range` value: `bytes a-b/total`, `bytes a-b/*` or `bytes */total`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// First byte (0 for the unsatisfied form).
    pub(crate) start: u64,
    /// Complete length, if given.
    pub(crate) total: Option<u64>,
}

/// Parses a `Content-Range` header (RFC 9110 §14.4).
pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if range.trim() == "*" {
        return Some(ContentRange {
            start: 0,
            total: Some(total?),
        });
    }
    let (a, b) = range.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    if b < a || total.is_some_and(|t| b >= t) {
        return None;
    }
    Some(ContentRange { start: a, total })
}

fn header_str(headers: &HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

pub(crate) fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Storage(crate::error::StorageError::task(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some(ContentRange {
                start: 0,
                total: Some(100)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*"),
            Some(ContentRange { start: 5, total: None })
        );
        assert_eq!(
            parse_content_range("bytes */100"),
            Some(ContentRange {
                start: 0,
                total: Some(100)
            })
        );
        assert_eq!(parse_content_range("bytes 9-5/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes */*"), None);
    }
}
