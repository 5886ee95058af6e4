//! Eviction: least recently used unpinned resources go until the cache fits its limit; pinned
//! resources and those being read or filled never do. It runs after each batch is recorded, and
//! before a fill writes bytes that would cross the limit (so the limit holds at every moment);
//! when the disk refuses a write, it makes room whatever the limit.
//!
//! The order comes from the index (`last_access` of every row, through an index on
//! `(pinned, last_access, key)`), so nothing about cold resources is kept in memory. Each pass
//! runs right after a batch is recorded, so every row's access time is current. A victim's key is
//! owned (busy) from the moment it is chosen until the deletion of its row is committed, so no
//! reader loads a row that is being deleted; its bytes leave the totals and its file is unlinked
//! only once that deletion is committed (a pass that fails leaves row, file and totals as they
//! were).

use std::sync::Arc;

use super::index::{self, LruEntry, LruPos};
use super::resource::Resource;
use super::table::{Busy, Slot, Table};
use super::{loggable_key, Cache};
use crate::error::Error;
use crate::telemetry::Counters;

/// Rows read from the index at a time while looking for victims.
const BATCH: usize = 256;

/// How far under the limit eviction goes when a write would cross it (at most a sixteenth of
/// the limit), so that the following writes need no eviction.
const LIMIT_SLACK: u64 = 1024 * 1024;

/// A victim chosen in a pass, its key owned until the pass is over.
pub(super) enum Victim<'a> {
    /// A resident resource, made inert.
    Resident(Arc<Resource>, Busy<'a>),
    /// A row with nothing in memory.
    Cold(LruEntry, Busy<'a>),
}

/// The victims of one pass whose rows' deletion committed, keys still owned.
pub(super) struct Victims<'a>(Vec<Victim<'a>>);

impl Victims<'_> {
    /// The bytes the victims hold (resident ones are inert: their bytes no longer change).
    fn bytes(&self) -> u64 {
        self.0
            .iter()
            .map(|v| match v {
                Victim::Resident(res, _) => res.lock().present.len(),
                Victim::Cold(entry, _) => entry.bytes,
            })
            .sum()
    }
}

impl Cache {
    /// Evicts least recently used idle resources until the cache fits its limit; blocking.
    pub(super) fn evict(&self) -> Result<(), Error> {
        self.evict_bytes(self.accounts.bytes().saturating_sub(self.max_bytes()))
            .map(|_| ())
    }

    /// Evicts least recently used idle resources until the cache holds at most `limit` bytes
    /// (pins included, and never evicted: with `limit` 0, every unpinned resource nobody reads
    /// or fills goes); blocking. Returns how many resources went and their bytes.
    pub(super) fn evict_to(&self, limit: u64) -> Result<(u64, u64), Error> {
        let victims = self.delete_victims(self.accounts.bytes().saturating_sub(limit))?;
        let freed = victims.bytes();
        let count = victims.0.len() as u64;
        self.let_go(victims);
        Ok((count, freed))
    }

    /// Whether `len` more bytes fit under the limit as it stands (no eviction).
    pub(crate) fn fits(&self, len: u64) -> bool {
        self.accounts.bytes().saturating_add(len) <= self.max_bytes()
    }

    /// Makes room under the limit for `len` more bytes before they are written, so the limit
    /// holds at every moment (to within the chunks being written at once), not only after the
    /// next batch; blocking. Evicts least recently used idle unpinned resources (the index's
    /// order, then resident ones not recorded yet) to a little under the limit, so the next
    /// chunks need no eviction. `false` if the bytes do not fit even so: every cached byte left
    /// is pinned or in use.
    pub(crate) fn room_under_limit(&self, len: u64) -> bool {
        let over = || {
            self.accounts
                .bytes()
                .saturating_add(len)
                .saturating_sub(self.max_bytes())
        };
        if over() == 0 {
            return true;
        }
        let slack = (self.max_bytes() / 16).min(LIMIT_SLACK);
        if let Err(e) = self.evict_bytes(over() + slack) {
            tracing::warn!(error = %e, "cannot evict to stay under the limit");
        }
        if over() > 0 {
            self.free_resident(over() + slack);
        }
        over() == 0
    }

    /// Makes room on a disk that refused a write: evicts least recently used idle resources
    /// (never pinned or in-use ones) until at least `need` bytes are freed, whatever the limit;
    /// blocking. Resident ones go first, files before rows ([`Cache::free_resident`]); then
    /// rows of the index, if it takes the transaction. Returns the bytes freed.
    pub(crate) fn make_room(&self, need: u64) -> u64 {
        let freed = self.free_resident(need);
        if freed >= need {
            return freed;
        }
        match self.evict_bytes(need - freed) {
            Ok(more) => freed + more,
            Err(e) => {
                tracing::warn!(error = %e, "cannot evict from the index to make room");
                freed
            }
        }
    }

    /// Frees at least `need` bytes (if there are) from resident, idle, unpinned resources,
    /// least recently used first; blocking. Unlike ordinary eviction, their files are unlinked
    /// before their rows are deleted, because a full disk may refuse the index transaction too:
    /// a row that could not be deleted then names a file that is gone, which loading it treats
    /// as absent bytes (`Cache::incarnate` trusts no more bytes than the file holds). Returns the
    /// bytes freed.
    fn free_resident(&self, need: u64) -> u64 {
        let mut candidates: Vec<(u64, Arc<Resource>)> = self
            .table()
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(res) => {
                    let st = res.lock();
                    let idle = !st.pinned && st.readers == 0 && st.fills.is_empty() && st.present.len() > 0;
                    idle.then(|| (st.last_access_ms, res.clone()))
                }
                Slot::Busy { .. } => None,
            })
            .collect();
        candidates.sort_by_key(|(at, _)| *at);
        let mut freed = 0;
        let mut victims = Vec::new();
        for (_, res) in candidates {
            if freed >= need {
                break;
            }
            let mut table = self.table();
            if !matches!(table.get(&res.key), Some(Slot::Ready(r)) if Arc::ptr_eq(r, &res)) {
                continue;
            }
            let Some(busy) = self.take_resident(&mut table, &res) else {
                continue;
            };
            drop(table);
            let mut st = res.lock();
            freed += st.present.len();
            self.empty(&mut st);
            self.accounts.entry_removed();
            super::dirs::remove_data_file(&st.path);
            drop(st);
            tracing::debug!(key = %loggable_key(&res.key), "evicted to make room");
            victims.push((res, busy));
        }
        if !victims.is_empty() {
            let deleted = self.index.write(|tx| {
                for (res, _) in &victims {
                    index::delete_resource(tx, &res.key)?;
                }
                Ok(())
            });
            if let Err(e) = deleted {
                tracing::warn!(error = %e, "cannot delete the rows of resources evicted to make room");
            }
            Counters::add(&self.counters.evictions, victims.len() as u64);
        }
        freed
    }

    /// Evicts least recently used idle resources until at least `over` bytes are freed (or none
    /// is left to evict); blocking. Returns the bytes freed.
    fn evict_bytes(&self, over: u64) -> Result<u64, Error> {
        let before = self.accounts.bytes();
        let victims = self.delete_victims(over)?;
        self.let_go(victims);
        Ok(before.saturating_sub(self.accounts.bytes()))
    }

    /// The first half of eviction: chooses victims in LRU order until `over` bytes are covered
    /// and deletes their rows in one transaction. Every victim's key stays owned (busy) until
    /// the victims are let go ([`Cache::let_go`]), so no reader loads a row that is being
    /// deleted or finds a victim's file still there. If the transaction fails, nothing is
    /// evicted.
    pub(super) fn delete_victims(&self, over: u64) -> Result<Victims<'_>, Error> {
        if over == 0 {
            return Ok(Victims(Vec::new()));
        }
        let mut victims: Vec<Victim<'_>> = Vec::new();
        let result = self.index.write(|tx| {
            let mut over = over;
            let mut after: Option<LruPos> = None;
            while over > 0 {
                // Read in this transaction: it sees its own deletions, and holds no other lock.
                let batch = index::lru_batch(tx, after.as_ref(), BATCH)?;
                let Some(last) = batch.last() else { break };
                after = Some(last.pos());
                for entry in batch {
                    if over == 0 {
                        break;
                    }
                    let mut table = self.table();
                    let victim = match table.get(&entry.key) {
                        Some(Slot::Ready(res)) => {
                            let res = res.clone();
                            self.take_resident(&mut table, &res)
                                .map(|busy| Victim::Resident(res, busy))
                        }
                        Some(Slot::Busy { .. }) => None,
                        None => match entry.generation {
                            Some(g) if index::delete_resource_generation(tx, &entry.key, g)? => {
                                let busy = self.mark_busy(&mut table, &entry.key);
                                Some(Victim::Cold(entry, busy))
                            }
                            _ => None,
                        },
                    };
                    drop(table);
                    if let Some(victim) = victim {
                        let bytes = match &victim {
                            Victim::Resident(res, _) => {
                                index::delete_resource(tx, &res.key)?;
                                res.lock().present.len()
                            }
                            Victim::Cold(entry, _) => entry.bytes,
                        };
                        over = over.saturating_sub(bytes.max(1));
                        victims.push(victim);
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            for victim in victims {
                self.finish_eviction(victim, false);
            }
            return Err(e);
        }
        Ok(Victims(victims))
    }

    /// The second half of eviction: the victims' bytes leave the totals, their files are
    /// unlinked, and their keys are let go.
    pub(super) fn let_go(&self, victims: Victims<'_>) {
        let evicted = victims.0.len();
        for victim in victims.0 {
            self.finish_eviction(victim, true);
        }
        Counters::add(&self.counters.evictions, evicted as u64);
    }

    /// Takes the resident `res` out of the table if nobody reads or fills it and it is not
    /// pinned: it is made inert and its key owned (busy) until the caller's deletion of its row is
    /// committed. Under the table lock.
    pub(super) fn take_resident(&self, table: &mut Table, res: &Arc<Resource>) -> Option<Busy<'_>> {
        let mut st = res.lock();
        // Re-check under the locks: a reader may have arrived since the row was read.
        if st.pinned || st.readers > 0 || !st.fills.is_empty() {
            return None;
        }
        st.evicted = true;
        drop(st);
        table.remove(&res.key);
        Some(self.mark_busy(table, &res.key))
    }

    /// Ends a victim's eviction once its row's deletion is `committed`: its bytes leave the
    /// totals and its file is unlinked (the file is this incarnation's alone: a successor under
    /// the same key gets a file of its own, so the unlink can never take its bytes). If the
    /// deletion was not committed, row and file stay as they were, and the next reader loads
    /// them again. The key stays owned until this returns.
    pub(super) fn finish_eviction(&self, victim: Victim<'_>, committed: bool) {
        match victim {
            Victim::Resident(res, busy) => {
                if committed {
                    let mut st = res.lock();
                    self.empty(&mut st);
                    self.accounts.entry_removed();
                    super::dirs::remove_data_file(&st.path);
                    tracing::debug!(key = %loggable_key(&res.key), "evicted");
                }
                drop(busy);
            }
            Victim::Cold(entry, busy) => {
                if let (true, Some(g)) = (committed, entry.generation) {
                    // The row is gone: the file is nobody's (in either directory).
                    self.dirs.remove_incarnation(&entry.key, g);
                    self.accounts.remove(false, entry.bytes);
                    self.accounts.entry_removed();
                    tracing::debug!(key = %loggable_key(&entry.key), "evicted");
                }
                drop(busy);
            }
        }
    }

    /// Removes the resources under `keys` (rows, then files) if nobody reads or fills them and,
    /// unless `unpin`, they are not pinned; blocking. The caller made them resident. Returns how
    /// many were removed.
    pub(super) fn remove_resident(&self, keys: &[String], unpin: bool) -> Result<usize, Error> {
        let mut victims: Vec<Victim<'_>> = Vec::new();
        let result = self.index.write(|tx| {
            for key in keys {
                let mut table = self.table();
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
                if let Some(busy) = self.take_resident(&mut table, &res) {
                    drop(table);
                    index::delete_resource(tx, key)?;
                    victims.push(Victim::Resident(res, busy));
                }
            }
            Ok(())
        });
        let (committed, removed) = (result.is_ok(), victims.len());
        for victim in victims {
            self.finish_eviction(victim, committed);
        }
        result.map(|()| removed)
    }
}
