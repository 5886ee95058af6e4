//! The seam between the cache's fills and the HTTP client: a fill asks an [`Upstream`] for the
//! body of a URL from some byte on and reads what comes back as a [`Body`]. The server's upstream
//! is the [`Fetcher`]; tests put a scripted backend in its place and drive the cache in process.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;

use super::{FetchRequest, FetchResponse, Fetcher};
use crate::error::{UpstreamCause, UpstreamError};

/// An answer's body still to be read: data frames, or the error that broke it off.
pub(crate) type Body = UnsyncBoxBody<Bytes, UpstreamError>;

/// Where fills fetch bytes from.
pub(crate) trait Upstream: Send + Sync + 'static {
    /// The body of `req.url` from byte `req.start` on: a 200, 206 or 416 answer (redirects,
    /// retries before the body and credential refreshes are the upstream's business).
    fn fetch(&self, req: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, UpstreamError>>;

    /// How long a fill waits for the next body chunk before it counts the body as broken.
    fn read_timeout(&self) -> Duration;
}

impl Upstream for Fetcher {
    fn fetch(&self, req: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, UpstreamError>> {
        Box::pin(self.send(req))
    }

    fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
}

/// A hyper body as a [`Body`]: a transport error is a broken body.
pub(super) fn from_incoming(body: hyper::body::Incoming) -> Body {
    body.map_err(|e| UpstreamError::Protocol(UpstreamCause::new(format!("body: {e}"), e)))
        .boxed_unsync()
}
