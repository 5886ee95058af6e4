//! Serve-while-downloading through `streamer serve` against a throttled origin: the first bytes
//! reach the player while the upstream response is still in flight; a seek far ahead starts its
//! own fill at once instead of waiting for the sequential one; concurrent readers of one fresh
//! resource share a single upstream fetch; a backend that sends no length is streamed chunked and
//! then served from cache with a length. The stats counters move as a miss and a hit should.
//! All assertions are about ordering and progress observed through the origin's log and the
//! clients' byte counts, never about wall-clock durations.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use integration_tests::*;

const BIG_LEN: usize = 4 * MIB;
const SEEK: u64 = 3_500_000;

#[test]
fn first_bytes_arrive_before_upstream_finishes_and_seek_starts_own_fill() {
    // 256 KiB/s: the whole file takes ~16 s upstream, so "the upstream is still in flight" and
    // "the first reader is still early" are robust observations, not races.
    let origin = Origin::start(&["--throttle", "262144"]);
    let truth = seeded_bytes(0xB16, BIG_LEN);
    origin.put_file("big.bin", &truth);
    let server = Server::start(&[&origin]);
    let path = "big.bin?v=sww";
    let url = server.stream_url(&origin, path);

    let first = BackgroundRead::start(&url, &[]);
    let (status, _) = first.head(Duration::from_secs(15));
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(15), "the first reader has 64 KiB", || {
        first.received() >= 64 * KIB as u64
    });
    let log = origin.log_for(&format!("/{path}"));
    assert!(
        !log.is_empty(),
        "the client has bytes but the origin saw no request for them"
    );
    assert!(
        log.iter().any(|e| !e.complete),
        "the client got its first 64 KiB only after every upstream response completed \
         (not streamed while downloading): {log:?}"
    );

    // Seek on a second connection while the first reader is early.
    let seek_reader = BackgroundRead::start(&url, &[("Range", &format!("bytes={SEEK}-"))]);
    let (status, headers) = seek_reader.head(Duration::from_secs(15));
    assert_eq!(status, 206, "seek status (headers {headers:?})");
    wait_until(Duration::from_secs(15), "the seek reader has its first byte", || {
        seek_reader.received() > 0
    });
    let first_at_seek = first.received();
    let stats = server.stats();
    assert!(
        json_u64(&stats, "active_streams") >= 2,
        "two responses are streaming, stats say {stats}"
    );
    assert!(
        first_at_seek < SEEK,
        "the seek's first byte arrived only after the sequential reader passed the seek offset \
         ({first_at_seek} bytes): the seek waited for the sequential fill"
    );
    let log = origin.log_for(&format!("/{path}"));
    eprintln!("first reader at {first_at_seek} bytes when the seek got its first byte; origin log {log:?}");
    // The product may align the new fill down to a block boundary; allow up to 256 KiB below.
    let near_seek = |e: &LogEntry| {
        e.range_start()
            .is_some_and(|s| s <= SEEK && s + 256 * KIB as u64 >= SEEK)
    };
    assert!(
        log.iter().any(near_seek),
        "no upstream request starting at/near the seek offset {SEEK}: {log:?}"
    );

    // Let the rest go fast, then check every byte both readers got.
    origin.set_faults(&Faults::default());
    let seek_resp = seek_reader.join().expect("seek reader");
    seek_resp.assert_complete("seek reader");
    assert_eq!(
        seek_resp.header("content-range"),
        Some(format!("bytes {SEEK}-{}/{BIG_LEN}", BIG_LEN - 1).as_str())
    );
    assert_bytes_eq("seek reader", &seek_resp.body, &truth[SEEK as usize..]);
    let first_resp = first.join().expect("first reader");
    first_resp.assert_complete("first reader");
    assert_bytes_eq("first reader", &first_resp.body, &truth);
}

#[test]
fn concurrent_readers_share_one_upstream_fetch() {
    const LEN: usize = 2 * MIB;
    const READERS: usize = 8;
    // 1 MiB/s: slow enough that all readers attach while the single fill is in flight.
    let origin = Origin::start(&["--throttle", "1048576"]);
    let truth = Arc::new(seeded_bytes(0xC0C0, LEN));
    origin.put_file("shared.bin", &truth);
    let server = Server::start(&[&origin]);
    let path = "shared.bin?v=concurrent";
    let url = server.stream_url(&origin, path);

    let barrier = Arc::new(Barrier::new(READERS));
    let handles: Vec<_> = (0..READERS)
        .map(|i| {
            let (barrier, url, truth) = (Arc::clone(&barrier), url.clone(), Arc::clone(&truth));
            thread::spawn(move || {
                barrier.wait();
                let r = get(&url);
                let what = format!("reader {i}");
                assert_eq!(r.status, 200, "{what}");
                r.assert_complete(&what);
                assert_bytes_eq(&what, &r.body, &truth);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a reader failed (see its panic above)");
    }
    let log = origin.log_for(&format!("/{path}"));
    assert_eq!(
        log.len(),
        1,
        "{READERS} concurrent readers of one resource must share exactly one upstream request: {log:?}"
    );
}

#[test]
fn unknown_length_is_chunked_then_served_from_cache_with_length() {
    const LEN: usize = 1_500_017;
    let origin = Origin::start(&["--no-content-length"]);
    let truth = seeded_bytes(0xC4C4, LEN);
    origin.put_file("nolen.bin", &truth);
    let server = Server::start(&[&origin]);
    let path = "nolen.bin?v=chunked";
    let url = server.stream_url(&origin, path);

    // curl shows the raw framing headers.
    let first = curl(&[], &url);
    assert_eq!(first.status, 200, "first response");
    assert!(first.body_error.is_none(), "first response: {:?}", first.body_error);
    assert_eq!(
        first.header("content-length"),
        None,
        "length unknown: no Content-Length expected (headers {:?})",
        first.headers
    );
    assert!(
        first
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked")),
        "length unknown: chunked transfer encoding expected (headers {:?})",
        first.headers
    );
    assert_bytes_eq("chunked response", &first.body, &truth);

    origin.clear_log();
    let second = get(&url);
    assert_eq!(second.status, 200, "second response");
    second.assert_complete("second response");
    assert_eq!(
        second.content_length(),
        Some(LEN as u64),
        "once complete the length is known (headers {:?})",
        second.headers
    );
    assert_bytes_eq("second response", &second.body, &truth);
    let head = http("HEAD", &url, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(LEN as u64), "HEAD once the length is known");
    let part = get_range(&url, "bytes=1000000-1000999");
    assert_eq!(part.status, 206, "range once the length is known");
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1000000-1000999/{LEN}").as_str())
    );
    assert_bytes_eq(
        "range once the length is known",
        &part.body,
        &truth[1_000_000..1_001_000],
    );
    let seen = origin.log_for(&format!("/{path}"));
    assert!(
        seen.is_empty(),
        "requests after the first must come from cache, origin saw {seen:?}"
    );
}

#[test]
fn stats_count_a_miss_then_a_hit() {
    const LEN: usize = 300_001;
    let origin = Origin::start(&[]);
    let truth = seeded_bytes(0x57A7, LEN);
    origin.put_file("stats.bin", &truth);
    let server = Server::start(&[&origin]);
    let url = server.stream_url(&origin, "stats.bin?v=stats");

    let s0 = server.stats();
    for key in [
        "hits",
        "misses",
        "bytes_from_cache",
        "bytes_from_upstream",
        "cache_bytes",
        "pinned_bytes",
        "entries",
        "active_streams",
    ] {
        json_u64(&s0, key);
    }

    let miss = get(&url);
    miss.assert_complete("miss");
    assert_bytes_eq("miss", &miss.body, &truth);
    // Counters may be updated just after the last byte is handed to the client.
    wait_until(Duration::from_secs(5), "the miss is counted", || {
        let s = server.stats();
        json_u64(&s, "misses") > json_u64(&s0, "misses")
            && json_u64(&s, "bytes_from_upstream") >= json_u64(&s0, "bytes_from_upstream") + LEN as u64
    });
    let s1 = server.stats();
    assert_eq!(
        json_u64(&s1, "misses"),
        json_u64(&s0, "misses") + 1,
        "misses after a miss: {s1}"
    );
    assert_eq!(json_u64(&s1, "hits"), json_u64(&s0, "hits"), "hits after a miss: {s1}");
    assert!(
        json_u64(&s1, "cache_bytes") >= LEN as u64,
        "cache_bytes after a miss: {s1}"
    );
    assert!(json_u64(&s1, "entries") >= 1, "entries after a miss: {s1}");

    let hit = get(&url);
    hit.assert_complete("hit");
    assert_bytes_eq("hit", &hit.body, &truth);
    wait_until(Duration::from_secs(5), "the hit is counted", || {
        json_u64(&server.stats(), "hits") > json_u64(&s1, "hits")
    });
    let s2 = server.stats();
    assert_eq!(
        json_u64(&s2, "hits"),
        json_u64(&s1, "hits") + 1,
        "hits after a hit: {s2}"
    );
    assert_eq!(
        json_u64(&s2, "misses"),
        json_u64(&s1, "misses"),
        "misses after a hit: {s2}"
    );
    assert_eq!(
        json_u64(&s2, "bytes_from_cache"),
        json_u64(&s1, "bytes_from_cache") + LEN as u64,
        "bytes_from_cache after a hit of {LEN} bytes: before {s1}, after {s2}"
    );
    assert_eq!(
        json_u64(&s2, "bytes_from_upstream"),
        json_u64(&s1, "bytes_from_upstream"),
        "a hit must not fetch from upstream: before {s1}, after {s2}"
    );
    wait_until(Duration::from_secs(5), "no stream is active any more", || {
        json_u64(&server.stats(), "active_streams") == 0
    });
}
