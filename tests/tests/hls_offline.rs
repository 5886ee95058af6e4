//! Offline download of an HLS rendition: the chosen variant's playlists, init section and every
//! segment are cached and pinned; with the origin stopped, ffmpeg plays the local master end to
//! end and the master lists only the downloaded rendition; deleting a 500+-segment rendition
//! frees every byte. Fixtures are generated with ffmpeg at test time.

use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::hls_fixtures::{ffmpeg_plays, FMP4_SEGMENTS};
use integration_tests::*;
use serde_json::{json, Value};

/// `seconds` of a sine as AAC in an HLS rendition `origin_dir/name/index.m3u8`, segments of
/// `segment` seconds, with extra muxer options.
fn rendition(origin_dir: &Path, name: &str, bitrate: &str, seconds: u32, segment: &str, extra: &[&str]) {
    let dir = origin_dir.join(name);
    std::fs::create_dir_all(&dir).expect("rendition dir");
    let input = format!("sine=frequency=330:duration={seconds}");
    let mut args = vec!["-f", "lavfi", "-i", &input, "-c:a", "aac", "-b:a", bitrate, "-f", "hls"];
    args.extend_from_slice(&["-hls_time", segment, "-hls_list_size", "0", "-hls_playlist_type", "vod"]);
    args.extend_from_slice(extra);
    args.push("index.m3u8");
    ffmpeg_in(&dir, &args);
}

fn post_download(server: &Server, body: &Value) -> Value {
    let r = http_with_body("POST", &server.api_url("downloads"), &[], &body.to_string());
    assert_eq!(r.status, 202, "POST downloads {body}: {}", r.text());
    r.json()
}

fn wait_completed(server: &Server, id: &str) -> Value {
    let mut last = Value::Null;
    wait_until(Duration::from_secs(60), "the HLS download completes", || {
        last = server.api_get(&format!("downloads/{id}"));
        assert_ne!(json_str(&last, "state"), "failed", "{last}");
        json_str(&last, "state") == "completed"
    });
    last
}

#[test]
fn a_downloaded_rendition_plays_offline_and_the_master_lists_only_it() {
    let mut origin = Origin::start(&[]);
    let dir = origin.dir().to_path_buf();
    rendition(&dir, "hls/low", "48k", 8, "2", &["-hls_segment_filename", "seg%d.ts"]);
    rendition(&dir, "hls/high", "128k", 8, "2", &["-hls_segment_filename", "seg%d.ts"]);
    rendition(&dir, "hls/cmaf", "64k", 8, "2", FMP4_SEGMENTS);
    let master = "#EXTM3U\n#EXT-X-VERSION:7\n\
        #EXT-X-STREAM-INF:BANDWIDTH=60000,CODECS=\"mp4a.40.2\"\nlow/index.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=150000,CODECS=\"mp4a.40.2\"\n/hls/high/index.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=80000,CODECS=\"mp4a.40.2\"\ncmaf/index.m3u8\n";
    std::fs::write(dir.join("hls/master.m3u8"), master).expect("master");
    let server = Server::start(&[&origin]);
    let master_url = format!("{}hls/master.m3u8", origin.url);

    // The middle variant by bandwidth is the fMP4 one: it has an init section.
    let d = post_download(&server, &json!({ "url": master_url }));
    let id = json_str(&d, "id").to_string();
    let done = wait_completed(&server, &id);
    let segments = std::fs::read_dir(dir.join("hls/cmaf")).expect("dir").count() as u64 - 1; // minus index.m3u8
                                                                                             // master + media playlist + init + segments
    assert_eq!(json_u64(&done, "segments_total"), segments + 2, "{done}");
    assert_eq!(json_u64(&done, "segments_done"), segments + 2, "{done}");
    assert!(json_bool(&done, "pinned"), "{done}");
    assert_eq!(json_u64(&done, "bytes_done"), json_u64(&done, "bytes_total"), "{done}");
    let stats = server.stats();
    assert_eq!(
        json_u64(&stats, "pinned_bytes"),
        json_u64(&done, "bytes_total"),
        "{stats}"
    );

    // Offline: the master lists only the downloaded rendition, and ffmpeg plays it end to end.
    origin.kill();
    let local_master = server.stream_url(&origin, "hls/master.m3u8");
    let r = get(&local_master);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(text.matches("#EXT-X-STREAM-INF").count(), 1, "offline master: {text}");
    assert!(text.contains("cmaf/index.m3u8"), "{text}");
    ffmpeg_plays(&local_master);
}

#[test]
fn the_variant_choice_is_honoured() {
    let origin = Origin::start(&[]);
    let dir = origin.dir().to_path_buf();
    rendition(&dir, "v/a", "32k", 4, "2", &["-hls_segment_filename", "s%d.ts"]);
    rendition(&dir, "v/b", "64k", 4, "2", &["-hls_segment_filename", "s%d.ts"]);
    rendition(&dir, "v/c", "96k", 4, "2", &["-hls_segment_filename", "s%d.ts"]);
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=96000\nc/index.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=32000\na/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=64000\nb/index.m3u8\n";
    std::fs::write(dir.join("v/master.m3u8"), master).expect("master");
    let server = Server::start(&[&origin]);
    let d = post_download(
        &server,
        &json!({ "url": format!("{}v/master.m3u8", origin.url), "variant": "highest" }),
    );
    wait_completed(&server, json_str(&d, "id"));
    let paths: Vec<String> = origin.log().into_iter().map(|e| e.path).collect();
    assert!(paths.iter().any(|p| p.starts_with("/v/c/")), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with("/v/a/") || p.starts_with("/v/b/")),
        "{paths:?}"
    );

    let bad = http_with_body(
        "POST",
        &server.api_url("downloads"),
        &[],
        r#"{"url": "x", "variant": "best"}"#,
    );
    bad.assert_json_error("unknown variant", 400);
    let bad = http_with_body(
        "POST",
        &server.api_url("downloads"),
        &[],
        r#"{"track": "t", "variant": "lowest"}"#,
    );
    bad.assert_json_error("variant with a track", 400);
}

#[test]
fn segments_of_one_download_are_fetched_in_parallel() {
    let origin = Origin::start(&[]);
    let dir = origin.dir().to_path_buf();
    rendition(&dir, "p", "32k", 12, "2", &["-hls_segment_filename", "s%d.ts"]);
    let server = Server::start(&[&origin]);
    // Slow enough that a segment takes seconds: one download fetching segments one at a time
    // would never have two segment responses open at once.
    origin.set_faults(&Faults {
        throttle_bps: Some(1_000),
        ..Faults::default()
    });
    let d = post_download(&server, &json!({ "url": format!("{}p/index.m3u8", origin.url) }));
    let mut open = Vec::new();
    let found = poll_until(Duration::from_secs(30), || {
        open = origin
            .log()
            .into_iter()
            .filter(|e| e.path.ends_with(".ts") && !e.complete)
            .map(|e| e.path)
            .collect();
        open.len() >= 2
    });
    assert!(
        found,
        "never two segment requests open at once; origin log: {:?}",
        origin.log()
    );
    println!("segment requests open at once: {open:?}");
    origin.set_faults(&Faults::default());
    let done = wait_completed(&server, json_str(&d, "id"));
    assert_eq!(done["segments_done"], done["segments_total"], "{done}");
}

#[test]
fn deleting_a_500_segment_rendition_frees_every_byte() {
    let origin = Origin::start(&[]);
    let dir = origin.dir().to_path_buf();
    // 0.1 s segments of 60 s: about 600 of them.
    rendition(&dir, "long", "32k", 60, "0.1", &["-hls_segment_filename", "s%d.ts"]);
    let segments = std::fs::read_dir(dir.join("long")).expect("dir").count() - 1;
    assert!(segments >= 500, "fixture has only {segments} segments");
    let server = Server::start(&[&origin]);
    let d = post_download(&server, &json!({ "url": format!("{}long/index.m3u8", origin.url) }));
    let id = json_str(&d, "id").to_string();
    let done = wait_completed(&server, &id);
    assert_eq!(json_u64(&done, "segments_total") as usize, segments + 1, "{done}");
    let before = server.stats();
    assert_eq!(json_u64(&before, "entries") as usize, segments + 1, "{before}");

    let started = Instant::now();
    let r = http("DELETE", &server.api_url(&format!("downloads/{id}")), &[]);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    eprintln!("DELETE of a {segments}-segment rendition took {took:?}");
    let after = server.stats();
    assert_eq!(json_u64(&after, "cache_bytes"), 0, "{after}");
    assert_eq!(json_u64(&after, "pinned_bytes"), 0, "{after}");
    assert_eq!(json_u64(&after, "entries"), 0, "{after}");
    let data_files = walk_files(&server.cache_dir().join("data"));
    assert!(data_files.is_empty(), "data files left behind: {}", data_files.len());
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn prefetch_of_an_hls_track_caches_the_first_segments_of_the_likely_variant() {
    let origin = Origin::start(&[]);
    let dir = origin.dir().to_path_buf();
    rendition(&dir, "p/low", "32k", 12, "2", &["-hls_segment_filename", "seg%d.ts"]);
    rendition(&dir, "p/high", "128k", 12, "2", &["-hls_segment_filename", "seg%d.ts"]);
    // The first pick is the best variant under ~700 kbit/s: "high" here, not the 5 Mbit/s one.
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=48000\nlow/index.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=5000000\nhuge/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=150000\nhigh/index.m3u8\n";
    std::fs::write(dir.join("p/master.m3u8"), master).expect("master");
    let server = Server::start(&[&origin]);
    server.put_track("album", &json!({ "url": format!("{}p/master.m3u8", origin.url) }));
    let r = http_with_body("POST", &server.api_url("prefetch"), &[], r#"{"tracks": ["album"]}"#);
    assert_eq!(r.status, 202, "{}", r.text());
    wait_until(Duration::from_secs(20), "the first three segments are fetched", || {
        origin
            .log()
            .iter()
            .filter(|e| e.path.starts_with("/p/high/seg") && e.complete)
            .count()
            == 3
    });
    let paths: Vec<String> = origin.log().into_iter().map(|e| e.path).collect();
    for want in [
        "/p/master.m3u8",
        "/p/high/index.m3u8",
        "/p/high/seg0.ts",
        "/p/high/seg1.ts",
        "/p/high/seg2.ts",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} not fetched: {paths:?}");
    }
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("/p/low/") || p.starts_with("/p/huge/")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p == "/p/high/seg3.ts"),
        "only the first segments: {paths:?}"
    );
    // Prefetched bytes are ordinary cache: nothing is pinned.
    assert_eq!(json_u64(&server.stats(), "pinned_bytes"), 0);
}
