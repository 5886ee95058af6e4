//! Downloads apart from the cache (`--downloads-dir`, Android's `filesDir` beside `cacheDir`):
//! evictable bytes live in the cache directory, a download's bytes move to the downloads
//! directory when it completes, the index (and so the download queue) lives there too, and
//! emptying the cache directory entirely — what Android's "Clear cache" does — loses nothing
//! downloaded: offline, downloads play byte-exact and what was only cached is a clean 502. A
//! cache file removed while the server runs is fetched again within the next response.

use std::path::{Path, PathBuf};
use std::time::Duration;

use integration_tests::*;

const LEN: usize = 700_000;

/// Data files (non-empty) under `dir/data`.
fn data_files(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("data"))
        .into_iter()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .collect()
}

fn start(cache: &Path, downloads: &Path, origin: &Origin) -> Server {
    let downloads = downloads.display().to_string();
    Server::start_with(Some(cache), &[origin.origin_arg()], &["--downloads-dir", &downloads])
}

#[test]
fn downloads_survive_an_emptied_cache_directory() {
    let mut origin = Origin::start(&[]);
    let played = seeded_bytes(0xD1, LEN);
    let kept = seeded_bytes(0xD2, LEN);
    origin.put_file("played.bin", &played);
    origin.put_file("kept.bin", &kept);
    let root = tempfile::tempdir().expect("tempdir");
    let (cache, downloads) = (root.path().join("cache"), root.path().join("files"));
    let mut server = start(&cache, &downloads, &origin);

    let played_url = server.stream_url(&origin, "played.bin");
    let r = get(&played_url);
    r.assert_complete("played");
    assert_bytes_eq("played", &r.body, &played);
    let id = server.download_url(&format!("{}kept.bin", origin.url));
    // The file moves when the download's last fill has ended, which may be just after.
    wait_until(Duration::from_secs(10), "one file in each directory", || {
        data_files(&cache).len() == 1 && data_files(&downloads).len() == 1
    });
    let in_downloads = data_files(&downloads);
    assert_eq!(
        std::fs::read(&in_downloads[0]).expect("read"),
        kept,
        "the pinned file holds the download"
    );
    assert!(
        downloads.join("index.sqlite").is_file(),
        "the index lives with the downloads"
    );
    assert!(!cache.join("index.sqlite").exists(), "no index in the cache dir");

    // "Clear cache": the whole cache directory goes while the app is not running.
    server.proc().terminate(Duration::from_secs(10));
    std::fs::remove_dir_all(&cache).expect("empty the cache dir");
    origin.kill();
    let server = start(&cache, &downloads, &origin);
    let r = get(&server.stream_url(&origin, "kept.bin"));
    assert_eq!(r.status, 200, "the download offline: {}", r.text());
    r.assert_complete("the download offline");
    assert_bytes_eq("the download offline", &r.body, &kept);
    get(&server.stream_url(&origin, "played.bin")).assert_json_error("a cleared cache entry offline", 502);
    let d = server.api_get(&format!("downloads/{id}"));
    assert_eq!(json_str(&d, "state"), "completed", "{d}");

    let r = http("DELETE", &server.api_url(&format!("downloads/{id}")), &[]);
    assert!(r.status < 300, "DELETE: {} {}", r.status, r.text());
    wait_until(Duration::from_secs(10), "the download's file is gone", || {
        data_files(&downloads).is_empty()
    });
}

#[test]
fn a_single_directory_layout_is_carried_over() {
    let origin = Origin::start(&[]);
    let played = seeded_bytes(0xD3, LEN);
    let kept = seeded_bytes(0xD4, LEN);
    origin.put_file("played.bin", &played);
    origin.put_file("kept.bin", &kept);
    let root = tempfile::tempdir().expect("tempdir");
    // Before: everything in one directory (the layout without --downloads-dir).
    let old = root.path().join("files");
    let mut server = Server::start_with(Some(&old), &[origin.origin_arg()], &[]);
    let played_url = server.stream_url(&origin, "played.bin");
    get(&played_url).assert_complete("played");
    server.download_url(&format!("{}kept.bin", origin.url));
    server.proc().terminate(Duration::from_secs(10));
    assert_eq!(data_files(&old).len(), 2);

    // After: the same directory holds the downloads; what is only cached moves to the cache (in
    // the background once the server serves).
    let cache = root.path().join("cache");
    let server = start(&cache, &old, &origin);
    wait_until(Duration::from_secs(10), "the cached file moved", || {
        data_files(&cache).len() == 1
    });
    assert_eq!(
        data_files(&old).len(),
        1,
        "only the download stays: {:?}",
        data_files(&old)
    );
    assert_eq!(std::fs::read(&data_files(&old)[0]).expect("read"), kept);
    assert_eq!(data_files(&cache).len(), 1, "the played file moved to the cache dir");
    let hits = json_u64(&server.stats(), "hits");
    for (name, truth) in [("played.bin", &played), ("kept.bin", &kept)] {
        let r = get(&server.stream_url(&origin, name));
        r.assert_complete(name);
        assert_bytes_eq(name, &r.body, truth);
    }
    assert_eq!(
        json_u64(&server.stats(), "hits"),
        hits + 2,
        "both served from the cache"
    );
}

#[test]
fn a_cache_file_removed_while_running_is_fetched_again() {
    let origin = Origin::start(&[]);
    let truth = seeded_bytes(0xD5, LEN);
    origin.put_file("gone.bin", &truth);
    let root = tempfile::tempdir().expect("tempdir");
    let (cache, downloads) = (root.path().join("cache"), root.path().join("files"));
    let server = start(&cache, &downloads, &origin);
    let url = server.stream_url(&origin, "gone.bin");
    get(&url).assert_complete("first read");
    assert_eq!(data_files(&cache).len(), 1);

    // The system empties the cache directory while the server runs: the next response fetches
    // the vanished bytes again, and the player sees no error.
    std::fs::remove_dir_all(cache.join("data")).expect("empty the cache dir");
    let before = origin.log().len();
    let r = get(&url);
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_complete("after the file vanished");
    assert_bytes_eq("after the file vanished", &r.body, &truth);
    assert!(origin.log().len() > before, "the bytes came from the backend again");
    assert_eq!(data_files(&cache).len(), 1, "the file is back in the cache dir");
}

#[test]
fn a_downloads_dir_added_to_an_existing_cache_takes_its_index_and_downloads() {
    let mut origin = Origin::start(&[]);
    let played = seeded_bytes(0xD6, LEN);
    let kept = seeded_bytes(0xD7, LEN);
    origin.put_file("played.bin", &played);
    origin.put_file("kept.bin", &kept);
    let root = tempfile::tempdir().expect("tempdir");
    let cache = root.path().join("cache");
    let mut server = Server::start_with(Some(&cache), &[origin.origin_arg()], &[]);
    get(&server.stream_url(&origin, "played.bin")).assert_complete("played");
    let id = server.download_url(&format!("{}kept.bin", origin.url));
    server.proc().terminate(Duration::from_secs(10));
    assert!(cache.join("index.sqlite").is_file());

    let downloads = root.path().join("files");
    origin.kill();
    let server = start(&cache, &downloads, &origin);
    assert!(
        downloads.join("index.sqlite").is_file(),
        "the index moved to the downloads dir"
    );
    assert!(!cache.join("index.sqlite").exists(), "no index left in the cache dir");
    wait_until(Duration::from_secs(10), "the download's file moved", || {
        data_files(&downloads).len() == 1
    });
    assert_eq!(data_files(&downloads).len(), 1, "the download moved");
    assert_eq!(data_files(&cache).len(), 1, "the played file stayed");
    assert_eq!(
        json_str(&server.api_get(&format!("downloads/{id}")), "state"),
        "completed"
    );
    for (name, truth) in [("played.bin", &played), ("kept.bin", &kept)] {
        let r = get(&server.stream_url(&origin, name));
        r.assert_complete(name);
        assert_bytes_eq(name, &r.body, truth);
    }
}

/// The system empties the cache directory while a resource is partly cached; a seek then starts
/// a fill, which must not create an empty file under the bytes still claimed (its holes would
/// read as cached zeros, then be recorded as durable): the earlier range is served right, also
/// after a restart.
#[test]
fn a_seek_after_the_cache_dir_was_emptied_never_serves_holes() {
    const BIG: usize = 4 * MIB;
    let origin = Origin::start(&["--throttle", "2000000"]);
    let truth = seeded_bytes(0xD8, BIG);
    origin.put_file("big.bin", &truth);
    let root = tempfile::tempdir().expect("tempdir");
    let (cache, downloads) = (root.path().join("cache"), root.path().join("files"));
    let mut server = start(&cache, &downloads, &origin);
    let url = server.stream_url(&origin, "big.bin");
    let head = get_range(&url, "bytes=0-262143");
    assert_eq!(head.status, 206);
    assert_bytes_eq("first range", &head.body, &truth[..262_144]);

    std::fs::remove_dir_all(cache.join("data")).expect("empty the cache dir");
    let seek = get_range(&url, "bytes=3145728-3211263");
    assert_eq!(seek.status, 206, "{}", seek.text());
    assert_bytes_eq("seek", &seek.body, &truth[3_145_728..3_211_264]);
    let again = get_range(&url, "bytes=0-262143");
    if again.status == 206 && again.body_error.is_none() {
        assert_bytes_eq("first range again", &again.body, &truth[..262_144]);
    }
    let again = get_range(&url, "bytes=0-262143");
    assert_eq!(again.status, 206);
    again.assert_complete("first range, fetched again");
    assert_bytes_eq("first range, fetched again", &again.body, &truth[..262_144]);

    server.proc().terminate(Duration::from_secs(10));
    let server = start(&cache, &downloads, &origin);
    let r = get_range(&server.stream_url(&origin, "big.bin"), "bytes=0-262143");
    assert_eq!(r.status, 206);
    r.assert_complete("after the restart");
    assert_bytes_eq("after the restart", &r.body, &truth[..262_144]);
}

/// Two indexes (the server ran with and without `--downloads-dir`): starting refuses with a clear
/// message instead of picking one and deleting the other's files as strays.
#[test]
fn two_indexes_refuse_to_start() {
    let origin = Origin::start(&[]);
    origin.put_file("x.bin", &seeded_bytes(0xD9, 1000));
    let root = tempfile::tempdir().expect("tempdir");
    let (cache, downloads) = (root.path().join("cache"), root.path().join("files"));
    let mut server = start(&cache, &downloads, &origin);
    get(&server.stream_url(&origin, "x.bin")).assert_complete("with --downloads-dir");
    server.proc().terminate(Duration::from_secs(10));
    let mut server = Server::start_with(Some(&cache), &[origin.origin_arg()], &[]);
    get(&server.stream_url(&origin, "x.bin")).assert_complete("without it");
    server.proc().terminate(Duration::from_secs(10));

    let mut child = std::process::Command::new(streamer_bin())
        .args(["serve", "--cache-dir", &cache.display().to_string()])
        .args([
            "--downloads-dir",
            &downloads.display().to_string(),
            "--origin",
            &origin.origin_arg(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn streamer serve");
    let mut status = None;
    let exited = poll_until(Duration::from_secs(20), || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("streamer serve started with two indexes");
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    assert!(!status.expect("status").success());
    assert!(stderr.contains("both") && stderr.contains("index.sqlite"), "{stderr}");
    assert_eq!(data_files(&cache).len(), 1, "nothing was deleted");
    assert!(cache.join("index.sqlite").is_file() && downloads.join("index.sqlite").is_file());
}
