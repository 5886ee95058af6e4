//! The scheduler: hands queued downloads to free workers (one slot each, the best queued
//! download first) until shutdown, and after start checks that completed downloads still have
//! their bytes.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::gate::NetworkGate;
use super::queue::Queue;
use super::source::Source;
use super::task::DownloadTask;
use crate::catalog::Catalog;

/// Runs the queue's downloads on a fixed number of workers.
pub(super) struct Scheduler {
    queue: Arc<Queue>,
    source: Source,
    catalog: Arc<Catalog>,
    gate: Arc<NetworkGate>,
    /// One permit per worker.
    slots: Arc<Semaphore>,
    /// Stops the scheduler and every run.
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Scheduler {
    /// A scheduler of `workers` workers for `queue`'s downloads, its tasks tracked by `tasks`,
    /// until `shutdown`.
    pub(super) fn new(
        queue: Arc<Queue>,
        source: Source,
        catalog: Arc<Catalog>,
        gate: Arc<NetworkGate>,
        workers: usize,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            queue,
            source,
            catalog,
            gate,
            slots: Arc::new(Semaphore::new(workers)),
            shutdown,
            tasks,
        }
    }

    /// Starts handing queued downloads to workers, and the check of completed downloads.
    pub(super) fn start(self: &Arc<Self>) {
        let this = self.clone();
        self.tasks.spawn(async move { this.schedule().await });
        let this = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = this.recheck_completed() => {}
                () = this.shutdown.cancelled() => {}
            }
        });
    }

    /// Checks completed downloads after start, and again whenever the cache lost bytes of a
    /// pinned resource (its data file vanished while the server ran).
    async fn recheck_completed(&self) {
        let mut losses = self.source.cache().pinned_losses();
        loop {
            losses.borrow_and_update();
            self.verify_completed().await;
            if losses.changed().await.is_err() {
                return;
            }
        }
    }

    /// Checks that every completed download still has all its bytes (after start, a library
    /// of many downloads must not delay the first play): its pins are made to hold (they are
    /// recorded with the resources in batches, so a crash can lose the last ones), and one whose
    /// bytes are gone (a cleared data directory) is queued again.
    pub(super) async fn verify_completed(&self) {
        let cache = self.source.cache();
        for (id, keys) in self.queue.completed() {
            let infos = match cache.verify(keys.clone()).await {
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
                    if let Err(e) = cache.set_pinned_keys(unpinned, true).await {
                        tracing::warn!(download = %id, error = %e, "cannot pin a completed download");
                    }
                }
                continue;
            }
            tracing::info!(download = %id, "a completed download's bytes are gone; fetching them again");
            self.queue.requeue_completed(&id).await;
        }
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
                let woken = self.queue.woken();
                tokio::pin!(woken);
                woken.as_mut().enable();
                if let Some(next) = self.queue.pick(&self.shutdown) {
                    break next;
                }
                tokio::select! {
                    () = woken => {}
                    () = self.shutdown.cancelled() => return,
                }
            };
            let task = DownloadTask::new(
                id.clone(),
                self.source.clone(),
                self.catalog.clone(),
                self.gate.clone(),
                self.queue.clone(),
            );
            let queue = self.queue.clone();
            let handle = self.tasks.spawn(async move {
                let outcome = tokio::select! {
                    outcome = task.run() => Some(outcome),
                    () = cancel.cancelled() => None,
                };
                if let Some(outcome) = outcome {
                    queue.finish(task.id(), outcome).await;
                }
                drop(permit);
                queue.wake();
            });
            self.queue.set_task(&id, handle);
        }
    }
}
