//! The JNI bridge under the Kotlin API (`android/embedded-server`, class
//! `io.embeddedserver.NativeBridge`): a thin layer over [`BlockingServer`].
//!
//! Every export does four things: enter the env, decode its arguments, make one call on the
//! facade, encode the result. The [`export!`] macro writes the `extern "system"` signature and
//! routes the body through [`policy::run`], so failures and panics become
//! `io.embeddedserver.EmbeddedServerException` with the error's message. Structured values
//! (tracks, downloads, stats, lists of IDs) cross as JSON strings to keep the boundary small:
//! no Java arrays or objects are built or walked here.

// The exports are `pub` so the cdylib exports them; nothing in Rust reaches them.
#![allow(unreachable_pub)]

mod listener;
mod logging;
mod policy;
mod resolver;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jni::objects::{JClass, JObject, JString};
use jni::sys::{jboolean, jlong, jstring, JNI_FALSE};
use jni::JNIEnv;
use serde::{Deserialize, Serialize};

use self::policy::{run, Failure, Handle};
use crate::{BlockingServer, Config, DownloadTarget, NetworkState, TrackSpec, VariantChoice};

/// Writes a `#[no_mangle] extern "system"` export from a signature and a body.
///
/// `fn NAME<'l>(ENV, ARG: TYPE, ...) -> RET { BODY }`: `ENV` is the pattern bound to the
/// `&mut JNIEnv` inside `BODY` (`_` when unused), the `JClass` parameter of a static native method
/// is implicit, and `BODY` evaluates to `Result<RET, Failure>`. On failure the export throws and
/// returns [`policy::Fallback::fallback`] (null, 0), which Kotlin never sees.
macro_rules! export {
    ($(
        $(#[$meta:meta])*
        fn $name:ident<$l:lifetime>($env:pat_param $(, $arg:ident: $ty:ty)* $(,)?) $(-> $ret:ty)? $body:block
    )*) => {$(
        $(#[$meta])*
        #[no_mangle]
        pub extern "system" fn $name<$l>(mut env: JNIEnv<$l>, _class: JClass<$l>, $($arg: $ty),*) $(-> $ret)? {
            run(&mut env, policy::Fallback::fallback(), |$env| $body)
        }
    )*};
}

/// The configuration as Kotlin sends it (JSON); an absent field keeps the library default.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigArgs {
    cache_dir: PathBuf,
    downloads_dir: Option<PathBuf>,
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
    resolver_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    download_workers: Option<usize>,
    allow_metered_downloads: Option<bool>,
    prefetch_bytes: Option<u64>,
    /// `{"online": bool, "metered": bool}`: the device's connectivity at start.
    initial_network: Option<NetworkState>,
    resident_resources: Option<usize>,
    /// This and the next: bits per second; absent or null: no cap.
    metered_max_bandwidth: Option<u64>,
    unmetered_max_bandwidth: Option<u64>,
    /// `"yield"` or `"share"`.
    link_policy: Option<crate::LinkPolicy>,
    playback_ahead_bytes: Option<u64>,
}

impl ConfigArgs {
    fn into_config(self) -> Config {
        let mut config = Config::new(self.cache_dir);
        config.downloads_dir = self.downloads_dir;
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
        config.resolver_timeout = self
            .resolver_timeout_ms
            .map_or(config.resolver_timeout, Duration::from_millis);
        config.max_connections = self.max_connections.unwrap_or(config.max_connections);
        config.download_workers = self.download_workers.unwrap_or(config.download_workers);
        config.allow_metered_downloads = self.allow_metered_downloads.unwrap_or(config.allow_metered_downloads);
        config.prefetch_bytes = self.prefetch_bytes.unwrap_or(config.prefetch_bytes);
        config.initial_network = self.initial_network.unwrap_or(config.initial_network);
        config.resident_resources = self.resident_resources.unwrap_or(config.resident_resources);
        config.metered_max_bandwidth = self.metered_max_bandwidth;
        config.unmetered_max_bandwidth = self.unmetered_max_bandwidth;
        config.link_policy = self.link_policy.unwrap_or(config.link_policy);
        config.playback_ahead_bytes = self.playback_ahead_bytes.unwrap_or(config.playback_ahead_bytes);
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

/// A Java `boolean`: anything but `JNI_FALSE` is true (JNI only promises 0 and non-zero).
fn flag(value: jboolean) -> bool {
    value != JNI_FALSE
}

export! {
    /// Starts a server from the JSON configuration; returns its handle. `listener` (nullable)
    /// receives `onDownload(String)` with every download update until the server stops.
    fn Java_io_embeddedserver_NativeBridge_start<'l>(env, config: JString<'l>, listener: JObject<'l>) -> jlong {
        logging::init();
        let config = string(env, &config, "config")?;
        let args: ConfigArgs =
            serde_json::from_str(&config).map_err(|e| Failure::Argument(format!("bad configuration: {e}")))?;
        let server = BlockingServer::start(args.into_config())?;
        // Once per start, as the desktop CLI does: logcat is where a developer finds the token to
        // open the dashboard through `adb forward tcp:PORT tcp:PORT`. No other line carries it.
        tracing::info!(url = %server.base_url()?, "dashboard");
        // On failure from here on, dropping `server` stops it again.
        let thread = listener::spawn(env, &server, &listener)?;
        Ok(policy::create(Handle {
            server,
            listener: Mutex::new(thread),
        }))
    }

    /// Stops the server (idempotent); the handle stays registered until `destroy`, and calls on
    /// it throw.
    fn Java_io_embeddedserver_NativeBridge_stop<'l>(_, handle: jlong) {
        Ok(policy::get(handle)?.stop()?)
    }

    /// Unregisters the handle and stops its server, within a bounded time (see
    /// [`BlockingServer::shutdown`]); a call still running on it keeps its own reference and
    /// fails as closed. Idempotent.
    fn Java_io_embeddedserver_NativeBridge_destroy<'l>(_, handle: jlong) {
        match policy::take(handle) {
            Some(handle) => Ok(handle.stop()?),
            None => Ok(()),
        }
    }

    /// `http://127.0.0.1:PORT/TOKEN/`.
    fn Java_io_embeddedserver_NativeBridge_baseUrl<'l>(env, handle: jlong) -> jstring {
        let url = policy::get(handle)?.server.base_url()?;
        new_string(env, &url)
    }

    /// The local URL of catalog track `id`.
    fn Java_io_embeddedserver_NativeBridge_trackUrl<'l>(env, handle: jlong, id: JString<'l>) -> jstring {
        let id = string(env, &id, "id")?;
        let url = policy::get(handle)?.server.track_url(&id)?;
        new_string(env, &url)
    }

    /// The local URL serving remote URL `remote` through the cache.
    fn Java_io_embeddedserver_NativeBridge_streamUrl<'l>(env, handle: jlong, remote: JString<'l>) -> jstring {
        let remote = string(env, &remote, "url")?;
        let url = policy::get(handle)?.server.stream_url(&remote)?;
        new_string(env, &url)
    }

    /// Registers or updates catalog track `id`; `size < 0` means unknown. Returns the track's JSON.
    #[allow(clippy::too_many_arguments)] // the JNI signature: env, class, handle and five fields
    fn Java_io_embeddedserver_NativeBridge_putTrack<'l>(
        env,
        handle: jlong,
        id: JString<'l>,
        url: JString<'l>,
        sha256: JString<'l>,
        size: jlong,
        mime: JString<'l>,
    ) -> jstring {
        let id = string(env, &id, "id")?;
        let spec = TrackSpec {
            url: string(env, &url, "url")?,
            sha256: optional_string(env, &sha256)?,
            size: u64::try_from(size).ok(),
            mime: optional_string(env, &mime)?,
        };
        let info = policy::get(handle)?.server.put_track(&id, spec)?;
        json(env, &info)
    }

    /// Catalog track `id` with its cache state, as JSON.
    fn Java_io_embeddedserver_NativeBridge_track<'l>(env, handle: jlong, id: JString<'l>) -> jstring {
        let id = string(env, &id, "id")?;
        let info = policy::get(handle)?.server.track(&id)?;
        json(env, &info)
    }

    /// Starts fetching the first `bytes` (`< 0`: the configured `prefetchBytes`) of each catalog
    /// track in `tracks` (a JSON array of IDs) into the evictable cache, in the background.
    /// Fails at once if an ID is unknown or its origin is not allowed; nothing is fetched offline.
    fn Java_io_embeddedserver_NativeBridge_prefetch<'l>(env, handle: jlong, tracks: JString<'l>, bytes: jlong) {
        let tracks = string(env, &tracks, "tracks")?;
        let tracks: Vec<String> = serde_json::from_str(&tracks)
            .map_err(|e| Failure::Argument(format!("tracks must be a JSON array of IDs: {e}")))?;
        Ok(policy::get(handle)?.server.prefetch(&tracks, u64::try_from(bytes).ok())?)
    }

    /// A statistics snapshot, as JSON.
    fn Java_io_embeddedserver_NativeBridge_stats<'l>(env, handle: jlong) -> jstring {
        let stats = policy::get(handle)?.server.stats()?;
        json(env, &stats)
    }

    /// Sets (or with a null value removes) a header sent with every upstream request.
    fn Java_io_embeddedserver_NativeBridge_setHeader<'l>(env, handle: jlong, name: JString<'l>, value: JString<'l>) {
        let name = string(env, &name, "name")?;
        let value = optional_string(env, &value)?;
        Ok(policy::get(handle)?.server.set_header(&name, value.as_deref())?)
    }

    /// Installs (or with null removes) the credential hook: `resolver.refresh(String, String)`
    /// is called from a native thread, attached for the call, when the backend answers 401/403.
    /// The global ref is released when it is replaced, removed, or the server stops.
    fn Java_io_embeddedserver_NativeBridge_setResolver<'l>(env, handle: jlong, resolver: JObject<'l>) {
        let live = policy::get(handle)?;
        let hook = resolver::JvmResolver::new(env, &resolver)?;
        Ok(live.server.set_resolver(hook.map(|h| Arc::new(h) as _))?)
    }

    /// Queues an offline download of a catalog track (`isUrl` false) or a remote URL, for an HLS
    /// URL keeping `variant` (`lowest`, `highest`, `middle`, `max:BPS`; null: the middle one),
    /// with the app's `data` (nullable); returns its JSON.
    #[allow(clippy::too_many_arguments)] // the JNI signature: env, class, handle and five fields
    fn Java_io_embeddedserver_NativeBridge_download<'l>(
        env,
        handle: jlong,
        target: JString<'l>,
        is_url: jboolean,
        priority: jlong,
        variant: JString<'l>,
        data: JString<'l>,
    ) -> jstring {
        let target = string(env, &target, "target")?;
        let variant = optional_string(env, &variant)?;
        let data = optional_string(env, &data)?;
        let target = match (flag(is_url), variant) {
            (true, None) => DownloadTarget::Url(target),
            (true, Some(v)) => DownloadTarget::Hls {
                url: target,
                variant: v
                    .parse::<VariantChoice>()
                    .map_err(|e| Failure::Argument(e.to_string()))?,
            },
            (false, None) => DownloadTarget::Track(target),
            (false, Some(_)) => return Err(Failure::Argument("a variant applies to an HLS URL, not a track".into())),
        };
        let info = policy::get(handle)?.server.download_with_data(target, priority, data)?;
        json(env, &info)
    }

    /// Replaces (or with null removes) download `id`'s app data; returns its JSON.
    fn Java_io_embeddedserver_NativeBridge_setDownloadData<'l>(env, handle: jlong, id: JString<'l>, data: JString<'l>) -> jstring {
        let id = string(env, &id, "id")?;
        let data = optional_string(env, &data)?;
        let info = policy::get(handle)?.server.set_download_data(&id, data)?;
        json(env, &info)
    }

    /// Every catalog track with its cache state, as a JSON array.
    fn Java_io_embeddedserver_NativeBridge_tracks<'l>(env, handle: jlong) -> jstring {
        let tracks = policy::get(handle)?.server.tracks()?;
        json(env, &tracks)
    }

    /// Removes catalog track `id`, its downloads and its cached bytes.
    fn Java_io_embeddedserver_NativeBridge_removeTrack<'l>(env, handle: jlong, id: JString<'l>) {
        let id = string(env, &id, "id")?;
        Ok(policy::get(handle)?.server.remove_track(&id)?)
    }

    /// How much of remote `url` the cache holds, as JSON.
    fn Java_io_embeddedserver_NativeBridge_cached<'l>(env, handle: jlong, url: JString<'l>) -> jstring {
        let url = string(env, &url, "url")?;
        let info = policy::get(handle)?.server.cached(&url)?;
        json(env, &info)
    }

    /// Removes every evictable resource; returns what went, as JSON.
    fn Java_io_embeddedserver_NativeBridge_clearCache<'l>(env, handle: jlong) -> jstring {
        let cleared = policy::get(handle)?.server.clear_cache()?;
        json(env, &cleared)
    }

    /// Sets the cache limit in bytes, evicting down to it at once.
    fn Java_io_embeddedserver_NativeBridge_setCacheLimit<'l>(_, handle: jlong, bytes: jlong) {
        let bytes = u64::try_from(bytes).map_err(|_| Failure::Argument(format!("the cache limit must not be negative: {bytes}")))?;
        Ok(policy::get(handle)?.server.set_cache_limit(bytes)?)
    }

    /// Every download, as a JSON array.
    fn Java_io_embeddedserver_NativeBridge_downloads<'l>(env, handle: jlong) -> jstring {
        let downloads = policy::get(handle)?.server.downloads()?;
        json(env, &downloads)
    }

    /// Download `id`, as JSON.
    fn Java_io_embeddedserver_NativeBridge_downloadInfo<'l>(env, handle: jlong, id: JString<'l>) -> jstring {
        let id = string(env, &id, "id")?;
        let info = policy::get(handle)?.server.download_info(&id)?;
        json(env, &info)
    }

    /// Pauses download `id`; returns its JSON.
    fn Java_io_embeddedserver_NativeBridge_pauseDownload<'l>(env, handle: jlong, id: JString<'l>) -> jstring {
        let id = string(env, &id, "id")?;
        let info = policy::get(handle)?.server.pause_download(&id)?;
        json(env, &info)
    }

    /// Resumes download `id`; returns its JSON.
    fn Java_io_embeddedserver_NativeBridge_resumeDownload<'l>(env, handle: jlong, id: JString<'l>) -> jstring {
        let id = string(env, &id, "id")?;
        let info = policy::get(handle)?.server.resume_download(&id)?;
        json(env, &info)
    }

    /// Cancels download `id` and frees its bytes.
    fn Java_io_embeddedserver_NativeBridge_cancelDownload<'l>(env, handle: jlong, id: JString<'l>) {
        let id = string(env, &id, "id")?;
        Ok(policy::get(handle)?.server.cancel_download(&id)?)
    }

    /// Reports the device's connectivity.
    fn Java_io_embeddedserver_NativeBridge_setNetwork<'l>(_, handle: jlong, online: jboolean, metered: jboolean) {
        let state = NetworkState {
            online: flag(online),
            metered: flag(metered),
        };
        Ok(policy::get(handle)?.server.set_network(state)?)
    }
}
