//! The upstream client: pooled connections, TLS (rustls), HTTP/2 by ALPN, redirects checked
//! against the allow-list, timeouts, retries with backoff, and one credential refresh.
//!
//! It answers one question for the cache: "give me the body of URL from byte N". It follows
//! redirects, retries what can be retried before any byte arrives (connect errors, 5xx) and asks
//! the app's [`Resolver`] once for fresh credentials on 401/403. Body-level failures (a drop
//! mid-body) are the fill's business, since only it knows how far it got.

mod origins;
mod refresh;
mod roots;
mod upstream;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, IF_RANGE, LOCATION, RANGE};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use url::Url;

pub(crate) use origins::OriginList;
pub(crate) use upstream::{Body, Upstream};

use crate::config::Config;
use crate::error::{Error, UpstreamCause, UpstreamError};
use crate::telemetry::Counters;

/// Fresh credentials from the app after the backend refused a request.
#[derive(Debug, Clone, Default)]
pub struct Refreshed {
    /// A new URL for the same bytes (a re-signed CDN URL), if any.
    pub url: Option<String>,
    /// Headers to set on every later upstream request (a new `Authorization`, ...).
    pub headers: Vec<(String, String)>,
}

/// The app's hook for expired credentials. Called at most once per refused request, one call at a
/// time: requests refused while a call runs take its answer when it applies to them (headers to
/// all, a URL to its resource) instead of asking again.
pub trait Resolver: Send + Sync + 'static {
    /// The backend answered 401/403 for `url` (of catalog track `track_id`, if any). Return fresh
    /// credentials, or `None` to give up. Called from a blocking thread; it may block briefly, up
    /// to `Config::resolver_timeout` (then the request fails, and the hook is not called again
    /// until this call returns).
    fn refresh(&self, track_id: Option<&str>, url: &str) -> Option<Refreshed>;
}

/// One request for the body of `url` from byte `start` on.
#[derive(Debug, Clone)]
pub(crate) struct FetchRequest {
    /// The remote URL.
    pub(crate) url: Url,
    /// First byte wanted; a `Range: bytes=start-` header is always sent.
    pub(crate) start: u64,
    /// The strong validator the cached bytes belong to, sent as `If-Range`.
    pub(crate) if_range: Option<String>,
    /// The catalog track, passed to the resolver.
    pub(crate) track_id: Option<String>,
}

/// The backend's answer: status 200, 206 or 416, headers and a body still to be read.
pub(crate) struct FetchResponse {
    /// 200, 206 or 416.
    pub(crate) status: StatusCode,
    /// The answer's headers (validators, length, range, type).
    pub(crate) headers: HeaderMap,
    /// The body, read by the fill.
    pub(crate) body: Body,
    /// A new URL the resolver gave for this resource, to be used from now on.
    pub(crate) refreshed_url: Option<Url>,
    /// Where the body really comes from: the requested URL, or the last redirect's target.
    pub(crate) final_url: Url,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// The shared upstream client.
pub(crate) struct Fetcher {
    client: HttpsClient,
    origins: RwLock<OriginList>,
    headers: RwLock<HeaderMap>,
    refresher: refresh::Refresher,
    read_timeout: Duration,
    attempts: u32,
    counters: Arc<Counters>,
}

impl Fetcher {
    /// Builds the client from the configuration (origins, headers, CA, timeouts).
    pub(crate) fn new(config: &Config, counters: Arc<Counters>) -> Result<Self, Error> {
        let origins = OriginList::parse(&config.origins)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.upstream_headers {
            let (name, value) = header_pair(name, value).map_err(|e| Error::config_caused("upstream_headers", e))?;
            headers.insert(name, value);
        }
        let roots = roots::root_store(&config.trust_roots, config.ca_cert_pem.as_deref())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config_caused("TLS setup", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            // HTTP/1.1 only, as Media3's default data source: each fill has a TCP connection of
            // its own, so a download that stops reading its body (yielding to a player) stops
            // taking the link, which one multiplexed HTTP/2 connection would not do; and h2 would
            // cost ~100 KB of the phone's library.
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(8)
            .build(https);
        Ok(Self {
            client,
            origins: RwLock::new(origins),
            headers: RwLock::new(headers),
            refresher: refresh::Refresher::new(config.resolver_timeout),
            read_timeout: config.read_timeout,
            attempts: config.upstream_attempts,
            counters,
        })
    }

    /// Checks `url` against the allow-list.
    pub(crate) fn check_origin(&self, url: &str) -> Result<Url, Error> {
        self.origins.read().unwrap_or_else(|p| p.into_inner()).check(url)
    }

    /// Sets (or with `None`, removes) a header sent with every upstream request.
    pub(crate) fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error> {
        let mut headers = self.headers.write().unwrap_or_else(|p| p.into_inner());
        match value {
            Some(value) => {
                let (name, value) =
                    header_pair(name, value).map_err(|e| Error::invalid_caused("cannot set the header", e))?;
                headers.insert(name, value);
            }
            None => {
                let name = header_name(name).map_err(|e| Error::invalid_caused("cannot remove the header", e))?;
                headers.remove(name);
            }
        }
        Ok(())
    }

    /// Installs the app's credential refresh hook.
    pub(crate) fn set_resolver(&self, resolver: Option<Arc<dyn Resolver>>) {
        self.refresher.set(resolver);
    }

    /// Sends `req`, retrying what can be retried, and returns a 200, 206 or 416 answer (the
    /// [`Upstream`] the cache's fills use).
    async fn send(&self, mut req: FetchRequest) -> Result<FetchResponse, UpstreamError> {
        let mut refreshed_url = None;
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self.refresher.calls();
            match self.fetch_once(&req).await {
                Ok(resp) => {
                    return Ok(FetchResponse { refreshed_url, ..resp });
                }
                Err(UpstreamError::Denied(status)) if !refreshed => {
                    refreshed = true;
                    match self.refresh(&req, sent).await {
                        Some(new_url) => {
                            if let Some(url) = new_url {
                                req.url = url.clone();
                                refreshed_url = Some(url);
                            }
                            attempt -= 1;
                        }
                        None => return Err(UpstreamError::Denied(status)),
                    }
                }
                Err(e) if e.is_retryable() && attempt < self.attempts => {
                    tracing::debug!(url = %redact(&req.url), attempt, error = %e, "upstream attempt failed; retrying");
                    Counters::add(&self.counters.upstream_retries, 1);
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Asks for fresh credentials (see [`refresh`]): `Some(new url or None)` if there are any.
    async fn refresh(&self, req: &FetchRequest, sent: refresh::CallCount) -> Option<Option<Url>> {
        let apply = |fresh: &Refreshed| {
            for (name, value) in &fresh.headers {
                if let Err(e) = self.set_header(name, Some(value)) {
                    tracing::warn!(error = %e, "resolver returned an unusable header");
                }
            }
        };
        let fresh = self
            .refresher
            .refresh(req.track_id.as_deref(), &req.url, sent, apply)
            .await?;
        match fresh.url {
            Some(url) => match self.check_origin(&url) {
                Ok(url) => Some(Some(url)),
                Err(e) => {
                    tracing::warn!(error = %e, "resolver returned a URL that cannot be used");
                    None
                }
            },
            None => Some(None),
        }
    }

    /// One attempt, following redirects.
    async fn fetch_once(&self, req: &FetchRequest) -> Result<FetchResponse, UpstreamError> {
        let mut url = req.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut builder = Request::get(url.as_str())
                .header(RANGE, format!("bytes={}-", req.start))
                .header(http::header::ACCEPT_ENCODING, "identity");
            if let Some(tag) = &req.if_range {
                builder = builder.header(IF_RANGE, tag.as_str());
            }
            let mut request = builder
                .body(Empty::new())
                .map_err(|e| UpstreamError::Protocol(UpstreamCause::new(format!("cannot build request: {e}"), e)))?;
            for (name, value) in self.headers.read().unwrap_or_else(|p| p.into_inner()).iter() {
                request.headers_mut().insert(name, value.clone());
            }
            let response = match tokio::time::timeout(self.read_timeout, self.client.request(request)).await {
                Err(_) => return Err(UpstreamError::Timeout),
                Ok(Err(e)) => return Err(classify(e)),
                Ok(Ok(r)) => r,
            };
            let status = response.status();
            match status.as_u16() {
                200 | 206 | 416 => {
                    let (parts, body) = response.into_parts();
                    return Ok(FetchResponse {
                        status,
                        headers: parts.headers,
                        body: upstream::from_incoming(body),
                        refreshed_url: None,
                        final_url: url,
                    });
                }
                301 | 302 | 303 | 307 | 308 => {
                    let location = response
                        .headers()
                        .get(LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| UpstreamError::protocol(format!("HTTP {status} without Location")))?;
                    let next = url
                        .join(location)
                        .map_err(|e| UpstreamError::Protocol(UpstreamCause::new(format!("bad redirect: {e}"), e)))?;
                    if !self.origins.read().unwrap_or_else(|p| p.into_inner()).allows(&next) {
                        return Err(UpstreamError::RedirectNotAllowed(next.origin().ascii_serialization()));
                    }
                    tracing::debug!(from = %redact(&url), to = %redact(&next), "following redirect");
                    url = next;
                }
                404 | 410 => return Err(UpstreamError::NotFound(status.as_u16())),
                401 | 403 => return Err(UpstreamError::Denied(status.as_u16())),
                other => return Err(UpstreamError::Status(other)),
            }
        }
        Err(UpstreamError::protocol(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

/// A header from the app or the CLI that cannot be sent.
#[derive(Debug, thiserror::Error)]
enum BadHeader {
    #[error("bad header name {0:?}")]
    Name(String, #[source] http::header::InvalidHeaderName),
    /// The value is a credential: the message never echoes it.
    #[error("bad value for header {0}")]
    Value(HeaderName, #[source] http::header::InvalidHeaderValue),
}

/// Validates a header name from the app or the CLI.
fn header_name(name: &str) -> Result<HeaderName, BadHeader> {
    HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| BadHeader::Name(name.to_owned(), e))
}

/// Validates a header pair from the app or the CLI.
fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), BadHeader> {
    let name = header_name(name)?;
    let value = HeaderValue::from_str(value.trim()).map_err(|e| BadHeader::Value(name.clone(), e))?;
    Ok((name, value))
}

/// Sorts a client error into "could not connect" or "timed out".
fn classify(e: hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return UpstreamError::Timeout;
            }
        }
        source = s.source();
    }
    if e.is_connect() {
        UpstreamError::Unreachable(UpstreamCause::new(error_chain(&e), e))
    } else {
        UpstreamError::Protocol(UpstreamCause::new(error_chain(&e), e))
    }
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Exponential backoff with jitter: ~100 ms, 200 ms, 400 ms ... capped at 5 s, ±50 %.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.saturating_sub(1).min(6)).min(5_000);
    let mut bytes = [0u8; 2];
    let jitter = match getrandom::getrandom(&mut bytes) {
        Ok(()) => u64::from(u16::from_le_bytes(bytes)) % (base + 1),
        Err(_) => base / 2,
    };
    Duration::from_millis(base / 2 + jitter)
}

/// A URL fit for logs: scheme, host and path, without the query (signatures) or user info.
pub(crate) fn redact(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn backoff_grows_and_is_bounded() {
        for attempt in 1..20 {
            let d = backoff(attempt).as_millis() as u64;
            let base = (100u64 << (attempt - 1).min(6)).min(5_000);
            assert!(d >= base / 2 && d <= base / 2 + base, "attempt {attempt}: {d} ms");
        }
    }

    #[test]
    fn redact_drops_query_and_credentials() {
        let url = Url::parse("https://user:pw@cdn.example.com/a/b.mp3?sig=secret").unwrap();
        assert_eq!(redact(&url), "https://cdn.example.com/a/b.mp3");
    }

    #[test]
    fn bad_header_values_do_not_echo_the_value() {
        let err = header_pair("Authorization", "Bearer \nsecret").err().unwrap();
        assert!(!err.to_string().contains("secret"));
    }

    /// Whether one of `e`'s sources is a `T`.
    fn caused_by<T: std::error::Error + 'static>(e: &dyn std::error::Error) -> bool {
        std::iter::successors(e.source(), |s| s.source()).any(|s| s.is::<T>())
    }

    /// A fetcher allowed to reach `origin`, trying each request once.
    fn fetcher(origin: &str) -> Fetcher {
        let mut config = Config::new("unused");
        config.origins = vec![origin.to_owned()];
        config.upstream_attempts = 1;
        Fetcher::new(&config, Arc::new(Counters::default())).unwrap()
    }

    /// A backend on loopback that answers one request with `answer` and closes the connection.
    async fn backend(answer: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before its request ended");
                request.extend_from_slice(&buf[..n]);
            }
            socket.write_all(answer).await.unwrap();
        });
        origin
    }

    fn request(url: &str) -> FetchRequest {
        FetchRequest {
            url: Url::parse(url).unwrap(),
            start: 0,
            if_range: None,
            track_id: None,
        }
    }

    #[tokio::test]
    async fn a_body_cut_short_keeps_the_clients_error() {
        let origin = backend(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b").await;
        let response = fetcher(&origin).send(request(&format!("{origin}/a"))).await.unwrap();
        let error = response.body.collect().await.err().unwrap();
        assert!(matches!(error, UpstreamError::Protocol(_)), "{error:?}");
        assert!(
            error.to_string().starts_with("bad answer from the backend: body: "),
            "{error}"
        );
        assert!(caused_by::<hyper::Error>(&error), "{error:?}");
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn a_bad_redirect_keeps_the_url_error() {
        let origin = backend(b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n").await;
        let error = fetcher(&origin)
            .send(request(&format!("{origin}/a")))
            .await
            .err()
            .unwrap();
        assert!(error.to_string().contains("bad redirect"), "{error}");
        assert!(caused_by::<url::ParseError>(&error), "{error:?}");
    }

    #[test]
    fn bad_arguments_and_settings_keep_the_parsers_error() {
        let e = fetcher("http://127.0.0.1:1").check_origin("not a url").err().unwrap();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        assert!(caused_by::<url::ParseError>(&e), "{e:?}");

        let e = fetcher("http://127.0.0.1:1")
            .set_header("bad name", Some("v"))
            .err()
            .unwrap();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        assert!(caused_by::<http::header::InvalidHeaderName>(&e), "{e:?}");

        let mut config = Config::new("unused");
        config.upstream_headers = vec![("X-Key".into(), "sec\nret".into())];
        let e = Fetcher::new(&config, Arc::new(Counters::default())).err().unwrap();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(!e.to_string().contains("ret"), "{e}");
        assert!(caused_by::<http::header::InvalidHeaderValue>(&e), "{e:?}");
    }
}
