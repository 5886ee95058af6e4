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
//!
//! Bytes that were *lost* rather than replaced (the data file vanished, was cut short or failed
//! to read: Android trims `cacheDir` when storage runs low) are not an error: the reader carries
//! on in the resource's next generation, which has the same description, and waits for (or
//! starts) the fill that brings them again, so the response in flight never notices.
//!
//! A player's reader (`passing_through`) whose fill failed because the cache cannot store
//! reads the rest of its bytes straight from the backend (`passthrough`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::handle::Handle;
use super::passthrough::Passthrough;
use super::resource::{stale_error, Meta};
use crate::error::{Error, UpstreamError};
use crate::fetch::backoff;
use crate::telemetry::Counters;

/// Largest span reported ready at once (a response sends it as one chunk).
const CHUNK: u64 = 128 * 1024;

/// How often fills may end in a row without bringing the wanted byte before the reader gives up
/// (counted per byte: a fill that hands over to another, or stops at bytes another fill wrote, is
/// normal under concurrent readers; three in a row at the same byte is a backend that will not
/// deliver it).
const FRUITLESS_FILLS: u32 = 3;

/// How often one reader may find its bytes lost and carry on before it gives up (a cache
/// directory whose files keep vanishing cannot serve).
const LOSSES: u32 = 4;

/// The error for bytes that went stale under a reader.
pub(crate) fn stale() -> Arc<Error> {
    Arc::new(stale_error())
}

impl Handle {
    /// A reader of the bytes of incarnation `generation` (see `Described`) from `start` to `end`
    /// (`None`: to the end). A player's (see [`Handle::for_player`]) holds downloads and
    /// prefetch back while it lacks bytes ahead (see `priority`).
    pub(crate) fn reader(self, generation: u64, start: u64, end: Option<u64>, patience: Duration) -> Reader {
        Reader::new(self, generation, start, end, patience)
    }
}

/// A reader's position as the resource's fills see it (they run at most
/// [`super::resource::AHEAD_BYTES`] past the furthest); withdrawn when the reader goes.
struct Position {
    res: Arc<super::resource::Resource>,
    id: u64,
}

impl Position {
    fn new(handle: &Handle, pos: u64) -> Self {
        let id = handle
            .cache
            .next_token
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        handle.res.lock().positions.push((id, pos));
        Self {
            res: handle.res.clone(),
            id,
        }
    }

    /// Moves to `pos`, waking fills that wait for a reader to come closer.
    fn set(&self, pos: u64) {
        let mut st = self.res.lock();
        if let Some(p) = st.positions.iter_mut().find(|p| p.0 == self.id) {
            p.1 = pos;
        }
        let waiting = st.fills_waiting > 0;
        drop(st);
        if waiting {
            self.res.notify();
        }
    }
}

impl Drop for Position {
    fn drop(&mut self) {
        let mut st = self.res.lock();
        st.positions.retain(|p| p.0 != self.id);
        let waiting = st.fills_waiting > 0;
        drop(st);
        if waiting {
            self.res.notify();
        }
    }
}

/// A position in one generation of a resource, moving towards `end`.
pub(crate) struct Reader {
    handle: Handle,
    /// `pos` as the fills see it.
    position: Position,
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
    /// Times the reader's bytes were lost and it carried on in a new generation.
    losses: u32,
    patience: Duration,
    /// Whether it reads on from the backend unstored when the cache cannot store (a player's).
    may_pass_through: bool,
    /// Passing through: the cache could not store this reader's bytes.
    passing: bool,
    /// The backend answer being passed through, if one is open.
    passthrough: Option<Passthrough>,
}

impl Reader {
    /// A reader at `pos` of generation `generation`.
    pub(super) fn new(handle: Handle, generation: u64, pos: u64, end: Option<u64>, patience: Duration) -> Self {
        let rx = handle.res.subscribe();
        handle.player_at(&mut handle.res.lock(), pos, end);
        Self {
            position: Position::new(&handle, pos),
            handle,
            rx,
            generation,
            pos,
            end,
            file: None,
            waiting_on: None,
            fruitless: 0,
            fruitless_at: pos,
            losses: 0,
            patience,
            may_pass_through: false,
            passing: false,
            passthrough: None,
        }
    }

    /// Lets the reader read on from the backend without storing when the cache cannot store
    /// its bytes (a player's response: the music must not stop because the disk is full).
    pub(crate) fn passing_through(mut self) -> Self {
        self.may_pass_through = true;
        self
    }

    /// Moves the position to `pos`.
    fn move_to(&mut self, pos: u64) {
        self.pos = pos;
        self.position.set(pos);
    }

    /// Takes `n` ready bytes from the answer being passed through, if passing through.
    fn take_passed(&mut self, n: u64) -> Option<Bytes> {
        if !self.passing {
            return None;
        }
        let data = self.passthrough.as_mut()?.take(n);
        Counters::add(&self.handle.cache.counters.bytes_passed_through, n);
        Some(data)
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

    /// The generation the reader's bytes come from: the one it was made for, or the one it
    /// carried on in after its bytes were lost.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Moves the reader to `generation`, which carries on its lost bytes' description.
    fn carry_on(&mut self, generation: u64) -> Result<(), Arc<Error>> {
        self.losses += 1;
        if self.losses > LOSSES {
            return Err(Arc::new(Error::storage(
                "the cached bytes keep vanishing (is something deleting the cache directory?)",
            )));
        }
        self.generation = generation;
        self.file = None;
        Ok(())
    }

    /// Waits until the bytes at the position are present and moves past them without reading
    /// them: `Some(n)` bytes were passed, `None` means the end was reached (a download caches
    /// every byte this way).
    pub(crate) async fn skip(&mut self) -> Result<Option<u64>, Arc<Error>> {
        let ready = self.ready().await?;
        if let Some(n) = ready {
            self.take_passed(n);
            self.move_to(self.pos + n);
        }
        Ok(ready)
    }

    /// The next bytes (at most one chunk), waiting for them; `None` at the end. Cancel-safe.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, Arc<Error>> {
        loop {
            let Some(n) = self.ready().await? else {
                return Ok(None);
            };
            if let Some(data) = self.take_passed(n) {
                self.move_to(self.pos + n);
                return Ok(Some(data));
            }
            // Not read (lost or replaced), or the generation moved on while it was read: the
            // next `ready` carries on in the new generation or fails as stale.
            if let Some(data) = self.read(self.pos, n).await? {
                if self.is_current() {
                    self.move_to(self.pos + n);
                    return Ok(Some(data));
                }
            }
        }
    }

    /// Reads every byte to the end, at most `max` (else `too_long`'s error), and gives back
    /// the bytes, their description and the handle.
    pub(crate) async fn read_to_end(
        mut self,
        max: u64,
        too_long: impl Fn() -> Error,
    ) -> Result<(Bytes, Meta, Handle), Arc<Error>> {
        let start = self.pos;
        let bytes = loop {
            let generation = self.generation;
            while self.skip().await?.is_some() {
                if self.pos - start > max {
                    return Err(Arc::new(too_long()));
                }
            }
            let len = self.pos - start;
            let read = match len {
                0 => Some(Bytes::new()),
                _ => self.read(start, len).await?,
            };
            match read {
                // Every byte from `start` came from one generation.
                Some(bytes) if self.generation == generation && self.is_current() => break bytes,
                // Lost on the way: read it all again in the generation carried on in.
                _ => self.move_to(start),
            }
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
    /// threads; `None` if they cannot be read from it (lost or replaced: see
    /// [`super::Cache::read_span`]). The caller checks the generation afterwards.
    async fn read(&mut self, pos: u64, n: u64) -> Result<Option<Bytes>, Arc<Error>> {
        let cache = self.handle.cache.clone();
        let (c, res, generation, file) = (
            cache.clone(),
            self.handle.res.clone(),
            self.generation,
            self.file.clone(),
        );
        let read = cache
            .blocking(move || c.read_span(&res, generation, file, pos, n as usize))
            .await
            .map_err(Arc::new)?;
        Ok(read.map(|(file, data)| {
            self.file = Some(file);
            Bytes::from(data)
        }))
    }

    /// Waits until bytes at `pos` are ready: `Some(n)` of them (at most `CHUNK`) can be read
    /// now, `None` means the end was reached. A reader that may pass through switches to the
    /// backend for good when its fill failed to store. Cancel-safe: dropping the future loses
    /// nothing.
    pub(crate) async fn ready(&mut self) -> Result<Option<u64>, Arc<Error>> {
        if !self.passing {
            match self.cached_ready().await {
                Err(e) if self.may_pass_through && matches!(*e, Error::NoSpace | Error::Storage(_)) => {
                    let key = super::loggable_key(self.handle.key());
                    tracing::info!(%key, pos = self.pos, error = %e, "the cache cannot store; passing the rest through");
                    self.passing = true;
                }
                other => return other,
            }
        }
        self.passed_ready().await
    }

    /// [`Reader::ready`] while passing through: bytes from the backend answer, asked for again
    /// from the position (with the reader's validators) if it broke off, as often as a fill
    /// would.
    async fn passed_ready(&mut self) -> Result<Option<u64>, Arc<Error>> {
        let cache = self.handle.cache.clone();
        let size = self.handle.res.lock().meta.as_ref().and_then(|m| m.size);
        let limit = self.end.or(size);
        if limit.is_some_and(|l| self.pos >= l) {
            return Ok(None);
        }
        let mut failures = 0;
        loop {
            let answer = match &mut self.passthrough {
                Some(answer) => answer,
                None => match Passthrough::open(&cache, &self.handle.res, self.generation, self.pos).await {
                    Ok(Some(answer)) => self.passthrough.insert(answer),
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(Arc::new(e)),
                },
            };
            let error = match answer.ready(self.pos, cache.upstream().read_timeout()).await {
                Ok(Some(n)) => return Ok(Some(n.min(CHUNK).min(limit.map_or(u64::MAX, |l| l - self.pos)))),
                Ok(None) => match limit {
                    None => return Ok(None),
                    Some(l) => UpstreamError::protocol(format!("body ended at byte {} of {l}", self.pos)),
                },
                Err(e) => e,
            };
            self.passthrough = None;
            failures += 1;
            if failures >= cache.attempts() {
                return Err(Arc::new(error.into()));
            }
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    /// [`Reader::ready`] from the cache.
    async fn cached_ready(&mut self) -> Result<Option<u64>, Arc<Error>> {
        let res = self.handle.res.clone();
        let cache = self.handle.cache.clone();
        loop {
            self.rx.borrow_and_update();
            {
                let mut st = res.lock();
                self.handle.player_at(&mut st, self.pos, self.end);
                let limit = self.end.or(st.meta.as_ref().and_then(|m| m.size));
                if st.generation != self.generation {
                    if !st.continues(self.generation) {
                        return Err(stale());
                    }
                    self.carry_on(st.generation)?;
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
