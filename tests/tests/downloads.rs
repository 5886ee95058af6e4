//! The downloader (SPEC §4.2 downloads/network/prefetch routes, §5 pins and eviction, §6): tracks
//! and URLs downloaded for offline listening through `POST /TOKEN/api/downloads`, driven against
//! the real `streamer serve` and the faulty dev origin. Every test ends by comparing served bytes
//! with the seeded truth, usually with the origin killed so the bytes can only come from the
//! cache: a download that says `completed` but cannot play offline is the failure that matters.
//! The scenarios are the ones a phone meets: a checksum that does not match, `kill -9` mid-download
//! (resume with `Range` from the recorded bytes), connections cut mid-body, going offline or onto a
//! metered network (the gate stops downloads, never players), pins against the cache limit, a full
//! disk (a real tmpfs, so this file needs root), cancel, a player and a download sharing one fill,
//! priorities with one worker, prefetch, and bad requests. Waiting is always bounded polling of
//! the download's observable state; "nothing moves" is a bounded poll for a change that must not
//! come, never a sleep.

use std::path::PathBuf;
use std::time::Duration;

use integration_tests::*;
use serde_json::{json, Value};

/// Bound for a download over an unthrottled loopback origin to reach a final state.
const FINISH: Duration = Duration::from_secs(20);
/// Bound for a state change the server makes on its own (running, waiting, paused...).
const STATE_CHANGE: Duration = Duration::from_secs(10);
/// How long "this must not move" is watched.
const QUIET_WINDOW: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------------------------
// Helpers over the downloads API
// ---------------------------------------------------------------------------------------------

/// `streamer serve` over a fresh cache directory, allowed to fetch from `origin`, plus `extra`.
fn serve(origin: &Origin, extra: &[&str]) -> Server {
    Server::start_with(None, &[origin.origin_arg()], extra)
}

/// Puts `bytes` on the origin as `name` and registers track `id` for it with its size and, when
/// given, a sha256.
fn add_track(server: &Server, origin: &Origin, id: &str, name: &str, bytes: &[u8], sha256: Option<&str>) {
    origin.put_file(name, bytes);
    let mut spec = json!({
        "url": format!("{}{name}", origin.url),
        "size": bytes.len(),
        "mime": "application/octet-stream",
    });
    if let Some(sha) = sha256 {
        spec["sha256"] = json!(sha);
    }
    server.put_track(id, &spec);
}

/// `POST BASE/api/REST` with a JSON (or deliberately broken) body.
fn post(server: &Server, rest: &str, body: &str) -> Resp {
    http_with_body(
        "POST",
        &server.api_url(rest),
        &[("Content-Type", "application/json")],
        body,
    )
}

/// `POST BASE/api/downloads` expecting `202` and a download object with an `id`; returns it.
#[track_caller]
fn enqueue(server: &Server, body: &Value) -> Value {
    let r = post(server, "downloads", &body.to_string());
    assert_eq!(r.status, 202, "POST api/downloads {body}: {}", r.text());
    let v = r.json();
    assert!(
        v.get("id").and_then(Value::as_str).is_some_and(|s| !s.is_empty()),
        "POST api/downloads {body}: the answer lacks a string `id`: {v}"
    );
    v
}

/// The id of a download object.
fn id_of(v: &Value) -> String {
    json_str(v, "id").to_string()
}

/// `GET BASE/api/downloads/ID`, expecting 200.
#[track_caller]
fn download(server: &Server, id: &str) -> Value {
    server.api_get(&format!("downloads/{id}"))
}

/// The download's `state`.
#[track_caller]
fn state(server: &Server, id: &str) -> String {
    json_str(&download(server, id), "state").to_string()
}

/// The download's `bytes_done`.
#[track_caller]
fn bytes_done(server: &Server, id: &str) -> u64 {
    json_u64(&download(server, id), "bytes_done")
}

/// Polls the download until its state is `want` and returns it. Reaching another *final* state
/// (`completed` or `failed`) first fails at once, with the object, instead of waiting out the bound.
#[track_caller]
fn wait_state(server: &Server, id: &str, want: &str, timeout: Duration) -> Value {
    wait_for(
        timeout,
        &format!("download {id} is {want}"),
        || download(server, id),
        |v| {
            let s = json_str(v, "state");
            if s != want && (s == "completed" || s == "failed") {
                panic!("download {id} ended `{s}` while waiting for `{want}`: {v}");
            }
            s == want
        },
    )
}

/// Waits for `completed` and checks the object says so consistently (all bytes, no error, pinned).
#[track_caller]
fn wait_completed(server: &Server, id: &str, len: usize) -> Value {
    let v = wait_state(server, id, "completed", FINISH);
    assert_eq!(
        json_u64(&v, "bytes_done"),
        len as u64,
        "bytes_done of a completed download: {v}"
    );
    assert_eq!(
        v.get("bytes_total").and_then(Value::as_u64),
        Some(len as u64),
        "bytes_total of a completed download: {v}"
    );
    assert!(v["error"].is_null(), "a completed download has no error: {v}");
    assert!(json_bool(&v, "pinned"), "a completed download is pinned: {v}");
    v
}

/// Waits for `failed` and returns the error text.
#[track_caller]
fn wait_failed(server: &Server, id: &str) -> String {
    let v = wait_state(server, id, "failed", FINISH);
    assert!(!json_bool(&v, "pinned"), "a failed download is not pinned: {v}");
    v.get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("a failed download carries a string `error`: {v}"))
        .to_string()
}

/// `POST BASE/api/network`, checking the answer echoes the new state.
#[track_caller]
fn set_network(server: &Server, online: bool, metered: bool) {
    let r = post(
        server,
        "network",
        &json!({"online": online, "metered": metered}).to_string(),
    );
    assert_eq!(r.status, 200, "POST api/network: {}", r.text());
    let v = r.json();
    assert_eq!(
        (
            v.get("online").and_then(Value::as_bool),
            v.get("metered").and_then(Value::as_bool)
        ),
        (Some(online), Some(metered)),
        "POST api/network answer: {v}"
    );
}

/// `GET BASE/api/tracks/ID`.
#[track_caller]
fn track(server: &Server, id: &str) -> Value {
    server.api_get(&format!("tracks/{id}"))
}

/// Polls `probe` until `ok` holds for what it returns, and returns that; on timeout the panic
/// shows the last value seen, so a failure says how far things got.
#[track_caller]
fn wait_for<T: std::fmt::Display>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> T,
    mut ok: impl FnMut(&T) -> bool,
) -> T {
    let mut last = None;
    let done = poll_until(timeout, || {
        let v = probe();
        let hit = ok(&v);
        last = Some(v);
        hit
    });
    let last = last.expect("polled at least once");
    assert!(
        done,
        "timed out after {timeout:?} waiting until {what}; last seen: {last}"
    );
    last
}

/// Asserts that what `probe` returns keeps satisfying `holds` for the whole `window`: a bounded
/// poll for something that must not happen, failing at once (with the value) when it does.
#[track_caller]
fn assert_holds<T: std::fmt::Display>(
    window: Duration,
    what: &str,
    mut probe: impl FnMut() -> T,
    mut holds: impl FnMut(&T) -> bool,
) {
    let mut broken = None;
    poll_until(window, || {
        let v = probe();
        if holds(&v) {
            return false;
        }
        broken = Some(v);
        true
    });
    if let Some(v) = broken {
        panic!("{what}: no longer true within {window:?}; seen: {v}");
    }
}

/// Bytes that may still land after a download reports it stopped: none. The product drops the
/// download's reader registration before it publishes `paused` / `waiting_for_network`, and a
/// fill writes nothing once its resource has no reader.
const IN_FLIGHT_SLACK: u64 = 0;

/// Asserts that a download now in `state` has stopped moving, and returns where it stopped: over
/// one window it stays in `state` and gains at most [`IN_FLIGHT_SLACK`] (a running download
/// behind the tests' 256 KiB/s origin gains several times that), over the next it gains nothing.
#[track_caller]
fn assert_stopped(server: &Server, id: &str, state: &str) -> u64 {
    let at_stop = bytes_done(server, id);
    assert_holds(
        QUIET_WINDOW,
        &format!("{id} stays {state} within {IN_FLIGHT_SLACK} bytes of the {at_stop} done when it stopped"),
        || download(server, id),
        |v| json_str(v, "state") == state && json_u64(v, "bytes_done") <= at_stop + IN_FLIGHT_SLACK,
    );
    let held = bytes_done(server, id);
    assert_holds(
        QUIET_WINDOW,
        &format!("{id} stays {state} with bytes_done at {held}"),
        || download(server, id),
        |v| json_str(v, "state") == state && json_u64(v, "bytes_done") == held,
    );
    held
}

/// GETs `url` and asserts a complete `200` with exactly `truth`.
#[track_caller]
fn assert_serves(what: &str, url: &str, truth: &[u8]) {
    let r = get(url);
    assert_eq!(
        r.status,
        200,
        "{what}: status, body {:?}",
        r.text().chars().take(200).collect::<String>()
    );
    r.assert_complete(what);
    assert_bytes_eq(what, &r.body, truth);
}

/// Checks a download object has every documented field with its documented type.
#[track_caller]
fn assert_download_shape(v: &Value) {
    let fields = v
        .as_object()
        .unwrap_or_else(|| panic!("a download is a JSON object: {v}"));
    let id = fields.get("id").and_then(Value::as_str);
    assert!(id.is_some_and(|s| !s.is_empty()), "`id` is a non-empty string: {v}");
    assert!(
        fields.get("track").is_some_and(|t| t.is_null() || t.is_string()),
        "`track` is a string or null: {v}"
    );
    assert!(
        fields.get("url").is_some_and(Value::is_string),
        "`url` is a string: {v}"
    );
    let state = fields.get("state").and_then(Value::as_str).unwrap_or("");
    assert!(
        [
            "queued",
            "running",
            "waiting_for_network",
            "paused",
            "completed",
            "failed"
        ]
        .contains(&state),
        "`state` is one of the documented states: {v}"
    );
    assert!(
        fields.get("bytes_done").is_some_and(Value::is_u64),
        "`bytes_done` is an integer: {v}"
    );
    assert!(
        fields.get("bytes_total").is_some_and(|t| t.is_null() || t.is_u64()),
        "`bytes_total` is an integer or null: {v}"
    );
    assert!(
        fields.get("error").is_some_and(|e| e.is_null() || e.is_string()),
        "`error` is a string or null: {v}"
    );
    assert!(
        fields.get("priority").is_some_and(Value::is_i64),
        "`priority` is an integer: {v}"
    );
    assert!(
        fields.get("pinned").is_some_and(Value::is_boolean),
        "`pinned` is a bool: {v}"
    );
}

/// GET requests the origin logged for `path` (with its leading slash).
fn gets_for(origin: &Origin, path: &str) -> Vec<LogEntry> {
    origin.log_for(path).into_iter().filter(|e| e.method == "GET").collect()
}

/// Faults with only a throttle.
fn throttled(bps: u64) -> Faults {
    Faults {
        throttle_bps: Some(bps),
        ..Faults::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Completion, verification, pinning
// ---------------------------------------------------------------------------------------------

#[test]
fn verified_download_completes_pinned_and_plays_with_the_origin_stopped() {
    const LEN: usize = 3 * MIB + 12_345;
    let mut origin = Origin::start(&[]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_01, LEN);
    add_track(&server, &origin, "t1", "t1.bin", &truth, Some(&sha256_hex(&truth)));

    let created = enqueue(&server, &json!({"track": "t1"}));
    assert_download_shape(&created);
    let id = id_of(&created);
    assert_eq!(created["track"], json!("t1"), "the download names its track: {created}");
    assert_eq!(
        json_str(&created, "url"),
        format!("{}t1.bin", origin.url),
        "the download's url is the track's: {created}"
    );
    assert_eq!(created["priority"], json!(0), "default priority: {created}");

    // The same track again is the same download, not a second one.
    let again = post(&server, "downloads", &json!({"track": "t1"}).to_string());
    assert!(
        matches!(again.status, 200 | 202),
        "POST the same track again: {}",
        again.text()
    );
    assert_eq!(
        id_of(&again.json()),
        id,
        "the same track posted again must return the existing download"
    );

    let done = wait_completed(&server, &id, LEN);
    assert_download_shape(&done);

    let list = server.api_get("downloads");
    let list = list
        .as_array()
        .unwrap_or_else(|| panic!("GET api/downloads is an array: {list}"));
    assert_eq!(list.len(), 1, "one download listed: {list:?}");
    assert_download_shape(&list[0]);
    assert_eq!(id_of(&list[0]), id);

    let t = track(&server, "t1");
    assert!(json_bool(&t, "pinned"), "the downloaded track is pinned: {t}");
    assert!(json_bool(&t, "complete"), "the downloaded track is complete: {t}");
    assert_eq!(json_u64(&t, "cached_bytes"), LEN as u64, "{t}");
    let stats = server.stats();
    assert!(
        json_u64(&stats, "pinned_bytes") >= LEN as u64,
        "stats pinned_bytes: {stats}"
    );
    assert_eq!(
        gets_for(&origin, "/t1.bin").len(),
        1,
        "one upstream fetch: {:?}",
        origin.log()
    );

    origin.kill();
    assert_serves(
        "downloaded track with the origin stopped",
        &server.track_url("t1"),
        &truth,
    );
    let r = get_range(&server.track_url("t1"), "bytes=1000000-1999999");
    assert_eq!(r.status, 206, "range of the downloaded track offline");
    assert_bytes_eq(
        "range of the downloaded track offline",
        &r.body,
        &truth[1_000_000..2_000_000],
    );
}

#[test]
fn url_download_plays_offline_through_the_stream_route() {
    const LEN: usize = MIB + 777;
    let mut origin = Origin::start(&[]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_02, LEN);
    origin.put_file("u.bin", &truth);
    let url = format!("{}u.bin", origin.url);

    let created = enqueue(&server, &json!({ "url": url }));
    assert_download_shape(&created);
    assert!(created["track"].is_null(), "a URL download has no track: {created}");
    assert_eq!(json_str(&created, "url"), url);
    let id = id_of(&created);
    let again = post(&server, "downloads", &json!({ "url": url }).to_string());
    assert!(
        matches!(again.status, 200 | 202),
        "POST the same url again: {}",
        again.text()
    );
    assert_eq!(
        id_of(&again.json()),
        id,
        "the same url posted again must return the existing download"
    );

    wait_completed(&server, &id, LEN);
    let stream = server.stream_url(&origin, "u.bin");
    origin.kill();
    assert_serves("URL download through stream/ with the origin stopped", &stream, &truth);
}

#[test]
fn checksum_mismatch_fails_and_the_bad_bytes_are_never_served() {
    const LEN: usize = 2 * MIB;
    let mut origin = Origin::start(&[]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_03, LEN);
    let wrong = sha256_hex(&seeded_bytes(0xBAD, LEN));
    add_track(&server, &origin, "bad", "bad.bin", &truth, Some(&wrong));

    let id = id_of(&enqueue(&server, &json!({"track": "bad"})));
    let error = wait_failed(&server, &id);
    assert!(
        error.contains("checksum mismatch"),
        "error of a sha256 mismatch: {error:?}"
    );

    // The bytes are dropped with the failure (bounded: the drop may finish just after the state).
    let t = wait_for(
        STATE_CHANGE,
        "the mismatching bytes are dropped (cached_bytes 0)",
        || track(&server, "bad"),
        |t| json_u64(t, "cached_bytes") == 0,
    );
    assert!(!json_bool(&t, "pinned"), "a failed download is not pinned: {t}");
    assert!(!json_bool(&t, "complete"), "dropped bytes are not complete: {t}");
    let stats = server.stats();
    assert_eq!(json_u64(&stats, "pinned_bytes"), 0, "{stats}");
    // A checksum mismatch is permanent: no retry fetches the same wrong bytes again.
    assert_eq!(
        gets_for(&origin, "/bad.bin").len(),
        1,
        "a checksum mismatch must not be retried: {:?}",
        origin.log()
    );

    origin.kill();
    let r = get(&server.track_url("bad"));
    r.assert_json_error("the track after a checksum mismatch, origin stopped", 502);
}

#[test]
fn delete_of_a_completed_download_unpins_and_frees_its_bytes() {
    const LEN: usize = MIB + 5;
    let origin = Origin::start(&[]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_04, LEN);
    add_track(&server, &origin, "d", "d.bin", &truth, Some(&sha256_hex(&truth)));
    let id = id_of(&enqueue(&server, &json!({"track": "d"})));
    wait_completed(&server, &id, LEN);
    assert!(json_u64(&server.stats(), "pinned_bytes") >= LEN as u64);

    let r = http("DELETE", &server.api_url(&format!("downloads/{id}")), &[]);
    assert_eq!(r.status, 200, "DELETE a completed download: {}", r.text());
    let v = r.json();
    assert_eq!(
        (v["id"].as_str(), v["deleted"].as_bool()),
        (Some(id.as_str()), Some(true)),
        "{v}"
    );
    let stats = server.stats();
    assert_eq!(json_u64(&stats, "pinned_bytes"), 0, "DELETE unpins at once: {stats}");
    assert_eq!(
        json_u64(&stats, "cache_bytes"),
        0,
        "DELETE frees the bytes at once: {stats}"
    );
    let t = track(&server, "d");
    assert_eq!(
        (json_bool(&t, "pinned"), json_u64(&t, "cached_bytes")),
        (false, 0),
        "{t}"
    );
    http("GET", &server.api_url(&format!("downloads/{id}")), &[]).assert_json_error("deleted download", 404);
}

// ---------------------------------------------------------------------------------------------
// Resume: kill -9, dropped connections, transient and permanent upstream errors
// ---------------------------------------------------------------------------------------------

#[test]
fn kill_9_mid_download_then_restart_resumes_by_itself_from_recorded_bytes() {
    const LEN: usize = 4 * MIB;
    // 256 KiB/s: far from done when the server is killed.
    let mut origin = Origin::start(&["--throttle", "262144"]);
    let truth = seeded_bytes(0xD0_05, LEN);
    let cache = tempfile::tempdir().expect("cache dir");
    let origins = vec![origin.origin_arg()];

    let mut server = Server::start_with(Some(cache.path()), &origins, &[]);
    add_track(&server, &origin, "k", "k.bin", &truth, Some(&sha256_hex(&truth)));
    let id = id_of(&enqueue(&server, &json!({"track": "k"})));
    let mut recorded_before = 0;
    wait_until(
        Duration::from_secs(15),
        "some bytes of the download are recorded",
        || {
            recorded_before = json_u64(&track(&server, "k"), "recorded_bytes");
            recorded_before > 0
        },
    );
    assert!(
        recorded_before < LEN as u64,
        "finished before the kill; the origin must be slower"
    );
    server.kill9();

    // Slow at restart, so what the restarted server reports as recorded right away is close to
    // where it resumed; then full speed.
    origin.set_faults(&throttled(64 * 1024));
    origin.clear_log();
    let server = Server::start_with(Some(cache.path()), &origins, &[]);
    let recorded_after = json_u64(&track(&server, "k"), "recorded_bytes");
    let v = download(&server, &id);
    assert_ne!(
        json_str(&v, "state"),
        "failed",
        "the persisted download after restart: {v}"
    );
    assert!(
        recorded_after >= recorded_before,
        "recorded bytes lost by kill -9: {recorded_before} before, {recorded_after} after"
    );
    origin.set_faults(&Faults::default());

    // Nobody asks again: the queue is persistent and the download resumes by itself.
    wait_completed(&server, &id, LEN);
    let log = gets_for(&origin, "/k.bin");
    let first = log.first().expect("the rest of the download must come from the origin");
    let n = first
        .range_start()
        .unwrap_or_else(|| panic!("the download must resume with Range: bytes=N-, got {first:?}"));
    eprintln!("recorded before kill {recorded_before}, after restart {recorded_after}, resume at {n}");
    // 0 < N: recorded bytes are not fetched again; N <= what the restarted server trusted:
    // nothing unrecorded was taken as present (same reasoning as crash.rs).
    assert!(n > 0, "the download started over from byte 0 after restart: {log:?}");
    assert!(
        n <= recorded_after,
        "resume at {n}, past the {recorded_after} bytes recorded after restart: unrecorded bytes were trusted"
    );
    let refetched: u64 = log.iter().map(|e| e.body_bytes).sum();
    assert!(
        refetched <= (LEN as u64 - n) + 512 * KIB as u64,
        "after restart the origin sent {refetched} bytes for a resume from {n}"
    );

    origin.kill();
    assert_serves(
        "resumed download with the origin stopped",
        &server.track_url("k"),
        &truth,
    );
}

#[test]
fn download_survives_three_dropped_connections() {
    const LEN: usize = 4 * MIB;
    let mut origin = Origin::start(&["--drop-after", "1048576", "--drop-times", "3"]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_06, LEN);
    add_track(&server, &origin, "dr", "dr.bin", &truth, Some(&sha256_hex(&truth)));

    let id = id_of(&enqueue(&server, &json!({"track": "dr"})));
    wait_completed(&server, &id, LEN);
    let log = gets_for(&origin, "/dr.bin");
    assert!(log.len() >= 4, "3 cut responses and at least one whole one: {log:?}");
    let starts: Vec<u64> = log.iter().filter_map(|e| e.range_start()).filter(|&s| s > 0).collect();
    assert!(
        starts.len() >= 3,
        "each cut is resumed with Range: bytes=N-, N > 0: {log:?}"
    );
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "resumes move forward: {starts:?}"
    );

    origin.kill();
    assert_serves(
        "download over a dropping origin, origin stopped",
        &server.track_url("dr"),
        &truth,
    );
}

#[test]
fn transient_5xx_is_retried_and_a_404_fails_without_retrying() {
    const LEN: usize = 300_001;
    let origin = Origin::start(&["--fail-first", "2"]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_07, LEN);
    add_track(&server, &origin, "r", "r.bin", &truth, Some(&sha256_hex(&truth)));

    let id = id_of(&enqueue(&server, &json!({"track": "r"})));
    wait_completed(&server, &id, LEN);
    assert!(
        gets_for(&origin, "/r.bin").len() >= 3,
        "two 503s then a success: {:?}",
        origin.log()
    );
    assert_serves("download after 5xx retries", &server.track_url("r"), &truth);

    let missing = format!("{}missing.bin", origin.url);
    let id = id_of(&enqueue(&server, &json!({ "url": missing })));
    let error = wait_failed(&server, &id);
    assert!(!error.is_empty(), "a 404 download fails with a reason");
    assert_eq!(
        gets_for(&origin, "/missing.bin").len(),
        1,
        "a backend 404 is permanent and must not be retried: {:?}",
        origin.log()
    );
}

// ---------------------------------------------------------------------------------------------
// Network gate, pause/resume
// ---------------------------------------------------------------------------------------------

#[test]
fn offline_stops_downloads_not_players_and_online_resumes_them() {
    const LEN: usize = 2 * MIB;
    const OTHER: usize = 300_000;
    let origin = Origin::start(&["--throttle", "262144"]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_08, LEN);
    let other = seeded_bytes(0xD0_09, OTHER);
    add_track(&server, &origin, "g", "g.bin", &truth, Some(&sha256_hex(&truth)));
    add_track(&server, &origin, "other", "other.bin", &other, None);

    set_network(&server, true, false);
    let id = id_of(&enqueue(&server, &json!({"track": "g"})));
    wait_until(STATE_CHANGE, "the download is running with bytes", || {
        let v = download(&server, &id);
        json_str(&v, "state") == "running" && json_u64(&v, "bytes_done") > 0
    });

    set_network(&server, false, false);
    let net = server.api_get("network");
    assert_eq!(
        (net["online"].as_bool(), net["metered"].as_bool()),
        (Some(false), Some(false)),
        "{net}"
    );
    wait_state(&server, &id, "waiting_for_network", STATE_CHANGE);
    let held = assert_stopped(&server, &id, "waiting_for_network");
    assert!(held < LEN as u64, "stopped at {held} of {LEN} bytes");

    // The gate is for downloads only: a player still streams (from the same, reachable origin).
    origin.set_faults(&Faults::default());
    assert_serves("streaming a track while offline", &server.track_url("other"), &other);
    let v = download(&server, &id);
    assert_eq!(
        (json_str(&v, "state"), json_u64(&v, "bytes_done")),
        ("waiting_for_network", held),
        "the download must stay put while offline, even while a player streams: {v}"
    );

    set_network(&server, true, false);
    wait_completed(&server, &id, LEN);
    assert_serves("download finished after going online", &server.track_url("g"), &truth);
}

#[test]
fn metered_network_holds_downloads_unless_allowed() {
    const LEN: usize = MIB;
    let origin = Origin::start(&[]);
    let truth = seeded_bytes(0xD0_0A, LEN);
    let other = seeded_bytes(0xD0_0B, 200_000);
    origin.put_file("other.bin", &other);

    // Without --allow-metered: queued work waits on a metered network, players don't.
    let server = serve(&origin, &[]);
    add_track(&server, &origin, "m", "m.bin", &truth, Some(&sha256_hex(&truth)));
    set_network(&server, true, true);
    let id = id_of(&enqueue(&server, &json!({"track": "m"})));
    wait_state(&server, &id, "waiting_for_network", STATE_CHANGE);
    assert_holds(
        QUIET_WINDOW,
        "a download on a metered network stays waiting with no bytes",
        || download(&server, &id),
        |v| json_u64(v, "bytes_done") == 0 && json_str(v, "state") == "waiting_for_network",
    );
    assert!(
        gets_for(&origin, "/m.bin").is_empty(),
        "a metered download must not reach the origin: {:?}",
        origin.log()
    );
    assert_serves(
        "streaming on a metered network",
        &server.stream_url(&origin, "other.bin"),
        &other,
    );
    set_network(&server, true, false);
    wait_completed(&server, &id, LEN);
    assert_serves(
        "download after leaving the metered network",
        &server.track_url("m"),
        &truth,
    );
    drop(server);

    // With --allow-metered: the same download just runs.
    let server = serve(&origin, &["--allow-metered"]);
    add_track(&server, &origin, "m", "m.bin", &truth, Some(&sha256_hex(&truth)));
    set_network(&server, true, true);
    let id = id_of(&enqueue(&server, &json!({"track": "m"})));
    wait_completed(&server, &id, LEN);
    assert_serves(
        "download on a metered network with --allow-metered",
        &server.track_url("m"),
        &truth,
    );
}

#[test]
fn pause_holds_a_download_and_resume_finishes_it() {
    const LEN: usize = 2 * MIB;
    let origin = Origin::start(&["--throttle", "262144"]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_0C, LEN);
    add_track(&server, &origin, "p", "p.bin", &truth, Some(&sha256_hex(&truth)));
    let id = id_of(&enqueue(&server, &json!({"track": "p"})));
    wait_until(STATE_CHANGE, "the download is running with bytes", || {
        bytes_done(&server, &id) > 0
    });

    let r = post(&server, &format!("downloads/{id}/pause"), "");
    assert_eq!(r.status, 200, "pause: {}", r.text());
    assert_eq!(id_of(&r.json()), id, "pause answers the download");
    wait_state(&server, &id, "paused", STATE_CHANGE);
    let held = assert_stopped(&server, &id, "paused");
    assert!(held < LEN as u64, "paused at {held} of {LEN} bytes");

    let r = post(&server, &format!("downloads/{id}/resume"), "");
    assert_eq!(r.status, 200, "resume: {}", r.text());
    wait_until(STATE_CHANGE, "the resumed download fetches again", || {
        bytes_done(&server, &id) > held
    });
    let r = post(&server, &format!("downloads/{id}/pause"), "");
    assert_eq!(r.status, 200, "second pause: {}", r.text());
    wait_state(&server, &id, "paused", STATE_CHANGE);

    // Asking for the download again (the user taps "download" once more) resumes it.
    origin.set_faults(&Faults::default());
    let again = enqueue(&server, &json!({"track": "p"}));
    assert_eq!(id_of(&again), id, "the same download");
    assert_ne!(json_str(&again, "state"), "paused", "{again}");
    wait_completed(&server, &id, LEN);
    assert_serves("download after pause and resume", &server.track_url("p"), &truth);
}

// ---------------------------------------------------------------------------------------------
// Pins against the cache limit, a full disk
// ---------------------------------------------------------------------------------------------

#[test]
fn pins_past_the_cache_limit_fail_cache_full_and_eviction_works_around_pins() {
    const LIMIT: usize = 3 * MIB;
    let mut origin = Origin::start(&[]);
    let server = serve(&origin, &["--max-cache-bytes", &LIMIT.to_string()]);
    let a = seeded_bytes(0xD0_10, MIB);
    let b = seeded_bytes(0xD0_11, MIB);
    let c = seeded_bytes(0xD0_12, MIB + MIB / 2);
    let big = seeded_bytes(0xD0_13, MIB + MIB / 2);
    add_track(&server, &origin, "a", "a.bin", &a, Some(&sha256_hex(&a)));
    add_track(&server, &origin, "b", "b.bin", &b, Some(&sha256_hex(&b)));
    add_track(&server, &origin, "c", "c.bin", &c, Some(&sha256_hex(&c)));
    origin.put_file("big.bin", &big);

    // Two pins fit (2 MiB of 3 MiB); the third would make 3.5 MiB of pins.
    let id_a = id_of(&enqueue(&server, &json!({"track": "a"})));
    wait_completed(&server, &id_a, a.len());
    let id_b = id_of(&enqueue(&server, &json!({"track": "b"})));
    wait_completed(&server, &id_b, b.len());
    let id_c = id_of(&enqueue(&server, &json!({"track": "c"})));
    let error = wait_failed(&server, &id_c);
    assert!(
        error.contains("cache full"),
        "error of a download past the pin limit: {error:?}"
    );
    for (id, name) in [(&id_a, "a"), (&id_b, "b")] {
        let v = download(&server, id);
        assert_eq!(
            json_str(&v, "state"),
            "completed",
            "download {name} after the cache-full failure: {v}"
        );
        let t = track(&server, name);
        assert!(
            json_bool(&t, "pinned") && json_bool(&t, "complete"),
            "track {name} stays pinned: {t}"
        );
    }
    let stats = server.stats();
    assert_eq!(
        json_u64(&stats, "pinned_bytes"),
        2 * MIB as u64,
        "pins untouched: {stats}"
    );

    // Unpinned bytes past the limit are never stored around the pins (issue #15: the limit
    // holds at every moment): what does not fit is evicted or passed through unstored.
    let big_url = server.stream_url(&origin, "big.bin");
    assert_serves("unpinned resource past the limit", &big_url, &big);
    let stats = server.stats();
    assert!(json_u64(&stats, "cache_bytes") <= LIMIT as u64, "{stats}");
    assert!(
        json_u64(&stats, "evictions") >= 1 || json_u64(&stats, "bytes_passed_through") > 0,
        "{stats}"
    );
    assert_eq!(
        json_u64(&stats, "pinned_bytes"),
        2 * MIB as u64,
        "eviction must not touch pins: {stats}"
    );

    origin.kill();
    assert_serves("pin a with the origin stopped", &server.track_url("a"), &a);
    assert_serves("pin b with the origin stopped", &server.track_url("b"), &b);
    let r = get(&big_url);
    assert!(
        !(r.status == 200 && r.body_error.is_none() && r.body == big),
        "the evicted unpinned resource was still served whole offline: status {}",
        r.status
    );
}

#[test]
fn disk_full_fails_the_download_and_the_server_keeps_serving() {
    const SMALL: usize = 512 * KIB;
    const BIG: usize = 12 * MIB;
    let disk = Tmpfs::mount("8m");
    let cache: PathBuf = disk.path().join("cache");
    let mut origin = Origin::start(&[]);
    let server = Server::start_with(Some(&cache), &[origin.origin_arg()], &[]);
    let small = seeded_bytes(0xD0_20, SMALL);
    let big = seeded_bytes(0xD0_21, BIG);
    add_track(&server, &origin, "small", "small.bin", &small, None);
    add_track(&server, &origin, "big", "big.bin", &big, Some(&sha256_hex(&big)));

    assert_serves("small track, first play", &server.track_url("small"), &small);
    wait_for(
        STATE_CHANGE,
        "the small track is recorded complete",
        || track(&server, "small"),
        |t| json_u64(t, "recorded_bytes") == SMALL as u64,
    );

    let id = id_of(&enqueue(&server, &json!({"track": "big"})));
    let error = wait_failed(&server, &id);
    assert!(
        error.contains("no space left"),
        "error of a download that fills the disk: {error:?}"
    );
    assert_eq!(
        gets_for(&origin, "/big.bin").len(),
        1,
        "a full disk is permanent and must not be retried: {:?}",
        origin.log()
    );
    let t = track(&server, "big");
    assert!(!json_bool(&t, "pinned"), "the failed download is not pinned: {t}");

    // The download made room first by evicting what was only cached (issue #15); the server
    // keeps serving, storing again what fits.
    let stats = server.stats();
    assert!(json_u64(&stats, "evictions") >= 1, "the small track made room: {stats}");
    assert_serves(
        "the evicted track after the disk filled up",
        &server.track_url("small"),
        &small,
    );
    origin.kill();
    assert_serves("the track stored again", &server.track_url("small"), &small);
    let stats = server.stats();
    assert!(json_u64(&stats, "cache_bytes") >= SMALL as u64, "{stats}");
    drop(server);
    drop(disk);
}

// ---------------------------------------------------------------------------------------------
// Cancel, sharing with players, priority, prefetch
// ---------------------------------------------------------------------------------------------

#[test]
fn delete_cancels_a_running_download_and_frees_its_bytes() {
    const LEN: usize = 4 * MIB;
    let origin = Origin::start(&["--throttle", "262144"]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_30, LEN);
    add_track(&server, &origin, "x", "x.bin", &truth, Some(&sha256_hex(&truth)));
    let before = json_u64(&server.stats(), "cache_bytes");

    let id = id_of(&enqueue(&server, &json!({"track": "x"})));
    wait_until(
        Duration::from_secs(15),
        "the running download has bytes on disk",
        || json_str(&download(&server, &id), "state") == "running" && json_u64(&server.stats(), "cache_bytes") > before,
    );

    let r = http("DELETE", &server.api_url(&format!("downloads/{id}")), &[]);
    assert_eq!(r.status, 200, "DELETE a running download: {}", r.text());
    let v = r.json();
    assert_eq!(
        (v["id"].as_str(), v["deleted"].as_bool()),
        (Some(id.as_str()), Some(true)),
        "{v}"
    );
    http("GET", &server.api_url(&format!("downloads/{id}")), &[]).assert_json_error("cancelled download", 404);
    let list = server.api_get("downloads");
    assert!(
        list.as_array().is_some_and(|l| l.iter().all(|d| d["id"] != json!(id))),
        "the cancelled download is still listed: {list}"
    );

    let stats = wait_for(
        Duration::from_secs(5),
        &format!("DELETE frees the download's bytes (cache_bytes back to {before})"),
        || server.stats(),
        |s| json_u64(s, "cache_bytes") == before,
    );
    assert_eq!(json_u64(&stats, "pinned_bytes"), 0, "{stats}");
    // Cancelled means stopped: no more bytes land for it.
    assert_holds(
        QUIET_WINDOW,
        "no bytes land for the cancelled download",
        || track(&server, "x"),
        |t| json_u64(t, "cached_bytes") == 0,
    );
}

/// A player and a download of the same track at once share one upstream fetch, and both verify.
fn player_and_download_share_one_fetch(download_first: bool) {
    const LEN: usize = 2 * MIB;
    let mut origin = Origin::start(&["--throttle", "524288"]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(if download_first { 0xD0_40 } else { 0xD0_41 }, LEN);
    add_track(&server, &origin, "s", "s.bin", &truth, Some(&sha256_hex(&truth)));

    let (id, reader) = if download_first {
        let id = id_of(&enqueue(&server, &json!({"track": "s"})));
        wait_until(STATE_CHANGE, "the download has bytes", || bytes_done(&server, &id) > 0);
        let reader = BackgroundRead::start(&server.track_url("s"), &[]);
        (id, reader)
    } else {
        let reader = BackgroundRead::start(&server.track_url("s"), &[]);
        wait_until(STATE_CHANGE, "the player has bytes", || reader.received() > 0);
        (id_of(&enqueue(&server, &json!({"track": "s"}))), reader)
    };
    let (status, _) = reader.head(STATE_CHANGE);
    assert_eq!(status, 200, "the player's GET");
    wait_completed(&server, &id, LEN);
    let played = reader.join().expect("the player's response");
    played.assert_complete("the player's bytes");
    assert_bytes_eq("the player's bytes", &played.body, &truth);
    let log = gets_for(&origin, "/s.bin");
    assert_eq!(
        log.len(),
        1,
        "the player and the download must share one upstream fetch: {log:?}"
    );

    origin.kill();
    assert_serves(
        "the shared download with the origin stopped",
        &server.track_url("s"),
        &truth,
    );
}

#[test]
fn playing_a_track_while_it_downloads_fetches_it_once() {
    player_and_download_share_one_fetch(true);
}

#[test]
fn downloading_a_track_while_it_plays_fetches_it_once() {
    player_and_download_share_one_fetch(false);
}

#[test]
fn higher_priority_runs_first_with_one_worker() {
    // 1 MiB/s: A takes about 2 s, B and C about 0.5 s each, so completions are far apart
    // compared with the polling.
    let origin = Origin::start(&["--throttle", "1048576"]);
    let server = serve(&origin, &["--download-workers", "1"]);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("pa", seeded_bytes(0xD0_50, 2 * MIB)),
        ("pb", seeded_bytes(0xD0_51, 512 * KIB)),
        ("pc", seeded_bytes(0xD0_52, 512 * KIB)),
    ];
    for (name, bytes) in &files {
        add_track(
            &server,
            &origin,
            name,
            &format!("{name}.bin"),
            bytes,
            Some(&sha256_hex(bytes)),
        );
    }

    let a = id_of(&enqueue(&server, &json!({"track": "pa"})));
    wait_until(STATE_CHANGE, "A is running", || bytes_done(&server, &a) > 0);
    let b = enqueue(&server, &json!({"track": "pb"}));
    let c = enqueue(&server, &json!({"track": "pc", "priority": 10}));
    assert_eq!(b["priority"], json!(0), "{b}");
    assert_eq!(c["priority"], json!(10), "{c}");
    let (b, c) = (id_of(&b), id_of(&c));
    // One worker, busy with A: both wait their turn.
    assert_eq!(state(&server, &b), "queued", "B while A runs");
    assert_eq!(state(&server, &c), "queued", "C while A runs");
    assert_eq!(
        state(&server, &a),
        "running",
        "A must still be running when B and C are queued"
    );

    // The first of B and C to complete must be C, and B must not be complete at that moment.
    let Pair(b_state, c_state) = wait_for(
        FINISH,
        "B or C completes",
        || {
            let (sb, sc) = (download(&server, &b), download(&server, &c));
            for v in [&sb, &sc] {
                assert_ne!(json_str(v, "state"), "failed", "a download failed: {v}");
            }
            Pair(sb, sc)
        },
        |Pair(sb, sc)| json_str(sb, "state") == "completed" || json_str(sc, "state") == "completed",
    );
    assert!(
        json_str(&c_state, "state") == "completed" && ["queued", "running"].contains(&json_str(&b_state, "state")),
        "with one worker, C (priority 10) must complete before B (priority 0): B {b_state}, C {c_state}"
    );
    for ((name, bytes), id) in files.iter().zip([&a, &b, &c]) {
        wait_completed(&server, id, bytes.len());
        assert_serves(&format!("download {name}"), &server.track_url(name), bytes);
    }
    // Once all are done, the origin's log is the exact order in which the fetches started (B's
    // request may not have reached the origin yet at the moment C completed).
    let log = origin.log();
    let first_request = |path: &str| {
        log.iter()
            .position(|e| e.path == path)
            .unwrap_or_else(|| panic!("no request for {path}: {log:?}"))
    };
    let (ia, ib, ic) = (
        first_request("/pa.bin"),
        first_request("/pb.bin"),
        first_request("/pc.bin"),
    );
    assert!(ia < ic && ic < ib, "fetch order must be A, C (priority 10), B: {log:?}");
}

/// Two JSON values shown together (for [`wait_for`]'s failure message).
struct Pair(Value, Value);

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}]", self.0, self.1)
    }
}

#[test]
fn prefetch_caches_the_head_of_each_track_unpinned() {
    const LEN: usize = 2 * MIB;
    let mut origin = Origin::start(&[]);
    let server = serve(&origin, &[]);
    let tracks: Vec<(&str, Vec<u8>)> = vec![
        ("h1", seeded_bytes(0xD0_60, LEN)),
        ("h2", seeded_bytes(0xD0_61, LEN)),
        ("h3", seeded_bytes(0xD0_62, LEN)),
    ];
    for (id, bytes) in &tracks {
        add_track(&server, &origin, id, &format!("{id}.bin"), bytes, None);
    }

    let r = post(
        &server,
        "prefetch",
        &json!({"tracks": ["h1", "h2"], "bytes": 100_000}).to_string(),
    );
    assert_eq!(r.status, 202, "POST api/prefetch: {}", r.text());
    let r = post(&server, "prefetch", &json!({"tracks": ["h3"]}).to_string());
    assert_eq!(r.status, 202, "POST api/prefetch without bytes: {}", r.text());

    for (id, want) in [("h1", 100_000u64), ("h2", 100_000), ("h3", 512 * KIB as u64)] {
        let t = wait_for(
            STATE_CHANGE,
            &format!("{want} bytes of {id} are prefetched"),
            || track(&server, id),
            |t| json_u64(t, "cached_bytes") >= want,
        );
        assert!(
            json_u64(&t, "cached_bytes") < LEN as u64,
            "prefetch fetched the whole of {id}: {t}"
        );
        assert!(!json_bool(&t, "pinned"), "prefetched bytes are not pinned: {t}");
    }
    let stats = server.stats();
    assert_eq!(json_u64(&stats, "pinned_bytes"), 0, "prefetch pins nothing: {stats}");

    origin.kill();
    for (id, bytes) in &tracks {
        let r = get_range(&server.track_url(id), "bytes=0-99999");
        assert_eq!(
            r.status,
            206,
            "prefetched head of {id} with the origin stopped: {}",
            r.text()
        );
        r.assert_complete("prefetched head");
        assert_bytes_eq(&format!("prefetched head of {id}"), &r.body, &bytes[..100_000]);
    }
}

// ---------------------------------------------------------------------------------------------
// Bad requests
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_download_requests_get_json_errors() {
    let origin = Origin::start(&[]);
    let server = serve(&origin, &[]);
    let truth = seeded_bytes(0xD0_70, 1000);
    add_track(&server, &origin, "ok", "ok.bin", &truth, None);
    let ok_url = format!("{}ok.bin", origin.url);

    let mut checks = Checks::default();
    let posts: Vec<(&str, String, u16)> = vec![
        ("not JSON", "{not json".to_string(), 400),
        ("empty body", String::new(), 400),
        ("neither track nor url", "{}".to_string(), 400),
        (
            "both track and url",
            json!({"track": "ok", "url": ok_url}).to_string(),
            400,
        ),
        ("track of the wrong type", json!({"track": 5}).to_string(), 400),
        (
            "priority of the wrong type",
            json!({"track": "ok", "priority": "high"}).to_string(),
            400,
        ),
        ("unknown track", json!({"track": "no-such-track"}).to_string(), 404),
        (
            "url on an origin not allowed",
            json!({"url": "http://127.0.0.1:9/x.bin"}).to_string(),
            403,
        ),
        (
            "url on another host",
            json!({"url": "https://example.com/x.mp3"}).to_string(),
            403,
        ),
    ];
    for (what, body, status) in &posts {
        checks.check(&format!("POST downloads, {what}"), || {
            post(&server, "downloads", body).assert_json_error(what, *status);
        });
    }
    for (method, rest) in [
        ("GET", "downloads/no-such-id"),
        ("DELETE", "downloads/no-such-id"),
        ("POST", "downloads/no-such-id/pause"),
        ("POST", "downloads/no-such-id/resume"),
    ] {
        checks.check(&format!("{method} {rest}"), || {
            let r = if method == "POST" {
                post(&server, rest, "")
            } else {
                http(method, &server.api_url(rest), &[])
            };
            r.assert_json_error(&format!("{method} {rest}"), 404);
        });
    }
    for (what, body) in [
        ("not JSON", "nope"),
        ("online of the wrong type", r#"{"online": "yes", "metered": false}"#),
    ] {
        checks.check(&format!("POST network, {what}"), || {
            post(&server, "network", body).assert_json_error(what, 400);
        });
    }
    checks.check("POST prefetch, not JSON", || {
        post(&server, "prefetch", "[").assert_json_error("prefetch not JSON", 400);
    });
    checks.check("nothing was queued by the bad requests", || {
        let list = server.api_get("downloads");
        assert_eq!(list, json!([]), "bad requests must not create downloads");
    });
    checks.finish();
}
