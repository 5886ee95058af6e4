//! The route a request names, parsed once from its path: the router dispatches on it, the
//! `request` span logs its [`label`](Route::label) and the metrics count it under its
//! [`family`](Route::family).
//!
//! One parse keeps the three from disagreeing: before, the router, the log label and the metrics
//! family each split the path their own way. The token is checked here too (in constant time), so
//! nothing downstream sees a path under a wrong token. A `Route` borrows its IDs from the path;
//! the path's form for remote URLs (`stream/SCHEME/HOST[:PORT]/PATH`) is read by
//! `crate::hls::route_remote`, next to the writer of that form.

use subtle::ConstantTimeEq;

use crate::telemetry::RouteFamily;

/// Where a request goes (SPEC §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `/healthz`, the one route without the token.
    Healthz,
    /// A path without the right token: `403`, and nothing else is learnt.
    Forbidden,
    /// `stream/SCHEME/HOST[:PORT]/PATH`: a remote resource; holds the whole path after the token.
    Stream(&'a str),
    /// `tracks/ID`: a catalog track.
    Track(&'a str),
    /// `api/tracks`.
    ApiTracks,
    /// `api/tracks/ID`.
    ApiTrack(&'a str),
    /// `api/stats`.
    ApiStats,
    /// `api/downloads`.
    ApiDownloads,
    /// `api/downloads/ID`.
    ApiDownload(&'a str),
    /// `api/downloads/ID/ACTION` (`pause`, `resume`; others are answered `404` by the handler).
    ApiDownloadAction(&'a str, &'a str),
    /// `api/network`.
    ApiNetwork,
    /// `api/prefetch`.
    ApiPrefetch,
    /// `api/resources`.
    ApiResources,
    /// `api/cache`: the cache's limit and totals; set the limit; clear the evictable cache.
    ApiCache,
    /// `api/cached?url=URL`: how much of one remote URL the cache holds.
    ApiCached,
    /// `metrics`: the Prometheus text.
    Metrics,
    /// The empty path under the token (`/TOKEN/` or `/TOKEN`): the dashboard.
    Dashboard,
    /// Under the token, but naming nothing: holds the path after the token, for the `404`.
    NotFound(&'a str),
}

impl<'a> Route<'a> {
    /// Parses a request path (without its query). Every route but `/healthz` is under `/TOKEN/`.
    pub(crate) fn parse(path: &'a str, token: &str) -> Self {
        if path == "/healthz" {
            return Self::Healthz;
        }
        let Some(rest) = strip_token(path, token) else {
            return Self::Forbidden;
        };
        // Up to five segments tell every route apart (a sixth only makes a longer unknown path).
        let mut segments = rest.split('/');
        let s = [(); 5].map(|()| segments.next());
        match s {
            [Some("stream"), ..] => Self::Stream(rest),
            [Some("tracks"), Some(id), None, ..] => Self::Track(id),
            [Some("api"), Some("tracks"), None, ..] => Self::ApiTracks,
            [Some("api"), Some("tracks"), Some(id), None, ..] => Self::ApiTrack(id),
            [Some("api"), Some("stats"), None, ..] => Self::ApiStats,
            [Some("api"), Some("downloads"), None, ..] => Self::ApiDownloads,
            [Some("api"), Some("downloads"), Some(id), None, ..] => Self::ApiDownload(id),
            [Some("api"), Some("downloads"), Some(id), Some(action), None] => Self::ApiDownloadAction(id, action),
            [Some("api"), Some("network"), None, ..] => Self::ApiNetwork,
            [Some("api"), Some("prefetch"), None, ..] => Self::ApiPrefetch,
            [Some("api"), Some("resources"), None, ..] => Self::ApiResources,
            [Some("api"), Some("cache"), None, ..] => Self::ApiCache,
            [Some("api"), Some("cached"), None, ..] => Self::ApiCached,
            [Some("metrics"), None, ..] => Self::Metrics,
            [Some(""), None, ..] => Self::Dashboard,
            _ => Self::NotFound(rest),
        }
    }

    /// The route as a fixed label fit for logs: IDs, the token and remote URLs (whose query
    /// strings may be signatures) never appear in it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Forbidden => "forbidden",
            Self::Stream(_) => "stream",
            Self::Track(_) => "tracks/:id",
            Self::ApiTracks => "api/tracks",
            Self::ApiTrack(_) => "api/tracks/:id",
            Self::ApiStats => "api/stats",
            Self::ApiDownloads => "api/downloads",
            Self::ApiDownload(_) => "api/downloads/:id",
            Self::ApiDownloadAction(..) => "api/downloads/:id/:action",
            Self::ApiNetwork => "api/network",
            Self::ApiPrefetch => "api/prefetch",
            Self::ApiResources => "api/resources",
            Self::ApiCache => "api/cache",
            Self::ApiCached => "api/cached",
            Self::Metrics => "metrics",
            Self::Dashboard => "dashboard",
            Self::NotFound(_) => "unknown",
        }
    }

    /// The family the metrics count the request under: the first segment after the token, so an
    /// unknown path under `api/` still counts as `api`.
    pub(crate) fn family(self) -> RouteFamily {
        match self {
            Self::Stream(_) => RouteFamily::Stream,
            Self::Track(_) => RouteFamily::Tracks,
            Self::ApiTracks
            | Self::ApiTrack(_)
            | Self::ApiStats
            | Self::ApiDownloads
            | Self::ApiDownload(_)
            | Self::ApiDownloadAction(..)
            | Self::ApiNetwork
            | Self::ApiPrefetch
            | Self::ApiResources
            | Self::ApiCache
            | Self::ApiCached => RouteFamily::Api,
            Self::Metrics => RouteFamily::Metrics,
            Self::Dashboard => RouteFamily::Dashboard,
            Self::NotFound(rest) => match rest.split('/').next() {
                Some("tracks") => RouteFamily::Tracks,
                Some("api") => RouteFamily::Api,
                Some("metrics") => RouteFamily::Metrics,
                Some("") => RouteFamily::Dashboard,
                _ => RouteFamily::Other,
            },
            Self::Healthz | Self::Forbidden => RouteFamily::Other,
        }
    }

    /// Whether a segment under the token is `.` or `..`, literally or percent-encoded: such a
    /// path is refused (`400`) whatever it names, so no request can walk out of its namespace.
    /// The fixed segments of a route are never dots, so looking at what it holds is enough.
    pub(crate) fn has_dot_segment(self) -> bool {
        match self {
            Self::Stream(rest) | Self::NotFound(rest) => any_dot_segment(rest),
            Self::Track(id) | Self::ApiTrack(id) | Self::ApiDownload(id) => any_dot_segment(id),
            Self::ApiDownloadAction(id, action) => any_dot_segment(id) || any_dot_segment(action),
            _ => false,
        }
    }
}

/// The part of `path` after `/TOKEN/`, if the token matches (constant time).
fn strip_token<'a>(path: &'a str, token: &str) -> Option<&'a str> {
    let rest = path.strip_prefix('/')?;
    let (given, rest) = rest.split_once('/').unwrap_or((rest, ""));
    bool::from(given.as_bytes().ct_eq(token.as_bytes())).then_some(rest)
}

/// Whether any segment of `path` is `.` or `..`, literally or percent-encoded.
fn any_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::ROUTES;

    const TOKEN: &str = "tok";

    fn parse(path: &str) -> Route<'_> {
        Route::parse(path, TOKEN)
    }

    #[test]
    fn token_must_match_exactly() {
        assert_eq!(strip_token("/abc/stream/x", "abc"), Some("stream/x"));
        assert_eq!(strip_token("/abc", "abc"), Some(""));
        assert_eq!(strip_token("/abd/stream", "abc"), None);
        assert_eq!(strip_token("/ab/stream", "abc"), None);
        assert_eq!(strip_token("/abcd/stream", "abc"), None);
        assert_eq!(strip_token("/", "abc"), None);
    }

    #[test]
    fn route_labels_hold_no_ids_tokens_or_urls() {
        assert_eq!(parse("/tok/stream/https/h/a").label(), "stream");
        assert_eq!(parse("/tok/tracks/song").label(), "tracks/:id");
        assert_eq!(
            parse("/tok/api/downloads/d1/pause").label(),
            "api/downloads/:id/:action"
        );
        assert_eq!(parse("/tok/").label(), "dashboard");
        assert_eq!(parse("/healthz").label(), "healthz");
        assert_eq!(parse("/wrong/tracks/x").label(), "forbidden");
    }

    /// Every route with its log label and metrics family, as the logs and the metrics have
    /// always spelled them (a harness outside this repository reads both).
    #[test]
    fn every_route_parses_with_its_label_and_family() {
        let cases: &[(&str, Route<'_>, &str, &str)] = &[
            ("/healthz", Route::Healthz, "healthz", "other"),
            ("/other/healthz", Route::Forbidden, "forbidden", "other"),
            ("/", Route::Forbidden, "forbidden", "other"),
            ("", Route::Forbidden, "forbidden", "other"),
            ("/to/api/stats", Route::Forbidden, "forbidden", "other"),
            ("/tok", Route::Dashboard, "dashboard", "dashboard"),
            ("/tok/", Route::Dashboard, "dashboard", "dashboard"),
            ("/tok//x", Route::NotFound("/x"), "unknown", "dashboard"),
            ("/tok/stream", Route::Stream("stream"), "stream", "stream"),
            (
                "/tok/stream/https/h:8/a/b.ts",
                Route::Stream("stream/https/h:8/a/b.ts"),
                "stream",
                "stream",
            ),
            ("/tok/tracks/t1", Route::Track("t1"), "tracks/:id", "tracks"),
            ("/tok/tracks/", Route::Track(""), "tracks/:id", "tracks"),
            ("/tok/tracks", Route::NotFound("tracks"), "unknown", "tracks"),
            ("/tok/tracks/a/b", Route::NotFound("tracks/a/b"), "unknown", "tracks"),
            ("/tok/api/tracks", Route::ApiTracks, "api/tracks", "api"),
            ("/tok/api/tracks/t1", Route::ApiTrack("t1"), "api/tracks/:id", "api"),
            ("/tok/api/stats", Route::ApiStats, "api/stats", "api"),
            ("/tok/api/cache", Route::ApiCache, "api/cache", "api"),
            ("/tok/api/cached", Route::ApiCached, "api/cached", "api"),
            ("/tok/api/downloads", Route::ApiDownloads, "api/downloads", "api"),
            (
                "/tok/api/downloads/d1",
                Route::ApiDownload("d1"),
                "api/downloads/:id",
                "api",
            ),
            (
                "/tok/api/downloads/d1/resume",
                Route::ApiDownloadAction("d1", "resume"),
                "api/downloads/:id/:action",
                "api",
            ),
            (
                "/tok/api/downloads/d1/pause/x",
                Route::NotFound("api/downloads/d1/pause/x"),
                "unknown",
                "api",
            ),
            ("/tok/api/network", Route::ApiNetwork, "api/network", "api"),
            ("/tok/api/prefetch", Route::ApiPrefetch, "api/prefetch", "api"),
            ("/tok/api/resources", Route::ApiResources, "api/resources", "api"),
            ("/tok/api/stats/x", Route::NotFound("api/stats/x"), "unknown", "api"),
            ("/tok/api", Route::NotFound("api"), "unknown", "api"),
            ("/tok/api/nope", Route::NotFound("api/nope"), "unknown", "api"),
            ("/tok/metrics", Route::Metrics, "metrics", "metrics"),
            ("/tok/metrics/x", Route::NotFound("metrics/x"), "unknown", "metrics"),
            ("/tok/healthz", Route::NotFound("healthz"), "unknown", "other"),
            ("/tok/elsewhere/a", Route::NotFound("elsewhere/a"), "unknown", "other"),
        ];
        for &(path, route, label, family) in cases {
            let parsed = parse(path);
            assert_eq!(parsed, route, "{path}");
            assert_eq!(parsed.label(), label, "{path}");
            assert_eq!(ROUTES[parsed.family() as usize], family, "{path}");
        }
    }

    #[test]
    fn dot_segments_are_found_in_any_spelling() {
        assert!(any_dot_segment("stream/http/h/../etc"));
        assert!(any_dot_segment("stream/http/h/%2e%2E/etc"));
        assert!(any_dot_segment("stream/http/h/.%2e/etc"));
        assert!(any_dot_segment("./x"));
        assert!(!any_dot_segment("stream/http/h/a..b/.hidden"));
    }

    #[test]
    fn dot_segments_anywhere_under_the_token_are_refused() {
        for path in [
            "/tok/stream/http/h/../etc",
            "/tok/tracks/..",
            "/tok/tracks/%2E",
            "/tok/api/tracks/..",
            "/tok/api/downloads/.",
            "/tok/api/downloads/d1/%2e%2e",
            "/tok/../x",
            "/tok/api/..",
            "/tok/api/tracks/../../x",
        ] {
            assert!(parse(path).has_dot_segment(), "{path}");
        }
        for path in [
            "/tok/",
            "/tok/tracks/a..b",
            "/tok/api/downloads/d1/pause",
            "/healthz",
            "/x/..",
        ] {
            assert!(!parse(path).has_dot_segment(), "{path}");
        }
    }
}
