//! The one policy for what crosses the boundary: handles, errors and panics.
//!
//! A handle is the `jlong` of `Box::into_raw(Box<Handle>)`. Every live handle is also recorded in
//! a set, so a stale or forged value from Kotlin is refused with an exception instead of being
//! dereferenced. The Kotlin class serialises `destroy` against every other call (a read/write
//! lock), so a handle is never freed while a call uses it.

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use jni::sys::jlong;
use jni::JNIEnv;

use crate::{BlockingServer, Error};

/// The Kotlin exception every failure becomes.
const EXCEPTION: &str = "io/embeddedserver/EmbeddedServerException";

/// What a Kotlin `EmbeddedServer` owns on the native side.
pub(super) struct Handle {
    pub(super) server: BlockingServer,
    /// The thread delivering download updates to the Kotlin listener; ends when the server stops.
    pub(super) listener: Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    /// Removes the resolver (releasing its global ref), stops the server, then waits for the
    /// listener thread (it releases its global ref and detaches on the way out). Idempotent.
    pub(super) fn stop(&self) -> Result<(), Error> {
        // Fails only when already stopped, and then the resolver is already gone.
        let _ = self.server.set_resolver(None);
        let result = self.server.shutdown();
        let thread = self.listener.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::warn!("the download listener thread panicked");
            }
        }
        result
    }
}

/// What an export returns after it threw: Kotlin never sees it.
pub(super) trait Fallback {
    fn fallback() -> Self;
}

impl Fallback for () {
    fn fallback() -> Self {}
}

impl Fallback for jlong {
    fn fallback() -> Self {
        0
    }
}

impl Fallback for jni::sys::jstring {
    fn fallback() -> Self {
        std::ptr::null_mut()
    }
}

/// Addresses of the handles created and not yet destroyed.
static LIVE: Mutex<BTreeSet<jlong>> = Mutex::new(BTreeSet::new());

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error(transparent)]
    Server(#[from] Error),
    #[error("JNI call failed: {0}")]
    Jni(#[from] jni::errors::Error),
    #[error("the server handle is closed")]
    Closed,
    #[error("{0}")]
    Argument(String),
}

/// Moves a handle to the heap and records it; the `jlong` goes to Kotlin.
pub(super) fn create(handle: Handle) -> jlong {
    let raw = Box::into_raw(Box::new(handle)) as jlong;
    LIVE.lock().unwrap_or_else(PoisonError::into_inner).insert(raw);
    raw
}

/// The handle behind `raw`, if it is live.
pub(super) fn get<'a>(raw: jlong) -> Result<&'a Handle, Failure> {
    if !LIVE.lock().unwrap_or_else(PoisonError::into_inner).contains(&raw) {
        return Err(Failure::Closed);
    }
    // SAFETY: `raw` came from `Box::into_raw` in `create` and is still in `LIVE`, so the box has
    // not been freed; Kotlin never calls `destroy` concurrently with another call on it.
    Ok(unsafe { &*(raw as *const Handle) })
}

/// Forgets `raw` and takes its box back; `None` when it was already destroyed.
pub(super) fn take(raw: jlong) -> Option<Box<Handle>> {
    if !LIVE.lock().unwrap_or_else(PoisonError::into_inner).remove(&raw) {
        return None;
    }
    // SAFETY: `raw` was in `LIVE`, so it is a box from `create` not yet taken; removing it from
    // `LIVE` first makes this the only owner.
    Some(unsafe { Box::from_raw(raw as *mut Handle) })
}

/// Runs an export's body: a failure or a panic becomes an `EmbeddedServerException` (unless a
/// Java exception is already pending) and the export returns `fallback`, which Kotlin never sees.
pub(super) fn run<'local, T>(
    env: &mut JNIEnv<'local>,
    fallback: T,
    body: impl FnOnce(&mut JNIEnv<'local>) -> Result<T, Failure>,
) -> T {
    let message = match panic::catch_unwind(AssertUnwindSafe(|| body(env))) {
        Ok(Ok(value)) => return value,
        Ok(Err(failure)) => failure.to_string(),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            format!("internal error: {what}")
        }
    };
    if !env.exception_check().unwrap_or(false) && env.throw_new(EXCEPTION, &message).is_err() {
        tracing::error!(%message, "cannot throw {EXCEPTION}");
    }
    fallback
}
