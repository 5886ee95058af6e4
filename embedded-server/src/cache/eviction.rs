//! Eviction: least recently used unpinned resources go until the cache fits its limit; pinned
//! resources and those being read or filled never do.
//!
//! The order comes from the index (`last_access` of every row, through an index on
//! `(pinned, last_access, key)`), so nothing about cold resources is kept in memory. Each pass
//! runs right after a batch is recorded, so every row's access time is current. A resident
//! victim is checked and made inert under the table lock; a cold one is marked busy first, so no
//! reader can load the row that is being deleted.

use std::sync::Arc;

use super::dirs::remove_data_file;
use super::index::{self, LruEntry, LruPos};
use super::resource::Resource;
use super::table::{Busy, Slot, Table};
use super::{loggable_key, Cache};
use crate::error::Error;
use crate::telemetry::Counters;

/// Rows read from the index at a time while looking for victims.
const BATCH: usize = 256;

/// The victims of one eviction pass, their rows deleted and their keys owned (busy) until they
/// are let go.
pub(super) struct Victims<'a> {
    /// Cold victims, with the keys owned since their rows were chosen; their files are still
    /// there.
    cold: Vec<(LruEntry, Busy<'a>)>,
    /// The keys of resident victims, already inert and without files.
    resident: Vec<Busy<'a>>,
}

impl Cache {
    /// Evicts least recently used idle resources until the cache fits its limit; blocking.
    pub(super) fn evict(&self) -> Result<(), Error> {
        let victims = self.delete_victims()?;
        self.let_go(victims);
        Ok(())
    }

    /// The first half of [`Cache::evict`]: chooses victims in LRU order and deletes their rows
    /// in one transaction; resident victims are made inert and their files unlinked. Every
    /// victim's key stays owned (busy) until the victims are let go ([`Cache::let_go`]), so no
    /// reader loads a row that is being deleted or finds a cold victim's file still there.
    pub(super) fn delete_victims(&self) -> Result<Victims<'_>, Error> {
        let mut victims = Victims {
            cold: Vec::new(),
            resident: Vec::new(),
        };
        if self.accounts.bytes() <= self.max_bytes {
            return Ok(victims);
        }
        let result = self.index.write(|tx| {
            let mut over = self.accounts.bytes().saturating_sub(self.max_bytes);
            let mut after: Option<LruPos> = None;
            while over > 0 {
                let batch = self.index.lru_batch(after.as_ref(), BATCH)?;
                let Some(last) = batch.last() else { break };
                after = Some(last.pos());
                for entry in batch {
                    if over == 0 {
                        break;
                    }
                    let mut table = self.table();
                    let freed = match table.get(&entry.key) {
                        Some(Slot::Ready(res)) => {
                            let res = res.clone();
                            match self.evict_resident(&mut table, &res) {
                                Some((bytes, busy)) => {
                                    index::delete_resource(tx, &res.key)?;
                                    victims.resident.push(busy);
                                    Some(bytes)
                                }
                                None => None,
                            }
                        }
                        Some(Slot::Busy { .. }) => None,
                        None => match entry.generation {
                            Some(g) if index::delete_resource_generation(tx, &entry.key, g)? => {
                                let busy = self.mark_busy(&mut table, &entry.key);
                                let bytes = entry.bytes;
                                victims.cold.push((entry, busy));
                                Some(bytes)
                            }
                            _ => None,
                        },
                    };
                    if let Some(bytes) = freed {
                        over = over.saturating_sub(bytes.max(1));
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            // Rolled back: the cold rows stay, with their files; resident victims are gone.
            Counters::add(&self.counters.evictions, victims.resident.len() as u64);
            return Err(e);
        }
        Ok(victims)
    }

    /// The second half of [`Cache::evict`]: unlinks the files of the cold victims whose rows
    /// were deleted, takes them off the totals, and lets every victim's key go.
    pub(super) fn let_go(&self, victims: Victims<'_>) {
        let evicted = victims.resident.len() + victims.cold.len();
        drop(victims.resident);
        for (entry, busy) in victims.cold {
            if let Some(g) = entry.generation {
                // The row is gone: the file is nobody's (in either directory).
                self.dirs.remove_incarnation(&entry.key, g);
            }
            self.accounts.remove(false, entry.bytes);
            self.accounts.entry_removed();
            tracing::debug!(key = %loggable_key(&entry.key), "evicted");
            drop(busy);
        }
        Counters::add(&self.counters.evictions, evicted as u64);
    }

    /// Makes the resident `res` inert and takes it out of the table if nobody reads or fills it
    /// and it is not pinned; returns the bytes it held, and the key, owned (busy) until the
    /// caller's deletion of its row is committed. Under the table lock.
    pub(super) fn evict_resident(&self, table: &mut Table, res: &Arc<Resource>) -> Option<(u64, Busy<'_>)> {
        let mut st = res.lock();
        // Re-check under the locks: a reader may have arrived since the row was read.
        if st.pinned || st.readers > 0 || !st.fills.is_empty() {
            return None;
        }
        let bytes = st.present.len();
        st.evicted = true;
        self.empty(&mut st);
        let path = st.path.clone();
        drop(st);
        table.remove(&res.key);
        let busy = self.mark_busy(table, &res.key);
        self.accounts.entry_removed();
        // The file is this incarnation's alone: a successor under the same key gets a file of
        // its own, so this unlink can never take its bytes.
        remove_data_file(&path);
        tracing::debug!(key = %loggable_key(&res.key), "evicted");
        Some((bytes, busy))
    }

    /// Removes the resources under `keys` (rows, then files) if nobody reads or fills them and,
    /// unless `unpin`, they are not pinned; blocking. The caller made them resident. Returns how
    /// many were removed.
    pub(super) fn remove_resident(&self, keys: &[String], unpin: bool) -> Result<usize, Error> {
        // Owned until the deletion of the rows is committed (see `evict`).
        let mut owned: Vec<Busy<'_>> = Vec::new();
        self.index.write(|tx| {
            let mut removed = Vec::new();
            {
                let mut table = self.table();
                for key in keys {
                    let Some(Slot::Ready(res)) = table.get(key) else {
                        continue;
                    };
                    let res = res.clone();
                    if unpin {
                        let mut st = res.lock();
                        if st.readers == 0 && st.fills.is_empty() && st.pinned {
                            st.pinned = false;
                            self.accounts.pin_changed(false, st.present.len());
                        }
                    }
                    if let Some((_, busy)) = self.evict_resident(&mut table, &res) {
                        removed.push(key);
                        owned.push(busy);
                    }
                }
            }
            for key in &removed {
                index::delete_resource(tx, key)?;
            }
            Ok(removed.len())
        })
    }
}
