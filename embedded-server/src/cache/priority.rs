//! Who gets the backend link: players, then prefetch, then downloads (Media3's
//! `PriorityTaskManager`, built into the cache because only the cache sees both the players'
//! reads and the downloads' fills). Downloads also hold back while a prefetch runs.
//!
//! A resource is *hungry* while one of its players has fewer than `ahead` bytes present from its
//! position on (short of the end of what it asked for). While any resource is hungry and the
//! policy is [`LinkPolicy::Yield`], the fills of resources no player reads (downloads, prefetch)
//! close their backend connections and send no new request, so the link is the players'; they
//! resume by Range once no resource is hungry. A resource with a player is
//! filled at playback's priority whoever started its fill. Under [`LinkPolicy::Share`] nothing
//! waits.
//!
//! Hunger is judged under the resource's state lock whenever it can change: a player reads or
//! leaves, a fill writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use super::handle::Handle;
use super::resource::{PlayerPos, Resource, State};
use crate::config::LinkPolicy;

/// Decides which fills may take bytes.
pub(crate) struct Arbiter {
    policy: LinkPolicy,
    /// Bytes a player must have ahead of it to be satisfied.
    ahead: u64,
    /// How many resources are hungry.
    hungry: watch::Sender<usize>,
    /// How many prefetch handles are held.
    prefetching: watch::Sender<usize>,
    /// Fills waiting now, and since when one has been.
    waiting: Mutex<Waiting>,
    /// Milliseconds of waits that ended.
    waited_ms: AtomicU64,
}

#[derive(Default)]
struct Waiting {
    fills: usize,
    since: Option<Instant>,
}

impl Arbiter {
    pub(crate) fn new(policy: LinkPolicy, ahead: u64) -> Self {
        Self {
            policy,
            ahead,
            hungry: watch::Sender::new(0),
            prefetching: watch::Sender::new(0),
            waiting: Mutex::new(Waiting::default()),
            waited_ms: AtomicU64::new(0),
        }
    }

    /// Judges `st` again after its players or bytes changed; under the state lock.
    pub(crate) fn judge(&self, st: &mut State) {
        let hungry = st.starving(self.ahead);
        if hungry != st.hungry {
            st.hungry = hungry;
            self.hungry.send_modify(|n| {
                *n = if hungry { *n + 1 } else { n.saturating_sub(1) };
            });
        }
    }

    /// Watches what [`Arbiter::holding`] depends on: the hungry resources and the running
    /// prefetches.
    pub(crate) fn watch_holding(&self) -> HoldingWatch {
        HoldingWatch {
            hungry: self.hungry.subscribe(),
            prefetching: self.prefetching.subscribe(),
        }
    }

    /// How many resources are hungry now.
    pub(crate) fn hungry(&self) -> usize {
        *self.hungry.borrow()
    }

    /// Whether downloads are held back now (for a hungry player or a running prefetch).
    pub(crate) fn holding(&self) -> bool {
        self.policy == LinkPolicy::Yield && (self.hungry() > 0 || *self.prefetching.borrow() > 0)
    }

    /// Fills waiting for their turn now.
    pub(crate) fn waiting_fills(&self) -> usize {
        self.lock_waiting().fills
    }

    /// Milliseconds during which at least one fill waited, the current wait included.
    pub(crate) fn yield_ms(&self) -> u64 {
        let now = self.lock_waiting().since.map_or(0, |s| s.elapsed().as_millis());
        let ended = self.waited_ms.load(Ordering::Relaxed);
        ended.saturating_add(u64::try_from(now).unwrap_or(u64::MAX))
    }

    /// Whether a fill of `res` must hold back now: under [`LinkPolicy::Yield`], a fill of a
    /// resource no player reads holds back while a player is hungry, and a download's (a
    /// resource no prefetch reads either) also while a prefetch runs. A resource nobody reads
    /// any more does not wait: its fill stops.
    pub(crate) fn must_wait(&self, res: &Resource) -> bool {
        if self.policy == LinkPolicy::Share {
            return false;
        }
        let (hungry, prefetching) = (self.hungry(), *self.prefetching.borrow());
        if hungry == 0 && prefetching == 0 {
            return false;
        }
        let st = res.lock();
        // Only a resource that downloads or prefetch read, and no player, ranks low: a handle
        // not yet marked (a player's between its lookup and `for_player`) never makes it so.
        let ranked_low = st.players.is_empty() && st.background > 0 && (hungry > 0 || st.prefetchers == 0);
        ranked_low && st.readers > 0 && !st.evicted
    }

    /// Waits until a fill of `res` may take bytes (see [`Arbiter::must_wait`]).
    pub(crate) async fn turn(&self, res: &Resource) {
        let mut hungry = self.hungry.subscribe();
        let mut prefetching = self.prefetching.subscribe();
        let mut changes = res.subscribe();
        let mut waiting: Option<WaitGuard<'_>> = None;
        loop {
            changes.borrow_and_update();
            hungry.borrow_and_update();
            prefetching.borrow_and_update();
            if !self.must_wait(res) {
                return;
            }
            if waiting.is_none() {
                waiting = Some(self.start_waiting());
            }
            tokio::select! {
                r = hungry.changed() => if r.is_err() { return },
                r = prefetching.changed() => if r.is_err() { return },
                r = changes.changed() => if r.is_err() { return },
            }
        }
    }

    /// Registers a download's (or, with `prefetch`, a prefetch's) reader of `res`: its fills
    /// rank below players (and a download's below prefetch; downloads hold back while any
    /// prefetch runs). It ends when the returned guard is dropped.
    pub(super) fn rank(self: &Arc<Self>, res: &Arc<Resource>, prefetch: bool) -> Ranked {
        {
            let mut st = res.lock();
            st.background += 1;
            st.prefetchers += usize::from(prefetch);
        }
        if prefetch {
            self.prefetching.send_modify(|n| *n += 1);
        }
        Ranked {
            arbiter: self.clone(),
            res: res.clone(),
            prefetch,
        }
    }

    fn start_waiting(&self) -> WaitGuard<'_> {
        let mut w = self.lock_waiting();
        w.fills += 1;
        if w.fills == 1 {
            w.since = Some(Instant::now());
        }
        WaitGuard(self)
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wakes when [`Arbiter::holding`] may have changed.
pub(crate) struct HoldingWatch {
    hungry: watch::Receiver<usize>,
    prefetching: watch::Receiver<usize>,
}

impl HoldingWatch {
    /// Resolves at the next change; `false` once the arbiter is gone.
    pub(crate) async fn changed(&mut self) -> bool {
        tokio::select! {
            r = self.hungry.changed() => r.is_ok(),
            r = self.prefetching.changed() => r.is_ok(),
        }
    }
}

/// One waiting fill; while any waits, the time counts as yield time.
struct WaitGuard<'a>(&'a Arbiter);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut w = self.0.lock_waiting();
        w.fills = w.fills.saturating_sub(1);
        if w.fills == 0 {
            if let Some(since) = w.since.take() {
                let ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.0.waited_ms.fetch_add(ms, Ordering::Relaxed);
            }
        }
    }
}

/// A player's place among its resource's players (a reader, or a handle waiting for the
/// backend's description); leaves it when dropped.
pub(super) struct Player {
    cache: Arc<super::Cache>,
    res: Arc<Resource>,
    id: u64,
}

impl Player {
    /// Registers a player at `pos` of `handle`'s resource.
    pub(super) fn join(handle: &Handle, pos: u64, end: Option<u64>) -> Self {
        let (cache, res) = (handle.cache.clone(), handle.res.clone());
        // IDs from the cache's one counter, as readers' positions take theirs.
        let id = cache.next_token.fetch_add(1, Ordering::Relaxed);
        let mut st = res.lock();
        st.players.push(PlayerPos { id, pos, end });
        cache.arbiter().judge(&mut st);
        drop(st);
        Self { cache, res, id }
    }

    /// Moves the player to `pos`, wanting bytes up to `end`; under the state lock.
    pub(super) fn moved(&self, st: &mut State, pos: u64, end: Option<u64>) {
        if let Some(p) = st.players.iter_mut().find(|p| p.id == self.id) {
            (p.pos, p.end) = (pos, end);
        }
        self.cache.arbiter().judge(st);
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let mut st = self.res.lock();
        st.players.retain(|p| p.id != self.id);
        self.cache.arbiter().judge(&mut st);
        drop(st);
        // A fill waiting for its turn looks again: this resource may have lost its last player.
        self.res.notify();
    }
}

/// A download's or prefetch's reader, as the arbiter ranks it; released when dropped.
pub(super) struct Ranked {
    arbiter: Arc<Arbiter>,
    res: Arc<Resource>,
    prefetch: bool,
}

impl Drop for Ranked {
    fn drop(&mut self) {
        let mut st = self.res.lock();
        st.background = st.background.saturating_sub(1);
        st.prefetchers = st.prefetchers.saturating_sub(usize::from(self.prefetch));
        drop(st);
        if self.prefetch {
            self.arbiter.prefetching.send_modify(|n| *n = n.saturating_sub(1));
        }
        self.res.notify();
    }
}
