//! The downloader: a persistent queue of offline downloads, a small worker pool, a network gate,
//! integrity checks and pins.
//!
//! A download is a reader of its resource like any player response: it walks a [`Cursor`] over
//! the whole resource, so it reuses the cache's single-flight fills (a track downloaded while it
//! plays is fetched once) and their mid-body resume. Everything else lives here: the queue in
//! the index (so it survives app kills), the choice of what runs next (priority, then age),
//! retries with backoff for what can be retried, SHA-256 verification, the pin limit, and the
//! network gate that parks downloads while the device is offline or on a metered network.
//!
//! # Layout
//! - `gate`: the network state and what it allows
//! - `hls`: which rendition of an HLS stream, and which resources make it up
//! - `task`: running one download to completion
//!
//! [`Cursor`]: crate::cache::cursor::Cursor

mod gate;
mod hls;
mod task;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::config::NetworkState;
use gate::NetworkGate;
pub use hls::VariantChoice;

use crate::cache::{Cache, DownloadRow};
use crate::catalog::{track_key, Catalog};
use crate::clock::now_ms;
use crate::error::{Error, ParseError};
use crate::fetch::Fetcher;

/// Where a download is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadState {
    /// Waiting for a worker.
    Queued,
    /// Fetching bytes.
    Running,
    /// Parked until the network allows downloads (offline, or metered and not allowed).
    WaitingForNetwork,
    /// Paused by the app.
    Paused,
    /// Every byte is cached, verified and pinned.
    Completed,
    /// Gave up; `error` says why.
    Failed,
}

impl DownloadState {
    /// Every state, in the order of a download's life.
    pub(crate) const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::WaitingForNetwork,
        Self::Paused,
        Self::Completed,
        Self::Failed,
    ];

    /// The wire name (SPEC §4.2), also stored in the index: `queued`, `running`,
    /// `waiting_for_network`, `paused`, `completed`, `failed`.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::WaitingForNetwork => "waiting_for_network",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The state a stored row resumes in after a restart: work that was under way (or a state
    /// this build does not know) is queued again.
    fn resumed(text: &str) -> Self {
        match text.parse() {
            Ok(Self::Running | Self::WaitingForNetwork) | Err(_) => Self::Queued,
            Ok(state) => state,
        }
    }
}

impl fmt::Display for DownloadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DownloadState {
    type Err = ParseError;

    /// Parses a wire name (exactly as [`Display`](fmt::Display) writes it).
    fn from_str(text: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            ParseError::new(
                "download state",
                text,
                "queued, running, waiting_for_network, paused, completed or failed",
            )
        })
    }
}

/// A download as the app sees it (the JSON of `/api/downloads`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownloadInfo {
    /// The download's ID.
    pub id: String,
    /// The catalog track, if it is one.
    pub track: Option<String>,
    /// The remote URL.
    pub url: String,
    /// Where it is in its life.
    pub state: DownloadState,
    /// Bytes cached so far.
    pub bytes_done: u64,
    /// Total bytes, when known.
    pub bytes_total: Option<u64>,
    /// Why it failed, for a person to read.
    pub error: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    /// Its bytes are pinned (never evicted).
    pub pinned: bool,
    /// For an HLS download: resources (playlists, segments, init sections, keys) cached so far.
    pub segments_done: Option<u64>,
    /// For an HLS download: resources it needs, once its playlists have been read.
    pub segments_total: Option<u64>,
    /// Orders the snapshots of one server: of two snapshots of a download, the one with the
    /// higher version is the newer (it was read later). Listeners keep the highest per ID, so an
    /// update that arrives late never overwrites a newer state.
    pub version: u64,
}

/// What to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadTarget {
    /// A catalog track, by ID.
    Track(String),
    /// A remote URL on an allowed origin. A URL that turns out to be an HLS playlist downloads
    /// the default (middle) rendition.
    Url(String),
    /// An HLS playlist URL and the rendition to keep offline.
    Hls {
        /// The master (or media) playlist URL.
        url: String,
        /// Which variant stream of a master playlist.
        variant: VariantChoice,
    },
}

/// One download's in-memory state.
struct Entry {
    row: DownloadRow,
    state: DownloadState,
    error: Option<String>,
    /// Cancels the running task (pause, delete); a child of the downloader's shutdown token.
    cancel: Option<CancellationToken>,
    task: Option<JoinHandle<()>>,
}

/// The downloader of one server.
pub(crate) struct Downloader {
    cache: Arc<Cache>,
    catalog: Arc<Catalog>,
    fetcher: Arc<Fetcher>,
    entries: Mutex<HashMap<String, Entry>>,
    /// The last [`DownloadInfo::version`] given out; taken under the `entries` lock.
    versions: AtomicU64,
    slots: Arc<Semaphore>,
    wake: Notify,
    gate: NetworkGate,
    events: broadcast::Sender<DownloadInfo>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The server's runtime: prefetches are spawned on it from any thread (the JNI bridge calls
    /// in from threads that are not the runtime's).
    runtime: tokio::runtime::Handle,
    patience: Duration,
    attempts: u32,
}

impl Downloader {
    /// Loads the queue from the index (blocking) and returns the downloader, not yet running.
    /// Call it within the server's runtime (`spawn_blocking` is).
    pub(crate) fn open(
        cache: Arc<Cache>,
        catalog: Arc<Catalog>,
        fetcher: Arc<Fetcher>,
        workers: usize,
        allow_metered: bool,
        patience: Duration,
    ) -> Result<Arc<Self>, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("the downloader must be opened within a tokio runtime".into()))?;
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
        Ok(Arc::new(Self {
            cache,
            catalog,
            fetcher,
            entries: Mutex::new(entries),
            versions: AtomicU64::new(0),
            slots: Arc::new(Semaphore::new(workers)),
            wake: Notify::new(),
            gate: NetworkGate::new(allow_metered),
            events: broadcast::channel(256).0,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            runtime,
            patience,
            attempts: 8,
        }))
    }

    /// Starts the scheduler that hands queued downloads to workers, and the check of completed
    /// downloads.
    pub(crate) fn start(self: &Arc<Self>) {
        let this = self.clone();
        self.tasks.spawn(async move { this.schedule().await });
        let this = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = this.verify_completed() => {}
                () = this.shutdown.cancelled() => {}
            }
        });
    }

    /// Checks that every completed download still has all its bytes, after start (a library of
    /// many downloads must not delay the first play): its pins are made to hold (they are
    /// recorded with the resources in batches, so a crash can lose the last ones), and one whose
    /// bytes are gone (a cleared data directory) is queued again.
    async fn verify_completed(self: &Arc<Self>) {
        let completed: Vec<(String, Vec<String>)> = self
            .lock()
            .values()
            .filter(|e| e.state == DownloadState::Completed)
            .map(|e| (e.row.id.clone(), member_keys(&e.row)))
            .collect();
        for (id, keys) in completed {
            let infos = match self.cache.verify(keys.clone()).await {
                Ok(infos) => infos,
                Err(e) => {
                    tracing::warn!(download = %id, error = %e, "cannot check a completed download");
                    continue;
                }
            };
            if infos.iter().all(|i| i.as_ref().is_some_and(|i| i.complete)) {
                let unpinned: Vec<String> = keys
                    .into_iter()
                    .zip(&infos)
                    .filter(|(_, i)| !i.as_ref().is_some_and(|i| i.pinned))
                    .map(|(k, _)| k)
                    .collect();
                if !unpinned.is_empty() {
                    if let Err(e) = self.cache.set_pinned_keys(unpinned, true).await {
                        tracing::warn!(download = %id, error = %e, "cannot pin a completed download");
                    }
                }
                continue;
            }
            tracing::info!(download = %id, "a completed download's bytes are gone; fetching them again");
            let row = {
                let mut entries = self.lock();
                let Some(e) = entries.get_mut(&id).filter(|e| e.state == DownloadState::Completed) else {
                    continue;
                };
                e.state = DownloadState::Queued;
                sync_row(e)
            };
            if let Err(e) = self.save(&row).await {
                tracing::warn!(download = %id, error = %e, "cannot save a download");
            }
            self.wake.notify_one();
            self.changed(&id);
        }
    }

    /// Queues a download (or returns the existing one for the same resource, re-queued if it had
    /// failed or was paused — asking again means "get it now" — and raised to `priority` if that
    /// is higher).
    pub(crate) async fn enqueue(&self, target: DownloadTarget, priority: i64) -> Result<DownloadInfo, Error> {
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
        self.wake.notify_one();
        let info = self.info(&row.id)?;
        let _ = self.events.send(info.clone());
        Ok(info)
    }

    /// Every download, highest priority first, then oldest first.
    pub(crate) fn list(&self) -> Vec<DownloadInfo> {
        let mut ids: Vec<(i64, u64, String)> = self
            .lock()
            .values()
            .map(|e| (-e.row.priority, e.row.created_ms, e.row.id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().filter_map(|(_, _, id)| self.info(&id).ok()).collect()
    }

    /// How many downloads are in each state, every state present.
    pub(crate) fn count_by_state(&self) -> std::collections::BTreeMap<String, u64> {
        let mut counts: std::collections::BTreeMap<String, u64> =
            DownloadState::ALL.iter().map(|s| (s.to_string(), 0)).collect();
        for e in self.lock().values() {
            *counts.entry(e.state.to_string()).or_default() += 1;
        }
        counts
    }

    /// One download.
    pub(crate) fn info(&self, id: &str) -> Result<DownloadInfo, Error> {
        let (row, state, error, version) = {
            let entries = self.lock();
            let e = entries
                .get(id)
                .ok_or_else(|| Error::NotFound(format!("no download with ID {id:?}")))?;
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
            version,
        })
    }

    /// Pauses a queued or running download.
    pub(crate) async fn pause(&self, id: &str) -> Result<DownloadInfo, Error> {
        let task = {
            let mut entries = self.lock();
            let e = entries
                .get_mut(id)
                .ok_or_else(|| Error::NotFound(format!("no download with ID {id:?}")))?;
            if matches!(e.state, DownloadState::Completed | DownloadState::Failed) {
                return Err(Error::InvalidArgument(format!(
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
            let e = entries
                .get_mut(id)
                .ok_or_else(|| Error::NotFound(format!("no download with ID {id:?}")))?;
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
    pub(crate) async fn resume(&self, id: &str) -> Result<DownloadInfo, Error> {
        let row = {
            let mut entries = self.lock();
            let e = entries
                .get_mut(id)
                .ok_or_else(|| Error::NotFound(format!("no download with ID {id:?}")))?;
            if matches!(e.state, DownloadState::Paused | DownloadState::Failed) {
                e.state = DownloadState::Queued;
                e.error = None;
            }
            sync_row(e)
        };
        self.save(&row).await?;
        self.wake.notify_one();
        self.changed(id);
        self.info(id)
    }

    /// Cancels a download, unpins it and frees its bytes (unless a player is reading them; then
    /// they are only unpinned and leave with ordinary eviction).
    pub(crate) async fn cancel(&self, id: &str) -> Result<(), Error> {
        let (entry, task) = {
            let mut entries = self.lock();
            let mut e = entries
                .remove(id)
                .ok_or_else(|| Error::NotFound(format!("no download with ID {id:?}")))?;
            if let Some(cancel) = e.cancel.take() {
                cancel.cancel();
            }
            let task = e.task.take();
            (e, task)
        };
        if let Some(task) = task {
            let _ = task.await;
        }
        self.wake.notify_one();
        let keys = member_keys(&entry.row);
        self.cache.delete_download(id.to_string()).await?;
        // Idle members go at once, from wherever they are; the few still being read are
        // unpinned (moved back to the cache directory) and leave with ordinary eviction.
        self.cache.remove(keys, true).await?;
        Ok(())
    }

    /// Reports the device's network state.
    pub(crate) fn set_network(&self, state: NetworkState) {
        self.gate.set(state);
    }

    /// The last reported network state.
    pub(crate) fn network(&self) -> NetworkState {
        self.gate.get()
    }

    /// A stream of download updates (state changes, and progress at most every 250 ms each).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<DownloadInfo> {
        self.events.subscribe()
    }

    /// Fetches the first `bytes` of each track into the ordinary (evictable) cache, in the
    /// background, so that starting them is instant. Skipped while offline.
    pub(crate) fn prefetch(self: &Arc<Self>, tracks: &[String], bytes: u64) -> Result<(), Error> {
        let mut targets = Vec::new();
        for id in tracks {
            let track = self
                .catalog
                .get(id)
                .ok_or_else(|| Error::NotFound(format!("no track with ID {id:?}")))?;
            let url = self.fetcher.check_origin(&track.url)?;
            targets.push((track_key(id), url, id.clone()));
        }
        if !self.gate.get().online {
            return Ok(());
        }
        for (key, url, id) in targets {
            let this = self.clone();
            let prefetch = async move {
                tokio::select! {
                    r = async { this.fetch_prefix(this.cache.acquire(&key, &url, Some(&id)).await?, bytes).await } => {
                        if let Err(e) = r {
                            tracing::info!(track = %id, error = %e.message(), "prefetch failed");
                        }
                    }
                    () = this.shutdown.cancelled() => {}
                }
            };
            self.tasks.spawn_on(prefetch, &self.runtime);
        }
        Ok(())
    }

    /// Stops every task (downloads stay queued in the index and resume at the next start).
    pub(crate) async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Hands queued downloads to free workers until shutdown.
    async fn schedule(self: Arc<Self>) {
        loop {
            let permit = tokio::select! {
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
                () = self.shutdown.cancelled() => return,
            };
            let (id, cancel) = loop {
                let notified = self.wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(next) = self.pick() {
                    break next;
                }
                tokio::select! {
                    () = notified => {}
                    () = self.shutdown.cancelled() => return,
                }
            };
            let this = self.clone();
            let run_id = id.clone();
            let handle = self.tasks.spawn(async move {
                let outcome = tokio::select! {
                    outcome = this.run(&run_id) => Some(outcome),
                    () = cancel.cancelled() => None,
                };
                if let Some(outcome) = outcome {
                    this.finish(&run_id, outcome).await;
                }
                drop(permit);
                this.wake.notify_one();
            });
            if let Some(e) = self.lock().get_mut(&id) {
                e.task = Some(handle);
            }
        }
    }

    /// Takes the best queued download (highest priority, then oldest) and marks it running.
    fn pick(&self) -> Option<(String, CancellationToken)> {
        let mut entries = self.lock();
        let best = entries
            .values_mut()
            .filter(|e| e.state == DownloadState::Queued)
            .min_by_key(|e| (-e.row.priority, e.row.created_ms))?;
        best.state = DownloadState::Running;
        let cancel = self.shutdown.child_token();
        best.cancel = Some(cancel.clone());
        Some((best.row.id.clone(), cancel))
    }

    /// Records the resources an HLS download covers (so a restart or a delete knows them all).
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

    /// Records how a run ended.
    async fn finish(&self, id: &str, outcome: Result<(), String>) {
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

    /// Sets a running download's state (running / waiting for network) and tells subscribers.
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

    /// Publishes the current state of `id`.
    fn changed(&self, id: &str) {
        if let Ok(info) = self.info(id) {
            let _ = self.events.send(info);
        }
    }

    async fn save(&self, row: &DownloadRow) -> Result<(), Error> {
        self.cache.save_download(row.clone()).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
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

/// A fresh download ID: `d` and 64 random bits in hex.
fn new_id() -> Result<String, Error> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Storage(format!("no randomness for an ID: {e}")))?;
    Ok(format!("d{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_survive_a_restart_as_expected() {
        assert_eq!(DownloadState::resumed("running"), DownloadState::Queued);
        assert_eq!(DownloadState::resumed("waiting_for_network"), DownloadState::Queued);
        assert_eq!(DownloadState::resumed("paused"), DownloadState::Paused);
        assert_eq!(DownloadState::resumed("completed"), DownloadState::Completed);
        assert_eq!(DownloadState::resumed("failed"), DownloadState::Failed);
        assert_eq!(DownloadState::resumed("verifying"), DownloadState::Queued);
    }

    #[test]
    fn states_round_trip_through_text_and_json() {
        let names = [
            "queued",
            "running",
            "waiting_for_network",
            "paused",
            "completed",
            "failed",
        ];
        for (s, name) in DownloadState::ALL.into_iter().zip(names) {
            assert_eq!(s.to_string(), name);
            assert_eq!(name.parse::<DownloadState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), name);
            assert_eq!(serde_json::from_value::<DownloadState>(name.into()).unwrap(), s);
        }
    }

    #[test]
    fn unknown_states_are_a_clear_error() {
        for bad in ["", "Queued", "queued ", "waiting-for-network", "done", "\u{0}"] {
            let e = bad.parse::<DownloadState>().unwrap_err();
            let message = e.to_string();
            assert!(message.starts_with("unknown download state"), "{message}");
            assert!(message.contains("waiting_for_network"), "{message}");
        }
    }
}
