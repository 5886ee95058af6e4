//! The one policy for what crosses the boundary: handles, errors and panics.
//!
//! A handle is a counter ID (never reused, never an address) that names an `Arc<Handle>` in a
//! registry. A call clones the `Arc` out of the registry and works on its clone, so `destroy`
//! (which removes the entry) never frees a server under a running call, and no call waits for
//! another: a stale or forged ID is refused with an exception.
//!
//! Every failure becomes the `EmbeddedServerException` subclass of its kind ([`Kind`]), built
//! here by name with the error's message (and, for the backend's failures, its HTTP status and
//! whether a retry helps), so Kotlin callers catch a type instead of parsing a message.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use jni::objects::{JThrowable, JValue};
use jni::sys::jlong;
use jni::JNIEnv;

use crate::{BlockingServer, Error};

/// The Kotlin exception of a failure that is none of the kinds below (a JNI failure, a panic).
const EXCEPTION: &str = "io/embeddedserver/EmbeddedServerException";

/// The constructor every exception class has: `(String message)`.
const MESSAGE_ONLY: &str = "(Ljava/lang/String;)V";

/// The kinds of failure a Kotlin caller tells apart, each an `EmbeddedServerException` subclass
/// (`android/embedded-server/.../EmbeddedServerException.kt`): the class name and the
/// constructor this module calls, which `consumer-rules.pro` keeps (checked by
/// `tests/jvm/keep_rules.py`, which reads these lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotFound,
    InvalidArgument,
    OriginNotAllowed,
    InvalidConfig,
    /// The backend's HTTP status (0: none) and whether a retry may help.
    Upstream(u16, bool),
    NoSpace,
    Storage,
    Closed,
    /// A failure of the bridge itself: the base class.
    Internal,
}

impl Kind {
    fn of(error: &Error) -> Self {
        match error {
            Error::Config(_) => Self::InvalidConfig,
            Error::InvalidArgument(_) => Self::InvalidArgument,
            Error::NotFound(_) => Self::NotFound,
            Error::OriginNotAllowed(_) => Self::OriginNotAllowed,
            Error::Upstream(e) => Self::Upstream(e.status().unwrap_or(0), e.is_retryable()),
            Error::NoSpace => Self::NoSpace,
            Error::Storage(_) => Self::Storage,
            Error::Stopped => Self::Closed,
        }
    }

    /// The class and constructor descriptor.
    fn class(self) -> (&'static str, &'static str) {
        match self {
            Self::NotFound => ("io/embeddedserver/EmbeddedServerException$NotFound", MESSAGE_ONLY),
            Self::InvalidArgument => (
                "io/embeddedserver/EmbeddedServerException$InvalidArgument",
                MESSAGE_ONLY,
            ),
            Self::OriginNotAllowed => (
                "io/embeddedserver/EmbeddedServerException$OriginNotAllowed",
                MESSAGE_ONLY,
            ),
            Self::InvalidConfig => ("io/embeddedserver/EmbeddedServerException$InvalidConfig", MESSAGE_ONLY),
            Self::Upstream(..) => (
                "io/embeddedserver/EmbeddedServerException$Upstream",
                "(Ljava/lang/String;IZ)V",
            ),
            Self::NoSpace => ("io/embeddedserver/EmbeddedServerException$NoSpace", MESSAGE_ONLY),
            Self::Storage => ("io/embeddedserver/EmbeddedServerException$Storage", MESSAGE_ONLY),
            Self::Closed => ("io/embeddedserver/EmbeddedServerException$Closed", MESSAGE_ONLY),
            Self::Internal => (EXCEPTION, MESSAGE_ONLY),
        }
    }
}

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

impl Failure {
    fn kind(&self) -> Kind {
        match self {
            Self::Server(e) => Kind::of(e),
            Self::Jni(_) => Kind::Internal,
            Self::Closed => Kind::Closed,
            Self::Argument(_) => Kind::InvalidArgument,
        }
    }
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

/// Runs an export's body: a failure becomes the `EmbeddedServerException` subclass of its kind
/// and a panic a plain `EmbeddedServerException` (unless a Java exception is already pending),
/// and the export returns `fallback`, which Kotlin never sees.
pub(super) fn run<'local, T>(
    env: &mut JNIEnv<'local>,
    fallback: T,
    body: impl FnOnce(&mut JNIEnv<'local>) -> Result<T, Failure>,
) -> T {
    let (kind, message) = match panic::catch_unwind(AssertUnwindSafe(|| body(env))) {
        Ok(Ok(value)) => return value,
        Ok(Err(failure)) => (failure.kind(), failure.to_string()),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            (Kind::Internal, format!("internal error: {what}"))
        }
    };
    if !env.exception_check().unwrap_or(false) {
        if let Err(e) = throw(env, kind, &message) {
            tracing::error!(%message, error = %e, "cannot throw {:?}", kind.class().0);
            // Whatever the subclass's trouble (a class shrunk away), the base class still reports
            // the failure, in place of the JVM's own error about it.
            let _ = env.exception_clear();
            if env.throw_new(EXCEPTION, &message).is_err() {
                tracing::error!(%message, "cannot throw {EXCEPTION}");
            }
        }
    }
    fallback
}

/// Throws `kind`'s exception with `message`.
fn throw(env: &mut JNIEnv<'_>, kind: Kind, message: &str) -> jni::errors::Result<()> {
    let (class, constructor) = kind.class();
    let text = env.new_string(message)?;
    let exception = match kind {
        Kind::Upstream(status, retryable) => env.new_object(
            class,
            constructor,
            &[
                JValue::Object(&text),
                JValue::Int(i32::from(status)),
                JValue::Bool(u8::from(retryable)),
            ],
        )?,
        _ => env.new_object(class, constructor, &[JValue::Object(&text)])?,
    };
    env.throw(JThrowable::from(exception))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{UpstreamCause, UpstreamError};

    #[test]
    fn each_error_has_its_kind() {
        assert_eq!(Kind::of(&Error::NotFound("x".into())), Kind::NotFound);
        assert_eq!(Kind::of(&Error::invalid("x")), Kind::InvalidArgument);
        assert_eq!(Kind::of(&Error::OriginNotAllowed("x".into())), Kind::OriginNotAllowed);
        assert_eq!(Kind::of(&Error::config("x")), Kind::InvalidConfig);
        assert_eq!(Kind::of(&Error::NoSpace), Kind::NoSpace);
        assert_eq!(Kind::of(&Error::storage("x")), Kind::Storage);
        assert_eq!(Kind::of(&Error::Stopped), Kind::Closed);
        // The backend's status when it gave one, and whether a retry may help.
        assert_eq!(
            Kind::of(&UpstreamError::NotFound(404).into()),
            Kind::Upstream(404, false)
        );
        assert_eq!(Kind::of(&UpstreamError::Denied(403).into()), Kind::Upstream(403, false));
        assert_eq!(Kind::of(&UpstreamError::Status(503).into()), Kind::Upstream(503, true));
        assert_eq!(Kind::of(&UpstreamError::Timeout.into()), Kind::Upstream(0, true));
        let refused = UpstreamCause::new("refused".into(), std::io::Error::other("refused"));
        assert_eq!(
            Kind::of(&UpstreamError::Unreachable(refused).into()),
            Kind::Upstream(0, true)
        );
        assert_eq!(Failure::Closed.kind(), Kind::Closed);
        assert_eq!(Failure::Argument("x".into()).kind(), Kind::InvalidArgument);
        // Only the bridge's own failures are the base class; every kind has a class of its own.
        let classes: std::collections::BTreeSet<_> = [
            Kind::NotFound,
            Kind::InvalidArgument,
            Kind::OriginNotAllowed,
            Kind::InvalidConfig,
            Kind::Upstream(0, false),
            Kind::NoSpace,
            Kind::Storage,
            Kind::Closed,
            Kind::Internal,
        ]
        .map(|k| k.class().0)
        .into();
        assert_eq!(classes.len(), 9);
    }
}
