//! Structured logs (the observability issue): with `RUST_LOG=debug`, `streamer serve` writes a
//! `request` span per request (id, method, route, range, status, bytes, duration) and a `fill`
//! span per upstream fetch (start, upstream status, retries) — and never a secret. The upstream
//! credential (`--header`), a signed query string and the path token must not appear anywhere in
//! stderr, with one deliberate exception: the single start-up line that logs the dashboard URL,
//! which is how a developer finds the token in logcat (README, "Debug on a phone").

use std::time::Duration;

use integration_tests::*;
use serde_json::json;

const CREDENTIAL: &str = "SECRET-XYZ";
const QUERY_SECRET: &str = "QUERYSECRET";
const TOKEN: &str = "tok-logcheck-7f3a9c2e";

#[test]
fn request_and_fill_spans_are_logged_without_secrets() {
    let auth = format!("Bearer {CREDENTIAL}");
    let origin = Origin::start(&["--require-auth", &auth]);
    let truth = seeded_bytes(0x106, 300 * KIB);
    origin.put_file("song.bin", &truth);
    origin.put_file("track.bin", &truth);
    let mut server = Server::start_with_env(
        None,
        &[origin.origin_arg()],
        &["--header", &format!("Authorization: {auth}"), "--token", TOKEN],
        &[("RUST_LOG", "debug")],
    );

    // A stream with a signed-looking query: a miss (fill), then a cached range.
    let signed = server.stream_url(&origin, &format!("song.bin?sig={QUERY_SECRET}"));
    let r = get(&signed);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_bytes_eq("signed stream", &r.body, &truth);
    let r = get_range(&signed, "bytes=1000-1999");
    assert_eq!(r.status, 206);
    assert_bytes_eq("cached range", &r.body, &truth[1000..2000]);
    // A catalog track whose URL is signed, read from the middle (a fill that starts there).
    server.put_track(
        "t1",
        &json!({"url": format!("{}track.bin?sig={QUERY_SECRET}", origin.url)}),
    );
    let r = get_range(&server.track_url("t1"), "bytes=100000-100099");
    assert_eq!(r.status, 206);
    assert_bytes_eq("track range", &r.body, &truth[100_000..100_100]);
    // The API, the dashboard, and a wrong token.
    assert_eq!(get(&server.api_url("stats")).status, 200);
    assert_eq!(get(&server.base).status, 200);
    let wrong = format!("{}WRONG-{TOKEN}/tracks/t1?sig={QUERY_SECRET}", server.root_url());
    assert_eq!(get(&wrong).status, 403);

    // The last body's end is logged by its producer task after the client has the bytes.
    let mut log = String::new();
    wait_until(Duration::from_secs(10), "three media bodies logged as ended", || {
        log = server.proc().stderr_all();
        log.matches("response body ended").count() >= 3
    });

    let request_lines: Vec<&str> = log.lines().filter(|l| l.contains("request{")).collect();
    let has = |needles: &[&str]| request_lines.iter().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(
        has(&[
            r#"route="stream""#,
            "status=200",
            "bytes=307200",
            "duration_ms=",
            "response body ended"
        ]),
        "no finished span for the streamed miss:\n{log}"
    );
    assert!(
        has(&[
            r#"route="stream""#,
            r#"range="bytes=1000-1999""#,
            "status=206",
            "bytes=1000"
        ]),
        "no span for the cached range:\n{log}"
    );
    assert!(
        has(&[r#"route="tracks/:id""#, r#"range="bytes=100000-100099""#, "status=206"]),
        "no span for the track range:\n{log}"
    );
    assert!(
        has(&[r#"route="api/stats""#, "status=200", "response head"]),
        "no API span:\n{log}"
    );
    assert!(
        has(&[r#"route="dashboard""#, "status=200"]),
        "no dashboard span:\n{log}"
    );
    assert!(
        has(&[r#"route="forbidden""#, "status=403"]),
        "no span for the wrong token:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("fill{")
            && l.contains("start=100000")
            && l.contains("upstream_status=206")
            && l.contains("retries=0")),
        "no fill span with its upstream status:\n{log}"
    );
    // Request ids are distinct.
    let ids: std::collections::BTreeSet<&str> = request_lines
        .iter()
        .filter_map(|l| l.split("request{id=").nth(1)?.split(' ').next())
        .collect();
    assert!(ids.len() >= 7, "expected a request id per request, got {ids:?}");

    for secret in [CREDENTIAL, QUERY_SECRET, "sig="] {
        assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
    let with_token: Vec<&str> = log.lines().filter(|l| l.contains(TOKEN)).collect();
    assert!(
        with_token.len() == 1 && with_token[0].contains("dashboard") && !with_token[0].contains("request{"),
        "the token may appear only in the one start-up line naming the dashboard, found: {with_token:#?}"
    );
}
