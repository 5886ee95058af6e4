//! Quality by network (SPEC §7, issue #16): with `--metered-max-bandwidth` and
//! `--unmetered-max-bandwidth`, the HLS master a player reads through the server offers only the
//! variants the network the app last reported (`POST /api/network`) allows, at least the lowest;
//! a change of network applies to the next fetch of the master; a download keeps its own variant
//! choice, and its downloaded master is served with what was downloaded whatever the network.
//! ffprobe is the player: it reads the master through the server and lists the variants it found.

use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::hls_fixtures::{self, MASTER};
use integration_tests::*;
use serde_json::{json, Value};

/// The fixture master's variants (`hls_fixtures::generate`): low, single-file, high.
const ALL: [u64; 3] = [60_000, 90_000, 150_000];

/// The `BANDWIDTH` of every variant ffprobe finds reading `url` (one program per variant),
/// sorted.
#[track_caller]
fn variant_bitrates(url: &str) -> Vec<u64> {
    let out = Command::new(require_tool("ffprobe"))
        .args(["-v", "error", "-show_programs", "-of", "json", url])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe could not read {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probed: Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let programs = probed["programs"].as_array().cloned().unwrap_or_default();
    let mut rates: Vec<u64> = programs
        .iter()
        .map(|p| {
            let rate = p["tags"]["variant_bitrate"].as_str();
            rate.and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("a program without variant_bitrate: {p}"))
        })
        .collect();
    rates.sort_unstable();
    rates
}

/// Reports the network to the server as the app's connectivity callback does; returns the
/// variant cap the answer says is in force.
fn set_metered(server: &Server, metered: bool) -> Option<u64> {
    let body = json!({"online": true, "metered": metered}).to_string();
    let r = http_with_body("POST", &server.api_url("network"), &[], &body);
    assert!(r.status < 300, "POST api/network: {} {}", r.status, r.text());
    let answer = r.json();
    assert_eq!(answer["metered"], metered, "{answer}");
    assert_eq!(answer, server.api_get("network"), "GET api/network shows the same");
    answer["variant_cap"].as_u64()
}

#[test]
fn a_metered_network_caps_the_variants_of_a_served_master() {
    let origin = Origin::start(&[]);
    hls_fixtures::generate(origin.dir(), &origin.url);
    let server = Server::start_with(None, &[origin.origin_arg()], &["--metered-max-bandwidth", "100000"]);
    let master = server.stream_url(&origin, MASTER);
    assert_eq!(variant_bitrates(&master), ALL, "unmetered (the default): every variant");
    assert_eq!(
        set_metered(&server, true),
        Some(100_000),
        "the cap in force, as the API reports it"
    );
    assert_eq!(
        variant_bitrates(&master),
        [60_000, 90_000],
        "metered: only the variants within 100 kbit/s"
    );
    assert_eq!(set_metered(&server, false), None, "no cap unmetered");
    assert_eq!(variant_bitrates(&master), ALL, "unmetered again: every variant");
}

#[test]
fn each_network_kind_has_its_cap_and_the_lowest_variant_always_stays() {
    let origin = Origin::start(&[]);
    hls_fixtures::generate(origin.dir(), &origin.url);
    let server = Server::start_with(
        None,
        &[origin.origin_arg()],
        &["--metered-max-bandwidth", "1000", "--unmetered-max-bandwidth", "100000"],
    );
    let master = server.stream_url(&origin, MASTER);
    assert_eq!(variant_bitrates(&master), [60_000, 90_000], "unmetered cap");
    assert_eq!(set_metered(&server, true), Some(1000));
    assert_eq!(
        variant_bitrates(&master),
        [60_000],
        "a metered cap under every variant keeps the lowest"
    );
    // The player still plays what it is offered, through the server.
    hls_fixtures::ffmpeg_plays(&master);
}

#[test]
fn a_download_keeps_its_own_variant_choice_on_a_metered_network() {
    let origin = Origin::start(&[]);
    hls_fixtures::generate(origin.dir(), &origin.url);
    let server = Server::start_with(
        None,
        &[origin.origin_arg()],
        &["--metered-max-bandwidth", "100000", "--allow-metered"],
    );
    set_metered(&server, true);
    let remote = format!("{}{MASTER}", origin.url);
    let body = json!({"url": remote, "variant": "highest"}).to_string();
    let r = http_with_body("POST", &server.api_url("downloads"), &[], &body);
    assert_eq!(r.status, 202, "POST downloads: {}", r.text());
    let id = json_str(&r.json(), "id").to_string();
    wait_until(Duration::from_secs(60), "the HLS download completes", || {
        let d = server.api_get(&format!("downloads/{id}"));
        assert_ne!(json_str(&d, "state"), "failed", "{d}");
        json_str(&d, "state") == "completed"
    });
    assert!(
        !origin.log_for("/hls/high/index.m3u8").is_empty(),
        "the download fetched the highest variant despite the metered cap: {:?}",
        origin.log()
    );
    // The downloaded master offers the downloaded rendition, not the metered cap's.
    assert_eq!(variant_bitrates(&server.stream_url(&origin, MASTER)), [150_000]);
}

#[test]
fn a_prefetch_on_a_metered_network_caches_the_variant_the_player_will_be_offered() {
    let origin = Origin::start(&[]);
    hls_fixtures::generate(origin.dir(), &origin.url);
    let server = Server::start_with(None, &[origin.origin_arg()], &["--metered-max-bandwidth", "100000"]);
    server.put_track("show", &json!({"url": format!("{}{MASTER}", origin.url)}));
    set_metered(&server, true);
    let r = http_with_body(
        "POST",
        &server.api_url("prefetch"),
        &[],
        &json!({"tracks": ["show"]}).to_string(),
    );
    assert_eq!(r.status, 202, "POST prefetch: {}", r.text());
    // Unmetered, the player's likely first pick would be the 150 kbit/s variant; metered, it is
    // offered 60 and 90 kbit/s and picks the better one, the single-file variant.
    wait_until(
        Duration::from_secs(30),
        "the prefetch caches the single-file variant",
        || origin.log_for("/hls/single/index.ts").iter().any(|e| e.complete),
    );
    let log = origin.log();
    assert!(
        !log.iter().any(|e| e.path.starts_with("/hls/high/")),
        "nothing of the variant above the metered cap is fetched: {log:?}"
    );
}
