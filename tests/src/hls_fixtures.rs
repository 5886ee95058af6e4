//! HLS fixtures, generated at test time with ffmpeg (a sine wave, 2 s segments) into a backend's
//! directory so nothing binary is checked in, and identical whichever backend serves them (the dev
//! origin, nginx). Also what the HLS tests share to read playlists and play them.
//!
//! Layout under the directory:
//! - `hls/low/`, `hls/high/`: MPEG-TS renditions at 48 and 128 kb/s (`index.m3u8`, `segN.ts`);
//! - `hls/cmaf/`: an fMP4/CMAF rendition (`EXT-X-MAP` `init.mp4`, `segN.m4s`);
//! - `hls/single/`: one `index.ts` addressed with `EXT-X-BYTERANGE`;
//! - [`MASTER`]: the TS variants, one absolute (naming the serving backend), one root-relative, one
//!   relative with a query string; [`CMAF_MASTER`]: the fMP4 variant, relative;
//! - [`RELATIVE_MASTER`]: the TS variants, all relative (`low/index.m3u8`), for redirect tests.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::programs::{ffmpeg_in, require_tool};

/// The TS master (mixed URI forms), as a path on the backend.
pub const MASTER: &str = "hls/master.m3u8";
/// The fMP4 master, as a path on the backend.
pub const CMAF_MASTER: &str = "hls/cmaf/master.m3u8";
/// A master naming the TS variants only by relative URIs, as a path on the backend.
pub const RELATIVE_MASTER: &str = "hls/relative.m3u8";

/// Encodes 8 s of a 440 Hz sine as AAC into an HLS rendition in `dir/name/` (playlist
/// `index.m3u8`), with 2 s segments and the given extra muxer options.
fn rendition(dir: &Path, name: &str, bitrate: &str, extra: &[&str]) {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("create rendition dir");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=8",
        "-c:a",
        "aac",
        "-b:a",
        bitrate,
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_list_size",
        "0",
        "-hls_playlist_type",
        "vod",
    ];
    args.extend_from_slice(extra);
    args.push("index.m3u8");
    ffmpeg_in(&dir, &args);
}

/// ffmpeg's HLS muxer options for an fMP4/CMAF rendition: `init.mp4` and `seg%d.m4s`.
pub const FMP4_SEGMENTS: &[&str] = &[
    "-hls_segment_type",
    "fmp4",
    "-hls_fmp4_init_filename",
    "init.mp4",
    "-hls_segment_filename",
    "seg%d.m4s",
];

/// Writes the fixtures into `dir`, which a backend serves at `base_url` (with a trailing slash;
/// the absolute variant URI names it). Returns the masters a player is given: [`MASTER`] and
/// [`CMAF_MASTER`].
pub fn generate(dir: &Path, base_url: &str) -> Vec<&'static str> {
    assert!(base_url.ends_with('/'), "base URL {base_url:?} must end with a slash");
    rendition(dir, "hls/low", "48k", &["-hls_segment_filename", "seg%d.ts"]);
    rendition(dir, "hls/high", "128k", &["-hls_segment_filename", "seg%d.ts"]);
    rendition(dir, "hls/cmaf", "64k", FMP4_SEGMENTS);
    rendition(dir, "hls/single", "64k", &["-hls_flags", "single_file"]);
    let master = |low: &str, high: &str, single: &str| {
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=60000,CODECS=\"mp4a.40.2\"\n{low}\n\
             #EXT-X-STREAM-INF:BANDWIDTH=150000,CODECS=\"mp4a.40.2\"\n{high}\n\
             #EXT-X-STREAM-INF:BANDWIDTH=90000,CODECS=\"mp4a.40.2\"\n{single}\n"
        )
    };
    // One variant absolute, one root-relative, one relative with a query string.
    let mixed = master(
        &format!("{base_url}hls/low/index.m3u8"),
        "/hls/high/index.m3u8",
        "single/index.m3u8?variant=single",
    );
    std::fs::write(dir.join(MASTER), mixed).expect("write master playlist");
    let relative = master("low/index.m3u8", "high/index.m3u8", "single/index.m3u8");
    std::fs::write(dir.join(RELATIVE_MASTER), relative).expect("write relative master playlist");
    let cmaf = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=80000,CODECS=\"mp4a.40.2\"\nindex.m3u8\n";
    std::fs::write(dir.join(CMAF_MASTER), cmaf).expect("write fMP4 master playlist");
    vec![MASTER, CMAF_MASTER]
}

/// Every URI a playlist names: URI lines and quoted `URI` attributes.
pub fn uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            out.push(line.to_string());
        } else if let Some((_, rest)) = line.split_once("URI=\"") {
            let end = rest
                .find('"')
                .unwrap_or_else(|| panic!("unterminated URI attribute: {line}"));
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// `ffmpeg -i URL -c copy -f null -`: the whole presentation is read, remuxed and discarded.
#[track_caller]
pub fn ffmpeg_plays(url: &str) {
    let out = Command::new(require_tool("ffmpeg"))
        .args(["-v", "error", "-nostdin", "-i", url, "-c", "copy", "-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not play {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `dir` as a backend path (`/a/b.ts`).
pub fn served_paths(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read fixture dir") {
            let path = entry.expect("fixture dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.insert(format!("/{}", rel.display()));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}
