//! What the cache reports: running totals, one resource's state, the listing for the dashboard.
//!
//! Totals are kept as counters, not computed: at start they come from the index's `totals` row
//! (kept by triggers), and from then on every change of present bytes, pins and entries adjusts
//! them under the state lock that made it. Cold resources (in the index, not in memory) are read
//! from the index on demand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use url::Url;

use super::index::{ResourceRow, Totals};
use super::range_set::RangeSet;
use super::resource::State;
use super::table::Slot;
use super::Cache;
use crate::error::Error;

/// What the API reports about one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResourceInfo {
    /// Bytes present (servable).
    pub(crate) cached_bytes: u64,
    /// Bytes durably recorded in the index.
    pub(crate) recorded_bytes: u64,
    /// Total length, if known.
    pub(crate) size: Option<u64>,
    /// Every byte present.
    pub(crate) complete: bool,
    /// Pinned by a download.
    pub(crate) pinned: bool,
}

impl ResourceInfo {
    fn of_state(st: &State) -> Self {
        Self {
            cached_bytes: st.present.len(),
            recorded_bytes: st.recorded.len(),
            size: st.meta.as_ref().and_then(|m| m.size),
            complete: st.complete(),
            pinned: st.pinned,
        }
    }

    fn of_row(row: &ResourceRow) -> Self {
        Self {
            cached_bytes: row.bytes,
            recorded_bytes: row.bytes,
            size: row.size,
            complete: row.size.is_some_and(|size| row.bytes >= size),
            pinned: row.pinned,
        }
    }
}

/// A cache key fit for logs: a track key (`track:ID`) as it is, a URL key without its query
/// string (signatures) or credentials, anything else hidden.
pub(crate) fn loggable_key(key: &str) -> String {
    if key.starts_with("track:") {
        return key.to_string();
    }
    match Url::parse(key) {
        Ok(url) => crate::fetch::redact(&url),
        Err(_) => "(unparsable key)".to_string(),
    }
}

/// One resource as the dashboard lists it (`/api/resources`). Nothing here may carry a secret:
/// URLs (and keys that are URLs) lose their query string and credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ResourceListing {
    /// Cache key: `track:ID`, or the resource's redacted URL.
    pub(crate) key: String,
    /// Where the bytes come from, without credentials or query string.
    pub(crate) url: String,
    /// The catalog track, if any.
    pub(crate) track_id: Option<String>,
    /// Total length in bytes, if known.
    pub(crate) size: Option<u64>,
    /// Bytes present (servable).
    pub(crate) cached_bytes: u64,
    /// Pinned by a download.
    pub(crate) pinned: bool,
    /// Every byte present.
    pub(crate) complete: bool,
    /// Present byte ranges as `[start, end)` pairs (end exclusive), ascending.
    pub(crate) ranges: Vec<[u64; 2]>,
    /// Responses reading it now.
    pub(crate) readers: usize,
    /// Fills writing it now.
    pub(crate) fills: usize,
}

/// Running totals over every resource, resident or cold.
#[derive(Debug, Default)]
pub(super) struct Accounts {
    /// Present bytes.
    bytes: AtomicU64,
    /// Present bytes of pinned resources.
    pinned: AtomicU64,
    /// Resources known.
    entries: AtomicU64,
}

impl Accounts {
    /// The totals the index recorded.
    pub(super) fn new(totals: &Totals) -> Self {
        Self {
            bytes: AtomicU64::new(totals.bytes),
            pinned: AtomicU64::new(totals.pinned_bytes),
            entries: AtomicU64::new(totals.entries),
        }
    }

    /// Present bytes over the whole cache.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// `added` bytes became present in a resource that is (not) `pinned`.
    pub(super) fn add(&self, pinned: bool, added: u64) {
        self.bytes.fetch_add(added, Ordering::Relaxed);
        if pinned {
            self.pinned.fetch_add(added, Ordering::Relaxed);
        }
    }

    /// `removed` bytes of a resource that is (not) `pinned` are gone.
    pub(super) fn remove(&self, pinned: bool, removed: u64) {
        sub(&self.bytes, removed);
        if pinned {
            sub(&self.pinned, removed);
        }
    }

    /// A resource holding `present` bytes was pinned or unpinned.
    pub(super) fn pin_changed(&self, pinned: bool, present: u64) {
        if pinned {
            self.pinned.fetch_add(present, Ordering::Relaxed);
        } else {
            sub(&self.pinned, present);
        }
    }

    /// A resource the cache did not know was created.
    pub(super) fn entry_added(&self) {
        self.entries.fetch_add(1, Ordering::Relaxed);
    }

    /// A resource left the cache (evicted, removed, forgotten).
    pub(super) fn entry_removed(&self) {
        sub(&self.entries, 1);
    }
}

fn sub(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
}

impl Cache {
    /// The state of one resource, if the cache knows it: from memory if it is resident, else one
    /// point read of the index (tens of microseconds).
    pub(crate) fn info(&self, key: &str) -> Option<ResourceInfo> {
        if let Some(Slot::Ready(res)) = self.table().get(key) {
            return Some(ResourceInfo::of_state(&res.lock()));
        }
        match self.index.load_resource(key) {
            Ok(row) => row.as_ref().map(ResourceInfo::of_row),
            Err(e) => {
                tracing::warn!(key = %loggable_key(key), error = %e, "cannot read a resource's row");
                None
            }
        }
    }

    /// The state of each of `keys` as its data file bears out: like [`Cache::info`], but bytes
    /// count only as far as the file reaches (one `stat` each), so a data directory emptied under
    /// us shows as incomplete (a resident resource whose file fell short loses its bytes, to be
    /// fetched again). Nothing is loaded into memory.
    pub(crate) async fn verify(self: &Arc<Self>, keys: Vec<String>) -> Result<Vec<Option<ResourceInfo>>, Error> {
        let cache = self.clone();
        self.blocking(move || {
            keys.iter()
                .map(|key| {
                    if let Some(res) = cache.resident_now(key) {
                        let short = {
                            // Under the lock: the file moves only under it.
                            let st = res.lock();
                            let end = st.present.runs().last().map_or(0, |r| r.1);
                            (super::store::file_len(&st.path) < end).then_some(st.generation)
                        };
                        if let Some(generation) = short {
                            cache.lose(&res, generation)?;
                        }
                        return Ok(Some(ResourceInfo::of_state(&res.lock())));
                    }
                    let Some(row) = cache.index.load_resource(key)? else {
                        return Ok(None);
                    };
                    let mut info = ResourceInfo::of_row(&row);
                    let mut ranges = RangeSet::parse(&row.ranges).unwrap_or_default();
                    if let Some(g) = row.generation {
                        ranges.truncate(super::store::file_len(&cache.dirs.find(key, row.pinned, g)));
                    } else {
                        ranges.clear();
                    }
                    info.cached_bytes = ranges.len();
                    info.complete = row.size.is_some_and(|size| ranges.covers(0, size));
                    Ok(Some(info))
                })
                .collect()
        })
        .await
    }

    /// Every resource in the cache, ordered by key: the index's rows, with the state in memory
    /// of those resident.
    pub(crate) async fn resources(self: &Arc<Self>) -> Result<Vec<ResourceListing>, Error> {
        let index = self.index.clone();
        let rows = self.blocking(move || index.all_resources()).await?;
        let resident: Vec<Arc<super::resource::Resource>> = self
            .table()
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(res) => Some(res.clone()),
                Slot::Busy { .. } => None,
            })
            .collect();
        let mut list: std::collections::BTreeMap<String, ResourceListing> = rows
            .iter()
            .filter_map(|row| {
                let url = Url::parse(&row.url).ok()?;
                let ranges = RangeSet::parse(&row.ranges).unwrap_or_default();
                let info = ResourceInfo::of_row(row);
                Some((
                    row.key.clone(),
                    listing(&row.key, &url, row.track_id.clone(), &info, &ranges, 0, 0),
                ))
            })
            .collect();
        for res in resident {
            let st = res.lock();
            let info = ResourceInfo::of_state(&st);
            let entry = listing(
                &res.key,
                &st.url,
                st.track_id.clone(),
                &info,
                &st.present,
                st.readers,
                st.fills.len(),
            );
            list.insert(res.key.clone(), entry);
        }
        let mut list: Vec<ResourceListing> = list.into_values().collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(list)
    }

    /// `(cache_bytes, pinned_bytes, entries)` over the whole cache.
    pub(crate) fn totals(&self) -> (u64, u64, u64) {
        let a = &self.accounts;
        (
            a.bytes.load(Ordering::Relaxed),
            a.pinned.load(Ordering::Relaxed),
            a.entries.load(Ordering::Relaxed),
        )
    }

    /// Bytes pinned by resources other than `keys`.
    pub(crate) fn pinned_bytes_except(&self, keys: &[String]) -> u64 {
        let of_keys: u64 = keys
            .iter()
            .filter_map(|k| self.info(k))
            .filter(|i| i.pinned)
            .map(|i| i.cached_bytes)
            .sum();
        self.accounts.pinned.load(Ordering::Relaxed).saturating_sub(of_keys)
    }
}

/// The listing of one resource, its key and URL redacted.
fn listing(
    key: &str,
    url: &Url,
    track_id: Option<String>,
    info: &ResourceInfo,
    present: &RangeSet,
    readers: usize,
    fills: usize,
) -> ResourceListing {
    let shown_key = match Url::parse(key) {
        Ok(url) if track_id.is_none() => crate::fetch::redact(&url),
        _ => key.to_string(),
    };
    ResourceListing {
        key: shown_key,
        url: crate::fetch::redact(url),
        track_id,
        size: info.size,
        cached_bytes: info.cached_bytes,
        pinned: info.pinned,
        complete: info.complete,
        ranges: present.runs().iter().map(|&(a, b)| [a, b]).collect(),
        readers,
        fills,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loggable_keys_carry_no_query_or_credentials() {
        assert_eq!(loggable_key("track:t1"), "track:t1");
        assert_eq!(
            loggable_key("https://u:pw@cdn.example.com/a.mp3?sig=secret"),
            "https://cdn.example.com/a.mp3"
        );
        assert_eq!(loggable_key("not a url?sig=secret"), "(unparsable key)");
    }

    #[test]
    fn accounts_follow_pins_and_never_go_below_zero() {
        let a = Accounts::default();
        a.add(false, 10);
        a.pin_changed(true, 10);
        a.add(true, 5);
        assert_eq!((a.bytes(), a.pinned.load(Ordering::Relaxed)), (15, 15));
        a.remove(true, 20);
        assert_eq!((a.bytes(), a.pinned.load(Ordering::Relaxed)), (0, 0));
        a.entry_removed();
        assert_eq!(a.entries.load(Ordering::Relaxed), 0);
    }
}
