//! The development origin (`streamer origin`) itself, checked directly without the server: the
//! other suites read its request log and flip its fault switches to see what the product did
//! upstream, so a broken origin must fail here, by name, rather than as a confusing product
//! failure elsewhere. Covers the URL line, Range/ETag serving, ETag change on rewrite, the log
//! format, and each fault switch the suites use.

use std::time::{Duration, SystemTime};

use integration_tests::*;

const LEN: usize = 300_007;

#[test]
fn origin_serves_ranges_and_logs_requests() {
    let origin = Origin::start(&[]);
    let truth = seeded_bytes(0x0816, LEN);
    origin.put_file("f.bin", &truth);

    let full = get(&format!("{}f.bin?v=1", origin.url));
    assert_eq!(full.status, 200);
    full.assert_complete("origin full");
    assert_bytes_eq("origin full", &full.body, &truth);
    let etag = full.header("etag").expect("origin ETag").to_string();
    assert_eq!(full.header("accept-ranges"), Some("bytes"));

    let part = get_range(&format!("{}f.bin", origin.url), "bytes=10-19");
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-19/{LEN}").as_str())
    );
    assert_bytes_eq("origin range", &part.body, &truth[10..20]);

    let stale = http(
        "GET",
        &format!("{}f.bin", origin.url),
        &[("Range", "bytes=10-19"), ("If-Range", "\"nope\"")],
    );
    assert_eq!(stale.status, 200, "origin If-Range stale");

    let missing = get(&format!("{}nope.bin", origin.url));
    assert_eq!(missing.status, 404);

    let log = origin.log();
    assert_eq!(log.len(), 4, "control requests must not be logged: {log:?}");
    assert_eq!(log[0].path, "/f.bin?v=1");
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].range, None);
    assert!(log[0].complete && log[0].body_bytes == LEN as u64, "{:?}", log[0]);
    assert_eq!(log[1].range.as_deref(), Some("bytes=10-19"));
    assert_eq!(log[1].status, 206);
    assert_eq!(log[2].if_range.as_deref(), Some("\"nope\""));
    assert_eq!(log[3].status, 404);
    assert!(!log[0].authorization);

    origin.clear_log();
    assert!(origin.log().is_empty());

    // Rewriting the file (same size, new mtime) changes the ETag.
    origin.put_file_with_mtime(
        "f.bin",
        &seeded_bytes(0x0817, LEN),
        Some(SystemTime::now() + Duration::from_secs(120)),
    );
    let again = http("HEAD", &format!("{}f.bin", origin.url), &[]);
    assert_ne!(
        again.header("etag"),
        Some(etag.as_str()),
        "ETag unchanged after rewrite"
    );
}

#[test]
fn origin_fault_switches_work() {
    let origin = Origin::start(&[]);
    let truth = seeded_bytes(0x0818, LEN);
    origin.put_file("f.bin", &truth);
    let url = format!("{}f.bin", origin.url);

    origin.set_faults(&Faults {
        fail_first: 2,
        ..Faults::default()
    });
    assert!(get(&url).status >= 500);
    assert!(get(&url).status >= 500);
    assert_eq!(get(&url).status, 200);

    origin.set_faults(&Faults {
        drop_after: Some(100_000),
        drop_times: 1,
        ..Faults::default()
    });
    let cut = get(&url);
    assert!(cut.body_error.is_some(), "drop_after did not cut the response");
    // An aborted connection may lose bytes still unread in the client's socket buffer, so the
    // client sees at most the cut point; the origin's log says where it cut.
    assert!(cut.body.len() <= 100_000, "drop_after cut too late: {}", cut.body.len());
    assert_bytes_eq("cut prefix", &cut.body, &truth[..cut.body.len()]);
    let last = origin.log().pop().expect("logged");
    assert_eq!(last.body_bytes, 100_000, "drop_after cut at the wrong place: {last:?}");
    assert!(!last.complete, "a cut response is logged as complete: {last:?}");
    let whole = get(&url);
    whole.assert_complete("after drop_times is used up");

    origin.set_faults(&Faults {
        ignore_range: true,
        ..Faults::default()
    });
    let r = get_range(&url, "bytes=5-9");
    assert_eq!(r.status, 200, "ignore_range");
    assert_eq!(r.body.len(), LEN);

    origin.set_faults(&Faults {
        no_content_length: true,
        ..Faults::default()
    });
    let r = curl(&[], &url);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), None, "no_content_length: {:?}", r.headers);
    assert_bytes_eq("chunked origin body", &r.body, &truth);

    origin.set_faults(&Faults {
        require_auth: Some("Bearer s3cret".into()),
        ..Faults::default()
    });
    assert!([401, 403].contains(&get(&url).status), "require_auth without header");
    let r = http("GET", &url, &[("Authorization", "Bearer s3cret")]);
    assert_eq!(r.status, 200, "require_auth with header");

    origin.set_faults(&Faults::default());
    let log = origin.log();
    assert!(
        log.last().is_some_and(|e| e.authorization),
        "authorization flag: {log:?}"
    );
}

#[test]
fn origin_throttle_keeps_response_incomplete_in_log() {
    let origin = Origin::start(&["--throttle", "262144"]);
    origin.put_file("slow.bin", &seeded_bytes(0x0819, 2 * MIB));
    let reader = BackgroundRead::start(&format!("{}slow.bin", origin.url), &[]);
    wait_until(Duration::from_secs(10), "64 KiB arrived", || {
        reader.received() >= 64 * KIB as u64
    });
    let log = origin.log();
    assert_eq!(log.len(), 1);
    assert!(!log[0].complete, "throttled response already complete: {log:?}");
    drop(reader);
}

#[test]
fn origin_demo_writes_a_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = Origin::start_in(dir, &["--demo"]);
    let r = get(&format!("{}catalog.json", origin.url));
    assert_eq!(r.status, 200);
    let catalog = r.json();
    let entries = catalog.as_array().expect("catalog.json is an array");
    assert!(entries.len() >= 3, "demo catalog: {catalog}");
    for e in entries {
        let file = json_str(e, "file");
        let body = get(&format!("{}{file}", origin.url));
        body.assert_complete(file);
        assert_eq!(body.body.len() as u64, json_u64(e, "size"), "{file} size");
        assert_eq!(sha256_hex(&body.body), json_str(e, "sha256"), "{file} sha256");
        assert!(e["duration_secs"].as_f64().is_some(), "{e}");
    }
}

#[test]
fn origin_shared_link_is_shared_by_every_connection_and_switchable() {
    // 256 KiB/s for 2 x 1 MiB: several seconds of transfer, so both readers are mid-body at once.
    let origin = Origin::start(&["--shared-link", "262144"]);
    let (a, b) = (seeded_bytes(0x1601, MIB), seeded_bytes(0x1602, MIB));
    origin.put_file("a.bin", &a);
    origin.put_file("b.bin", &b);
    let faults = get(&format!("{}_control/faults", origin.url)).json();
    assert_eq!(
        faults["shared_link_bps"], 262_144,
        "the flag shows in the control JSON: {faults}"
    );

    let first = BackgroundRead::start(&format!("{}a.bin", origin.url), &[]);
    let second = BackgroundRead::start(&format!("{}b.bin", origin.url), &[]);
    // Both make progress while the other is still running: the link is shared chunk by chunk,
    // not given to one connection until its body is done.
    wait_until(Duration::from_secs(20), "both readers received 64 KiB", || {
        first.received() >= 64 * KIB as u64 && second.received() >= 64 * KIB as u64
    });
    let log = origin.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter().all(|e| !e.complete && e.body_bytes > 0),
        "both bodies under way at once: {log:?}"
    );

    // Off through the control API: the control JSON says so and the bodies in flight finish.
    origin.set_faults(&Faults::default());
    let faults = get(&format!("{}_control/faults", origin.url)).json();
    assert!(faults["shared_link_bps"].is_null(), "switched off: {faults}");
    let (first, second) = (first.join().expect("first read"), second.join().expect("second read"));
    first.assert_complete("a.bin over the shared link");
    second.assert_complete("b.bin over the shared link");
    assert_bytes_eq("a.bin over the shared link", &first.body, &a);
    assert_bytes_eq("b.bin over the shared link", &second.body, &b);

    // On again through the control API, as the benchmark switches it: reported, and bodies
    // still arrive whole and exact.
    origin.set_faults(&Faults {
        shared_link_bps: Some(4 * MIB as u64),
        ..Faults::default()
    });
    let faults = get(&format!("{}_control/faults", origin.url)).json();
    assert_eq!(faults["shared_link_bps"], 4 * MIB as u64, "switched on: {faults}");
    let range = get_range(&format!("{}b.bin", origin.url), "bytes=1000-300999");
    assert_eq!(range.status, 206);
    assert_bytes_eq("a range over the shared link", &range.body, &b[1000..301_000]);
}
