//! The fetcher against real backends, driven through the library's `BlockingServer`: HTTPS with
//! an extra CA, HTTP/1.1 even to a backend that offers HTTP/2 (nginx from Debian), redirects only to allowed origins, upstream
//! headers changed at run time, the credential resolver, timeouts and unreachable backends, and
//! LRU eviction under `max_cache_bytes`.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use embedded_server::{BlockingServer, Config, Refreshed, Resolver, TrackSpec, TrustRoots};
use integration_tests::nginx::{free_port, make_ca, openssl, Nginx};
use integration_tests::{assert_bytes_eq, get, seeded_bytes, wait_until, LogEntry, Origin, MIB};
use tempfile::TempDir;

/// A server on a fresh cache directory allowing `origins`, with `adjust` applied to the config.
fn server(origins: &[String], adjust: impl FnOnce(&mut Config)) -> (BlockingServer, TempDir) {
    let dir = tempfile::tempdir().expect("cache dir");
    let mut config = Config::new(dir.path());
    config.origins = origins.to_vec();
    adjust(&mut config);
    (BlockingServer::start(config).expect("server starts"), dir)
}

/// nginx with the locations these tests use: `/moved-here` redirects to `/a.bin` on the same
/// origin, `/moved-away` to `redirect_to`, and `/expired` answers 403 (an expired signed URL).
fn start_nginx(redirect_to: &str) -> Nginx {
    let away = format!("302 {redirect_to}");
    Nginx::start(&[
        ("/moved-here", "302 /a.bin"),
        ("/moved-away", &away),
        ("/expired", "403"),
    ])
}

#[test]
fn https_backend_with_extra_ca_is_fetched_over_http1_even_where_http2_is_offered() {
    let nginx = start_nginx("http://127.0.0.1:9/nowhere");
    let truth = seeded_bytes(11, 3 * MIB + 17);
    std::fs::write(nginx.www().join("a.bin"), &truth).expect("write");
    let ca = nginx.ca();
    let (srv, _dir) = server(&[nginx.origin()], |c| c.ca_cert_pem = Some(ca));
    let url = srv
        .stream_url(&format!("{}/a.bin", nginx.origin()))
        .expect("stream url");
    let r = get(&url);
    r.assert_complete("https GET");
    assert_eq!(r.status, 200);
    assert_bytes_eq("https body", &r.body, &truth);
    let log = nginx.access_log();
    // nginx offers h2 by ALPN; each fill keeps a connection of its own (see fetch/mod.rs).
    assert!(
        log.lines().any(|l| l.starts_with("GET /a.bin HTTP/1.1 20")),
        "nginx did not see HTTP/1.1: {log}"
    );
    assert!(!log.contains("HTTP/2.0"), "HTTP/2 was used: {log}");

    // Without the extra CA the backend's certificate is not trusted: 502, never plaintext.
    let (plain, _dir2) = server(&[nginx.origin()], |_| {});
    let r = get(&plain.stream_url(&format!("{}/a.bin", nginx.origin())).expect("url"));
    r.assert_json_error("untrusted certificate", 502);
}

/// Writes `ca` into `dir` as Android stores a system CA: a file named `<subject hash>.0` holding
/// the PEM block followed by openssl's text dump of the certificate. Returns the file name.
fn android_ca_file(ca: &std::path::Path, dir: &std::path::Path) -> String {
    let ca = ca.to_str().expect("utf-8 path");
    let hash = String::from_utf8(openssl(dir, &["x509", "-in", ca, "-noout", "-subject_hash_old"])).expect("hash");
    let name = format!("{}.0", hash.trim());
    let mut body = std::fs::read(ca).expect("read CA");
    body.extend(openssl(dir, &["x509", "-in", ca, "-noout", "-text", "-fingerprint"]));
    std::fs::write(dir.join(&name), body).expect("write CA file");
    name
}

#[test]
fn android_ca_directory_is_trusted_minus_the_disabled() {
    let nginx = start_nginx("http://127.0.0.1:9/nowhere");
    let truth = seeded_bytes(13, 300_000);
    std::fs::write(nginx.www().join("a.bin"), &truth).expect("write");
    let store = tempfile::tempdir().expect("store");
    let (cacerts, removed) = (store.path().join("cacerts"), store.path().join("cacerts-removed"));
    std::fs::create_dir_all(&cacerts).expect("mkdir");
    std::fs::create_dir_all(&removed).expect("mkdir");
    // Another CA, and a file that is no certificate: both are read past.
    make_ca(store.path(), "other", "other CA");
    android_ca_file(&store.path().join("other.pem"), &cacerts);
    std::fs::write(cacerts.join("ffffffff.0"), b"not a certificate\n").expect("write");
    let name = android_ca_file(&nginx.ca(), &cacerts);
    let trust = |disabled: Option<std::path::PathBuf>| TrustRoots::Directories {
        // The first directory that exists is the store (Android 14's APEX path first).
        dirs: vec![store.path().join("apex-missing"), cacerts.clone()],
        disabled,
    };

    let (srv, _dir) = server(&[nginx.origin()], |c| c.trust_roots = trust(Some(removed.clone())));
    let r = get(&srv.stream_url(&format!("{}/a.bin", nginx.origin())).expect("url"));
    r.assert_complete("GET trusted by the CA directory");
    assert_bytes_eq("body", &r.body, &truth);

    // The user turned the CA off in Settings: a file of the same name in the removed directory.
    std::fs::write(removed.join(&name), b"").expect("disable");
    let (off, _dir2) = server(&[nginx.origin()], |c| c.trust_roots = trust(Some(removed.clone())));
    let r = get(&off.stream_url(&format!("{}/a.bin", nginx.origin())).expect("url"));
    r.assert_json_error("a disabled CA", 502);

    // No store at all is a clear error at start, not a server that can fetch nothing over TLS.
    let dir = tempfile::tempdir().expect("cache dir");
    let mut config = Config::new(dir.path());
    config.trust_roots = TrustRoots::Directories {
        dirs: vec![store.path().join("none")],
        disabled: None,
    };
    let err = BlockingServer::start(config)
        .err()
        .expect("start refuses a missing CA store");
    assert!(err.to_string().contains("no CA directory found"), "{err}");
}

#[test]
fn redirects_are_followed_only_to_allowed_origins() {
    let away = Origin::start(&[]);
    away.put_file("x.bin", b"must never be fetched");
    let nginx = start_nginx(&format!("{}x.bin", away.url));
    let truth = seeded_bytes(12, 200_000);
    std::fs::write(nginx.www().join("a.bin"), &truth).expect("write");
    let ca = nginx.ca();
    let (srv, _dir) = server(&[nginx.origin()], |c| c.ca_cert_pem = Some(ca));

    let r = get(&srv.stream_url(&format!("{}/moved-here", nginx.origin())).expect("url"));
    r.assert_complete("redirect within the origin");
    assert_bytes_eq("redirected body", &r.body, &truth);

    let r = get(&srv.stream_url(&format!("{}/moved-away", nginx.origin())).expect("url"));
    r.assert_json_error("redirect to an unlisted origin", 502);
    assert!(r.text().contains("not allowed"), "{}", r.text());
    assert!(
        away.log().is_empty(),
        "the unlisted origin was contacted: {:?}",
        away.log()
    );
}

/// Counts calls and hands out the good credentials.
struct CountingResolver {
    calls: AtomicUsize,
    answer: Option<Refreshed>,
}

impl Resolver for CountingResolver {
    fn refresh(&self, _track_id: Option<&str>, _url: &str) -> Option<Refreshed> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer.clone()
    }
}

#[test]
fn resolver_is_asked_once_on_401_and_its_headers_stick() {
    let origin = Origin::start(&["--require-auth", "Bearer good"]);
    let truth = seeded_bytes(13, 300_000);
    origin.put_file("t.bin", &truth);
    origin.put_file("u.bin", &truth[..1000]);
    let (srv, _dir) = server(&[origin.origin_arg()], |c| {
        c.upstream_headers.push(("Authorization".into(), "Bearer stale".into()))
    });
    let resolver = Arc::new(CountingResolver {
        calls: AtomicUsize::new(0),
        answer: Some(Refreshed {
            url: None,
            headers: vec![("Authorization".into(), "Bearer good".into())],
        }),
    });
    srv.set_resolver(Some(resolver.clone())).expect("set resolver");
    srv.put_track(
        "t",
        TrackSpec {
            url: format!("{}t.bin", origin.url),
            ..Default::default()
        },
    )
    .expect("put");

    let r = get(&srv.track_url("t").expect("url"));
    r.assert_complete("track after refresh");
    assert_bytes_eq("track body", &r.body, &truth);
    assert_eq!(
        resolver.calls.load(Ordering::SeqCst),
        1,
        "the resolver is asked exactly once"
    );

    // The refreshed header is used from now on: no further 401, no further resolver call.
    origin.clear_log();
    let r = get(&srv.stream_url(&format!("{}u.bin", origin.url)).expect("url"));
    assert_bytes_eq("second resource", &r.body, &truth[..1000]);
    assert!(origin.log().iter().all(|e| e.status != 401), "{:?}", origin.log());
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 1);
}

/// Hands out a fresh URL, as an app re-signing an expired CDN link would.
struct ResigningResolver {
    calls: AtomicUsize,
    fresh: String,
}

impl Resolver for ResigningResolver {
    fn refresh(&self, track_id: Option<&str>, _url: &str) -> Option<Refreshed> {
        assert_eq!(track_id, Some("song"), "the resolver learns which track it is");
        self.calls.fetch_add(1, Ordering::SeqCst);
        Some(Refreshed {
            url: Some(self.fresh.clone()),
            headers: Vec::new(),
        })
    }
}

#[test]
fn an_expired_signed_url_is_resigned_once_and_the_cache_stays_keyed_by_track() {
    let nginx = start_nginx("http://127.0.0.1:9/nowhere");
    let truth = seeded_bytes(14, 500_000);
    std::fs::write(nginx.www().join("a.bin"), &truth).expect("write");
    let ca = nginx.ca();
    let (srv, _dir) = server(&[nginx.origin()], |c| c.ca_cert_pem = Some(ca));
    let resolver = Arc::new(ResigningResolver {
        calls: AtomicUsize::new(0),
        fresh: format!("{}/a.bin", nginx.origin()),
    });
    srv.set_resolver(Some(resolver.clone())).expect("set resolver");
    let expired = TrackSpec {
        url: format!("{}/expired", nginx.origin()),
        ..Default::default()
    };
    srv.put_track("song", expired.clone()).expect("put");
    let r = get(&srv.track_url("song").expect("url"));
    r.assert_complete("after re-signing");
    assert_bytes_eq("re-signed track", &r.body, &truth);
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 1);

    // Registering the (stale) URL again does not invalidate the cache: it is keyed by the ID.
    srv.put_track("song", expired).expect("put again");
    let before = nginx.access_log().lines().count();
    let r = get(&srv.track_url("song").expect("url"));
    assert_bytes_eq("from cache", &r.body, &truth);
    assert_eq!(
        nginx.access_log().lines().count(),
        before,
        "a cached track must not be downloaded twice"
    );
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn refused_credentials_without_a_resolver_answer_give_502_until_headers_are_set() {
    let origin = Origin::start(&["--require-auth", "Bearer good"]);
    origin.put_file("t.bin", b"secret audio");
    let (srv, _dir) = server(&[origin.origin_arg()], |_| {});
    let resolver = Arc::new(CountingResolver {
        calls: AtomicUsize::new(0),
        answer: None,
    });
    srv.set_resolver(Some(resolver.clone())).expect("set resolver");
    let url = srv.stream_url(&format!("{}t.bin", origin.url)).expect("url");
    let r = get(&url);
    r.assert_json_error("refused upstream", 502);
    assert!(r.text().contains("refused access"), "{}", r.text());
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 1);

    srv.set_header("Authorization", Some("Bearer good"))
        .expect("set header");
    let r = get(&url);
    r.assert_complete("after set_header");
    assert_eq!(r.body, b"secret audio");
    assert!(
        srv.set_header("Bad Name", Some("x")).is_err(),
        "a malformed header name is refused"
    );
}

#[test]
fn silent_backend_gives_504_and_closed_port_gives_502() {
    // A backend that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let closed_port = free_port();
    let origins = [
        format!("http://127.0.0.1:{silent_port}"),
        format!("http://127.0.0.1:{closed_port}"),
    ];
    let (srv, _dir) = server(&origins, |c| {
        c.read_timeout = Duration::from_millis(500);
        c.connect_timeout = Duration::from_millis(500);
        c.upstream_attempts = 2;
    });
    let r = get(&srv
        .stream_url(&format!("http://127.0.0.1:{silent_port}/a.mp3"))
        .expect("url"));
    r.assert_json_error("silent backend", 504);
    let r = get(&srv
        .stream_url(&format!("http://127.0.0.1:{closed_port}/a.mp3"))
        .expect("url"));
    r.assert_json_error("closed port", 502);
    drop(silent);
}

#[test]
fn eviction_keeps_the_cache_under_its_limit_least_recently_used_first() {
    let origin = Origin::start(&[]);
    let files: Vec<Vec<u8>> = (0..4).map(|i| seeded_bytes(100 + i, MIB)).collect();
    for (i, f) in files.iter().enumerate() {
        origin.put_file(&format!("f{i}.bin"), f);
    }
    let limit = (2 * MIB + MIB / 2) as u64;
    let (srv, _dir) = server(&[origin.origin_arg()], |c| {
        c.max_cache_bytes = limit;
        c.sync_interval = Duration::from_millis(100);
    });
    let url = |i: usize| srv.stream_url(&format!("{}f{i}.bin", origin.url)).expect("url");
    for (i, f) in files.iter().enumerate() {
        let r = get(&url(i));
        r.assert_complete("fill");
        assert_bytes_eq("served bytes", &r.body, f);
        // Touch f0 again after f1 so that f1, not f0, is the least recently used.
        if i == 1 {
            assert_bytes_eq("re-read", &get(&url(0)).body, &files[0]);
        }
    }
    // The end state of the eviction pass: its counter is bumped just after each removal, so a
    // snapshot taken mid-pass may show the bytes and entries gone before the count.
    wait_until(Duration::from_secs(10), "cache under its limit, two evicted", || {
        let stats = srv.stats().expect("stats");
        stats.cache_bytes <= limit && stats.evictions >= 2
    });
    let stats = srv.stats().expect("stats");
    assert_eq!(stats.entries, 2, "{stats:?}");
    // f1 (least recently used) and f0 went; f2 and f3 are served from the cache.
    origin.clear_log();
    for i in [2, 3] {
        assert_bytes_eq("kept", &get(&url(i)).body, &files[i]);
    }
    assert!(
        origin.log().is_empty(),
        "kept resources must not hit the backend: {:?}",
        origin.log()
    );
    assert_bytes_eq("evicted, fetched again", &get(&url(1)).body, &files[1]);
    assert_eq!(origin.log().len(), 1, "an evicted resource is fetched again");
}

#[test]
fn a_resource_being_read_is_not_evicted() {
    let origin = Origin::start(&[]);
    let big = seeded_bytes(200, 24 * MIB);
    origin.put_file("big.bin", &big);
    let others: Vec<Vec<u8>> = (0..3).map(|i| seeded_bytes(300 + i, MIB)).collect();
    for (i, f) in others.iter().enumerate() {
        origin.put_file(&format!("o{i}.bin"), f);
    }
    let (srv, _dir) = server(&[origin.origin_arg()], |c| {
        c.max_cache_bytes = (24 * MIB) as u64;
        c.sync_interval = Duration::from_millis(100);
    });
    let big_url = srv.stream_url(&format!("{}big.bin", origin.url)).expect("url");
    // Fully cache it, then hold a response open on it without reading.
    assert_bytes_eq("big", &get(&big_url).body, &big);
    let held = integration_tests::SlowReader::open(&big_url);
    assert_eq!(held.status, 200);
    for (i, f) in others.iter().enumerate() {
        assert_bytes_eq(
            "other",
            &get(&srv.stream_url(&format!("{}o{i}.bin", origin.url)).expect("url")).body,
            f,
        );
    }
    // They do not fit beside it: they were stored and evicted, or (the limit holding at every
    // moment, issue #15) passed through unstored.
    let stats = srv.stats().expect("stats");
    assert!(
        stats.evictions >= 1 || stats.bytes_passed_through > 0,
        "the others did not fit: {stats:?}"
    );
    // The reader still gets every byte, and big.bin is still cached.
    let head = held.read_rest();
    assert_bytes_eq("held reader", &head, &big);
    origin.clear_log();
    assert_bytes_eq("big again", &get(&big_url).body, &big);
    assert!(
        origin.log().is_empty(),
        "the resource being read was evicted: {:?}",
        origin.log()
    );
}

/// Answers with the good header, but only once the origin has refused `expect` different
/// paths: every one of those requests is then refused while this call runs.
struct GatedResolver {
    calls: AtomicUsize,
    origin_url: String,
    expect: usize,
}

impl Resolver for GatedResolver {
    fn refresh(&self, _track_id: Option<&str>, _url: &str) -> Option<Refreshed> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let log_url = format!("{}_control/log", self.origin_url);
        wait_until(Duration::from_secs(20), "every request was refused once", || {
            let log: Vec<LogEntry> = serde_json::from_slice(&get(&log_url).body).expect("origin log JSON");
            let refused: std::collections::HashSet<_> =
                log.into_iter().filter(|e| e.status == 401).map(|e| e.path).collect();
            refused.len() >= self.expect
        });
        Some(Refreshed {
            url: None,
            headers: vec![("Authorization".into(), "Bearer good".into())],
        })
    }
}

#[test]
fn requests_refused_together_share_one_resolver_call() {
    let origin = Origin::start(&["--require-auth", "Bearer good"]);
    let tracks: Vec<Vec<u8>> = (0..8).map(|i| seeded_bytes(40 + i, 100_000 + i as usize)).collect();
    for (i, truth) in tracks.iter().enumerate() {
        origin.put_file(&format!("t{i}.bin"), truth);
    }
    let (srv, _dir) = server(&[origin.origin_arg()], |c| c.resolver_timeout = Duration::from_secs(60));
    let resolver = Arc::new(GatedResolver {
        calls: AtomicUsize::new(0),
        origin_url: origin.url.clone(),
        expect: tracks.len(),
    });
    srv.set_resolver(Some(resolver.clone())).expect("set resolver");
    let urls: Vec<String> = (0..tracks.len())
        .map(|i| srv.stream_url(&format!("{}t{i}.bin", origin.url)).expect("url"))
        .collect();
    let bodies: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = urls.iter().map(|u| s.spawn(move || get(u))).collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    for (i, (r, truth)) in bodies.iter().zip(&tracks).enumerate() {
        r.assert_complete(&format!("track {i}"));
        assert_bytes_eq(&format!("track {i}"), &r.body, truth);
    }
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 1, "eight refusals, one call");
}

/// Blocks until the test lets it go, then gives the good header.
struct StuckResolver {
    calls: AtomicUsize,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Resolver for StuckResolver {
    fn refresh(&self, _track_id: Option<&str>, _url: &str) -> Option<Refreshed> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.release.lock().expect("lock").recv_timeout(Duration::from_secs(60));
        Some(Refreshed {
            url: None,
            headers: vec![("Authorization".into(), "Bearer good".into())],
        })
    }
}

#[test]
fn a_resolver_that_does_not_answer_is_timed_out_and_not_piled_on() {
    let origin = Origin::start(&["--require-auth", "Bearer good"]);
    let truth = seeded_bytes(50, 50_000);
    origin.put_file("a.bin", &truth);
    origin.put_file("b.bin", &truth);
    let (srv, _dir) = server(&[origin.origin_arg()], |c| {
        c.resolver_timeout = Duration::from_millis(300)
    });
    let (release, released) = std::sync::mpsc::channel();
    let resolver = Arc::new(StuckResolver {
        calls: AtomicUsize::new(0),
        release: std::sync::Mutex::new(released),
    });
    srv.set_resolver(Some(resolver.clone())).expect("set resolver");

    // The call times out: the player gets the refusal instead of waiting for the app forever.
    let r = get(&srv.stream_url(&format!("{}a.bin", origin.url)).expect("url"));
    r.assert_json_error("a resolver past its timeout", 502);
    // While that call is still stuck, a new refusal does not ask again (no second blocked thread).
    let r = get(&srv.stream_url(&format!("{}b.bin", origin.url)).expect("url"));
    r.assert_json_error("while the resolver is stuck", 502);
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 1);

    // Once it returns, the next refusal asks again, and this time in time.
    release.send(()).expect("release");
    release.send(()).expect("release the next call too");
    wait_until(Duration::from_secs(10), "the stuck call returned", || {
        let r = get(&srv.stream_url(&format!("{}b.bin", origin.url)).expect("url"));
        r.status == 200 && r.body == truth
    });
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 2);
}
