//! Asking the app's [`Resolver`] for fresh credentials: one call at a time, shared by every
//! request refused meanwhile, and bounded by a timeout.
//!
//! When a token expires, every request in flight is refused at once (a player's range, a
//! prefetch, a download, a dozen HLS segments). They must not each ask the app: calls are
//! serialised, and a request whose refusal predates the end of a call takes that call's answer
//! instead of asking again, when the answer applies to it: new headers apply to every request,
//! a new URL to the resource it was given for. A resolver that does not answer within the
//! timeout counts as "no fresh credentials"; while it is still stuck in that call, it is not
//! called again (each stuck call holds one of the runtime's blocking threads).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use url::Url;

use super::{Refreshed, Resolver};

/// The calls made so far; a request notes it when it is sent (see [`Refresher::calls`]).
pub(super) type CallCount = u64;

/// The app's credential hook behind a single-flight gate.
pub(super) struct Refresher {
    resolver: RwLock<Option<Arc<dyn Resolver>>>,
    timeout: Duration,
    /// Held for the duration of a call; what the last call gave.
    last: tokio::sync::Mutex<Last>,
    /// Calls finished (answered or timed out).
    calls: AtomicU64,
    /// A call that timed out is still running on its blocking thread.
    stuck: Arc<AtomicBool>,
}

/// The answer of the last call and whom it was for.
#[derive(Default)]
struct Last {
    resource: Option<String>,
    given: Option<Refreshed>,
}

impl Refresher {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            resolver: RwLock::new(None),
            timeout,
            last: tokio::sync::Mutex::new(Last::default()),
            calls: AtomicU64::new(0),
            stuck: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Installs or removes the hook.
    pub(super) fn set(&self, resolver: Option<Arc<dyn Resolver>>) {
        *self.resolver.write().unwrap_or_else(|p| p.into_inner()) = resolver;
    }

    /// The number of calls finished so far: note it before sending a request, and pass it to
    /// [`refresh`](Self::refresh) if the request is refused.
    pub(super) fn calls(&self) -> CallCount {
        self.calls.load(Ordering::Acquire)
    }

    /// Fresh credentials for `url` (of catalog track `track_id`), refused after `sent` calls had
    /// finished: retry with them (their headers already applied, and the URL if given), or `None`
    /// to fail with the backend's status. `apply` installs the headers of an answer before any
    /// other request can see the call finished.
    pub(super) async fn refresh(
        &self,
        track_id: Option<&str>,
        url: &Url,
        sent: CallCount,
        apply: impl FnOnce(&Refreshed),
    ) -> Option<Refreshed> {
        let resolver = self.resolver.read().unwrap_or_else(|p| p.into_inner()).clone()?;
        let resource = track_id.map_or_else(|| url.to_string(), str::to_owned);
        let mut last = self.last.lock().await;
        if self.calls.load(Ordering::Acquire) != sent {
            // A call ended after this request was sent: its answer may already be the fix.
            if last.resource.as_deref() == Some(resource.as_str()) {
                return last.given.clone();
            }
            if let Some(given) = last.given.as_ref().filter(|g| !g.headers.is_empty()) {
                return Some(Refreshed {
                    url: None,
                    headers: given.headers.clone(),
                });
            }
        }
        if self.stuck.load(Ordering::Acquire) {
            tracing::warn!("the credential resolver has not returned from its last call; not asking again");
            return None;
        }
        let given = self.call(resolver, track_id, url).await;
        if let Some(given) = &given {
            apply(given);
        }
        *last = Last {
            resource: Some(resource),
            given: given.clone(),
        };
        self.calls.fetch_add(1, Ordering::Release);
        given
    }

    /// One call on a blocking thread, bounded by the timeout.
    async fn call(&self, resolver: Arc<dyn Resolver>, track_id: Option<&str>, url: &Url) -> Option<Refreshed> {
        let (track_id, url, stuck) = (track_id.map(str::to_owned), url.to_string(), self.stuck.clone());
        stuck.store(true, Ordering::Release);
        let call = tokio::task::spawn_blocking(move || {
            let given = resolver.refresh(track_id.as_deref(), &url);
            stuck.store(false, Ordering::Release);
            given
        });
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(given)) => given,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the credential resolver failed");
                self.stuck.store(false, Ordering::Release);
                None
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "the credential resolver did not answer in time");
                None
            }
        }
    }
}
