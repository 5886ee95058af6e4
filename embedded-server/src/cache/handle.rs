//! The handle a reader holds on one resource: a player response, a download, a prefetch.
//!
//! While a [`Handle`] lives the resource is never evicted (the reader was counted in the same
//! critical section as the lookup). Everything a reader does goes through it: wait for the
//! backend's description ([`Handle::meta`]), read bytes through a `Reader` (`Handle::reader`), drop stale bytes,
//! pin, hash. Resource state, files and the blocking pool stay behind it, inside `cache`.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::priority::Player;
use super::range_set::RangeSet;
use super::resource::{Meta, Resource};
use super::Cache;
use crate::clock::now_ms;
use crate::error::{Error, UpstreamError};

/// How often fills may end in a row without describing the resource before a reader gives up.
const FRUITLESS_FILLS: u32 = 3;

/// The backend's description of a resource and the incarnation it belongs to: bytes read
/// through a handle must all come from that incarnation.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    /// Length, validators, type.
    pub(crate) meta: Meta,
    /// The incarnation (see `cache`'s invariant).
    pub(crate) generation: u64,
}

/// What a handle saw of its resource at one moment (for hit/miss accounting and decisions).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The backend has described it (its length and validators are known).
    pub(crate) described: bool,
    /// Bytes present.
    pub(crate) present: RangeSet,
    /// Every byte present.
    pub(crate) complete: bool,
    /// Pinned by a download.
    pub(crate) pinned: bool,
    /// Where its bytes come from (a track's may have been re-signed).
    pub(crate) url: Url,
}

/// A registered reader of one resource; unregisters on drop.
pub(crate) struct Handle {
    pub(super) cache: Arc<Cache>,
    pub(super) res: Arc<Resource>,
    /// Registered as a player for as long as it is held (see [`Handle::for_player`]).
    pub(super) player: Option<Player>,
    /// Ranked as a download's or prefetch's for as long as it is held (see
    /// [`Handle::for_download`], [`Handle::for_prefetch`]).
    pub(super) rank: Option<super::priority::Ranked>,
}

impl Handle {
    /// Marks the handle as a player's: while it waits for the backend's description, and while
    /// its readers lack bytes ahead, downloads and prefetch hold back (see `priority`).
    pub(crate) fn for_player(mut self) -> Self {
        self.player = Some(Player::join(&self, 0, None));
        self
    }

    /// Marks the handle as a prefetch's: while it is held, downloads hold back for it (the
    /// track a player is likely to start next ranks above the album being saved).
    pub(crate) fn for_prefetch(mut self) -> Self {
        self.rank = Some(self.cache.arbiter().rank(&self.res, true));
        self
    }

    /// Marks the handle as a download's: its fills hold back while a player is hungry or a
    /// prefetch runs. (A handle marked neither way never holds back.)
    pub(crate) fn for_download(mut self) -> Self {
        self.rank = Some(self.cache.arbiter().rank(&self.res, false));
        self
    }

    /// Tells the arbiter where the player is and how far it wants bytes; under the state lock.
    pub(super) fn player_at(&self, st: &mut super::resource::State, pos: u64, end: Option<u64>) {
        if let Some(player) = &self.player {
            player.moved(st, pos, end);
        }
    }

    /// The cache key.
    pub(crate) fn key(&self) -> &str {
        &self.res.key
    }

    /// The resource's state now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let st = self.res.lock();
        Snapshot {
            described: st.meta.is_some(),
            present: st.present.clone(),
            complete: st.complete(),
            pinned: st.pinned,
            url: st.url.clone(),
        }
    }

    /// Whether the bytes of `generation` are still the resource's (not dropped as stale or lost).
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        self.res.lock().is_current(generation)
    }

    /// Waits until the backend has described the resource (starting a fill at `hint` if none
    /// runs), at most `patience` in all.
    pub(crate) async fn meta(&self, hint: u64, patience: Duration) -> Result<Described, Arc<Error>> {
        let res = &self.res;
        let mut rx = res.subscribe();
        let mut waiting_on = None;
        let mut fruitless = 0;
        let deadline = tokio::time::Instant::now() + patience;
        // A player waiting for the first bytes of a resource is as hungry as can be.
        self.player_at(&mut res.lock(), hint, None);
        loop {
            rx.borrow_and_update();
            {
                let mut st = res.lock();
                if let Some(meta) = &st.meta {
                    return Ok(Described {
                        meta: meta.clone(),
                        generation: st.generation,
                    });
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
                        UpstreamError::protocol("the backend never described the resource").into(),
                    ));
                }
                if waiting_on.is_none() {
                    let running = st.fills.first().map(|f| f.id);
                    waiting_on = Some(running.unwrap_or_else(|| self.cache.start_fill(res, &mut st, hint)));
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return Err(Arc::new(UpstreamError::Timeout.into()));
            }
        }
    }

    /// Drops the resource's bytes of `generation` so they are fetched again (a live playlist that
    /// expired, a failed checksum); the resource stays, empty and unpinned. `false` if they were
    /// dropped already (by another reader).
    pub(crate) async fn discard(&self, generation: u64) -> Result<bool, Arc<Error>> {
        let (cache, res) = (self.cache.clone(), self.res.clone());
        self.cache
            .blocking(move || cache.drop_bytes(&res, Some(generation), false))
            .await
            .map_err(Arc::new)
    }

    /// Pins the resource: never evicted, kept in the downloads directory.
    pub(crate) async fn pin(&self) -> Result<(), Error> {
        let (cache, res) = (self.cache.clone(), self.res.clone());
        self.cache
            .blocking(move || {
                cache.set_pinned(&res, true);
                Ok(())
            })
            .await
    }

    /// SHA-256 (lowercase hex) of the first `len` bytes of `generation`; a stale error if the
    /// bytes were dropped or lost (their data file vanished) while they were hashed.
    pub(crate) async fn sha256(&self, generation: u64, len: u64) -> Result<String, Error> {
        let (cache, res) = (self.cache.clone(), self.res.clone());
        let digest = self
            .cache
            .blocking(move || cache.hash_prefix(&res, generation, len))
            .await?;
        if !self.is_current(generation) {
            return Err(super::resource::stale_error());
        }
        Ok(digest)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut st = self.res.lock();
        st.readers = st.readers.saturating_sub(1);
        st.last_access_ms = now_ms();
        // Record the access time with the next batch, so LRU order survives restarts.
        self.cache.mark_dirty(&self.res, &mut st);
        drop(st);
        // Fills check for remaining readers as they write; wake them in case they wait.
        self.res.notify();
    }
}
