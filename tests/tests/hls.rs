//! HLS through the server (SPEC §7): playlists fetched through `/TOKEN/stream/...` come back with
//! every URI pointing at the local server, ffmpeg plays whole presentations (MPEG-TS, fMP4/CMAF
//! with `EXT-X-MAP`, byte-range segments) without ever reaching the backend itself, VOD playlists
//! stay cached, a live playlist is fetched again once its target duration has passed, and a master
//! reached through a redirect names its relative variants against the URL it was finally read at.
//!
//! The same fixtures ([`integration_tests::hls_fixtures`], generated with ffmpeg at test time) are
//! served by the dev origin (plain HTTP, request log over its control API) and by nginx (TLS and
//! HTTP/2 with an extra CA, request log from its access log), so the checks run against both.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use integration_tests::hls_fixtures::{self, ffmpeg_plays, served_paths, uris, RELATIVE_MASTER};
use integration_tests::nginx::Nginx;
use integration_tests::*;

/// How long a backend gets to log a request the server has already made (nginx logs a request
/// once it has finished answering it).
const LOG_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend serving the fixtures.
enum Backend {
    /// `streamer origin` over plain HTTP.
    Dev(Origin),
    /// nginx over HTTPS (HTTP/2), the server trusting its CA with `--ca-cert`.
    Nginx(Nginx),
}

/// One request a backend answered.
#[derive(Debug)]
struct Served {
    /// The path with its query string.
    path: String,
    status: u16,
    body_bytes: u64,
}

impl Backend {
    fn dev() -> Backend {
        Backend::Dev(Origin::start(&[]))
    }

    /// nginx with extra exact locations (see [`Nginx::start`]).
    fn nginx(locations: &[(&str, &str)]) -> Backend {
        Backend::Nginx(Nginx::start(locations))
    }

    /// `SCHEME://HOST:PORT/`.
    fn base_url(&self) -> String {
        match self {
            Backend::Dev(o) => o.url.clone(),
            Backend::Nginx(n) => format!("{}/", n.origin()),
        }
    }

    /// `HOST:PORT`.
    fn authority(&self) -> String {
        match self {
            Backend::Dev(o) => o.host_port(),
            Backend::Nginx(n) => n.host_port(),
        }
    }

    /// The directory the backend serves.
    fn dir(&self) -> PathBuf {
        match self {
            Backend::Dev(o) => o.dir().to_path_buf(),
            Backend::Nginx(n) => n.www(),
        }
    }

    /// `streamer serve` allowed to fetch from this backend.
    fn server(&self) -> Server {
        match self {
            Backend::Dev(o) => Server::start(&[o]),
            Backend::Nginx(n) => {
                let ca = n.ca().display().to_string();
                Server::start_with(None, &[n.origin()], &["--ca-cert", &ca])
            }
        }
    }

    /// Every request the backend has answered (and logged) so far, in order.
    fn log(&self) -> Vec<Served> {
        match self {
            Backend::Dev(o) => o
                .log()
                .into_iter()
                .map(|e| Served {
                    path: e.path,
                    status: e.status,
                    body_bytes: e.body_bytes,
                })
                .collect(),
            Backend::Nginx(n) => n
                .requests()
                .into_iter()
                .map(|r| Served {
                    path: r.path,
                    status: r.status,
                    body_bytes: r.body_bytes,
                })
                .collect(),
        }
    }

    /// The log once it holds a request for each of `paths` (exact, with query), bounded.
    #[track_caller]
    fn log_with(&self, paths: &[&str]) -> Vec<Served> {
        let mut log = Vec::new();
        let complete = poll_until(LOG_TIMEOUT, || {
            log = self.log();
            paths.iter().all(|p| log.iter().any(|e| e.path == *p))
        });
        let missing: Vec<_> = paths.iter().filter(|p| !log.iter().any(|e| e.path == **p)).collect();
        assert!(
            complete,
            "the server never fetched {missing:?} from the backend; its log: {log:#?}"
        );
        log
    }
}

/// Fixtures on a backend and a server in front of it.
struct Hls {
    backend: Backend,
    server: Server,
    /// The masters a player is given (paths on the backend).
    masters: Vec<&'static str>,
    /// Every fixture file, as a backend path.
    fixtures: BTreeSet<String>,
    /// `BASE/stream/SCHEME/HOST:PORT/`: what every URI in a served playlist must start with.
    local_prefix: String,
}

impl Hls {
    fn start(backend: Backend) -> Hls {
        let dir = backend.dir();
        let masters = hls_fixtures::generate(&dir, &backend.base_url());
        let fixtures = served_paths(&dir);
        let server = backend.server();
        let local_prefix = format!("{}stream/{}", server.base, backend.base_url().replacen("://", "/", 1));
        Hls {
            backend,
            server,
            masters,
            fixtures,
            local_prefix,
        }
    }

    /// The local URL of `path` (no leading slash) on the backend.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.local_prefix)
    }

    /// Asserts that every request the backend answered was for a fixture file and succeeded,
    /// except the `(path, status)` pairs in `expected_others` (redirects, say).
    #[track_caller]
    fn assert_backend_saw_only_fixtures(&self, log: &[Served], expected_others: &[(&str, u16)]) {
        assert!(!log.is_empty(), "the backend saw no requests");
        for entry in log {
            if expected_others.contains(&(entry.path.as_str(), entry.status)) {
                continue;
            }
            let path = entry.path.split('?').next().unwrap_or_default();
            assert!(
                self.fixtures.contains(path),
                "the backend got a request for {} that is not a fixture file (answered {}); its log: {log:#?}",
                entry.path,
                entry.status
            );
            assert!(
                entry.status < 300,
                "the backend answered {} for {}",
                entry.status,
                entry.path
            );
        }
    }

    /// Asserts that the server's `bytes_from_upstream` is accounted for by what the backend sent.
    #[track_caller]
    fn assert_upstream_bytes_accounted(&self) {
        let (mut upstream, mut sent) = (0, 0);
        // nginx logs a request only once it has answered it completely; let fetches finish.
        let accounted = poll_until(LOG_TIMEOUT, || {
            sent = self.backend.log().iter().map(|e| e.body_bytes).sum::<u64>();
            upstream = json_u64(&self.server.stats(), "bytes_from_upstream");
            upstream > 0 && upstream <= sent
        });
        assert!(
            accounted,
            "the server's bytes_from_upstream ({upstream}) must account for what the backend sent ({sent})"
        );
    }
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

/// Every master and every media playlist through the server names only local URLs, and the
/// fMP4 and single-file renditions keep their `EXT-X-MAP` and byte ranges.
fn playlists_name_only_local_urls_on(backend: Backend) {
    let hls = Hls::start(backend);
    let local_prefix = &hls.local_prefix;
    let authority = hls.backend.authority();
    let mut media_playlists = 0;
    for master in &hls.masters {
        let text = playlist_through(&hls.url(master));
        // The backend's host:port appears only inside local paths (`stream/SCHEME/HOST:PORT/`),
        // never as a URL's authority.
        assert!(
            !text.contains(&format!("//{authority}")),
            "{master} through the server still names a backend URL:\n{text}"
        );
        let variants = uris(&text);
        assert!(!variants.is_empty(), "{master} names no variants:\n{text}");
        for variant in variants {
            assert!(variant.starts_with(local_prefix), "{master}: {variant} is not local");
            let media = playlist_through(&variant);
            media_playlists += 1;
            let named = uris(&media);
            assert!(named.len() >= 4, "{variant} names too few segments:\n{media}");
            for uri in named {
                assert!(uri.starts_with(local_prefix), "{variant}: {uri} is not local:\n{media}");
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

/// ffmpeg plays the TS and the fMP4 master through the server, and the backend only ever saw
/// successful requests for fixture files, among them the fMP4 init segment and the single file.
fn ffmpeg_plays_ts_and_fmp4_only_through_the_server_on(backend: Backend) {
    let hls = Hls::start(backend);
    for master in &hls.masters {
        ffmpeg_plays(&hls.url(master));
    }
    let log = hls
        .backend
        .log_with(&["/hls/cmaf/init.mp4", "/hls/cmaf/seg0.m4s", "/hls/single/index.ts"]);
    hls.assert_backend_saw_only_fixtures(&log, &[]);
    hls.assert_upstream_bytes_accounted();
}

/// A VOD media playlist read twice through the server is fetched from the backend once.
fn vod_playlists_stay_cached_on(backend: Backend) {
    let hls = Hls::start(backend);
    let url = hls.url("hls/low/index.m3u8");
    let first = playlist_through(&url);
    let second = playlist_through(&url);
    assert_eq!(first, second);
    let log = hls.backend.log_with(&["/hls/low/index.m3u8"]);
    let fetched: Vec<_> = log.iter().filter(|e| e.path == "/hls/low/index.m3u8").collect();
    assert_eq!(fetched.len(), 1, "a VOD playlist is fetched once: {fetched:?}");
}

#[test]
fn playlists_name_only_local_urls() {
    playlists_name_only_local_urls_on(Backend::dev());
}

#[test]
fn playlists_from_nginx_name_only_local_urls() {
    playlists_name_only_local_urls_on(Backend::nginx(&[]));
}

#[test]
fn ffmpeg_plays_ts_and_fmp4_only_through_the_server() {
    ffmpeg_plays_ts_and_fmp4_only_through_the_server_on(Backend::dev());
}

#[test]
fn ffmpeg_plays_ts_and_fmp4_from_nginx_only_through_the_server() {
    ffmpeg_plays_ts_and_fmp4_only_through_the_server_on(Backend::nginx(&[]));
}

#[test]
fn vod_playlists_stay_cached() {
    vod_playlists_stay_cached_on(Backend::dev());
}

#[test]
fn vod_playlists_from_nginx_stay_cached() {
    vod_playlists_stay_cached_on(Backend::nginx(&[]));
}

/// nginx answers `/moved/master.m3u8` with a 302 to the all-relative master in `/hls/`. A player
/// resolves relative URIs against the URL it finally read the playlist at, so the served master
/// must name `/hls/low/index.m3u8`, never `/moved/low/index.m3u8` (which nginx does not have).
#[test]
fn a_redirected_master_names_its_variants_relative_to_the_final_url() {
    let redirect = format!("302 /{RELATIVE_MASTER}");
    let hls = Hls::start(Backend::nginx(&[("/moved/master.m3u8", &redirect)]));
    let url = hls.url("moved/master.m3u8");
    let text = playlist_through(&url);
    let variants = uris(&text);
    let misresolved: Vec<_> = variants.iter().filter(|v| v.contains("/moved/")).collect();
    assert!(
        misresolved.is_empty(),
        "relative variant URIs were resolved against the requested URL (/moved/master.m3u8) instead \
         of the final URL after the redirect (/{RELATIVE_MASTER}): {misresolved:?}\nserved master:\n{text}"
    );
    for name in ["low", "high", "single"] {
        let want = hls.url(&format!("hls/{name}/index.m3u8"));
        assert!(
            variants.contains(&want),
            "the redirected master should name {want}:\n{text}"
        );
    }
    ffmpeg_plays(&url);
    let log = hls.backend.log_with(&["/moved/master.m3u8", "/hls/low/index.m3u8"]);
    hls.assert_backend_saw_only_fixtures(&log, &[("/moved/master.m3u8", 302)]);
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
