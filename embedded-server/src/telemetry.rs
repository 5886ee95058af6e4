//! Counters for statistics and metrics.
//!
//! Counters are plain atomics bumped on the hot path (no lock); gauges that describe the cache as
//! a whole (bytes, entries, downloads) are computed from their owners when someone asks. Latency
//! goes into [`Histogram`]s of fixed buckets, one `AtomicU64` per bucket, so observing is one
//! relaxed increment and two additions. The one lock here guards the small ring of recent upstream
//! failures, which is touched only when a fill fails, never while bytes flow.
//!
//! A snapshot is not taken atomically across counters: two counters read a microsecond apart may
//! disagree by an in-flight request. Each histogram snapshot is self-consistent, though: its count
//! is the sum of its buckets.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// How many recent upstream failures are kept for the dashboard.
const RECENT_ERRORS: usize = 20;

/// Upper bounds (inclusive, microseconds) of the latency buckets; a last `+Inf` bucket follows.
/// From 1 ms (a cached byte on a phone) to 10 s (a backend at the end of its patience).
pub(crate) const BUCKET_BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// The route families requests are counted under (the `route` label of the metrics).
pub(crate) const ROUTES: [&str; 6] = ["stream", "tracks", "api", "metrics", "dashboard", "other"];

/// Status classes requests are counted under (the `class` label of the metrics).
pub(crate) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A route family, an index into [`ROUTES`]; `http::route::Route::family` says which a request
/// is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteFamily {
    Stream = 0,
    Tracks = 1,
    Api = 2,
    Metrics = 3,
    Dashboard = 4,
    Other = 5,
}

/// A latency histogram with the fixed buckets of [`BUCKET_BOUNDS_US`], lock-free.
///
/// Each observation increments exactly one (non-cumulative) bucket; snapshots accumulate them.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Observations per bucket; the last one is `+Inf`.
    buckets: [AtomicU64; BUCKET_BOUNDS_US.len() + 1],
    /// Sum of all observations, microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Cumulative counts, as Prometheus wants them.
    pub(crate) fn snapshot(&self) -> HistogramStats {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramStats {
            bounds_us: BUCKET_BOUNDS_US.to_vec(),
            cumulative,
            count: total,
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// Monotonic counters shared by the HTTP layer and the cache.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bytes_from_cache: AtomicU64,
    pub(crate) bytes_from_upstream: AtomicU64,
    pub(crate) active_streams: AtomicU64,
    pub(crate) evictions: AtomicU64,
    /// Requests answered, by [`RouteFamily`] and status class (index = first digit − 1).
    pub(crate) requests: [[AtomicU64; CLASSES.len()]; ROUTES.len()],
    /// Fills started (each makes at least one upstream request).
    pub(crate) upstream_fetches: AtomicU64,
    /// Upstream requests made again: after a connect error, timeout or 5xx, and after a body
    /// broke off.
    pub(crate) upstream_retries: AtomicU64,
    /// Fills that gave up with an error.
    pub(crate) upstream_failures: AtomicU64,
    /// Cache writes (data files) that failed even after eviction made room.
    pub(crate) storage_write_errors: AtomicU64,
    /// Bytes sent to players straight from the backend without being stored (the cache could
    /// not store them).
    pub(crate) bytes_passed_through: AtomicU64,
    /// Request arrival to first body byte ready, every media GET with a body.
    pub(crate) ttfb: Histogram,
    /// The same for seeks: a range starting past byte 0 that was not cached.
    pub(crate) seek_ttfb: Histogram,
    /// The last [`RECENT_ERRORS`] fill failures, oldest first (touched only on failure).
    recent_errors: Mutex<VecDeque<UpstreamFailure>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts one answered request.
    pub(crate) fn count_request(&self, route: RouteFamily, status: http::StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, CLASSES.len()) - 1;
        Self::add(&self.requests[route as usize][class], 1);
    }

    /// Records the time to the first body byte of a media response.
    pub(crate) fn observe_first_byte(&self, elapsed: Duration, seek: bool) {
        self.ttfb.observe(elapsed);
        if seek {
            self.seek_ttfb.observe(elapsed);
        }
    }

    /// Remembers a failed fill; `url` must already be redacted.
    pub(crate) fn record_failure(&self, url: String, message: String) {
        Self::add(&self.upstream_failures, 1);
        let mut ring = self.recent_errors.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == RECENT_ERRORS {
            ring.pop_front();
        }
        ring.push_back(UpstreamFailure {
            time_ms: crate::clock::now_ms(),
            url,
            message,
        });
    }

    /// Requests by route and class, every combination present (zero included).
    pub(crate) fn requests(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        ROUTES
            .iter()
            .zip(&self.requests)
            .map(|(route, row)| {
                let classes = CLASSES.iter().zip(row).map(|(c, n)| (c.to_string(), Self::get(n)));
                (route.to_string(), classes.collect())
            })
            .collect()
    }

    /// The recent failures, oldest first.
    pub(crate) fn recent_errors(&self) -> Vec<UpstreamFailure> {
        let ring = self.recent_errors.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().cloned().collect()
    }
}

/// A histogram snapshot: cumulative bucket counts like Prometheus's `_bucket{le=...}` series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HistogramStats {
    /// Upper bounds of the finite buckets, microseconds (inclusive).
    pub bounds_us: Vec<u64>,
    /// Observations at or below each bound, then the `+Inf` bucket (equal to `count`).
    pub cumulative: Vec<u64>,
    /// Observations.
    pub count: u64,
    /// Sum of the observations, microseconds.
    pub sum_us: u64,
}

/// One failed upstream fill, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamFailure {
    /// When it failed, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The resource's URL without credentials or query string.
    pub url: String,
    /// Why, for a person to read.
    pub message: String,
}

/// A snapshot of the server's statistics (the `/api/stats` JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Media requests whose bytes were all cached when they arrived.
    pub hits: u64,
    /// Media requests that needed the backend.
    pub misses: u64,
    /// Bytes sent to players straight from the cache, without waiting for the backend.
    pub bytes_from_cache: u64,
    /// Bytes received from backends (each is written to the cache).
    pub bytes_from_upstream: u64,
    /// Bytes of cached data on disk, pinned ones included.
    pub cache_bytes: u64,
    /// Bytes of cached data pinned by offline downloads.
    pub pinned_bytes: u64,
    /// Cached resources.
    pub entries: u64,
    /// Media responses being sent right now.
    pub active_streams: u64,
    /// Resources evicted since start.
    pub evictions: u64,
    /// The cache's size limit, bytes (pinned bytes may exceed it).
    pub max_cache_bytes: u64,
    /// Requests answered since start: route (`stream`, `tracks`, `api`, `metrics`, `dashboard`,
    /// `other`) → status class (`1xx`…`5xx`) → count.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Fills started since start (upstream fetches, not counting retries).
    pub upstream_fetches: u64,
    /// Upstream requests repeated after a body broke off.
    pub upstream_retries: u64,
    /// Fills that gave up with an error.
    pub upstream_failures: u64,
    /// The last cache write failed (disk full, failing, read-only or removed) even after
    /// eviction made room, and none has succeeded since: players are served from the backend
    /// without storing. An addition to SPEC §4.2.
    pub storage_full: bool,
    /// Cache writes that failed even after eviction made room. An addition to SPEC §4.2.
    pub storage_write_errors: u64,
    /// Bytes sent to players straight from the backend without being stored, because the cache
    /// could not store them. An addition to SPEC §4.2.
    pub bytes_passed_through: u64,
    /// Request arrival to first body byte ready, for media responses with a body.
    pub ttfb: HistogramStats,
    /// The same for seeks (a range starting past byte 0 that was not cached).
    pub seek_ttfb: HistogramStats,
    /// Downloads by state (`queued`, `running`, ...), every state present.
    pub downloads: BTreeMap<String, u64>,
    /// Resources whose player lacks bytes ahead of it now (see `Config::link_policy`).
    pub playback_hungry: u64,
    /// Download and prefetch fills holding back for players now.
    pub fills_yielding: u64,
    /// Milliseconds since start during which downloads or prefetch held back for players.
    pub yield_ms: u64,
    /// The last few upstream failures, oldest first.
    pub recent_errors: Vec<UpstreamFailure>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_inclusive_and_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(1_000)); // exactly the first bound
        h.observe(Duration::from_micros(1_001));
        h.observe(Duration::from_secs(60)); // past every bound
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), BUCKET_BOUNDS_US.len() + 1);
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[1], 2);
        assert_eq!(s.cumulative[BUCKET_BOUNDS_US.len() - 1], 2);
        assert_eq!(*s.cumulative.last().unwrap(), 3);
        assert_eq!(s.count, 3);
        assert_eq!(s.sum_us, 1_000 + 1_001 + 60_000_000);
    }

    #[test]
    fn routes_and_classes_are_counted() {
        let c = Counters::default();
        c.count_request(RouteFamily::Stream, http::StatusCode::PARTIAL_CONTENT);
        c.count_request(RouteFamily::Dashboard, http::StatusCode::OK);
        c.count_request(RouteFamily::Other, http::StatusCode::FORBIDDEN);
        let r = c.requests();
        assert_eq!(r["stream"]["2xx"], 1);
        assert_eq!(r["dashboard"]["2xx"], 1);
        assert_eq!(r["other"]["4xx"], 1);
        assert_eq!(r["api"]["5xx"], 0);
    }

    #[test]
    fn the_error_ring_keeps_the_last_few() {
        let c = Counters::default();
        for i in 0..RECENT_ERRORS + 5 {
            c.record_failure(format!("https://h/{i}"), "boom".into());
        }
        let errors = c.recent_errors();
        assert_eq!(errors.len(), RECENT_ERRORS);
        assert_eq!(errors[0].url, "https://h/5");
        assert_eq!(Counters::get(&c.upstream_failures), (RECENT_ERRORS + 5) as u64);
    }
}
