//! Recording what changed: fills mark resources dirty, and at most `sync_interval` after the
//! first change the persister syncs their data files and then records the ranges that were
//! written before the sync (so the index never claims a byte that is not on disk). Eviction and
//! unloading run after each batch.

use std::sync::Arc;
use std::time::Duration;

use super::resource::{Resource, State};
use super::table::Slot;
use super::{index, row_of, Cache};
use crate::error::Error;

impl Cache {
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
            if let Err(e) = self.blocking(move || cache.persist()).await {
                tracing::error!(error = %e, "recording cached ranges failed");
            }
        }
    }

    /// Syncs every dirty resource's data and records its ranges; blocking. Then evicts, and
    /// lets idle resources go from memory. A batch that cannot be recorded (a full disk refuses
    /// the index too) is tried again with the next one, and eviction runs all the same.
    pub(crate) fn persist(&self) -> Result<(), Error> {
        let dirty = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        let mut recorded = Ok(());
        if !dirty.is_empty() {
            recorded = self.record(&dirty);
            if recorded.is_ok() {
                self.forget_unanswered(dirty.iter());
            } else {
                for res in &dirty {
                    self.mark_dirty(res, &mut res.lock());
                }
            }
        }
        drop(dirty);
        self.evict()?;
        self.unload_idle();
        recorded
    }

    /// Syncs and records the resources of one batch.
    fn record(&self, dirty: &[Arc<Resource>]) -> Result<(), Error> {
        // Snapshot first, sync second: every byte in a snapshot was written before the sync.
        let mut snapshots = Vec::with_capacity(dirty.len());
        for res in dirty {
            let mut st = res.lock();
            st.dirty = false;
            if st.evicted {
                // Inert: its file and row are gone, and may be a successor's by now.
                continue;
            }
            snapshots.push((res, st.present.clone(), st.generation, st.present != st.recorded));
        }
        let mut vanished = Vec::new();
        for (res, present, generation, data_changed) in &snapshots {
            if *data_changed && present.len() > 0 && !self.sync_data(res, *generation)? {
                vanished.push((*res, *generation));
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
        for (res, generation) in vanished {
            self.lose(res, generation)?;
        }
        Ok(())
    }

    /// Drops idle resources the backend never described (so failed URLs do not pile up).
    fn forget_unanswered<'a>(&self, candidates: impl Iterator<Item = &'a Arc<Resource>>) {
        let mut table = self.table();
        for res in candidates {
            if !matches!(table.get(&res.key), Some(Slot::Ready(r)) if Arc::ptr_eq(r, res)) {
                continue;
            }
            let mut st = res.lock();
            if st.meta.is_none() && st.readers == 0 && st.fills.is_empty() && st.present.len() == 0 {
                st.evicted = true;
                table.remove(&res.key);
                self.accounts.entry_removed();
                // A fill may have created an empty data file before failing.
                super::dirs::remove_data_file(&st.path);
            }
        }
    }

    /// Stops every fill, then records what was written, and marks the stop clean (so the next
    /// start skips the sweep). Idempotent.
    pub(crate) async fn shutdown(self: &Arc<Self>) -> Result<(), Error> {
        self.cancel.cancel();
        self.fills.close();
        self.fills.wait().await;
        let cache = self.clone();
        self.blocking(move || {
            cache.persist()?;
            cache.mark_clean();
            Ok(())
        })
        .await
    }
}
