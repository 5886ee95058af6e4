//! Serving a media resource (`/stream/...` and `/tracks/ID`): the reader side of the cache.
//!
//! A response first needs the representation's length and validator; a resource the backend has
//! never described starts a fill at the requested position and waits for its headers. The body
//! is produced by a task that sends present bytes straight from the data file and, where bytes
//! are missing, waits for the fill that will bring them soon — or starts its own fill at once
//! (a seek), never waiting behind a sequential download.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use tokio::sync::mpsc;
use url::Url;

use super::range::{self, RangeOutcome};
use super::response::{self, Body, ChannelBody, Representation};
use crate::cache::cursor::{stale, wait_meta, Cursor};
use crate::cache::fill::join_error;
use crate::cache::range_set::RangeSet;
use crate::engine::Inner;
use crate::error::Error;
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
    /// The `Range` header.
    pub(crate) range: Option<String>,
    /// The `If-Range` header.
    pub(crate) if_range: Option<String>,
}

/// Answers a media request.
pub(crate) async fn serve(inner: &Arc<Inner>, req: MediaRequest) -> Response<Body> {
    let guard = inner.cache.acquire(&req.key, &req.url, req.track_id.as_deref());
    let hint = start_hint(req.range.as_deref());
    let (meta, generation) = match wait_meta(&guard, hint, inner.patience()).await {
        Ok(m) => m,
        Err(e) => return response::error(e.status(), e.to_string()),
    };
    let mime = meta.mime.clone().or(req.catalog_mime).unwrap_or_else(|| {
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
        Some(len) => range::evaluate(
            req.range.as_deref(),
            req.if_range.as_deref(),
            &rep.etag,
            rep.last_modified.as_deref(),
            len,
        ),
        None => RangeOutcome::Full,
    };
    if req.head || outcome == RangeOutcome::Unsatisfiable {
        return response::media(&rep, outcome, response::empty());
    }
    let (start, len) = response::span(outcome, meta.size);
    let end = len.map(|l| start + l);
    let snapshot = guard.resource().lock().present.clone();
    let hit = end.is_some_and(|e| snapshot.covers(start, e));
    Counters::add(
        if hit {
            &inner.counters.hits
        } else {
            &inner.counters.misses
        },
        1,
    );
    let (tx, body) = ChannelBody::new(len);
    let mut producer = Producer {
        cursor: Cursor::new(guard, generation, start, end, inner.patience()),
        snapshot,
        tx,
        counters: inner.counters.clone(),
        stall: inner.config.client_stall_timeout,
        file: None,
    };
    // Headers promise bytes: send them only once the first byte is here (or the backend failed,
    // which then gets its own status instead of an aborted 206).
    if let Err(e) = producer.ready().await {
        return response::error(e.status(), e.to_string());
    }
    tokio::spawn(producer.run());
    response::media(&rep, outcome, response::streamed(body))
}

/// Where the first wanted byte is, to start a fill there when nothing is known yet.
fn start_hint(range: Option<&str>) -> u64 {
    range
        .and_then(|r| r.trim().strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .filter(|(a, _)| !a.is_empty())
        .and_then(|(a, _)| a.trim().parse().ok())
        .unwrap_or(0)
}

/// The task that feeds one response body.
struct Producer {
    cursor: Cursor,
    /// What was present when the request arrived (for the `bytes_from_cache` counter).
    snapshot: RangeSet,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    counters: Arc<Counters>,
    stall: Duration,
    file: Option<Arc<std::fs::File>>,
}

impl Producer {
    async fn run(mut self) {
        Counters::add(&self.counters.active_streams, 1);
        if let Err(e) = self.feed().await {
            let key = &self.cursor.guard().resource().key;
            tracing::info!(%key, pos = self.cursor.pos, error = %e, "aborting response");
            // The error aborts the connection: the client sees a broken transfer, not wrong bytes.
            // A client that does not read for `stall` has its connection closed by the server's
            // stall guard meanwhile, so this wait is bounded either way.
            let abort = Err(io::Error::other(e.to_string()));
            let _ = tokio::time::timeout(self.stall, self.tx.send(abort)).await;
        }
        self.counters
            .active_streams
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits for the next bytes, or for the client to leave (`None` either way at the end).
    async fn ready(&mut self) -> Result<Option<u64>, Arc<Error>> {
        tokio::select! {
            ready = self.cursor.ready() => ready,
            () = self.tx.closed() => Ok(None),
        }
    }

    /// Sends bytes until the end; `Err` if the response must be aborted.
    async fn feed(&mut self) -> Result<(), Arc<Error>> {
        while let Some(n) = self.ready().await? {
            let pos = self.cursor.pos;
            let data = self.read(pos, n).await?;
            if self.cursor.guard().resource().lock().generation != self.cursor.generation {
                return Err(stale());
            }
            let from_cache = overlap(&self.snapshot, pos, pos + n);
            match tokio::time::timeout(self.stall, self.tx.send(Ok(data))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Ok(()), // the client went away
                Err(_) => return Err(Arc::new(Error::InvalidArgument("the client stopped reading".into()))),
            }
            Counters::add(&self.counters.bytes_from_cache, from_cache);
            self.cursor.pos += n;
        }
        Ok(())
    }

    /// Reads `n` bytes at `pos` from the data file (off the async threads).
    async fn read(&mut self, pos: u64, n: u64) -> Result<Bytes, Arc<Error>> {
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                let path = self.cursor.guard().resource().path.clone();
                let opened = tokio::task::spawn_blocking(move || std::fs::File::open(path))
                    .await
                    .map_err(|e| Arc::new(join_error(e)))?
                    .map_err(|e| Arc::new(Error::from(e)))?;
                self.file.insert(Arc::new(opened)).clone()
            }
        };
        let data = tokio::task::spawn_blocking(move || crate::cache::read_at(&file, pos, n as usize))
            .await
            .map_err(|e| Arc::new(join_error(e)))?
            .map_err(|e| Arc::new(Error::from(e)))?;
        Ok(Bytes::from(data))
    }
}

/// Bytes of `[start, end)` present in `set`.
fn overlap(set: &RangeSet, start: u64, end: u64) -> u64 {
    set.runs()
        .iter()
        .map(|&(s, e)| e.min(end).saturating_sub(s.max(start)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_hint_reads_the_first_position() {
        assert_eq!(start_hint(Some("bytes=500-")), 500);
        assert_eq!(start_hint(Some("bytes=500-600")), 500);
        assert_eq!(start_hint(Some("bytes=-500")), 0);
        assert_eq!(start_hint(Some("garbage")), 0);
        assert_eq!(start_hint(None), 0);
    }

    #[test]
    fn overlap_counts_cached_bytes() {
        let set = RangeSet::parse("0-10,20-30").unwrap();
        assert_eq!(overlap(&set, 5, 25), 10);
        assert_eq!(overlap(&set, 30, 40), 0);
    }
}
