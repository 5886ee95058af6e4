//! The SQLite index: resources with their recorded byte ranges and validators, and the catalog.
//!
//! SQLite is the cache's cold tier. Opening reads the schema version (upgrading an older file)
//! and nothing else: the totals (entries, recorded bytes, pinned bytes) are one row kept right by
//! triggers, a resource's row is read by key on its first use, and eviction pages through the
//! unpinned rows in LRU order by the index `resources_lru`. The hot path never comes here: the
//! cache keeps the resources in use in memory and writes back in batches.
//!
//! Two connections, each behind its own mutex: the writer (SQLite allows only one), and a
//! read-only one for the point reads, which in WAL mode reads the last committed state while the
//! writer writes. Every read there is one statement, so one read transaction of its own that sees
//! every commit made before it. Every call blocks and is made from `spawn_blocking` or at start-up.
//! The schema is a versioned constant; `upgrade_from` carries older files forward (`PRAGMA
//! user_version`), all steps in one transaction.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::range_set::RangeSet;
use crate::error::Error;

/// The schema version this build writes.
const SCHEMA_VERSION: u32 = 7;

/// How long a connection waits for a lock held by another before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA_V1: &str = "
CREATE TABLE resources (
    key           TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    track_id      TEXT,
    etag          TEXT,
    last_modified TEXT,
    size          INTEGER,
    mime          TEXT,
    ranges        TEXT NOT NULL DEFAULT '',
    last_access   INTEGER NOT NULL DEFAULT 0,
    pinned        INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE tracks (
    id     TEXT PRIMARY KEY,
    url    TEXT NOT NULL,
    sha256 TEXT,
    size   INTEGER,
    mime   TEXT
);
";

/// Version 2 adds the persistent download queue.
const SCHEMA_V2: &str = "
CREATE TABLE downloads (
    id         TEXT PRIMARY KEY,
    key        TEXT NOT NULL,
    url        TEXT NOT NULL,
    track_id   TEXT,
    state      TEXT NOT NULL,
    error      TEXT,
    priority   INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
";

/// Version 3: HLS downloads remember the rendition asked for and every resource they pinned.
const SCHEMA_V3: &str = "
ALTER TABLE downloads ADD COLUMN variant TEXT;
ALTER TABLE downloads ADD COLUMN members TEXT NOT NULL DEFAULT '';
";

/// Version 4: where a redirected resource was really served from.
const SCHEMA_V4: &str = "
ALTER TABLE resources ADD COLUMN location TEXT;
";

/// Version 5: the incarnation whose data file holds the recorded bytes (files are named by it).
const SCHEMA_V5: &str = "
ALTER TABLE resources ADD COLUMN generation INTEGER;
";

/// Version 6, the lazy cache: each row's recorded bytes, the one-row table of totals, the LRU
/// order and generations as indexes. `fill_v6` then computes `bytes`, names the rows from before
/// version 5, and runs `SCHEMA_V6_TOTALS`.
const SCHEMA_V6: &str = "
ALTER TABLE resources ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
CREATE TABLE totals (
    id           INTEGER PRIMARY KEY CHECK (id = 0),
    entries      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    pinned_bytes INTEGER NOT NULL
);
CREATE INDEX resources_lru ON resources(pinned, last_access, key);
CREATE UNIQUE INDEX resources_generation ON resources(generation);
";

/// The end of version 6, once every row has its `bytes`: the totals row from the rows, and the
/// triggers that keep it right from then on (created last, so that they do not fire for every
/// row `fill_v6` updates). A row counts in `pinned_bytes` when `pinned != 0`. `recursive_triggers`
/// is on for the writer, so the rows an `INSERT OR REPLACE` deletes fire the delete trigger too.
const SCHEMA_V6_TOTALS: &str = "
INSERT INTO totals (id, entries, bytes, pinned_bytes)
SELECT 0, COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(CASE WHEN pinned != 0 THEN bytes ELSE 0 END), 0)
FROM resources;
CREATE TRIGGER resources_totals_insert AFTER INSERT ON resources BEGIN
    UPDATE totals SET entries = entries + 1,
                      bytes = bytes + NEW.bytes,
                      pinned_bytes = pinned_bytes + CASE WHEN NEW.pinned != 0 THEN NEW.bytes ELSE 0 END
    WHERE id = 0;
END;
CREATE TRIGGER resources_totals_delete AFTER DELETE ON resources BEGIN
    UPDATE totals SET entries = entries - 1,
                      bytes = bytes - OLD.bytes,
                      pinned_bytes = pinned_bytes - CASE WHEN OLD.pinned != 0 THEN OLD.bytes ELSE 0 END
    WHERE id = 0;
END;
CREATE TRIGGER resources_totals_update AFTER UPDATE ON resources BEGIN
    UPDATE totals SET bytes = bytes - OLD.bytes + NEW.bytes,
                      pinned_bytes = pinned_bytes
                          - CASE WHEN OLD.pinned != 0 THEN OLD.bytes ELSE 0 END
                          + CASE WHEN NEW.pinned != 0 THEN NEW.bytes ELSE 0 END
    WHERE id = 0;
END;
";

/// Version 7: each download carries the app's own metadata (`data`, opaque text; null when none).
const SCHEMA_V7: &str = "
ALTER TABLE downloads ADD COLUMN data TEXT;
";

/// The columns `resource_of` reads, in its order.
macro_rules! resource_columns {
    () => {
        "key, url, track_id, etag, last_modified, size, mime, ranges, last_access, pinned, location, generation, bytes"
    };
}

/// One resource row by key.
const SELECT_RESOURCE: &str = concat!("SELECT ", resource_columns!(), " FROM resources WHERE key = ?1");

/// Every resource row.
const SELECT_ALL_RESOURCES: &str = concat!("SELECT ", resource_columns!(), " FROM resources");

/// The first unpinned rows in LRU order (`?1`: how many).
const SELECT_LRU_FIRST: &str = "SELECT key, generation, bytes, last_access FROM resources
     WHERE pinned = 0
     ORDER BY last_access, key LIMIT ?1";

/// The unpinned rows in LRU order after the position (`?1`, `?2`) (`?3`: how many).
const SELECT_LRU_AFTER: &str = "SELECT key, generation, bytes, last_access FROM resources
     WHERE pinned = 0 AND (last_access, key) > (?1, ?2)
     ORDER BY last_access, key LIMIT ?3";

/// One row of `downloads`: a queued, running, paused, finished or failed download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DownloadRow {
    /// The download's ID.
    pub(crate) id: String,
    /// The cache key of the resource it fills.
    pub(crate) key: String,
    /// The remote URL (for a track, the catalog URL when it was queued).
    pub(crate) url: String,
    /// The catalog track, if it is one.
    pub(crate) track_id: Option<String>,
    /// `queued`, `running`, `waiting_for_network`, `paused`, `completed` or `failed`.
    pub(crate) state: String,
    /// Why it failed.
    pub(crate) error: Option<String>,
    /// Higher runs first.
    pub(crate) priority: i64,
    /// When it was queued, milliseconds since the Unix epoch (ties in priority run oldest first).
    pub(crate) created_ms: u64,
    /// For an HLS download, the rendition asked for (`lowest`, `highest`, `max:N`, `middle`).
    pub(crate) variant: Option<String>,
    /// For an HLS download, the cache keys of every playlist, segment, init section and key it
    /// covers (empty for a single resource, which is `key`).
    pub(crate) members: Vec<String>,
    /// The app's own metadata for it (opaque text), if it gave any.
    pub(crate) data: Option<String>,
}

/// One row of `resources`, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceRow {
    /// Cache key (`track:ID` or the remote URL).
    pub(crate) key: String,
    /// The remote URL last used to fill it.
    pub(crate) url: String,
    /// The catalog track it belongs to, if any.
    pub(crate) track_id: Option<String>,
    /// The backend's strong ETag for these bytes, if it sent one.
    pub(crate) etag: Option<String>,
    /// The backend's `Last-Modified`, verbatim.
    pub(crate) last_modified: Option<String>,
    /// Total length in bytes, once known.
    pub(crate) size: Option<u64>,
    /// `Content-Type` to serve.
    pub(crate) mime: Option<String>,
    /// The URL the backend redirected to, when it did.
    pub(crate) location: Option<String>,
    /// Durably present byte ranges, in `RangeSet` text form.
    pub(crate) ranges: String,
    /// The number of bytes in `ranges` (what the totals add up).
    pub(crate) bytes: u64,
    /// Last access, milliseconds since the Unix epoch.
    pub(crate) last_access_ms: u64,
    /// Pinned by an offline download.
    pub(crate) pinned: bool,
    /// The incarnation the recorded ranges belong to, which names the data file. Opening a file
    /// from before schema version 6 gives every row that had none (written before version 5, its
    /// file without suffix) its rowid, so `None` is only seen for a row written with `None`.
    pub(crate) generation: Option<u64>,
}

/// One row of `tracks`: a catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackRow {
    /// The app's track ID.
    pub(crate) id: String,
    /// Where the backend serves it (may be re-signed at any time).
    pub(crate) url: String,
    /// Expected SHA-256 of the whole body, lowercase hex.
    pub(crate) sha256: Option<String>,
    /// Expected size in bytes.
    pub(crate) size: Option<u64>,
    /// MIME type to serve if the backend gives none.
    pub(crate) mime: Option<String>,
}

/// The sums over every resource row, kept by triggers in the one-row table `totals`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// How many rows.
    pub(crate) entries: u64,
    /// Recorded bytes of every row.
    pub(crate) bytes: u64,
    /// Recorded bytes of the pinned rows.
    pub(crate) pinned_bytes: u64,
}

/// An unpinned row, as eviction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LruEntry {
    /// Cache key.
    pub(crate) key: String,
    /// The incarnation whose data file holds its bytes.
    pub(crate) generation: Option<u64>,
    /// Recorded bytes.
    pub(crate) bytes: u64,
    /// Last access, milliseconds since the Unix epoch.
    pub(crate) last_access_ms: u64,
}

impl LruEntry {
    /// Its position in the LRU order, to ask for the rows after it.
    pub(crate) fn pos(&self) -> LruPos {
        LruPos {
            last_access_ms: self.last_access_ms,
            key: self.key.clone(),
        }
    }
}

/// A position in the LRU order: `(last_access, key)`, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LruPos {
    /// Last access, milliseconds since the Unix epoch.
    pub(crate) last_access_ms: u64,
    /// Cache key, which orders rows accessed in the same millisecond.
    pub(crate) key: String,
}

/// The SQLite index of one cache directory.
pub(crate) struct Index {
    /// The read-only connection for point reads and listings. Declared first so that it closes
    /// first: the writer, closing last, checkpoints the WAL and removes it.
    read: Mutex<Connection>,
    /// The one writer.
    conn: Mutex<Connection>,
}

impl Index {
    /// Opens (creating or upgrading) the index at `path`, in WAL mode. Upgrading from before
    /// version 6 gives each row from before version 5 (no generation: its data file has the
    /// legacy name without suffix) the generation of its rowid, and calls `legacy(key,
    /// generation)` for it before the upgrade commits, for the caller to rename that file. A
    /// crash before the commit leaves the file at its old version, and the next open gives the
    /// same rows the same generations again, so `legacy` must accept a file already renamed.
    pub(crate) fn open(path: &Path, legacy: &mut dyn FnMut(&str, u64)) -> Result<Self, Error> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode NORMAL never corrupts the database; a power cut may lose the last batch of
        // recorded ranges, which only means those bytes are fetched again.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The totals stay right even when a REPLACE conflict deletes a row (see `SCHEMA_V6_TOTALS`).
        conn.pragma_update(None, "recursive_triggers", true)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        upgrade(&mut conn, legacy)?;
        let read =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        read.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Self {
            read: Mutex::new(read),
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` in one transaction on the writer connection and commits it.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` on the read-only connection. `f` must leave no statement running (every
    /// statement is reset when its rows are dropped), so each read is a transaction of its own.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    /// The row of `key`, if there is one.
    pub(crate) fn load_resource(&self, key: &str) -> Result<Option<ResourceRow>, Error> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(SELECT_RESOURCE)?
                .query_row(params![key], resource_of)
                .optional()?)
        })
    }

    /// The totals, in O(1).
    pub(crate) fn totals(&self) -> Result<Totals, Error> {
        self.read(|conn| {
            conn.prepare_cached("SELECT entries, bytes, pinned_bytes FROM totals WHERE id = 0")?
                .query_row([], |r| {
                    Ok(Totals {
                        entries: r.get::<_, i64>(0)?.max(0) as u64,
                        bytes: r.get::<_, i64>(1)?.max(0) as u64,
                        pinned_bytes: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                })
                .optional()?
                .ok_or_else(|| Error::storage("index: the totals row is missing"))
        })
    }

    /// The highest generation of any row (through its index: O(log n)).
    pub(crate) fn max_generation(&self) -> Result<Option<u64>, Error> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT MAX(generation) FROM resources")?
                .query_row([], |r| r.get::<_, Option<i64>>(0))?
                .map(|g| g as u64))
        })
    }

    /// The key of the row whose data file is incarnation `generation`, if any.
    pub(crate) fn has_generation(&self, generation: u64) -> Result<Option<String>, Error> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT key FROM resources WHERE generation = ?1")?
                .query_row(params![generation as i64], |r| r.get(0))
                .optional()?)
        })
    }

    /// [`lru_batch`] on the read connection.
    #[cfg(test)]
    pub(crate) fn lru_batch(&self, after: Option<&LruPos>, limit: usize) -> Result<Vec<LruEntry>, Error> {
        self.read(|conn| lru_batch(conn, after, limit))
    }

    /// Every resource row (for the full listing).
    pub(crate) fn all_resources(&self) -> Result<Vec<ResourceRow>, Error> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(SELECT_ALL_RESOURCES)?
                .query_map([], resource_of)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Every catalog track.
    pub(crate) fn load_tracks(&self) -> Result<Vec<TrackRow>, Error> {
        self.write(|tx| {
            let mut stmt = tx.prepare("SELECT id, url, sha256, size, mime FROM tracks")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(TrackRow {
                        id: r.get(0)?,
                        url: r.get(1)?,
                        sha256: r.get(2)?,
                        size: r.get::<_, Option<i64>>(3)?.map(|v| v.max(0) as u64),
                        mime: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Inserts or replaces a catalog track.
    pub(crate) fn put_track(&self, track: &TrackRow) -> Result<(), Error> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO tracks (id, url, sha256, size, mime) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET url = ?2, sha256 = ?3, size = ?4, mime = ?5",
                params![
                    track.id,
                    track.url,
                    track.sha256,
                    track.size.map(|s| s as i64),
                    track.mime
                ],
            )?;
            Ok(())
        })
    }
}

/// Deletes catalog track `id`'s row.
pub(crate) fn delete_track(tx: &Transaction<'_>, id: &str) -> Result<(), Error> {
    tx.execute("DELETE FROM tracks WHERE id = ?1", params![id])?;
    Ok(())
}

/// A resource row from the columns `resource_columns!` names.
fn resource_of(r: &Row<'_>) -> rusqlite::Result<ResourceRow> {
    Ok(ResourceRow {
        key: r.get(0)?,
        url: r.get(1)?,
        track_id: r.get(2)?,
        etag: r.get(3)?,
        last_modified: r.get(4)?,
        size: r.get::<_, Option<i64>>(5)?.map(|v| v.max(0) as u64),
        mime: r.get(6)?,
        ranges: r.get(7)?,
        last_access_ms: r.get::<_, i64>(8)?.max(0) as u64,
        pinned: r.get::<_, i64>(9)? != 0,
        location: r.get(10)?,
        generation: r.get::<_, Option<i64>>(11)?.map(|g| g as u64),
        bytes: r.get::<_, i64>(12)?.max(0) as u64,
    })
}

/// Inserts or replaces a resource row inside a transaction.
pub(crate) fn upsert_resource(tx: &Transaction<'_>, row: &ResourceRow) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO resources (key, url, track_id, etag, last_modified, size, mime, ranges, last_access, pinned,
             location, generation, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT(key) DO UPDATE SET url = ?2, track_id = ?3, etag = ?4, last_modified = ?5,
             size = ?6, mime = ?7, ranges = ?8, last_access = ?9, pinned = ?10, location = ?11,
             generation = ?12, bytes = ?13",
    )?
    .execute(params![
        row.key,
        row.url,
        row.track_id,
        row.etag,
        row.last_modified,
        row.size.map(|s| s as i64),
        row.mime,
        row.ranges,
        row.last_access_ms as i64,
        row.pinned as i64,
        row.location,
        row.generation.map(|g| g as i64),
        row.bytes as i64
    ])?;
    Ok(())
}

/// Deletes a resource row inside a transaction.
pub(crate) fn delete_resource(tx: &Transaction<'_>, key: &str) -> Result<(), Error> {
    tx.execute("DELETE FROM resources WHERE key = ?1", params![key])?;
    Ok(())
}

/// Deletes the row of `key` only if it still records incarnation `generation` (evicting a cold
/// row never deletes a newer incarnation's); returns whether it did.
pub(crate) fn delete_resource_generation(tx: &Transaction<'_>, key: &str, generation: u64) -> Result<bool, Error> {
    let deleted = tx
        .prepare_cached("DELETE FROM resources WHERE key = ?1 AND generation = ?2")?
        .execute(params![key, generation as i64])?;
    Ok(deleted > 0)
}

/// Up to `limit` unpinned rows in LRU order (`last_access` ascending, then `key`), strictly after
/// `after` (from the start if `None`): pass the last entry's `pos()` for the next batch. Eviction
/// runs it inside its own write transaction, which sees the rows it deleted already gone, and
/// never waits on another connection while it holds the write lock.
pub(crate) fn lru_batch(conn: &Connection, after: Option<&LruPos>, limit: usize) -> Result<Vec<LruEntry>, Error> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let entry = |r: &Row<'_>| {
        Ok(LruEntry {
            key: r.get(0)?,
            generation: r.get::<_, Option<i64>>(1)?.map(|g| g as u64),
            bytes: r.get::<_, i64>(2)?.max(0) as u64,
            // Not clamped: the position must give back exactly what is stored.
            last_access_ms: r.get::<_, i64>(3)? as u64,
        })
    };
    let rows = match after {
        None => conn
            .prepare_cached(SELECT_LRU_FIRST)?
            .query_map(params![limit], entry)?
            .collect::<Result<Vec<_>, _>>()?,
        Some(pos) => conn
            .prepare_cached(SELECT_LRU_AFTER)?
            .query_map(params![pos.last_access_ms as i64, pos.key, limit], entry)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(rows)
}

/// Whether a resource row exists (used by tests and diagnostics).
#[allow(dead_code)]
pub(crate) fn resource_exists(tx: &Transaction<'_>, key: &str) -> Result<bool, Error> {
    Ok(tx
        .query_row("SELECT 1 FROM resources WHERE key = ?1", params![key], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Every download row.
pub(crate) fn load_downloads(tx: &Transaction<'_>) -> Result<Vec<DownloadRow>, Error> {
    let mut stmt = tx.prepare(
        "SELECT id, key, url, track_id, state, error, priority, created_ms, variant, members, data FROM downloads",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(DownloadRow {
                id: r.get(0)?,
                key: r.get(1)?,
                url: r.get(2)?,
                track_id: r.get(3)?,
                state: r.get(4)?,
                error: r.get(5)?,
                priority: r.get(6)?,
                created_ms: r.get::<_, i64>(7)?.max(0) as u64,
                variant: r.get(8)?,
                members: r
                    .get::<_, String>(9)?
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
                data: r.get(10)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Inserts or replaces a download row.
pub(crate) fn upsert_download(tx: &Transaction<'_>, row: &DownloadRow) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO downloads (id, key, url, track_id, state, error, priority, created_ms, variant, members, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(id) DO UPDATE SET key = ?2, url = ?3, track_id = ?4, state = ?5, error = ?6,
             priority = ?7, created_ms = ?8, variant = ?9, members = ?10, data = ?11",
        params![
            row.id,
            row.key,
            row.url,
            row.track_id,
            row.state,
            row.error,
            row.priority,
            row.created_ms as i64,
            row.variant,
            row.members.join("\n"),
            row.data
        ],
    )?;
    Ok(())
}

/// Deletes a download row.
pub(crate) fn delete_download(tx: &Transaction<'_>, id: &str) -> Result<(), Error> {
    tx.execute("DELETE FROM downloads WHERE id = ?1", params![id])?;
    Ok(())
}

/// The file's schema version.
fn schema_version(conn: &Connection) -> Result<u32, Error> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Brings the file up to `SCHEMA_VERSION` in one transaction: a crash or an error anywhere
/// leaves it at its old version, untouched.
fn upgrade(conn: &mut Connection, legacy: &mut dyn FnMut(&str, u64)) -> Result<(), Error> {
    if schema_version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    // IMMEDIATE takes the write lock before the version is read again, so two processes opening
    // the same file never both upgrade it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version = schema_version(&tx)?;
    upgrade_from(&tx, version, legacy)?;
    tx.commit()?;
    Ok(())
}

/// Brings a database at `version` up to `SCHEMA_VERSION`, inside the caller's transaction.
fn upgrade_from(tx: &Transaction<'_>, version: u32, legacy: &mut dyn FnMut(&str, u64)) -> Result<(), Error> {
    match version {
        0..SCHEMA_VERSION => run_steps(tx, version, legacy).map_err(|e| match e {
            Error::Storage(e) => Error::Storage(e.context(format!(
                "cannot upgrade the cache index from schema version {version} to {SCHEMA_VERSION}"
            ))),
            other => other,
        })?,
        SCHEMA_VERSION => return Ok(()),
        newer => {
            return Err(Error::storage(format!(
                "the cache index has schema version {newer}, newer than this build's {SCHEMA_VERSION}; \
                 use a newer build or another cache directory"
            )))
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

/// The steps from `version` to `SCHEMA_VERSION`, one at a time: each its SQL, then its Rust part
/// if it has one (`fill_v6`).
fn run_steps(tx: &Transaction<'_>, version: u32, legacy: &mut dyn FnMut(&str, u64)) -> Result<(), Error> {
    let steps = [
        SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7,
    ];
    for (to, step) in (1u32..).zip(steps).skip(version as usize) {
        tx.execute_batch(step)?;
        if to == 6 {
            fill_v6(tx, legacy)?;
        }
    }
    Ok(())
}

/// The Rust part of version 6, after `SCHEMA_V6`: every row's `bytes` from its ranges (0 for
/// ranges that do not parse), the generation `rowid` for every row without one (calling
/// `legacy(key, rowid)`; rowids are small, far below the generations of later builds, which
/// start above `now_ms * 1000`), then `SCHEMA_V6_TOTALS`. Rows are read in batches by rowid, so
/// neither memory nor a statement spans the table while it is updated.
fn fill_v6(tx: &Transaction<'_>, legacy: &mut dyn FnMut(&str, u64)) -> Result<(), Error> {
    const BATCH: i64 = 1024;
    let mut select =
        tx.prepare("SELECT rowid, key, ranges, generation FROM resources WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")?;
    let mut update = tx.prepare("UPDATE resources SET bytes = ?2, generation = ?3 WHERE rowid = ?1")?;
    let mut after = i64::MIN;
    loop {
        let rows = select
            .query_map(params![after, BATCH], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let Some(&(last, ..)) = rows.last() else { break };
        after = last;
        for (rowid, key, ranges, generation) in rows {
            let bytes = RangeSet::parse(&ranges).map_or(0, |r| r.len());
            if bytes == 0 && generation.is_some() {
                continue;
            }
            update.execute(params![rowid, bytes as i64, generation.unwrap_or(rowid)])?;
            if generation.is_none() {
                legacy(&key, rowid as u64);
            }
        }
    }
    tx.execute_batch(SCHEMA_V6_TOTALS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A legacy callback for files that have no row from before version 5.
    fn no_legacy(key: &str, generation: u64) {
        panic!("unexpected legacy row {key} {generation}");
    }

    /// Opens an index that must have no row from before version 5.
    fn open(path: &Path) -> Index {
        Index::open(path, &mut no_legacy).unwrap()
    }

    /// Opens an index, returning the legacy rows it reported.
    fn open_legacy(path: &Path) -> (Index, Vec<(String, u64)>) {
        let mut seen = Vec::new();
        let index = Index::open(path, &mut |k, g| seen.push((k.to_owned(), g))).unwrap();
        (index, seen)
    }

    fn row(key: &str) -> ResourceRow {
        ResourceRow {
            key: key.into(),
            url: "http://127.0.0.1:1/a".into(),
            track_id: None,
            etag: Some("\"e\"".into()),
            last_modified: None,
            size: Some(100),
            mime: Some("audio/wav".into()),
            location: Some("http://127.0.0.1:1/moved/a".into()),
            ranges: "0-50".into(),
            bytes: 50,
            last_access_ms: 7,
            pinned: false,
            generation: Some(0x18c2_0000_0001),
        }
    }

    /// A row with its own generation, access time and pin, holding `0-bytes`.
    fn row_with(key: &str, generation: u64, last_access_ms: u64, pinned: bool, bytes: u64) -> ResourceRow {
        ResourceRow {
            ranges: if bytes == 0 {
                String::new()
            } else {
                format!("0-{bytes}")
            },
            bytes,
            last_access_ms,
            pinned,
            generation: Some(generation),
            ..row(key)
        }
    }

    fn sorted(mut rows: Vec<ResourceRow>) -> Vec<ResourceRow> {
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        rows
    }

    /// The totals recomputed from every row.
    fn recomputed(conn: &Connection) -> Totals {
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(CASE WHEN pinned != 0 THEN bytes ELSE 0 END), 0)
             FROM resources",
            [],
            |r| {
                Ok(Totals {
                    entries: r.get::<_, i64>(0)? as u64,
                    bytes: r.get::<_, i64>(1)? as u64,
                    pinned_bytes: r.get::<_, i64>(2)? as u64,
                })
            },
        )
        .unwrap()
    }

    #[test]
    fn fresh_database_gets_current_schema_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let index = open(&path);
        assert_eq!(index.totals().unwrap(), Totals::default());
        index.write(|tx| upsert_resource(tx, &row("k"))).unwrap();
        index
            .put_track(&TrackRow {
                id: "t".into(),
                url: "http://x/".into(),
                sha256: None,
                size: Some(3),
                mime: None,
            })
            .unwrap();
        drop(index);
        let index = open(&path);
        let version = index.write(|tx| schema_version(tx)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(index.all_resources().unwrap(), vec![row("k")]);
        assert_eq!(index.load_resource("k").unwrap(), Some(row("k")));
        let totals = Totals {
            entries: 1,
            bytes: 50,
            pinned_bytes: 0,
        };
        assert_eq!(index.totals().unwrap(), totals);
        assert_eq!(index.load_tracks().unwrap()[0].size, Some(3));
        index.write(|tx| delete_resource(tx, "k")).unwrap();
        assert!(index.all_resources().unwrap().is_empty());
        assert_eq!(index.totals().unwrap(), Totals::default());
    }

    #[test]
    fn totals_follow_every_kind_of_write() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(&dir.path().join("index.sqlite"));
        // A small LCG: the same 500 operations every run.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        let (mut pinned_seen, mut max_entries) = (false, 0);
        for op in 0..500u64 {
            let key = format!("k{}", next(12));
            let current: Option<u64> = index
                .write(|tx| {
                    Ok(tx
                        .query_row("SELECT generation FROM resources WHERE key = ?1", [&key], |r| {
                            r.get::<_, i64>(0)
                        })
                        .optional()?)
                })
                .unwrap()
                .map(|g| g as u64);
            match next(10) {
                // Inserts, and upserts that change bytes, the pin, or both.
                0..=4 => {
                    let bytes = [0, 1, 100, 4096][next(4) as usize] + next(3);
                    let row = row_with(&key, 1_000 + op, next(50), next(2) == 0, bytes);
                    index.write(|tx| upsert_resource(tx, &row)).unwrap();
                }
                5 | 6 => index.write(|tx| delete_resource(tx, &key)).unwrap(),
                7 => {
                    let generation = current.map_or(1, |g| g + next(2));
                    let deleted = index
                        .write(|tx| delete_resource_generation(tx, &key, generation))
                        .unwrap();
                    assert_eq!(deleted, current == Some(generation));
                }
                // A REPLACE conflict deletes the old row (the delete trigger fires: recursive
                // triggers are on), here on the key or on the generation of another key.
                8 => {
                    let generation = match next(2) {
                        0 => 1_000 + op,
                        _ => current.unwrap_or(1_000 + op),
                    };
                    let other = format!("k{}", next(12));
                    let target = if current.is_some() && next(2) == 0 { other } else { key };
                    index
                        .write(|tx| {
                            tx.execute(
                                "INSERT OR REPLACE INTO resources (key, url, ranges, bytes, pinned, generation)
                                 VALUES (?1, 'http://x/', '0-33', 33, ?2, ?3)",
                                params![target, next(2) as i64, generation as i64],
                            )?;
                            Ok(())
                        })
                        .unwrap();
                }
                // The pin and the bytes change in one update.
                _ => index
                    .write(|tx| {
                        tx.execute(
                            "UPDATE resources SET pinned = 1 - pinned, bytes = bytes + 7 WHERE key = ?1",
                            [&key],
                        )?;
                        Ok(())
                    })
                    .unwrap(),
            }
            let totals = index.totals().unwrap();
            assert_eq!(totals, index.write(|tx| Ok(recomputed(tx))).unwrap(), "after op {op}");
            pinned_seen |= totals.pinned_bytes > 0 && totals.pinned_bytes < totals.bytes;
            max_entries = max_entries.max(totals.entries);
        }
        assert!(pinned_seen && max_entries > 5, "the sequence exercised little");
    }

    #[test]
    fn version_1_files_are_upgraded_keeping_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute("INSERT INTO tracks (id, url) VALUES ('t', 'http://x/')", [])
            .unwrap();
        drop(conn);
        let index = open(&path);
        assert_eq!(index.load_tracks().unwrap().len(), 1);
        let download = DownloadRow {
            id: "d1".into(),
            key: "track:t".into(),
            url: "http://x/".into(),
            track_id: Some("t".into()),
            state: "queued".into(),
            error: None,
            priority: 3,
            created_ms: 9,
            variant: Some("lowest".into()),
            members: vec!["http://x/a.m3u8".into(), "http://x/s1.ts".into()],
            data: Some("{\"album\": \"Ünïcode\"}\n".into()),
        };
        index.write(|tx| upsert_download(tx, &download)).unwrap();
        assert_eq!(index.write(load_downloads).unwrap(), vec![download]);
        index.write(|tx| delete_download(tx, "d1")).unwrap();
        assert!(index.write(load_downloads).unwrap().is_empty());
        index.write(|tx| upsert_resource(tx, &row("k"))).unwrap();
        assert_eq!(index.all_resources().unwrap(), vec![row("k")]);
    }

    /// An index file at schema `version` (the steps up to it, by this build's own constants)
    /// holding one resource row `k` with ranges `0-9`.
    fn index_at_version(version: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let conn = Connection::open(&path).unwrap();
        for schema in &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5][..version] {
            conn.execute_batch(schema).unwrap();
        }
        conn.pragma_update(None, "user_version", version as u32).unwrap();
        conn.execute(
            "INSERT INTO resources (key, url, ranges) VALUES ('k', 'http://x/a', '0-9')",
            [],
        )
        .unwrap();
        (dir, path)
    }

    #[test]
    fn version_3_files_gain_the_redirect_location() {
        let (_dir, path) = index_at_version(3);
        let (index, legacy) = open_legacy(&path);
        let rows = index.all_resources().unwrap();
        assert_eq!((rows[0].key.as_str(), rows[0].location.as_deref()), ("k", None));
        // A row from before per-incarnation files is named by its rowid.
        assert_eq!((rows[0].generation, rows[0].bytes), (Some(1), 9));
        assert_eq!(legacy, [("k".to_owned(), 1)]);
        index.write(|tx| upsert_resource(tx, &row("k"))).unwrap();
        assert_eq!(index.all_resources().unwrap(), vec![row("k")]);
    }

    #[test]
    fn version_4_rows_get_their_rowid_as_generation_once() {
        let (_dir, path) = index_at_version(4);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO resources (key, url, ranges, pinned) VALUES ('gone', 'http://x/g', '0-1', 0);
             INSERT INTO resources (key, url, ranges, pinned) VALUES ('b', 'http://x/b', '', 1);
             DELETE FROM resources WHERE key = 'gone';
             INSERT INTO resources (key, url, ranges, pinned, last_access) VALUES ('c', 'http://x/c', '0-10,20-25', 1, 3);
             INSERT INTO tracks (id, url) VALUES ('t', 'http://x/');",
        )
        .unwrap();
        drop(conn);
        let mut seen = Vec::new();
        let index = Index::open(&path, &mut |key, generation| {
            // Called before the upgrade commits: the file is still at version 4 for any reader.
            let other = Connection::open(&path).unwrap();
            assert_eq!(schema_version(&other).unwrap(), 4);
            seen.push((key.to_owned(), generation));
        })
        .unwrap();
        let expected = [("k".to_owned(), 1), ("b".to_owned(), 3), ("c".to_owned(), 4)];
        assert_eq!(seen, expected);
        let rows = sorted(index.all_resources().unwrap());
        let got: Vec<_> = rows.iter().map(|r| (r.key.as_str(), r.generation, r.bytes)).collect();
        assert_eq!(got, [("b", Some(3), 0), ("c", Some(4), 15), ("k", Some(1), 9)]);
        assert_eq!(rows[1].last_access_ms, 3);
        assert!(rows[1].pinned);
        let totals = Totals {
            entries: 3,
            bytes: 24,
            pinned_bytes: 15,
        };
        assert_eq!(index.totals().unwrap(), totals);
        assert_eq!(index.load_tracks().unwrap().len(), 1);
        drop(index);
        let (index, legacy) = open_legacy(&path);
        assert!(legacy.is_empty(), "the callback runs once per row: {legacy:?}");
        assert_eq!(index.totals().unwrap(), totals);
    }

    #[test]
    fn version_5_files_keep_every_row_and_value() {
        let (_dir, path) = index_at_version(5);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DELETE FROM resources;
             INSERT INTO resources (key, url, track_id, etag, last_modified, size, mime, ranges, last_access,
                                    pinned, location, generation)
             VALUES ('track:p', 'http://x/p', 'p', '\"e1\"', 'Mon, 01 Jan 2024 00:00:00 GMT', 1000, 'audio/mpeg',
                     '0-100,200-250', 1700000000000, 1, 'http://y/p', 1700000000000001);
             INSERT INTO resources (key, url, ranges, last_access, generation)
             VALUES ('http://x/q', 'http://x/q', 'garbage', 5, 1700000000000002);
             INSERT INTO resources (key, url, ranges) VALUES ('http://x/r', 'http://x/r', '0-7');",
        )
        .unwrap();
        drop(conn);
        let (index, legacy) = open_legacy(&path);
        // A row from before version 5 that the version 5 build had not yet given a generation.
        assert_eq!(legacy, [("http://x/r".to_owned(), 3)]);
        let p = ResourceRow {
            key: "track:p".into(),
            url: "http://x/p".into(),
            track_id: Some("p".into()),
            etag: Some("\"e1\"".into()),
            last_modified: Some("Mon, 01 Jan 2024 00:00:00 GMT".into()),
            size: Some(1000),
            mime: Some("audio/mpeg".into()),
            location: Some("http://y/p".into()),
            ranges: "0-100,200-250".into(),
            bytes: 150,
            last_access_ms: 1_700_000_000_000,
            pinned: true,
            generation: Some(1_700_000_000_000_001),
        };
        let bare = |key: &str, ranges: &str, bytes, last_access_ms, generation| ResourceRow {
            key: key.into(),
            url: key.into(),
            track_id: None,
            etag: None,
            last_modified: None,
            size: None,
            mime: None,
            location: None,
            ranges: ranges.into(),
            bytes,
            last_access_ms,
            pinned: false,
            generation: Some(generation),
        };
        let q = bare("http://x/q", "garbage", 0, 5, 1_700_000_000_000_002);
        let r = bare("http://x/r", "0-7", 7, 0, 3);
        assert_eq!(sorted(index.all_resources().unwrap()), [q, r, p]);
        let totals = Totals {
            entries: 3,
            bytes: 157,
            pinned_bytes: 150,
        };
        assert_eq!(index.totals().unwrap(), totals);
    }

    #[test]
    fn a_failed_upgrade_leaves_the_old_version_untouched() {
        let (_dir, path) = index_at_version(5);
        let conn = Connection::open(&path).unwrap();
        // `a` (rowid 2) is to be named 2, which `b` already holds: the upgrade fails on it, after
        // the version 6 SQL ran and `k` (rowid 1) was named.
        conn.execute_batch(
            "INSERT INTO resources (key, url, ranges) VALUES ('a', 'http://x/a', '0-3');
             INSERT INTO resources (key, url, ranges, generation) VALUES ('b', 'http://x/b', '0-4', 2);",
        )
        .unwrap();
        drop(conn);
        let mut seen = Vec::new();
        let err = Index::open(&path, &mut |k, g| seen.push((k.to_owned(), g)))
            .err()
            .unwrap();
        let message = err.to_string();
        assert!(
            message.contains("cannot upgrade the cache index from schema version 5 to 7"),
            "{message}"
        );
        assert!(message.contains("UNIQUE"), "{message}");
        assert_eq!(seen, [("k".to_owned(), 1)]);

        let conn = Connection::open(&path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), 5);
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(
            count("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'resources' AND sql LIKE '%bytes INTEGER%'"),
            0
        );
        assert_eq!(count("SELECT COUNT(*) FROM sqlite_master WHERE sql LIKE '%totals%'"), 0);
        assert_eq!(
            count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'resources_%'"),
            0
        );
        assert_eq!(count("SELECT COUNT(*) FROM resources WHERE generation IS NULL"), 2);

        // Once the conflict is gone the upgrade runs, naming `k` as the failed attempt did.
        conn.execute("UPDATE resources SET generation = 99 WHERE key = 'b'", [])
            .unwrap();
        drop(conn);
        let (index, legacy) = open_legacy(&path);
        assert_eq!(legacy, [("k".to_owned(), 1), ("a".to_owned(), 2)]);
        assert_eq!(index.totals().unwrap().bytes, 9 + 3 + 4);
    }

    /// An index holding rows of every LRU case: ties in `last_access`, pinned rows in between.
    fn lru_index(dir: &tempfile::TempDir) -> Index {
        let index = open(&dir.path().join("index.sqlite"));
        let rows = [
            ("c", 10, false),
            ("a", 10, false),
            ("f", 10, true),
            ("b", 10, false),
            ("d", 5, false),
            ("g", 1, true),
            ("i", 20, false),
            ("e", 20, false),
            ("h", 30, false),
        ];
        index
            .write(|tx| {
                for (n, (key, last_access, pinned)) in (1..).zip(rows) {
                    upsert_resource(tx, &row_with(key, 100 + n, last_access, pinned, n))?;
                }
                Ok(())
            })
            .unwrap();
        index
    }

    #[test]
    fn lru_batches_page_in_order_past_ties_and_skip_pinned_rows() {
        let dir = tempfile::tempdir().unwrap();
        let index = lru_index(&dir);
        let mut batches = Vec::new();
        let mut after: Option<LruPos> = None;
        loop {
            let batch = index.lru_batch(after.as_ref(), 2).unwrap();
            let Some(last) = batch.last() else { break };
            after = Some(last.pos());
            batches.push(batch.iter().map(|e| e.key.clone()).collect::<Vec<_>>());
        }
        assert_eq!(batches, vec![vec!["d", "a"], vec!["b", "c"], vec!["e", "i"], vec!["h"]]);
        let first = &index.lru_batch(None, 1).unwrap()[0];
        let expected = LruEntry {
            key: "d".into(),
            generation: Some(105),
            bytes: 5,
            last_access_ms: 5,
        };
        assert_eq!(first, &expected);
        assert!(index.lru_batch(None, 0).unwrap().is_empty());
        let all = index.lru_batch(None, usize::MAX).unwrap();
        assert_eq!(all.len(), 7);
        // A position between rows (its key was deleted since) still pages on from there.
        let pos = LruPos {
            last_access_ms: 10,
            key: "aa".into(),
        };
        let keys: Vec<_> = index
            .lru_batch(Some(&pos), 3)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["b", "c", "e"]);
    }

    #[test]
    fn lru_queries_scan_the_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let index = lru_index(&dir);
        let conn = index.read.lock().unwrap();
        let plan = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let details: Vec<String> = stmt
                .query_map(params, |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            details.join("\n")
        };
        for details in [plan(SELECT_LRU_FIRST, &[&2]), plan(SELECT_LRU_AFTER, &[&10, &"a", &2])] {
            assert!(
                details.contains("USING INDEX resources_lru") || details.contains("USING COVERING INDEX resources_lru"),
                "{details}"
            );
            assert!(!details.contains("TEMP B-TREE"), "{details}");
        }
        let details = plan("SELECT key FROM resources WHERE generation = ?1", &[&1]);
        assert!(details.contains("resources_generation"), "{details}");
    }

    #[test]
    fn reads_see_what_the_writer_committed_just_before() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(&dir.path().join("index.sqlite"));
        assert_eq!(index.load_resource("k").unwrap(), None);
        assert!(index.lru_batch(None, 10).unwrap().is_empty());
        index.write(|tx| upsert_resource(tx, &row("k"))).unwrap();
        assert_eq!(index.load_resource("k").unwrap(), Some(row("k")));
        assert_eq!(index.lru_batch(None, 10).unwrap().len(), 1);
        assert_eq!(index.totals().unwrap().bytes, 50);
        let grown = ResourceRow {
            ranges: "0-80".into(),
            bytes: 80,
            pinned: true,
            ..row("k")
        };
        index.write(|tx| upsert_resource(tx, &grown)).unwrap();
        assert_eq!(index.load_resource("k").unwrap(), Some(grown));
        assert!(index.lru_batch(None, 10).unwrap().is_empty());
        assert_eq!(index.totals().unwrap().pinned_bytes, 80);
        index.write(|tx| delete_resource(tx, "k")).unwrap();
        assert_eq!(index.load_resource("k").unwrap(), None);
        assert_eq!(index.load_resource("missing").unwrap(), None);
    }

    #[test]
    fn a_cold_row_is_deleted_only_at_its_generation() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(&dir.path().join("index.sqlite"));
        index
            .write(|tx| upsert_resource(tx, &row_with("k", 7, 1, false, 10)))
            .unwrap();
        assert_eq!(index.has_generation(7).unwrap().as_deref(), Some("k"));
        assert_eq!(index.has_generation(8).unwrap(), None);
        // A newer incarnation was recorded since the row was read.
        index
            .write(|tx| upsert_resource(tx, &row_with("k", 8, 2, false, 20)))
            .unwrap();
        assert!(!index.write(|tx| delete_resource_generation(tx, "k", 7)).unwrap());
        assert_eq!(index.has_generation(8).unwrap().as_deref(), Some("k"));
        assert!(!index.write(|tx| delete_resource_generation(tx, "other", 8)).unwrap());
        assert!(index.write(|tx| delete_resource_generation(tx, "k", 8)).unwrap());
        assert_eq!(index.load_resource("k").unwrap(), None);
        assert_eq!(index.has_generation(8).unwrap(), None);
        assert_eq!(index.totals().unwrap(), Totals::default());
    }

    #[test]
    fn newer_schema_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Index::open(&path, &mut no_legacy).err().unwrap();
        assert!(err.to_string().contains("newer than this build"), "{err}");
        let conn = Connection::open(&path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), 99);
    }

    /// Figures, not a check: opening a 100k-row index, and upgrading one from version 5.
    #[test]
    #[ignore = "timing by hand: cargo test --release -p embedded-server --lib timing_100k -- --ignored --nocapture"]
    fn timing_100k() {
        use std::time::Instant;
        const ROWS: i64 = 100_000;
        let key_of = |i: i64| {
            format!(
                "https://cdn.example.com/media/{:05}/segment-{i:06}.ts?sig=0123456789abcdef",
                i % 977
            )
        };
        let (_dir, path) = index_at_version(5);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("BEGIN; DELETE FROM resources;").unwrap();
        {
            let mut insert = conn
                .prepare(
                    "INSERT INTO resources (key, url, etag, size, mime, ranges, last_access, pinned, generation)
                     VALUES (?1, ?1, '\"etag\"', ?2, 'video/mp2t', ?3, ?4, ?5, ?6)",
                )
                .unwrap();
            for i in 0..ROWS {
                let key = key_of(i);
                let size = 100_000 + i * 37 % 900_000;
                let ranges = format!("0-{},{}-{}", size / 3, size / 2, size);
                // 1% of the rows from before version 5.
                let generation = (i % 100 != 0).then_some(1_700_000_000_000_000 + i);
                let params = params![
                    key,
                    size,
                    ranges,
                    (i * 7919) % 1_000_003,
                    (i % 10 == 0) as i64,
                    generation
                ];
                insert.execute(params).unwrap();
            }
        }
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);

        let start = Instant::now();
        let mut legacy = 0;
        let index = Index::open(&path, &mut |_, _| legacy += 1).unwrap();
        let upgrade = start.elapsed();
        println!("upgrade 5 -> 6 of {ROWS} rows ({legacy} legacy): {upgrade:?}");
        drop(index);

        for run in 0..3 {
            let start = Instant::now();
            let index = open(&path);
            let opened = start.elapsed();
            let totals = index.totals().unwrap();
            let with_totals = start.elapsed();
            let row = index.load_resource(&key_of(50_123)).unwrap();
            let with_row = start.elapsed();
            let batch = index.lru_batch(None, 64).unwrap();
            let next = index.lru_batch(batch.last().map(LruEntry::pos).as_ref(), 64).unwrap();
            let with_lru = start.elapsed();
            assert!(row.is_some() && next.len() == 64);
            println!(
                "run {run}: open {opened:?}, + totals {with_totals:?}, + load_resource {with_row:?}, \
                 + 2 lru batches of 64 {with_lru:?} ({totals:?})"
            );
        }
        let index = open(&path);
        let start = Instant::now();
        let all = index.all_resources().unwrap();
        println!("all_resources ({} rows): {:?}", all.len(), start.elapsed());
    }
}
