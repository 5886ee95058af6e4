//! Churn (issue #11): a small cache under many concurrent readers, every body compared byte for
//! byte with the truth.
//!
//! The release `streamer serve` runs with a cache far smaller than the working set, so eviction,
//! fills that outlive their requests, syncs and readers interleave all the time. Clients loop:
//! pick a seeded random resource; 30% a full `GET`, 70% one `Range: bytes=a-b` of up to 300,000
//! bytes. The run must serve no wrong body, cut no response (the backend is healthy), and log no
//! "vanished" data file (nothing outside the server touches the files).
//!
//! Bounded for CI; run it longer by hand with the environment:
//! `cargo build --release -p tools && CHURN_SECS=1800 cargo test -p integration-tests --test churn -- --nocapture`
//! (`CHURN_SEED`, `CHURN_CLIENTS`, `CHURN_RESOURCES`, `CHURN_SYNC_MS`, `CHURN_MAX_CACHE_BYTES`
//! change the workload; the defaults are the fast reproducer).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use integration_tests::{first_difference, seeded_bytes, streamer_release_bin, Origin, Server, MIB};

/// The workload's knobs, from the environment.
struct Workload {
    secs: u64,
    seed: u64,
    clients: usize,
    resources: usize,
    resource_bytes: usize,
    sync_ms: u64,
    max_cache_bytes: u64,
}

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

impl Workload {
    fn from_env() -> Self {
        Self {
            secs: env_or("CHURN_SECS", 60),
            seed: env_or("CHURN_SEED", 11),
            clients: env_or("CHURN_CLIENTS", 32) as usize,
            resources: env_or("CHURN_RESOURCES", 40) as usize,
            resource_bytes: env_or("CHURN_RESOURCE_BYTES", MIB as u64) as usize,
            sync_ms: env_or("CHURN_SYNC_MS", 20),
            max_cache_bytes: env_or("CHURN_MAX_CACHE_BYTES", 8 * MIB as u64),
        }
    }
}

/// A xorshift64 stream: the same seed gives the same requests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What went wrong, counted over the run.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    bytes: AtomicU64,
    wrong: AtomicU64,
    cut: AtomicU64,
    other: AtomicU64,
    /// The first failures, described.
    examples: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 12 {
            examples.push(what);
        }
    }
}

/// One client's loop until `stop`.
fn client(base: &str, origin_host: &str, truth: &[Vec<u8>], seed: u64, stop: &AtomicBool, tally: &Tally) {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(30))
        .redirects(0)
        .build();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    while !stop.load(Ordering::Relaxed) {
        let i = (rng.next() % truth.len() as u64) as usize;
        let data = &truth[i];
        let url = format!("{base}stream/http/{origin_host}/r{i}.bin");
        let full = rng.next() % 100 < 30;
        let (a, b) = if full {
            (0, data.len() - 1)
        } else {
            let a = (rng.next() % data.len() as u64) as usize;
            let len = 1 + (rng.next() % 300_000) as usize;
            (a, (a + len - 1).min(data.len() - 1))
        };
        let what = if full {
            format!("GET r{i}")
        } else {
            format!("GET r{i} bytes={a}-{b}")
        };
        let mut req = agent.get(&url);
        if !full {
            req = req.set("Range", &format!("bytes={a}-{b}"));
        }
        tally.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                tally.fail(&tally.other, format!("{what}: status {code}: {body}"));
                continue;
            }
            Err(e) => {
                tally.fail(&tally.other, format!("{what}: {e}"));
                continue;
            }
        };
        let want_status = if full { 200 } else { 206 };
        if resp.status() != want_status {
            tally.fail(&tally.other, format!("{what}: status {}", resp.status()));
            continue;
        }
        if !full {
            let want = format!("bytes {a}-{b}/{}", data.len());
            if resp.header("content-range") != Some(want.as_str()) {
                tally.fail(
                    &tally.other,
                    format!(
                        "{what}: Content-Range {:?}, want {want:?}",
                        resp.header("content-range")
                    ),
                );
                continue;
            }
        }
        let mut body = Vec::new();
        let read = std::io::Read::read_to_end(&mut resp.into_reader(), &mut body);
        let want = &data[a..=b];
        tally.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        // Slice equality is a memcmp, fast in any build; the offset is only looked for on a miss.
        let same_prefix = body.len() <= want.len() && body[..] == want[..body.len()];
        if let Some(at) = (!same_prefix).then(|| first_difference(&body, want)).flatten() {
            let zeros = body[at..].iter().take(65_536).all(|&x| x == 0);
            tally.fail(
                &tally.wrong,
                format!(
                    "{what}: WRONG BYTES from body offset {at} of {} received{}",
                    body.len(),
                    if zeros { " (zeros)" } else { "" }
                ),
            );
        } else if let Err(e) = read {
            tally.fail(
                &tally.cut,
                format!("{what}: cut after {} of {} bytes: {e}", body.len(), want.len()),
            );
        } else if body.len() != want.len() {
            tally.fail(&tally.cut, format!("{what}: {} of {} bytes", body.len(), want.len()));
        }
    }
}

#[test]
fn churn_under_a_small_cache_serves_only_right_bytes() {
    let w = Workload::from_env();
    let bin = streamer_release_bin();
    let dir = tempfile::tempdir().expect("origin dir");
    let truth: Vec<Vec<u8>> = (0..w.resources)
        .map(|i| seeded_bytes(w.seed.wrapping_mul(1000).wrapping_add(i as u64), w.resource_bytes))
        .collect();
    for (i, data) in truth.iter().enumerate() {
        std::fs::write(dir.path().join(format!("r{i}.bin")), data).expect("write origin file");
    }
    let origin = Origin::start_program(&bin, dir, &[]);
    let (max, sync) = (w.max_cache_bytes.to_string(), w.sync_ms.to_string());
    let mut server = Server::start_program(
        &bin,
        &[],
        None,
        &[origin.origin_arg()],
        &["--max-cache-bytes", &max, "--sync-interval-ms", &sync],
        &[],
    );
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    let started = Instant::now();
    thread::scope(|s| {
        for c in 0..w.clients {
            let (base, host, truth, stop, tally) = (server.base.clone(), origin.host_port(), &truth, &stop, &tally);
            let seed = w.seed.wrapping_mul(7919).wrapping_add(c as u64 + 1);
            s.spawn(move || client(&base, &host, truth, seed, stop, tally));
        }
        let deadline = started + Duration::from_secs(w.secs);
        while Instant::now() < deadline && server.proc().is_running() {
            thread::park_timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(1)),
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed();
    let running = server.proc().is_running();
    let log = server.proc().stderr_all();
    let vanished = log.matches("vanished").count();
    let stats = server.stats();
    let (requests, bytes) = (
        tally.requests.load(Ordering::Relaxed),
        tally.bytes.load(Ordering::Relaxed),
    );
    let (wrong, cut, other) = (
        tally.wrong.load(Ordering::Relaxed),
        tally.cut.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    eprintln!(
        "churn: seed {} · {} clients · {} resources of {} bytes · cache {} bytes · sync {} ms · \
         {:.1} s · {requests} requests · {:.1} MiB compared · wrong {wrong} · cut {cut} · other {other} · \
         vanished warnings {vanished} · evictions {} · cache_bytes {}",
        w.seed,
        w.clients,
        w.resources,
        w.resource_bytes,
        w.max_cache_bytes,
        w.sync_ms,
        elapsed.as_secs_f64(),
        bytes as f64 / MIB as f64,
        stats["evictions"],
        stats["cache_bytes"],
    );
    let examples = tally.examples.lock().unwrap().join("\n  ");
    assert!(running, "the server died during the run");
    // The bookkeeping is exact: once nobody reads, eviction brings the cache under its limit, and
    // the total equals the sum of every resource's present bytes (a double count or a lost
    // subtraction shows here).
    integration_tests::wait_until(Duration::from_secs(20), "the idle cache fits its limit", || {
        server.stats()["cache_bytes"]
            .as_u64()
            .is_some_and(|b| b <= w.max_cache_bytes)
    });
    let listed: u64 = server
        .api_get("resources")
        .as_array()
        .expect("/api/resources is an array")
        .iter()
        .map(|r| r["cached_bytes"].as_u64().expect("cached_bytes"))
        .sum();
    assert_eq!(
        server.stats()["cache_bytes"].as_u64(),
        Some(listed),
        "cache_bytes against the listed resources"
    );
    assert!(requests > 0, "no request was made");
    assert_eq!(wrong, 0, "wrong bodies served:\n  {examples}");
    assert_eq!(cut, 0, "responses cut:\n  {examples}");
    assert_eq!(other, 0, "unexpected answers:\n  {examples}");
    assert_eq!(
        vanished, 0,
        "the server reported vanished data files although nothing touched them"
    );
}
