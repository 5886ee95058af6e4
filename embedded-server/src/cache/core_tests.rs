//! The cache core driven in process against a scripted backend ([`Scripted`]): readers, fills,
//! stale resets, persistence, eviction and the lazy index, each on tokio's paused clock (stalls,
//! timeouts and backoff take no real time, and no test waits on time: only on conditions).
//! Every byte a reader gets is compared with the version the backend served.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::reader::Reader;
use super::resource::stale_error;
use super::resource::SOON_BYTES;
use super::scripted::{Answer, Scripted, Seen, CHUNK};
use super::{Cache, Handle, Options};
use crate::config::LinkPolicy;
use crate::error::{Error, UpstreamError};
use crate::telemetry::Counters;

/// The resource most tests read.
const URL: &str = "http://127.0.0.1:9/core/track.mp3";
/// Its length: well beyond `SOON_BYTES`, so that a seek can land far from a running fill.
const LEN: usize = 1024 * 1024;
/// The length of the small resources of the eviction tests.
const SMALL: usize = 40_000;
/// How long a reader waits for its next bytes before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);
/// Bytes a player must have ahead of it before downloads may take the link again.
const PLAYBACK_AHEAD: u64 = 256 * 1024;
/// How long a fill waits for the next body chunk.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// `len` bytes of version `seed`: a pseudo-random pattern of its own, so that a byte from another
/// offset or another version shows.
fn truth(seed: u8, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_add(u64::from(seed) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

/// A cache directory, a scripted backend and the cache on them.
struct Env {
    /// The cache directory (removed when dropped).
    dir: TempDir,
    /// The backend the cache fetches from.
    backend: Arc<Scripted>,
    /// The cache.
    cache: Arc<Cache>,
}

impl Env {
    /// A cache of at most `max_bytes` keeping `resident_max` idle resources in memory, whose fills
    /// try every request 3 times, before a backend that knows nothing yet.
    fn new(max_bytes: u64, resident_max: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = Scripted::new(READ_TIMEOUT);
        let cache = open(dir.path(), &backend, max_bytes, resident_max);
        Self { dir, backend, cache }
    }

    /// A cache of 1 GiB that keeps no idle resource in memory.
    fn big() -> Self {
        Self::new(1 << 30, 0)
    }
}

/// Opens the cache in `dir` with `backend` as its upstream.
fn open(dir: &Path, backend: &Arc<Scripted>, max_bytes: u64, resident_max: usize) -> Arc<Cache> {
    open_with(dir, backend, max_bytes, resident_max, LinkPolicy::Yield)
}

/// Opens the cache in `dir` with `backend` as its upstream and downloads under `policy`.
fn open_with(
    dir: &Path,
    backend: &Arc<Scripted>,
    max_bytes: u64,
    resident_max: usize,
    link_policy: LinkPolicy,
) -> Arc<Cache> {
    let options = Options {
        max_bytes,
        attempts: 3,
        resident_max,
        link_policy,
        playback_ahead: PLAYBACK_AHEAD,
    };
    Cache::open(dir, None, backend.clone(), Arc::new(Counters::default()), options)
        .expect("open cache")
        .0
}

/// A registered reader of `url`.
async fn acquire(cache: &Arc<Cache>, url: &str) -> Handle {
    let parsed = url::Url::parse(url).expect("url");
    cache.acquire(url, &parsed, None).await.expect("acquire")
}

/// A reader of `handle`'s resource from `start` to `end`, once the backend has described it.
async fn reader(handle: Handle, start: u64, end: Option<u64>) -> Reader {
    let described = handle.meta(start, PATIENCE).await.expect("described");
    handle.reader(described.generation, start, end, PATIENCE)
}

/// Reads on until the end or an error: the bytes read, and how it stopped.
async fn drain(reader: &mut Reader) -> (Vec<u8>, Result<(), Arc<Error>>) {
    let mut got = Vec::new();
    loop {
        match reader.next_chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => return (got, Ok(())),
            Err(e) => return (got, Err(e)),
        }
    }
}

/// `got` is `want[start..]` up to its own length (`whole`: and all of it).
fn assert_bytes(got: &[u8], want: &[u8], start: usize, whole: bool) {
    let want = &want[start..];
    assert!(
        got.len() <= want.len(),
        "{} bytes read past the end",
        got.len() - want.len()
    );
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("byte {} is wrong", start + at);
    }
    if whole {
        assert_eq!(got.len(), want.len(), "bytes missing from {}", start + got.len());
    }
}

/// Reads `url` whole through a new handle, checks every byte against `want`, and gives the
/// handle back.
async fn read_whole(cache: &Arc<Cache>, url: &str, want: &[u8]) -> Handle {
    let mut r = reader(acquire(cache, url).await, 0, None).await;
    let (got, end) = drain(&mut r).await;
    end.unwrap_or_else(|e| panic!("reading {url}: {e}"));
    assert_bytes(&got, want, 0, true);
    r.into_handle()
}

/// Asserts that `result` is the upstream error `want`.
fn assert_upstream_error(result: Result<(), Arc<Error>>, want: &UpstreamError) {
    match result {
        Err(e) => assert!(matches!(&*e, Error::Upstream(u) if u == want), "{e}"),
        Ok(()) => panic!("read to the end; expected {want}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Readers
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_reader_carries_on_when_its_data_file_shrinks_or_vanishes() {
    let t = Env::big();
    let v1 = truth(40, LEN);
    t.backend.serve(URL, &v1, "v1");
    drop(read_whole(&t.cache, URL, &v1).await);
    // Half read, the file is cut short under the reader (which has it open).
    let mut r = reader(acquire(&t.cache, URL).await, 0, None).await;
    let mut got = Vec::new();
    while got.len() < LEN / 2 {
        got.extend_from_slice(&r.next_chunk().await.expect("read").expect("more"));
    }
    let path = r.handle().res.lock().path.clone();
    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(1000).expect("cut short");
    let (rest, end) = drain(&mut r).await;
    end.expect("the reader carries on");
    got.extend_from_slice(&rest);
    assert_bytes(&got, &v1, 0, true);
    drop(r);
    // Deleted before the next reader opens it.
    let path = t.cache.resident_now(URL).expect("resident").lock().path.clone();
    std::fs::remove_file(&path).expect("delete");
    drop(read_whole(&t.cache, URL, &v1).await);
    let seen = t.backend.seen();
    // The lost bytes were fetched again each time (a fill that finds the file gone only after
    // its request loses the bytes and makes way for one in the next generation).
    assert!(seen.len() >= 3, "{seen:?}");
    assert_eq!(
        seen[1].start,
        LEN as u64 / 2,
        "the cut reader carried on where it was: {seen:?}"
    );
    assert!(
        seen[1..].iter().all(|s| s.if_range.as_deref() == Some("\"v1\"")),
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cold_resource_is_read_whole_with_one_request() {
    let t = Env::big();
    let v1 = truth(1, LEN);
    t.backend.serve(URL, &v1, "v1");
    read_whole(&t.cache, URL, &v1).await;
    assert_eq!(t.backend.seen(), [Seen::new(URL, 0, None)]);
}

/// Reader `a` reads the first chunk of a fill the backend sends slowly; then reader `b` reads
/// from `seek` to the end, and `a` reads the rest. Returns the requests the backend saw.
async fn a_second_reader_at(seek: usize) -> Vec<Seen> {
    let t = Env::big();
    let v1 = truth(2, LEN);
    t.backend.serve(URL, &v1, "v1");
    t.backend
        .then(URL, Answer::default().stall_between_chunks(Duration::from_secs(1)));
    let mut a = reader(acquire(&t.cache, URL).await, 0, None).await;
    let first = a.next_chunk().await.unwrap().unwrap();
    assert_eq!(first.len(), CHUNK, "the fill's first chunk");
    let mut b = reader(acquire(&t.cache, URL).await, seek as u64, None).await;
    let (tail, end) = drain(&mut b).await;
    end.unwrap();
    assert_bytes(&tail, &v1, seek, true);
    let (rest, end) = drain(&mut a).await;
    end.unwrap();
    assert_bytes(&[&first[..], &rest].concat(), &v1, 0, true);
    t.backend.seen()
}

#[tokio::test(start_paused = true)]
async fn a_seek_far_ahead_of_the_fill_starts_a_second_fill_there() {
    let seek = 3 * LEN / 4 + 5;
    assert!(seek as u64 > CHUNK as u64 + SOON_BYTES);
    assert_eq!(
        a_second_reader_at(seek).await,
        [Seen::new(URL, 0, None), Seen::new(URL, seek as u64, Some("v1"))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_reader_just_ahead_of_the_fill_waits_for_it() {
    let seek = CHUNK + 100_000;
    assert!((seek as u64) < CHUNK as u64 + SOON_BYTES);
    assert_eq!(a_second_reader_at(seek).await, [Seen::new(URL, 0, None)]);
}

#[tokio::test(start_paused = true)]
async fn a_reader_out_of_patience_leaves_the_fill_to_the_next_one() {
    let t = Env::big();
    let v1 = truth(3, LEN);
    t.backend.serve(URL, &v1, "v1");
    t.backend
        .then(URL, Answer::default().stall_before_headers(Duration::from_secs(30)));
    let impatient = acquire(&t.cache, URL).await;
    let patient = acquire(&t.cache, URL).await;
    let gave_up = impatient.meta(0, Duration::from_secs(10)).await.unwrap_err();
    assert!(
        matches!(&*gave_up, Error::Upstream(UpstreamError::Timeout)),
        "{gave_up}"
    );
    drop(impatient);
    let mut r = reader(patient, 0, None).await;
    let (got, end) = drain(&mut r).await;
    end.unwrap();
    assert_bytes(&got, &v1, 0, true);
    assert_eq!(
        t.backend.seen(),
        [Seen::new(URL, 0, None)],
        "the stalled fill served both"
    );
}

// ---------------------------------------------------------------------------------------------
// Fills
// ---------------------------------------------------------------------------------------------

/// Reads `URL` whole while the backend's first answer is `first`, and asserts that the fill
/// resumed at byte `at` with `If-Range`.
async fn assert_resumed_at(first: Answer, at: u64) {
    let t = Env::big();
    let v1 = truth(4, LEN);
    t.backend.serve(URL, &v1, "v1");
    t.backend.then(URL, first);
    read_whole(&t.cache, URL, &v1).await;
    assert_eq!(
        t.backend.seen(),
        [Seen::new(URL, 0, None), Seen::new(URL, at, Some("v1"))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_broken_body_is_resumed_from_the_last_byte_with_if_range() {
    assert_resumed_at(Answer::default().break_after(100_000), 100_000).await;
}

#[tokio::test(start_paused = true)]
async fn a_body_stalled_past_the_read_timeout_is_resumed() {
    let stalled = Answer::default().stall_between_chunks(READ_TIMEOUT * 2);
    assert_resumed_at(stalled, CHUNK as u64).await;
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_fail_the_reader_after_the_bytes_that_came() {
    let t = Env::big();
    let v1 = truth(6, LEN);
    let n = 100_000;
    t.backend.serve(URL, &v1, "v1");
    t.backend.then(URL, Answer::default().break_after(n));
    // Two resumptions that bring nothing use up the 3 attempts; a fourth would succeed.
    t.backend.then(URL, Answer::default().break_after(0));
    t.backend.then(URL, Answer::default().break_after(0));
    let mut r = reader(acquire(&t.cache, URL).await, 0, None).await;
    let (got, end) = drain(&mut r).await;
    let reset = UpstreamError::protocol("body: connection reset by the script");
    assert_upstream_error(end, &reset);
    assert_bytes(&got, &v1, 0, false);
    assert_eq!(got.len(), n);
    assert_eq!(r.handle().snapshot().present.runs(), &[(0, n as u64)]);
    let resumed = Seen::new(URL, n as u64, Some("v1"));
    assert_eq!(t.backend.seen(), [Seen::new(URL, 0, None), resumed.clone(), resumed]);
}

#[tokio::test(start_paused = true)]
async fn a_first_request_past_the_end_learns_the_length_from_416() {
    let t = Env::big();
    let v1 = truth(7, LEN);
    t.backend.serve(URL, &v1, "v1");
    let past = LEN as u64 + 10;
    let handle = acquire(&t.cache, URL).await;
    let described = handle.meta(past, PATIENCE).await.unwrap();
    assert_eq!(described.meta.size, Some(LEN as u64));
    assert!(handle.snapshot().present.runs().is_empty());
    let mut at_end = handle.reader(described.generation, past, None, PATIENCE);
    assert!(at_end.next_chunk().await.unwrap().is_none());
    read_whole(&t.cache, URL, &v1).await;
    assert_eq!(
        t.backend.seen(),
        [Seen::new(URL, past, None), Seen::new(URL, 0, Some("v1"))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_without_a_length_ends_the_resource_where_it_ends() {
    let t = Env::big();
    let v1 = truth(8, LEN);
    t.backend.serve(URL, &v1, "v1");
    // Slow enough that the resource is described long before its body ends.
    let slow = Answer::default().stall_between_chunks(Duration::from_secs(1));
    t.backend.then(URL, slow.without_length());
    let handle = acquire(&t.cache, URL).await;
    let described = handle.meta(0, PATIENCE).await.unwrap();
    assert_eq!(described.meta.size, None, "no length yet");
    let mut r = handle.reader(described.generation, 0, None, PATIENCE);
    let (got, end) = drain(&mut r).await;
    end.unwrap();
    assert_bytes(&got, &v1, 0, true);
    assert!(
        r.handle().snapshot().complete,
        "the length is learnt at the end of the body"
    );
    assert_eq!(t.backend.seen(), [Seen::new(URL, 0, None)]);
}

// ---------------------------------------------------------------------------------------------
// Stale reset
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_new_version_drops_the_cached_bytes_and_the_old_reader_gets_the_stale_error() {
    let t = Env::big();
    let (v1, v2) = (truth(9, LEN), truth(10, LEN));
    let n = 100_000;
    t.backend.serve(URL, &v1, "v1");
    t.backend.then(URL, Answer::default().break_after(n));
    // The resumption finds a new version: `If-Range` does not match, the whole of it comes.
    t.backend.then(
        URL,
        Answer::default()
            .new_version(&v2, "v2")
            .stall_between_chunks(Duration::from_secs(1)),
    );
    let mut old = reader(acquire(&t.cache, URL).await, 0, None).await;
    let g1 = t.cache.resident_now(URL).unwrap().lock().generation;
    let (got, end) = drain(&mut old).await;
    assert_bytes(&got, &v1, 0, false);
    assert_eq!(got.len(), n, "every byte of the old version that came");
    let stale = end.unwrap_err();
    assert_eq!(stale.to_string(), stale_error().to_string());
    // A new reader while the new version's body is still coming.
    let new = acquire(&t.cache, URL).await;
    drop(old);
    let described = new.meta(0, PATIENCE).await.unwrap();
    assert_ne!(described.generation, g1, "a new incarnation");
    assert_eq!(described.meta.etag.as_deref(), Some("\"v2\""));
    let mut r = new.reader(described.generation, 0, None, PATIENCE);
    let (got, end) = drain(&mut r).await;
    end.unwrap();
    assert_bytes(&got, &v2, 0, true);
    assert_eq!(
        t.backend.seen(),
        [Seen::new(URL, 0, None), Seen::new(URL, n as u64, Some("v1"))],
        "the new version's body was kept from its first byte"
    );
    drop(r);
    t.cache.persist().unwrap();
    let row = t.cache.index.load_resource(URL).unwrap().unwrap();
    assert_eq!(row.etag.as_deref(), Some("\"v2\""));
    assert_eq!(row.generation, Some(described.generation));
    assert_eq!(row.ranges, format!("0-{LEN}"));
}

// ---------------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn recorded_ranges_are_served_after_a_restart_without_the_backend() {
    let t = Env::big();
    let v1 = truth(11, LEN);
    let (n, b) = (100_000usize, 600_000usize);
    t.backend.serve(URL, &v1, "v1");
    t.backend.then(URL, Answer::default().break_after(n));
    t.backend.then(URL, Answer::status(503));
    // The head until the backend fails, then the tail from a seek.
    let mut head = reader(acquire(&t.cache, URL).await, 0, None).await;
    let (got, end) = drain(&mut head).await;
    assert_upstream_error(end, &UpstreamError::Status(503));
    assert_bytes(&got, &v1, 0, false);
    assert_eq!(got.len(), n);
    drop(head);
    let mut tail = reader(acquire(&t.cache, URL).await, b as u64, None).await;
    let (got, end) = drain(&mut tail).await;
    end.unwrap();
    assert_bytes(&got, &v1, b, true);
    drop(tail);
    t.cache.persist().unwrap();
    assert!(t.cache.resident_now(URL).is_none(), "recorded and let go");
    let row = t.cache.index.load_resource(URL).unwrap().unwrap();
    assert_eq!(row.ranges, format!("0-{n},{b}-{LEN}"));
    assert_eq!(row.bytes, (n + LEN - b) as u64);
    assert_eq!((row.size, row.etag.as_deref()), (Some(LEN as u64), Some("\"v1\"")));
    t.cache.shutdown().await.unwrap();
    let Env { dir, cache, .. } = t;
    drop(cache);

    let down = Scripted::new(READ_TIMEOUT);
    down.otherwise(Answer::status(503));
    let cache = open(dir.path(), &down, 1 << 30, 0);
    for (start, end, want_len) in [(0, Some(n as u64), n), (b as u64, None, LEN - b)] {
        let mut r = reader(acquire(&cache, URL).await, start, end).await;
        let (got, result) = drain(&mut r).await;
        result.unwrap();
        assert_bytes(&got, &v1, start as usize, false);
        assert_eq!(got.len(), want_len);
    }
    assert_eq!(down.seen(), [], "recorded bytes are served without a request");
    // The gap is asked for, and fails; nothing but recorded bytes came before.
    let mut r = reader(acquire(&cache, URL).await, 0, None).await;
    let (got, end) = drain(&mut r).await;
    assert_upstream_error(end, &UpstreamError::Status(503));
    assert_eq!(got.len(), n);
    assert_bytes(&got, &v1, 0, false);
    assert_eq!(down.seen(), [Seen::new(URL, n as u64, Some("v1"))]);
}

// ---------------------------------------------------------------------------------------------
// Eviction
// ---------------------------------------------------------------------------------------------

/// Where the small resources live.
const SMALL_DIR: &str = "http://127.0.0.1:9/core/";

/// The URL of small resource `name`.
fn small(name: &str) -> String {
    format!("{SMALL_DIR}{name}.mp3")
}

/// The bytes small resource `name` is served with.
fn small_truth(name: &str) -> Vec<u8> {
    truth(name.as_bytes()[0], SMALL)
}

/// A cache holding at most three small resources, keeping `resident_max` idle ones in memory,
/// before a backend that serves every small resource; `a`, `b` and `c` have been read in that
/// order, and fit.
async fn three_visited(resident_max: usize) -> Env {
    let t = Env::new(3 * SMALL as u64, resident_max);
    for name in ["a", "b", "c", "d", "e"] {
        t.backend.serve(&small(name), &small_truth(name), "v1");
    }
    for (at, name) in ["a", "b", "c"].into_iter().enumerate() {
        visit(&t.cache, name, at as u64).await;
    }
    assert_eq!(recorded(&t.cache), ["a", "b", "c"], "three fit");
    t
}

/// Reads small resource `name` whole, lets it go, notes the access at `at` (seconds after a
/// fixed past moment: the cache's clock is the wall clock, which tokio's paused clock does not
/// move), and records it, which evicts.
async fn visit(cache: &Arc<Cache>, name: &str, at: u64) {
    let url = small(name);
    let handle = read_whole(cache, &url, &small_truth(name)).await;
    let res = handle.res.clone();
    drop(handle);
    res.lock().last_access_ms = 1_600_000_000_000 + at * 1000;
    drop(res);
    cache.persist().unwrap();
}

/// The names of the small resources the index has rows for, sorted.
fn recorded(cache: &Cache) -> Vec<String> {
    let mut names: Vec<String> = cache
        .index
        .all_resources()
        .unwrap()
        .into_iter()
        .filter_map(|row| Some(row.key.strip_prefix(SMALL_DIR)?.strip_suffix(".mp3")?.to_string()))
        .collect();
    names.sort();
    names
}

/// The requests of `names`, each from byte 0.
fn from_zero(names: &[&str]) -> Vec<Seen> {
    names.iter().map(|name| Seen::new(&small(name), 0, None)).collect()
}

/// After `a`, `b`, `c`, `a` again and `d`, `b` was evicted; after `b` again, `c`.
async fn least_recently_used_first(resident_max: usize) {
    let t = three_visited(resident_max).await;
    visit(&t.cache, "a", 3).await;
    visit(&t.cache, "d", 4).await;
    assert_eq!(recorded(&t.cache), ["a", "c", "d"], "b was the least recently used");
    visit(&t.cache, "b", 5).await;
    assert_eq!(recorded(&t.cache), ["a", "b", "d"], "then c");
    assert_eq!(
        t.backend.seen(),
        from_zero(&["a", "b", "c", "d", "b"]),
        "a came from the cache"
    );
    super::interleavings::assert_totals_recount(&t.cache);
}

#[tokio::test(start_paused = true)]
async fn eviction_takes_the_least_recently_used_first_among_cold_resources() {
    least_recently_used_first(0).await;
}

#[tokio::test(start_paused = true)]
async fn eviction_takes_the_least_recently_used_first_among_resident_resources() {
    least_recently_used_first(16).await;
}

#[tokio::test(start_paused = true)]
async fn a_resource_held_by_a_reader_is_never_evicted() {
    let t = three_visited(0).await;
    let held = acquire(&t.cache, &small("a")).await;
    visit(&t.cache, "d", 3).await;
    assert_eq!(recorded(&t.cache), ["a", "c", "d"], "b went in a's place");
    let mut r = reader(held, 0, None).await;
    let (got, end) = drain(&mut r).await;
    end.unwrap();
    assert_bytes(&got, &small_truth("a"), 0, true);
    assert_eq!(t.backend.seen(), from_zero(&["a", "b", "c", "d"]));
    super::interleavings::assert_totals_recount(&t.cache);
}

#[tokio::test(start_paused = true)]
async fn a_pinned_resource_is_never_evicted() {
    let t = three_visited(0).await;
    let pin = acquire(&t.cache, &small("a")).await;
    pin.pin().await.unwrap();
    drop(pin);
    t.cache.persist().unwrap();
    visit(&t.cache, "d", 3).await;
    visit(&t.cache, "e", 4).await;
    assert_eq!(recorded(&t.cache), ["a", "d", "e"], "b and c went; a is pinned");
    visit(&t.cache, "a", 5).await;
    assert_eq!(t.backend.seen(), from_zero(&["a", "b", "c", "d", "e"]));
    super::interleavings::assert_totals_recount(&t.cache);
}

// ---------------------------------------------------------------------------------------------
// The lazy index
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_resource_loaded_evicted_and_loaded_again_while_a_reader_waits() {
    // Room for `a` and `b`; no idle resource is kept in memory.
    let t = Env::new(SMALL as u64 + 1000, 0);
    let (a, b) = (small("a"), small("b"));
    let (v1, v2) = (small_truth("a"), truth(12, SMALL));
    t.backend.serve(&a, &v1, "v1");
    t.backend.serve(&b, &truth(13, 1000), "v1");
    // Fetched, recorded, let go from memory.
    drop(read_whole(&t.cache, &a, &v1).await);
    t.cache.persist().unwrap();
    assert!(t.cache.resident_now(&a).is_none());
    // Loaded from its row and read without a request, then let go again.
    drop(read_whole(&t.cache, &a, &v1).await);
    t.cache.persist().unwrap();
    assert!(t.cache.resident_now(&a).is_none());
    assert_eq!(t.backend.seen(), [Seen::new(&a, 0, None)]);
    // `b` is held; the backend has a new version of `a`.
    let held = read_whole(&t.cache, &b, &truth(13, 1000)).await;
    t.backend.serve(&a, &v2, "v2");
    // An eviction of one byte (the least recently used, `a`) owns the cold key from the moment
    // its row is chosen until its file is gone.
    let victims = t.cache.delete_victims(1).unwrap();
    assert!(t.cache.index.load_resource(&a).unwrap().is_none(), "a's row is deleted");
    let waiting = tokio::spawn({
        let (cache, a) = (t.cache.clone(), a.clone());
        async move {
            let mut r = reader(acquire(&cache, &a).await, 0, None).await;
            drain(&mut r).await
        }
    });
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
    assert!(
        !waiting.is_finished(),
        "the reader waits while the eviction owns the key"
    );
    t.cache.let_go(victims);
    let (got, end) = waiting.await.unwrap();
    end.unwrap();
    assert_bytes(&got, &v2, 0, true);
    assert_eq!(
        t.backend.seen(),
        [Seen::new(&a, 0, None), Seen::new(&b, 0, None), Seen::new(&a, 0, None)],
        "fetched again from scratch: nothing of the evicted row was loaded"
    );
    drop(held);
    t.cache.persist().unwrap();
    super::interleavings::assert_totals_recount(&t.cache);
}

// Players before downloads (`priority`).

/// What a download reads while a player plays `URL`.
const ALBUM: &str = "http://127.0.0.1:9/core/album.flac";

/// A download of `url` in a task: it passes every byte without a player, as downloads do.
fn download(cache: &Arc<Cache>, url: &str) -> tokio::task::JoinHandle<Result<(), Arc<Error>>> {
    let (cache, url) = (cache.clone(), url.to_owned());
    tokio::spawn(async move {
        let handle = acquire(&cache, &url).await.for_download();
        let described = handle.meta(0, PATIENCE).await?;
        let mut r = handle.reader(described.generation, 0, None, PATIENCE);
        while r.skip().await?.is_some() {}
        Ok(())
    })
}

/// Waits until `holds()` on tokio's clock (paused: no real time passes), failing after ten
/// minutes of it.
async fn until(what: &str, holds: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while !holds() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Bytes of `url` present now, seen through `watch` (a handle that reads nothing).
fn present(watch: &Handle) -> u64 {
    watch.snapshot().present.len()
}

/// The album comes a chunk a second, whenever it is asked for (a fill that holds back closes
/// its connection and asks again by Range); the player's first answer starts after 30 s, then a
/// chunk a second; a seek's answer starts after 30 s, then at full speed.
fn script_album_and_track(t: &Env, album: &[u8], track: &[u8]) {
    t.backend.serve(ALBUM, album, "a1");
    t.backend.serve(URL, track, "t1");
    let slow = Answer::default().stall_between_chunks(Duration::from_secs(1));
    for _ in 0..8 {
        t.backend.then(ALBUM, slow.clone());
    }
    let first = slow.stall_before_headers(Duration::from_secs(30));
    t.backend.then(URL, first);
    t.backend
        .then(URL, Answer::default().stall_before_headers(Duration::from_secs(30)));
}

/// Asserts that the album's fill takes no bytes for `secs` seconds of the backend's pace.
async fn assert_held(watch: &Handle, cache: &Cache, secs: u64) {
    until("the download holds back", || cache.arbiter().waiting_fills() == 1).await;
    let at = present(watch);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    assert_eq!(present(watch), at, "the download took bytes while a player waited");
    assert_eq!(cache.arbiter().waiting_fills(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_download_holds_back_while_a_player_lacks_bytes_and_again_after_a_seek() {
    let t = Env::big();
    let (album, track) = (truth(20, LEN), truth(21, LEN));
    script_album_and_track(&t, &album, &track);
    let arbiter = t.cache.arbiter();
    let running = download(&t.cache, ALBUM);
    let watch = acquire(&t.cache, ALBUM).await;
    until("the download is under way", || present(&watch) > 0).await;

    // A player waits 30 s for the track's first bytes: the download takes none meanwhile.
    let player = acquire(&t.cache, URL).await.for_player();
    let (described, ()) = tokio::join!(player.meta(0, PATIENCE), assert_held(&watch, &t.cache, 20));
    let described = described.unwrap();
    // It reads the first quarter, a chunk a second; short of `PLAYBACK_AHEAD` ahead until its
    // end, it stays hungry, and the download keeps holding back.
    let quarter = LEN as u64 / 4;
    assert!(quarter <= PLAYBACK_AHEAD);
    let mut r = player.reader(described.generation, 0, Some(quarter), PATIENCE);
    let at = present(&watch);
    let (got, end) = drain(&mut r).await;
    end.unwrap();
    assert_bytes(&got, &track, 0, false);
    assert_eq!(got.len() as u64, quarter);
    // At most the chunk that came as the player's last bytes arrived (it was satisfied then).
    assert!(
        present(&watch) <= at + CHUNK as u64,
        "the download took bytes while the player read"
    );
    // Held for the 30 s wait and the quarter's chunks, a second apart after the first.
    let reading_ms = (quarter / CHUNK as u64 - 1) * 1000;
    assert!(
        arbiter.yield_ms() >= 30_000 + reading_ms - 1000,
        "{} ms",
        arbiter.yield_ms()
    );

    // Satisfied (its range is read), the player leaves the link: the download goes on.
    let player = r.into_handle();
    until("the download goes on", || present(&watch) > at).await;
    assert_eq!(arbiter.hungry(), 0);

    // A seek to uncached bytes makes the player hungry again: the download holds back again.
    let seek = 3 * quarter;
    let described = player.meta(seek, PATIENCE).await.unwrap();
    let mut r = player.reader(described.generation, seek, None, PATIENCE);
    let (got, ()) = tokio::join!(drain(&mut r), assert_held(&watch, &t.cache, 10));
    got.1.unwrap();
    assert_bytes(&got.0, &track, seek as usize, true);

    // Then the download ends, every byte its own.
    drop(r);
    running.await.unwrap().unwrap();
    assert_eq!(arbiter.waiting_fills(), 0);
    assert_eq!(arbiter.hungry(), 0);
    drop(watch);
    read_whole(&t.cache, ALBUM, &album).await;
    // Each hold closed the album's connection; it was asked for again from where it stood.
    let resumed = t
        .backend
        .seen()
        .into_iter()
        .filter(|s| s.url == ALBUM && s.start > 0 && s.if_range.is_some())
        .count();
    assert!(resumed >= 2, "the album was not resumed by Range after each hold");
}

#[tokio::test(start_paused = true)]
async fn under_the_share_policy_a_download_never_holds_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Scripted::new(READ_TIMEOUT);
    let cache = open_with(dir.path(), &backend, 1 << 30, 0, LinkPolicy::Share);
    let t = Env { dir, backend, cache };
    let (album, track) = (truth(22, LEN), truth(23, LEN));
    t.backend.serve(ALBUM, &album, "a1");
    t.backend.serve(URL, &track, "t1");
    let slow = Answer::default().stall_between_chunks(Duration::from_millis(100));
    t.backend.then(ALBUM, slow);
    t.backend
        .then(URL, Answer::default().stall_before_headers(Duration::from_secs(30)));
    let running = download(&t.cache, ALBUM);
    let player = acquire(&t.cache, URL).await.for_player();
    // The album (64 chunks, 6.4 s) is whole before the player's first byte arrives (30 s).
    let (described, done) = tokio::join!(player.meta(0, PATIENCE), running);
    done.unwrap().unwrap();
    assert_eq!(t.cache.arbiter().yield_ms(), 0);
    let mut r = player.reader(described.unwrap().generation, 0, None, PATIENCE);
    let (got, end) = drain(&mut r).await;
    end.unwrap();
    assert_bytes(&got, &track, 0, true);
    read_whole(&t.cache, ALBUM, &album).await;
}

#[tokio::test(start_paused = true)]
async fn a_download_of_the_resource_a_player_reads_never_holds_back() {
    let t = Env::big();
    let track = truth(24, LEN);
    t.backend.serve(URL, &track, "t1");
    t.backend.serve(ALBUM, &truth(25, LEN), "a1");
    t.backend
        .then(URL, Answer::default().stall_between_chunks(Duration::from_secs(1)));
    // Another player waits for the album's first bytes for ever: it is hungry throughout.
    t.backend
        .then(ALBUM, Answer::default().stall_before_headers(Duration::from_secs(3600)));
    let hungry = acquire(&t.cache, ALBUM).await.for_player();
    let waiting = tokio::spawn(async move { hungry.meta(0, Duration::from_secs(3600)).await.map(|_| ()) });
    until("the other player is hungry", || t.cache.arbiter().hungry() == 1).await;
    // The track is downloaded and played at once: its fill is the player's, and never waits.
    let running = download(&t.cache, URL);
    let player = acquire(&t.cache, URL).await.for_player();
    let described = player.meta(0, PATIENCE).await.unwrap();
    let mut r = player.reader(described.generation, 0, None, PATIENCE);
    let (got, end) = drain(&mut r).await;
    end.unwrap();
    assert_bytes(&got, &track, 0, true);
    running.await.unwrap().unwrap();
    assert_eq!(t.cache.arbiter().yield_ms(), 0);
    waiting.abort();
}

#[tokio::test(start_paused = true)]
async fn a_download_holds_back_for_a_prefetch_and_a_prefetch_for_a_player() {
    let t = Env::big();
    let (album, next, track) = (truth(26, LEN), truth(27, LEN), truth(28, LEN));
    const NEXT: &str = "http://127.0.0.1:9/core/next.mp3";
    t.backend.serve(ALBUM, &album, "a1");
    t.backend.serve(NEXT, &next, "n1");
    t.backend.serve(URL, &track, "t1");
    let slow = Answer::default().stall_between_chunks(Duration::from_secs(1));
    for _ in 0..8 {
        t.backend.then(ALBUM, slow.clone());
        t.backend.then(NEXT, slow.clone());
    }
    t.backend
        .then(URL, Answer::default().stall_before_headers(Duration::from_secs(30)));
    let arbiter = t.cache.arbiter();
    let running = download(&t.cache, ALBUM);
    let watch = acquire(&t.cache, ALBUM).await;
    until("the download is under way", || present(&watch) > 0).await;

    // The next track's first bytes are prefetched: the download holds back meanwhile.
    let prefetch = acquire(&t.cache, NEXT).await.for_prefetch();
    let described = prefetch.meta(0, PATIENCE).await.unwrap();
    let mut prefetching = prefetch.reader(described.generation, 0, Some(LEN as u64 / 2), PATIENCE);
    let watch_next = acquire(&t.cache, NEXT).await;
    assert!(prefetching.skip().await.unwrap().is_some());
    until("the download holds back for the prefetch", || {
        arbiter.waiting_fills() == 1
    })
    .await;
    let at = present(&watch);

    // A player wants a cold track: the prefetch holds back too.
    let player = acquire(&t.cache, URL).await.for_player();
    let check = async {
        until("the prefetch holds back too", || arbiter.waiting_fills() == 2).await;
        let next_at = present(&watch_next);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(
            present(&watch_next),
            next_at,
            "the prefetch took bytes while a player waited"
        );
    };
    let (described, ()) = tokio::join!(player.meta(0, PATIENCE), check);
    let mut r = player.reader(described.unwrap().generation, 0, None, PATIENCE);
    let (got, end) = drain(&mut r).await;
    end.unwrap();
    assert_bytes(&got, &track, 0, true);
    drop(r);

    // The player satisfied, the prefetch goes on to its end, the download still waits for it.
    while prefetching.skip().await.unwrap().is_some() {}
    assert!(
        present(&watch) <= at + CHUNK as u64,
        "the download took bytes during the prefetch"
    );
    drop((prefetching, watch_next));
    // The prefetch done, the download completes.
    running.await.unwrap().unwrap();
    assert_eq!(arbiter.waiting_fills(), 0);
    drop(watch);
    read_whole(&t.cache, ALBUM, &album).await;
    read_whole(&t.cache, NEXT, &next).await;
}
