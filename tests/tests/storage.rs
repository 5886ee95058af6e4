//! Storage on a real phone (issue #15): the disk is small, shared and not ours. Android deletes
//! files in `cacheDir` when storage runs low and "Clear cache" empties it while the app runs; the
//! player must not notice, and a download must never be claimed complete when its bytes are gone.
//!
//! Everything here happens to the real files of a running `streamer serve`: data files
//! deleted or cut short under it, the whole cache directory removed, index included. Every body
//! is compared byte for byte with the truth.

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

/// Three tracks played whole, then synced.
fn three_played(server: &Server, origin: &Origin, cache: &Path, seed: u64) -> Vec<Track> {
    let tracks: Vec<Track> = (0..3)
        .map(|i| {
            let truth = seeded_bytes(seed + i, LEN);
            let name = format!("t{seed}-{i}.bin");
            origin.put_file(&name, &truth);
            (name, truth)
        })
        .collect();
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
