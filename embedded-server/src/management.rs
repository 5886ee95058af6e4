//! What the cache-management calls return: the cached state of one remote URL, and what clearing
//! the evictable cache freed. Plain values (JSON on the HTTP API and across JNI), so the app's
//! settings screen and the dashboard read the same fields.

use serde::Serialize;

/// How much of one remote URL the cache holds ([`Server::cached`](crate::Server::cached)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CachedResource {
    /// The URL as the cache keys it (normalised: default port and case dropped).
    pub url: String,
    /// Bytes present (servable now, offline too).
    pub cached_bytes: u64,
    /// Total length in bytes, when the backend has told it.
    pub size: Option<u64>,
    /// Every byte is cached: it plays offline from start to end.
    pub complete: bool,
    /// Pinned by a download: never evicted.
    pub pinned: bool,
}

/// What [`Server::clear_cache`](crate::Server::clear_cache) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClearedCache {
    /// Resources removed.
    pub resources: u64,
    /// Their bytes.
    pub bytes: u64,
}
