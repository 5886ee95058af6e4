//! The JNI bridge under the Kotlin API (`android/embedded-server`, class
//! `io.embeddedserver.NativeBridge`): a thin layer over [`BlockingServer`].
//!
//! Every export does four things: enter the env, decode its arguments, make one call on the
//! facade, encode the result. Failures and panics go through [`policy::run`], which throws
//! `io.embeddedserver.EmbeddedServerException` with the error's message. Structured results
//! (tracks, downloads, stats) cross as JSON strings to keep the boundary small.

// The exports are `pub` so the cdylib exports them; nothing in Rust reaches them.
#![allow(unreachable_pub)]

mod listener;
mod logging;
mod policy;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use jni::objects::{JClass, JObject, JString};
use jni::sys::{jboolean, jlong, jstring, JNI_TRUE};
use jni::JNIEnv;
use serde::{Deserialize, Serialize};

use self::policy::{run, Failure, Handle};
use crate::{BlockingServer, Config, DownloadTarget, NetworkState, TrackSpec};

/// The configuration as Kotlin sends it (JSON); an absent field keeps the library default.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigArgs {
    cache_dir: PathBuf,
    port: Option<u16>,
    token: Option<String>,
    #[serde(default)]
    origins: Vec<String>,
    max_cache_bytes: Option<u64>,
    #[serde(default)]
    upstream_headers: Vec<(String, String)>,
    ca_cert_pem: Option<PathBuf>,
    connect_timeout_ms: Option<u64>,
    read_timeout_ms: Option<u64>,
    upstream_attempts: Option<u32>,
    max_connections: Option<usize>,
    download_workers: Option<usize>,
    allow_metered_downloads: Option<bool>,
    prefetch_bytes: Option<u64>,
}

impl ConfigArgs {
    fn into_config(self) -> Config {
        let mut config = Config::new(self.cache_dir);
        config.port = self.port.unwrap_or(config.port);
        config.token = self.token;
        config.origins = self.origins;
        config.max_cache_bytes = self.max_cache_bytes.unwrap_or(config.max_cache_bytes);
        config.upstream_headers = self.upstream_headers;
        config.ca_cert_pem = self.ca_cert_pem;
        config.connect_timeout = self
            .connect_timeout_ms
            .map_or(config.connect_timeout, Duration::from_millis);
        config.read_timeout = self.read_timeout_ms.map_or(config.read_timeout, Duration::from_millis);
        config.upstream_attempts = self.upstream_attempts.unwrap_or(config.upstream_attempts);
        config.max_connections = self.max_connections.unwrap_or(config.max_connections);
        config.download_workers = self.download_workers.unwrap_or(config.download_workers);
        config.allow_metered_downloads = self.allow_metered_downloads.unwrap_or(config.allow_metered_downloads);
        config.prefetch_bytes = self.prefetch_bytes.unwrap_or(config.prefetch_bytes);
        config
    }
}

fn string(env: &mut JNIEnv<'_>, value: &JString<'_>, what: &str) -> Result<String, Failure> {
    if value.is_null() {
        return Err(Failure::Argument(format!("{what} must not be null")));
    }
    Ok(env.get_string(value)?.into())
}

fn optional_string(env: &mut JNIEnv<'_>, value: &JString<'_>) -> Result<Option<String>, Failure> {
    if value.is_null() {
        return Ok(None);
    }
    Ok(Some(env.get_string(value)?.into()))
}

fn new_string(env: &mut JNIEnv<'_>, value: &str) -> Result<jstring, Failure> {
    Ok(env.new_string(value)?.into_raw())
}

fn json(env: &mut JNIEnv<'_>, value: &impl Serialize) -> Result<jstring, Failure> {
    let text = serde_json::to_string(value).map_err(|e| Failure::Argument(format!("cannot encode JSON: {e}")))?;
    new_string(env, &text)
}

/// Starts a server from the JSON configuration; returns its handle. `listener` (nullable)
/// receives `onDownload(String)` with every download update until the server stops.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_start<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    config: JString<'l>,
    listener: JObject<'l>,
) -> jlong {
    run(&mut env, 0, |env| {
        logging::init();
        let config = string(env, &config, "config")?;
        let args: ConfigArgs =
            serde_json::from_str(&config).map_err(|e| Failure::Argument(format!("bad configuration: {e}")))?;
        let server = BlockingServer::start(args.into_config())?;
        let thread = listener::spawn(env, &server, &listener)?;
        Ok(policy::create(Handle {
            server,
            listener: Mutex::new(thread),
        }))
    })
}

/// Stops the server (idempotent); the handle stays valid until `destroy`, and calls on it throw.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_stop<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    run(&mut env, (), |_| Ok(policy::get(handle)?.stop()?))
}

/// Stops the server if needed and frees the handle. Idempotent.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_destroy<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    run(&mut env, (), |_| match policy::take(handle) {
        Some(handle) => Ok(handle.stop()?),
        None => Ok(()),
    })
}

/// `http://127.0.0.1:PORT/TOKEN/`.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_baseUrl<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let url = policy::get(handle)?.server.base_url()?;
        new_string(env, &url)
    })
}

/// The local URL of catalog track `id`.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_trackUrl<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    id: JString<'l>,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let id = string(env, &id, "id")?;
        let url = policy::get(handle)?.server.track_url(&id)?;
        new_string(env, &url)
    })
}

/// The local URL serving remote URL `remote` through the cache.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_streamUrl<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    remote: JString<'l>,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let remote = string(env, &remote, "url")?;
        let url = policy::get(handle)?.server.stream_url(&remote)?;
        new_string(env, &url)
    })
}

/// Registers or updates catalog track `id`; `size < 0` means unknown. Returns the track's JSON.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the JNI signature: env, class, handle and five fields
pub extern "system" fn Java_io_embeddedserver_NativeBridge_putTrack<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    id: JString<'l>,
    url: JString<'l>,
    sha256: JString<'l>,
    size: jlong,
    mime: JString<'l>,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let id = string(env, &id, "id")?;
        let spec = TrackSpec {
            url: string(env, &url, "url")?,
            sha256: optional_string(env, &sha256)?,
            size: u64::try_from(size).ok(),
            mime: optional_string(env, &mime)?,
        };
        let info = policy::get(handle)?.server.put_track(&id, spec)?;
        json(env, &info)
    })
}

/// Catalog track `id` with its cache state, as JSON.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_track<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    id: JString<'l>,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let id = string(env, &id, "id")?;
        let info = policy::get(handle)?.server.track(&id)?;
        json(env, &info)
    })
}

/// A statistics snapshot, as JSON.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_stats<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let stats = policy::get(handle)?.server.stats()?;
        json(env, &stats)
    })
}

/// Sets (or with a null value removes) a header sent with every upstream request.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_setHeader<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    name: JString<'l>,
    value: JString<'l>,
) {
    run(&mut env, (), |env| {
        let name = string(env, &name, "name")?;
        let value = optional_string(env, &value)?;
        Ok(policy::get(handle)?.server.set_header(&name, value.as_deref())?)
    })
}

/// Queues an offline download of a catalog track (`isUrl` false) or a remote URL; returns its JSON.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_download<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    target: JString<'l>,
    is_url: jboolean,
    priority: jlong,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let target = string(env, &target, "target")?;
        let target = if is_url == JNI_TRUE {
            DownloadTarget::Url(target)
        } else {
            DownloadTarget::Track(target)
        };
        let info = policy::get(handle)?.server.download(target, priority)?;
        json(env, &info)
    })
}

/// Every download, as a JSON array.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_downloads<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let downloads = policy::get(handle)?.server.downloads()?;
        json(env, &downloads)
    })
}

/// Pauses download `id`; returns its JSON.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_pauseDownload<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    id: JString<'l>,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let id = string(env, &id, "id")?;
        let info = policy::get(handle)?.server.pause_download(&id)?;
        json(env, &info)
    })
}

/// Resumes download `id`; returns its JSON.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_resumeDownload<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    id: JString<'l>,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let id = string(env, &id, "id")?;
        let info = policy::get(handle)?.server.resume_download(&id)?;
        json(env, &info)
    })
}

/// Cancels download `id` and frees its bytes.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_cancelDownload<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    id: JString<'l>,
) {
    run(&mut env, (), |env| {
        let id = string(env, &id, "id")?;
        Ok(policy::get(handle)?.server.cancel_download(&id)?)
    })
}

/// Reports the device's connectivity.
#[no_mangle]
pub extern "system" fn Java_io_embeddedserver_NativeBridge_setNetwork<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    online: jboolean,
    metered: jboolean,
) {
    run(&mut env, (), |_| {
        let state = NetworkState {
            online: online == JNI_TRUE,
            metered: metered == JNI_TRUE,
        };
        Ok(policy::get(handle)?.server.set_network(state)?)
    })
}
