//! The incarnation invariant, in one place: every operation that opens, writes, syncs or drops
//! the bytes of one generation of a resource.
//!
//! A resource's presence map (`present`, `recorded`), its `generation` and its data file are one
//! *incarnation*, and a reader never sees bytes of one through the bookkeeping of another:
//!
//! - Each incarnation has a data file of its own, named by the key and its generation (unique
//!   in the cache, never reused, persisted in the index row). A new incarnation (a new resource
//!   after an eviction, or bytes dropped as stale or lost) starts with an empty map and a new
//!   file; the old file is unlinked, never truncated or re-created in place.
//! - Only the resident resource of a key (or the task that owns the key while it is busy)
//!   creates, writes, records or deletes anything for that key. An evicted resource is inert: it
//!   is never dirtied, synced, recorded, filled or dropped again, and holds no bytes (its map is
//!   emptied when it is evicted).
//! - A reader is registered under the table lock, in the same critical section as the lookup;
//!   eviction takes the table lock and skips any resource with a reader or a fill, so a resource
//!   in use is never evicted.
//! - Files are opened, for reading or writing, under the state lock and only for the generation
//!   the caller holds; every write checks, under that lock, that its generation is still current
//!   before it is made and recorded; every read is followed by the same check
//!   ([`State::is_current`]). A byte enters `present` only after it is written, and `recorded`
//!   only after it is synced.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::dirs::remove_data_file;
use super::resource::{Meta, Resource, State};
use super::{index, loggable_key, row_of, store, Cache};
use crate::error::Error;

/// Lost generations a reader may still carry on from (see [`State::continues`]).
const LOST_KEPT: usize = 4;

/// What [`Cache::read_span`] read: the data file (kept open for the next read) and the bytes.
pub(super) type SpanRead = (Arc<std::fs::File>, Vec<u8>);

impl Cache {
    /// A generation no incarnation of this cache has had.
    pub(super) fn new_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts a new incarnation of `res`: a new generation, no bytes, and a data file of its own
    /// (created by its first fill) in the directory its pin calls for. With `lost`, the old
    /// bytes were lost, not replaced: readers of the old generation carry on in the new one.
    /// Returns the old file, for the caller to unlink once the index no longer names it. Under
    /// the state lock.
    fn renew(&self, res: &Resource, st: &mut State, lost: bool) -> PathBuf {
        self.empty(st);
        if lost {
            if st.lost.len() == LOST_KEPT {
                st.lost.remove(0);
            }
            st.lost.push(st.generation);
        } else {
            st.lost.clear();
        }
        st.generation = self.new_generation();
        let path = self.dirs.path(&res.key, st.pinned, st.generation);
        std::mem::replace(&mut st.path, path)
    }

    /// Forgets every byte of `res` (present and recorded) and takes them off the totals. Under
    /// the state lock.
    pub(super) fn empty(&self, st: &mut State) {
        self.accounts.remove(st.pinned, st.present.len());
        st.present.clear();
        st.recorded.clear();
    }

    /// Writes one chunk at `pos` into `file`, the data file of `generation` opened for fill
    /// `id`, and makes it present; `false` (nothing written) if that incarnation is no longer
    /// current or nobody reads `res` any more.
    pub(super) fn write_chunk(
        &self,
        res: &Arc<Resource>,
        file: &std::fs::File,
        id: u64,
        generation: u64,
        pos: u64,
        data: Bytes,
    ) -> Result<bool, Error> {
        let len = data.len() as u64;
        {
            let mut st = res.lock();
            if !st.is_current(generation) || st.readers == 0 {
                return Ok(false);
            }
            // `file` is the data file of `generation` (opened for it under this lock), and the
            // write happens under the lock that a new incarnation is made under: a byte is
            // written into the current incarnation's file before it is marked present, or not at
            // all. A page cache write of one network chunk takes microseconds.
            store::write_at(file, &data, pos)?;
            let added = st.present.insert(pos, pos + len);
            self.accounts.add(st.pinned, added);
            if let Some(slot) = st.fills.iter_mut().find(|f| f.id == id) {
                slot.pos = pos + len;
            }
            self.arbiter().judge(&mut st);
            self.mark_dirty(res, &mut st);
        }
        self.count_upstream_bytes(len);
        self.storage_full.store(false, Ordering::Relaxed);
        res.notify();
        Ok(true)
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

    /// Reads `len` bytes at `pos` of incarnation `generation` of `res` from `file` (its data
    /// file, opened here if `None`); blocking. `None` if they cannot be read from it: `res` has
    /// moved on, or the file vanished, was cut short or fails to read, and then its bytes are
    /// lost ([`Cache::lose`]) and fetched again. Either way the reader looks at the state again:
    /// it carries on in the next generation if the bytes were lost, and fails if they were
    /// replaced.
    pub(super) fn read_span(
        &self,
        res: &Arc<Resource>,
        generation: u64,
        file: Option<Arc<std::fs::File>>,
        pos: u64,
        len: usize,
    ) -> Result<Option<SpanRead>, Error> {
        let file = match file {
            Some(file) => file,
            None => match open_incarnation(res, generation) {
                None => return Ok(None),
                Some(Ok(file)) => Arc::new(file),
                Some(Err(e)) => return self.unreadable(res, generation, &e).map(|()| None),
            },
        };
        match store::read_at(&file, pos, len) {
            Ok(data) => Ok(Some((file, data))),
            Err(e) => self.unreadable(res, generation, &e).map(|()| None),
        }
    }

    /// SHA-256 (lowercase hex) of the first `len` bytes of incarnation `generation` of `res`;
    /// blocking. A data file that vanished, was cut short or fails to read costs its bytes
    /// ([`Cache::lose`]); that, or `res` having moved on, is a stale error (the caller tries
    /// again).
    pub(super) fn hash_prefix(&self, res: &Arc<Resource>, generation: u64, len: u64) -> Result<String, Error> {
        let hashed = match open_incarnation(res, generation) {
            None => return Err(super::resource::stale_error()),
            Some(opened) => opened.and_then(|file| store::sha256_prefix(file, len)),
        };
        hashed.or_else(|e| {
            self.unreadable(res, generation, &e)?;
            Err(super::resource::stale_error())
        })
    }

    /// A data file that cannot give bytes its incarnation claims: they are lost.
    fn unreadable(&self, res: &Arc<Resource>, generation: u64, error: &std::io::Error) -> Result<(), Error> {
        tracing::info!(key = %loggable_key(&res.key), %error, "a data file cannot be read");
        self.lose(res, generation)
    }

    /// Opens the data file of incarnation `generation` of `res` for reading; blocking. Opened
    /// under the state lock, so the file is that incarnation's; if `res` has moved on, the
    /// bytes the reader wanted are stale. A file that is gone although its bytes are claimed
    /// (the system emptied the cache directory under us) costs its bytes: they are dropped, so
    /// this read fails but the next one fetches them again.
    #[cfg(test)]
    pub(super) fn open_data(&self, res: &Arc<Resource>, generation: u64) -> Result<std::fs::File, Error> {
        match open_incarnation(res, generation) {
            None => Err(super::resource::stale_error()),
            Some(Ok(file)) => Ok(file),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                self.lose(res, generation)?;
                Err(e.into())
            }
            Some(Err(e)) => Err(e.into()),
        }
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
        let generation = self.blocking(move || cache.reset_stale(&res2, newer)).await?;
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
            old = Some(self.renew(res, &mut st, false));
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

    /// Drops the bytes of `res` whose data file is gone or unreadable (the system emptied the
    /// cache directory under us, or trimmed a file), if they are still those of `generation`:
    /// they are fetched again, and readers of them carry on in the new generation within the
    /// same response. A pin stays, so the bytes fetched again are pinned again (and a completed
    /// download covering them is checked again); blocking.
    pub(crate) fn lose(&self, res: &Arc<Resource>, generation: u64) -> Result<(), Error> {
        if self.drop_bytes(res, Some(generation), true)? {
            tracing::warn!(key = %loggable_key(&res.key), "a data file vanished; its bytes will be fetched again");
            if res.lock().pinned {
                self.pinned_lost.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        Ok(())
    }

    /// Drops the bytes of `res` (all of them, or only if they are still those of `generation`):
    /// a failed checksum, an expired live playlist ([`super::Handle::discard`]), a data file
    /// that vanished (`lost`, [`Cache::lose`]). `false` if `res` is no longer of `generation`
    /// (or evicted). The bytes go with their incarnation: `res` starts a new one, empty. Bytes
    /// that were replaced lose their description and pin, and their readers abort; lost ones
    /// keep both, and their readers carry on; blocking.
    pub(super) fn drop_bytes(&self, res: &Arc<Resource>, generation: Option<u64>, lost: bool) -> Result<bool, Error> {
        let mut old = None;
        let result = self.index.write(|tx| {
            let mut st = res.lock();
            if st.evicted || generation.is_some_and(|g| g != st.generation) {
                return Ok(false);
            }
            if !lost {
                st.meta = None;
            }
            old = Some(self.renew(res, &mut st, lost));
            // Empty now, so the pinned total does not change.
            st.pinned &= lost;
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

    /// Syncs the data file of incarnation `generation` of `res` to disk; blocking. `false` only
    /// if that incarnation is still current and its file is gone (it vanished under us); an
    /// incarnation that has moved on has nothing to sync (its snapshot will not be recorded).
    pub(super) fn sync_data(&self, res: &Resource, generation: u64) -> Result<bool, Error> {
        match open_incarnation(res, generation) {
            None => Ok(true),
            Some(Ok(file)) => Ok(file.sync_data().map(|()| true)?),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Some(Err(e)) => Err(e.into()),
        }
    }
}

/// Opens the data file of incarnation `generation` of `res` for reading, under the state lock
/// (files move and incarnations change only under it, so the file is that incarnation's);
/// `None` if `res` has moved on or was evicted.
fn open_incarnation(res: &Resource, generation: u64) -> Option<std::io::Result<std::fs::File>> {
    let st = res.lock();
    st.is_current(generation).then(|| std::fs::File::open(&st.path))
}
