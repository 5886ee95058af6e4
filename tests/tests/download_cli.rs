//! `streamer download` as a user runs it: standalone into a cache directory (then served offline
//! by `streamer serve` on that directory), against a running server, and failing with the reason
//! and a non-zero exit when a download cannot complete.

use std::process::{Command, Output};

use integration_tests::{assert_bytes_eq, get, json_bool, json_str, seeded_bytes, streamer_bin, Origin, Server, MIB};

/// Runs `streamer download ARGS...` to the end.
fn download(args: &[&str]) -> Output {
    Command::new(streamer_bin())
        .arg("download")
        .args(args)
        .output()
        .expect("run streamer download")
}

/// Fails the test with the command's stderr unless it exited with success.
#[track_caller]
fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn standalone_download_pins_into_the_cache_dir_for_offline_play() {
    let mut origin = Origin::start(&[]);
    let a = seeded_bytes(81, 2 * MIB);
    let b = seeded_bytes(82, MIB + 7);
    origin.put_file("a.bin", &a);
    origin.put_file("b.bin", &b);
    let cache = tempfile::tempdir().expect("cache dir");
    let (a_url, b_url) = (format!("{}a.bin", origin.url), format!("{}b.bin", origin.url));
    let cache_arg = cache.path().display().to_string();
    let origin_arg = origin.origin_arg();
    assert_success(&download(&[
        "--cache-dir",
        &cache_arg,
        "--origin",
        &origin_arg,
        "--url",
        &a_url,
        "--url",
        &b_url,
    ]));

    origin.kill();
    let server = Server::start_with(Some(cache.path()), &[origin.origin_arg()], &[]);
    let list = server.api_get("downloads");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2, "{list:?}");
    for d in list {
        assert_eq!(json_str(d, "state"), "completed", "{d}");
        assert!(json_bool(d, "pinned"), "{d}");
    }
    let ra = get(&server.stream_url(&origin, "a.bin"));
    ra.assert_complete("a offline");
    assert_bytes_eq("a offline", &ra.body, &a);
    assert_bytes_eq("b offline", &get(&server.stream_url(&origin, "b.bin")).body, &b);
}

#[test]
fn standalone_download_into_a_downloads_dir_with_one_worker() {
    let mut origin = Origin::start(&[]);
    let a = seeded_bytes(84, MIB);
    origin.put_file("a.bin", &a);
    let root = tempfile::tempdir().expect("dirs");
    let (cache, files) = (root.path().join("cache"), root.path().join("files"));
    let (cache_arg, files_arg) = (cache.display().to_string(), files.display().to_string());
    let (origin_arg, a_url) = (origin.origin_arg(), format!("{}a.bin", origin.url));
    assert_success(&download(&[
        "--cache-dir",
        &cache_arg,
        "--downloads-dir",
        &files_arg,
        "--download-workers",
        "1",
        "--origin",
        &origin_arg,
        "--url",
        &a_url,
    ]));
    assert!(
        files.join("index.sqlite").is_file(),
        "the index is in the downloads dir"
    );

    origin.kill();
    let server = Server::start_with(Some(&cache), &[origin.origin_arg()], &["--downloads-dir", &files_arg]);
    let ra = get(&server.stream_url(&origin, "a.bin"));
    ra.assert_complete("a offline");
    assert_bytes_eq("a offline", &ra.body, &a);

    let bad = download(&["--server", &server.base, "--download-workers", "2", "--track", "x"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn a_failing_download_exits_non_zero_with_the_reason() {
    let origin = Origin::start(&[]);
    origin.put_file("t.bin", &seeded_bytes(83, 100_000));
    let server = Server::start(&[&origin]);
    let ok = download(&["--server", &server.base, "--url", &format!("{}t.bin", origin.url)]);
    assert_success(&ok);

    let missing = download(&["--server", &server.base, "--url", &format!("{}missing.bin", origin.url)]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success(), "a 404 download must fail the command");
    assert!(stderr.contains("404"), "stderr names the reason: {stderr}");
    assert!(
        !stderr.contains(&server.token),
        "the token must not be printed: {stderr}"
    );

    let no_items = download(&["--server", &server.base]);
    assert!(!no_items.status.success());
    assert!(!String::from_utf8_lossy(&no_items.stderr).contains("panicked"));
}
