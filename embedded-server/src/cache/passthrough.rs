//! Passing through: a player's response reading on from the backend without storing, when the
//! cache cannot store (the disk is full, failing, read-only or gone, and eviction could not make
//! room). This is what Media3's `CacheDataSource` does with `FLAG_IGNORE_CACHE_ON_ERROR`: a
//! phone that runs out of storage must not stop the music.
//!
//! The response asks the backend for its own bytes from its position on, with `If-Range` and
//! the validators its head promised, so it never stitches two versions together; the bytes go
//! to the player and nowhere else. Downloads and prefetches never pass through: they exist to
//! store, and fail with the write error instead.

use bytes::Bytes;
use http_body_util::BodyExt;

use super::fill::{answered, Answered};
use super::resource::{stale_error, Resource};
use super::Cache;
use crate::error::{Error, UpstreamError};
use crate::fetch::{Body, FetchRequest};

/// One backend answer being passed through.
pub(super) struct Passthrough {
    body: Body,
    /// The backend offset just past the last byte received.
    offset: u64,
    /// Bytes received and not yet handed out: they end at `offset`.
    pending: Bytes,
}

impl Passthrough {
    /// Asks the backend for the bytes of `res` from `pos` on, as incarnation `generation`
    /// describes them; `None` if `pos` is at or past the end. A backend that answers with
    /// another version gives a stale error.
    pub(super) async fn open(cache: &Cache, res: &Resource, generation: u64, pos: u64) -> Result<Option<Self>, Error> {
        let (req, known) = {
            let st = res.lock();
            if st.generation != generation && !st.continues(generation) {
                return Err(stale_error());
            }
            let if_range = st.meta.as_ref().and_then(|m| m.strong_etag().map(str::to_owned));
            let req = FetchRequest {
                url: st.url.clone(),
                start: pos,
                if_range,
                track_id: st.track_id.clone(),
            };
            (req, st.meta.clone())
        };
        let response = cache.upstream().fetch(req).await?;
        match answered(&response, pos, None)? {
            Answered::PastEnd(_) => Ok(None),
            Answered::Body { meta, start } => {
                if known.is_some_and(|k| k.is_replaced_by(&meta)) {
                    return Err(stale_error());
                }
                Ok(Some(Self {
                    body: response.body,
                    offset: start,
                    pending: Bytes::new(),
                }))
            }
        }
    }

    /// Waits until bytes at `pos` (the reader's position) have arrived: `Some(n)` of them can be
    /// taken now, `None` means the body ended. Cancel-safe.
    pub(super) async fn ready(
        &mut self,
        pos: u64,
        read_timeout: std::time::Duration,
    ) -> Result<Option<u64>, UpstreamError> {
        while self.pending.is_empty() {
            let frame = match tokio::time::timeout(read_timeout, self.body.frame()).await {
                Err(_) => return Err(UpstreamError::Timeout),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(e),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            let end = self.offset + data.len() as u64;
            if end > pos {
                // Bytes before the reader's position (a backend that ignored the range) go.
                self.pending = data.slice(pos.saturating_sub(self.offset) as usize..);
            }
            self.offset = end;
        }
        Ok(Some(self.pending.len() as u64))
    }

    /// Takes the next `n` bytes that [`Passthrough::ready`] reported.
    pub(super) fn take(&mut self, n: u64) -> Bytes {
        self.pending.split_to((n as usize).min(self.pending.len()))
    }
}
