//! A reader's position in a resource: waits until the bytes there are present, joining the fill
//! that will bring them soon or starting one at once (a seek). Shared by player responses and
//! downloads, so both fetch through the same single-flight fills.
//!
//! Waiting is on the resource's `watch` channel, never a poll. A cursor gives up when the fill it
//! waited for failed (with that fill's error), when fills keep ending without bringing its byte,
//! when the bytes went stale (the backend's validator changed), or after `patience`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::resource::Meta;
use super::ReadGuard;
use crate::error::{Error, UpstreamError};

/// Largest span reported ready at once (a response sends it as one chunk).
const CHUNK: u64 = 128 * 1024;

/// How often fills may end in a row without bringing the wanted byte before the reader gives up
/// (counted per byte: a fill that hands over to another, or stops at bytes another fill wrote, is
/// normal under concurrent readers; three in a row at the same byte is a backend that will not
/// deliver it).
const FRUITLESS_FILLS: u32 = 3;

/// Waits until the backend has described the resource (starting a fill at `hint` if none runs);
/// returns the description and the generation it belongs to.
pub(crate) async fn wait_meta(guard: &ReadGuard, hint: u64, patience: Duration) -> Result<(Meta, u64), Arc<Error>> {
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
            if let Some(outcome) = waiting_on.and_then(|id| st.outcome(id)) {
                if let Some(error) = outcome {
                    return Err(error);
                }
                fruitless += 1;
                waiting_on = None;
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

/// The error for bytes that went stale under a reader.
pub(crate) fn stale() -> Arc<Error> {
    Arc::new(stale_error())
}

/// [`stale`], unshared.
pub(crate) fn stale_error() -> Error {
    UpstreamError::Protocol("the backend replaced the resource while it was being read".into()).into()
}

/// A position in one generation of a resource, moving towards `end`.
pub(crate) struct Cursor {
    guard: ReadGuard,
    rx: watch::Receiver<u64>,
    /// The generation the reader's bytes must come from.
    pub(crate) generation: u64,
    /// The next byte wanted.
    pub(crate) pos: u64,
    /// One past the last byte wanted; `None` means up to the end of the resource.
    pub(crate) end: Option<u64>,
    waiting_on: Option<u64>,
    /// Fills that ended without bringing byte `fruitless_at`.
    fruitless: u32,
    fruitless_at: u64,
    patience: Duration,
}

impl Cursor {
    /// A cursor at `pos` of generation `generation`.
    pub(crate) fn new(guard: ReadGuard, generation: u64, pos: u64, end: Option<u64>, patience: Duration) -> Self {
        let rx = guard.resource().subscribe();
        Self {
            guard,
            rx,
            generation,
            pos,
            end,
            waiting_on: None,
            fruitless: 0,
            fruitless_at: pos,
            patience,
        }
    }

    /// The reader registration this cursor holds.
    pub(crate) fn guard(&self) -> &ReadGuard {
        &self.guard
    }

    /// Gives the reader registration back, to keep the resource held after reading.
    pub(crate) fn into_guard(self) -> ReadGuard {
        self.guard
    }

    /// Waits until bytes at `pos` are present: `Some(n)` of them (at most `CHUNK`) can be read
    /// now, `None` means the end was reached. Cancel-safe: dropping the future loses nothing.
    pub(crate) async fn ready(&mut self) -> Result<Option<u64>, Arc<Error>> {
        let res = self.guard.resource().clone();
        let cache = self.guard.cache().clone();
        loop {
            self.rx.borrow_and_update();
            {
                let mut st = res.lock();
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
                    return Err(Arc::new(UpstreamError::Protocol(message).into()));
                }
                if self.waiting_on.is_none() {
                    let covering = st.covering_fill(self.pos);
                    self.waiting_on = Some(covering.unwrap_or_else(|| cache.start_fill(&res, &mut st, self.pos)));
                }
            }
            match tokio::time::timeout(self.patience, self.rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Arc::new(Error::Storage("the resource went away".into()))),
                Err(_) => return Err(Arc::new(UpstreamError::Timeout.into())),
            }
        }
    }
}
