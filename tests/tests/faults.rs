//! Upstream faults that the player must not see (SPEC §4.3): a backend connection cut mid-body is
//! resumed with `Range: bytes=N-` plus `If-Range`; 5xx answers are retried; a backend that
//! ignores `Range` still yields a correct 206; and when the backend's ETag changes under a partly
//! cached resource, no response completes with mixed or stale bytes and the next request gets the
//! new version whole under the new ETag. The origin's fault switches and request log are the
//! test's view of what the product did upstream.

use std::time::{Duration, Instant, SystemTime};

use integration_tests::*;

#[test]
fn dropped_upstream_is_resumed_invisibly() {
    const LEN: usize = 4 * MIB;
    let origin = Origin::start(&["--drop-after", "1048576", "--drop-times", "3"]);
    let truth = seeded_bytes(0xD20B, LEN);
    origin.put_file("drop.bin", &truth);
    let server = Server::start(&[&origin]);
    let path = "drop.bin?v=drop";

    let r = get(&server.stream_url(&origin, path));
    assert_eq!(r.status, 200);
    r.assert_complete("response over a dropping origin");
    assert_bytes_eq("response over a dropping origin", &r.body, &truth);

    let log = origin.log_for(&format!("/{path}"));
    // 3 cut responses + at least one that completes.
    assert!(log.len() >= 4, "expected the 3 cut responses to be resumed: {log:?}");
    let resumes: Vec<&LogEntry> = log.iter().filter(|e| e.range_start().is_some_and(|s| s > 0)).collect();
    assert!(
        resumes.len() >= 3,
        "expected at least 3 `Range: bytes=N-` resumes with N > 0: {log:?}"
    );
    for e in &resumes {
        assert!(
            e.if_range.is_some(),
            "a resume must carry If-Range so a changed file is not stitched: {e:?}"
        );
    }
    let origin_etag = http("HEAD", &format!("{}drop.bin", origin.url), &[])
        .header("etag")
        .expect("origin ETag")
        .to_string();
    assert!(
        resumes
            .iter()
            .all(|e| e.if_range.as_deref() == Some(origin_etag.as_str())),
        "resumes must carry the origin's ETag {origin_etag} in If-Range: {resumes:?}"
    );
    let starts: Vec<u64> = resumes.iter().filter_map(|e| e.range_start()).collect();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "resumes must move forward: {starts:?}"
    );
}

#[test]
fn upstream_5xx_is_retried() {
    const LEN: usize = 500_009;
    let origin = Origin::start(&["--fail-first", "2"]);
    let truth = seeded_bytes(0x5005, LEN);
    origin.put_file("fail.bin", &truth);
    let server = Server::start(&[&origin]);
    let path = "fail.bin?v=fail";

    let r = get(&server.stream_url(&origin, path));
    assert_eq!(r.status, 200, "body {:?}", r.text());
    r.assert_complete("response after two 5xx");
    assert_bytes_eq("response after two 5xx", &r.body, &truth);

    let log = origin.log_for(&format!("/{path}"));
    assert!(log.len() >= 3, "two failures and a success expected: {log:?}");
    assert!(
        log[0].status >= 500 && log[1].status >= 500,
        "the first two upstream answers were 5xx: {log:?}"
    );
    assert!(
        log.iter().any(|e| e.status < 300 && e.complete),
        "a successful upstream answer expected: {log:?}"
    );
}

#[test]
fn origin_ignoring_range_still_gives_correct_206() {
    const LEN: usize = 2 * MIB + 77;
    let origin = Origin::start(&["--ignore-range"]);
    let truth = seeded_bytes(0x1960, LEN);
    origin.put_file("norange.bin", &truth);
    let server = Server::start(&[&origin]);

    for (i, (range, start, end)) in [
        ("bytes=1000000-1099999".to_string(), 1_000_000, 1_099_999),
        ("bytes=-1000".to_string(), LEN - 1000, LEN - 1),
        (format!("bytes={}-", LEN - 5), LEN - 5, LEN - 1),
    ]
    .into_iter()
    .enumerate()
    {
        let url = server.stream_url(&origin, &format!("norange.bin?v=ignore-{i}"));
        let what = format!("Range {range} on an origin that ignores Range");
        let r = get_range(&url, &range);
        assert_eq!(r.status, 206, "{what}: body {:?}", r.text());
        r.assert_complete(&what);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{LEN}").as_str()),
            "{what}"
        );
        assert_bytes_eq(&what, &r.body, &truth[start..=end]);
    }
}

#[test]
fn etag_change_never_mixes_versions() {
    const LEN: usize = 4 * MIB;
    let origin = Origin::start(&[]);
    let v1 = seeded_bytes(0xE71, LEN);
    let v2 = seeded_bytes(0xE72, LEN);
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    origin.put_file_with_mtime("etag.bin", &v1, Some(t0));
    let server = Server::start(&[&origin]);
    let path = "etag.bin?v=etag";
    let url = server.stream_url(&origin, path);

    // Partly cache v1 while making sure no upstream response can ever deliver all of v1: every
    // response is slow and cut after 96 KiB, so any read-ahead must resume, and a resume issued
    // after the rewrite below carries the old If-Range and meets the new version.
    origin.set_faults(&Faults {
        throttle_bps: Some(256 * KIB as u64),
        drop_after: Some(96 * KIB as u64),
        drop_times: 1000,
        ..Faults::default()
    });
    let part = get_range(&url, "bytes=0-65535");
    assert_eq!(part.status, 206, "priming range: {:?}", part.text());
    part.assert_complete("priming range");
    assert_bytes_eq("priming range (v1)", &part.body, &v1[..65536]);
    let etag1 = part.header("etag").expect("ETag on v1").to_string();

    // Same size, new mtime: the origin's size+mtime ETag must change.
    origin.put_file_with_mtime("etag.bin", &v2, Some(t0 + Duration::from_secs(60)));
    // Upstream responses begun before the rewrite read the old file (renamed-over inode). Let
    // them end (completed, or cut at 96 KiB, or abandoned and no longer growing) before lifting
    // the faults, so no v1 response can run to the end; later requests can only meet v2.
    let before = origin.log_for(&format!("/{path}")).len();
    let drop_at = 96 * KIB as u64;
    // Per pre-rewrite entry: body bytes last seen and when they last grew.
    let mut seen: Vec<(u64, Instant)> = vec![(u64::MAX, Instant::now()); before];
    let _settled = poll_until(Duration::from_secs(5), || {
        let log = origin.log_for(&format!("/{path}"));
        let mut pending = 0;
        for (e, (bytes, since)) in log.iter().take(before).zip(seen.iter_mut()) {
            if e.body_bytes != *bytes {
                *bytes = e.body_bytes;
                *since = Instant::now();
            }
            let ended = e.complete || e.body_bytes >= drop_at || since.elapsed() > Duration::from_millis(700);
            pending += usize::from(!ended);
        }
        pending == 0
    });
    origin.set_faults(&Faults::default());

    // A whole-body request may be aborted if it started under the old ETag (documented), but it
    // may never complete with mixed or stale bytes.
    let mut attempts = Vec::new();
    let final_resp = loop {
        let r = get(&url);
        assert_eq!(r.status, 200, "whole request: {:?}", r.text());
        let etag = r.header("etag").expect("ETag").to_string();
        let truth = if etag == etag1 { &v1 } else { &v2 };
        assert!(
            r.body.len() <= LEN && first_difference(&r.body, truth).is_none(),
            "bytes served under ETag {etag} (v1 is {etag1}) are not a prefix of that version: \
             first difference at {:?}, {} bytes",
            first_difference(&r.body, truth),
            r.body.len()
        );
        if r.body_error.is_none() {
            // Completed: it must be the new version, whole.
            assert_ne!(etag, etag1, "a response completed with the stale version v1");
            break r;
        }
        attempts.push((etag, r.body.len(), r.body_error.clone()));
        assert!(
            attempts.len() < 3,
            "whole requests kept being aborted after the ETag change: {attempts:?}"
        );
    };
    eprintln!("aborted whole requests before the new version: {attempts:?}");
    final_resp.assert_complete("whole request after the ETag change");
    assert_bytes_eq("whole request after the ETag change", &final_resp.body, &v2);

    let next = get(&url);
    next.assert_complete("next request");
    assert_ne!(
        next.header("etag"),
        Some(etag1.as_str()),
        "next request still has the old ETag"
    );
    assert_eq!(next.header("etag"), final_resp.header("etag"));
    assert_bytes_eq("next request", &next.body, &v2);
}

#[test]
fn dropped_upstream_of_a_range_request_keeps_the_range_end() {
    const LEN: usize = 4 * MIB;
    let origin = Origin::start(&["--drop-after", "524288", "--drop-times", "2"]);
    let truth = seeded_bytes(0xD20C, LEN);
    origin.put_file("drop.bin", &truth);
    let server = Server::start(&[&origin]);
    let (start, end) = (500_000usize, 2_999_999usize);
    let r = get_range(
        &server.stream_url(&origin, "drop.bin?v=range"),
        &format!("bytes={start}-{end}"),
    );
    assert_eq!(r.status, 206);
    r.assert_complete("range over a dropping origin");
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {start}-{end}/{LEN}").as_str())
    );
    assert_bytes_eq("range over a dropping origin", &r.body, &truth[start..=end]);
    let log = origin.log_for("/drop.bin?v=range");
    assert!(log.len() >= 3, "two cuts and a resume expected: {log:?}");
}

/// A CDN that ignores `Range` and drops: the resume comes back as `200` with the whole body, so
/// the product must skip what it already has (or start over) — never stitch at the wrong offset.
#[test]
fn dropped_upstream_that_ignores_range_is_still_stitched_correctly() {
    const LEN: usize = 3 * MIB + 5;
    let origin = Origin::start(&["--ignore-range", "--drop-after", "1048576", "--drop-times", "2"]);
    let truth = seeded_bytes(0xD20D, LEN);
    origin.put_file("drop.bin", &truth);
    let server = Server::start(&[&origin]);
    let url = server.stream_url(&origin, "drop.bin?v=ignore");
    let r = get(&url);
    assert_eq!(r.status, 200);
    r.assert_complete("full body over a dropping, Range-ignoring origin");
    assert_bytes_eq("full body over a dropping, Range-ignoring origin", &r.body, &truth);
    let r = get_range(&url, "bytes=2000000-2000099");
    assert_eq!(r.status, 206);
    assert_bytes_eq("range afterwards", &r.body, &truth[2_000_000..2_000_100]);
}
