//! A cache written by the build before the lazy index (schema version 5, with a row from before
//! per-incarnation files still at version 4's naming) is carried forward on the first start: no
//! byte and no download is lost, and every byte is served from the cache with the backend gone.

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

#[test]
fn a_version_5_cache_keeps_every_byte_and_download_after_the_upgrade() {
    let mut origin = Origin::start(&[]);
    let (kept, played) = (seeded_bytes(0x61, LEN), seeded_bytes(0x62, LEN));
    origin.put_file("kept.bin", &kept);
    origin.put_file("played.bin", &played);
    let cache = tempfile::tempdir().expect("cache dir");
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
    let r = get(&server.stream_url(&origin, "kept.bin"));
    r.assert_complete("the download");
    assert_bytes_eq("the download", &r.body, &kept);
    let r = http(
        "GET",
        &server.stream_url(&origin, "played.bin"),
        &[("Range", &format!("bytes=0-{}", half - 1))],
    );
    assert_eq!(r.status, 206, "the cached half of the played resource: {}", r.text());
    assert_bytes_eq("the cached half", &r.body, &played[..half]);
    let stats = server.stats();
    assert_eq!(
        (json_u64(&stats, "cache_bytes"), json_u64(&stats, "pinned_bytes")),
        ((LEN + half) as u64, LEN as u64),
        "the totals count every byte: {stats}"
    );
    assert_eq!(json_u64(&stats, "upstream_fetches"), 0, "nothing fetched: {stats}");
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
    let conn = rusqlite::Connection::open(cache.path().join("index.sqlite")).expect("reopen index");
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 6);
}
