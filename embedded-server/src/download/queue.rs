//! The queue: every download's state, and the one place it changes.
//!
//! Each change is saved to the index (so the queue survives app kills) and published to
//! subscribers as a [`DownloadInfo`] whose version orders it among the others. A change that may
//! let a download run wakes the scheduler.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::futures::Notified;
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::task::Ledger;
use super::{DownloadInfo, DownloadState, DownloadTarget, MAX_DOWNLOAD_DATA};
use crate::cache::{Cache, DownloadRow};
use crate::catalog::{track_key, Catalog};
use crate::clock::now_ms;
use crate::error::Error;
use crate::fetch::Fetcher;

/// One download's in-memory state.
struct Entry {
    row: DownloadRow,
    state: DownloadState,
    error: Option<String>,
    /// Cancels the running task (pause, delete); a child of the downloader's shutdown token.
    cancel: Option<CancellationToken>,
    task: Option<JoinHandle<()>>,
}

/// Every download of one server, by ID.
pub(super) struct Queue {
    cache: Arc<Cache>,
    catalog: Arc<Catalog>,
    fetcher: Arc<Fetcher>,
    entries: Mutex<HashMap<String, Entry>>,
    /// The last [`DownloadInfo::version`] given out; taken under the `entries` lock.
    versions: AtomicU64,
    /// Tells the scheduler that a download may be ready to run, or a worker free.
    wake: Notify,
    events: broadcast::Sender<DownloadInfo>,
}

impl Queue {
    /// Loads the queue from the index (blocking).
    pub(super) fn open(cache: Arc<Cache>, catalog: Arc<Catalog>, fetcher: Arc<Fetcher>) -> Result<Self, Error> {
        let mut entries = HashMap::new();
        for row in cache.load_downloads()? {
            // A completed download's bytes are checked in the background after start.
            let state = DownloadState::resumed(&row.state);
            let error = row.error.clone().filter(|_| state == DownloadState::Failed);
            entries.insert(
                row.id.clone(),
                Entry {
                    row,
                    state,
                    error,
                    cancel: None,
                    task: None,
                },
            );
        }
        Ok(Self {
            cache,
            catalog,
            fetcher,
            entries: Mutex::new(entries),
            versions: AtomicU64::new(0),
            wake: Notify::new(),
            events: broadcast::channel(256).0,
        })
    }

    /// Queues a download (or returns the existing one for the same resource, re-queued if it had
    /// failed or was paused — asking again means "get it now" — and raised to `priority` if that
    /// is higher).
    pub(super) async fn enqueue(
        &self,
        target: DownloadTarget,
        priority: i64,
        data: Option<String>,
    ) -> Result<DownloadInfo, Error> {
        check_data(data.as_deref())?;
        let mut variant = None;
        let (key, url, track_id) = match target {
            DownloadTarget::Track(id) => {
                let track = self
                    .catalog
                    .get(&id)
                    .ok_or_else(|| Error::NotFound(format!("no track with ID {id:?}")))?;
                (track_key(&id), track.url, Some(id))
            }
            DownloadTarget::Url(url) => {
                let url = self.fetcher.check_origin(&url)?;
                (url.to_string(), url.to_string(), None)
            }
            DownloadTarget::Hls { url, variant: choice } => {
                let url = self.fetcher.check_origin(&url)?;
                variant = Some(choice.to_string());
                (url.to_string(), url.to_string(), None)
            }
        };
        let row = {
            let mut entries = self.lock();
            let existing = entries.values_mut().find(|e| e.row.key == key);
            match existing {
                Some(entry) => {
                    if matches!(entry.state, DownloadState::Failed | DownloadState::Paused) {
                        entry.state = DownloadState::Queued;
                        entry.error = None;
                    }
                    entry.row.priority = entry.row.priority.max(priority);
                    entry.row.url = url;
                    if variant.is_some() && entry.state != DownloadState::Completed {
                        entry.row.variant = variant;
                    }
                    if data.is_some() {
                        entry.row.data = data;
                    }
                    sync_row(entry)
                }
                None => {
                    let row = DownloadRow {
                        id: new_id()?,
                        key,
                        url,
                        track_id,
                        state: DownloadState::Queued.as_str().into(),
                        error: None,
                        priority,
                        created_ms: now_ms(),
                        variant,
                        members: Vec::new(),
                        data,
                    };
                    let entry = Entry {
                        row: row.clone(),
                        state: DownloadState::Queued,
                        error: None,
                        cancel: None,
                        task: None,
                    };
                    entries.insert(row.id.clone(), entry);
                    row
                }
            }
        };
        self.save(&row).await?;
        self.wake();
        let info = self.info(&row.id)?;
        let _ = self.events.send(info.clone());
        Ok(info)
    }

    /// Replaces (or with `None` removes) download `id`'s app data; recorded before it returns.
    pub(super) async fn set_data(&self, id: &str, data: Option<String>) -> Result<DownloadInfo, Error> {
        check_data(data.as_deref())?;
        let (row, previous) = {
            let mut entries = self.lock();
            let e = entries.get_mut(id).ok_or_else(|| unknown(id))?;
            let previous = std::mem::replace(&mut e.row.data, data);
            (sync_row(e), previous)
        };
        if let Err(e) = self.save(&row).await {
            // Not recorded (a full disk): the download keeps the data the index has.
            if let Some(entry) = self.lock().get_mut(id).filter(|entry| entry.row.data == row.data) {
                entry.row.data = previous;
            }
            return Err(e);
        }
        let info = self.info(id)?;
        let _ = self.events.send(info.clone());
        Ok(info)
    }

    /// Every download, highest priority first, then oldest first.
    pub(super) fn list(&self) -> Vec<DownloadInfo> {
        let mut ids: Vec<(i64, u64, String)> = self
            .lock()
            .values()
            .map(|e| (-e.row.priority, e.row.created_ms, e.row.id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().filter_map(|(_, _, id)| self.info(&id).ok()).collect()
    }

    /// How many downloads are in each state, every state present.
    pub(super) fn count_by_state(&self) -> BTreeMap<String, u64> {
        let mut counts: BTreeMap<String, u64> = DownloadState::ALL.iter().map(|s| (s.to_string(), 0)).collect();
        for e in self.lock().values() {
            *counts.entry(e.state.to_string()).or_default() += 1;
        }
        counts
    }

    /// One download.
    pub(super) fn info(&self, id: &str) -> Result<DownloadInfo, Error> {
        let (row, state, error, version) = {
            let entries = self.lock();
            let e = entries.get(id).ok_or_else(|| unknown(id))?;
            // Under the lock every state change takes: a later version saw a later state.
            let version = self.versions.fetch_add(1, Ordering::Relaxed) + 1;
            (e.row.clone(), e.state, e.error.clone(), version)
        };
        let (bytes_done, bytes_total, pinned, segments) = if row.members.is_empty() {
            let cached = self.cache.info(&row.key).unwrap_or_default();
            let total = cached
                .size
                .or_else(|| row.track_id.as_deref().and_then(|t| self.catalog.get(t)?.size));
            (cached.cached_bytes, total, cached.pinned, None)
        } else {
            // An HLS download: sum over its members.
            let infos: Vec<_> = row
                .members
                .iter()
                .map(|k| self.cache.info(k).unwrap_or_default())
                .collect();
            let done = infos.iter().map(|i| i.cached_bytes).sum();
            let total = infos.iter().map(|i| i.size).sum::<Option<u64>>();
            let complete = infos.iter().filter(|i| i.complete).count() as u64;
            let pinned = infos.iter().all(|i| i.pinned);
            (done, total, pinned, Some((complete, row.members.len() as u64)))
        };
        Ok(DownloadInfo {
            id: row.id,
            track: row.track_id,
            url: row.url,
            state,
            bytes_done,
            bytes_total,
            error,
            priority: row.priority,
            pinned,
            segments_done: segments.map(|s| s.0),
            segments_total: segments.map(|s| s.1),
            yielding: state == DownloadState::Running && self.cache.arbiter().holding(),
            version,
            data: row.data,
        })
    }

    /// Pauses a queued or running download.
    pub(super) async fn pause(&self, id: &str) -> Result<DownloadInfo, Error> {
        let task = {
            let mut entries = self.lock();
            let e = entries.get_mut(id).ok_or_else(|| unknown(id))?;
            if matches!(e.state, DownloadState::Completed | DownloadState::Failed) {
                return Err(Error::invalid(format!(
                    "download {id} is {}; nothing to pause",
                    e.state
                )));
            }
            if let Some(cancel) = e.cancel.take() {
                cancel.cancel();
            }
            e.task.take()
        };
        // Report "paused" only once the task is gone: from then on no byte arrives for it.
        if let Some(task) = task {
            let _ = task.await;
        }
        let row = {
            let mut entries = self.lock();
            let e = entries.get_mut(id).ok_or_else(|| unknown(id))?;
            if e.state == DownloadState::Completed {
                return self.info(id);
            }
            e.state = DownloadState::Paused;
            sync_row(e)
        };
        self.save(&row).await?;
        self.changed(id);
        self.info(id)
    }

    /// Resumes a paused (or retries a failed) download.
    pub(super) async fn resume(&self, id: &str) -> Result<DownloadInfo, Error> {
        let row = {
            let mut entries = self.lock();
            let e = entries.get_mut(id).ok_or_else(|| unknown(id))?;
            if matches!(e.state, DownloadState::Paused | DownloadState::Failed) {
                e.state = DownloadState::Queued;
                e.error = None;
            }
            sync_row(e)
        };
        self.save(&row).await?;
        self.wake();
        self.changed(id);
        self.info(id)
    }

    /// Cancels a download, unpins it and frees its bytes (unless a player is reading them; then
    /// they are only unpinned and leave with ordinary eviction).
    pub(super) async fn cancel(&self, id: &str) -> Result<(), Error> {
        let (entry, task) = {
            let mut entries = self.lock();
            let mut e = entries.remove(id).ok_or_else(|| unknown(id))?;
            if let Some(cancel) = e.cancel.take() {
                cancel.cancel();
            }
            let task = e.task.take();
            (e, task)
        };
        if let Some(task) = task {
            let _ = task.await;
        }
        self.wake();
        let keys = member_keys(&entry.row);
        self.cache.delete_download(id.to_string()).await?;
        // Idle members go at once, from wherever they are; the few still being read are
        // unpinned (moved back to the cache directory) and leave with ordinary eviction.
        self.cache.remove(keys, true).await?;
        Ok(())
    }

    /// A stream of download updates (state changes, and progress at most every 250 ms each).
    pub(super) fn subscribe(&self) -> broadcast::Receiver<DownloadInfo> {
        self.events.subscribe()
    }

    /// Every completed download: its ID and the cache keys it covers.
    pub(super) fn completed(&self) -> Vec<(String, Vec<String>)> {
        self.lock()
            .values()
            .filter(|e| e.state == DownloadState::Completed)
            .map(|e| (e.row.id.clone(), member_keys(&e.row)))
            .collect()
    }

    /// Queues a completed download again (its bytes are gone); one no longer completed is left
    /// as it is.
    pub(super) async fn requeue_completed(&self, id: &str) {
        let row = {
            let mut entries = self.lock();
            let Some(e) = entries.get_mut(id).filter(|e| e.state == DownloadState::Completed) else {
                return;
            };
            e.state = DownloadState::Queued;
            sync_row(e)
        };
        if let Err(e) = self.save(&row).await {
            tracing::warn!(download = %id, error = %e, "cannot save a download");
        }
        self.wake();
        self.changed(id);
    }

    /// Takes the best queued download (highest priority, then oldest) and marks it running; its
    /// run is cancelled through the returned child of `shutdown`.
    pub(super) fn pick(&self, shutdown: &CancellationToken) -> Option<(String, CancellationToken)> {
        let mut entries = self.lock();
        let best = entries
            .values_mut()
            .filter(|e| e.state == DownloadState::Queued)
            .min_by_key(|e| (-e.row.priority, e.row.created_ms))?;
        best.state = DownloadState::Running;
        let cancel = shutdown.child_token();
        best.cancel = Some(cancel.clone());
        Some((best.row.id.clone(), cancel))
    }

    /// Keeps the handle of download `id`'s run, for a pause or a delete to wait on.
    pub(super) fn set_task(&self, id: &str, task: JoinHandle<()>) {
        if let Some(e) = self.lock().get_mut(id) {
            e.task = Some(task);
        }
    }

    /// Records how a run ended.
    pub(super) async fn finish(&self, id: &str, outcome: Result<(), String>) {
        let row = {
            let mut entries = self.lock();
            let Some(e) = entries.get_mut(id) else { return };
            e.cancel = None;
            match outcome {
                Ok(()) => {
                    e.state = DownloadState::Completed;
                    e.error = None;
                }
                Err(message) => {
                    tracing::warn!(download = %id, error = %message, "download failed");
                    e.state = DownloadState::Failed;
                    e.error = Some(message);
                }
            }
            sync_row(e)
        };
        if let Err(e) = self.save(&row).await {
            tracing::error!(download = %id, error = %e, "cannot record the download's state");
        }
        self.changed(id);
    }

    /// Tells the scheduler that a download may be ready to run, or a worker free.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next [`wake`](Self::wake) (or at once, if one came while nobody waited).
    pub(super) fn woken(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// Publishes the running downloads whenever they start or stop holding back for players
    /// or prefetch (their `yielding`), until `shutdown`.
    pub(super) async fn publish_yielding(&self, shutdown: CancellationToken) {
        let arbiter = self.cache.arbiter();
        let mut changes = arbiter.watch_holding();
        let mut was = arbiter.holding();
        loop {
            tokio::select! {
                alive = changes.changed() => if !alive { return },
                () = shutdown.cancelled() => return,
            }
            let now = arbiter.holding();
            if now != was {
                was = now;
                let running: Vec<String> = self
                    .lock()
                    .iter()
                    .filter(|(_, e)| e.state == DownloadState::Running)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in running {
                    self.changed(&id);
                }
            }
        }
    }

    /// Publishes the current state of `id`.
    fn changed(&self, id: &str) {
        if let Ok(info) = self.info(id) {
            let _ = self.events.send(info);
        }
    }

    /// Saves a row to the index.
    async fn save(&self, row: &DownloadRow) -> Result<(), Error> {
        self.cache.save_download(row.clone()).await
    }

    /// The entries, locked (a panic while they were locked left them consistent enough to go on).
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Ledger for Queue {
    fn row(&self, id: &str) -> Option<DownloadRow> {
        self.lock().get(id).map(|e| e.row.clone())
    }

    fn set_state(&self, id: &str, state: DownloadState) {
        let changed = match self.lock().get_mut(id) {
            Some(e)
                if e.state != state && matches!(e.state, DownloadState::Running | DownloadState::WaitingForNetwork) =>
            {
                e.state = state;
                true
            }
            _ => false,
        };
        if changed {
            self.changed(id);
        }
    }

    fn progressed(&self, id: &str) {
        self.changed(id);
    }

    async fn set_members(&self, id: &str, members: Vec<String>) -> Result<(), Error> {
        let row = {
            let mut entries = self.lock();
            let Some(e) = entries.get_mut(id) else {
                return Ok(());
            };
            e.row.members = members;
            sync_row(e)
        };
        self.save(&row).await
    }
}

/// The error for an ID that names no download.
fn unknown(id: &str) -> Error {
    Error::NotFound(format!("no download with ID {id:?}"))
}

/// Every cache key a download covers: its members (HLS), else its one resource.
fn member_keys(row: &DownloadRow) -> Vec<String> {
    if row.members.is_empty() {
        vec![row.key.clone()]
    } else {
        row.members.clone()
    }
}

/// The entry's row with its current state and error.
fn sync_row(e: &mut Entry) -> DownloadRow {
    e.row.state = e.state.as_str().into();
    e.row.error = e.error.clone();
    e.row.clone()
}

/// Refuses app data over [`MAX_DOWNLOAD_DATA`] bytes.
fn check_data(data: Option<&str>) -> Result<(), Error> {
    match data {
        Some(d) if d.len() > MAX_DOWNLOAD_DATA => Err(Error::invalid(format!(
            "download data is {} bytes; at most {MAX_DOWNLOAD_DATA} bytes (UTF-8) are kept",
            d.len()
        ))),
        _ => Ok(()),
    }
}

/// A fresh download ID: `d` and 64 random bits in hex.
fn new_id() -> Result<String, Error> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| crate::error::StorageError::io(e.into()).context("no randomness for an ID"))?;
    Ok(format!("d{}", hex::encode(bytes)))
}
