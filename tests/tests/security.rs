//! Security and bad input (SPEC §4.2, §8): every route but `/healthz` needs the path token (a
//! wrong or missing one gets 403 and learns nothing), the server is not an open proxy (unlisted
//! origins get 403 and are never contacted), no path-traversal form reaches the filesystem, and
//! bad JSON, unknown IDs and wrong methods get 4xx with a JSON `error`, after which the server
//! still answers.

use integration_tests::*;

/// Content that identifies `/etc/passwd` (present on every Linux host).
const PASSWD_MARKER: &str = "root:";

fn setup() -> (Origin, Server) {
    let origin = Origin::start(&[]);
    origin.put_file("ok.bin", &seeded_bytes(0x5EC, 10_000));
    let server = Server::start(&[&origin]);
    (origin, server)
}

#[test]
fn healthz_is_open_and_says_ok() {
    let (_origin, server) = setup();
    let r = get(&format!("{}healthz", server.root_url()));
    assert_eq!(r.status, 200);
    assert_eq!(r.text().trim(), "ok");
}

#[test]
fn wrong_or_missing_token_is_403_everywhere() {
    let (origin, server) = setup();
    // Same length as the real token, every character different.
    let wrong: String = server.token.chars().map(|c| if c == 'a' { 'b' } else { 'a' }).collect();
    let root = server.root_url();
    let routes = [
        format!("stream/http/{}/ok.bin", origin.host_port()),
        "tracks/t1".to_string(),
        "api/tracks".to_string(),
        "api/tracks/t1".to_string(),
        "api/stats".to_string(),
    ];
    for route in &routes {
        for (label, url) in [
            ("wrong token", format!("{root}{wrong}/{route}")),
            ("missing token", format!("{root}{route}")),
            (
                "truncated token",
                format!("{root}{}/{route}", &server.token[..server.token.len() / 2]),
            ),
        ] {
            for method in ["GET", "HEAD"] {
                let r = http(method, &url, &[]);
                assert_eq!(r.status, 403, "{label}: {method} {route} (body {:?})", r.text());
                assert!(
                    !r.text().contains(&server.token),
                    "{label}: {method} {route}: the 403 body reveals the token"
                );
                assert!(
                    r.headers.iter().all(|(_, v)| !v.contains(&server.token)),
                    "{label}: {method} {route}: a 403 header reveals the token"
                );
            }
        }
    }
    let r = http_with_body(
        "PUT",
        &format!("{root}{wrong}/api/tracks/t1"),
        &[],
        r#"{"url":"http://127.0.0.1:1/x"}"#,
    );
    assert_eq!(r.status, 403, "PUT api/tracks with a wrong token");
    assert!(
        origin.log().is_empty(),
        "requests with a wrong token reached the origin: {:?}",
        origin.log()
    );
    // The real token still works.
    let ok = get(&server.stream_url(&origin, "ok.bin"));
    assert_eq!(ok.status, 200);
}

#[test]
fn unlisted_origin_is_403_and_never_contacted() {
    let (_listed, server) = setup();
    let unlisted = Origin::start(&[]);
    unlisted.put_file("ok.bin", &seeded_bytes(1, 1000));
    let r = get(&server.stream_url(&unlisted, "ok.bin"));
    r.assert_json_error("stream from an unlisted origin", 403);
    let r = get(&format!("{}stream/http/example.com/x.mp3", server.base));
    assert_eq!(r.status, 403, "stream from an unlisted host name");
    assert!(
        unlisted.log().is_empty(),
        "the unlisted origin was contacted: {:?}",
        unlisted.log()
    );
}

#[test]
fn path_traversal_never_reaches_the_filesystem() {
    let (origin, server) = setup();
    let hp = origin.host_port();
    let base = &server.base;
    let root = server.root_url();
    let attempts = [
        format!("{base}stream/http/{hp}/../../etc/passwd"),
        format!("{base}stream/http/{hp}/../../../../../../etc/passwd"),
        format!("{base}stream/http/{hp}/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        format!("{base}stream/http/{hp}/..%2f..%2f..%2f..%2fetc%2fpasswd"),
        format!("{base}stream/http/{hp}/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"),
        format!("{base}stream/file/etc/passwd"),
        format!("{base}stream/file//etc/passwd"),
        format!("{base}stream/http/..%2f..%2fetc/passwd"),
        format!("{base}tracks/..%2f..%2f..%2fetc%2fpasswd"),
        format!("{base}tracks/../../../../etc/passwd"),
        format!("{base}../../../../etc/passwd"),
        format!("{base}%2e%2e/%2e%2e/etc/passwd"),
        format!("{root}../../../../etc/passwd"),
        format!("{root}%2e%2e/%2e%2e/etc/passwd"),
        format!("{base}api/tracks/..%2f..%2fetc%2fpasswd"),
    ];
    for url in &attempts {
        let r = curl(&[], url);
        assert!(
            r.body_error.is_none() || r.status != 0,
            "{url}: no HTTP answer: {:?}",
            r.body_error
        );
        assert!(
            [400, 403, 404].contains(&r.status),
            "{url}: expected 400/403/404, got {} (body {:?})",
            r.status,
            r.text().chars().take(200).collect::<String>()
        );
        assert!(
            !r.text().contains(PASSWD_MARKER),
            "{url}: response contains /etc/passwd content"
        );
    }
    let health = get(&format!("{root}healthz"));
    assert_eq!(health.status, 200, "server unhealthy after traversal attempts");
}

#[test]
fn bad_input_gets_json_4xx_and_server_survives() {
    let (origin, server) = setup();
    let track_api = server.api_url("tracks/t-bad");

    for body in ["{not json", "", "[]", "{\"url\": 5}", "{\"size\": 10}", "null"] {
        let r = http_with_body("PUT", &track_api, &[("Content-Type", "application/json")], body);
        r.assert_json_error(&format!("PUT api/tracks with body {body:?}"), 400);
    }
    let r = http("GET", &server.api_url("tracks/no-such-track"), &[]);
    r.assert_json_error("GET api/tracks/unknown", 404);
    let r = http("GET", &server.track_url("no-such-track"), &[]);
    r.assert_json_error("GET tracks/unknown", 404);

    // A registered track, so wrong methods are not confused with unknown IDs.
    server.put_track("t-ok", &serde_json::json!({"url": format!("{}ok.bin", origin.url)}));
    let stream = server.stream_url(&origin, "ok.bin");
    for (method, url) in [
        ("POST", server.track_url("t-ok")),
        ("DELETE", server.track_url("t-ok")),
        ("PUT", server.track_url("t-ok")),
        ("DELETE", stream.clone()),
        ("POST", stream.clone()),
        ("PUT", stream.clone()),
        ("DELETE", server.api_url("stats")),
    ] {
        let r = http_with_body(method, &url, &[], "");
        r.assert_json_error(&format!("{method} {url}"), 405);
    }

    // Backend 404 maps to 404.
    let r = get(&server.stream_url(&origin, "missing-file.bin"));
    r.assert_json_error("stream of a file the backend does not have", 404);

    let health = get(&format!("{}healthz", server.root_url()));
    assert_eq!(health.status, 200, "server unhealthy after bad input");
    let ok = get(&server.track_url("t-ok"));
    assert_eq!(ok.status, 200, "registered track after bad input");
    assert_bytes_eq("registered track", &ok.body, &seeded_bytes(0x5EC, 10_000));
}

#[test]
fn default_token_is_long_and_fresh_per_start() {
    let origin = Origin::start(&[]);
    let a = Server::start(&[&origin]);
    let b = Server::start(&[&origin]);
    // >= 128 bits: at least 32 hex digits or 22 base64 characters.
    assert!(a.token.len() >= 22, "token too short for 128 bits: {:?}", a.token);
    assert_ne!(a.token, b.token, "two starts got the same token");
    let given = Server::start_with(None, &[origin.origin_arg()], &["--token", "given-token-123"]);
    assert_eq!(given.token, "given-token-123", "--token not honoured");
    let r = get(&given.api_url("stats"));
    assert_eq!(r.status, 200);
}

#[test]
fn upstream_credentials_are_sent_and_never_logged() {
    const SECRET: &str = "Bearer t0k-0f-the-upstream-9f3c";
    let origin = Origin::start(&["--require-auth", SECRET]);
    let truth = seeded_bytes(0xA07, 200_000);
    origin.put_file("auth.bin", &truth);
    let mut server = Server::start_with(
        None,
        &[origin.origin_arg()],
        &["--header", &format!("Authorization: {SECRET}")],
    );
    let r = get(&server.stream_url(&origin, "auth.bin"));
    assert_eq!(r.status, 200, "with the configured header: {:?}", r.text());
    r.assert_complete("authorised stream");
    assert_bytes_eq("authorised stream", &r.body, &truth);
    let log = origin.log_for("/auth.bin");
    assert!(
        !log.is_empty() && log.iter().all(|e| e.authorization),
        "every upstream request must carry Authorization: {log:?}"
    );
    let stderr = server.proc().stderr_all();
    assert!(
        !stderr.contains("t0k-0f-the-upstream"),
        "the upstream credential appears in the server's log output"
    );
}

/// Request limits (SPEC §8): an oversized header block and an oversized JSON body are refused
/// with a 4xx (or the connection is closed), and the server keeps serving.
#[test]
fn oversized_headers_and_bodies_are_refused() {
    let (origin, server) = setup();
    let big_header = "x".repeat(256 * 1024);
    match try_http("GET", &server.api_url("stats"), &[("X-Big", &big_header)], None) {
        Ok(r) => assert!(
            (400..500).contains(&r.status),
            "256 KiB header: expected 4xx (431), got {}",
            r.status
        ),
        Err(_closed) => {} // refusing by closing the connection is acceptable
    }
    let big_json = format!(
        r#"{{"url": "{}ok.bin", "mime": "{}"}}"#,
        origin.url,
        "a".repeat(16 * 1024 * 1024)
    );
    match try_http("PUT", &server.api_url("tracks/huge"), &[], Some(&big_json)) {
        Ok(r) => assert!(
            (400..500).contains(&r.status),
            "16 MiB JSON body: expected 4xx (413), got {}",
            r.status
        ),
        Err(_closed) => {}
    }
    let r = http("GET", &server.api_url("tracks/huge"), &[]);
    assert_eq!(r.status, 404, "the oversized registration must not have been stored");
    let health = get(&format!("{}healthz", server.root_url()));
    assert_eq!(health.status, 200, "server unhealthy after oversized requests");
}
