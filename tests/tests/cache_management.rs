//! Cache management through the real server (issue #13): clearing the evictable cache, changing
//! the cache limit at run time, how much of a URL is cached, removing a track, and the app's own
//! `data` on a download, kept across a restart. Every served body is compared with the truth and
//! every total with what must be left.

use std::time::Duration;

use integration_tests::*;
use serde_json::{json, Value};

/// Bound on a download finishing or a fill completing on loopback.
const FINISH: Duration = Duration::from_secs(30);

/// Registers track `id` serving `bytes` as the origin's file `name`.
fn add_track(server: &Server, origin: &Origin, id: &str, name: &str, bytes: &[u8]) {
    origin.put_file(name, bytes);
    server.put_track(
        id,
        &json!({ "url": format!("{}{name}", origin.url), "size": bytes.len() }),
    );
}

/// `METHOD BASE/api/REST` with a JSON body.
fn send(server: &Server, method: &str, rest: &str, body: &str) -> Resp {
    http_with_body(
        method,
        &server.api_url(rest),
        &[("Content-Type", "application/json")],
        body,
    )
}

/// Queues a download (`POST api/downloads`), expecting `202`; returns the download object.
#[track_caller]
fn enqueue(server: &Server, body: &Value) -> Value {
    let r = send(server, "POST", "downloads", &body.to_string());
    assert_eq!(r.status, 202, "POST api/downloads {body}: {}", r.text());
    r.json()
}

/// Waits until download `id` is `completed` (failing at once on `failed`).
#[track_caller]
fn wait_completed(server: &Server, id: &str) {
    wait_until(FINISH, &format!("download {id} completes"), || {
        let d = server.api_get(&format!("downloads/{id}"));
        assert_ne!(json_str(&d, "state"), "failed", "{d}");
        json_str(&d, "state") == "completed"
    });
}

/// Plays track `id` to the end and checks every byte.
#[track_caller]
fn play(server: &Server, id: &str, truth: &[u8]) {
    let r = get(&server.track_url(id));
    r.assert_complete(id);
    assert_bytes_eq(id, &r.body, truth);
}

/// `(cache_bytes, pinned_bytes, entries)` of the stats.
fn totals(server: &Server) -> (u64, u64, u64) {
    let s = server.stats();
    (
        json_u64(&s, "cache_bytes"),
        json_u64(&s, "pinned_bytes"),
        json_u64(&s, "entries"),
    )
}

/// Waits until no resource but track `except`'s is read or filled: a response's reader is let go
/// just after its last byte is handed over, so a client that has every byte may be ahead of it.
#[track_caller]
fn wait_idle(server: &Server, except: Option<&str>) {
    wait_until(FINISH, "no resource is read or filled", || {
        server.api_get("resources").as_array().is_some_and(|list| {
            list.iter().all(|r| {
                r["track_id"].as_str().is_some_and(|t| Some(t) == except)
                    || (r["readers"] == json!(0) && r["fills"] == json!(0))
            })
        })
    });
}

/// GETs of the origin's file `name` so far.
fn fetches(origin: &Origin, name: &str) -> usize {
    origin
        .log_for(&format!("/{name}"))
        .iter()
        .filter(|e| e.method == "GET")
        .count()
}

/// `text` with every byte but `A-Z a-z 0-9 - . _ ~` percent-encoded (RFC 3986 §2.1).
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn clearing_the_cache_keeps_downloads_and_what_is_read_and_the_totals_exact() {
    let origin = Origin::start(&[]);
    let server = Server::start(&[&origin]);
    let played = seeded_bytes(0xC1, MIB);
    let kept = seeded_bytes(0xC2, MIB + 7);
    let held = seeded_bytes(0xC3, 4 * MIB);
    let other = seeded_bytes(0xC4, 300 * KIB);
    add_track(&server, &origin, "played", "played.bin", &played);
    add_track(&server, &origin, "kept", "kept.bin", &kept);
    add_track(&server, &origin, "held", "held.bin", &held);
    add_track(&server, &origin, "other", "other.bin", &other);

    play(&server, "played", &played);
    play(&server, "other", &other);
    let d = enqueue(&server, &json!({ "track": "kept" }));
    wait_completed(&server, json_str(&d, "id"));
    // A player holding `held` open without reading: its fill completes, its reader stays.
    let reader = SlowReader::open(&server.track_url("held"));
    assert_eq!(reader.status, 200);
    wait_until(FINISH, "the held track is cached", || {
        json_bool(&server.api_get("tracks/held"), "complete")
    });
    let all = (played.len() + kept.len() + held.len() + other.len()) as u64;
    assert_eq!(totals(&server), (all, kept.len() as u64, 4));
    wait_idle(&server, Some("held"));

    let r = send(&server, "DELETE", "cache", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let cleared = r.json();
    assert_eq!(json_u64(&cleared, "resources"), 2, "{cleared}");
    assert_eq!(
        json_u64(&cleared, "bytes"),
        (played.len() + other.len()) as u64,
        "{cleared}"
    );
    // The totals are exactly what stays: the download and the track being read.
    assert_eq!(
        totals(&server),
        ((kept.len() + held.len()) as u64, kept.len() as u64, 2)
    );
    for (id, cached) in [("played", 0), ("other", 0), ("kept", kept.len()), ("held", held.len())] {
        let t = server.api_get(&format!("tracks/{id}"));
        assert_eq!(json_u64(&t, "cached_bytes"), cached as u64, "{id}: {t}");
    }
    let usage = server.api_get("cache");
    assert_eq!(json_u64(&usage, "evictable_bytes"), held.len() as u64, "{usage}");

    // The reader still gets every byte; the download still plays from the cache.
    assert_bytes_eq("the held track", &reader.read_rest(), &held);
    let before = fetches(&origin, "kept.bin");
    play(&server, "kept", &kept);
    assert_eq!(
        fetches(&origin, "kept.bin"),
        before,
        "the download was served from the cache"
    );
    // What was cleared is fetched again, byte-exact.
    let before = fetches(&origin, "played.bin");
    play(&server, "played", &played);
    assert!(
        fetches(&origin, "played.bin") > before,
        "the cleared track came from the backend"
    );

    // Clearing again removes the track no longer read and the one played again (once the server
    // has let their readers go), and nothing else.
    wait_idle(&server, None);
    let cleared = send(&server, "DELETE", "cache", "").json();
    assert_eq!(
        json_u64(&cleared, "bytes"),
        (played.len() + held.len()) as u64,
        "{cleared}"
    );
    assert_eq!(totals(&server), (kept.len() as u64, kept.len() as u64, 1));
    send(&server, "POST", "cache", "{}").assert_json_error("POST api/cache", 405);
}

#[test]
fn a_lower_limit_evicts_at_once_least_recently_used_first() {
    let origin = Origin::start(&[]);
    let server = Server::start(&[&origin]);
    let tracks: Vec<(String, Vec<u8>)> = (1..=3)
        .map(|i| (format!("r{i}"), seeded_bytes(0xE0 + i, MIB)))
        .collect();
    let pinned = seeded_bytes(0xEF, MIB);
    add_track(&server, &origin, "p", "p.bin", &pinned);
    let d = enqueue(&server, &json!({ "track": "p" }));
    wait_completed(&server, json_str(&d, "id"));
    for (id, bytes) in &tracks {
        add_track(&server, &origin, id, &format!("{id}.bin"), bytes);
        play(&server, id, bytes);
    }
    assert_eq!(totals(&server), (4 * MIB as u64, MIB as u64, 4));
    wait_idle(&server, None);

    let limit = 2 * MIB + MIB / 2;
    let r = send(&server, "PUT", "cache", &json!({ "max_bytes": limit }).to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = r.json();
    // Evicted before the answer: r1 and r2 (least recently played); r3 and the download stay.
    assert_eq!(json_u64(&usage, "max_bytes"), limit as u64, "{usage}");
    assert_eq!(json_u64(&usage, "cache_bytes"), 2 * MIB as u64, "{usage}");
    assert_eq!(json_u64(&usage, "pinned_bytes"), MIB as u64, "{usage}");
    for (id, cached) in [("r1", 0), ("r2", 0), ("r3", MIB), ("p", MIB)] {
        let t = server.api_get(&format!("tracks/{id}"));
        assert_eq!(json_u64(&t, "cached_bytes"), cached as u64, "{id}: {t}");
    }
    assert_eq!(json_u64(&server.stats(), "max_cache_bytes"), limit as u64);
    assert_eq!(json_u64(&server.stats(), "evictions"), 2);

    // Below the download's bytes: every unpinned byte goes, the download stays whole.
    let usage = send(&server, "PUT", "cache", r#"{"max_bytes": 0}"#).json();
    assert_eq!(json_u64(&usage, "cache_bytes"), MIB as u64, "{usage}");
    assert_eq!(totals(&server), (MIB as u64, MIB as u64, 1));
    play(&server, "p", &pinned);
    // The limit holds for what is played next: r1 plays, byte-exact, and is evicted after.
    play(&server, "r1", &tracks[0].1);
    let back = send(&server, "PUT", "cache", &json!({ "max_bytes": 8 * MIB }).to_string()).json();
    assert_eq!(json_u64(&back, "max_bytes"), 8 * MIB as u64, "{back}");

    for (body, what) in [
        (r#"{"max_bytes": -1}"#, "a negative limit"),
        (r#"{"max_bytes": "big"}"#, "a limit that is not a number"),
        (r#"{"limit": 5}"#, "an unknown field"),
        ("nope", "bad JSON"),
    ] {
        send(&server, "PUT", "cache", body).assert_json_error(what, 400);
    }
    assert_eq!(json_u64(&server.stats(), "max_cache_bytes"), 8 * MIB as u64);
}

#[test]
fn cached_tells_how_much_of_a_url_is_kept() {
    let origin = Origin::start(&[]);
    let server = Server::start(&[&origin]);
    let truth = seeded_bytes(0xCA, 700 * KIB);
    origin.put_file("song.bin", &truth);
    let remote = format!("{}song.bin", origin.url);
    let query = |url: &str| format!("cached?url={}", percent_encoded(url));

    let none = server.api_get(&query(&remote));
    assert_eq!(
        (
            json_u64(&none, "cached_bytes"),
            json_bool(&none, "complete"),
            json_bool(&none, "pinned")
        ),
        (0, false, false),
        "{none}"
    );
    let r = get_range(&server.stream_url(&origin, "song.bin"), "bytes=0-99999");
    assert_eq!(r.status, 206);
    assert_bytes_eq("the first 100000 bytes", &r.body, &truth[..100_000]);
    wait_until(FINISH, "the range is cached", || {
        json_u64(&server.api_get(&query(&remote)), "cached_bytes") >= 100_000
    });
    let r = get(&server.stream_url(&origin, "song.bin"));
    assert_bytes_eq("the whole song", &r.body, &truth);
    let all = server.api_get(&query(&remote));
    assert_eq!(json_u64(&all, "cached_bytes"), truth.len() as u64, "{all}");
    assert_eq!(json_u64(&all, "size"), truth.len() as u64, "{all}");
    assert!(json_bool(&all, "complete"), "{all}");
    assert_eq!(json_str(&all, "url"), remote);

    http("GET", &server.api_url("cached"), &[]).assert_json_error("no url", 400);
    http("GET", &server.api_url(&query("not a url")), &[]).assert_json_error("a bad URL", 400);
    http("GET", &server.api_url(&query("https://elsewhere.example/x")), &[])
        .assert_json_error("an origin not allowed", 403);
}

#[test]
fn removing_a_track_cancels_its_download_and_frees_its_bytes() {
    let origin = Origin::start(&[]);
    let cache = tempfile::tempdir().expect("cache dir");
    let server = Server::start_with(Some(cache.path()), &[origin.origin_arg()], &[]);
    let gone = seeded_bytes(0xD1, MIB);
    let stays = seeded_bytes(0xD2, 200 * KIB);
    add_track(&server, &origin, "gone", "gone.bin", &gone);
    add_track(&server, &origin, "stays", "stays.bin", &stays);
    play(&server, "stays", &stays);
    let d = enqueue(&server, &json!({ "track": "gone" }));
    let id = json_str(&d, "id").to_string();
    wait_completed(&server, &id);

    let r = send(&server, "DELETE", "tracks/gone", "");
    assert_eq!(r.status, 200, "{}", r.text());
    http("GET", &server.api_url("tracks/gone"), &[]).assert_json_error("the removed track", 404);
    http("GET", &server.api_url(&format!("downloads/{id}")), &[]).assert_json_error("its download", 404);
    assert_eq!(http("GET", &server.track_url("gone"), &[]).status, 404);
    assert_eq!(totals(&server), (stays.len() as u64, 0, 1));
    send(&server, "DELETE", "tracks/gone", "").assert_json_error("removing it twice", 404);
    let mut server = server;
    assert!(server.proc().terminate(FINISH).success(), "a clean stop");

    // Still gone after a restart; the other track still plays from the cache.
    let server = Server::start_with(Some(cache.path()), &[origin.origin_arg()], &[]);
    http("GET", &server.api_url("tracks/gone"), &[]).assert_json_error("after the restart", 404);
    assert!(server.api_get("downloads").as_array().is_some_and(Vec::is_empty));
    let before = fetches(&origin, "stays.bin");
    play(&server, "stays", &stays);
    assert_eq!(fetches(&origin, "stays.bin"), before);
}

#[test]
fn download_data_is_kept_returned_and_survives_a_restart() {
    let origin = Origin::start(&[]);
    let cache = tempfile::tempdir().expect("cache dir");
    let server = Server::start_with(Some(cache.path()), &[origin.origin_arg()], &[]);
    let truth = seeded_bytes(0xDA, 100 * KIB);
    add_track(&server, &origin, "t", "t.bin", &truth);
    let data = r#"{"title": "Ünïcödé ♫", "album": 42}"#;

    let d = enqueue(&server, &json!({ "track": "t", "data": data }));
    let id = json_str(&d, "id").to_string();
    assert_eq!(json_str(&d, "data"), data);
    wait_completed(&server, &id);
    assert_eq!(json_str(&server.api_get(&format!("downloads/{id}")), "data"), data);
    let listed = server.api_get("downloads");
    assert_eq!(listed[0]["data"], json!(data), "{listed}");

    let patch = |body: &str| send(&server, "PATCH", &format!("downloads/{id}"), body);
    let r = patch(r#"{"data": null}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"], Value::Null);
    let most = "x".repeat(16 * 1024);
    assert_eq!(
        json_str(&patch(&json!({ "data": most }).to_string()).json(), "data"),
        most
    );
    let r = patch(&json!({ "data": format!("{most}x") }).to_string());
    r.assert_json_error("data over 16 KiB", 400);
    assert!(r.text().contains("at most 16384 bytes"), "{}", r.text());
    patch(r#"{"title": "x"}"#).assert_json_error("an unknown field", 400);
    patch("{}").assert_json_error("no data field", 400);
    patch(r#"{"data": 5}"#).assert_json_error("data that is not a string", 400);
    send(&server, "PATCH", "downloads/dnope", r#"{"data": "x"}"#).assert_json_error("an unknown download", 404);
    let big = json!({ "track": "t", "data": format!("{most}x") }).to_string();
    send(&server, "POST", "downloads", &big).assert_json_error("a new download with too much data", 400);
    let kept = "kept across a restart";
    assert_eq!(
        json_str(&patch(&json!({ "data": kept }).to_string()).json(), "data"),
        kept
    );
    // Queueing the same track again without data keeps the data it has.
    assert_eq!(json_str(&enqueue(&server, &json!({ "track": "t" })), "data"), kept);
    // kill -9: the data was recorded before each call answered.
    drop(server);

    let server = Server::start_with(Some(cache.path()), &[origin.origin_arg()], &[]);
    let d = server.api_get(&format!("downloads/{id}"));
    assert_eq!(json_str(&d, "data"), kept, "{d}");
    // Bytes written since the last sync were not recorded before kill -9: the download resumes
    // (or is done), and keeps its data throughout.
    wait_completed(&server, &id);
    assert_eq!(json_str(&server.api_get(&format!("downloads/{id}")), "data"), kept);
    play(&server, "t", &truth);
}
