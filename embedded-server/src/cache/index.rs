//! The SQLite index: resources with their recorded byte ranges and validators, and the catalog.
//!
//! One connection behind a mutex is the single writer (SQLite allows only one anyway); every call
//! is blocking and is made from `spawn_blocking` or at start-up. The hot path never comes here:
//! the cache loads the index into memory at start and writes back in batches. The schema is a
//! versioned constant; `upgrade_from` carries older files forward (`PRAGMA user_version`).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::error::Error;

/// The schema version this build writes.
const SCHEMA_VERSION: u32 = 5;

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
    /// Last access, milliseconds since the Unix epoch.
    pub(crate) last_access_ms: u64,
    /// Pinned by an offline download.
    pub(crate) pinned: bool,
    /// The incarnation the recorded ranges belong to, which names the data file; `None` for a
    /// row written by a build from before schema version 5 (its file has no suffix).
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

/// The SQLite index of one cache directory.
pub(crate) struct Index {
    conn: Mutex<Connection>,
}

impl Index {
    /// Opens (creating or upgrading) the index at `path`, in WAL mode.
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode NORMAL never corrupts the database; a power cut may lose the last batch of
        // recorded ranges, which only means those bytes are fetched again.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        upgrade_from(&conn, version)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// Runs `f` in one transaction on the writer connection and commits it.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Every resource row.
    pub(crate) fn load_resources(&self) -> Result<Vec<ResourceRow>, Error> {
        self.write(|tx| {
            let mut stmt = tx.prepare(
                "SELECT key, url, track_id, etag, last_modified, size, mime, ranges, last_access, pinned, location,
                        generation
                 FROM resources",
            )?;
            let rows = stmt
                .query_map([], |r| {
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
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
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

/// Inserts or replaces a resource row inside a transaction.
pub(crate) fn upsert_resource(tx: &Transaction<'_>, row: &ResourceRow) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO resources (key, url, track_id, etag, last_modified, size, mime, ranges, last_access, pinned,
             location, generation)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT(key) DO UPDATE SET url = ?2, track_id = ?3, etag = ?4, last_modified = ?5,
             size = ?6, mime = ?7, ranges = ?8, last_access = ?9, pinned = ?10, location = ?11,
             generation = ?12",
        params![
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
            row.generation.map(|g| g as i64)
        ],
    )?;
    Ok(())
}

/// Deletes a resource row inside a transaction.
pub(crate) fn delete_resource(tx: &Transaction<'_>, key: &str) -> Result<(), Error> {
    tx.execute("DELETE FROM resources WHERE key = ?1", params![key])?;
    Ok(())
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
        "SELECT id, key, url, track_id, state, error, priority, created_ms, variant, members FROM downloads",
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
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Inserts or replaces a download row.
pub(crate) fn upsert_download(tx: &Transaction<'_>, row: &DownloadRow) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO downloads (id, key, url, track_id, state, error, priority, created_ms, variant, members)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(id) DO UPDATE SET key = ?2, url = ?3, track_id = ?4, state = ?5, error = ?6,
             priority = ?7, created_ms = ?8, variant = ?9, members = ?10",
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
            row.members.join("\n")
        ],
    )?;
    Ok(())
}

/// Deletes a download row.
pub(crate) fn delete_download(tx: &Transaction<'_>, id: &str) -> Result<(), Error> {
    tx.execute("DELETE FROM downloads WHERE id = ?1", params![id])?;
    Ok(())
}

/// Brings a database at `version` up to `SCHEMA_VERSION`, one step at a time.
fn upgrade_from(conn: &Connection, version: u32) -> Result<(), Error> {
    match version {
        0..=4 => {
            let steps = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5];
            for step in &steps[version as usize..] {
                conn.execute_batch(step)?;
            }
        }
        SCHEMA_VERSION => return Ok(()),
        newer => {
            return Err(Error::Storage(format!(
                "the cache index has schema version {newer}, newer than this build's {SCHEMA_VERSION}; \
                 use a newer build or another cache directory"
            )))
        }
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            last_access_ms: 7,
            pinned: false,
            generation: Some(0x18c2_0000_0001),
        }
    }

    #[test]
    fn fresh_database_gets_current_schema_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let index = Index::open(&path).unwrap();
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
        let index = Index::open(&path).unwrap();
        assert_eq!(index.load_resources().unwrap(), vec![row("k")]);
        assert_eq!(index.load_tracks().unwrap()[0].size, Some(3));
        index.write(|tx| delete_resource(tx, "k")).unwrap();
        assert!(index.load_resources().unwrap().is_empty());
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
        let index = Index::open(&path).unwrap();
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
        };
        index.write(|tx| upsert_download(tx, &download)).unwrap();
        assert_eq!(index.write(load_downloads).unwrap(), vec![download]);
        index.write(|tx| delete_download(tx, "d1")).unwrap();
        assert!(index.write(load_downloads).unwrap().is_empty());
        index.write(|tx| upsert_resource(tx, &row("k"))).unwrap();
        assert_eq!(index.load_resources().unwrap(), vec![row("k")]);
    }

    /// An index file at schema `version` (the steps up to it, by this build's own constants)
    /// holding one resource row `k` with ranges `0-9`.
    fn index_at_version(version: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let conn = Connection::open(&path).unwrap();
        for schema in &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4][..version] {
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
        let index = Index::open(&path).unwrap();
        let rows = index.load_resources().unwrap();
        assert_eq!((rows[0].key.as_str(), rows[0].location.as_deref()), ("k", None));
        // A row from before per-incarnation files names no generation (its file has no suffix).
        assert_eq!(rows[0].generation, None);
        index.write(|tx| upsert_resource(tx, &row("k"))).unwrap();
        assert_eq!(index.load_resources().unwrap(), vec![row("k")]);
    }

    #[test]
    fn version_4_rows_keep_their_ranges_and_gain_a_generation() {
        let (_dir, path) = index_at_version(4);
        let index = Index::open(&path).unwrap();
        let rows = index.load_resources().unwrap();
        assert_eq!((rows[0].ranges.as_str(), rows[0].generation), ("0-9", None));
        index.write(|tx| upsert_resource(tx, &row("k"))).unwrap();
        assert_eq!(index.load_resources().unwrap(), vec![row("k")]);
    }

    #[test]
    fn newer_schema_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Index::open(&path).err().unwrap();
        assert!(err.to_string().contains("newer than this build"), "{err}");
    }
}
