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
use tokio::sync::{mpsc, watch};
use url::Url;

use super::range::{self, RangeOutcome};
use super::response::{self, Body, ChannelBody, Representation};
use crate::cache::range_set::RangeSet;
use crate::cache::resource::Meta;
use crate::cache::{fill::join_error, ReadGuard};
use crate::engine::Inner;
use crate::error::{Error, UpstreamError};
use crate::telemetry::Counters;

/// Largest chunk read from a data file and sent in one frame.
const CHUNK: u64 = 128 * 1024;

/// How often a reader lets a fill end without bringing its byte before it gives up.
const FRUITLESS_FILLS: u32 = 3;

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
        rx: guard.resource().subscribe(),
        guard,
        generation,
        pos: start,
        end,
        snapshot,
        tx,
        counters: inner.counters.clone(),
        stall: inner.config.client_stall_timeout,
        patience: inner.patience(),
        file: None,
        waiting_on: None,
        fruitless: 0,
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

/// Waits until the backend has described the resource (starting a fill if none runs).
async fn wait_meta(guard: &ReadGuard, hint: u64, patience: Duration) -> Result<(Meta, u64), Arc<Error>> {
    let (res, cache) = (guard.resource(), guard.cache());
    let mut rx = res.subscribe();
    let mut waiting_on = None;
    let mut fruitless = 0;
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        rx.borrow_and_update();
        {
            let mut st = res.lock();
            if let Some(meta) = &st.meta {
                return Ok((meta.clone(), st.generation));
            }
            if let Some(id) = waiting_on {
                if let Some(outcome) = st.outcome(id) {
                    if let Some(error) = outcome {
                        return Err(error);
                    }
                    fruitless += 1;
                    waiting_on = None;
                }
            }
            if fruitless >= FRUITLESS_FILLS {
                return Err(Arc::new(
                    UpstreamError::Protocol("the backend never described the resource".into()).into(),
                ));
            }
            if waiting_on.is_none() {
                let running = st.fills.first().map(|f| f.id);
                waiting_on = Some(running.unwrap_or_else(|| cache.start_fill(res, &mut st, hint)));
            }
        }
        if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
            return Err(Arc::new(UpstreamError::Timeout.into()));
        }
    }
}

/// The task that feeds one response body.
struct Producer {
    guard: ReadGuard,
    rx: watch::Receiver<u64>,
    generation: u64,
    pos: u64,
    /// One past the last byte to send; `None` until the end of an unknown-length resource.
    end: Option<u64>,
    /// What was present when the request arrived (for the `bytes_from_cache` counter).
    snapshot: RangeSet,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    counters: Arc<Counters>,
    stall: Duration,
    patience: Duration,
    file: Option<Arc<std::fs::File>>,
    /// The fill this producer waits for, if any.
    waiting_on: Option<u64>,
    /// Fills that ended without bringing the byte at `pos`.
    fruitless: u32,
}

/// The producer's next move, decided under the state lock.
enum Step {
    Read(u64),
    Wait,
    Done,
    Fail(Arc<Error>),
}

impl Producer {
    async fn run(mut self) {
        Counters::add(&self.counters.active_streams, 1);
        if let Err(e) = self.feed().await {
            tracing::info!(key = %self.guard.resource().key, pos = self.pos, error = %e, "aborting response");
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

    /// Sends bytes until the end; `Err` if the response must be aborted.
    async fn feed(&mut self) -> Result<(), Arc<Error>> {
        while let Some(n) = self.ready().await? {
            let data = self.read(n).await?;
            if self.guard.resource().lock().generation != self.generation {
                return Err(stale());
            }
            let from_cache = overlap(&self.snapshot, self.pos, self.pos + n);
            match tokio::time::timeout(self.stall, self.tx.send(Ok(data))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Ok(()), // the client went away
                Err(_) => return Err(Arc::new(Error::InvalidArgument("the client stopped reading".into()))),
            }
            Counters::add(&self.counters.bytes_from_cache, from_cache);
            self.pos += n;
        }
        Ok(())
    }

    /// Waits until bytes at `pos` are present: `Some(n)` of them can be read now, `None` means
    /// the end was reached (or the client left). Starts a fill when none will bring them soon.
    async fn ready(&mut self) -> Result<Option<u64>, Arc<Error>> {
        let res = self.guard.resource().clone();
        let cache = self.guard.cache().clone();
        loop {
            self.rx.borrow_and_update();
            let step = {
                let mut st = res.lock();
                let limit = self.end.or(st.meta.as_ref().and_then(|m| m.size));
                if st.generation != self.generation {
                    Step::Fail(stale())
                } else if limit.is_some_and(|l| self.pos >= l) {
                    Step::Done
                } else if let Some(run_end) = st.present.run_end(self.pos) {
                    let stop = run_end.min(limit.unwrap_or(u64::MAX)).min(self.pos + CHUNK);
                    Step::Read(stop - self.pos)
                } else {
                    let mut failed = None;
                    if let Some(outcome) = self.waiting_on.and_then(|id| st.outcome(id)) {
                        self.waiting_on = None;
                        match outcome {
                            Some(e) => failed = Some(e),
                            None => self.fruitless += 1,
                        }
                    }
                    if let Some(e) = failed {
                        Step::Fail(e)
                    } else if self.fruitless >= FRUITLESS_FILLS {
                        let message = format!("the backend did not deliver byte {}", self.pos);
                        Step::Fail(Arc::new(UpstreamError::Protocol(message).into()))
                    } else {
                        if self.waiting_on.is_none() {
                            let covering = st.covering_fill(self.pos);
                            self.waiting_on =
                                Some(covering.unwrap_or_else(|| cache.start_fill(&res, &mut st, self.pos)));
                        }
                        Step::Wait
                    }
                }
            };
            match step {
                Step::Read(n) => return Ok(Some(n)),
                Step::Done => return Ok(None),
                Step::Fail(e) => return Err(e),
                Step::Wait => {
                    tokio::select! {
                        changed = self.rx.changed() => {
                            if changed.is_err() {
                                return Err(Arc::new(Error::Storage("the resource went away".into())));
                            }
                        }
                        () = self.tx.closed() => return Ok(None),
                        () = tokio::time::sleep(self.patience) => return Err(Arc::new(UpstreamError::Timeout.into())),
                    }
                }
            }
        }
    }

    /// Reads `n` bytes at `pos` from the data file (off the async threads).
    async fn read(&mut self, n: u64) -> Result<Bytes, Arc<Error>> {
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                let path = self.guard.resource().path.clone();
                let opened = tokio::task::spawn_blocking(move || std::fs::File::open(path))
                    .await
                    .map_err(|e| Arc::new(join_error(e)))?
                    .map_err(|e| Arc::new(Error::from(e)))?;
                self.file.insert(Arc::new(opened)).clone()
            }
        };
        let pos = self.pos;
        let data = tokio::task::spawn_blocking(move || crate::cache::read_at(&file, pos, n as usize))
            .await
            .map_err(|e| Arc::new(join_error(e)))?
            .map_err(|e| Arc::new(Error::from(e)))?;
        Ok(Bytes::from(data))
    }
}

/// The error for bytes that went stale while being sent.
fn stale() -> Arc<Error> {
    Arc::new(UpstreamError::Protocol("the backend replaced the resource while it was being sent".into()).into())
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
