//! Counters for statistics and metrics.
//!
//! Counters are plain atomics bumped on the hot path (no lock); gauges that describe the cache as
//! a whole (bytes, entries) are computed from the cache when someone asks.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Monotonic counters shared by the HTTP layer and the cache.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bytes_from_cache: AtomicU64,
    pub(crate) bytes_from_upstream: AtomicU64,
    pub(crate) active_streams: AtomicU64,
    pub(crate) evictions: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
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
}
