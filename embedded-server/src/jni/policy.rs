//! The one policy for what crosses the boundary: handles, errors and panics.
//!
//! A handle is a counter ID (never reused, never an address) that names an `Arc<Handle>` in a
//! registry. A call clones the `Arc` out of the registry and works on its clone, so `destroy`
//! (which removes the entry) never frees a server under a running call, and no call waits for
//! another: a stale or forged ID is refused with an exception.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

/// The live handles by ID.
static HANDLES: Mutex<BTreeMap<jlong, Arc<Handle>>> = Mutex::new(BTreeMap::new());

/// The next handle ID; 0 is never one (Kotlin's "closed").
static NEXT_ID: AtomicI64 = AtomicI64::new(1);

fn handles() -> std::sync::MutexGuard<'static, BTreeMap<jlong, Arc<Handle>>> {
    HANDLES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error(transparent)]
    Server(#[from] Error),
    #[error("JNI call failed: {0}")]
    Jni(#[from] jni::errors::Error),
    #[error("the server is closed")]
    Closed,
    #[error("{0}")]
    Argument(String),
}

/// Registers a handle; its ID goes to Kotlin.
pub(super) fn create(handle: Handle) -> jlong {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    handles().insert(id, Arc::new(handle));
    id
}

/// The handle named `id`, if it is live; the caller's clone keeps it alive through the call.
pub(super) fn get(id: jlong) -> Result<Arc<Handle>, Failure> {
    handles().get(&id).cloned().ok_or(Failure::Closed)
}

/// Unregisters `id` and returns its handle; `None` when it was already destroyed.
pub(super) fn take(id: jlong) -> Option<Arc<Handle>> {
    handles().remove(&id)
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
