//! The README's "main job": `streamer serve` with no `--origin` runs the built-in demo backend,
//! registers its catalog, and real media tools play from it. ffprobe must read each track's
//! duration through the server (within 0.1 s of the catalog), ffmpeg must seek 30 s in and decode,
//! and every track's bytes must match the catalog's SHA-256 and size.

use std::process::{Command, Stdio};

use integration_tests::*;
use serde_json::Value;

/// The demo catalog entry for each track: from the track JSON when it carries `duration_secs`,
/// else from the demo backend's own `catalog.json` (served next to the tracks).
fn catalog_entry(track: &Value) -> Value {
    if track.get("duration_secs").is_some_and(Value::is_number) {
        return track.clone();
    }
    let id = json_str(track, "id");
    let url = json_str(track, "url");
    let origin_end = url
        .match_indices('/')
        .nth(2)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("track {id}: url {url:?} has no path"));
    let catalog = get(&format!("{}/catalog.json", &url[..origin_end]));
    assert_eq!(
        catalog.status, 200,
        "track {id} has no duration_secs and the demo backend serves no catalog.json"
    );
    let entries = catalog.json();
    entries
        .as_array()
        .expect("catalog.json is an array")
        .iter()
        .find(|e| e.get("id").and_then(Value::as_str) == Some(id))
        .unwrap_or_else(|| panic!("track {id} not in the demo catalog.json: {entries}"))
        .clone()
}

fn ffprobe_duration(url: &str) -> f64 {
    let out = Command::new(require_tool("ffprobe"))
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe printed no duration for {url}: {text:?}"))
}

#[test]
fn demo_catalog_plays_with_ffprobe_and_ffmpeg() {
    require_tool("ffprobe");
    require_tool("ffmpeg");
    let server = Server::demo();
    let tracks = server.api_get("tracks");
    let tracks = tracks.as_array().expect("api/tracks is a JSON array");
    assert!(
        tracks.len() >= 3,
        "the demo catalog has fewer than 3 tracks: {tracks:?}"
    );

    let mut longest: Option<(String, f64)> = None;
    for track in tracks {
        let id = json_str(track, "id").to_string();
        let entry = catalog_entry(track);
        let want = entry["duration_secs"]
            .as_f64()
            .unwrap_or_else(|| panic!("track {id}: no numeric duration_secs in {entry}"));
        let url = server.track_url(&id);

        let body = get(&url);
        assert_eq!(body.status, 200, "GET tracks/{id}");
        body.assert_complete(&format!("tracks/{id}"));
        if let Some(size) = entry.get("size").and_then(Value::as_u64) {
            assert_eq!(body.body.len() as u64, size, "tracks/{id} size");
        }
        if let Some(sha) = entry.get("sha256").and_then(Value::as_str) {
            assert_eq!(sha256_hex(&body.body), sha.to_ascii_lowercase(), "tracks/{id} sha256");
        }

        let got = ffprobe_duration(&url);
        assert!(
            (got - want).abs() <= 0.1,
            "track {id}: ffprobe says {got} s, catalog says {want} s"
        );
        if longest.as_ref().is_none_or(|(_, d)| want > *d) {
            longest = Some((id, want));
        }
    }

    let (id, duration) = longest.expect("at least one track");
    assert!(
        duration >= 32.0,
        "no demo track is long enough to seek 30 s and decode 2 s (longest {duration} s)"
    );
    let url = server.track_url(&id);
    let out = Command::new(require_tool("ffmpeg"))
        .args([
            "-nostdin", "-v", "error", "-ss", "30", "-i", &url, "-t", "2", "-f", "null", "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg -ss 30 on tracks/{id} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let health = get(&format!("{}healthz", server.root_url()));
    assert_eq!(health.status, 200);
}
