//! HLS playlists rewritten so that a player fetches every URI they name through this server
//! (SPEC §7): variant streams, renditions, segments, `EXT-X-MAP`, keys — all become the local
//! `BASE stream/SCHEME/HOST[:PORT]/PATH?QUERY` form, resolved against the playlist's own remote
//! URL first, so absolute, root-relative and relative URIs are all handled alike.
//!
//! Why the rewrite is line-based and `m3u8-rs` only validates and classifies: `m3u8-rs` cannot
//! round-trip a playlist faithfully. Its writer emits tags in its own order (every `EXT-X-MEDIA`,
//! then every variant, then session data, ...), moves unknown master tags to the end, drops the
//! unknown tags that precede a media playlist's first segment, and re-serialises attribute lists.
//! A player must see the backend's playlist with only the URIs changed, so this module walks the
//! lines itself (RFC 8216 §4.1: a line is a tag, a comment, blank, or a URI) and rewrites only a
//! URI line or the quoted `URI` attribute of the tags that carry one; everything else is copied
//! byte for byte, in order. `m3u8-rs` decides whether the text is a playlist at all and whether
//! it is live (a media playlist without `EXT-X-ENDLIST`), which [`LiveTable`] uses to keep live
//! playlists no older than their target duration.
//!
//! The local URL form is defined here in both directions: [`local_url`] writes it (for the
//! rewriter and `Server::stream_url`), [`route_remote`] reads it (for the router), so what the
//! rewriter writes and what the router reads cannot drift apart; the property test maps every
//! rewritten URI back through `route_remote` and compares it with the original resolved URI.
//!
//! A URI on an origin that is not on the allow-list is left as it is (the player may fetch it
//! directly, the server never does) and logged with `warn`, once per rewrite.
//!
//! Before the rewrite, a master may be narrowed by the same line walk ([`retain`]): to the
//! renditions a download pinned ([`narrow`]), or to the variants within the current network's
//! bandwidth cap ([`cap_variants`], which judges each variant by what `m3u8-rs` parsed).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use url::Url;

use crate::cache::resource::Meta;
use crate::cache::Handle;
use crate::error::{Error, UpstreamCause, UpstreamError};

/// Largest playlist the server rewrites, in bytes (real ones are kilobytes; this bounds memory).
pub(crate) const MAX_PLAYLIST_BYTES: u64 = 8 * 1024 * 1024;

/// The media type served for every rewritten playlist (RFC 8216 §4).
pub(crate) const PLAYLIST_MIME: &str = "application/vnd.apple.mpegurl";

/// Tags whose quoted `URI` attribute names a resource (RFC 8216bis §4.4). Other tags, known or
/// not, are copied untouched.
const URI_TAGS: &[&str] = &[
    "EXT-X-MEDIA",
    "EXT-X-I-FRAME-STREAM-INF",
    "EXT-X-MAP",
    "EXT-X-KEY",
    "EXT-X-SESSION-KEY",
    "EXT-X-SESSION-DATA",
    "EXT-X-PART",
    "EXT-X-PRELOAD-HINT",
    "EXT-X-RENDITION-REPORT",
];

/// Whether a resource is a playlist: by the backend's (or catalog's) media type, or a `.m3u8`
/// path when the backend labels it as something else.
pub(crate) fn is_playlist(mime: Option<&str>, path: &str) -> bool {
    let by_type = mime.is_some_and(|m| {
        let essence = m.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(
            essence.as_str(),
            "application/vnd.apple.mpegurl" | "application/x-mpegurl" | "audio/mpegurl"
        )
    });
    by_type || path.to_ascii_lowercase().ends_with(".m3u8")
}

/// A playlist the backend sent, checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Checked<'a> {
    /// The playlist text.
    pub(crate) text: &'a str,
    /// How long a cached copy stays fresh: `None` for master and ended (`EXT-X-ENDLIST`) media
    /// playlists, which do not change; the target duration for a live one, which the backend
    /// keeps appending to.
    pub(crate) live_target: Option<Duration>,
    /// A master playlist (variant streams), rather than a media playlist (segments).
    pub(crate) master: bool,
}

/// Checks that `bytes` are a playlist (UTF-8, parsed by `m3u8-rs`) and classifies it.
pub(crate) fn check(bytes: &[u8]) -> Result<Checked<'_>, Error> {
    let bad = |why: &str| {
        Error::from(UpstreamError::protocol(format!(
            "the backend sent a bad playlist: {why}"
        )))
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let message = format!("the backend sent a bad playlist: not UTF-8: {e}");
        Error::from(UpstreamError::Protocol(UpstreamCause::new(message, e)))
    })?;
    let (live_target, master) = match m3u8_rs::parse_playlist_res(bytes) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(_)) => (None, true),
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) if p.end_list => (None, false),
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => (Some(Duration::from_secs(p.target_duration)), false),
        Err(_) => return Err(bad("it does not parse as an M3U8 playlist")),
    };
    Ok(Checked {
        text,
        live_target,
        master,
    })
}

/// Reads a whole resource of `generation` (at most `MAX_PLAYLIST_BYTES`), waiting for its
/// bytes like any response. Gives back the bytes, their description, and the handle.
pub(crate) async fn read_whole(
    handle: Handle,
    generation: u64,
    patience: Duration,
) -> Result<(Bytes, Meta, Handle), Arc<Error>> {
    let too_long = || {
        let message = format!("the playlist is larger than {} bytes", MAX_PLAYLIST_BYTES);
        UpstreamError::protocol(message).into()
    };
    handle
        .reader(generation, 0, None, patience)
        .read_to_end(MAX_PLAYLIST_BYTES, too_long)
        .await
}

/// The URL relative URIs in a playlist fetched as `requested` resolve against: where the backend
/// redirected to, if it did (as for a player following the redirect itself), else `requested`.
pub(crate) fn base_of(meta: &Meta, requested: &Url) -> Url {
    meta.location
        .as_deref()
        .and_then(|l| Url::parse(l).ok())
        .unwrap_or_else(|| requested.clone())
}

/// Rewrites every URI in `text` (the playlist fetched from `playlist`) to its local form under
/// `base`, when `allowed` says its origin may be fetched. Line order, line ends, tags, comments
/// and attribute lists are kept byte for byte.
pub(crate) fn rewrite(text: &str, playlist: &Url, base: &str, allowed: impl Fn(&Url) -> bool) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    let mut unrouted = Vec::new();
    let mut route = |uri: &str| -> Option<String> {
        let remote = playlist.join(uri).ok()?;
        if !matches!(remote.scheme(), "http" | "https") {
            // `data:`, `skd://` and the like are not fetched over HTTP: nothing to route.
            return None;
        }
        if !allowed(&remote) {
            unrouted.push(crate::fetch::redact(&remote));
            return None;
        }
        Some(local_url(base, &remote))
    };
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\r', '\n']);
        let end = &raw[line.len()..];
        if let Some(tag) = line.strip_prefix('#') {
            let name = tag.split(':').next().unwrap_or("");
            let attrs_at = 1 + name.len() + 1; // after `#NAME:`
            let routed = URI_TAGS
                .contains(&name)
                .then(|| line.get(attrs_at..))
                .flatten()
                .and_then(|attrs| {
                    let (start, end) = uri_attribute(attrs)?;
                    Some((attrs_at + start, attrs_at + end, route(&attrs[start..end])?))
                });
            match routed {
                Some((start, end, local)) => {
                    out.push_str(&line[..start]);
                    out.push_str(&local);
                    out.push_str(&line[end..]);
                }
                None => out.push_str(line),
            }
        } else if line.trim().is_empty() {
            out.push_str(line);
        } else {
            match route(line.trim()) {
                Some(local) => out.push_str(&local),
                None => out.push_str(line),
            }
        }
        out.push_str(end);
    }
    if let Some(first) = unrouted.first() {
        tracing::warn!(
            playlist = %crate::fetch::redact(playlist),
            count = unrouted.len(),
            %first,
            "the playlist names URIs on origins that are not allowed; they are left as they are",
        );
    }
    out
}

/// Drops from a master playlist the variant streams, I-frame streams and renditions whose media
/// playlist `keep` rejects — a downloaded master is offered with only what was downloaded, so a
/// player cannot switch to a rendition that is not there offline. Everything else is kept as is.
pub(crate) fn narrow(text: &str, playlist: &Url, keep: impl Fn(&Url) -> bool) -> String {
    retain(text, |listed| {
        playlist.join(listed.uri.trim()).map(|u| keep(&u)).unwrap_or(true)
    })
}

/// Drops from a master playlist the variant streams whose `BANDWIDTH` (peak bits per second, as
/// a download's `max_bandwidth` reads it) is above `cap`, and likewise the I-frame streams; of
/// each kind the lowest always stays, so a player is never left without a stream. This is how a
/// served master obeys the quality policy of the current network (SPEC §7). Renditions and every
/// other line are kept as they are; a text that does not parse as a master is returned unchanged.
pub(crate) fn cap_variants(text: &str, cap: u64) -> String {
    let Ok(master) = m3u8_rs::parse_master_playlist_res(text.as_bytes()) else {
        return text.to_string();
    };
    let lowest = |i_frame: bool| {
        let kind = master.variants.iter().filter(|v| v.is_i_frame == i_frame);
        kind.map(|v| v.bandwidth).min().unwrap_or(0)
    };
    // Within the cap, or the lowest of its kind when none is.
    let limits = [cap.max(lowest(false)), cap.max(lowest(true))];
    if master
        .variants
        .iter()
        .all(|v| v.bandwidth <= limits[usize::from(v.is_i_frame)])
    {
        return text.to_string();
    }
    retain(text, |listed| {
        // m3u8-rs lists both kinds of variant in the order of their tags; one that does not line
        // up with the text (a tag it could not read) is kept rather than judged blindly.
        match listed.variant.and_then(|i| master.variants.get(i)) {
            Some(v) if v.uri.trim() == listed.uri => v.bandwidth <= limits[usize::from(v.is_i_frame)],
            _ => true,
        }
    })
}

/// A stream a master playlist lists, as [`retain`] asks about it.
struct Listed<'a> {
    /// For an `EXT-X-STREAM-INF` or `EXT-X-I-FRAME-STREAM-INF`: its position among both kinds,
    /// in the order of the text; `None` for an `EXT-X-MEDIA` rendition.
    variant: Option<usize>,
    /// The URI it names, as written.
    uri: &'a str,
}

/// Copies a master playlist without the variant streams, I-frame streams and renditions `keep`
/// rejects (a variant stream goes with its tag lines and its URI line); every other line is
/// copied byte for byte.
fn retain(text: &str, mut keep: impl FnMut(Listed<'_>) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending: Option<(usize, String)> = None; // an EXT-X-STREAM-INF waiting for its URI line
    let mut variants = 0;
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\r', '\n']);
        if let Some((_, held)) = pending.as_mut() {
            if line.trim().is_empty() || line.starts_with('#') {
                held.push_str(raw);
                continue;
            }
            let (variant, held) = pending.take().unwrap_or_default();
            let uri = line.trim();
            if keep(Listed {
                variant: Some(variant),
                uri,
            }) {
                out.push_str(&held);
                out.push_str(raw);
            }
            continue;
        }
        if let Some(tag) = line.strip_prefix('#') {
            let name = tag.split(':').next().unwrap_or("");
            let variant = match name {
                "EXT-X-STREAM-INF" => {
                    pending = Some((variants, raw.to_string()));
                    variants += 1;
                    continue;
                }
                "EXT-X-I-FRAME-STREAM-INF" => {
                    variants += 1;
                    Some(variants - 1)
                }
                "EXT-X-MEDIA" => None,
                _ => {
                    out.push_str(raw);
                    continue;
                }
            };
            let attrs = line.get(name.len() + 2..).unwrap_or("");
            if let Some((start, end)) = uri_attribute(attrs) {
                if !keep(Listed {
                    variant,
                    uri: &attrs[start..end],
                }) {
                    continue;
                }
            }
        }
        out.push_str(raw);
    }
    if let Some((_, held)) = pending {
        out.push_str(&held);
    }
    out
}

/// The byte span (without quotes) of the quoted `URI` attribute in an attribute list, if any.
/// Quoted strings cannot contain `"` (RFC 8216 §4.2), so a comma inside one is not a separator.
fn uri_attribute(list: &str) -> Option<(usize, usize)> {
    let bytes = list.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b',' {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'=' {
            let name = list[name_start..i].trim();
            i += 1;
            if bytes.get(i) == Some(&b'"') {
                let start = i + 1;
                let end = start + list[start..].find('"')?;
                if name == "URI" {
                    return Some((start, end));
                }
                i = end + 1;
            }
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
        }
        i += 1;
    }
    None
}

/// The local URL under `base` (`http://127.0.0.1:PORT/TOKEN/`) that serves `remote` (an http(s)
/// URL with a host) through the cache.
pub(crate) fn local_url(base: &str, remote: &Url) -> String {
    let mut out = format!(
        "{base}stream/{}/{}",
        remote.scheme(),
        remote.host_str().unwrap_or_default()
    );
    if let Some(port) = remote.port() {
        let _ = write!(out, ":{port}");
    }
    out.push_str(remote.path());
    if let Some(query) = remote.query() {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = remote.fragment() {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// The remote URL text named by a stream route: `rest` is `stream/SCHEME/HOST[:PORT]/PATH`
/// (the request path after the token), `query` the request's query string.
pub(crate) fn route_remote(rest: &str, query: Option<&str>) -> Result<String, Error> {
    let mut parts = rest.splitn(4, '/');
    let (_, scheme, host, path) = (parts.next(), parts.next(), parts.next(), parts.next());
    let (Some(scheme), Some(host)) = (scheme.filter(|s| !s.is_empty()), host.filter(|h| !h.is_empty())) else {
        return Err(Error::invalid("expected /stream/SCHEME/HOST[:PORT]/PATH"));
    };
    if !matches!(scheme, "http" | "https") || host.contains(['@', '\\']) {
        return Err(Error::invalid(format!("bad stream target {scheme}://{host}")));
    }
    let mut text = format!("{scheme}://{host}/{}", path.unwrap_or(""));
    if let Some(q) = query {
        text.push('?');
        text.push_str(q);
    }
    Ok(text)
}

/// When the cached copies of live playlists were fetched, so that none is served once it is
/// older than its target duration (RFC 8216 §6.2.2: the server adds a segment about that often).
///
/// An entry belongs to one generation of a cached resource: bytes dropped and fetched again are
/// a new generation and need a new entry. A cached live playlist without an entry (one fetched
/// before a restart, say) has an unknown age and counts as stale.
#[derive(Debug, Default)]
pub(crate) struct LiveTable {
    /// Cache key → (generation, fetched no earlier than, target duration).
    fetched: Mutex<HashMap<String, (u64, Instant, Duration)>>,
}

impl LiveTable {
    /// Records that `key`'s bytes of `generation` were fetched no earlier than `at`, and forgets
    /// entries that have expired (an expired entry means the same as none).
    pub(crate) fn record(&self, key: &str, generation: u64, at: Instant, target: Duration) {
        let mut table = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        table.retain(|_, (_, t, ttl)| now.saturating_duration_since(*t) <= *ttl);
        let entry = table.entry(key.to_string()).or_insert((generation, at, target));
        // Keep the earlier time for the same bytes: it is the conservative age.
        if entry.0 != generation || at < entry.1 {
            *entry = (generation, at, target);
        }
    }

    /// Whether `key`'s bytes of `generation` are at most `target` old at `now`.
    pub(crate) fn is_fresh(&self, key: &str, generation: u64, target: Duration, now: Instant) -> bool {
        let table = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        table
            .get(key)
            .is_some_and(|(g, at, _)| *g == generation && now.saturating_duration_since(*at) <= target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASE: &str = "http://127.0.0.1:9/tok/";

    fn playlist_url() -> Url {
        Url::parse("http://cdn.test:8080/media/hls/master.m3u8?sig=abc").unwrap()
    }

    fn allowed(url: &Url) -> bool {
        url.host_str() == Some("cdn.test") || url.host_str() == Some("other.test")
    }

    /// The remote URL a local URL under `base` serves (the inverse of [`local_url`]), if it is a
    /// stream route: parsed as a player would, then handed to the router's [`route_remote`].
    fn remote_url(base: &str, local: &str) -> Option<Url> {
        let (base, local) = (Url::parse(base).ok()?, Url::parse(local).ok()?);
        if local.origin() != base.origin() {
            return None;
        }
        let rest = local.path().strip_prefix(base.path())?;
        let mut url = Url::parse(&route_remote(rest, local.query()).ok()?).ok()?;
        url.set_fragment(local.fragment());
        Some(url)
    }

    fn rw(text: &str) -> String {
        rewrite(text, &playlist_url(), BASE, allowed)
    }

    #[test]
    fn variant_streams_are_rewritten_absolute_root_relative_and_relative() {
        let text = "#EXTM3U\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS=\"mp4a.40.2\"\n\
                    http://other.test/a/low.m3u8\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=128000\n\
                    /media/hls/mid.m3u8?x=1&y=2\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=256000\n\
                    high/index.m3u8\n";
        let want = "#EXTM3U\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS=\"mp4a.40.2\"\n\
                    http://127.0.0.1:9/tok/stream/http/other.test/a/low.m3u8\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=128000\n\
                    http://127.0.0.1:9/tok/stream/http/cdn.test:8080/media/hls/mid.m3u8?x=1&y=2\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=256000\n\
                    http://127.0.0.1:9/tok/stream/http/cdn.test:8080/media/hls/high/index.m3u8\n";
        assert_eq!(rw(text), want);
    }

    #[test]
    fn uri_attributes_of_every_uri_tag_are_rewritten() {
        for tag in URI_TAGS {
            let line = format!("#{tag}:TYPE=AUDIO,NAME=\"a,URI=x\",URI=\"r/x.bin?k=1\",DEFAULT=YES\n");
            let want = format!(
                "#{tag}:TYPE=AUDIO,NAME=\"a,URI=x\",URI=\"{BASE}stream/http/cdn.test:8080/media/hls/r/x.bin?k=1\",DEFAULT=YES\n"
            );
            assert_eq!(rw(&line), want, "{tag}");
        }
    }

    #[test]
    fn keys_and_maps_in_a_media_playlist() {
        let text = "#EXTM3U\r\n\
                    #EXT-X-TARGETDURATION:2\r\n\
                    #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/k1\",IV=0x1234\r\n\
                    #EXT-X-MAP:URI=\"init.mp4\"\r\n\
                    #EXTINF:2.0,\r\n\
                    seg0.m4s\r\n\
                    #EXT-X-KEY:METHOD=NONE\r\n\
                    #EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"skd://key-id\"\r\n\
                    #EXT-X-ENDLIST\r\n";
        let want = "#EXTM3U\r\n\
                    #EXT-X-TARGETDURATION:2\r\n\
                    #EXT-X-KEY:METHOD=AES-128,URI=\"http://127.0.0.1:9/tok/stream/http/cdn.test:8080/keys/k1\",IV=0x1234\r\n\
                    #EXT-X-MAP:URI=\"http://127.0.0.1:9/tok/stream/http/cdn.test:8080/media/hls/init.mp4\"\r\n\
                    #EXTINF:2.0,\r\n\
                    http://127.0.0.1:9/tok/stream/http/cdn.test:8080/media/hls/seg0.m4s\r\n\
                    #EXT-X-KEY:METHOD=NONE\r\n\
                    #EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"skd://key-id\"\r\n\
                    #EXT-X-ENDLIST\r\n";
        assert_eq!(rw(text), want);
    }

    #[test]
    fn byte_range_segments_keep_their_ranges() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-BYTERANGE:1000@0\n#EXTINF:2,\nall.ts\n\
                    #EXT-X-BYTERANGE:1200\n#EXTINF:2,\nall.ts\n#EXT-X-MAP:URI=\"all.mp4\",BYTERANGE=\"700@0\"\n";
        let local = format!("{BASE}stream/http/cdn.test:8080/media/hls/all.ts");
        let want = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-BYTERANGE:1000@0\n#EXTINF:2,\n{local}\n\
             #EXT-X-BYTERANGE:1200\n#EXTINF:2,\n{local}\n\
             #EXT-X-MAP:URI=\"{BASE}stream/http/cdn.test:8080/media/hls/all.mp4\",BYTERANGE=\"700@0\"\n"
        );
        assert_eq!(rw(text), want);
    }

    #[test]
    fn unknown_tags_comments_and_foreign_origins_pass_through() {
        let text = "#EXTM3U\n# a comment with URI=\"x\"\n#EXT-X-VENDOR-THING:URI=\"y\"\n\n\
                    #EXTINF:2,title, with comma\nhttps://evil.test/seg.ts\ndata:text/plain,hi\n\
                    #EXT-X-KEY:METHOD=AES-128,URI=\"https://evil.test/key\"\nno-final-newline.ts";
        let want = "#EXTM3U\n# a comment with URI=\"x\"\n#EXT-X-VENDOR-THING:URI=\"y\"\n\n\
                    #EXTINF:2,title, with comma\nhttps://evil.test/seg.ts\ndata:text/plain,hi\n\
                    #EXT-X-KEY:METHOD=AES-128,URI=\"https://evil.test/key\"\n\
                    http://127.0.0.1:9/tok/stream/http/cdn.test:8080/media/hls/no-final-newline.ts";
        assert_eq!(rw(text), want);
    }

    #[test]
    fn route_form_round_trips_and_matches_the_router() {
        for remote in [
            "http://cdn.test/",
            "https://cdn.test:8443/a/b%20c.ts?x=%2F&y",
            "http://other.test:80/p",
            "http://cdn.test/a#frag",
        ] {
            let remote = Url::parse(remote).unwrap();
            let local = local_url(BASE, &remote);
            assert_eq!(remote_url(BASE, &local), Some(remote), "{local}");
        }
        assert_eq!(
            local_url(BASE, &Url::parse("http://cdn.test:80/x").unwrap()),
            format!("{BASE}stream/http/cdn.test/x")
        );
        assert_eq!(remote_url(BASE, "http://elsewhere/tok/stream/http/cdn.test/x"), None);
        assert!(route_remote("stream/ftp/cdn.test/x", None).is_err());
        assert!(route_remote("stream/http/user@cdn.test/x", None).is_err());
        assert!(route_remote("stream/http", None).is_err());
    }

    #[test]
    fn playlists_are_recognised_by_type_or_extension() {
        assert!(is_playlist(Some("application/vnd.apple.mpegurl"), "/x"));
        assert!(is_playlist(Some("Application/X-MpegURL; charset=utf-8"), "/x"));
        assert!(is_playlist(Some("audio/mpegurl"), "/x"));
        assert!(is_playlist(Some("text/plain"), "/a/B.M3U8"));
        assert!(!is_playlist(Some("video/mp2t"), "/a/seg.ts"));
        assert!(!is_playlist(None, "/a/m3u8.ts"));
    }

    #[test]
    fn live_playlists_are_told_apart() {
        let target = |bytes: &[u8]| check(bytes).map(|c| c.live_target);
        let master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n";
        assert_eq!(target(master).unwrap(), None);
        let vod = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(target(vod).unwrap(), None);
        let live = b"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:2,\ns.ts\n";
        assert_eq!(target(live).unwrap(), Some(Duration::from_secs(3)));
        assert_eq!(check(live).unwrap().text, std::str::from_utf8(live).unwrap());
        assert!(check(b"<html>not a playlist</html>").is_err());
        assert!(check(b"#EXTM3U\n\xff\n").is_err());
    }

    #[test]
    fn live_entries_expire_and_belong_to_one_generation() {
        let table = LiveTable::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(2);
        assert!(!table.is_fresh("k", 0, ttl, t0), "unknown age is stale");
        table.record("k", 0, t0, ttl);
        assert!(table.is_fresh("k", 0, ttl, t0 + Duration::from_secs(1)));
        assert!(table.is_fresh("k", 0, ttl, t0 + ttl));
        assert!(!table.is_fresh("k", 0, ttl, t0 + ttl + Duration::from_millis(1)));
        assert!(!table.is_fresh("k", 1, ttl, t0), "another generation's bytes");
        table.record("k", 0, t0 + Duration::from_secs(1), ttl);
        assert!(
            !table.is_fresh("k", 0, ttl, t0 + Duration::from_millis(2500)),
            "the earlier time is kept"
        );
        table.record("k", 1, t0 + Duration::from_secs(1), ttl);
        assert!(table.is_fresh("k", 1, ttl, t0 + Duration::from_millis(2500)));
    }

    /// A URI as playlists write them: relative, root-relative, parent-relative or absolute (on an
    /// allowed origin or not), with or without a query.
    fn uri_strategy() -> impl Strategy<Value = String> {
        let seg = "[a-zA-Z0-9_~-]{1,8}";
        let path = prop::collection::vec(seg, 1..4).prop_map(|v| v.join("/"));
        let query = prop::option::of("[a-z0-9]{1,5}=[a-zA-Z0-9%_.-]{0,8}(&[a-z]{1,3}=[0-9]{1,3})?");
        let prefix = prop_oneof![
            Just(String::new()),
            Just("/".to_string()),
            Just("../".to_string()),
            Just("http://cdn.test:8080/".to_string()),
            Just("https://other.test/".to_string()),
            Just("https://evil.test/".to_string()),
        ];
        (prefix, path, query).prop_map(|(p, path, q)| match q {
            Some(q) => format!("{p}{path}.ts?{q}"),
            None => format!("{p}{path}.m3u8"),
        })
    }

    /// One playlist line: `(text, the URI it names if any)`.
    fn line_strategy() -> impl Strategy<Value = (String, Option<String>)> {
        prop_oneof![
            uri_strategy().prop_map(|u| (u.clone(), Some(u))),
            (prop::sample::select(URI_TAGS), uri_strategy())
                .prop_map(|(t, u)| (format!("#{t}:TYPE=AUDIO,NAME=\"n, m\",URI=\"{u}\",X=1"), Some(u))),
            Just(("#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"a,b\"".to_string(), None)),
            Just(("#EXTINF:2.000,".to_string(), None)),
            Just(("#EXT-X-BYTERANGE:100@200".to_string(), None)),
            Just(("#EXT-X-KEY:METHOD=NONE".to_string(), None)),
            // Tags this module does not know keep even a `URI` attribute as it is.
            "#EXT-X-ZZ[A-Z]{0,8}(:(URI|[A-Z]{1,5})=\"[a-z/.]{0,6}\")?".prop_map(|t| (t, None)),
            "# [ -~]{0,20}".prop_map(|c| (c, None)),
            Just((String::new(), None)),
        ]
    }

    proptest! {
        #[test]
        fn every_uri_is_mapped_and_maps_back(lines in prop::collection::vec(line_strategy(), 0..40), crlf: bool) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = String::from("#EXTM3U");
            text.push_str(end);
            for (line, _) in &lines {
                text.push_str(line);
                text.push_str(end);
            }
            let out = rw(&text);
            let out_lines: Vec<&str> = out.split(end).collect();
            let in_lines: Vec<&str> = text.split(end).collect();
            prop_assert_eq!(out_lines.len(), in_lines.len());
            prop_assert_eq!(out_lines[0], "#EXTM3U");
            for ((line, uri), got) in lines.iter().zip(&out_lines[1..]) {
                let Some(uri) = uri else {
                    prop_assert_eq!(got, line);
                    continue;
                };
                let resolved = playlist_url().join(uri).unwrap();
                let named = if let Some(tag) = line.strip_prefix('#') {
                    let name = tag.split(':').next().unwrap();
                    prop_assert!(got.starts_with(&format!("#{name}:TYPE=AUDIO,NAME=\"n, m\",URI=\"")), "{}", got);
                    prop_assert!(got.ends_with("\",X=1"), "{}", got);
                    let start = format!("#{name}:TYPE=AUDIO,NAME=\"n, m\",URI=\"").len();
                    got[start..got.len() - "\",X=1".len()].to_string()
                } else {
                    got.to_string()
                };
                if allowed(&resolved) {
                    prop_assert!(named.starts_with(&format!("{BASE}stream/")), "{}", named);
                    prop_assert_eq!(remote_url(BASE, &named), Some(resolved));
                } else {
                    prop_assert_eq!(named, uri.clone());
                }
            }
        }
    }

    const LADDER: &str = "#EXTM3U\n#EXT-X-VERSION:4\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",DEFAULT=YES,URI=\"en/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=256000,AVERAGE-BANDWIDTH=200000,AUDIO=\"a\"\nhi/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=64000,AUDIO=\"a\"\nlo/index.m3u8?sig=1\n\
#EXT-X-SESSION-DATA:DATA-ID=\"x\",VALUE=\"y\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=128000,AUDIO=\"a\"\r\n/m/mid/index.m3u8\r\n\
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"if-hi.m3u8\"\n\
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=20000,URI=\"if-lo.m3u8\"\n";

    /// The variant and I-frame URIs a capped master still offers, as m3u8-rs reads them.
    fn offered(cap: u64) -> Vec<(bool, u64, String)> {
        let text = cap_variants(LADDER, cap);
        let master = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("still a master playlist");
        assert_eq!(master.alternatives.len(), 1, "renditions stay: {text}");
        assert!(
            text.contains("#EXT-X-SESSION-DATA:DATA-ID=\"x\""),
            "other tags stay: {text}"
        );
        master
            .variants
            .iter()
            .map(|v| (v.is_i_frame, v.bandwidth, v.uri.clone()))
            .collect()
    }

    #[test]
    fn a_cap_keeps_the_variants_within_it() {
        assert_eq!(
            offered(128_000),
            vec![
                (false, 64_000, "lo/index.m3u8?sig=1".to_string()),
                (false, 128_000, "/m/mid/index.m3u8".to_string()),
                (true, 90_000, "if-hi.m3u8".to_string()),
                (true, 20_000, "if-lo.m3u8".to_string()),
            ]
        );
        assert_eq!(
            offered(80_000),
            vec![
                (false, 64_000, "lo/index.m3u8?sig=1".to_string()),
                (true, 20_000, "if-lo.m3u8".to_string()),
            ]
        );
    }

    #[test]
    fn a_cap_under_every_variant_keeps_the_lowest_of_each_kind() {
        assert_eq!(
            offered(0),
            vec![
                (false, 64_000, "lo/index.m3u8?sig=1".to_string()),
                (true, 20_000, "if-lo.m3u8".to_string()),
            ]
        );
    }

    #[test]
    fn a_cap_above_every_variant_changes_nothing() {
        assert_eq!(cap_variants(LADDER, 256_000), LADDER);
        assert_eq!(cap_variants(LADDER, u64::MAX), LADDER);
        let media = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(cap_variants(media, 0), media, "not a master: unchanged");
    }

    #[test]
    fn variants_are_judged_one_by_one_even_when_they_share_a_uri() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000\na.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS=\"ec-3\"\na.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=900000\n\nb.m3u8\n";
        assert_eq!(
            cap_variants(text, 100_000),
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000\na.m3u8\n"
        );
    }

    #[test]
    fn narrowing_keeps_only_the_downloaded_renditions() {
        let master = "#EXTM3U\n#EXT-X-VERSION:3\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"en/index.m3u8\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"fr\",URI=\"fr/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=64000\nlo/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=256000\n\nhi/index.m3u8\n\
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1000,URI=\"iframes.m3u8\"\n";
        let base = Url::parse("http://h/m/master.m3u8").unwrap();
        let downloaded = ["http://h/m/lo/index.m3u8", "http://h/m/en/index.m3u8"];
        let out = narrow(master, &base, |u| downloaded.contains(&u.as_str()));
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:3\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"en/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=64000\nlo/index.m3u8\n"
        );
        assert_eq!(narrow(master, &base, |_| true), master);
    }
}
