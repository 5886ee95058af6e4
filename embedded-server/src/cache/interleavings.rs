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

use super::fill::write_chunk;
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
    let counters = Arc::new(Counters::default());
    let config = Config::new(dir.path());
    let fetcher = Arc::new(Fetcher::new(&config, counters.clone()).expect("fetcher"));
    Cache::open(dir.path(), None, fetcher, counters, 1 << 30, 1)
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
    assert!(write_chunk(cache, res, &file, id, generation, start as u64, chunk).expect("write"));
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
    assert!(cache.remove_idle(KEY, false).unwrap());

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
    assert_eq!(
        cache.cached_bytes.load(std::sync::atomic::Ordering::Relaxed),
        LEN as u64 / 2
    );
    let rows = cache.index.load_resources().unwrap();
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
    assert!(cache.remove_idle(KEY, false).unwrap());
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
    assert!(cache.remove_idle(KEY, false).unwrap());
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
        let old_row = cache.index.load_resources().unwrap();
        assert_eq!(old_row[0].ranges, format!("0-{LEN}"));
        let second = match ending {
            Ending::Evicted => {
                drop(first);
                assert!(cache.remove_idle(KEY, false).unwrap());
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
        let index = index::Index::open(&dir.path().join(INDEX_FILE)).unwrap();
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
    assert!(!write_chunk(&cache, &res, &file, id, g1, 0, late).unwrap());
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
    let mut reader = Reader::new(guard, generation, 0, Some(LEN as u64), patience);
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
            assert!(write_chunk(&cache, &res, &file, second, generation, pos, chunk).unwrap());
            res.lock().finish_fill(second, None);
            res.notify();
        });
        let n = ready.unwrap_or_else(|e| panic!("round {round}: the reader gave up: {e}"));
        assert_eq!(n, Some(1000));
    }
}
