//! Storage on a real phone (issue #15): the disk is small, shared and not ours. Android deletes
//! files in `cacheDir` when storage runs low and "Clear cache" empties it while the app runs; the
//! player must not notice, and a download must never be claimed complete when its bytes are gone.
//!
//! Everything here happens to the real files of a running `streamer serve`: data files
//! deleted or cut short under it, the whole cache directory removed, index included; a real
//! 6 MiB tmpfs that fills up (room is made by evicting, then bytes are passed through from the
//! backend unstored, downloads stay intact), a data directory made read-only under it. Every
//! body is compared byte for byte with the truth.

use std::path::{Path, PathBuf};
use std::time::Duration;

use integration_tests::*;

const LEN: usize = 900_001;

/// The data files under `dir/data` holding at least `len` bytes.
fn data_files_of(dir: &Path, len: usize) -> Vec<PathBuf> {
    files_under(&dir.join("data"))
        .into_iter()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= len as u64))
        .collect()
}

/// Rows of the index recording `len` bytes of a resource (what a sync has made durable).
fn recorded_rows(cache: &Path, len: usize) -> usize {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(cache.join("index.sqlite"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row(
        "SELECT count(*) FROM resources WHERE ranges = ?1",
        [format!("0-{len}")],
        |r| r.get::<_, i64>(0),
    )
    .map_or(0, |n| n as usize)
}

fn start(cache: &Path, origin: &Origin, extra: &[&str]) -> Server {
    let mut args = vec!["--sync-interval-ms", "50"];
    args.extend_from_slice(extra);
    Server::start_with(Some(cache), &[origin.origin_arg()], &args)
}

/// A resource of the origin: its name there and its bytes.
type Track = (String, Vec<u8>);

/// `n` resources of `len` seeded bytes each, put on the origin as `PREFIX-I.bin`.
fn put_tracks(origin: &Origin, prefix: &str, seed: u64, n: u64, len: usize) -> Vec<Track> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}-{i}.bin");
            let truth = seeded_bytes(seed + i, len);
            origin.put_file(&name, &truth);
            (name, truth)
        })
        .collect()
}

/// Three tracks played whole, then synced.
fn three_played(server: &Server, origin: &Origin, cache: &Path, seed: u64) -> Vec<Track> {
    let tracks = put_tracks(origin, &format!("t{seed}"), seed, 3, LEN);
    plays_whole("first play", server, origin, &tracks);
    wait_until(Duration::from_secs(10), "the three tracks are recorded", || {
        recorded_rows(cache, LEN) == 3
    });
    tracks
}

/// Plays each track once and checks that every body is whole and right, in the same response.
fn plays_whole(what: &str, server: &Server, origin: &Origin, tracks: &[Track]) {
    for (name, truth) in tracks {
        let r = curl(&[], &server.stream_url(origin, name));
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        r.assert_complete(what);
        assert_bytes_eq(what, &r.body, truth);
    }
}

#[test]
fn deleted_or_shortened_data_files_are_fetched_again_within_the_response() {
    let origin = Origin::start(&[]);
    let root = tempfile::tempdir().expect("tempdir");
    let cache = root.path().join("cache");
    let server = start(&cache, &origin, &[]);
    let tracks = three_played(&server, &origin, &cache, 0x15A0);

    // The system deletes the data files; the index stays.
    let files = data_files_of(&cache, LEN);
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        std::fs::remove_file(f).expect("delete a data file");
    }
    let before = origin.log().len();
    plays_whole("the first play after the files were deleted", &server, &origin, &tracks);
    assert!(
        origin.log().len() >= before + 3,
        "the bytes came from the backend again"
    );

    // Files cut short (a file system that lost its tail).
    wait_until(Duration::from_secs(10), "the tracks are recorded again", || {
        recorded_rows(&cache, LEN) == 3 && data_files_of(&cache, LEN).len() == 3
    });
    for f in data_files_of(&cache, LEN) {
        let file = std::fs::OpenOptions::new().write(true).open(&f).expect("open");
        file.set_len(LEN as u64 / 3).expect("cut the file short");
    }
    plays_whole(
        "the first play after the files were cut short",
        &server,
        &origin,
        &tracks,
    );

    // And once more, with nothing resident: the rows are loaded from the index.
    drop(server);
    let server = start(&cache, &origin, &["--resident-resources", "0"]);
    plays_whole("plays after a restart", &server, &origin, &tracks);
    wait_until(Duration::from_secs(10), "the tracks are recorded", || {
        recorded_rows(&cache, LEN) == 3
    });
    for f in data_files_of(&cache, LEN) {
        std::fs::remove_file(f).expect("delete a data file");
    }
    plays_whole(
        "the first play of cold rows whose files were deleted",
        &server,
        &origin,
        &tracks,
    );
}

#[test]
fn removing_the_whole_cache_directory_while_running_recovers() {
    let origin = Origin::start(&[]);
    let root = tempfile::tempdir().expect("tempdir");
    let cache = root.path().join("cache");
    let mut server = start(&cache, &origin, &[]);
    let mut tracks = three_played(&server, &origin, &cache, 0x15B0);

    // "Clear cache": the directory goes, index included, while the server runs.
    std::fs::remove_dir_all(&cache).expect("remove the cache dir");
    plays_whole(
        "the first play after the cache dir was removed",
        &server,
        &origin,
        &tracks,
    );
    assert_eq!(data_files_of(&cache, LEN).len(), 3, "the files are back");

    // A download works in that state, and the server starts again over what is left.
    let kept = seeded_bytes(0x15BF, LEN);
    origin.put_file("kept.bin", &kept);
    server.download_url(&format!("{}kept.bin", origin.url));
    let r = get(&server.stream_url(&origin, "kept.bin"));
    r.assert_complete("the download");
    assert_bytes_eq("the download", &r.body, &kept);
    server.proc().terminate(Duration::from_secs(10));
    let server = start(&cache, &origin, &[]);
    tracks.push(("kept.bin".into(), kept));
    plays_whole("plays after a restart", &server, &origin, &tracks);
}

#[test]
fn a_download_whose_files_vanished_is_not_reported_complete() {
    let origin = Origin::start(&[]);
    let root = tempfile::tempdir().expect("tempdir");
    let cache = root.path().join("cache");
    let server = start(&cache, &origin, &[]);
    let kept = seeded_bytes(0x15C0, LEN);
    origin.put_file("kept.bin", &kept);
    let id = server.download_url(&format!("{}kept.bin", origin.url));
    wait_until(Duration::from_secs(10), "the download is recorded", || {
        recorded_rows(&cache, LEN) == 1
    });

    // The backend fails for a while, so a download queued again cannot complete at once.
    origin.set_faults(&Faults {
        fail_first: 1000,
        ..Faults::default()
    });
    for f in data_files_of(&cache, LEN) {
        std::fs::remove_file(f).expect("delete the download's file");
    }
    let d = server.api_get(&format!("downloads/{id}"));
    assert_ne!(
        json_str(&d, "state"),
        "completed",
        "a download whose file vanished is not complete: {d}"
    );
    let listed = server.api_get("downloads");
    let entry = listed
        .as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == id.as_str()))
        .unwrap_or_else(|| panic!("the download is listed: {listed}"));
    assert_ne!(json_str(entry, "state"), "completed", "{entry}");

    origin.set_faults(&Faults::default());
    server.wait_download_completed(&id);
    origin.clear_log();
    let r = get(&server.stream_url(&origin, "kept.bin"));
    r.assert_complete("the download fetched again");
    assert_bytes_eq("the download fetched again", &r.body, &kept);
    assert!(
        origin.log().is_empty(),
        "the download holds every byte again: {:?}",
        origin.log()
    );
}

const TRACK: usize = 4_000_000;
/// The phone's free storage in the tests that fill it.
const DISK: &str = "6m";

#[test]
fn a_full_disk_makes_room_by_evicting() {
    let disk = Tmpfs::mount(DISK);
    let origin = Origin::start(&[]);
    // The limit never triggers: only the disk is small.
    let server = start(disk.path(), &origin, &["--max-cache-bytes", "100000000"]);
    let tracks = put_tracks(&origin, "full", 0x15D0, 3, TRACK);
    plays_whole("tracks played in turn on a full disk", &server, &origin, &tracks);
    plays_whole("the same tracks again", &server, &origin, &tracks);
    let stats = server.stats();
    assert!(json_u64(&stats, "evictions") >= 2, "room was made by evicting: {stats}");
    assert!(!json_bool(&stats, "storage_full"), "{stats}");
    assert_eq!(json_u64(&stats, "bytes_passed_through"), 0, "{stats}");
}

#[test]
fn a_full_disk_with_nothing_to_evict_passes_through_and_keeps_downloads() {
    let disk = Tmpfs::mount(DISK);
    let origin = Origin::start(&[]);
    let mut server = start(disk.path(), &origin, &["--max-cache-bytes", "100000000"]);
    let kept = seeded_bytes(0x15E0, TRACK);
    origin.put_file("kept.bin", &kept);
    let id = server.download_url(&format!("{}kept.bin", origin.url));

    // The download fills most of the disk and cannot be evicted: the next tracks do not fit.
    let tracks = put_tracks(&origin, "passed", 0x15E1, 2, TRACK);
    plays_whole("tracks passed through on a full disk", &server, &origin, &tracks);
    let stats = server.stats();
    assert!(json_bool(&stats, "storage_full"), "{stats}");
    assert!(json_u64(&stats, "storage_write_errors") >= 1, "{stats}");
    assert!(
        json_u64(&stats, "bytes_passed_through") >= TRACK as u64 / 2,
        "what did not fit came straight from the backend: {stats}"
    );
    let metrics = http("GET", &format!("{}metrics", server.base), &[]).text();
    assert!(metrics.lines().any(|l| l == "streamer_storage_full 1"), "{metrics}");
    let dashboard = http("GET", &server.base, &[]).text();
    assert!(dashboard.contains("storage full"), "the dashboard can say so");

    // A new download in that state fails, and says why.
    let other = seeded_bytes(0x15EF, TRACK);
    origin.put_file("other.bin", &other);
    let body = format!("{{\"url\": \"{}other.bin\"}}", origin.url);
    let r = http_with_body("POST", &server.api_url("downloads"), &[], &body);
    let error = if r.status == 202 {
        let other_id = json_str(&r.json(), "id").to_string();
        let mut error = String::new();
        wait_until(Duration::from_secs(30), "the new download fails", || {
            let d = server.api_get(&format!("downloads/{other_id}"));
            assert_ne!(json_str(&d, "state"), "completed", "it cannot fit: {d}");
            error = d["error"].as_str().unwrap_or_default().to_string();
            json_str(&d, "state") == "failed"
        });
        error
    } else {
        assert_eq!(r.status, 507, "{}", r.text());
        r.text()
    };
    assert!(error.contains("no space"), "a clear reason: {error}");

    // The completed download is intact, now and after a restart, served without the backend.
    let check_kept = |server: &Server| {
        origin.clear_log();
        let r = get(&server.stream_url(&origin, "kept.bin"));
        r.assert_complete("the download");
        assert_bytes_eq("the download", &r.body, &kept);
        assert!(origin.log().is_empty(), "served from the disk: {:?}", origin.log());
        let d = server.api_get(&format!("downloads/{id}"));
        assert_eq!(json_str(&d, "state"), "completed", "{d}");
    };
    check_kept(&server);
    server.proc().terminate(Duration::from_secs(10));
    let server = start(disk.path(), &origin, &["--max-cache-bytes", "100000000"]);
    check_kept(&server);
    let stats = server.stats();
    assert!(json_u64(&stats, "pinned_bytes") == TRACK as u64, "{stats}");
}

#[test]
fn a_read_only_data_directory_passes_through() {
    let disk = Tmpfs::mount(DISK);
    let origin = Origin::start(&[]);
    let server = start(disk.path(), &origin, &[]);
    let tracks = put_tracks(&origin, "ro", 0x15F0, 2, LEN);
    // The data directory made read-only under the running server (a bind mount of itself).
    let data = disk.path().join("data");
    let status = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&data)
        .arg(&data)
        .status()
        .expect("run mount");
    assert!(status.success(), "cannot bind-mount {}", data.display());
    let status = std::process::Command::new("mount")
        .args(["-o", "remount,ro,bind"])
        .arg(&data)
        .status()
        .expect("run mount");
    assert!(status.success(), "cannot make {} read-only", data.display());
    plays_whole("plays from a read-only data directory", &server, &origin, &tracks[..1]);
    let stats = server.stats();
    assert!(json_bool(&stats, "storage_full"), "{stats}");
    assert!(json_u64(&stats, "bytes_passed_through") >= LEN as u64, "{stats}");

    // Writable again: bytes are stored again, and the state says so.
    let status = std::process::Command::new("umount")
        .arg(&data)
        .status()
        .expect("run umount");
    assert!(status.success(), "cannot unmount the bind mount");
    plays_whole(
        "plays once the directory is writable again",
        &server,
        &origin,
        &tracks[1..],
    );
    assert!(!json_bool(&server.stats(), "storage_full"));
    origin.clear_log();
    plays_whole("the stored track again", &server, &origin, &tracks[1..]);
    assert!(origin.log().is_empty(), "served from the cache: {:?}", origin.log());
}

/// How far over the limit the cache may be at any moment: a few write chunks in flight.
const CHUNKS: u64 = 256 * KIB as u64;

#[test]
fn the_limit_holds_at_every_moment() {
    const LIMIT: u64 = 8 * MIB as u64;
    let origin = Origin::start(&[]);
    let limit = LIMIT.to_string();
    // The default sync interval: eviction after a batch alone would overshoot for a second.
    let server = Server::start_with(None, &[origin.origin_arg()], &["--max-cache-bytes", &limit]);
    let pinned = seeded_bytes(0x1600, 2 * MIB);
    origin.put_file("pinned.bin", &pinned);
    server.download_url(&format!("{}pinned.bin", origin.url));
    let tracks = put_tracks(&origin, "limit", 0x1610, 10, MIB);
    let mut highest = 0;
    for (name, truth) in &tracks {
        let r = get(&server.stream_url(&origin, name));
        r.assert_complete(name);
        assert_bytes_eq(name, &r.body, truth);
        let stats = server.stats();
        highest = highest.max(json_u64(&stats, "cache_bytes"));
        assert!(
            json_u64(&stats, "cache_bytes") <= LIMIT + CHUNKS,
            "the limit holds right after a read: {stats}"
        );
        assert_eq!(json_u64(&stats, "pinned_bytes"), 2 * MIB as u64, "{stats}");
    }
    assert!(highest > LIMIT / 2, "the cache was used: {highest}");
    assert_eq!(json_u64(&server.stats(), "bytes_passed_through"), 0);
}

#[test]
fn a_body_that_cannot_fit_is_passed_through() {
    const LIMIT: u64 = 3 * MIB as u64;
    let origin = Origin::start(&[]);
    let limit = LIMIT.to_string();
    let server = Server::start_with(None, &[origin.origin_arg()], &["--max-cache-bytes", &limit]);
    let pinned = seeded_bytes(0x1620, 2 * MIB);
    origin.put_file("pinned.bin", &pinned);
    server.download_url(&format!("{}pinned.bin", origin.url));

    // 4 MiB with 1 MiB of room: what does not fit comes straight from the backend.
    let tracks = put_tracks(&origin, "big", 0x1630, 1, 4 * MIB);
    plays_whole("a body larger than the room left", &server, &origin, &tracks);
    let stats = server.stats();
    assert!(json_u64(&stats, "cache_bytes") <= LIMIT + CHUNKS, "{stats}");
    assert!(
        json_u64(&stats, "bytes_passed_through") >= 2 * MIB as u64,
        "the rest was passed through: {stats}"
    );
    assert!(!json_bool(&stats, "storage_full"), "the disk is fine: {stats}");
    plays_whole("the same body again", &server, &origin, &tracks);
    let stats = server.stats();
    assert!(json_u64(&stats, "cache_bytes") <= LIMIT + CHUNKS, "{stats}");
    assert_eq!(json_u64(&stats, "pinned_bytes"), 2 * MIB as u64, "{stats}");
}

#[test]
fn a_client_that_stops_reading_does_not_make_the_server_fetch_everything() {
    const BIG: usize = 64 * MIB;
    // The fill's bound past its reader, plus the socket buffers between the reader and a client
    // that reads nothing: far less than the resource.
    const BOUND: u64 = 16 * MIB as u64;
    let origin = Origin::start(&[]);
    let tracks = put_tracks(&origin, "long", 0x1640, 1, BIG);
    let server = Server::start_with(None, &[origin.origin_arg()], &[]);
    let held = SlowReader::open(&server.stream_url(&origin, &tracks[0].0));
    assert_eq!(held.status, 200);
    let cached = || json_u64(&server.stats(), "cache_bytes");
    wait_until(Duration::from_secs(10), "the fill runs", || cached() >= MIB as u64);
    // Unbounded, the fill would have fetched all 64 MiB from the loopback origin in well under a
    // second; the expiry of this wait is the expected outcome.
    assert!(
        !poll_until(Duration::from_secs(3), || cached() > BOUND),
        "the fill ran far past a client that reads nothing: {}",
        server.stats()
    );
    // Reading on, the client gets every byte.
    let body = held.read_rest();
    assert_bytes_eq("the held response read to the end", &body, &tracks[0].1);
}
