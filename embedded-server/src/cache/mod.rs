//! The cache: every known resource in memory, their sparse data files, and the SQLite index.
//!
//! At start the whole index is loaded into a table of [`Resource`]s, so serving cached bytes
//! needs no query: a lookup in the table, a check of the present ranges, a read of the file.
//! Writes flow the other way, in batches: fills mark resources dirty, and every
//! `sync_interval` the persister syncs their data files and then records the ranges that were
//! written before the sync (so the index never claims a byte that is not on disk). Eviction
//! runs after each batch.
//!
//! Lock order, to stay deadlock-free: index connection → table → resource state → dirty list.
//!
//! # The incarnation invariant
//!
//! A resource's presence map (`present`, `recorded`), its `generation` and its data file are one
//! *incarnation*, and a reader never sees bytes of one through the bookkeeping of another:
//!
//! - Each incarnation has a data file of its own, named by the key and its generation (unique
//!   in the cache, never reused, persisted in the index row). A new incarnation (a new resource
//!   after an eviction, or bytes dropped as stale or lost) starts with an empty map and a new
//!   file; the old file is unlinked, never truncated or re-created in place.
//! - Only the resource in the table for a key creates, writes, records or deletes anything for
//!   that key. An evicted resource is inert: it is never dirtied, synced, recorded, filled or
//!   dropped again, and holds no bytes (its map is emptied when it is evicted).
//! - A reader is registered under the table lock, in the same critical section as the lookup;
//!   eviction takes the table lock and skips any resource with a reader or a fill, so a resource
//!   in use is never evicted.
//! - Files are opened, for reading or writing, under the state lock and only for the generation
//!   the caller holds; every write checks, under that lock, that its generation is still current
//!   before it is made and recorded; every read is followed by the same check. A byte enters
//!   `present` only after it is written, and `recorded` only after it is synced.
//!
//! # Layout
//! - `range_set`: sorted byte ranges (present / recorded)
//! - `resource`: one resource's state, its waiters and fills
//! - `fill`: the upstream fetch that writes a resource's bytes
//! - `handle`: what a reader holds: the resource's description, pin, discard, hash
//! - `reader`: a reader's position, waiting for bytes, starting fills and reading them (players
//!   and downloads)
//! - `store`: the sparse data files
//! - `index`: the SQLite schema and queries
//! - `eviction`: the pure LRU policy
//! - `interleavings` (tests): eviction, fills, drops and readers forced into the orders that
//!   once served holes as data

mod eviction;
pub(crate) mod fill;
mod handle;
mod index;
pub(crate) mod range_set;
mod reader;
pub(crate) mod resource;
mod store;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

pub(crate) use handle::Handle;
pub(crate) use index::{DownloadRow, TrackRow};
use index::{Index, ResourceRow};
use range_set::RangeSet;
pub(crate) use reader::Reader;
use resource::{Meta, Resource, State};

use crate::clock::now_ms;
use crate::error::Error;
use crate::fetch::Fetcher;
use crate::telemetry::Counters;

/// What the API reports about one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResourceInfo {
    /// Bytes present (servable).
    pub(crate) cached_bytes: u64,
    /// Bytes durably recorded in the index.
    pub(crate) recorded_bytes: u64,
    /// Total length, if known.
    pub(crate) size: Option<u64>,
    /// Every byte present.
    pub(crate) complete: bool,
    /// Pinned by a download.
    pub(crate) pinned: bool,
}

/// A cache key fit for logs: a track key (`track:ID`) as it is, a URL key without its query
/// string (signatures) or credentials, anything else hidden.
pub(crate) fn loggable_key(key: &str) -> String {
    if key.starts_with("track:") {
        return key.to_string();
    }
    match Url::parse(key) {
        Ok(url) => crate::fetch::redact(&url),
        Err(_) => "(unparsable key)".to_string(),
    }
}

/// One resource as the dashboard lists it (`/api/resources`). Nothing here may carry a secret:
/// URLs (and keys that are URLs) lose their query string and credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ResourceListing {
    /// Cache key: `track:ID`, or the resource's redacted URL.
    pub(crate) key: String,
    /// Where the bytes come from, without credentials or query string.
    pub(crate) url: String,
    /// The catalog track, if any.
    pub(crate) track_id: Option<String>,
    /// Total length in bytes, if known.
    pub(crate) size: Option<u64>,
    /// Bytes present (servable).
    pub(crate) cached_bytes: u64,
    /// Pinned by a download.
    pub(crate) pinned: bool,
    /// Every byte present.
    pub(crate) complete: bool,
    /// Present byte ranges as `[start, end)` pairs (end exclusive), ascending.
    pub(crate) ranges: Vec<[u64; 2]>,
    /// Responses reading it now.
    pub(crate) readers: usize,
    /// Fills writing it now.
    pub(crate) fills: usize,
}

/// Where data files live: evictable ones under `cache`, pinned ones under `pinned` when the app
/// keeps downloads apart (on Android the system may empty the cache directory at any time).
struct DataDirs {
    cache: PathBuf,
    pinned: Option<PathBuf>,
}

impl DataDirs {
    /// The directory for a resource that is (not) pinned.
    fn dir(&self, pinned: bool) -> &Path {
        match (&self.pinned, pinned) {
            (Some(dir), true) => dir,
            _ => &self.cache,
        }
    }

    /// The data file of incarnation `generation` of `key` for a resource that is (not) pinned.
    fn path(&self, key: &str, pinned: bool, generation: u64) -> PathBuf {
        store::data_path(self.dir(pinned), key, generation)
    }

    /// The directory whose `name(dir)` exists: the downloads directory if it is there, else the
    /// cache directory.
    fn holding(&self, name: impl Fn(&Path) -> PathBuf) -> &Path {
        match &self.pinned {
            Some(dir) if name(dir).exists() => dir,
            _ => &self.cache,
        }
    }
}

/// The cache of one directory (or of two: evictable bytes and downloads).
pub(crate) struct Cache {
    dirs: DataDirs,
    index: Arc<Index>,
    table: Mutex<HashMap<String, Arc<Resource>>>,
    dirty: Mutex<Vec<Arc<Resource>>>,
    /// Woken when the dirty list gains its first entry, so an idle cache never wakes up.
    dirtied: tokio::sync::Notify,
    fetcher: Arc<Fetcher>,
    counters: Arc<Counters>,
    max_bytes: u64,
    attempts: u32,
    /// Sum of every resource's present bytes.
    cached_bytes: AtomicU64,
    /// The next incarnation's generation: above every generation in the index, never reused.
    generations: AtomicU64,
    next_fill: AtomicU64,
    cancel: CancellationToken,
    fills: TaskTracker,
}

impl Cache {
    /// Opens the cache in `dir` (with pinned bytes and the index in `downloads`, if given),
    /// loading the index into memory. Files found in the wrong directory (a pin that changed
    /// while a fill was running, a layout from before `downloads` was set) are moved.
    pub(crate) fn open(
        dir: &Path,
        downloads: Option<&Path>,
        fetcher: Arc<Fetcher>,
        counters: Arc<Counters>,
        max_bytes: u64,
        attempts: u32,
    ) -> Result<(Arc<Self>, Vec<TrackRow>), Error> {
        let dirs = DataDirs {
            cache: dir.join("data"),
            pinned: downloads.map(|d| d.join("data")),
        };
        for data_dir in std::iter::once(&dirs.cache).chain(&dirs.pinned) {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| Error::Config(format!("cannot create cache directory {}: {e}", data_dir.display())))?;
        }
        if let Some(downloads) = downloads {
            move_index(dir, downloads)?;
        }
        let index = Arc::new(Index::open(&downloads.unwrap_or(dir).join(INDEX_FILE))?);
        let rows = index.load_resources()?;
        // Above every generation recorded and every one this clock could have given before (a
        // file of an incarnation dropped just before a crash is a stray, never a successor's).
        let first = rows.iter().filter_map(|r| r.generation).max().map_or(0, |g| g + 1);
        let generations = AtomicU64::new(first.max(now_ms().saturating_mul(1000)));
        let mut table = HashMap::new();
        let mut renamed = Vec::new();
        let mut total = 0;
        for row in rows {
            let Ok(url) = Url::parse(&row.url) else {
                tracing::warn!(key = %loggable_key(&row.key), "dropping index row with an unparsable URL");
                continue;
            };
            let (generation, path) = match row.generation {
                Some(g) => {
                    let dir = dirs.holding(|d| store::data_path(d, &row.key, g));
                    (g, store::data_path(dir, &row.key, g))
                }
                None => {
                    // Named by a build from before per-incarnation files: give it its name now.
                    let g = generations.fetch_add(1, Ordering::Relaxed);
                    let dir = dirs.holding(|d| store::legacy_data_path(d, &row.key));
                    let path = store::data_path(dir, &row.key, g);
                    match std::fs::rename(store::legacy_data_path(dir, &row.key), &path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            tracing::warn!(key = %loggable_key(&row.key), error = %e, "cannot rename a data file; its bytes will be fetched again");
                        }
                        _ => {}
                    }
                    renamed.push(row.key.clone());
                    (g, path)
                }
            };
            let mut present = RangeSet::parse(&row.ranges).unwrap_or_default();
            // A data file shorter than recorded (lost by the file system) must not be served.
            present.truncate(store::file_len(&path));
            total += present.len();
            let meta = Meta {
                size: row.size,
                etag: row.etag,
                last_modified: row.last_modified,
                mime: row.mime,
                location: row.location,
            };
            let state = State {
                url,
                track_id: row.track_id,
                meta: Some(meta),
                recorded: present.clone(),
                present,
                fills: Vec::new(),
                outcomes: VecDeque::new(),
                readers: 0,
                generation,
                last_access_ms: row.last_access_ms,
                pinned: row.pinned,
                evicted: false,
                dirty: false,
                path,
            };
            let res = Arc::new(Resource::new(row.key.clone(), state));
            relocate(&dirs, &res, &mut res.lock());
            table.insert(row.key, res);
        }
        // Renamed files are recorded under their generation with the first batch.
        let dirty: Vec<Arc<Resource>> = renamed
            .iter()
            .filter_map(|key| table.get(key).cloned())
            .inspect(|res| res.lock().dirty = true)
            .collect();
        let known: std::collections::HashSet<PathBuf> = table.values().map(|r| r.lock().path.clone()).collect();
        for data_dir in std::iter::once(&dirs.cache).chain(&dirs.pinned) {
            let removed = store::remove_unknown(data_dir, &known);
            if removed > 0 {
                tracing::info!(dir = %data_dir.display(), removed, "removed data files the index does not know");
            }
        }
        let tracks = index.load_tracks()?;
        let cache = Arc::new(Self {
            dirs,
            index,
            table: Mutex::new(table),
            dirtied: tokio::sync::Notify::new(),
            fetcher,
            counters,
            max_bytes,
            attempts,
            cached_bytes: AtomicU64::new(total),
            generations,
            next_fill: AtomicU64::new(1),
            cancel: CancellationToken::new(),
            fills: TaskTracker::new(),
            dirty: Mutex::new(dirty),
        });
        if !cache.dirty.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            cache.dirtied.notify_one();
        }
        Ok((cache, tracks))
    }

    pub(crate) fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

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

    /// Registers a reader of `key` (creating the resource if new) and returns its handle, which
    /// unregisters it when dropped. While a reader is registered the resource is never evicted:
    /// the reader is counted before the table is unlocked, so no eviction can come between lookup
    /// and count.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        key: &str,
        url: &Url,
        track_id: Option<&str>,
    ) -> Result<Handle, Error> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let res = table
            .entry(key.to_string())
            .or_insert_with(|| {
                let generation = self.new_generation();
                let state = State {
                    url: url.clone(),
                    track_id: track_id.map(str::to_owned),
                    meta: None,
                    present: RangeSet::new(),
                    recorded: RangeSet::new(),
                    fills: Vec::new(),
                    outcomes: VecDeque::new(),
                    readers: 0,
                    generation,
                    last_access_ms: now_ms(),
                    pinned: false,
                    evicted: false,
                    dirty: false,
                    path: self.dirs.path(key, false, generation),
                };
                Arc::new(Resource::new(key.to_string(), state))
            })
            .clone();
        {
            let mut st = res.lock();
            st.readers += 1;
            st.last_access_ms = now_ms();
            if st.url != *url && st.track_id.is_some() {
                // A track re-registered with a fresh (re-signed) URL: same bytes, new address.
                st.url = url.clone();
            }
        }
        drop(table);
        Ok(Handle {
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

    /// A generation no incarnation of this cache has had.
    fn new_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts a new incarnation of `res`: a new generation, no bytes, and a data file of its own
    /// (created by its first fill) in the directory its pin calls for. Returns the old file, for
    /// the caller to unlink once the index no longer names it. Under the state lock.
    fn renew(&self, res: &Resource, st: &mut State) -> PathBuf {
        self.empty(st);
        st.generation = self.new_generation();
        let path = self.dirs.path(&res.key, st.pinned, st.generation);
        std::mem::replace(&mut st.path, path)
    }

    /// Forgets every byte of `res` (present and recorded) and takes them off the cached total.
    /// Under the state lock.
    fn empty(&self, st: &mut State) {
        let bytes = st.present.len();
        st.present.clear();
        st.recorded.clear();
        let _ = self
            .cached_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(bytes)));
    }

    /// Marks `res` as needing a trip to the index (an evicted resource never needs one).
    pub(crate) fn mark_dirty(&self, res: &Arc<Resource>, st: &mut State) {
        if !st.dirty && !st.evicted {
            st.dirty = true;
            let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
            if dirty.is_empty() {
                self.dirtied.notify_one();
            }
            dirty.push(res.clone());
        }
    }

    /// Accounts bytes received from upstream.
    pub(crate) fn count_upstream_bytes(&self, len: u64) {
        Counters::add(&self.counters.bytes_from_upstream, len);
    }

    /// Accounts bytes newly present; called under the state lock that made them present, so a
    /// concurrent [`Cache::renew`] or eviction never takes them off before they were counted.
    pub(crate) fn count_cached(&self, added: u64) {
        self.cached_bytes.fetch_add(added, Ordering::Relaxed);
    }

    /// Takes the backend's description of `res`. If it says the cached bytes belong to another
    /// version, they are dropped first (index, then file). Returns the generation to write under.
    pub(crate) async fn adopt_meta(self: &Arc<Self>, res: &Arc<Resource>, newer: Meta) -> Result<u64, Error> {
        {
            let mut st = res.lock();
            let stale = st.meta.as_ref().is_some_and(|m| m.is_replaced_by(&newer));
            if !stale {
                let merged = match st.meta.take() {
                    None => newer,
                    Some(old) => Meta {
                        size: old.size.or(newer.size),
                        etag: old.etag.or(newer.etag),
                        last_modified: old.last_modified.or(newer.last_modified),
                        mime: newer.mime.or(old.mime),
                        location: newer.location,
                    },
                };
                st.meta = Some(merged);
                self.mark_dirty(res, &mut st);
                let generation = st.generation;
                drop(st);
                res.notify();
                return Ok(generation);
            }
        }
        let (cache, res2) = (self.clone(), res.clone());
        let generation = tokio::task::spawn_blocking(move || cache.reset_stale(&res2, newer))
            .await
            .map_err(fill::join_error)??;
        res.notify();
        Ok(generation)
    }

    /// Drops the stale bytes of `res` and adopts `newer` in a new incarnation; blocking.
    fn reset_stale(&self, res: &Arc<Resource>, newer: Meta) -> Result<u64, Error> {
        let mut old = None;
        let result = self.index.write(|tx| {
            let mut st = res.lock();
            if st.evicted {
                return Err(Error::Stopped);
            }
            tracing::info!(key = %loggable_key(&res.key), "the backend's validator changed; dropping stale bytes");
            old = Some(self.renew(res, &mut st));
            st.meta = Some(newer);
            let row = row_of(res, &st, &st.present);
            let generation = st.generation;
            drop(st);
            // Eviction needs this transaction's connection: `res` is still the table's here.
            index::upsert_resource(tx, &row)?;
            Ok(generation)
        });
        // Whether or not the row was written: a row naming a missing file claims nothing.
        if let Some(old) = old {
            remove_data_file(&old);
        }
        result
    }

    /// Syncs every dirty resource's data and records its ranges; blocking. Then evicts.
    pub(crate) fn persist(&self) -> Result<(), Error> {
        let dirty = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        if !dirty.is_empty() {
            // Snapshot first, sync second: every byte in a snapshot was written before the sync.
            let mut snapshots = Vec::with_capacity(dirty.len());
            for res in &dirty {
                let mut st = res.lock();
                st.dirty = false;
                if st.evicted {
                    // Inert: its file and row are gone, and may be a successor's by now.
                    continue;
                }
                snapshots.push((
                    res.clone(),
                    st.present.clone(),
                    st.generation,
                    st.present != st.recorded,
                ));
            }
            let mut vanished = Vec::new();
            for (res, present, generation, data_changed) in &snapshots {
                if *data_changed && present.len() > 0 && !sync_data(res, *generation)? {
                    vanished.push((res.clone(), *generation));
                }
            }
            self.index.write(|tx| {
                for (res, present, generation, _) in &snapshots {
                    // Bytes whose file is gone are never recorded as durable.
                    if vanished.iter().any(|(v, _)| Arc::ptr_eq(v, res)) {
                        continue;
                    }
                    let st = res.lock();
                    // Never-answered resources (a 404, an unreachable backend) are not recorded.
                    if st.generation != *generation || st.evicted || st.meta.is_none() {
                        continue;
                    }
                    let row = row_of(res, &st, present);
                    drop(st);
                    index::upsert_resource(tx, &row)?;
                }
                Ok(())
            })?;
            for (res, present, generation, _) in &snapshots {
                let mut st = res.lock();
                if st.generation == *generation {
                    st.recorded = present.clone();
                }
            }
            for (res, generation) in &vanished {
                self.lose(res, *generation)?;
            }
            self.forget_unanswered(snapshots.iter().map(|(res, ..)| res));
        }
        self.evict()
    }

    /// Drops idle resources the backend never described (so failed URLs do not pile up).
    fn forget_unanswered<'a>(&self, candidates: impl Iterator<Item = &'a Arc<Resource>>) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        for res in candidates {
            if !table.get(&res.key).is_some_and(|r| Arc::ptr_eq(r, res)) {
                continue;
            }
            let mut st = res.lock();
            if st.meta.is_none() && st.readers == 0 && st.fills.is_empty() && st.present.len() == 0 {
                st.evicted = true;
                table.remove(&res.key);
                // A fill may have created an empty data file before failing.
                remove_data_file(&st.path);
            }
        }
    }

    /// Evicts least recently used idle resources until the cache fits its limit; blocking.
    fn evict(&self) -> Result<(), Error> {
        if self.cached_bytes.load(Ordering::Relaxed) <= self.max_bytes {
            return Ok(());
        }
        let candidates: Vec<eviction::Candidate> = {
            let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            table
                .values()
                .map(|res| {
                    let st = res.lock();
                    eviction::Candidate {
                        key: res.key.clone(),
                        bytes: st.present.len(),
                        last_access_ms: st.last_access_ms,
                        protected: st.pinned || st.readers > 0 || !st.fills.is_empty(),
                    }
                })
                .collect()
        };
        for key in eviction::victims(candidates, self.max_bytes) {
            if self.remove_idle(&key, false)? {
                Counters::add(&self.counters.evictions, 1);
                tracing::debug!(key = %loggable_key(&key), "evicted");
            }
        }
        Ok(())
    }

    /// Removes `key` (row, then file) if nobody reads or fills it and, unless `unpin`, it is not
    /// pinned; blocking. Returns whether it was removed.
    fn remove_idle(&self, key: &str, unpin: bool) -> Result<bool, Error> {
        Ok(self.remove_idle_many(&[key.to_string()], unpin)? == 1)
    }

    /// Removes the resources under `keys` once their fills have stopped (at most 5 s each), if
    /// nobody reads them; with `unpin` pinned ones too, and those still read are unpinned instead
    /// (they leave with ordinary eviction). Returns how many were removed.
    pub(crate) async fn remove(self: &Arc<Self>, keys: Vec<String>, unpin: bool) -> Result<usize, Error> {
        for key in &keys {
            self.settle(key, Duration::from_secs(5)).await;
        }
        let cache = self.clone();
        self.blocking(move || {
            let removed = cache.remove_idle_many(&keys, unpin)?;
            if unpin {
                for key in &keys {
                    cache.set_pinned_key(key, false);
                }
            }
            Ok(removed)
        })
        .await
    }

    /// [`Cache::remove_idle`] for many keys in one index transaction (an HLS rendition has
    /// hundreds of segments); returns how many were removed.
    pub(crate) fn remove_idle_many(&self, keys: &[String], unpin: bool) -> Result<usize, Error> {
        self.index.write(|tx| {
            let mut removed = Vec::new();
            {
                let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
                for key in keys {
                    let Some(res) = table.get(key).cloned() else {
                        continue;
                    };
                    let mut st = res.lock();
                    // Re-check under the locks: a reader may have arrived since any snapshot.
                    if (st.pinned && !unpin) || st.readers > 0 || !st.fills.is_empty() {
                        continue;
                    }
                    // Inert from here on, holding no bytes: whatever still holds the `Arc` (the
                    // dirty list) can neither count nor record them again.
                    st.evicted = true;
                    self.empty(&mut st);
                    let path = st.path.clone();
                    drop(st);
                    table.remove(key);
                    // The file is this incarnation's alone: a successor under the same key gets
                    // a file of its own, so this unlink can never take its bytes.
                    remove_data_file(&path);
                    removed.push(key);
                }
            }
            for key in &removed {
                index::delete_resource(tx, key)?;
            }
            Ok(removed.len())
        })
    }

    /// Waits (at most `limit`) until the fills of an unread resource have stopped, so that it
    /// can be removed. Returns at once if a reader is still there.
    async fn settle(&self, key: &str, limit: Duration) {
        let res = self.table.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        let Some(res) = res else { return };
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

    /// Drops the bytes of `res` whose data file is gone (the system emptied the cache directory
    /// under us), if they are still those of `generation`: they are fetched again by the next
    /// read. A pin stays, so the bytes fetched again are pinned again; blocking.
    pub(crate) fn lose(&self, res: &Arc<Resource>, generation: u64) -> Result<(), Error> {
        if self.drop_bytes(res, Some(generation), true)? {
            tracing::warn!(key = %loggable_key(&res.key), "a data file vanished; its bytes will be fetched again");
        }
        Ok(())
    }

    /// Drops the bytes of `res` (all of them, or only if they are still those of `generation`):
    /// a failed checksum, an expired live playlist ([`Handle::discard`]), a data file that
    /// vanished ([`Cache::lose`]). `false` if `res` is no longer of `generation` (or evicted).
    /// The bytes go with their incarnation: `res` starts a new one, empty, unpinned unless
    /// `keep_pin`; readers of the old bytes abort; blocking.
    fn drop_bytes(&self, res: &Arc<Resource>, generation: Option<u64>, keep_pin: bool) -> Result<bool, Error> {
        let mut old = None;
        let result = self.index.write(|tx| {
            let mut st = res.lock();
            if st.evicted || generation.is_some_and(|g| g != st.generation) {
                return Ok(false);
            }
            st.meta = None;
            st.pinned &= keep_pin;
            old = Some(self.renew(res, &mut st));
            self.mark_dirty(res, &mut st);
            drop(st);
            // Eviction needs this transaction's connection: `res` is still the table's here.
            index::delete_resource(tx, &res.key)?;
            Ok(true)
        });
        if let Some(old) = old {
            remove_data_file(&old);
        }
        res.notify();
        result
    }

    /// Opens the data file of incarnation `generation` of `res` for fill `id` to write;
    /// blocking. `None` if the fill has nothing to write there: it was stopped, `res` was
    /// evicted, or `generation` is no longer current (its bytes were dropped; whoever dropped
    /// them woke the readers). Opened under the state lock, so the file is that incarnation's.
    /// A missing file is created only while no bytes are claimed for it; if bytes are, the file
    /// vanished under us, and its bytes are dropped (a new incarnation) instead.
    pub(crate) fn open_for_fill(
        &self,
        res: &Arc<Resource>,
        id: u64,
        generation: u64,
    ) -> Result<Option<std::fs::File>, Error> {
        let st = res.lock();
        if !st.is_current(generation) || !st.fills.iter().any(|f| f.id == id) {
            return Ok(None);
        }
        match store::open_existing(&st.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && st.present.len() == 0 => {
                Ok(Some(store::open_for_write(&st.path)?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                drop(st);
                self.lose(res, generation)?;
                Ok(None)
            }
            other => Ok(Some(other?)),
        }
    }

    /// Opens the data file of incarnation `generation` of `res` for reading; blocking. Opened
    /// under the state lock, so the file is that incarnation's; if `res` has moved on, the
    /// bytes the reader wanted are stale. A file that is gone although its bytes are claimed
    /// (the system emptied the cache directory under us) costs its bytes: they are dropped, so
    /// this read fails but the next one fetches them again.
    pub(super) fn open_data(&self, res: &Arc<Resource>, generation: u64) -> Result<std::fs::File, Error> {
        match open_incarnation(res, generation) {
            None => Err(reader::stale_error()),
            Some(Ok(file)) => Ok(file),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                self.lose(res, generation)?;
                Err(e.into())
            }
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// Pins or unpins `res` (a pinned resource is never evicted).
    fn set_pinned(&self, res: &Arc<Resource>, pinned: bool) {
        let mut st = res.lock();
        if st.pinned != pinned {
            st.pinned = pinned;
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

    /// Pins or unpins the resources under `keys` that are known (moving hundreds of files for an
    /// HLS rendition: off the async threads).
    pub(crate) async fn set_pinned_keys(self: &Arc<Self>, keys: Vec<String>, pinned: bool) -> Result<(), Error> {
        let cache = self.clone();
        self.blocking(move || {
            for key in &keys {
                cache.set_pinned_key(key, pinned);
            }
            Ok(())
        })
        .await
    }

    /// Pins or unpins the resource under `key`, if it is known; blocking.
    pub(crate) fn set_pinned_key(&self, key: &str, pinned: bool) {
        let res = self.table.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        if let Some(res) = res {
            self.set_pinned(&res, pinned);
        }
    }

    /// Bytes pinned by resources other than `keys`.
    pub(crate) fn pinned_bytes_except(&self, keys: &[String]) -> u64 {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table
            .values()
            .filter(|r| !keys.contains(&r.key))
            .map(|r| {
                let st = r.lock();
                if st.pinned {
                    st.present.len()
                } else {
                    0
                }
            })
            .sum()
    }

    /// The configured upper bound on cached bytes.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Every download row; blocking.
    pub(crate) fn load_downloads(&self) -> Result<Vec<DownloadRow>, Error> {
        self.index.write(index::load_downloads)
    }

    /// Saves a download row.
    pub(crate) async fn save_download(&self, row: DownloadRow) -> Result<(), Error> {
        let index = self.index.clone();
        self.blocking(move || index.write(|tx| index::upsert_download(tx, &row))).await
    }

    /// Deletes a download row.
    pub(crate) async fn delete_download(&self, id: String) -> Result<(), Error> {
        let index = self.index.clone();
        self.blocking(move || index.write(|tx| index::delete_download(tx, &id))).await
    }

    /// Records what changed, in batches at most `interval` after the first change, until
    /// shutdown; sleeps while nothing changes.
    pub(crate) async fn persist_loop(self: Arc<Self>, interval: Duration) {
        loop {
            // Idle until something needs recording: no periodic wake-ups while nothing changes
            // (a phone's CPU can stay asleep); then one interval to batch what follows.
            tokio::select! {
                () = self.dirtied.notified() => {}
                () = self.cancel.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.cancel.cancelled() => return,
            }
            let cache = self.clone();
            match tokio::task::spawn_blocking(move || cache.persist()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "recording cached ranges failed"),
                Err(e) => tracing::error!(error = %e, "persister task failed"),
            }
        }
    }

    /// Stops every fill, then records what was written. Idempotent.
    pub(crate) async fn shutdown(self: &Arc<Self>) -> Result<(), Error> {
        self.cancel.cancel();
        self.fills.close();
        self.fills.wait().await;
        let cache = self.clone();
        tokio::task::spawn_blocking(move || cache.persist())
            .await
            .map_err(fill::join_error)?
    }

    /// The state of one resource, if it is in the cache.
    pub(crate) fn info(&self, key: &str) -> Option<ResourceInfo> {
        let res = self.table.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()?;
        let st = res.lock();
        Some(ResourceInfo {
            cached_bytes: st.present.len(),
            recorded_bytes: st.recorded.len(),
            size: st.meta.as_ref().and_then(|m| m.size),
            complete: st.complete(),
            pinned: st.pinned,
        })
    }

    /// Every resource in the cache, ordered by key.
    pub(crate) fn resources(&self) -> Vec<ResourceListing> {
        let all: Vec<Arc<Resource>> = {
            let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            table.values().cloned().collect()
        };
        let mut list: Vec<ResourceListing> = all
            .iter()
            .map(|res| {
                let st = res.lock();
                let key = match Url::parse(&res.key) {
                    Ok(url) if st.track_id.is_none() => crate::fetch::redact(&url),
                    _ => res.key.clone(),
                };
                ResourceListing {
                    key,
                    url: crate::fetch::redact(&st.url),
                    track_id: st.track_id.clone(),
                    size: st.meta.as_ref().and_then(|m| m.size),
                    cached_bytes: st.present.len(),
                    pinned: st.pinned,
                    complete: st.complete(),
                    ranges: st.present.runs().iter().map(|&(a, b)| [a, b]).collect(),
                    readers: st.readers,
                    fills: st.fills.len(),
                }
            })
            .collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        list
    }

    /// `(cache_bytes, pinned_bytes, entries)` over the whole cache.
    pub(crate) fn totals(&self) -> (u64, u64, u64) {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut pinned = 0;
        for res in table.values() {
            let st = res.lock();
            if st.pinned {
                pinned += st.present.len();
            }
        }
        (self.cached_bytes.load(Ordering::Relaxed), pinned, table.len() as u64)
    }

    /// Persists a catalog track.
    pub(crate) async fn put_track(&self, track: TrackRow) -> Result<(), Error> {
        let index = self.index.clone();
        self.blocking(move || index.put_track(&track)).await
    }

    /// Points the cached track resource (if any) at a new URL.
    pub(crate) fn retarget(&self, key: &str, url: &Url) {
        let res = self.table.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        if let Some(res) = res {
            let mut st = res.lock();
            if st.url != *url {
                st.url = url.clone();
                self.mark_dirty(&res, &mut st);
            }
        }
    }
}

/// The index row describing `res` with `ranges` recorded.
/// The index's file name (SQLite adds `-wal` and `-shm` beside it).
const INDEX_FILE: &str = "index.sqlite";

/// Carries an index kept in the cache directory (a layout from before the downloads directory
/// was set) over to `downloads`, unless `downloads` has one already; blocking.
fn move_index(cache: &Path, downloads: &Path) -> Result<(), Error> {
    let (from, to) = (cache.join(INDEX_FILE), downloads.join(INDEX_FILE));
    if cache == downloads || !from.exists() {
        return Ok(());
    }
    if to.exists() {
        // Two indexes (the server ran with and without the downloads directory): using one would
        // treat the other's files as strays and delete them.
        return Err(Error::Config(format!(
            "both {} and {} exist; keep the one to use and remove the other (with its -wal and -shm files)",
            from.display(),
            to.display()
        )));
    }
    tracing::info!(from = %from.display(), to = %to.display(), "moving the index to the downloads directory");
    // The main file last: until it is there, a crash leaves the index where it was.
    for suffix in ["-wal", "-shm", ""] {
        let (f, t) = (
            cache.join(format!("{INDEX_FILE}{suffix}")),
            downloads.join(format!("{INDEX_FILE}{suffix}")),
        );
        match std::fs::rename(&f, &t) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Config(format!(
                    "cannot move the index {} to {}: {e}",
                    f.display(),
                    t.display()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Moves the data file of `res` to the directory its pin calls for, if no fill is writing it
/// (a fill holds the path it opened; the last fill to end calls this again). Runs under the
/// state lock, under which files are opened too; a rename keeps the inode, so files already
/// open stay valid. A file that cannot be moved (another file system) stays where it is and is
/// still found there.
fn relocate(dirs: &DataDirs, res: &Resource, st: &mut State) {
    let target = dirs.path(&res.key, st.pinned, st.generation);
    if st.path == target || !st.fills.is_empty() || st.evicted {
        return;
    }
    let moved = target
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::rename(&st.path, &target));
    match moved {
        Ok(()) => st.path = target,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => st.path = target,
        Err(e) => {
            tracing::warn!(key = %loggable_key(&res.key), error = %e, "cannot move a data file; it stays where it is");
        }
    }
}

/// Syncs the data file of incarnation `generation` of `res` to disk; blocking. `false` only if
/// that incarnation is still current and its file is gone (it vanished under us); an
/// incarnation that has moved on has nothing to sync (its snapshot will not be recorded).
fn sync_data(res: &Resource, generation: u64) -> Result<bool, Error> {
    match open_incarnation(res, generation) {
        None => Ok(true),
        Some(Ok(file)) => Ok(file.sync_data().map(|()| true)?),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Some(Err(e)) => Err(e.into()),
    }
}

/// Opens the data file of incarnation `generation` of `res` for reading, under the state lock
/// (files move and incarnations change only under it, so the file is that incarnation's);
/// `None` if `res` has moved on or was evicted.
fn open_incarnation(res: &Resource, generation: u64) -> Option<std::io::Result<std::fs::File>> {
    let st = res.lock();
    st.is_current(generation).then(|| std::fs::File::open(&st.path))
}

/// Unlinks a data file no incarnation uses any more; a failure leaves a stray for the sweep at
/// the next start.
fn remove_data_file(path: &Path) {
    if let Err(e) = store::remove(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a data file");
    }
}

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
        last_access_ms: st.last_access_ms,
        pinned: st.pinned,
        generation: Some(st.generation),
    }
}

#[cfg(test)]
mod interleavings;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loggable_keys_carry_no_query_or_credentials() {
        assert_eq!(loggable_key("track:t1"), "track:t1");
        assert_eq!(
            loggable_key("https://u:pw@cdn.example.com/a.mp3?sig=secret"),
            "https://cdn.example.com/a.mp3"
        );
        assert_eq!(loggable_key("not a url?sig=secret"), "(unparsable key)");
    }
}
