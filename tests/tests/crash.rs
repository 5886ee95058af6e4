//! Crash safety (SPEC §5 "Durability"): `kill -9` of `streamer serve` in the middle of a fill,
//! then a restart on the same cache directory. What the index had durably recorded before the
//! kill is still recorded after it, the track is then served byte-exact, and the first upstream
//! request after the restart resumes from the recorded bytes instead of starting over.

use std::time::Duration;

use integration_tests::*;

#[test]
fn kill_9_mid_fill_then_restart_resumes_from_recorded_bytes() {
    const LEN: usize = 4 * MIB;
    // 256 KiB/s: the fill is still far from done when we kill the server.
    let origin = Origin::start(&["--throttle", "262144"]);
    let truth = seeded_bytes(0xC7A5, LEN);
    origin.put_file("track.bin", &truth);
    let cache = tempfile::tempdir().expect("cache dir");
    let origins = vec![origin.origin_arg()];
    let track = serde_json::json!({
        "url": format!("{}track.bin", origin.url),
        "size": LEN,
        "mime": "application/octet-stream",
    });

    let mut server = Server::start_with(Some(cache.path()), &origins, &[]);
    server.put_track("t1", &track);
    let reader = BackgroundRead::start(&server.track_url("t1"), &[]);
    let (status, _) = reader.head(Duration::from_secs(15));
    assert_eq!(status, 200, "GET tracks/t1");

    // Ranges are recorded only after their bytes are synced, in ~1 s batches.
    let mut recorded_before = 0;
    wait_until(Duration::from_secs(15), "some bytes of t1 are recorded", || {
        recorded_before = json_u64(&server.api_get("tracks/t1"), "recorded_bytes");
        recorded_before > 0
    });
    assert!(
        recorded_before < LEN as u64,
        "the fill finished before the kill; the test needs a slower origin"
    );
    server.kill9();
    let partial = reader.join();
    if let Ok(r) = &partial {
        assert!(
            first_difference(&r.body, &truth).is_none() && r.body.len() <= LEN,
            "bytes served before the kill are not a prefix of the track"
        );
    }

    origin.set_faults(&Faults::default());
    let server = Server::start_with(Some(cache.path()), &origins, &[]);
    let state = http("GET", &server.api_url("tracks/t1"), &[]);
    if state.status == 404 {
        // The catalog was not kept across the restart; register the same URL again. This must
        // not discard the recorded bytes.
        server.put_track("t1", &track);
    } else {
        assert_eq!(state.status, 200, "GET api/tracks/t1 after restart: {}", state.text());
    }
    let recorded_after = json_u64(&server.api_get("tracks/t1"), "recorded_bytes");
    // Durability: what the index reported as recorded before the kill was synced, so it must
    // still be recorded. More may be (batches recorded between our look and the kill).
    assert!(
        recorded_after >= recorded_before,
        "recorded bytes lost by kill -9: {recorded_before} before, {recorded_after} after"
    );
    assert!(
        recorded_after < LEN as u64,
        "the fill cannot have completed while killed"
    );

    origin.clear_log();
    let r = get(&server.track_url("t1"));
    assert_eq!(r.status, 200);
    r.assert_complete("track after restart");
    assert_bytes_eq("track after restart", &r.body, &truth);

    wait_until(Duration::from_secs(10), "t1 is recorded complete", || {
        let t = server.api_get("tracks/t1");
        json_bool(&t, "complete") && json_u64(&t, "recorded_bytes") == LEN as u64
    });
    let t = server.api_get("tracks/t1");
    assert_eq!(
        json_u64(&t, "cached_bytes"),
        LEN as u64,
        "cached_bytes when complete: {t}"
    );
    assert_eq!(json_u64(&t, "size"), LEN as u64, "size: {t}");

    let log = origin.log_for("/track.bin");
    let first = log.first().expect("the rest of the track must come from the origin");
    let n = first
        .range_start()
        .unwrap_or_else(|| panic!("the first request after restart must resume with Range: bytes=N-, got {first:?}"));
    // Relations, with R1 = recorded_before (observed before the kill) and R2 = recorded_after
    // (what the restarted server trusts; R1 <= R2 was checked above):
    // - N > 0: something was recorded, so the resume must not start over from byte 0.
    // - N <= R2: the resume starts at the first byte not recorded (possibly aligned down to a
    //   block); starting past R2 would skip bytes that were never durably written. It need not be
    //   <= R1: batches recorded between our last look and the kill legitimately move it further.
    eprintln!("recorded before kill {recorded_before}, after restart {recorded_after}, resume at {n}");
    assert!(n > 0, "resume after restart started over from byte 0: {log:?}");
    assert!(
        n <= recorded_after,
        "resume starts at {n}, past the {recorded_after} bytes recorded: unrecorded bytes were trusted"
    );
    let refetched: u64 = log.iter().map(|e| e.body_bytes).sum();
    assert!(
        refetched <= (LEN as u64 - n) + 512 * KIB as u64,
        "after restart the origin sent {refetched} bytes for a resume from {n}: recorded bytes were re-downloaded"
    );
}

/// Bytes written just before a `kill -9` that no index row records would otherwise hold their
/// space forever (no eviction knows them): the next start deletes such files, and only those, in
/// the background once it serves.
#[test]
fn data_files_no_index_row_records_are_deleted_at_the_next_start() {
    const LEN: usize = MIB;
    let origin = Origin::start(&["--throttle", "262144"]);
    origin.put_file("kept.bin", &seeded_bytes(0xC7A6, 1000));
    let truth = seeded_bytes(0xC7A7, LEN);
    origin.put_file("lost.bin", &truth);
    let cache = tempfile::tempdir().expect("cache dir");
    let origins = vec![origin.origin_arg()];
    let files = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.join("data"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|shard| std::fs::read_dir(shard.path()).into_iter().flatten().flatten())
            .map(|f| f.path())
            .collect()
    };

    // `kept.bin` is recorded (a clean stop); `lost.bin` is being written, never recorded.
    let mut server = Server::start_with(Some(cache.path()), &origins, &[]);
    get(&server.stream_url(&origin, "kept.bin")).assert_complete("kept");
    server.proc().terminate(Duration::from_secs(10));
    let mut server = Server::start_with(Some(cache.path()), &origins, &["--sync-interval-ms", "3600000"]);
    let reader = BackgroundRead::start(&server.stream_url(&origin, "lost.bin"), &[]);
    let (status, _) = reader.head(Duration::from_secs(15));
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(15), "two data files on disk", || {
        files(cache.path()).len() == 2
    });
    server.kill9();

    let server = Server::start_with(Some(cache.path()), &origins, &[]);
    wait_until(Duration::from_secs(15), "the unrecorded file swept", || {
        files(cache.path()).len() == 1
    });
    let left = files(cache.path());
    assert_eq!(left.len(), 1, "only the recorded file is left: {left:?}");
    let r = get(&server.stream_url(&origin, "kept.bin"));
    r.assert_complete("kept after the restart");
    let r = get(&server.stream_url(&origin, "lost.bin"));
    r.assert_complete("lost after the restart");
    assert_bytes_eq("lost after the restart", &r.body, &truth);
}
