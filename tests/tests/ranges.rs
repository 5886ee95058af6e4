//! Range requests (RFC 9110 §14) and HEAD through `streamer serve`, on cached and uncached
//! resources, with ureq and with curl as clients. Every case is compared byte for byte with the
//! seeded file the origin serves: `bytes=a-b`, `a-`, `-n`, an end past EOF (clamped), a start at
//! or past the length (416 with `Content-Range: bytes */LEN`), malformed and multi-range headers
//! (200 with the full body), and `If-Range` with the current (206) and a stale (200) validator.
//! Uncached cases use a fresh `?v=` query per request, which is a distinct cache key for the same
//! origin file; cached cases check the origin saw no request at all while they ran.

use integration_tests::*;

/// Not a multiple of any block size, so clamping and suffix arithmetic are exercised off-boundary.
const LEN: usize = 1_300_003;
const FILE: &str = "ranges.bin";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    Ureq,
    Curl,
}

fn fetch(client: Client, method: &str, url: &str, headers: &[(&str, &str)]) -> Resp {
    match client {
        Client::Ureq => http(method, url, headers),
        Client::Curl => {
            let mut args: Vec<String> = Vec::new();
            if method == "HEAD" {
                args.push("--head".into());
            } else if method != "GET" {
                args.extend(["-X".into(), method.into()]);
            }
            for (n, v) in headers {
                args.push("-H".into());
                args.push(format!("{n}: {v}"));
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&refs, url)
        }
    }
}

/// What a case must produce.
enum Expect {
    /// 206 with exactly `truth[start..=end]`.
    Partial(usize, usize),
    /// 200 with the full body.
    Full,
    /// 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

fn cases() -> Vec<(String, Expect)> {
    let l = LEN;
    vec![
        ("bytes=100-199".into(), Expect::Partial(100, 199)),
        ("bytes=0-0".into(), Expect::Partial(0, 0)),
        ("bytes=1000-".into(), Expect::Partial(1000, l - 1)),
        ("bytes=-500".into(), Expect::Partial(l - 500, l - 1)),
        // A suffix longer than the representation selects all of it (RFC 9110 §14.1.3).
        (format!("bytes=-{}", l + 10), Expect::Partial(0, l - 1)),
        // An end past EOF is clamped to the last byte.
        (format!("bytes={}-{}", l - 10, l + 1000), Expect::Partial(l - 10, l - 1)),
        (format!("bytes={}-{}", l - 1, l - 1), Expect::Partial(l - 1, l - 1)),
        (format!("bytes={l}-"), Expect::Unsatisfiable),
        (format!("bytes={}-{}", l + 5, l + 10), Expect::Unsatisfiable),
        ("bytes=abc".into(), Expect::Full),
        ("bytes=5-2".into(), Expect::Full),
        ("bytes=0-1,5-10".into(), Expect::Full),
    ]
}

/// Checks the headers every successful (200/206) response must carry.
#[track_caller]
fn assert_common_headers(what: &str, r: &Resp) {
    assert_eq!(
        r.header("accept-ranges"),
        Some("bytes"),
        "{what}: Accept-Ranges (headers {:?})",
        r.headers
    );
    let etag = r
        .header("etag")
        .unwrap_or_else(|| panic!("{what}: no ETag (headers {:?})", r.headers));
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() >= 3,
        "{what}: ETag must be a strong quoted validator, got {etag:?}"
    );
    assert!(
        r.header("content-length").is_some(),
        "{what}: no Content-Length (headers {:?})",
        r.headers
    );
}

#[track_caller]
fn check_case(what: &str, r: &Resp, expect: &Expect, truth: &[u8]) {
    match *expect {
        Expect::Partial(start, end) => {
            assert_eq!(r.status, 206, "{what}: status (body {:?})", body_hint(r));
            r.assert_complete(what);
            assert_common_headers(what, r);
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {start}-{end}/{LEN}").as_str()),
                "{what}: Content-Range"
            );
            assert_bytes_eq(what, &r.body, &truth[start..=end]);
        }
        Expect::Full => {
            assert_eq!(r.status, 200, "{what}: status (body {:?})", body_hint(r));
            r.assert_complete(what);
            assert_common_headers(what, r);
            assert_eq!(r.header("content-range"), None, "{what}: 200 with Content-Range");
            assert_bytes_eq(what, &r.body, truth);
        }
        Expect::Unsatisfiable => {
            assert_eq!(r.status, 416, "{what}: status (body {:?})", body_hint(r));
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes */{LEN}").as_str()),
                "{what}: Content-Range on 416"
            );
        }
    }
}

fn body_hint(r: &Resp) -> String {
    let end = r.body.len().min(200);
    String::from_utf8_lossy(&r.body[..end]).into_owned()
}

fn setup() -> (Origin, Server, Vec<u8>) {
    let origin = Origin::start(&[]);
    let truth = seeded_bytes(0x5A17, LEN);
    origin.put_file(FILE, &truth);
    let server = Server::start(&[&origin]);
    (origin, server, truth)
}

/// Runs every range case plus `If-Range` against uncached resources: each request has its own
/// `?v=` so nothing it needs can already be in the cache.
fn uncached_cases(client: Client) {
    let (origin, server, truth) = setup();
    let mut checks = Checks::default();
    for (i, (range, expect)) in cases().into_iter().enumerate() {
        let path = format!("{FILE}?v=uncached-{client:?}-{i}");
        let url = server.stream_url(&origin, &path);
        let what = format!("{client:?} uncached Range: {range}");
        checks.check(&what, || {
            let r = fetch(client, "GET", &url, &[("Range", &range)]);
            check_case(&what, &r, &expect, &truth);
        });
    }

    // If-Range: learn the validator with HEAD (which caches no bytes), then ask for a range.
    let url = server.stream_url(&origin, &format!("{FILE}?v=ifrange-{client:?}"));
    let what = format!("{client:?} uncached If-Range current");
    checks.check(&what, || {
        let head = fetch(Client::Ureq, "HEAD", &url, &[]);
        assert_eq!(head.status, 200, "HEAD for the validator");
        let etag = head.header("etag").expect("HEAD has an ETag").to_string();
        let r = fetch(
            client,
            "GET",
            &url,
            &[("Range", "bytes=2000-2999"), ("If-Range", &etag)],
        );
        check_case(&what, &r, &Expect::Partial(2000, 2999), &truth);
    });

    let url = server.stream_url(&origin, &format!("{FILE}?v=ifrange-stale-{client:?}"));
    let what = format!("{client:?} uncached If-Range stale");
    checks.check(&what, || {
        let r = fetch(
            client,
            "GET",
            &url,
            &[("Range", "bytes=2000-2999"), ("If-Range", "\"stale-validator\"")],
        );
        check_case(&what, &r, &Expect::Full, &truth);
    });
    checks.finish();
}

/// Caches one resource fully, then runs every case against it and checks the origin saw nothing.
fn cached_cases(client: Client) {
    let (origin, server, truth) = setup();
    let path = format!("{FILE}?v=cached-{client:?}");
    let url = server.stream_url(&origin, &path);
    let full = get(&url);
    assert_eq!(full.status, 200, "priming GET");
    full.assert_complete("priming GET");
    assert_bytes_eq("priming GET", &full.body, &truth);
    let etag = full.header("etag").expect("ETag on priming GET").to_string();

    origin.clear_log();
    let mut checks = Checks::default();
    for (range, expect) in cases() {
        let what = format!("{client:?} cached Range: {range}");
        checks.check(&what, || {
            let r = fetch(client, "GET", &url, &[("Range", &range)]);
            check_case(&what, &r, &expect, &truth);
            if !matches!(expect, Expect::Unsatisfiable) {
                assert_eq!(r.header("etag"), Some(etag.as_str()), "{what}: ETag changed");
            }
        });
    }
    checks.finish();
    let r = fetch(client, "GET", &url, &[("Range", "bytes=7-70006"), ("If-Range", &etag)]);
    check_case(
        &format!("{client:?} cached If-Range current"),
        &r,
        &Expect::Partial(7, 70006),
        &truth,
    );
    let r = fetch(
        client,
        "GET",
        &url,
        &[("Range", "bytes=7-70006"), ("If-Range", "\"stale-validator\"")],
    );
    check_case(&format!("{client:?} cached If-Range stale"), &r, &Expect::Full, &truth);
    let r = fetch(client, "GET", &url, &[]);
    check_case(&format!("{client:?} cached full"), &r, &Expect::Full, &truth);

    let seen = origin.log_for(&format!("/{path}"));
    assert!(
        seen.is_empty(),
        "a fully cached resource must be served without contacting the origin; origin saw {seen:?}"
    );
}

#[test]
fn ranges_uncached_ureq() {
    uncached_cases(Client::Ureq);
}

#[test]
fn ranges_uncached_curl() {
    uncached_cases(Client::Curl);
}

#[test]
fn ranges_cached_ureq() {
    cached_cases(Client::Ureq);
}

#[test]
fn ranges_cached_curl() {
    cached_cases(Client::Curl);
}

/// HEAD answers exactly the headers GET would (status, Content-Length, Content-Range, ETag,
/// Content-Type, Accept-Ranges) and no body, both before and after the resource is cached.
#[test]
fn head_matches_get() {
    let (origin, server, truth) = setup();
    let headers_compared = [
        "content-length",
        "content-range",
        "etag",
        "content-type",
        "accept-ranges",
    ];
    let ranges: Vec<Option<String>> = vec![
        None,
        Some("bytes=10-20".into()),
        Some("bytes=-100".into()),
        Some(format!("bytes={}-", LEN + 1)),
    ];
    let mut checks = Checks::default();
    for phase in ["uncached", "cached"] {
        for (i, range) in ranges.iter().enumerate() {
            let path = if phase == "uncached" {
                format!("{FILE}?v=head-{i}")
            } else {
                format!("{FILE}?v=head-cached")
            };
            let url = server.stream_url(&origin, &path);
            if phase == "cached" && i == 0 {
                let full = get(&url);
                full.assert_complete("priming GET");
                assert_bytes_eq("priming GET", &full.body, &truth);
            }
            let what = format!("{phase} HEAD vs GET, Range {range:?}");
            checks.check(&what, || {
                let hdrs: Vec<(&str, &str)> = range.iter().map(|r| ("Range", r.as_str())).collect();
                // HEAD first on uncached resources, so HEAD cannot lean on bytes GET cached.
                let head = http("HEAD", &url, &hdrs);
                let getr = http("GET", &url, &hdrs);
                assert!(head.body.is_empty(), "{what}: HEAD returned a body");
                assert_eq!(head.status, getr.status, "{what}: status");
                for h in headers_compared {
                    assert_eq!(head.header(h), getr.header(h), "{what}: header {h}");
                }
                if getr.status == 200 || getr.status == 206 {
                    assert!(getr.header("content-type").is_some(), "{what}: no Content-Type");
                }
                match range.as_deref().map(|r| (r, range_start(r))) {
                    None => assert_bytes_eq(&what, &getr.body, &truth),
                    Some((_, Some(10))) => assert_bytes_eq(&what, &getr.body, &truth[10..=20]),
                    Some(("bytes=-100", _)) => assert_bytes_eq(&what, &getr.body, &truth[LEN - 100..]),
                    _ => assert_eq!(getr.status, 416, "{what}"),
                }
            });
        }
    }
    checks.finish();
}

/// `Content-Type` comes from the backend (SPEC §4.3), for a GET, a range and a HEAD, and stays the
/// same once the resource is served from cache.
#[test]
fn content_type_follows_the_backend() {
    let origin = Origin::start(&[]);
    let truth = seeded_bytes(0xC7, 100_000);
    origin.put_file("song.mp3", &truth);
    let server = Server::start(&[&origin]);
    let url = server.stream_url(&origin, "song.mp3");
    let direct = http("HEAD", &format!("{}song.mp3", origin.url), &[]);
    let want = direct.header("content-type").expect("origin Content-Type").to_string();
    for (what, r) in [
        ("HEAD uncached", http("HEAD", &url, &[])),
        ("GET range", get_range(&url, "bytes=0-99")),
        ("GET full", get(&url)),
        ("GET cached", get(&url)),
        ("HEAD cached", http("HEAD", &url, &[])),
    ] {
        assert_eq!(r.header("content-type"), Some(want.as_str()), "{what}");
    }
}

/// A resource with scattered cached islands: every case must stitch cached and fetched bytes
/// exactly, and the origin must only be asked for what is missing.
#[test]
fn ranges_partially_cached() {
    let (origin, server, truth) = setup();
    let path = format!("{FILE}?v=islands");
    let url = server.stream_url(&origin, &path);
    for (start, end) in [(100, 199), (300_000, 399_999), (LEN - 1000, LEN - 1)] {
        let r = get_range(&url, &format!("bytes={start}-{end}"));
        check_case("priming island", &r, &Expect::Partial(start, end), &truth);
    }
    let mut checks = Checks::default();
    let mut extra: Vec<(String, Expect)> = vec![
        ("bytes=50-250".into(), Expect::Partial(50, 250)),
        ("bytes=150-350000".into(), Expect::Partial(150, 350_000)),
        ("bytes=299990-400010".into(), Expect::Partial(299_990, 400_010)),
        (format!("bytes={}-", LEN - 2000), Expect::Partial(LEN - 2000, LEN - 1)),
    ];
    extra.extend(cases());
    for (range, expect) in extra {
        let what = format!("islands Range: {range}");
        checks.check(&what, || {
            let r = get_range(&url, &range);
            check_case(&what, &r, &expect, &truth);
        });
    }
    checks.check("islands full GET", || {
        let r = get(&url);
        check_case("islands full GET", &r, &Expect::Full, &truth);
    });
    checks.finish();
}

/// The catalog route behaves like the stream route: ranges byte-exact and HEAD = GET headers,
/// before and after the bytes are cached.
#[test]
fn track_route_ranges_and_head() {
    let (origin, server, truth) = setup();
    server.put_track(
        "r1",
        &serde_json::json!({"url": format!("{}{FILE}", origin.url), "size": LEN}),
    );
    let url = server.track_url("r1");
    let mut checks = Checks::default();
    for pass in ["first", "second"] {
        for (range, expect) in cases() {
            let what = format!("{pass} pass, tracks/r1 Range: {range}");
            checks.check(&what, || {
                let head = http("HEAD", &url, &[("Range", &range)]);
                let r = get_range(&url, &range);
                check_case(&what, &r, &expect, &truth);
                assert!(head.body.is_empty(), "{what}: HEAD returned a body");
                assert_eq!(head.status, r.status, "{what}: HEAD status");
                for h in [
                    "content-length",
                    "content-range",
                    "etag",
                    "content-type",
                    "accept-ranges",
                ] {
                    assert_eq!(head.header(h), r.header(h), "{what}: HEAD header {h}");
                }
            });
        }
    }
    checks.finish();
}
