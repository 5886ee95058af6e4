//! The JSON control API: catalog tracks, downloads, network state, prefetch, statistics (also as
//! Prometheus metrics), the cache's resources, its limit and clearing.
//!
//! Handlers parse and validate, make one call on the engine, and answer JSON; every failure is a
//! 4xx/5xx with `{"error": "..."}` that says what was wrong.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::response::{self, Body};
use super::RequestBody;
use crate::catalog::TrackSpec;
use crate::download::{DownloadTarget, NetworkState, VariantChoice};
use crate::error::Error;
use crate::shared::Inner;

/// Largest JSON request body accepted.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// `/api/tracks` and `/api/tracks/ID`.
pub(crate) async fn tracks(inner: &Arc<Inner>, req: Request<RequestBody>, id: Option<&str>) -> Response<Body> {
    match (req.method().clone(), id) {
        (Method::GET, None) => response::json(StatusCode::OK, &inner.tracks()),
        (Method::GET, Some(id)) => match inner.track(id) {
            Ok(info) => response::json(StatusCode::OK, &info),
            Err(e) => error(&e),
        },
        (Method::DELETE, Some(id)) => match inner.remove_track(id).await {
            Ok(()) => response::json(StatusCode::OK, &serde_json::json!({ "id": id, "deleted": true })),
            Err(e) => error(&e),
        },
        (Method::PUT, Some(id)) => {
            let spec: TrackSpec = match read_json(req).await {
                Ok(spec) => spec,
                Err(e) => return error(&e),
            };
            match inner.put_track(id, spec).await {
                Ok(info) => response::json(StatusCode::OK, &info),
                Err(e) => error(&e),
            }
        }
        (_, None) => method_not_allowed("GET"),
        (_, Some(_)) => method_not_allowed("GET, PUT, DELETE"),
    }
}

/// The body of `POST /api/downloads`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadBody {
    track: Option<String>,
    url: Option<String>,
    #[serde(default)]
    priority: i64,
    /// For an HLS URL: `"lowest"`, `"highest"`, `"middle"`, `{"max_bandwidth": N}` or `"max:N"`
    /// (default: the middle); see [`VariantChoice`].
    variant: Option<VariantChoice>,
    /// The app's own metadata, kept with the download.
    data: Option<String>,
}

/// The body of `PATCH /api/downloads/ID`: the app data to keep, a string or `null` (which
/// removes it). The field is required, so `{}` is an error rather than a silent removal: absent
/// it stays `None`, while `null` is `Some(None)`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadPatch {
    #[serde(default, deserialize_with = "present")]
    data: Option<Option<String>>,
}

/// A field that is present, `null` or not.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// The body of `PUT /api/cache`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheLimit {
    max_bytes: u64,
}

/// The body of `POST /api/prefetch`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefetchBody {
    tracks: Vec<String>,
    bytes: Option<u64>,
}

/// `/api/downloads`, `/api/downloads/ID` and `/api/downloads/ID/(pause|resume)`.
pub(crate) async fn downloads(
    inner: &Arc<Inner>,
    req: Request<RequestBody>,
    id: Option<&str>,
    action: Option<&str>,
) -> Response<Body> {
    let downloader = &inner.downloader();
    let method = req.method().clone();
    if method == Method::GET {
        // Files may have vanished since the last look (Android trims `cacheDir`): a download
        // whose bytes are gone is listed as queued again, never as completed.
        downloader.check_completed().await;
    }
    let result = match (method, id, action) {
        (Method::GET, None, None) => return response::json(StatusCode::OK, &downloader.list()),
        (Method::POST, None, None) => {
            let body: DownloadBody = match read_json(req).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let target = match (body.track, body.url, body.variant) {
                (Some(track), None, None) => DownloadTarget::Track(track),
                (None, Some(url), None) => DownloadTarget::Url(url),
                (None, Some(url), Some(variant)) => DownloadTarget::Hls { url, variant },
                (Some(_), None, Some(_)) => {
                    return error(&Error::invalid("\"variant\" applies to HLS \"url\" downloads"))
                }
                _ => return error(&Error::invalid("give exactly one of \"track\" or \"url\"")),
            };
            return match downloader.enqueue(target, body.priority, body.data).await {
                Ok(info) => response::json(StatusCode::ACCEPTED, &info),
                Err(e) => error(&e),
            };
        }
        (Method::GET, Some(id), None) => downloader.info(id),
        (Method::PATCH, Some(id), None) => match read_json::<DownloadPatch>(req).await {
            Ok(DownloadPatch { data: Some(data) }) => downloader.set_data(id, data).await,
            Ok(DownloadPatch { data: None }) => Err(Error::invalid("give \"data\": a string, or null to remove it")),
            Err(e) => Err(e),
        },
        (Method::DELETE, Some(id), None) => {
            return match downloader.cancel(id).await {
                Ok(()) => response::json(StatusCode::OK, &serde_json::json!({ "id": id, "deleted": true })),
                Err(e) => error(&e),
            };
        }
        (Method::POST, Some(id), Some("pause")) => downloader.pause(id).await,
        (Method::POST, Some(id), Some("resume")) => downloader.resume(id).await,
        (_, None, None) => return method_not_allowed("GET, POST"),
        (_, Some(_), None) => return method_not_allowed("GET, PATCH, DELETE"),
        (_, Some(_), Some("pause" | "resume")) => return method_not_allowed("POST"),
        (_, _, Some(other)) => return response::error(StatusCode::NOT_FOUND, format!("no such action: {other}")),
    };
    match result {
        Ok(info) => response::json(StatusCode::OK, &info),
        Err(e) => error(&e),
    }
}

/// `/api/network`: the app reports connectivity; GET shows the last report. Both answer the state
/// and the HLS variant cap it puts in force.
pub(crate) async fn network(inner: &Arc<Inner>, req: Request<RequestBody>) -> Response<Body> {
    match *req.method() {
        Method::GET => network_answer(inner, inner.downloader().network()),
        Method::POST | Method::PUT => match read_json::<NetworkState>(req).await {
            Ok(state) => {
                inner.downloader().set_network(state);
                network_answer(inner, state)
            }
            Err(e) => error(&e),
        },
        _ => method_not_allowed("GET, POST"),
    }
}

/// `{"online", "metered", "variant_cap"}`: `variant_cap` is the most bits per second of the HLS
/// variants a served master offers on this network, or null for no cap.
fn network_answer(inner: &Inner, state: NetworkState) -> Response<Body> {
    let body = serde_json::json!({
        "online": state.online,
        "metered": state.metered,
        "variant_cap": inner.variant_cap_on(state),
    });
    response::json(StatusCode::OK, &body)
}

/// `/api/prefetch`: fetch the first bytes of the next few tracks.
pub(crate) async fn prefetch(inner: &Arc<Inner>, req: Request<RequestBody>) -> Response<Body> {
    if req.method() != Method::POST {
        return method_not_allowed("POST");
    }
    let body: PrefetchBody = match read_json(req).await {
        Ok(b) => b,
        Err(e) => return error(&e),
    };
    let bytes = body.bytes.unwrap_or(inner.config().prefetch_bytes);
    match inner.prefetch(&body.tracks, bytes) {
        Ok(()) => response::json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "tracks": body.tracks, "bytes": bytes }),
        ),
        Err(e) => error(&e),
    }
}

/// `/api/stats`.
pub(crate) fn stats(inner: &Arc<Inner>, method: &Method) -> Response<Body> {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    response::json(StatusCode::OK, &inner.stats())
}

/// `/metrics`: the statistics in the Prometheus text format.
pub(crate) fn metrics(inner: &Arc<Inner>, method: &Method) -> Response<Body> {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    response::typed(crate::metrics::CONTENT_TYPE, crate::metrics::render(&inner.stats()))
}

/// `/api/resources`: every cached resource with its present ranges (for the dashboard).
pub(crate) async fn resources(inner: &Arc<Inner>, method: &Method) -> Response<Body> {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    match inner.cache().resources().await {
        Ok(list) => response::json(StatusCode::OK, &list),
        Err(e) => response::error(e.status(), e.to_string()),
    }
}

/// `/api/cache`: GET the limit and totals, PUT `{"max_bytes": N}` to change the limit (evicting
/// down to it at once), DELETE to clear the evictable cache.
pub(crate) async fn cache(inner: &Arc<Inner>, req: Request<RequestBody>) -> Response<Body> {
    let usage = |inner: &Inner| {
        let stats = inner.stats();
        serde_json::json!({
            "max_bytes": stats.max_cache_bytes,
            "cache_bytes": stats.cache_bytes,
            "pinned_bytes": stats.pinned_bytes,
            "evictable_bytes": stats.cache_bytes.saturating_sub(stats.pinned_bytes),
            "entries": stats.entries,
        })
    };
    match *req.method() {
        Method::GET => response::json(StatusCode::OK, &usage(inner)),
        Method::PUT => {
            let body: CacheLimit = match read_json(req).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            match inner.set_cache_limit(body.max_bytes).await {
                Ok(()) => response::json(StatusCode::OK, &usage(inner)),
                Err(e) => error(&e),
            }
        }
        Method::DELETE => match inner.clear_cache().await {
            Ok(cleared) => response::json(StatusCode::OK, &cleared),
            Err(e) => error(&e),
        },
        _ => method_not_allowed("GET, PUT, DELETE"),
    }
}

/// `/api/cached?url=URL` (the URL percent-encoded): how much of it the cache holds.
pub(crate) fn cached(inner: &Arc<Inner>, req: &Request<RequestBody>) -> Response<Body> {
    if req.method() != Method::GET {
        return method_not_allowed("GET");
    }
    let query = req.uri().query().unwrap_or("");
    let url = url::form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| (k == "url").then_some(v));
    let Some(url) = url else {
        return error(&Error::invalid(
            "give the remote URL as the query parameter \"url\" (percent-encoded)",
        ));
    };
    match inner.cached(&url) {
        Ok(info) => response::json(StatusCode::OK, &info),
        Err(e) => error(&e),
    }
}

/// Reads a JSON body of at most `MAX_JSON_BYTES`.
async fn read_json<T: serde::de::DeserializeOwned>(req: Request<RequestBody>) -> Result<T, Error> {
    let bytes = Limited::new(req.into_body(), MAX_JSON_BYTES)
        .collect()
        .await
        .map_err(|e| {
            Error::invalid(format!(
                "cannot read the request body (at most {MAX_JSON_BYTES} bytes): {e}"
            ))
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Error::invalid_caused("bad JSON", e))
}

/// An error as a JSON response with its status.
pub(crate) fn error(e: &Error) -> Response<Body> {
    response::error(e.status(), e.to_string())
}

/// `405` naming the allowed methods.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = response::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}"),
    );
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
}
