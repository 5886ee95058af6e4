//! The server's life cycle as an operator sees it: SIGTERM stops it cleanly with every written
//! range recorded, one server per cache directory, bad command lines fail with a message, and the
//! library refuses to serve on anything but loopback.

use std::process::Command;
use std::time::Duration;

use integration_tests::{assert_bytes_eq, get, json_u64, seeded_bytes, streamer_bin, Origin, Server, MIB};

#[test]
fn sigterm_stops_cleanly_and_the_index_has_every_written_range() {
    let mut origin = Origin::start(&[]);
    let truth = seeded_bytes(41, 3 * MIB);
    origin.put_file("a.bin", &truth);
    let cache = tempfile::tempdir().expect("cache dir");
    let origins = [origin.origin_arg()];
    let mut server = Server::start_with(Some(cache.path()), &origins, &[]);
    let url = server.stream_url(&origin, "a.bin");
    let r = get(&url);
    r.assert_complete("fill");
    assert_bytes_eq("first read", &r.body, &truth);
    // Stop at once, before the periodic batch runs: the shutdown itself must record the ranges.
    let status = server.proc().terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status after SIGTERM: {status}");

    origin.kill();
    let server = Server::start_with(Some(cache.path()), &origins, &[]);
    let stats = server.stats();
    assert_eq!(json_u64(&stats, "cache_bytes"), truth.len() as u64, "{stats}");
    assert_eq!(json_u64(&stats, "entries"), 1, "{stats}");
    // With the origin gone, every byte still comes from the cache.
    let r = get(&server.stream_url(&origin, "a.bin"));
    r.assert_complete("offline read after restart");
    assert_bytes_eq("after restart", &r.body, &truth);
}

#[test]
fn a_second_server_on_the_same_cache_dir_is_refused() {
    let origin = Origin::start(&[]);
    let cache = tempfile::tempdir().expect("cache dir");
    let origins = [origin.origin_arg()];
    let _first = Server::start_with(Some(cache.path()), &origins, &[]);
    let out = Command::new(streamer_bin())
        .args([
            "serve",
            "--cache-dir",
            &cache.path().display().to_string(),
            "--origin",
            &origins[0],
        ])
        .output()
        .expect("run a second streamer serve");
    assert!(
        !out.status.success(),
        "a second server on the same cache directory must not start"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use"),
        "stderr should say the directory is in use: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no base URL may be printed: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_command_lines_fail_with_a_message_and_no_panic() {
    let cache = tempfile::tempdir().expect("cache dir");
    let dir = cache.path().display().to_string();
    let cases: [(&[&str], &str); 6] = [
        (&["serve", "--cache-dir", &dir, "--origin", "not a url"], "bad origin"),
        (
            &["serve", "--cache-dir", &dir, "--origin", "ftp://example.com"],
            "bad origin",
        ),
        (
            &["serve", "--cache-dir", &dir, "--origin", "http://example.com/path"],
            "bad origin",
        ),
        (
            &["serve", "--cache-dir", &dir, "--header", "NoColonHere"],
            "Name: value",
        ),
        (&["serve", "--cache-dir", &dir, "--token", "a/b"], "token"),
        (
            &[
                "serve",
                "--cache-dir",
                &dir,
                "--ca-cert",
                "/nonexistent/ca.pem",
                "--origin",
                "https://x.example",
            ],
            "CA",
        ),
    ];
    for (args, expect) in cases {
        let out = Command::new(streamer_bin()).args(args).output().expect("run streamer");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            stderr.contains(expect),
            "{args:?}: stderr should mention {expect:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

#[test]
fn the_library_refuses_a_non_loopback_listener() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.expect("bind any");
        let dir = tempfile::tempdir().expect("cache dir");
        let err = embedded_server::Server::with_listener(listener, embedded_server::Config::new(dir.path()))
            .await
            .err()
            .expect("a non-loopback listener must be refused");
        assert!(err.to_string().contains("only loopback"), "{err}");
    });
}
