//! `/TOKEN/metrics`: a [`Stats`] snapshot in the Prometheus text exposition format, version 0.0.4.
//!
//! Rendered by hand from the same snapshot as `/api/stats`, so the two never disagree and no
//! metrics registry (the `prometheus` crate is heavy for a phone) sits on the hot path. The format's
//! rules this follows: one `# HELP` and one `# TYPE` line before each family's samples, names
//! matching `[a-zA-Z_:][a-zA-Z0-9_:]*`, counters ending in `_total`, base units (seconds, bytes),
//! label values escaped (`\\`, `\"`, `\n`), and histograms as cumulative `_bucket{le="..."}` series
//! ending in `le="+Inf"` (equal to `_count`), then `_sum` and `_count`.
//! See <https://prometheus.io/docs/instrumenting/exposition_formats/>.

use std::fmt::Write;

use crate::telemetry::{HistogramStats, Stats};

/// The `Content-Type` of the exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Every metric name starts with this.
const PREFIX: &str = "streamer_";

/// Renders `stats` as exposition text.
pub(crate) fn render(stats: &Stats) -> String {
    let mut out = Exposition::default();
    let requests: Vec<(Vec<(&str, &str)>, u64)> = stats
        .requests
        .iter()
        .flat_map(|(route, classes)| {
            classes
                .iter()
                .map(move |(class, n)| (vec![("route", route.as_str()), ("class", class.as_str())], *n))
        })
        .collect();
    out.family(
        "http_requests_total",
        "counter",
        "HTTP requests answered, by route and status class.",
        &requests,
    );
    out.single(
        "cache_hits_total",
        "counter",
        "Media requests whose bytes were all cached on arrival.",
        stats.hits,
    );
    out.single(
        "cache_misses_total",
        "counter",
        "Media requests that needed the backend.",
        stats.misses,
    );
    out.single(
        "bytes_from_cache_total",
        "counter",
        "Bytes sent to players straight from the cache.",
        stats.bytes_from_cache,
    );
    out.single(
        "bytes_from_upstream_total",
        "counter",
        "Bytes received from backends (each is written to the cache).",
        stats.bytes_from_upstream,
    );
    out.single(
        "upstream_fetches_total",
        "counter",
        "Upstream fills started.",
        stats.upstream_fetches,
    );
    out.single(
        "upstream_retries_total",
        "counter",
        "Upstream requests repeated after a body broke off.",
        stats.upstream_retries,
    );
    out.single(
        "upstream_failures_total",
        "counter",
        "Upstream fills that gave up with an error.",
        stats.upstream_failures,
    );
    out.histogram(
        "media_ttfb_seconds",
        "Media request arrival to first body byte ready.",
        &stats.ttfb,
    );
    out.histogram(
        "seek_ttfb_seconds",
        "Arrival to first body byte for uncached ranges starting past byte 0.",
        &stats.seek_ttfb,
    );
    out.single(
        "active_streams",
        "gauge",
        "Media responses being sent now.",
        stats.active_streams,
    );
    let downloads: Vec<(Vec<(&str, &str)>, u64)> = stats
        .downloads
        .iter()
        .map(|(state, n)| (vec![("state", state.as_str())], *n))
        .collect();
    out.family("downloads", "gauge", "Offline downloads by state.", &downloads);
    out.single(
        "playback_hungry",
        "gauge",
        "Resources whose player lacks bytes ahead of it now.",
        stats.playback_hungry,
    );
    out.single(
        "fills_yielding",
        "gauge",
        "Download and prefetch fills holding back for players now.",
        stats.fills_yielding,
    );
    out.header(
        "yield_seconds_total",
        "counter",
        "Time during which downloads or prefetch held back for players.",
    );
    out.sample("yield_seconds_total", &[], seconds(stats.yield_ms.saturating_mul(1000)));
    let unpinned = stats.cache_bytes.saturating_sub(stats.pinned_bytes);
    out.family(
        "cache_bytes",
        "gauge",
        "Bytes of cached data on disk, by whether downloads pin them.",
        &[
            (vec![("pinned", "true")], stats.pinned_bytes),
            (vec![("pinned", "false")], unpinned),
        ],
    );
    out.single(
        "cache_max_bytes",
        "gauge",
        "The cache's size limit.",
        stats.max_cache_bytes,
    );
    out.single("cache_entries", "gauge", "Resources in the cache.", stats.entries);
    out.single(
        "cache_evictions_total",
        "counter",
        "Resources evicted since start.",
        stats.evictions,
    );
    out.single(
        "storage_full",
        "gauge",
        "1 while the cache cannot store fetched bytes (disk full or failing): players are served from the backend unstored.",
        u64::from(stats.storage_full),
    );
    out.single(
        "storage_write_errors_total",
        "counter",
        "Cache writes that failed even after eviction made room.",
        stats.storage_write_errors,
    );
    out.single(
        "bytes_passed_through_total",
        "counter",
        "Bytes sent to players from the backend without being stored, because the cache could not store them.",
        stats.bytes_passed_through,
    );
    out.text
}

/// The text being built.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {PREFIX}{name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {PREFIX}{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.text, "{PREFIX}{name}");
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(self.text, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.header(name, kind, help);
        self.sample(name, &[], value);
    }

    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(Vec<(&str, &str)>, u64)]) {
        self.header(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, labels, value);
        }
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramStats) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, n) in h.bounds_us.iter().zip(&h.cumulative) {
            self.sample(&bucket, &[("le", &seconds(*bound))], n);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count);
        self.sample(&format!("{name}_sum"), &[], seconds(h.sum_us));
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

/// Microseconds as a decimal number of seconds (`0.0025`, `1`), exact for every bucket bound.
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `# HELP` text: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Counters, RouteFamily};
    use std::time::Duration;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(1_000), "0.001");
        assert_eq!(seconds(2_500), "0.0025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_000), "2.5");
    }

    #[test]
    fn labels_and_help_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");
    }

    #[test]
    fn every_family_has_help_and_type_and_histograms_end_in_inf() {
        let c = Counters::default();
        c.count_request(RouteFamily::Stream, http::StatusCode::OK);
        c.observe_first_byte(Duration::from_millis(3), true);
        let stats = Stats {
            requests: c.requests(),
            ttfb: c.ttfb.snapshot(),
            seek_ttfb: c.seek_ttfb.snapshot(),
            ..Stats::default()
        };
        let text = render(&stats);
        assert!(text.contains("streamer_http_requests_total{route=\"stream\",class=\"2xx\"} 1\n"));
        assert!(text.contains("streamer_seek_ttfb_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("streamer_seek_ttfb_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("streamer_seek_ttfb_seconds_sum 0.003\n"));
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{name} has no TYPE before it");
            }
        }
    }
}
