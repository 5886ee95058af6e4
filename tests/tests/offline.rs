//! Offline-first (SPEC §4.3, §5): once a resource is fully cached it is served byte-exact, with
//! ranges and HEAD, after the backend has gone away; a resource that was never cached answers
//! `502` with a JSON error instead of hanging or serving anything; a partly cached one serves its
//! cached ranges and answers `502` for a range it does not have.

use integration_tests::*;

#[test]
fn cached_resource_survives_origin_death_uncached_gives_502() {
    const LEN: usize = 1_234_567;
    let mut origin = Origin::start(&[]);
    let truth = seeded_bytes(0x0FF1, LEN);
    origin.put_file("cached.bin", &truth);
    origin.put_file("never.bin", &seeded_bytes(0x0FF2, 1000));
    let server = Server::start(&[&origin]);
    let cached_url = server.stream_url(&origin, "cached.bin?v=offline");
    let never_url = server.stream_url(&origin, "never.bin?v=offline");

    let online = get(&cached_url);
    assert_eq!(online.status, 200);
    online.assert_complete("online GET");
    assert_bytes_eq("online GET", &online.body, &truth);
    let etag = online.header("etag").expect("ETag").to_string();

    origin.kill();

    let r = get(&cached_url);
    assert_eq!(r.status, 200, "cached resource offline: {:?}", r.text());
    r.assert_complete("offline GET");
    assert_bytes_eq("offline GET", &r.body, &truth);
    assert_eq!(r.header("etag"), Some(etag.as_str()), "offline ETag");

    let r = get_range(&cached_url, "bytes=1000000-");
    assert_eq!(r.status, 206, "offline range");
    r.assert_complete("offline range");
    assert_bytes_eq("offline range", &r.body, &truth[1_000_000..]);

    let r = curl(&["-H", "Range: bytes=-4096"], &cached_url);
    assert_eq!(r.status, 206, "offline range via curl");
    assert!(r.body_error.is_none(), "{:?}", r.body_error);
    assert_bytes_eq("offline range via curl", &r.body, &truth[LEN - 4096..]);

    let head = http("HEAD", &cached_url, &[]);
    assert_eq!(head.status, 200, "offline HEAD");
    assert!(head.body.is_empty(), "HEAD returned a body");
    assert_eq!(head.content_length(), Some(LEN as u64), "offline HEAD Content-Length");
    assert_eq!(head.header("etag"), Some(etag.as_str()), "offline HEAD ETag");
    assert_eq!(
        head.header("accept-ranges"),
        Some("bytes"),
        "offline HEAD Accept-Ranges"
    );

    let r = get(&never_url);
    r.assert_json_error("uncached resource with the backend down", 502);
    let r = http("HEAD", &never_url, &[]);
    assert_eq!(r.status, 502, "HEAD of an uncached resource with the backend down");
}

#[test]
fn partly_cached_resource_offline_serves_cached_ranges_and_502_for_the_rest() {
    const LEN: usize = 4 * MIB;
    // Throttled, so whatever the product reads ahead after the island cannot get near the far
    // range asked for offline below (at most a few hundred KiB before the kill).
    let mut origin = Origin::start(&["--throttle", "262144"]);
    let truth = seeded_bytes(0x0FF3, LEN);
    origin.put_file("part.bin", &truth);
    let server = Server::start(&[&origin]);
    let url = server.stream_url(&origin, "part.bin?v=offline");
    let r = get_range(&url, "bytes=100000-199999");
    assert_eq!(r.status, 206, "priming a cached island");
    r.assert_complete("priming a cached island");
    assert_bytes_eq("priming a cached island", &r.body, &truth[100_000..200_000]);

    origin.kill();

    let r = get_range(&url, "bytes=100000-199999");
    assert_eq!(r.status, 206, "cached island offline: {:?}", r.body_error);
    r.assert_complete("cached island offline");
    assert_bytes_eq("cached island offline", &r.body, &truth[100_000..200_000]);
    let r = get_range(&url, "bytes=150000-159999");
    assert_eq!(r.status, 206, "inside the cached island offline");
    r.assert_complete("inside the cached island offline");
    assert_bytes_eq("inside the cached island offline", &r.body, &truth[150_000..160_000]);

    // No byte of this range can be had: SPEC §4.3 says 502, not a 206 head followed by an
    // aborted body (a player reports that as a truncated file rather than a network error).
    let r = get_range(&url, "bytes=3500000-3500999");
    r.assert_json_error("uncached range of a partly cached resource offline", 502);
}
