//! A reader of one resource: waits until the bytes at its position are present, joining the
//! fill that will bring them soon or starting one at once (a seek), then reads them from the data
//! file off the async threads. Shared by player responses and downloads, so both fetch through
//! the same single-flight fills.
//!
//! Waiting is on the resource's `watch` channel, never a poll. A reader gives up when the fill it
//! waited for failed (with that fill's error), when fills keep ending without bringing its byte,
//! when the bytes went stale (the backend's validator changed), or after `patience`. Every read
//! is checked against the reader's generation after it is made, so bytes of a dropped incarnation
//! are never handed out.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::handle::Handle;
use super::priority::Player;
use super::resource::{stale_error, Meta};
use crate::error::{Error, UpstreamError};

/// Largest span reported ready at once (a response sends it as one chunk).
const CHUNK: u64 = 128 * 1024;

/// How often fills may end in a row without bringing the wanted byte before the reader gives up
/// (counted per byte: a fill that hands over to another, or stops at bytes another fill wrote, is
/// normal under concurrent readers; three in a row at the same byte is a backend that will not
/// deliver it).
const FRUITLESS_FILLS: u32 = 3;

/// The error for bytes that went stale under a reader.
pub(crate) fn stale() -> Arc<Error> {
    Arc::new(stale_error())
}

impl Handle {
    /// A reader of the bytes of incarnation `generation` (see `Described`) from `start` to `end`
    /// (`None`: to the end). A player's (see [`Handle::for_player`]) holds downloads and
    /// prefetch back while it lacks bytes ahead (see `priority`).
    pub(crate) fn reader(self, generation: u64, start: u64, end: Option<u64>, patience: Duration) -> Reader {
        let player = self.player;
        Reader::new(self, generation, start, end, patience, player)
    }
}

/// A position in one generation of a resource, moving towards `end`.
pub(crate) struct Reader {
    handle: Handle,
    rx: watch::Receiver<u64>,
    /// The generation the reader's bytes must come from.
    generation: u64,
    /// The next byte wanted.
    pos: u64,
    /// One past the last byte wanted; `None` means up to the end of the resource.
    end: Option<u64>,
    /// The data file of `generation`, once opened.
    file: Option<Arc<std::fs::File>>,
    waiting_on: Option<u64>,
    /// Fills that ended without bringing byte `fruitless_at`.
    fruitless: u32,
    fruitless_at: u64,
    patience: Duration,
    /// Registered as a player (a response to the app's player), whose hunger holds downloads
    /// and prefetch back; `None` for downloads and prefetch themselves.
    player: Option<Player>,
}

impl Reader {
    /// A reader at `pos` of generation `generation`; `player`: a response to a player.
    pub(super) fn new(
        handle: Handle,
        generation: u64,
        pos: u64,
        end: Option<u64>,
        patience: Duration,
        player: bool,
    ) -> Self {
        let rx = handle.res.subscribe();
        let player = player.then(|| Player::join(&handle, pos, end));
        Self {
            player,
            handle,
            rx,
            generation,
            pos,
            end,
            file: None,
            waiting_on: None,
            fruitless: 0,
            fruitless_at: pos,
            patience,
        }
    }

    /// The handle this reader holds.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Gives the handle back, to keep the resource held after reading.
    pub(crate) fn into_handle(self) -> Handle {
        self.handle
    }

    /// The next byte wanted.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Whether the bytes read are still the resource's (not dropped as stale or lost).
    pub(crate) fn is_current(&self) -> bool {
        self.handle.is_current(self.generation)
    }

    /// Waits until the bytes at the position are present and moves past them without reading
    /// them: `Some(n)` bytes were passed, `None` means the end was reached (a download caches
    /// every byte this way).
    pub(crate) async fn skip(&mut self) -> Result<Option<u64>, Arc<Error>> {
        let ready = self.ready().await?;
        if let Some(n) = ready {
            self.pos += n;
        }
        Ok(ready)
    }

    /// The next bytes (at most one chunk), waiting for them; `None` at the end. Cancel-safe.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, Arc<Error>> {
        let Some(n) = self.ready().await? else {
            return Ok(None);
        };
        let data = self.read(self.pos, n).await?;
        if !self.is_current() {
            return Err(stale());
        }
        self.pos += n;
        Ok(Some(data))
    }

    /// Reads every byte to the end, at most `max` (else `too_long`'s error), and gives back
    /// the bytes, their description and the handle.
    pub(crate) async fn read_to_end(
        mut self,
        max: u64,
        too_long: impl Fn() -> Error,
    ) -> Result<(Bytes, Meta, Handle), Arc<Error>> {
        let start = self.pos;
        while self.skip().await?.is_some() {
            if self.pos - start > max {
                return Err(Arc::new(too_long()));
            }
        }
        let len = self.pos - start;
        let bytes = match len {
            0 => Bytes::new(),
            _ => self.read(start, len).await?,
        };
        let meta = {
            let st = self.handle.res.lock();
            if st.generation != self.generation {
                return Err(stale());
            }
            st.meta.clone().unwrap_or_default()
        };
        Ok((bytes, meta, self.handle))
    }

    /// Reads `n` bytes at `pos` from the data file of the reader's generation, off the async
    /// threads. The caller checks the generation afterwards.
    async fn read(&mut self, pos: u64, n: u64) -> Result<Bytes, Arc<Error>> {
        let cache = self.handle.cache.clone();
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                let (c, res, generation) = (cache.clone(), self.handle.res.clone(), self.generation);
                let opened = cache
                    .blocking(move || c.open_data(&res, generation))
                    .await
                    .map_err(Arc::new)?;
                self.file.insert(Arc::new(opened)).clone()
            }
        };
        let data = cache
            .blocking(move || Ok(super::store::read_at(&file, pos, n as usize)?))
            .await
            .map_err(Arc::new)?;
        Ok(Bytes::from(data))
    }

    /// Waits until bytes at `pos` are present: `Some(n)` of them (at most `CHUNK`) can be read
    /// now, `None` means the end was reached. Cancel-safe: dropping the future loses nothing.
    pub(crate) async fn ready(&mut self) -> Result<Option<u64>, Arc<Error>> {
        let res = self.handle.res.clone();
        let cache = self.handle.cache.clone();
        loop {
            self.rx.borrow_and_update();
            {
                let mut st = res.lock();
                if let Some(player) = &self.player {
                    player.moved(&mut st, self.pos);
                }
                let limit = self.end.or(st.meta.as_ref().and_then(|m| m.size));
                if st.generation != self.generation {
                    return Err(stale());
                }
                if limit.is_some_and(|l| self.pos >= l) {
                    return Ok(None);
                }
                if let Some(run_end) = st.present.run_end(self.pos) {
                    let stop = run_end.min(limit.unwrap_or(u64::MAX)).min(self.pos + CHUNK);
                    return Ok(Some(stop - self.pos));
                }
                if self.fruitless_at != self.pos {
                    // Progress since the last fill that ended short: start counting again.
                    self.fruitless = 0;
                    self.fruitless_at = self.pos;
                }
                if let Some(outcome) = self.waiting_on.and_then(|id| st.outcome(id)) {
                    self.waiting_on = None;
                    match outcome {
                        Some(e) => return Err(e),
                        None => self.fruitless += 1,
                    }
                }
                if self.fruitless >= FRUITLESS_FILLS {
                    let message = format!("the backend did not deliver byte {}", self.pos);
                    return Err(Arc::new(UpstreamError::protocol(message).into()));
                }
                if self.waiting_on.is_none() {
                    let covering = st.covering_fill(self.pos);
                    self.waiting_on = Some(covering.unwrap_or_else(|| cache.start_fill(&res, &mut st, self.pos)));
                }
            }
            match tokio::time::timeout(self.patience, self.rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Arc::new(Error::storage("the resource went away"))),
                Err(_) => return Err(Arc::new(UpstreamError::Timeout.into())),
            }
        }
    }
}
