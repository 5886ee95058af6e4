//! Seeing inside (SPEC §4.2): `/TOKEN/metrics` is valid Prometheus text exposition (0.0.4) whose
//! counters and histograms move as traffic flows, `/api/stats` tells the same numbers as JSON,
//! `/api/resources` lists what is cached with its present ranges, and the dashboard at `/TOKEN/`
//! is one self-contained HTML page that leaks neither the token's neighbours (credentials, signed
//! query strings) nor anything external.
//!
//! The exposition text is checked twice: with the `prometheus-parse` crate (every line must be
//! something it recognises), and by the format's structural rules written out here (HELP and TYPE
//! once, before a family's contiguous samples; names and label syntax; counters end in `_total`;
//! histogram buckets cumulative, ascending, ending in `+Inf` equal to `_count`, with a `_sum`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use integration_tests::*;
use prometheus_parse::{LineInfo, Scrape, Value as PromValue};
use serde_json::Value;

/// Samples by `name{labels}` exactly as written (the server writes labels in a fixed order).
type Samples = BTreeMap<String, f64>;

fn metrics_text(server: &Server) -> String {
    let r = get(&format!("{}metrics", server.base));
    assert_eq!(r.status, 200, "GET metrics: {}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    r.text()
}

/// Checks `text` against the exposition format's rules and returns its samples.
fn check_exposition(text: &str) -> Samples {
    assert!(text.ends_with('\n'), "the exposition must end with a line feed");
    let mut help: HashSet<String> = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Samples::new();
    for line in text.lines() {
        let what = format!("line {line:?}");
        // The crate must recognise every line for what it is.
        match (LineInfo::parse(line), line) {
            (LineInfo::Doc { .. }, l) if l.starts_with("# HELP ") => {}
            (LineInfo::Type { .. }, l) if l.starts_with("# TYPE ") => {}
            (LineInfo::Sample { .. }, l) if !l.starts_with('#') => {}
            (info, _) => panic!("{what}: not a HELP, TYPE or sample line ({info:?})"),
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            assert_name(name, &what);
            assert!(help.insert(name.to_string()), "{what}: second HELP for {name}");
            assert!(!types.contains_key(name), "{what}: HELP after TYPE for {name}");
            start_family(name, &mut current, &mut finished, &what);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("{what}: TYPE without a type"));
            assert_name(name, &what);
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{what}: unknown type {kind}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{what}: second TYPE"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{what}: a counter's name ends in _total");
            }
            start_family(name, &mut current, &mut finished, &what);
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{what}: no value"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{what}: bad value"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                parse_labels(l.strip_suffix('}').unwrap_or_else(|| panic!("{what}: no }}")), &what),
            ),
            None => (series, Vec::new()),
        };
        assert_name(name, &what);
        let family = family_of(name, &types);
        assert!(help.contains(&family), "{what}: family {family} has no HELP");
        let kind = types
            .get(&family)
            .unwrap_or_else(|| panic!("{what}: family {family} has no TYPE"));
        assert_eq!(
            current.as_deref(),
            Some(family.as_str()),
            "{what}: samples of a family must be together"
        );
        if kind == "histogram" {
            assert!(
                name != family,
                "{what}: a histogram has only _bucket, _sum and _count samples"
            );
            assert_eq!(
                labels.iter().any(|(k, _)| k == "le"),
                name.ends_with("_bucket"),
                "{what}: le belongs on buckets only"
            );
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "{what}: duplicate series"
        );
    }
    for (family, kind) in &types {
        if kind == "histogram" {
            check_histogram(family, text, &samples);
        }
    }
    samples
}

fn start_family(name: &str, current: &mut Option<String>, finished: &mut HashSet<String>, what: &str) {
    if current.as_deref() != Some(name) {
        if let Some(prev) = current.take() {
            finished.insert(prev);
        }
        assert!(!finished.contains(name), "{what}: family {name} appears twice");
        *current = Some(name.to_string());
    }
}

fn family_of(name: &str, types: &HashMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(f) = name.strip_suffix(suffix) {
            if types.get(f).is_some_and(|k| k == "histogram" || k == "summary") {
                return f.to_string();
            }
        }
    }
    name.to_string()
}

fn assert_name(name: &str, what: &str) {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    assert!(
        first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "{what}: bad metric name {name:?}"
    );
}

/// `a="x",b="y\"z"` → pairs, unescaping `\\`, `\"`, `\n`; panics on bad syntax.
fn parse_labels(text: &str, what: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("{what}: bad label syntax"));
        let mut chars = name.chars();
        assert!(
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with("__"),
            "{what}: bad label name {name:?}"
        );
        let mut value = String::new();
        let mut iter = after.char_indices();
        let end = loop {
            match iter.next() {
                Some((_, '\\')) => match iter.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("{what}: bad escape {other:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("{what}: unterminated label value"),
            }
        };
        out.push((name.to_string(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out
}

/// Buckets ascending by `le`, counts cumulative, the last `+Inf` and equal to `_count`, `_sum` there.
fn check_histogram(family: &str, text: &str, samples: &Samples) {
    let prefix = format!("{family}_bucket{{le=\"");
    let buckets: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (le, value) = rest.split_once("\"} ").expect("bucket line");
            (le.to_string(), value.parse().expect("bucket value"))
        })
        .collect();
    assert!(!buckets.is_empty(), "{family}: no buckets");
    let mut last_le = f64::NEG_INFINITY;
    let mut last_count = 0.0;
    for (le, count) in &buckets {
        let bound: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().expect("le")
        };
        assert!(bound > last_le, "{family}: le {le} not ascending");
        assert!(*count >= last_count, "{family}: bucket le={le} not cumulative");
        last_le = bound;
        last_count = *count;
    }
    assert_eq!(
        buckets.last().map(|b| b.0.as_str()),
        Some("+Inf"),
        "{family}: last bucket is +Inf"
    );
    let count = samples.get(&format!("{family}_count")).copied();
    assert_eq!(count, Some(last_count), "{family}: +Inf bucket equals _count");
    assert!(samples.contains_key(&format!("{family}_sum")), "{family}: _sum missing");
}

/// The exposition parsed with `prometheus-parse`.
fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("prometheus-parse accepts the text")
}

fn sample(samples: &Samples, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| panic!("no sample {key}"))
}

fn stream_2xx(samples: &Samples) -> f64 {
    sample(samples, "streamer_http_requests_total{route=\"stream\",class=\"2xx\"}")
}

fn setup(files: &[(&str, usize)], origin_args: &[&str], server_args: &[&str]) -> (Origin, Server) {
    let origin = Origin::start(origin_args);
    for (i, (name, len)) in files.iter().enumerate() {
        origin.put_file(name, &seeded_bytes(0x3E7 + i as u64, *len));
    }
    let server = Server::start_with(None, &[origin.origin_arg()], server_args);
    (origin, server)
}

fn wait_idle(server: &Server) {
    wait_until(Duration::from_secs(10), "no media response is being sent", || {
        json_u64(&server.stats(), "active_streams") == 0
    });
}

#[test]
fn metrics_are_valid_exposition_and_move_with_hits_misses_and_seeks() {
    const HIT_LEN: usize = 200 * KIB;
    const SEEK_LEN: usize = MIB;
    const SEEK_AT: usize = 500_000;
    let (origin, server) = setup(&[("hit.bin", HIT_LEN), ("seek.bin", SEEK_LEN)], &[], &[]);

    let text0 = metrics_text(&server);
    let m0 = check_exposition(&text0);
    let docs = scrape(&text0).docs;
    for family in [
        "streamer_http_requests_total",
        "streamer_cache_hits_total",
        "streamer_cache_misses_total",
        "streamer_bytes_from_cache_total",
        "streamer_bytes_from_upstream_total",
        "streamer_upstream_fetches_total",
        "streamer_upstream_retries_total",
        "streamer_media_ttfb_seconds",
        "streamer_seek_ttfb_seconds",
        "streamer_active_streams",
        "streamer_downloads",
        "streamer_cache_bytes",
        "streamer_cache_entries",
        "streamer_cache_evictions_total",
    ] {
        assert!(docs.contains_key(family), "family {family} missing from {text0}");
    }

    let miss = get(&server.stream_url(&origin, "hit.bin"));
    assert_eq!(miss.status, 200);
    miss.assert_complete("first read (a miss)");
    let hit = get(&server.stream_url(&origin, "hit.bin"));
    assert_eq!(hit.status, 200);
    hit.assert_complete("second read (a hit)");
    assert_bytes_eq("hit", &hit.body, &miss.body);
    let seek = get_range(&server.stream_url(&origin, "seek.bin"), &format!("bytes={SEEK_AT}-"));
    assert_eq!(seek.status, 206);
    seek.assert_complete("seek");
    assert_eq!(seek.body.len(), SEEK_LEN - SEEK_AT);
    wait_idle(&server);

    let text1 = metrics_text(&server);
    let m1 = check_exposition(&text1);
    let delta = |key: &str| sample(&m1, key) - sample(&m0, key);
    assert_eq!(delta("streamer_cache_hits_total"), 1.0, "{text1}");
    assert_eq!(delta("streamer_cache_misses_total"), 2.0, "{text1}");
    assert_eq!(
        delta("streamer_media_ttfb_seconds_count"),
        3.0,
        "three media bodies: {text1}"
    );
    assert_eq!(
        delta("streamer_seek_ttfb_seconds_count"),
        1.0,
        "one uncached seek: {text1}"
    );
    assert!(delta("streamer_media_ttfb_seconds_sum") > 0.0);
    assert!(delta("streamer_seek_ttfb_seconds_sum") > 0.0);
    assert_eq!(
        delta("streamer_bytes_from_cache_total"),
        HIT_LEN as f64,
        "only the second read came from the cache"
    );
    assert!(delta("streamer_bytes_from_upstream_total") >= (HIT_LEN + SEEK_LEN - SEEK_AT) as f64);
    assert!(delta("streamer_upstream_fetches_total") >= 2.0);
    assert_eq!(stream_2xx(&m1) - stream_2xx(&m0), 3.0);
    assert_eq!(sample(&m1, "streamer_cache_entries"), 2.0);
    assert_eq!(sample(&m1, "streamer_active_streams"), 0.0);
    let cached = sample(&m1, "streamer_cache_bytes{pinned=\"false\"}");
    assert_eq!(cached, (HIT_LEN + SEEK_LEN - SEEK_AT) as f64);

    // The crate sees the same histogram, ending in +Inf with every observation.
    let parsed = scrape(&text1);
    let ttfb = parsed
        .samples
        .iter()
        .find(|s| s.metric == "streamer_media_ttfb_seconds")
        .expect("ttfb histogram parsed");
    let PromValue::Histogram(buckets) = &ttfb.value else {
        panic!("ttfb is not a histogram: {:?}", ttfb.value)
    };
    let last = buckets.last().expect("buckets");
    assert!(last.less_than.is_infinite());
    assert_eq!(last.count, sample(&m1, "streamer_media_ttfb_seconds_count"));
}

#[test]
fn playlist_responses_are_timed_like_media() {
    let (origin, server) = setup(&[("seg0.ts", 1000)], &[], &[]);
    let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n#EXT-X-ENDLIST\n";
    origin.put_file("list.m3u8", playlist.as_bytes());
    let m0 = check_exposition(&metrics_text(&server));
    let first = get(&server.stream_url(&origin, "list.m3u8"));
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.text().contains("/stream/"), "{}", first.text());
    assert_eq!(get(&server.stream_url(&origin, "list.m3u8")).status, 200);
    let text1 = metrics_text(&server);
    let m1 = check_exposition(&text1);
    let delta = |key: &str| sample(&m1, key) - sample(&m0, key);
    assert_eq!(
        delta("streamer_media_ttfb_seconds_count"),
        2.0,
        "two playlists: {text1}"
    );
    assert_eq!(delta("streamer_seek_ttfb_seconds_count"), 0.0, "{text1}");
    assert_eq!(delta("streamer_cache_hits_total"), 1.0, "{text1}");
}

/// The fields of `/api/stats` that are not request counts, for comparing two snapshots.
fn without_requests(stats: &Value) -> Value {
    let mut v = stats.clone();
    v.as_object_mut().expect("stats object").remove("requests");
    v
}

#[test]
fn api_stats_and_metrics_agree() {
    let (origin, server) = setup(&[("a.bin", 300 * KIB)], &[], &[]);
    get(&server.stream_url(&origin, "a.bin")).assert_complete("a");
    get_range(&server.stream_url(&origin, "a.bin"), "bytes=1000-1999").assert_complete("a range");
    assert_eq!(get(&server.stream_url(&origin, "nothere.bin")).status, 404);
    wait_idle(&server);

    // Stats, metrics, stats: when nothing else moved, metrics must equal the first snapshot
    // (plus the first /api/stats request itself, counted after it answered).
    let (before, m) = (0..20)
        .find_map(|_| {
            let before = server.stats();
            let m = check_exposition(&metrics_text(&server));
            let after = server.stats();
            (without_requests(&before) == without_requests(&after)).then_some((before, m))
        })
        .expect("the statistics settle");
    let n = |key: &str| json_u64(&before, key) as f64;
    for (json, metric) in [
        ("hits", "streamer_cache_hits_total"),
        ("misses", "streamer_cache_misses_total"),
        ("bytes_from_cache", "streamer_bytes_from_cache_total"),
        ("bytes_from_upstream", "streamer_bytes_from_upstream_total"),
        ("entries", "streamer_cache_entries"),
        ("active_streams", "streamer_active_streams"),
        ("evictions", "streamer_cache_evictions_total"),
        ("upstream_fetches", "streamer_upstream_fetches_total"),
        ("upstream_retries", "streamer_upstream_retries_total"),
        ("upstream_failures", "streamer_upstream_failures_total"),
        ("max_cache_bytes", "streamer_cache_max_bytes"),
    ] {
        assert_eq!(sample(&m, metric), n(json), "{json} vs {metric}");
    }
    assert!(n("upstream_failures") >= 1.0, "the 404 fill failed");
    assert_eq!(sample(&m, "streamer_cache_bytes{pinned=\"true\"}"), n("pinned_bytes"));
    assert_eq!(
        sample(&m, "streamer_cache_bytes{pinned=\"false\"}"),
        n("cache_bytes") - n("pinned_bytes")
    );
    for (state, count) in before["downloads"].as_object().expect("downloads by state") {
        let key = format!("streamer_downloads{{state=\"{state}\"}}");
        assert_eq!(sample(&m, &key), count.as_f64().unwrap_or(-1.0), "{key}");
    }
    for (json, metric) in [
        ("ttfb", "streamer_media_ttfb_seconds"),
        ("seek_ttfb", "streamer_seek_ttfb_seconds"),
    ] {
        let h = &before[json];
        let bounds = h["bounds_us"].as_array().expect("bounds");
        let cumulative = h["cumulative"].as_array().expect("cumulative");
        assert_eq!(cumulative.len(), bounds.len() + 1);
        for (bound, count) in bounds.iter().zip(cumulative) {
            let le = bound.as_u64().expect("bound") as f64 / 1e6;
            let key = format!("{metric}_bucket{{le=\"{le}\"}}");
            assert_eq!(sample(&m, &key), count.as_f64().unwrap_or(-1.0), "{key}");
        }
        assert_eq!(sample(&m, &format!("{metric}_count")), json_u64(h, "count") as f64);
        let sum = json_u64(h, "sum_us") as f64 / 1e6;
        assert!(
            (sample(&m, &format!("{metric}_sum")) - sum).abs() < 1e-9,
            "{metric}_sum"
        );
    }
    for (route, classes) in before["requests"].as_object().expect("requests") {
        for (class, count) in classes.as_object().expect("classes") {
            let key = format!("streamer_http_requests_total{{route=\"{route}\",class=\"{class}\"}}");
            let extra = if route == "api" && class == "2xx" { 1.0 } else { 0.0 };
            assert_eq!(sample(&m, &key), count.as_f64().unwrap_or(-1.0) + extra, "{key}");
        }
    }
}

#[test]
fn wrong_token_is_403_for_the_dashboard_and_metrics() {
    let (_origin, server) = setup(&[], &[], &[]);
    let wrong: String = server.token.chars().map(|c| if c == 'a' { 'b' } else { 'a' }).collect();
    for route in ["", "metrics", "api/resources"] {
        let url = format!("{}{wrong}/{route}", server.root_url());
        let r = get(&url);
        assert_eq!(r.status, 403, "GET /WRONG/{route}");
        assert!(!r.text().contains("<html"), "/WRONG/{route} serves nothing");
    }
    let r = http("POST", &format!("{}metrics", server.base), &[]);
    assert_eq!(r.status, 405);
}

#[test]
fn dashboard_is_self_contained_and_leaks_no_credentials() {
    const SECRET: &str = "SECRET123";
    let auth = format!("Bearer {SECRET}");
    let (origin, server) = setup(
        &[("song.bin", 64 * KIB)],
        &["--require-auth", &auth],
        &["--header", &format!("Authorization: {auth}")],
    );
    let r = get(&server.stream_url(&origin, "song.bin?sig=SIGNATURE42"));
    assert_eq!(r.status, 200, "the credential reaches the origin: {}", r.text());

    let page = get(&server.base);
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type").is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        page.header("content-type")
    );
    let html = page.text();
    for forbidden in ["http://", "https://", SECRET, &server.token] {
        assert!(!html.contains(forbidden), "the dashboard contains {forbidden:?}");
    }
    for needed in ["<audio", "api/stats", "api/resources", "api/downloads", "tracks/"] {
        assert!(html.contains(needed), "the dashboard lacks {needed:?}");
    }
    // Nothing the page reads may carry the credential or the signed query string either.
    for route in ["api/stats", "api/resources", "api/downloads", "metrics"] {
        let body = get(&format!("{}{route}", server.base)).text();
        for forbidden in [SECRET, "SIGNATURE42"] {
            assert!(!body.contains(forbidden), "{route} contains {forbidden:?}");
        }
    }
    // Without the slash, relative URLs would miss the token: redirect to the slash.
    let bare = get(server.base.trim_end_matches('/'));
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location"), Some(format!("{}/", server.token).as_str()));
}

#[test]
fn resources_list_present_ranges_without_query_strings() {
    const FULL: usize = 300_000;
    const PART: usize = 400_000;
    const FROM: usize = 100_000;
    let (origin, server) = setup(&[("full.bin", FULL), ("part.bin", PART)], &[], &[]);
    get(&server.stream_url(&origin, "full.bin?sig=SIGNATURE1")).assert_complete("full");
    let tail = get_range(
        &server.stream_url(&origin, "part.bin?sig=SIGNATURE2"),
        &format!("bytes={FROM}-"),
    );
    assert_eq!(tail.status, 206);
    tail.assert_complete("tail");
    assert_eq!(get(&server.stream_url(&origin, "gone.bin?sig=SIGNATURE3")).status, 404);
    wait_idle(&server);

    let list = server.api_get("resources");
    let list = list.as_array().expect("an array");
    let find = |name: &str| {
        list.iter()
            .find(|r| json_str(r, "url").ends_with(name))
            .unwrap_or_else(|| panic!("{name} not listed: {list:?}"))
    };
    let full = find("/full.bin");
    assert_eq!(full["ranges"], serde_json::json!([[0, FULL]]));
    assert_eq!(json_u64(full, "cached_bytes"), FULL as u64);
    assert_eq!(json_u64(full, "size"), FULL as u64);
    assert!(json_bool(full, "complete"));
    assert!(!json_bool(full, "pinned"));
    let part = find("/part.bin");
    assert_eq!(part["ranges"], serde_json::json!([[FROM, PART]]));
    assert_eq!(json_u64(part, "cached_bytes"), (PART - FROM) as u64);
    assert!(!json_bool(part, "complete"));
    let text = serde_json::to_string(list).expect("json");
    assert!(
        !text.contains('?') && !text.contains("SIGNATURE"),
        "query strings leak: {text}"
    );

    // The failed fill is among the recent errors, redacted too.
    let stats = server.stats();
    let errors = stats["recent_errors"].as_array().expect("recent_errors");
    let gone = errors
        .iter()
        .find(|e| json_str(e, "url").ends_with("/gone.bin"))
        .unwrap_or_else(|| panic!("the 404 fill is not among {errors:?}"));
    assert!(!json_str(gone, "message").is_empty());
    assert!(!stats["recent_errors"].to_string().contains("SIGNATURE"));
}

#[test]
fn retried_upstream_requests_are_counted() {
    // The first two requests get 503: the fetcher retries before any byte arrives.
    let (origin, server) = setup(&[("r.bin", 100_000)], &["--fail-first", "2"], &[]);
    let r = get(&server.stream_url(&origin, "r.bin"));
    r.assert_complete("after two 503s");
    let stats = server.stats();
    assert_eq!(json_u64(&stats, "upstream_retries"), 2, "{stats}");
    let samples = check_exposition(&metrics_text(&server));
    assert_eq!(sample(&samples, "streamer_upstream_retries_total"), 2.0);
}
