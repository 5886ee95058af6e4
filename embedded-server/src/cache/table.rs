//! The resident table: the resources in memory, by key. Everything else lives only in the index
//! (it is *cold*) and is loaded on first use, so start-up reads nothing per resource.
//!
//! A key is in one of three states: absent (cold, or unknown to the cache), `Ready` (resident:
//! only this `Resource` writes, records or deletes anything of the key), or `Busy` (one task
//! owns the key's row and files for a moment: loading it, or evicting it while cold). A task
//! that finds a key `Busy` waits for it and looks again, so there is one loader per key, a
//! loader never resurrects a row that an eviction is deleting, and two readers of a cold key
//! share one resource. A reader is registered in the same critical section that finds the
//! resource `Ready`, so no eviction comes between lookup and count.
//!
//! Resident resources leave the table when nobody holds them (the table's is the only `Arc`),
//! nothing is pending for the index, and more than `resident_max` are resident: the least
//! recently used first. Their row already says everything about them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use tokio::sync::watch;
use url::Url;

use super::index::ResourceRow;
use super::range_set::RangeSet;
use super::resource::{Meta, Resource, State};
use super::{loggable_key, store, Cache};
use crate::clock::now_ms;
use crate::error::Error;

/// One key of the table.
pub(super) enum Slot {
    /// Resident.
    Ready(Arc<Resource>),
    /// Owned for a moment by the task holding the [`Busy`] with this token; `done` is closed
    /// when it lets go.
    Busy { token: u64, done: watch::Receiver<()> },
}

/// The table: resident and busy keys.
pub(super) type Table = HashMap<String, Slot>;

/// Ownership of a busy key; the slot is cleared (and waiters woken) when it is dropped, unless
/// it was made `Ready` meanwhile.
pub(super) struct Busy<'a> {
    cache: &'a Cache,
    pub(super) key: String,
    token: u64,
    _done: watch::Sender<()>,
}

impl Busy<'_> {
    /// Whether the key is still this guard's (not taken over by another task).
    #[cfg(test)]
    pub(super) fn holds(&self) -> bool {
        matches!(self.cache.table().get(&self.key), Some(Slot::Busy { token, .. }) if *token == self.token)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut table = self.cache.table();
        if matches!(table.get(&self.key), Some(Slot::Busy { token, .. }) if *token == self.token) {
            table.remove(&self.key);
        }
    }
}

/// What a task wants of a key it looks up.
#[derive(Clone, Copy)]
pub(super) enum Want<'a> {
    /// The resident resource if the cache knows the key, without registering anything.
    Known,
    /// A reader of it, creating it (fetched from `url`) if the cache does not know it.
    Reader { url: &'a Url, track_id: Option<&'a str> },
}

impl Cache {
    /// Locks the table.
    pub(super) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the absent `key` busy; the caller holds the table lock and owns the key until the
    /// returned guard is dropped.
    pub(super) fn mark_busy<'a>(&'a self, table: &mut Table, key: &str) -> Busy<'a> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(());
        table.insert(key.to_string(), Slot::Busy { token, done: rx });
        Busy {
            cache: self,
            key: key.to_string(),
            token,
            _done: tx,
        }
    }

    /// The resident resource of `key`, loading it from the index if it is cold; with
    /// [`Want::Reader`] a reader is registered (and an unknown key created). `None` only for
    /// [`Want::Known`] of a key the cache does not know.
    pub(super) async fn resident(self: &Arc<Self>, key: &str, want: Want<'_>) -> Result<Option<Arc<Resource>>, Error> {
        let busy = loop {
            let mut done = {
                let mut table = self.table();
                match table.get(key) {
                    Some(Slot::Ready(res)) => {
                        let res = res.clone();
                        register(&res, want);
                        return Ok(Some(res));
                    }
                    Some(Slot::Busy { done, .. }) => done.clone(),
                    None => break self.mark_busy(&mut table, key),
                }
            };
            // Closed when the owner lets go; then look again.
            let _ = done.changed().await;
        };
        let (cache, owned) = (self.clone(), key.to_string());
        let loaded = self.blocking(move || cache.load(&owned)).await?;
        let res = match (loaded, want) {
            (Some(res), _) => res,
            (None, Want::Known) => return Ok(None),
            (None, Want::Reader { url, track_id }) => {
                self.accounts.entry_added();
                Arc::new(self.new_resource(key, url, track_id))
            }
        };
        let mut table = self.table();
        register(&res, want);
        table.insert(key.to_string(), Slot::Ready(res.clone()));
        drop(table);
        drop(busy);
        Ok(Some(res))
    }

    /// The resident resource of `key` if it is resident now (no load).
    pub(super) fn resident_now(&self, key: &str) -> Option<Arc<Resource>> {
        match self.table().get(key) {
            Some(Slot::Ready(res)) => Some(res.clone()),
            _ => None,
        }
    }

    /// A resource the cache has never seen, fetched from `url`.
    fn new_resource(&self, key: &str, url: &Url, track_id: Option<&str>) -> Resource {
        let generation = self.new_generation();
        Resource::new(
            key.to_string(),
            State::new(
                url.clone(),
                track_id.map(str::to_owned),
                generation,
                self.dirs.path(key, false, generation),
            ),
        )
    }

    /// Reads the row of `key` and makes its resource, finding its data file (in the directory
    /// its pin calls for, or the other one) and trusting no more bytes than the file holds;
    /// blocking. The caller owns the key (busy).
    fn load(&self, key: &str) -> Result<Option<Arc<Resource>>, Error> {
        let Some(row) = self.index.load_resource(key)? else {
            return Ok(None);
        };
        Ok(self.incarnate(row))
    }

    /// The resource of an index row; `None` (and the row deleted) for a row that cannot be
    /// used.
    fn incarnate(&self, row: ResourceRow) -> Option<Arc<Resource>> {
        let (Ok(url), Some(generation)) = (Url::parse(&row.url), row.generation) else {
            tracing::warn!(key = %loggable_key(&row.key), "dropping an index row with an unparsable URL");
            self.forget_row(&row);
            return None;
        };
        let path = self.dirs.find(&row.key, row.pinned, generation);
        let mut present = RangeSet::parse(&row.ranges).unwrap_or_default();
        // A data file shorter than recorded (lost by the file system, emptied by the system)
        // must not be served: its missing bytes are fetched again.
        let recorded = present.len();
        present.truncate(store::file_len(&path));
        let (counted, now) = (row.bytes, present.len());
        let mut state = State::new(url, row.track_id, generation, path);
        state.meta = Some(Meta {
            size: row.size,
            etag: row.etag,
            last_modified: row.last_modified,
            mime: row.mime,
            location: row.location,
        });
        state.recorded = present.clone();
        state.present = present;
        state.last_access_ms = row.last_access_ms;
        state.pinned = row.pinned;
        let res = Arc::new(Resource::new(row.key, state));
        // The totals counted the row's bytes.
        if now < counted {
            self.accounts.remove(row.pinned, counted - now);
        } else {
            self.accounts.add(row.pinned, now - counted);
        }
        if now < recorded {
            // Record the shorter ranges with the next batch.
            let mut st = res.lock();
            st.recorded = RangeSet::new();
            self.mark_dirty(&res, &mut st);
        }
        Some(res)
    }

    /// Deletes a row that cannot be loaded, with its accounts; blocking.
    fn forget_row(&self, row: &ResourceRow) {
        let deleted = self.index.write(|tx| super::index::delete_resource(tx, &row.key));
        match deleted {
            Ok(()) => {
                self.accounts.remove(row.pinned, row.bytes);
                self.accounts.entry_removed();
            }
            Err(e) => tracing::warn!(error = %e, "cannot delete an unusable index row"),
        }
    }

    /// Lets resident resources go (least recently used first) while more than `resident_max`
    /// are resident: only those nobody holds, with nothing pending for the index.
    pub(super) fn unload_idle(&self) {
        let mut table = self.table();
        let resident = table.values().filter(|s| matches!(s, Slot::Ready(_))).count();
        if resident <= self.resident_max {
            return;
        }
        let mut idle: Vec<(u64, String)> = table
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Ready(res) if Arc::strong_count(res) == 1 => {
                    let st = res.lock();
                    let clean = !st.dirty
                        && st.readers == 0
                        && st.fills.is_empty()
                        && st.meta.is_some()
                        && st.present == st.recorded;
                    clean.then(|| (st.last_access_ms, key.clone()))
                }
                _ => None,
            })
            .collect();
        idle.sort();
        for (_, key) in idle.into_iter().take(resident - self.resident_max) {
            table.remove(&key);
        }
    }
}

/// Registers what `want` asks of the resident `res`; under the table lock.
fn register(res: &Resource, want: Want<'_>) {
    if let Want::Reader { url, .. } = want {
        let mut st = res.lock();
        st.readers += 1;
        st.last_access_ms = now_ms();
        if st.url != *url && st.track_id.is_some() {
            // A track re-registered with a fresh (re-signed) URL: same bytes, new address.
            st.url = url.clone();
        }
    }
}
