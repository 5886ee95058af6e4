//! The credential hook ([`Resolver`]) implemented by a Kotlin object.
//!
//! The engine calls [`Resolver::refresh`] on one of its blocking threads, which the JVM has never
//! seen: the call attaches that thread for its duration (and detaches it again, unless it was
//! already attached), runs inside a local frame so no local reference outlives it, and clears any
//! exception the Kotlin side threw (it then counts as "no fresh credentials"). The object is held
//! by a global ref, released when the hook is replaced or removed, or when the server stops.

use std::panic::{self, AssertUnwindSafe};

use jni::objects::{GlobalRef, JObject, JString, JValue};
use jni::{JNIEnv, JavaVM};
use serde::Deserialize;

use super::policy::Failure;
use crate::{Refreshed, Resolver};

/// What `NativeBridge.Resolver.refresh` returns (JSON), or null for "give up".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    url: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

/// A Kotlin `NativeBridge.Resolver` behind the engine's [`Resolver`] trait.
pub(super) struct JvmResolver {
    vm: JavaVM,
    target: GlobalRef,
}

impl JvmResolver {
    /// Takes a global ref to `resolver`; `None` when it is null (remove the hook).
    pub(super) fn new(env: &mut JNIEnv<'_>, resolver: &JObject<'_>) -> Result<Option<Self>, Failure> {
        if resolver.is_null() {
            return Ok(None);
        }
        Ok(Some(Self {
            vm: env.get_java_vm()?,
            target: env.new_global_ref(resolver)?,
        }))
    }

    fn call(&self, track_id: Option<&str>, url: &str) -> Result<Option<Refreshed>, String> {
        let mut env = self
            .vm
            .attach_current_thread()
            .map_err(|e| format!("cannot attach to the JVM: {e}"))?;
        let reply = env.with_local_frame(4, |env| -> jni::errors::Result<Option<String>> {
            let track = match track_id {
                Some(id) => JObject::from(env.new_string(id)?),
                None => JObject::null(),
            };
            let url = env.new_string(url)?;
            let out = env
                .call_method(
                    &self.target,
                    "refresh",
                    "(Ljava/lang/String;Ljava/lang/String;)Ljava/lang/String;",
                    &[JValue::Object(&track), JValue::Object(&url)],
                )?
                .l()?;
            if out.is_null() {
                return Ok(None);
            }
            Ok(Some(env.get_string(&JString::from(out))?.into()))
        });
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                if env.exception_check().unwrap_or(false) {
                    let _ = env.exception_describe();
                    let _ = env.exception_clear();
                }
                return Err(format!("the resolver failed: {e}"));
            }
        };
        // The guard detaches here (if it attached): nothing below touches the JVM.
        drop(env);
        let Some(json) = reply else { return Ok(None) };
        let reply: Reply = serde_json::from_str(&json).map_err(|e| format!("the resolver answered bad JSON: {e}"))?;
        Ok(Some(Refreshed {
            url: reply.url,
            headers: reply.headers,
        }))
    }
}

impl Resolver for JvmResolver {
    fn refresh(&self, track_id: Option<&str>, url: &str) -> Option<Refreshed> {
        match panic::catch_unwind(AssertUnwindSafe(|| self.call(track_id, url))) {
            Ok(Ok(refreshed)) => refreshed,
            Ok(Err(message)) => {
                tracing::warn!(%message, "no fresh credentials");
                None
            }
            Err(_) => {
                tracing::warn!("the resolver panicked");
                None
            }
        }
    }
}
