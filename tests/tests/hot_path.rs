//! SPEC §3: "The hot path for fully cached bytes touches no SQLite and no upstream", and an idle
//! server costs no battery. Both are watched with strace (`-y` names the file behind every
//! descriptor). After a resource is cached, a burst of whole and ranged reads of it, with the
//! backend gone, must show reads of its data file and not one system call on the index
//! (`index.sqlite`, its `-wal` or `-shm`); the sync interval is set long, so the recorder (which
//! writes the index off the hot path) does not run inside that window. And once a request's
//! changes are recorded, an idle server makes no system call at all.

use std::path::Path;
use std::time::Duration;

use integration_tests::*;

const LEN: usize = 900_000;

/// `strace` following every thread of the server, naming the file behind each descriptor, writing
/// to `trace`, with `extra` options: the wrapper for [`Server::start_wrapped`].
fn strace(trace: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![require_tool("strace").display().to_string()];
    args.extend(["-f", "-qq", "-y"].iter().chain(extra).map(|s| s.to_string()));
    args.extend(["-o".to_string(), trace.display().to_string()]);
    args
}

#[test]
fn cached_reads_make_no_system_call_on_the_index() {
    let mut origin = Origin::start(&[]);
    let truth = seeded_bytes(0x407, LEN);
    origin.put_file("hot.bin", &truth);
    let logs = tempfile::tempdir().expect("tempdir");
    let trace = logs.path().join("strace.txt");
    let calls = "trace=openat,read,pread64,preadv,write,pwrite64,pwritev,fsync,fdatasync,fcntl,mmap";
    let wrapper = strace(&trace, &["-e", calls]);
    let server = Server::start_wrapped(
        &wrapper,
        None,
        &[origin.origin_arg()],
        &["--sync-interval-ms", "3600000"],
        &[],
    );
    let url = server.stream_url(&origin, "hot.bin");
    get(&url).assert_complete("priming read");
    origin.kill();

    let lines = || std::fs::read_to_string(&trace).expect("read the trace").lines().count();
    let before = lines();
    let hits = json_u64(&server.stats(), "hits");
    for round in 0..5 {
        let r = get(&url);
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        r.assert_complete("whole");
        assert_bytes_eq("whole", &r.body, &truth);
        let start = 100_000 * (round + 1);
        let r = get_range(&url, &format!("bytes={start}-{}", start + 65_535));
        assert_eq!(r.status, 206, "round {round}");
        assert_bytes_eq("range", &r.body, &truth[start..start + 65_536]);
    }
    assert_eq!(json_u64(&server.stats(), "hits"), hits + 10);
    // strace writes each line as the call returns; wait until the last reads are in the file.
    let data_dir = server.cache_dir().join("data").display().to_string();
    let mut window = Vec::new();
    wait_until(Duration::from_secs(10), "the reads of the data file are traced", || {
        let text = std::fs::read_to_string(&trace).expect("read the trace");
        window = text.lines().skip(before).map(str::to_owned).collect();
        window
            .iter()
            .filter(|l| l.contains(&data_dir) && l.contains("pread64"))
            .count()
            >= 10
    });
    let on_index: Vec<&String> = window.iter().filter(|l| l.contains("index.sqlite")).collect();
    assert!(
        on_index.is_empty(),
        "{} system calls on the index while serving cached bytes, e.g.:\n{}",
        on_index.len(),
        on_index
            .iter()
            .take(10)
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// No battery waste: once what a request changed is recorded, an idle server makes no system
/// call at all (no periodic timer, no polling), so a phone's CPU can sleep while the app idles.
#[test]
fn an_idle_server_makes_no_system_calls() {
    let origin = Origin::start(&[]);
    origin.put_file("idle.bin", &seeded_bytes(0x1D1E, 100_000));
    let logs = tempfile::tempdir().expect("tempdir");
    let trace = logs.path().join("strace.txt");
    let wrapper = strace(&trace, &[]);
    let server = Server::start_wrapped(&wrapper, None, &[origin.origin_arg()], &[], &[]);
    let url = server.stream_url(&origin, "idle.bin");
    // A new client per request (no keep-alive connection left with a timer on it).
    let r = curl(&["-H", "Connection: close"], &url);
    assert_eq!(r.status, 200);
    let read = || std::fs::read_to_string(&trace).expect("read the trace");
    // The recorder syncs the data file, then writes the index (start-up writes the index too).
    wait_until(Duration::from_secs(10), "the read is recorded in the index", || {
        let text = read();
        let mut lines = text.lines();
        lines.any(|l| l.contains("fdatasync(") && l.contains("/data/"))
            && lines.any(|l| l.contains("pwrite64") && l.contains("index.sqlite-wal"))
    });
    // Let the recorder's last calls reach the trace (compiling the index's statements the first
    // time may pause it for a few milliseconds mid-batch), then watch a quiet window.
    let mut before = 0;
    wait_until(Duration::from_secs(10), "the trace stops growing for 300 ms", || {
        before = read().lines().count();
        !poll_until(Duration::from_millis(300), || read().lines().count() > before)
    });
    let quiet = !poll_until(Duration::from_millis(2500), || read().lines().count() > before);
    let text = read();
    let extra: Vec<&str> = text.lines().skip(before).take(20).collect();
    assert!(quiet, "an idle server made system calls:\n{}", extra.join("\n"));
}
