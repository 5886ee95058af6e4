//! Download updates delivered to Kotlin from a native thread attached to the JVM.
//!
//! The listener object is called through the global ref taken at start (`onDownload(String)`
//! with the update's JSON), so no class is looked up from the native thread (Android's
//! `FindClass` there would only see system classes).

use std::thread::JoinHandle;

use jni::objects::{GlobalRef, JObject, JValue};
use jni::{JNIEnv, JavaVM};

use super::policy::Failure;
use crate::{BlockingServer, DownloadEvents};

/// Starts the thread that calls `listener.onDownload(json)` for every update until the server stops.
pub(super) fn spawn(
    env: &mut JNIEnv<'_>,
    server: &BlockingServer,
    listener: &JObject<'_>,
) -> Result<Option<JoinHandle<()>>, Failure> {
    if listener.is_null() {
        return Ok(None);
    }
    let vm = env.get_java_vm()?;
    let target = env.new_global_ref(listener)?;
    let events = server.download_events()?;
    let thread = std::thread::Builder::new()
        .name("embedded-server-events".into())
        .spawn(move || deliver(vm, target, events))
        .map_err(|e| Failure::Argument(format!("cannot start the download listener thread: {e}")))?;
    Ok(Some(thread))
}

fn deliver(vm: JavaVM, target: GlobalRef, mut events: DownloadEvents) {
    // A daemon thread, like every background thread a library starts: it never keeps the JVM from
    // exiting (the desktop JVM waits for non-daemon threads; Android reports them in traces).
    let mut env = match vm.attach_current_thread_as_daemon() {
        Ok(env) => env,
        Err(e) => {
            tracing::warn!(error = %e, "cannot attach the download listener thread to the JVM");
            return;
        }
    };
    while let Some(info) = events.recv() {
        let Ok(json) = serde_json::to_string(&info) else {
            continue;
        };
        let delivered = env.with_local_frame(4, |env| -> jni::errors::Result<()> {
            let text = env.new_string(&json)?;
            env.call_method(&target, "onDownload", "(Ljava/lang/String;)V", &[JValue::Object(&text)])?;
            Ok(())
        });
        if let Err(e) = delivered {
            if env.exception_check().unwrap_or(false) {
                let _ = env.exception_describe();
                let _ = env.exception_clear();
            }
            tracing::warn!(error = %e, "the download listener failed");
        }
    }
    // Released while still attached; the thread detaches itself when it exits.
    drop(target);
}
