//! Interleavings of eviction, fills, dropped bytes and readers, forced in a fixed order in one
//! process, that once let a reader see a byte range as present while the file it read did not
//! hold those bytes (issue #11). Each test replays one order step by step through the cache's own
//! functions; bytes are written the way a fill writes them (registered slot, file opened for its
//! generation, `write_chunk`), without a backend, so that nothing but the order is under test.
//!
//! Before per-incarnation files, the first four failed: an evicted resource left on the dirty
//! list truncated its successor's file (same path) and deleted its row; a reader holding an
//! evicted resource read its successor's sparse file through its own presence map (zeros); a
//! fill of an evicted copy created or truncated the successor's file; and after a crash in the
//! window before a new incarnation's row was committed, the old row claimed the new file's bytes
//! and holes. The last two cut responses under a healthy backend (17 in 1.58 million requests of
//! the 30-minute churn run): two fills meeting at one byte each stopped for the other, and a
//! reader counted fills that ended short over its whole response instead of per byte, so three
//! ordinary hand-overs in a long read aborted it.

use std::sync::Arc;

use bytes::Bytes;
use tempfile::TempDir;

use super::resource::{FillSlot, Meta, Resource};
use super::{index, Cache, Handle, INDEX_FILE};
use crate::config::Config;
use crate::fetch::Fetcher;
use crate::telemetry::Counters;

const KEY: &str = "http://127.0.0.1:9/track.mp3";
const LEN: usize = 256 * 1024;

fn bytes(seed: u8) -> Vec<u8> {
    (0..LEN)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

fn meta(etag: &str) -> Meta {
    Meta {
        size: Some(LEN as u64),
        etag: Some(format!("\"{etag}\"")),
        mime: Some("audio/mpeg".into()),
        ..Meta::default()
    }
}

fn open(dir: &TempDir) -> Arc<Cache> {
    open_with(dir.path(), None, 1 << 30)
}

/// A cache in `dir` (downloads apart in `downloads`, if given) holding at most `max_bytes`,
/// keeping no idle resource in memory.
fn open_with(dir: &std::path::Path, downloads: Option<&std::path::Path>, max_bytes: u64) -> Arc<Cache> {
    let counters = Arc::new(Counters::default());
    let config = Config::new(dir);
    let fetcher = Arc::new(Fetcher::new(&config, counters.clone()).expect("fetcher"));
    let options = super::Options {
        max_bytes,
        attempts: 1,
        resident_max: 0,
        link_policy: config.link_policy,
        playback_ahead: config.playback_ahead_bytes,
    };
    Cache::open(dir, downloads, fetcher, counters, options)
        .expect("open cache")
        .0
}

async fn acquire(cache: &Arc<Cache>) -> Handle {
    let url = url::Url::parse(KEY).expect("url");
    cache.acquire(KEY, &url, None).await.expect("acquire")
}

/// Writes `data[start..end]` into `res` as a fill of the backend's `meta` would.
async fn fill(cache: &Arc<Cache>, res: &Arc<Resource>, meta: &Meta, data: &[u8], start: usize, end: usize) {
    let generation = cache.adopt_meta(res, meta.clone()).await.expect("adopt meta");
    let id = register_fill(cache, res, start as u64);
    let file = cache
        .open_for_fill(res, id, generation)
        .expect("open for fill")
        .expect("the fill's incarnation is current");
    let chunk = Bytes::copy_from_slice(&data[start..end]);
    assert!(cache
        .write_chunk(res, &file, id, generation, start as u64, chunk)
        .expect("write"));
    res.lock().finish_fill(id, None);
}

/// A resource of `KEY`, read by the returned guard, holding every byte of `data` (as the
/// backend's `etag`), with its generation.
async fn filled(cache: &Arc<Cache>, data: &[u8], etag: &str) -> (Handle, Arc<Resource>, u64) {
    let guard = acquire(cache).await;
    let res = guard.res.clone();
    fill(cache, &res, &meta(etag), data, 0, LEN).await;
    let generation = res.lock().generation;
    (guard, res, generation)
}

fn register_fill(cache: &Cache, res: &Resource, start: u64) -> u64 {
    let id = cache.next_fill.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    res.lock().fills.push(FillSlot { id, start, pos: start });
    id
}

/// Every byte `res` claims present, read through the file opened for its current incarnation,
/// compared with `truth`.
fn assert_present_bytes_are(cache: &Cache, res: &Arc<Resource>, truth: &[u8]) {
    let (generation, runs) = {
        let st = res.lock();
        (st.generation, st.present.runs().to_vec())
    };
    if runs.is_empty() {
        return;
    }
    let file = cache.open_data(res, generation).expect("open the current incarnation");
    for (a, b) in runs {
        let got = super::store::read_at(&file, a, (b - a) as usize)
            .unwrap_or_else(|e| panic!("bytes {a}-{b} are claimed present but cannot be read: {e}"));
        let want = &truth[a as usize..b as usize];
        if let Some(at) = got.iter().zip(want).position(|(x, y)| x != y) {
            panic!(
                "bytes {a}-{b} are claimed present but byte {} is wrong",
                a as usize + at
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_evicted_incarnation_on_the_dirty_list_never_touches_its_successor() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let truth = bytes(1);
    let (old, r1, g1) = filled(&cache, &truth, "v1").await;
    drop(old); // r1 is on the dirty list, unread
    assert!(cache.remove_resident(&[KEY.to_string()], false).unwrap() == 1);

    let new = acquire(&cache).await;
    let r2 = new.res.clone();
    assert!(!Arc::ptr_eq(&r1, &r2));
    fill(&cache, &r2, &meta("v1"), &truth, LEN / 2, LEN).await;
    cache.persist().unwrap(); // the successor's row is recorded

    // What the persister did for r1 when its file was found gone: drop its bytes as lost...
    cache.lose(&r1, g1).unwrap();
    // ...and the batch itself, with r1 still on the dirty list.
    cache.persist().unwrap();

    assert_eq!(r2.lock().present.runs(), &[(LEN as u64 / 2, LEN as u64)]);
    assert_present_bytes_are(&cache, &r2, &truth);
    assert_eq!(cache.accounts.bytes(), LEN as u64 / 2);
    let rows = cache.index.all_resources().unwrap();
    assert_eq!(rows.len(), 1, "the successor's row is kept");
    assert_eq!(rows[0].ranges, format!("{}-{}", LEN / 2, LEN));
    assert_eq!(rows[0].generation, Some(r2.lock().generation));
    assert!(
        r1.lock().present.runs().is_empty(),
        "an evicted resource holds no bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reader_holding_an_evicted_incarnation_never_reads_its_successors_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let (v1, v2) = (bytes(1), bytes(2));
    let (old, r1, g1) = filled(&cache, &v1, "v1").await;
    // A reader that looked r1 up just before it was evicted holds `r1` and `g1`.
    drop(old);
    assert!(cache.remove_resident(&[KEY.to_string()], false).unwrap() == 1);
    let new = acquire(&cache).await;
    fill(&cache, &new.res, &meta("v2"), &v2, LEN / 2, LEN).await;

    assert!(
        r1.lock().present.runs().is_empty(),
        "nothing is claimed for the evicted incarnation"
    );
    assert!(
        cache.open_data(&r1, g1).is_err(),
        "the evicted incarnation's file cannot be opened, and no other file in its place"
    );
    assert_present_bytes_are(&cache, &new.res, &v2);
}

#[tokio::test(start_paused = true)]
async fn a_fill_of_an_evicted_copy_creates_and_truncates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let truth = bytes(3);
    let (old, r1, g1) = filled(&cache, &truth, "v1").await;
    let p1 = r1.lock().path.clone();
    drop(old);
    assert!(cache.remove_resident(&[KEY.to_string()], false).unwrap() == 1);
    let new = acquire(&cache).await;
    let r2 = new.res.clone();
    fill(&cache, &r2, &meta("v1"), &truth, 0, LEN / 4).await;
    let p2 = r2.lock().path.clone();
    assert_ne!(p1, p2, "two incarnations never share a file");

    // A fill started on the evicted copy (by a reader that lost the race) tries to open.
    let id = register_fill(&cache, &r1, 0);
    assert!(cache.open_for_fill(&r1, id, g1).unwrap().is_none());
    assert!(!p1.exists(), "the evicted incarnation's file is not re-created");
    assert_eq!(std::fs::metadata(&p2).unwrap().len(), LEN as u64 / 4);
    assert_present_bytes_are(&cache, &r2, &truth);
}

/// How the old incarnation ends before the crash.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// Evicted; a successor resource is created under the same key.
    Evicted,
    /// The backend's validator changed under a reader: the bytes are dropped as stale.
    Stale,
}

async fn crash_before_the_old_row_is_replaced(ending: Ending) {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (bytes(1), bytes(2));
    {
        let cache = open(&dir);
        let first = acquire(&cache).await;
        fill(&cache, &first.res, &meta("v1"), &v1, 0, LEN).await;
        cache.persist().unwrap();
        let old_row = cache.index.all_resources().unwrap();
        assert_eq!(old_row[0].ranges, format!("0-{LEN}"));
        let second = match ending {
            Ending::Evicted => {
                drop(first);
                assert!(cache.remove_resident(&[KEY.to_string()], false).unwrap() == 1);
                acquire(&cache).await
            }
            Ending::Stale => first,
        };
        // The new incarnation writes the second half of the new version.
        fill(&cache, &second.res, &meta("v2"), &v2, LEN / 2, LEN).await;
        cache.persist().unwrap();
        drop(second);
        cache.shutdown().await.unwrap();
        // The crash: the transaction that replaced the old row never committed.
        drop(cache);
        let index = index::Index::open(&dir.path().join(INDEX_FILE), &mut |_, _| {}).unwrap();
        index.write(|tx| index::upsert_resource(tx, &old_row[0])).unwrap();
    }
    let cache = open(&dir);
    let guard = acquire(&cache).await;
    let res = &guard.res;
    // The old row names the old incarnation's file, which is gone: nothing of it is claimed, and
    // whatever is claimed is v1's bytes (the row's validators).
    assert_eq!(
        res.lock().meta.as_ref().and_then(|m| m.etag.clone()).as_deref(),
        Some("\"v1\"")
    );
    assert_present_bytes_are(&cache, res, &v1);
    assert!(
        res.lock().present.runs().is_empty(),
        "{ending:?}: the old row claims no byte of the new file"
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_crash_an_evicted_incarnations_row_claims_nothing_of_its_successor() {
    crash_before_the_old_row_is_replaced(Ending::Evicted).await;
}

#[tokio::test(start_paused = true)]
async fn after_a_crash_a_stale_incarnations_row_claims_nothing_of_the_new_bytes() {
    crash_before_the_old_row_is_replaced(Ending::Stale).await;
}

#[tokio::test(start_paused = true)]
async fn a_fill_of_a_dropped_incarnation_writes_nothing_into_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let truth = bytes(4);
    let guard = acquire(&cache).await;
    let res = guard.res.clone();
    let g1 = cache.adopt_meta(&res, meta("v1")).await.unwrap();
    let id = register_fill(&cache, &res, 0);
    let file = cache.open_for_fill(&res, id, g1).unwrap().unwrap();
    let old_path = res.lock().path.clone();
    // The bytes are dropped (a failed checksum, an expired live playlist) while the fill runs.
    cache.drop_bytes(&res, None, false).unwrap();
    let g2 = res.lock().generation;
    assert_ne!(g1, g2);
    assert!(!old_path.exists(), "the dropped incarnation's file is unlinked");
    let late = Bytes::from_static(b"late bytes of the dropped incarnation");
    assert!(!cache.write_chunk(&res, &file, id, g1, 0, late).unwrap());
    assert!(cache.open_for_fill(&res, id, g1).unwrap().is_none());
    res.lock().finish_fill(id, None);
    assert!(res.lock().present.runs().is_empty());

    fill(&cache, &res, &meta("v1"), &truth, 0, LEN).await;
    assert_eq!(res.lock().generation, g2);
    assert_present_bytes_are(&cache, &res, &truth);
}

#[tokio::test(start_paused = true)]
async fn two_fills_meeting_at_one_byte_never_both_stop() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let guard = acquire(&cache).await;
    let res = guard.res.clone();
    cache.adopt_meta(&res, meta("v1")).await.unwrap();
    // An older fill caught up with the start of a younger one (a reader's seek) at byte `at`.
    let at = 1000;
    let older = register_fill(&cache, &res, 0);
    let younger = register_fill(&cache, &res, at);
    res.lock().fills.iter_mut().find(|f| f.id == older).unwrap().pos = at;
    let st = res.lock();
    let (older_stops, younger_stops) = (
        super::fill::should_stop(&st, older, at),
        super::fill::should_stop(&st, younger, at),
    );
    assert!(
        !(older_stops && younger_stops),
        "both fills stopped: nobody brings byte {at}"
    );
    assert!(
        !older_stops && younger_stops,
        "the older fill goes on, the younger one stops"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reader_gives_up_only_on_fills_that_end_short_at_the_same_byte() {
    use super::reader::Reader;
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let truth = bytes(5);
    let guard = acquire(&cache).await;
    let res = guard.res.clone();
    let generation = cache.adopt_meta(&res, meta("v1")).await.unwrap();
    let patience = std::time::Duration::from_secs(30);
    let mut reader = Reader::new(guard.for_player(), generation, 0, Some(LEN as u64), patience);
    // Four times: the fill the reader waits on hands over to another and ends without bringing
    // the reader's byte (normal under concurrent readers); the other one brings it.
    for round in 0..4u64 {
        let pos = round * 1000;
        let first = register_fill(&cache, &res, pos);
        let (ready, ()) = tokio::join!(reader.skip(), async {
            // Let the reader choose `first` and wait on it.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            let second = register_fill(&cache, &res, pos);
            res.lock().finish_fill(first, None);
            res.notify();
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            let generation = res.lock().generation;
            let file = cache.open_for_fill(&res, second, generation).unwrap().unwrap();
            let chunk = Bytes::copy_from_slice(&truth[pos as usize..pos as usize + 1000]);
            assert!(cache.write_chunk(&res, &file, second, generation, pos, chunk).unwrap());
            res.lock().finish_fill(second, None);
            res.notify();
        });
        let n = ready.unwrap_or_else(|e| panic!("round {round}: the reader gave up: {e}"));
        assert_eq!(n, Some(1000));
    }
}

// ---------------------------------------------------------------------------------------------
// The lazy index: resources loaded on first use, let go when idle, evicted while cold
// ---------------------------------------------------------------------------------------------

/// Fills `KEY` with `data`, records it and lets it go from memory (the tests' caches keep no
/// idle resource resident). Returns its generation.
async fn cold(cache: &Arc<Cache>, data: &[u8], etag: &str) -> u64 {
    let (handle, res, generation) = filled(cache, data, etag).await;
    drop(handle);
    drop(res);
    cache.persist().unwrap();
    assert!(
        cache.resident_now(KEY).is_none(),
        "an idle, recorded resource leaves memory"
    );
    generation
}

/// What the totals say against a recount of the index and the resident table.
pub(super) fn assert_totals_recount(cache: &Cache) {
    let rows = cache.index.all_resources().unwrap();
    let (bytes, pinned, entries) = cache.totals();
    let mut want_bytes: u64 = 0;
    let mut want_pinned: u64 = 0;
    let mut keys: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for row in &rows {
        if cache.resident_now(&row.key).is_none() {
            want_bytes += row.bytes;
            if row.pinned {
                want_pinned += row.bytes;
            }
        }
        keys.insert(row.key.clone());
    }
    for (key, slot) in cache.table().iter() {
        if let super::table::Slot::Ready(res) = slot {
            let st = res.lock();
            want_bytes += st.present.len();
            if st.pinned {
                want_pinned += st.present.len();
            }
            keys.insert(key.clone());
        }
    }
    assert_eq!((bytes, pinned, entries), (want_bytes, want_pinned, keys.len() as u64));
}

#[tokio::test]
async fn a_cold_resource_is_loaded_once_for_concurrent_readers_with_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let truth = bytes(6);
    let generation = cold(&cache, &truth, "v1").await;
    let (a, b) = tokio::join!(acquire(&cache), acquire(&cache));
    assert!(
        Arc::ptr_eq(&a.res, &b.res),
        "two readers of a cold key share one resource"
    );
    assert_eq!(a.res.lock().readers, 2);
    assert_eq!(
        a.res.lock().generation,
        generation,
        "the row's incarnation, not a new one"
    );
    assert_eq!(a.res.lock().present.runs(), &[(0, LEN as u64)]);
    assert_present_bytes_are(&cache, &a.res, &truth);
    // Read through the reader as a response would.
    let described = a.meta(0, std::time::Duration::from_secs(1)).await.unwrap();
    let (got, _, _) = b
        .reader(described.generation, 0, None, std::time::Duration::from_secs(1))
        .read_to_end(LEN as u64, || unreachable!())
        .await
        .unwrap();
    assert_eq!(&got[..], &truth[..]);
    assert_totals_recount(&cache);
}

#[tokio::test]
async fn a_cold_row_owned_by_a_loader_is_not_evicted_and_an_evicted_one_is_not_resurrected() {
    let dir = tempfile::tempdir().unwrap();
    // Everything unpinned and idle must go.
    let cache = open_with(dir.path(), None, 1);
    let truth = bytes(7);
    // Filled while read (a reader protects it), then recorded: eviction runs with the batch
    // but the reader holds it.
    let (handle, res, g1) = filled(&cache, &truth, "v1").await;
    let path = res.lock().path.clone();
    cache.persist().unwrap();
    assert!(path.exists(), "a resource being read is never evicted");
    drop(handle);
    drop(res);
    // The key is owned by a loader (busy) while eviction runs: the row and file stay.
    {
        let mut table = cache.table();
        table.remove(KEY);
        let busy = cache.mark_busy(&mut table, KEY);
        drop(table);
        cache.evict().unwrap();
        assert!(
            cache.index.load_resource(KEY).unwrap().is_some(),
            "a busy key's row stays"
        );
        assert!(path.exists());
        drop(busy);
    }
    // Cold now: evicted, row and file.
    cache.evict().unwrap();
    assert!(cache.index.load_resource(KEY).unwrap().is_none());
    assert!(!path.exists(), "the cold victim's file is unlinked");
    // A reader after the eviction gets a new, empty incarnation: the old row is not resurrected.
    let again = acquire(&cache).await;
    assert_ne!(again.res.lock().generation, g1);
    assert!(again.res.lock().present.runs().is_empty());
    assert!(again.res.lock().meta.is_none());
    assert_totals_recount(&cache);
}

#[tokio::test]
async fn a_reader_waiting_on_an_eviction_of_the_cold_key_gets_a_fresh_resource() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let truth = bytes(8);
    let g1 = cold(&cache, &truth, "v1").await;
    // An eviction owns the cold key (as `evict` does between deleting the row and unlinking).
    let busy = cache.mark_busy(&mut cache.table(), KEY);
    let waiting = tokio::spawn({
        let cache = cache.clone();
        async move { acquire(&cache).await }
    });
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "a reader waits while the key is busy");
    assert!(busy.holds(), "the waiting reader did not take the key over");
    cache
        .index
        .write(|tx| index::delete_resource_generation(tx, KEY, g1).map(|_| ()))
        .unwrap();
    cache.dirs.remove_incarnation(KEY, g1);
    cache.accounts.remove(false, LEN as u64);
    cache.accounts.entry_removed();
    drop(busy);
    let handle = waiting.await.unwrap();
    assert_ne!(handle.res.lock().generation, g1);
    assert!(
        handle.res.lock().present.runs().is_empty(),
        "no byte of the evicted row"
    );
    // And it fills and reads like any new resource.
    fill(&cache, &handle.res, &meta("v1"), &truth, 0, LEN).await;
    assert_present_bytes_are(&cache, &handle.res, &truth);
    assert_totals_recount(&cache);
}

#[tokio::test]
async fn a_pin_asked_while_the_key_is_loading_holds() {
    let dir = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let cache = open_with(dir.path(), Some(downloads.path()), 1 << 30);
    let truth = bytes(9);
    let generation = cold(&cache, &truth, "v1").await;
    let (reader, pinned) = tokio::join!(acquire(&cache), cache.set_pinned_keys(vec![KEY.to_string()], true));
    pinned.unwrap();
    assert!(reader.res.lock().pinned);
    let path = reader.res.lock().path.clone();
    assert!(
        path.starts_with(downloads.path()),
        "a pinned file lives with the downloads"
    );
    assert_present_bytes_are(&cache, &reader.res, &truth);
    drop(reader);
    cache.persist().unwrap();
    assert!(cache.resident_now(KEY).is_none());
    let row = cache.index.load_resource(KEY).unwrap().unwrap();
    assert!(row.pinned && row.generation == Some(generation));
    assert_totals_recount(&cache);
    assert_eq!(cache.totals().1, LEN as u64, "the pinned total counts it");
}

#[tokio::test]
async fn a_file_moved_before_a_crash_recorded_its_pin_is_found_in_the_other_directory() {
    let dir = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let open_both = || open_with(dir.path(), Some(downloads.path()), 1 << 30);
    let truth = bytes(10);
    {
        let cache = open_both();
        let generation = cold(&cache, &truth, "v1").await;
        // The pin moved the file, and the process died before the batch recorded the pin.
        let from = cache.dirs.path(KEY, false, generation);
        let to = cache.dirs.path(KEY, true, generation);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(&from, &to).unwrap();
    }
    let cache = open_both();
    let handle = acquire(&cache).await;
    assert_eq!(handle.res.lock().present.runs(), &[(0, LEN as u64)], "no byte lost");
    assert_present_bytes_are(&cache, &handle.res, &truth);
    // The sweep after start keeps it too: its row names its generation.
    drop(handle);
    assert_eq!(cache.sweep_strays().unwrap(), 0);
}

#[tokio::test]
async fn the_sweep_removes_only_files_no_row_owns() {
    let dir = tempfile::tempdir().unwrap();
    let truth = bytes(11);
    let (kept, stray) = {
        let cache = open(&dir);
        let generation = cold(&cache, &truth, "v1").await;
        let kept = cache.dirs.path(KEY, false, generation);
        // A file written just before a crash that no row records.
        let stray = cache.dirs.path("http://127.0.0.1:9/other.mp3", false, generation + 1);
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(&stray, b"stray").unwrap();
        (kept, stray)
    };
    let cache = open(&dir);
    // A file of this process's own incarnation, not recorded yet, is never touched.
    let url = url::Url::parse("http://127.0.0.1:9/new.mp3").unwrap();
    let fresh = cache.acquire(url.as_str(), &url, None).await.unwrap();
    let g = cache.adopt_meta(&fresh.res, meta("n")).await.unwrap();
    let id = register_fill(&cache, &fresh.res, 0);
    cache.open_for_fill(&fresh.res, id, g).unwrap().unwrap();
    let fresh_path = fresh.res.lock().path.clone();
    assert_eq!(cache.sweep_strays().unwrap(), 1);
    assert!(kept.exists() && !stray.exists() && fresh_path.exists());
}

#[tokio::test]
async fn totals_stay_right_through_loads_pins_drops_and_evictions() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let keys: Vec<String> = (0..8).map(|i| format!("http://127.0.0.1:9/t{i}.mp3")).collect();
    // A seeded sequence of operations over eight keys.
    let mut seed: u64 = 14;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for step in 0..120 {
        let key = &keys[next() % keys.len()];
        let url = url::Url::parse(key).unwrap();
        match next() % 5 {
            0 | 1 => {
                let handle = cache.acquire(key, &url, None).await.unwrap();
                let data = bytes(step as u8);
                let start = (next() % 4) * LEN / 4;
                fill(
                    &cache,
                    &handle.res,
                    &meta("v1"),
                    &data,
                    start,
                    (start + LEN / 4).min(LEN),
                )
                .await;
            }
            2 => cache.set_pinned_keys(vec![key.clone()], next() % 2 == 0).await.unwrap(),
            3 => {
                let handle = cache.acquire(key, &url, None).await.unwrap();
                let generation = handle.res.lock().generation;
                handle.discard(generation).await.unwrap();
            }
            _ => {
                cache.remove(vec![key.clone()], next() % 2 == 0).await.unwrap();
            }
        }
        cache.persist().unwrap();
        assert_totals_recount(&cache);
    }
}

#[tokio::test]
async fn a_data_file_shorter_than_its_row_is_trusted_only_as_far_as_it_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let truth = bytes(12);
    let generation = cold(&cache, &truth, "v1").await;
    // The file system lost the second half (the system trimmed the cache under us).
    let path = cache.dirs.path(KEY, false, generation);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(LEN as u64 / 2)
        .unwrap();
    let handle = acquire(&cache).await;
    assert_eq!(handle.res.lock().present.runs(), &[(0, LEN as u64 / 2)]);
    assert_present_bytes_are(&cache, &handle.res, &truth);
    assert_totals_recount(&cache);
    drop(handle);
    cache.persist().unwrap();
    let row = cache.index.load_resource(KEY).unwrap().unwrap();
    assert_eq!(
        (row.ranges.as_str(), row.bytes),
        (format!("0-{}", LEN / 2).as_str(), LEN as u64 / 2)
    );
}

#[tokio::test]
async fn a_resident_victim_stays_owned_until_the_deletion_of_its_row_commits() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(&dir);
    let truth = bytes(13);
    let (handle, res, _) = filled(&cache, &truth, "v1").await;
    cache.persist().unwrap();
    drop(handle);
    let mut taken = None;
    cache
        .index
        .write(|tx| {
            let mut table = cache.table();
            let busy = cache.take_resident(&mut table, &res).expect("idle: taken");
            drop(table);
            index::delete_resource(tx, KEY)?;
            // Until the commit, the reader connection still sees the row: a loader must not look.
            assert!(cache.index.load_resource(KEY)?.is_some());
            assert!(busy.holds(), "the key is owned while its row's deletion is uncommitted");
            taken = Some(busy);
            Ok(())
        })
        .unwrap();
    let busy = taken.expect("taken");
    assert!(busy.holds(), "and until the eviction is finished");
    cache.finish_eviction(super::eviction::Victim::Resident(res.clone(), busy), true);
    assert!(
        res.lock().present.runs().is_empty(),
        "an evicted resource holds no bytes"
    );
    assert!(cache.index.load_resource(KEY).unwrap().is_none());
    let again = acquire(&cache).await;
    assert!(again.res.lock().meta.is_none(), "a fresh resource, not the deleted row");
    assert_totals_recount(&cache);
}

#[tokio::test]
async fn the_sweep_runs_after_a_crash_or_a_layout_change_never_after_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let stray = |cache: &Cache| cache.dirs.path("http://127.0.0.1:9/stray.mp3", false, 7);
    let plant = |cache: &Cache| {
        let path = stray(cache);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"stray").unwrap();
        path
    };
    // A first start (no mark) sweeps.
    let cache = open(&dir);
    assert!(cache.sweep_needed);
    cache.shutdown().await.unwrap();
    drop(cache);
    // After a clean stop: no sweep (nothing to find).
    let cache = open(&dir);
    assert!(!cache.sweep_needed, "a clean stop vouches for the files");
    let path = plant(&cache);
    cache.clone().upkeep().await;
    assert!(path.exists(), "no walk after a clean stop");
    // A crash (no shutdown): the next start sweeps.
    drop(cache);
    let cache = open(&dir);
    assert!(cache.sweep_needed);
    cache.clone().upkeep().await;
    assert!(!path.exists(), "the sweep after a crash removes the stray");
    cache.shutdown().await.unwrap();
    drop(cache);
    // A clean stop, then the downloads directory set: the layout changed, so it sweeps.
    let cache = open_with(dir.path(), Some(downloads.path()), 1 << 30);
    assert!(cache.sweep_needed, "a new layout may have misplaced files");
}
