//! Caches written by older builds are carried forward on the first start: no byte and no download
//! is lost, and every byte is served from the cache with the backend gone. Version 5 (the build
//! before the lazy index, with a row from before per-incarnation files still at version 4's
//! naming) and version 6 (the build before downloads carried the app's `data`).

use std::path::Path;

use integration_tests::*;
use sha2::{Digest, Sha256};

const LEN: usize = 256 * KIB;

/// The schema steps of version 1 to 5, as the build before version 6 applied them.
const SCHEMA_V5_STEPS: [&str; 5] = [
    "CREATE TABLE resources (key TEXT PRIMARY KEY, url TEXT NOT NULL, track_id TEXT, etag TEXT,
         last_modified TEXT, size INTEGER, mime TEXT, ranges TEXT NOT NULL DEFAULT '',
         last_access INTEGER NOT NULL DEFAULT 0, pinned INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE tracks (id TEXT PRIMARY KEY, url TEXT NOT NULL, sha256 TEXT, size INTEGER, mime TEXT);",
    "CREATE TABLE downloads (id TEXT PRIMARY KEY, key TEXT NOT NULL, url TEXT NOT NULL, track_id TEXT,
         state TEXT NOT NULL, error TEXT, priority INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);",
    "ALTER TABLE downloads ADD COLUMN variant TEXT;
     ALTER TABLE downloads ADD COLUMN members TEXT NOT NULL DEFAULT '';",
    "ALTER TABLE resources ADD COLUMN location TEXT;",
    "ALTER TABLE resources ADD COLUMN generation INTEGER;",
];

/// The data file of `key` under `data`: named by its SHA-256 and, from version 5 on, the
/// generation in hex.
fn data_file(data: &Path, key: &str, generation: Option<u64>) -> std::path::PathBuf {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let name = match generation {
        Some(g) => format!("{digest}.{g:x}"),
        None => digest.clone(),
    };
    data.join(&digest[..2]).join(name)
}

/// With the backend gone, `kept_url` serves all of `kept` (a download) and `played.bin` its
/// cached first part `half`, from the upgraded cache; the totals count every byte.
#[track_caller]
fn assert_served_from_cache(server: &Server, origin: &Origin, kept_url: &str, kept: &[u8], half: &[u8]) {
    let r = get(kept_url);
    r.assert_complete("the download");
    assert_bytes_eq("the download", &r.body, kept);
    let r = http(
        "GET",
        &server.stream_url(origin, "played.bin"),
        &[("Range", &format!("bytes=0-{}", half.len() - 1))],
    );
    assert_eq!(r.status, 206, "the cached half of the played resource: {}", r.text());
    assert_bytes_eq("the cached half", &r.body, half);
    let stats = server.stats();
    assert_eq!(
        (json_u64(&stats, "cache_bytes"), json_u64(&stats, "pinned_bytes")),
        ((kept.len() + half.len()) as u64, kept.len() as u64),
        "the totals count every byte: {stats}"
    );
    assert_eq!(json_u64(&stats, "upstream_fetches"), 0, "nothing fetched: {stats}");
}

/// A backend serving `kept.bin` and `played.bin` (seeded from `seed` and `seed + 1`), their
/// bytes, and an empty cache directory.
fn backend_and_cache(seed: u64) -> (Origin, Vec<u8>, Vec<u8>, tempfile::TempDir) {
    let origin = Origin::start(&[]);
    let (kept, played) = (seeded_bytes(seed, LEN), seeded_bytes(seed + 1, LEN));
    origin.put_file("kept.bin", &kept);
    origin.put_file("played.bin", &played);
    (origin, kept, played, tempfile::tempdir().expect("cache dir"))
}

/// The index in `dir`, checked to be at this build's schema version (7).
fn upgraded_index(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("index.sqlite")).expect("reopen index");
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 7);
    conn
}

#[test]
fn a_version_5_cache_keeps_every_byte_and_download_after_the_upgrade() {
    let (mut origin, kept, played, cache) = backend_and_cache(0x61);
    let data = cache.path().join("data");
    let key = |name: &str| format!("http://{}/{name}", origin.host_port());
    let (kept_key, played_key) = (key("kept.bin"), key("played.bin"));
    let half = LEN / 2;
    {
        let conn = rusqlite::Connection::open(cache.path().join("index.sqlite")).expect("open index");
        conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
        for step in SCHEMA_V5_STEPS {
            conn.execute_batch(step).expect("schema step");
        }
        conn.pragma_update(None, "user_version", 5).expect("version");
        // A downloaded (pinned) resource with a generation, and a half-played one from before
        // per-incarnation files (no generation: its file has the legacy name).
        let insert = "INSERT INTO resources (key, url, etag, size, mime, ranges, last_access, pinned, generation)
                      VALUES (?1, ?1, ?2, ?3, 'application/octet-stream', ?4, ?5, ?6, ?7)";
        conn.execute(
            insert,
            rusqlite::params![
                kept_key,
                "\"k1\"",
                LEN as i64,
                format!("0-{LEN}"),
                1000,
                1,
                0x18c2_0000_0001_i64
            ],
        )
        .expect("insert kept");
        conn.execute(
            insert,
            rusqlite::params![
                played_key,
                "\"p1\"",
                LEN as i64,
                format!("0-{half}"),
                2000,
                0,
                None::<i64>
            ],
        )
        .expect("insert played");
        conn.execute(
            "INSERT INTO downloads (id, key, url, state, priority, created_ms, members)
             VALUES ('d1', ?1, ?1, 'completed', 0, 1, '')",
            rusqlite::params![kept_key],
        )
        .expect("insert download");
    }
    for (path, bytes) in [
        (data_file(&data, &kept_key, Some(0x18c2_0000_0001)), &kept[..]),
        (data_file(&data, &played_key, None), &played[..half]),
    ] {
        std::fs::create_dir_all(path.parent().expect("shard")).expect("shard dir");
        std::fs::write(&path, bytes).expect("data file");
    }

    // The backend is gone: whatever is served comes from the upgraded cache.
    origin.kill();
    let server = Server::start_with(Some(cache.path()), &[origin.origin_arg()], &[]);
    assert_served_from_cache(
        &server,
        &origin,
        &server.stream_url(&origin, "kept.bin"),
        &kept,
        &played[..half],
    );
    assert!(
        !data_file(&data, &played_key, None).exists(),
        "the legacy file took its generation's name before the upgrade committed"
    );
    // The download is still complete after the check of completed downloads (it runs after
    // start, and by now several requests have been answered).
    let d = server.api_get("downloads/d1");
    assert_eq!(json_str(&d, "state"), "completed", "{d}");
    assert!(json_bool(&d, "pinned"), "{d}");
    drop(server);
    upgraded_index(cache.path());
}

/// What version 6 added to version 5: row bytes, the totals row and its triggers, the indexes.
const SCHEMA_V6_STEP: &str = "
ALTER TABLE resources ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0), entries INTEGER NOT NULL, bytes INTEGER NOT NULL,
                     pinned_bytes INTEGER NOT NULL);
CREATE INDEX resources_lru ON resources(pinned, last_access, key);
CREATE UNIQUE INDEX resources_generation ON resources(generation);
INSERT INTO totals (id, entries, bytes, pinned_bytes) VALUES (0, 0, 0, 0);
CREATE TRIGGER resources_totals_insert AFTER INSERT ON resources BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.bytes,
        pinned_bytes = pinned_bytes + CASE WHEN NEW.pinned != 0 THEN NEW.bytes ELSE 0 END WHERE id = 0;
END;
CREATE TRIGGER resources_totals_delete AFTER DELETE ON resources BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.bytes,
        pinned_bytes = pinned_bytes - CASE WHEN OLD.pinned != 0 THEN OLD.bytes ELSE 0 END WHERE id = 0;
END;
CREATE TRIGGER resources_totals_update AFTER UPDATE ON resources BEGIN
    UPDATE totals SET bytes = bytes - OLD.bytes + NEW.bytes,
        pinned_bytes = pinned_bytes - CASE WHEN OLD.pinned != 0 THEN OLD.bytes ELSE 0 END
                                    + CASE WHEN NEW.pinned != 0 THEN NEW.bytes ELSE 0 END WHERE id = 0;
END;
";

#[test]
fn a_version_6_cache_keeps_every_byte_and_download_and_gains_download_data() {
    let (mut origin, kept, played, cache) = backend_and_cache(0x71);
    let data = cache.path().join("data");
    let kept_key = "track:kept".to_string();
    let played_key = format!("http://{}/played.bin", origin.host_port());
    let (kept_gen, played_gen) = (0x18c3_0000_0001_u64, 0x18c3_0000_0002_u64);
    let half = LEN / 2;
    {
        let conn = rusqlite::Connection::open(cache.path().join("index.sqlite")).expect("open index");
        conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
        for step in SCHEMA_V5_STEPS.iter().chain([&SCHEMA_V6_STEP]) {
            conn.execute_batch(step).expect("schema step");
        }
        conn.pragma_update(None, "user_version", 6).expect("version");
        let insert = "INSERT INTO resources (key, url, track_id, etag, size, mime, ranges, last_access, pinned,
                                             generation, bytes)
                      VALUES (?1, ?2, ?3, ?4, ?5, 'application/octet-stream', ?6, ?7, ?8, ?9, ?10)";
        let kept_url = format!("{}kept.bin", origin.url);
        conn.execute(
            insert,
            rusqlite::params![
                kept_key,
                kept_url,
                "kept",
                "\"k1\"",
                LEN as i64,
                format!("0-{LEN}"),
                1000,
                1,
                kept_gen as i64,
                LEN as i64
            ],
        )
        .expect("insert kept");
        conn.execute(
            insert,
            rusqlite::params![
                played_key,
                played_key,
                None::<String>,
                "\"p1\"",
                LEN as i64,
                format!("0-{half}"),
                2000,
                0,
                played_gen as i64,
                half as i64
            ],
        )
        .expect("insert played");
        conn.execute(
            "INSERT INTO tracks (id, url, size) VALUES ('kept', ?1, ?2)",
            rusqlite::params![kept_url, LEN as i64],
        )
        .expect("insert track");
        conn.execute(
            "INSERT INTO downloads (id, key, url, track_id, state, priority, created_ms, members)
             VALUES ('d1', ?1, ?2, 'kept', 'completed', 5, 1, '')",
            rusqlite::params![kept_key, kept_url],
        )
        .expect("insert download");
    }
    for (path, bytes) in [
        (data_file(&data, &kept_key, Some(kept_gen)), &kept[..]),
        (data_file(&data, &played_key, Some(played_gen)), &played[..half]),
    ] {
        std::fs::create_dir_all(path.parent().expect("shard")).expect("shard dir");
        std::fs::write(&path, bytes).expect("data file");
    }

    origin.kill();
    let server = Server::start_with(Some(cache.path()), &[origin.origin_arg()], &[]);
    assert_served_from_cache(&server, &origin, &server.track_url("kept"), &kept, &played[..half]);
    assert_eq!(json_u64(&server.stats(), "entries"), 2);
    let d = server.api_get("downloads/d1");
    assert_eq!(
        (json_str(&d, "state"), json_str(&d, "track"), json_u64(&d, "priority")),
        ("completed", "kept", 5),
        "{d}"
    );
    assert!(json_bool(&d, "pinned"), "{d}");
    assert_eq!(d["data"], serde_json::Value::Null, "no data before version 7: {d}");
    // The new column takes the app's data.
    let r = http_with_body("PATCH", &server.api_url("downloads/d1"), &[], r#"{"data": "from v7"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_str(&server.api_get("downloads/d1"), "data"), "from v7");
    drop(server);
    let conn = upgraded_index(cache.path());
    let stored: Option<String> = conn
        .query_row("SELECT data FROM downloads WHERE id = 'd1'", [], |r| r.get(0))
        .expect("the data column");
    assert_eq!(stored.as_deref(), Some("from v7"));
}
