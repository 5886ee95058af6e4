//! HLS through the server (SPEC §7): playlists fetched through `/TOKEN/stream/...` come back with
//! every URI pointing at the local server, ffmpeg plays whole presentations (MPEG-TS, fMP4/CMAF
//! with `EXT-X-MAP`, byte-range segments) without ever reaching the origin itself, VOD playlists
//! stay cached, and a live playlist is fetched again once its target duration has passed.
//!
//! Fixtures are generated at test time with ffmpeg (a sine wave, 2 s segments) into the origin's
//! directory, so nothing binary is checked in; the master playlists are written by the test
//! because they must name the origin's port (absolute URIs) and mix URI forms on purpose.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::*;

/// Encodes 8 s of a 440 Hz sine as AAC into an HLS rendition in `origin_dir/name/` (playlist
/// `index.m3u8`), with 2 s segments and the given extra muxer options.
fn rendition(origin_dir: &Path, name: &str, bitrate: &str, extra: &[&str]) {
    let dir = origin_dir.join(name);
    std::fs::create_dir_all(&dir).expect("create rendition dir");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=8",
        "-c:a",
        "aac",
        "-b:a",
        bitrate,
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_list_size",
        "0",
        "-hls_playlist_type",
        "vod",
    ];
    args.extend_from_slice(extra);
    args.push("index.m3u8");
    ffmpeg_in(&dir, &args);
}

/// The fixtures: TS renditions at two bitrates, an fMP4 one, a single-file (byte-range) one, and
/// master playlists over them. Returns the master playlists' paths on the origin.
fn fixtures(origin: &Origin) -> Vec<&'static str> {
    let dir = origin.dir();
    rendition(dir, "hls/low", "48k", &["-hls_segment_filename", "seg%d.ts"]);
    rendition(dir, "hls/high", "128k", &["-hls_segment_filename", "seg%d.ts"]);
    rendition(
        dir,
        "hls/cmaf",
        "64k",
        &[
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
            "-hls_segment_filename",
            "seg%d.m4s",
        ],
    );
    rendition(dir, "hls/single", "64k", &["-hls_flags", "single_file"]);
    // One variant absolute, one root-relative, one relative with a query string.
    let master = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-STREAM-INF:BANDWIDTH=60000,CODECS=\"mp4a.40.2\"\n{}hls/low/index.m3u8\n\
         #EXT-X-STREAM-INF:BANDWIDTH=150000,CODECS=\"mp4a.40.2\"\n/hls/high/index.m3u8\n\
         #EXT-X-STREAM-INF:BANDWIDTH=90000,CODECS=\"mp4a.40.2\"\nsingle/index.m3u8?variant=single\n",
        origin.url
    );
    std::fs::write(dir.join("hls/master.m3u8"), master).expect("write master playlist");
    let cmaf = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=80000,CODECS=\"mp4a.40.2\"\nindex.m3u8\n";
    std::fs::write(dir.join("hls/cmaf/master.m3u8"), cmaf).expect("write fMP4 master playlist");
    vec!["hls/master.m3u8", "hls/cmaf/master.m3u8"]
}

/// Every URI a playlist names: URI lines and quoted `URI` attributes.
fn uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            out.push(line.to_string());
        } else if let Some((_, rest)) = line.split_once("URI=\"") {
            let end = rest
                .find('"')
                .unwrap_or_else(|| panic!("unterminated URI attribute: {line}"));
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// Fetches a playlist through the server and checks the headers a player relies on, and that
/// HEAD agrees with GET (for playlists that do not change between the two requests).
#[track_caller]
fn playlist_through(url: &str) -> String {
    let r = get_playlist(url);
    let head = http("HEAD", url, &[]);
    assert_eq!(head.status, 200, "HEAD {url}");
    assert_eq!(head.content_length(), r.content_length(), "HEAD {url}: Content-Length");
    assert_eq!(head.header("etag"), r.header("etag"), "HEAD {url}: ETag");
    r.text()
}

/// `GET` of a playlist through the server: 200, complete, the playlist media type, a length and a
/// strong ETag.
#[track_caller]
fn get_playlist(url: &str) -> Resp {
    let r = get(url);
    assert_eq!(r.status, 200, "GET {url}: {}", r.text());
    r.assert_complete(url);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl"),
        "GET {url}"
    );
    assert!(r.content_length().is_some(), "GET {url}: no Content-Length");
    let etag = r.header("etag").unwrap_or_else(|| panic!("GET {url}: no ETag"));
    assert!(etag.starts_with('"'), "GET {url}: weak or malformed ETag {etag}");
    r
}

/// Every file under `dir` as an origin path (`/a/b.ts`).
fn served_paths(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read fixture dir") {
            let path = entry.expect("fixture dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.insert(format!("/{}", rel.display()));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn playlists_name_only_local_urls() {
    let origin = Origin::start(&[]);
    let masters = fixtures(&origin);
    let server = Server::start(&[&origin]);
    let local_prefix = format!("{}stream/http/{}/", server.base, origin.host_port());
    let mut media_playlists = 0;
    for master in masters {
        let text = playlist_through(&server.stream_url(&origin, master));
        // The origin's host:port appears only inside local paths (`stream/http/HOST:PORT/`),
        // never as a URL's authority.
        assert!(
            !text.contains(&format!("//{}", origin.host_port())),
            "{master} through the server still names an origin URL:\n{text}"
        );
        let variants = uris(&text);
        assert!(!variants.is_empty(), "{master} names no variants:\n{text}");
        for variant in variants {
            assert!(variant.starts_with(&local_prefix), "{master}: {variant} is not local");
            let media = playlist_through(&variant);
            media_playlists += 1;
            let named = uris(&media);
            assert!(named.len() >= 4, "{variant} names too few segments:\n{media}");
            for uri in named {
                assert!(
                    uri.starts_with(&local_prefix),
                    "{variant}: {uri} is not local:\n{media}"
                );
            }
            if variant.contains("/cmaf/") {
                assert!(
                    media.contains("#EXT-X-MAP:URI=\""),
                    "fMP4 playlist lost EXT-X-MAP:\n{media}"
                );
            }
            if variant.contains("/single/") {
                assert!(
                    media.contains("#EXT-X-BYTERANGE:"),
                    "single-file playlist lost its byte ranges:\n{media}"
                );
            }
        }
    }
    assert_eq!(media_playlists, 4, "three TS variants and one fMP4 variant");
}

#[test]
fn ffmpeg_plays_ts_and_fmp4_only_through_the_server() {
    let origin = Origin::start(&[]);
    let masters = fixtures(&origin);
    let fixtures = served_paths(origin.dir());
    let server = Server::start(&[&origin]);
    for master in masters {
        let url = server.stream_url(&origin, master);
        let out = Command::new(require_tool("ffmpeg"))
            .args(["-v", "error", "-nostdin", "-i", &url, "-c", "copy", "-f", "null", "-"])
            .stdin(Stdio::null())
            .output()
            .expect("run ffmpeg");
        assert!(
            out.status.success(),
            "ffmpeg could not play {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = origin.log();
    assert!(!log.is_empty(), "the origin saw no requests");
    for entry in &log {
        let path = entry.path.split('?').next().unwrap_or_default();
        assert!(
            fixtures.contains(path),
            "the origin got a request for {} that is not a fixture file",
            entry.path
        );
        assert!(
            entry.status < 300,
            "the origin answered {} for {}",
            entry.status,
            entry.path
        );
    }
    for segment in ["/hls/cmaf/init.mp4", "/hls/cmaf/seg0.m4s", "/hls/single/index.ts"] {
        assert!(
            log.iter().any(|e| e.path == segment),
            "the server never fetched {segment}; origin log: {log:?}"
        );
    }
    let sent: u64 = log.iter().map(|e| e.body_bytes).sum();
    let stats = server.stats();
    let upstream = json_u64(&stats, "bytes_from_upstream");
    assert!(
        upstream > 0 && upstream <= sent,
        "the server's bytes_from_upstream ({upstream}) must account for what the origin sent ({sent})"
    );
}

#[test]
fn vod_playlists_stay_cached() {
    let origin = Origin::start(&[]);
    fixtures(&origin);
    let server = Server::start(&[&origin]);
    let url = server.stream_url(&origin, "hls/low/index.m3u8");
    let first = playlist_through(&url);
    let second = playlist_through(&url);
    assert_eq!(first, second);
    let fetched = origin.log_for("/hls/low/index.m3u8");
    assert_eq!(fetched.len(), 1, "a VOD playlist is fetched once: {fetched:?}");
}

#[test]
fn live_playlists_are_refetched_after_their_target_duration() {
    let origin = Origin::start(&[]);
    let live = |segments: usize| {
        let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n");
        for i in 0..segments {
            text.push_str(&format!("#EXTINF:1.0,\nlive-seg{i}.ts\n"));
        }
        text
    };
    // Top-level names: `put_file` replaces a file atomically within the origin's directory.
    origin.put_file("live.m3u8", live(2).as_bytes());
    let server = Server::start(&[&origin]);
    let url = server.stream_url(&origin, "live.m3u8");
    let segment = |i: usize| server.stream_url(&origin, &format!("live-seg{i}.ts"));
    let first = get_playlist(&url).text();
    assert!(first.contains(&segment(1)), "first fetch lists seg1:\n{first}");
    assert!(
        !first.contains("live-seg2.ts"),
        "first fetch cannot list seg2 yet:\n{first}"
    );

    origin.put_file("live.m3u8", live(3).as_bytes());
    let mut latest = String::new();
    wait_until(Duration::from_secs(15), "the server lists the new live segment", || {
        latest = get_playlist(&url).text();
        latest.contains(&segment(2))
    });
    assert!(
        latest.lines().any(|l| l == segment(2)),
        "seg2 is a local URI line:\n{latest}"
    );
    assert!(
        origin.log_for("/live.m3u8").len() >= 2,
        "the live playlist was fetched again from the origin"
    );
}
