//! The cache: sparse data files, the SQLite index, and in memory only the resources in use.
//!
//! At start nothing is read per resource: the index's running totals, its highest generation,
//! and the catalog. A resource's full state (ranges, validators, URL) is loaded from its row on
//! first use into the resident table, where serving it needs no query: a check of the present
//! ranges, a read of the file. It leaves memory once it is idle and recorded. Writes flow the
//! other way, in batches: fills mark resources dirty, and every `sync_interval` the persister
//! syncs their data files and records what was written before the sync. Eviction (LRU order
//! from the index) runs after each batch; stray files are swept in the background after start.
//!
//! Lock order, to stay deadlock-free: index writer connection → table → resource state → dirty
//! list; the index's reader connection is taken with nothing but the writer held.
//!
//! # Layout
//! - `table`: the resident table; loading a cold resource, letting an idle one go
//! - `incarnation`: the invariant that keeps one incarnation's bytes from another's, and every
//!   operation that opens, writes, syncs or drops them
//! - `persist`: the batches that sync and record
//! - `eviction`: least recently used first, never pinned or in-use resources
//! - `dirs`: data directories, the index file, moving files on pin, the stray sweep
//! - `report`: totals, one resource's state, the listing
//! - `handle`: what a reader holds: the resource's description, pin, discard, hash
//! - `reader`: a reader's position, waiting for bytes, starting fills and reading them
//! - `fill`: the upstream fetch that writes a resource's bytes, making room when the disk
//!   refuses a write
//! - `priority`: players before downloads and prefetch on the backend link
//! - `passthrough`: a player's bytes straight from the backend when the cache cannot store
//! - `resource`: one resource's state, its waiters and fills
//! - `range_set`: sorted byte ranges (present / recorded)
//! - `store`: the sparse data files
//! - `index`: the SQLite schema and queries
//! - `interleavings` (tests): eviction, fills, drops, loads and readers forced into the orders
//!   that once served holes as data
//! - `scripted` (tests): a backend answering from seeded bytes, misbehaving on cue
//! - `core_tests` (tests): readers, fills, stale resets, persistence, eviction and the lazy index
//!   against the scripted backend, on tokio's paused clock

mod dirs;
mod eviction;
pub(crate) mod fill;
mod handle;
mod incarnation;
mod index;
mod passthrough;
mod persist;
pub(crate) mod priority;
pub(crate) mod range_set;
mod reader;
mod report;
pub(crate) mod resource;
mod store;
mod table;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use dirs::{relocate, DataDirs, INDEX_FILE};
pub(crate) use handle::Handle;
pub(crate) use index::{DownloadRow, TrackRow};
use index::{Index, ResourceRow};
use range_set::RangeSet;
pub(crate) use reader::Reader;
pub(crate) use report::loggable_key;
use report::Accounts;
use resource::{Resource, State};
use table::{Table, Want};

use crate::clock::now_ms;
use crate::error::Error;
use crate::fetch::Upstream;
use crate::telemetry::Counters;

/// What a cache is opened with.
pub(crate) struct Options {
    /// Upper bound on cached bytes.
    pub(crate) max_bytes: u64,
    /// Attempts per upstream request.
    pub(crate) attempts: u32,
    /// Idle resources kept in memory (beyond those in use) before the least recently used go.
    pub(crate) resident_max: usize,
    /// Whether downloads and prefetch yield the link to hungry players.
    pub(crate) link_policy: crate::config::LinkPolicy,
    /// Bytes a player must have ahead of it to be satisfied.
    pub(crate) playback_ahead: u64,
}

/// The cache of one directory (or of two: evictable bytes and downloads).
pub(crate) struct Cache {
    dirs: DataDirs,
    /// Where the index lives (the downloads directory, if set).
    index_dir: std::path::PathBuf,
    index: Arc<Index>,
    table: Mutex<Table>,
    dirty: Mutex<Vec<Arc<Resource>>>,
    /// Woken when the dirty list gains its first entry, so an idle cache never wakes up.
    dirtied: tokio::sync::Notify,
    /// Where fills fetch bytes from: the HTTP client, or a test's scripted backend.
    upstream: Arc<dyn Upstream>,
    counters: Arc<Counters>,
    /// Upper bound on cached bytes; changed at run time by [`Cache::set_max_bytes`].
    max_bytes: AtomicU64,
    attempts: u32,
    resident_max: usize,
    accounts: Accounts,
    /// The next incarnation's generation: above every generation in the index, never reused.
    generations: AtomicU64,
    /// This process's first generation: files of older ones are the sweep's to judge.
    first_generation: u64,
    /// Whether the last run may have left stray or misplaced files (it did not stop cleanly, or
    /// the directory layout changed since): the sweep after start runs only then.
    sweep_needed: bool,
    next_fill: AtomicU64,
    /// Counts the times bytes of a pinned resource were lost (its data file vanished), so the
    /// downloads covering it are checked again.
    pinned_lost: tokio::sync::watch::Sender<u64>,
    /// The last cache write failed even after eviction made room (the disk is full, failing,
    /// read-only or gone), and none has succeeded since.
    storage_full: std::sync::atomic::AtomicBool,
    /// Tokens of busy table slots, and IDs of reader positions (unique, never reused).
    next_token: AtomicU64,
    cancel: CancellationToken,
    fills: TaskTracker,
    /// Players before downloads and prefetch.
    arbiter: Arc<priority::Arbiter>,
}

impl Cache {
    /// Opens the cache in `dir` (with pinned bytes and the index in `downloads`, if given), its
    /// fills fetching from `upstream`: creates the directories, moves an index left in `dir`,
    /// opens (or upgrades) the index and reads its totals and the catalog; blocking. No resource
    /// is read and no data file touched.
    pub(crate) fn open(
        dir: &Path,
        downloads: Option<&Path>,
        upstream: Arc<dyn Upstream>,
        counters: Arc<Counters>,
        options: Options,
    ) -> Result<(Arc<Self>, Vec<TrackRow>), Error> {
        let dirs = DataDirs::create(dir, downloads)?;
        if let Some(downloads) = downloads {
            dirs::move_index(dir, downloads)?;
        }
        // A mark left beside an index that moved vouches for nothing any more: removed unread.
        if downloads.is_some_and(|d| d != dir) {
            dirs::take_clean_mark(dir, &dirs);
        }
        let sweep_needed = !dirs::take_clean_mark(downloads.unwrap_or(dir), &dirs);
        // Rows from before per-incarnation files get a generation in the index upgrade: their
        // files take the new name before it commits (again after a crash: NotFound is fine).
        let index = Arc::new(Index::open(
            &downloads.unwrap_or(dir).join(INDEX_FILE),
            &mut |key, g| dirs.rename_legacy(key, g),
        )?);
        let totals = index.totals()?;
        // Above every generation recorded and every one this clock could have given before (a
        // file of an incarnation dropped just before a crash is a stray, never a successor's).
        let first = index
            .max_generation()?
            .map_or(0, |g| g + 1)
            .max(now_ms().saturating_mul(1000));
        let tracks = index.load_tracks()?;
        let cache = Arc::new(Self {
            dirs,
            index_dir: downloads.unwrap_or(dir).to_path_buf(),
            index,
            table: Mutex::new(Table::new()),
            dirty: Mutex::new(Vec::new()),
            dirtied: tokio::sync::Notify::new(),
            upstream,
            arbiter: Arc::new(priority::Arbiter::new(options.link_policy, options.playback_ahead)),
            counters,
            max_bytes: AtomicU64::new(options.max_bytes),
            attempts: options.attempts,
            resident_max: options.resident_max,
            accounts: Accounts::new(&totals),
            generations: AtomicU64::new(first),
            first_generation: first,
            sweep_needed,
            next_fill: AtomicU64::new(1),
            pinned_lost: tokio::sync::watch::Sender::new(0),
            storage_full: std::sync::atomic::AtomicBool::new(false),
            next_token: AtomicU64::new(1),
            cancel: CancellationToken::new(),
            fills: TaskTracker::new(),
        });
        Ok((cache, tracks))
    }

    /// Background upkeep after start: the sweep of stray and misplaced data files, off the async
    /// threads, if the last run did not stop cleanly (a walk over every file costs a phone
    /// battery; after a clean stop there is nothing to find).
    pub(crate) async fn upkeep(self: Arc<Self>) {
        if !self.sweep_needed {
            return;
        }
        let cache = self.clone();
        match self.blocking(move || cache.sweep_strays()).await {
            Ok(_) | Err(Error::Stopped) => {}
            Err(e) => tracing::warn!(error = %e, "the sweep of stray data files failed"),
        }
    }

    /// Where fills fetch bytes from.
    pub(crate) fn upstream(&self) -> &dyn Upstream {
        &*self.upstream
    }

    /// Attempts per upstream request (a broken body is resumed until they are used up).
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Resolves when the cache is shutting down.
    pub(crate) fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Runs blocking cache work (file I/O, the index) off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        tokio::task::spawn_blocking(work).await.map_err(fill::join_error)?
    }

    /// Registers a reader of `key` (loading the resource from the index if it is not in memory,
    /// creating it if the cache does not know it) and returns its handle, which unregisters it
    /// when dropped. While a reader is registered the resource is never evicted.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        key: &str,
        url: &Url,
        track_id: Option<&str>,
    ) -> Result<Handle, Error> {
        let res = self
            .resident(key, Want::Reader { url, track_id })
            .await?
            .ok_or_else(|| Error::storage(format!("{} could not be created", loggable_key(key))))?;
        Ok(Handle {
            player: None,
            rank: None,
            cache: self.clone(),
            res,
        })
    }

    /// Starts a fill of `res` at `start`; the caller holds the state lock (so no two readers
    /// start the same fill). Returns the fill's ID to wait on.
    pub(crate) fn start_fill(self: &Arc<Self>, res: &Arc<Resource>, st: &mut State, start: u64) -> u64 {
        let id = self.next_fill.fetch_add(1, Ordering::Relaxed);
        st.fills.push(resource::FillSlot { id, start, pos: start });
        tracing::debug!(key = %loggable_key(&res.key), start, id, "starting fill");
        self.fills.spawn(fill::run(self.clone(), res.clone(), id, start));
        id
    }

    /// Who gets the backend link.
    pub(crate) fn arbiter(&self) -> &Arc<priority::Arbiter> {
        &self.arbiter
    }

    /// Changes whenever bytes of a pinned resource were lost (their data file vanished): the
    /// downloads covering it are no longer complete.
    pub(crate) fn pinned_losses(&self) -> tokio::sync::watch::Receiver<u64> {
        self.pinned_lost.subscribe()
    }

    /// Whether the last cache write failed even after eviction made room, and none has
    /// succeeded since: player responses are passed through from the backend unstored.
    pub(crate) fn storage_full(&self) -> bool {
        self.storage_full.load(Ordering::Relaxed)
    }

    /// Records a cache write that failed even after eviction made room.
    pub(crate) fn write_failed(&self, error: &Error) {
        tracing::warn!(%error, "cannot store fetched bytes; readers pass them through from the backend");
        Counters::add(&self.counters.storage_write_errors, 1);
        self.storage_full.store(true, Ordering::Relaxed);
    }

    /// Accounts bytes received from upstream.
    pub(crate) fn count_upstream_bytes(&self, len: u64) {
        Counters::add(&self.counters.bytes_from_upstream, len);
    }

    /// Pins or unpins `res` (a pinned resource is never evicted); blocking (the file moves).
    fn set_pinned(&self, res: &Arc<Resource>, pinned: bool) {
        let mut st = res.lock();
        if st.pinned != pinned {
            st.pinned = pinned;
            self.accounts.pin_changed(pinned, st.present.len());
            relocate(&self.dirs, res, &mut st);
            self.mark_dirty(res, &mut st);
        }
    }

    /// Called when a fill of `res` ends: a pin that changed while it ran moves the file now.
    pub(crate) fn fill_ended(&self, res: &Arc<Resource>, st: &mut State) {
        relocate(&self.dirs, res, st);
        if st.readers == 0 {
            // Nobody holds it any more: the recorder runs, and eviction may take it now.
            self.mark_dirty(res, st);
        }
    }

    /// The resources under `keys` that the cache knows, made resident (and held while the
    /// returned `Arc`s live).
    async fn known(self: &Arc<Self>, keys: &[String]) -> Result<Vec<Arc<Resource>>, Error> {
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(res) = self.resident(key, Want::Known).await? {
                found.push(res);
            }
        }
        Ok(found)
    }

    /// Pins or unpins the resources under `keys` that the cache knows (moving hundreds of files
    /// for an HLS rendition: off the async threads).
    pub(crate) async fn set_pinned_keys(self: &Arc<Self>, keys: Vec<String>, pinned: bool) -> Result<(), Error> {
        let found = self.known(&keys).await?;
        let cache = self.clone();
        self.blocking(move || {
            for res in &found {
                cache.set_pinned(res, pinned);
            }
            Ok(())
        })
        .await
    }

    /// Removes the resources under `keys` once their fills have stopped (at most 5 s each), if
    /// nobody reads them; with `unpin` pinned ones too, and those still read are unpinned instead
    /// (they leave with ordinary eviction). Returns how many were removed.
    pub(crate) async fn remove(self: &Arc<Self>, keys: Vec<String>, unpin: bool) -> Result<usize, Error> {
        let found = self.known(&keys).await?;
        for res in &found {
            settle(res, Duration::from_secs(5)).await;
        }
        let cache = self.clone();
        self.blocking(move || {
            let removed = cache.remove_resident(&keys, unpin)?;
            if unpin {
                for res in &found {
                    cache.set_pinned(res, false);
                }
            }
            Ok(removed)
        })
        .await
    }

    /// The upper bound on cached bytes now.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Relaxed)
    }

    /// Sets the upper bound on cached bytes and, if the cache holds more, evicts at once down to
    /// it, by the rules of eviction (least recently used first; pinned resources and those read
    /// or filled stay, so pins alone may keep it above the limit until they are cancelled).
    /// What fills wrote but the index has not recorded is recorded first.
    pub(crate) async fn set_max_bytes(self: &Arc<Self>, limit: u64) -> Result<(), Error> {
        self.max_bytes.store(limit, Ordering::Relaxed);
        let cache = self.clone();
        self.blocking(move || cache.persist()).await
    }

    /// Removes every evictable resource: unpinned, and neither read nor filled now (those stay,
    /// as they do from eviction). What fills wrote is recorded first, so the totals stay exact.
    /// Returns how many resources went and their bytes.
    pub(crate) async fn clear_evictable(self: &Arc<Self>) -> Result<(u64, u64), Error> {
        let cache = self.clone();
        self.blocking(move || {
            cache.persist()?;
            cache.evict_to(0)
        })
        .await
    }

    /// Every download row; blocking.
    pub(crate) fn load_downloads(&self) -> Result<Vec<DownloadRow>, Error> {
        self.index.write(index::load_downloads)
    }

    /// Saves a download row.
    pub(crate) async fn save_download(&self, row: DownloadRow) -> Result<(), Error> {
        let index = self.index.clone();
        self.blocking(move || index.write(|tx| index::upsert_download(tx, &row)))
            .await
    }

    /// Deletes a download row.
    pub(crate) async fn delete_download(&self, id: String) -> Result<(), Error> {
        let index = self.index.clone();
        self.blocking(move || index.write(|tx| index::delete_download(tx, &id)))
            .await
    }

    /// Persists a catalog track.
    pub(crate) async fn put_track(&self, track: TrackRow) -> Result<(), Error> {
        let index = self.index.clone();
        self.blocking(move || index.put_track(&track)).await
    }

    /// Deletes a catalog track's row.
    pub(crate) async fn delete_track(&self, id: String) -> Result<(), Error> {
        let index = self.index.clone();
        self.blocking(move || index.write(|tx| index::delete_track(tx, &id)))
            .await
    }

    /// Points the cached track resource (if any) at a new URL.
    pub(crate) async fn retarget(self: &Arc<Self>, key: &str, url: &Url) -> Result<(), Error> {
        if let Some(res) = self.resident(key, Want::Known).await? {
            let mut st = res.lock();
            if st.url != *url {
                st.url = url.clone();
                self.mark_dirty(&res, &mut st);
            }
        }
        Ok(())
    }
}

/// Waits (at most `limit`) until the fills of an unread resource have stopped, so that it can be
/// removed. Returns at once if a reader is still there.
async fn settle(res: &Resource, limit: Duration) {
    let mut rx = res.subscribe();
    let _ = tokio::time::timeout(limit, async {
        loop {
            rx.borrow_and_update();
            {
                let st = res.lock();
                if st.readers > 0 || st.fills.is_empty() {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
}

/// The index row describing `res` with `ranges` recorded.
fn row_of(res: &Resource, st: &State, ranges: &RangeSet) -> ResourceRow {
    let meta = st.meta.clone().unwrap_or_default();
    ResourceRow {
        key: res.key.clone(),
        url: st.url.to_string(),
        track_id: st.track_id.clone(),
        etag: meta.etag,
        last_modified: meta.last_modified,
        size: meta.size,
        mime: meta.mime,
        location: meta.location,
        ranges: ranges.to_string(),
        bytes: ranges.len(),
        last_access_ms: st.last_access_ms,
        pinned: st.pinned,
        generation: Some(st.generation),
    }
}

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod interleavings;
#[cfg(test)]
mod scripted;
