//! The eviction policy: least recently used first, by total bytes.
//!
//! A pure function over a snapshot of the cache so it can be unit-tested without files or
//! threads; the cache applies its verdict (delete rows, then files) and re-checks that each victim
//! is still idle at that moment.

/// What the policy needs to know about one cached resource.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The resource's cache key.
    pub(crate) key: String,
    /// Bytes of cached data it holds.
    pub(crate) bytes: u64,
    /// Last access, in milliseconds since the Unix epoch.
    pub(crate) last_access_ms: u64,
    /// Pinned by a download or currently read or filled: never evicted.
    pub(crate) protected: bool,
}

/// Picks the resources to evict so that the total drops to `limit` bytes or below, least
/// recently used first. Protected resources are never picked, even if the limit stays exceeded.
pub(crate) fn victims(mut candidates: Vec<Candidate>, limit: u64) -> Vec<String> {
    let mut total: u64 = candidates.iter().map(|c| c.bytes).sum();
    if total <= limit {
        return Vec::new();
    }
    candidates.retain(|c| !c.protected);
    candidates.sort_by(|a, b| a.last_access_ms.cmp(&b.last_access_ms).then(a.key.cmp(&b.key)));
    let mut out = Vec::new();
    for c in candidates {
        if total <= limit {
            break;
        }
        total -= c.bytes;
        out.push(c.key);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str, bytes: u64, last: u64, protected: bool) -> Candidate {
        Candidate {
            key: key.into(),
            bytes,
            last_access_ms: last,
            protected,
        }
    }

    #[test]
    fn under_the_limit_evicts_nothing() {
        assert!(victims(vec![c("a", 10, 1, false)], 10).is_empty());
    }

    #[test]
    fn evicts_least_recently_used_first_until_under_limit() {
        let v = victims(
            vec![
                c("new", 40, 30, false),
                c("old", 40, 10, false),
                c("mid", 40, 20, false),
            ],
            50,
        );
        assert_eq!(v, vec!["old".to_string(), "mid".to_string()]);
    }

    #[test]
    fn never_evicts_protected_resources() {
        let v = victims(
            vec![
                c("pinned", 100, 1, true),
                c("reading", 100, 2, true),
                c("idle", 10, 3, false),
            ],
            50,
        );
        assert_eq!(v, vec!["idle".to_string()]);
    }
}
