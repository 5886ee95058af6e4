//! The [`Downloader`]: the one handle the engine holds. It opens the queue, the scheduler, the
//! prefetcher and the network gate, passes each call to the part that answers it, and owns the
//! lifetime of every task they start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::gate::NetworkGate;
use super::prefetch::Prefetcher;
use super::queue::Queue;
use super::scheduler::Scheduler;
use super::source::Source;
use super::{DownloadInfo, DownloadTarget, NetworkState};
use crate::cache::Cache;
use crate::catalog::Catalog;
use crate::error::Error;
use crate::fetch::Fetcher;

/// The downloader of one server.
pub(crate) struct Downloader {
    queue: Arc<Queue>,
    scheduler: Arc<Scheduler>,
    prefetcher: Prefetcher,
    gate: Arc<NetworkGate>,
    /// Ends the scheduler, every run and every prefetch.
    shutdown: CancellationToken,
    /// Every task the parts start, waited for at shutdown.
    tasks: TaskTracker,
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
            .map_err(|_| Error::config("the downloader must be opened within a tokio runtime"))?;
        let queue = Arc::new(Queue::open(cache.clone(), catalog.clone(), fetcher.clone())?);
        let source = Source::new(cache, fetcher, patience);
        let gate = Arc::new(NetworkGate::new(allow_metered));
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        let scheduler = Scheduler::new(
            queue.clone(),
            source.clone(),
            catalog.clone(),
            gate.clone(),
            workers,
            shutdown.clone(),
            tasks.clone(),
        );
        let prefetcher = Prefetcher::new(source, catalog, gate.clone(), shutdown.clone(), tasks.clone(), runtime);
        Ok(Arc::new(Self {
            queue,
            scheduler: Arc::new(scheduler),
            prefetcher,
            gate,
            shutdown,
            tasks,
        }))
    }

    /// Starts the scheduler that hands queued downloads to workers, and the check of completed
    /// downloads.
    pub(crate) fn start(&self) {
        self.scheduler.start();
        let (queue, shutdown) = (self.queue.clone(), self.shutdown.clone());
        self.tasks.spawn(async move { queue.publish_yielding(shutdown).await });
    }

    /// Queues a download (or returns the existing one for the same resource, re-queued if it had
    /// failed or was paused, and raised to `priority` if that is higher).
    pub(crate) async fn enqueue(
        &self,
        target: DownloadTarget,
        priority: i64,
        data: Option<String>,
    ) -> Result<DownloadInfo, Error> {
        self.queue.enqueue(target, priority, data).await
    }

    /// Replaces (or with `None` removes) a download's app data.
    pub(crate) async fn set_data(&self, id: &str, data: Option<String>) -> Result<DownloadInfo, Error> {
        self.queue.set_data(id, data).await
    }

    /// Checks that every completed download still has all its bytes on disk (one `stat` per
    /// resource) and queues again those whose files vanished, so a listing never calls them
    /// completed.
    pub(crate) async fn check_completed(&self) {
        self.scheduler.verify_completed().await;
    }

    /// Every download, highest priority first, then oldest first.
    pub(crate) fn list(&self) -> Vec<DownloadInfo> {
        self.queue.list()
    }

    /// How many downloads are in each state, every state present.
    pub(crate) fn count_by_state(&self) -> BTreeMap<String, u64> {
        self.queue.count_by_state()
    }

    /// One download.
    pub(crate) fn info(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.queue.info(id)
    }

    /// Pauses a queued or running download.
    pub(crate) async fn pause(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.queue.pause(id).await
    }

    /// Resumes a paused (or retries a failed) download.
    pub(crate) async fn resume(&self, id: &str) -> Result<DownloadInfo, Error> {
        self.queue.resume(id).await
    }

    /// Cancels a download, unpins it and frees its bytes (unless a player is reading them).
    pub(crate) async fn cancel(&self, id: &str) -> Result<(), Error> {
        self.queue.cancel(id).await
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
        self.queue.subscribe()
    }

    /// Fetches the first `bytes` of each track into the ordinary (evictable) cache, in the
    /// background, so that starting them is instant; of an HLS track, the variant a player would
    /// pick from a master capped at `variant_cap` bits per second. Skipped while offline.
    pub(crate) fn prefetch(&self, tracks: &[String], bytes: u64, variant_cap: Option<u64>) -> Result<(), Error> {
        self.prefetcher.prefetch(tracks, bytes, variant_cap)
    }

    /// Stops every task (downloads stay queued in the index and resume at the next start).
    pub(crate) async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
