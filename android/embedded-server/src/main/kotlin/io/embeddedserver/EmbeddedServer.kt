package io.embeddedserver

import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicLong
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.update

/**
 * The localhost caching HTTP server, running in this process on `127.0.0.1`. Hand [trackUrl] or
 * [proxyUrl] to the player; register tracks, queue offline downloads, report connectivity.
 *
 * Thread-safe. [start] and [close] do disk and SQLite work, and most calls wait for the server's
 * runtime (registering, queueing, pausing, cancelling touch the index): call them off the main
 * thread, or from a coroutine through [suspending] and [startSuspending], which are main-safe. The URL getters only format strings and never
 * wait, not even for a [close] in progress. After [close] every call throws
 * [EmbeddedServerException.Closed].
 *
 * Failures are [EmbeddedServerException]s of a subclass per kind ([EmbeddedServerException.NotFound],
 * [EmbeddedServerException.Upstream] with the backend's status, [EmbeddedServerException.NoSpace]...):
 * unchecked, declared with `@Throws` so that Java callers see them.
 */
class EmbeddedServer private constructor(config: Config) : AutoCloseable {
    private val state = MutableStateFlow<Map<String, Download>>(emptyMap())

    /**
     * IDs of cancelled downloads (IDs are random, never reused): an update the native thread
     * delivers after [cancel] removed the download must not bring it back into [state].
     */
    private val cancelled: MutableSet<String> = ConcurrentHashMap.newKeySet()
    /** The native handle's ID; 0 once closed. */
    private val handle = AtomicLong(NativeBridge.start(config.toJson(), Listener(state, cancelled)))

    init {
        try {
            Download.listFromJson(call { NativeBridge.downloads(it) }).forEach { keepNewest(state, cancelled, it) }
        } catch (e: Throwable) {
            close()
            throw e
        }
    }

    companion object {
        /**
         * Starts a server; throws [EmbeddedServerException] if it cannot (bad config, directory in
         * use, cleartext to 127.0.0.1 not permitted by the app's network security config: the
         * message says what to add). It opens the index and may recover from a crash: not on the
         * main thread. The server is [RunningServer.current] until it closes or another one starts.
         */
        @Throws(EmbeddedServerException::class)
        @JvmStatic
        fun start(config: Config): EmbeddedServer {
            LoopbackCleartext.requirePermitted()
            return EmbeddedServer(config).also(RunningServer::started)
        }
    }

    /** `http://127.0.0.1:PORT/TOKEN/`. */
    @get:Throws(EmbeddedServerException::class)
    val baseUrl: String get() = call { NativeBridge.baseUrl(it) }

    /** The local URL of catalog track [id]. */
    @Throws(EmbeddedServerException::class)
    fun trackUrl(id: String): String = call { NativeBridge.trackUrl(it, id) }

    /** The local URL that plays remote [url] (on an allowed origin) through the cache. */
    @Throws(EmbeddedServerException::class)
    fun proxyUrl(url: String): String = call { NativeBridge.streamUrl(it, url) }

    /** Registers or updates catalog track [id] (register again to re-sign its URL). */
    @Throws(EmbeddedServerException::class)
    @JvmOverloads
    fun registerTrack(id: String, url: String, sha256: String? = null, size: Long? = null, mime: String? = null): Track =
        Track.fromJson(call { NativeBridge.putTrack(it, id, url, sha256, size ?: -1, mime) })

    /** Catalog track [id] with its cache state. */
    @Throws(EmbeddedServerException::class)
    fun track(id: String): Track = Track.fromJson(call { NativeBridge.track(it, id) })

    /** Every catalog track with its cache state, sorted by ID. */
    @Throws(EmbeddedServerException::class)
    fun tracks(): List<Track> = Track.listFromJson(call { NativeBridge.tracks(it) })

    /**
     * Removes catalog track [id]: cancels its downloads (they leave [downloadMap]), frees its
     * cached bytes (bytes a player reads at this moment leave with ordinary eviction instead) and
     * forgets the track, across restarts too. [EmbeddedServerException.NotFound] if unknown.
     */
    @Throws(EmbeddedServerException::class)
    fun removeTrack(id: String) {
        val downloads = state.value.values.filter { it.track == id }.map { it.id }
        call { NativeBridge.removeTrack(it, id) }
        cancelled.addAll(downloads)
        state.update { current -> current - downloads.toSet() }
    }

    /**
     * How much of remote [url] (on an allowed origin) the cache holds, under the key its
     * [proxyUrl] and [downloadUrl] use; all zero when it holds nothing. For a catalog track, see
     * [track].
     */
    @Throws(EmbeddedServerException::class)
    fun cached(url: String): CachedResource = CachedResource.fromJson(call { NativeBridge.cached(it, url) })

    /** Whether every byte of remote [url] is cached: it plays offline. */
    @Throws(EmbeddedServerException::class)
    fun isCached(url: String): Boolean = cached(url).complete

    /**
     * Removes every evictable resource from the cache (a "clear cache" button): downloaded
     * (pinned) resources and those a player or a download is reading or filling now stay.
     * Returns what went; [stats] follows at once.
     */
    @Throws(EmbeddedServerException::class)
    fun clearCache(): ClearedCache = ClearedCache.fromJson(call { NativeBridge.clearCache(it) })

    /**
     * Sets the cache limit ([Config.maxCacheBytes]: bytes, downloads included) until the server
     * closes, and evicts at once down to it, least recently used first. Downloaded and in-use
     * resources stay, so downloads alone may keep the cache above a limit lowered under them (new
     * downloads then fail "cache full"). [EmbeddedServerException.InvalidArgument] if negative.
     */
    @Throws(EmbeddedServerException::class)
    fun setCacheLimit(bytes: Long) = call { NativeBridge.setCacheLimit(it, bytes) }

    /**
     * Starts fetching the first [bytes] of each catalog track in [trackIds] into the ordinary
     * (evictable, unpinned) cache in the background, so that starting them later is instant;
     * null [bytes] uses [Config.prefetchBytes]. Returns at once: watch [track] or [stats] for
     * the bytes. Throws [EmbeddedServerException] if an ID is unknown or its origin not allowed.
     * Does nothing while [setNetwork] reports offline.
     */
    @Throws(EmbeddedServerException::class)
    @JvmOverloads
    fun prefetch(trackIds: List<String>, bytes: Long? = null) {
        require(bytes == null || bytes >= 0) { "bytes must not be negative" }
        val json = trackIds.joinToString(",", "[", "]") { Json.quote(it) }
        call { NativeBridge.prefetch(it, json, bytes ?: -1) }
    }

    /** [prefetch] of one track. */
    @Throws(EmbeddedServerException::class)
    @JvmOverloads
    fun prefetch(trackId: String, bytes: Long? = null) = prefetch(listOf(trackId), bytes)

    /**
     * Queues an offline download of catalog track [trackId]; higher [priority] runs first.
     * [data] is the app's own metadata for it (a title, an album ID, a JSON document: opaque
     * text of at most [MAX_DOWNLOAD_DATA] bytes of UTF-8, else [EmbeddedServerException.InvalidArgument]),
     * kept in the index with the download and returned in [Download.data], across restarts too;
     * for a download that already exists, non-null [data] replaces its data.
     */
    @Throws(EmbeddedServerException::class)
    @JvmOverloads
    fun download(trackId: String, priority: Long = 0, data: String? = null): Download =
        remember(call { NativeBridge.download(it, trackId, false, priority, null, data) })

    /**
     * Queues an offline download of remote [url] (on an allowed origin). For an HLS playlist it
     * keeps one rendition: [variant], or by default [HlsVariant.Middle]. [data] as for [download].
     */
    @Throws(EmbeddedServerException::class)
    @JvmOverloads
    fun downloadUrl(url: String, priority: Long = 0, variant: HlsVariant? = null, data: String? = null): Download =
        remember(call { NativeBridge.download(it, url, true, priority, variant?.wire, data) })

    /** Replaces download [id]'s app data ([Download.data]), or removes it with null. */
    @Throws(EmbeddedServerException::class)
    fun setDownloadData(id: String, data: String?): Download =
        remember(call { NativeBridge.setDownloadData(it, id, data) })

    /** Every download, updated as they progress (progress at most every 250 ms each). */
    fun downloads(): Flow<List<Download>> = downloadMap().map { it.values.toList() }

    /** Every download by ID, as a [StateFlow]. */
    fun downloadMap(): StateFlow<Map<String, Download>> = state.asStateFlow()

    /**
     * Download [id] as the library has it now (also refreshes its entry in [downloadMap]).
     * Throws [EmbeddedServerException] if there is no such download.
     */
    @Throws(EmbeddedServerException::class)
    fun downloadInfo(id: String): Download = remember(call { NativeBridge.downloadInfo(it, id) })

    /** Pauses download [id]; it keeps its bytes and its place in the queue. */
    @Throws(EmbeddedServerException::class)
    fun pause(id: String): Download = remember(call { NativeBridge.pauseDownload(it, id) })

    /** Resumes a paused download, or retries a failed one. */
    @Throws(EmbeddedServerException::class)
    fun resume(id: String): Download = remember(call { NativeBridge.resumeDownload(it, id) })

    /** Cancels download [id], unpins it and frees its bytes. */
    @Throws(EmbeddedServerException::class)
    fun cancel(id: String) {
        call { NativeBridge.cancelDownload(it, id) }
        cancelled.add(id)
        state.update { it - id }
    }

    /** Reports connectivity; downloads wait while offline (and on metered networks unless allowed). */
    @Throws(EmbeddedServerException::class)
    fun setNetwork(online: Boolean, metered: Boolean) = call { NativeBridge.setNetwork(it, online, metered) }

    /** Sets an upstream header (e.g. a refreshed `Authorization`), or removes it with null. */
    @Throws(EmbeddedServerException::class)
    fun setHeader(name: String, value: String?) = call { NativeBridge.setHeader(it, name, value) }

    /**
     * Installs [resolver] as the hook asked for fresh credentials when the backend answers
     * 401/403 (see [CredentialResolver] for its threading rules), replacing any previous one;
     * null removes it. The server holds it until it is replaced, removed, or the server closes.
     */
    @Throws(EmbeddedServerException::class)
    fun setResolver(resolver: CredentialResolver?) =
        call { NativeBridge.setResolver(it, resolver?.let(::ResolverAdapter)) }

    /** The same calls as `suspend` functions that run off the calling thread (main-safe). */
    val suspending: SuspendingCalls by lazy { SuspendingCalls(this) }

    /** A statistics snapshot (counters, cache and pinned bytes, latency histograms). */
    @Throws(EmbeddedServerException::class)
    fun stats(): Stats = Stats.fromJson(call { NativeBridge.stats(it) })

    /** Whether [close] was called. */
    val isClosed: Boolean get() = handle.get() == 0L

    /**
     * Stops the server and frees it (it leaves [RunningServer]). Idempotent. Bounded: the orderly
     * stop (the final sync of written bytes included) gets 5 s and blocking work 2 s more; a
     * [CredentialResolver] that never returns is left behind on its thread. Calls made meanwhile,
     * on any thread, fail at once as closed instead of waiting. Call it off the main thread.
     */
    override fun close() {
        RunningServer.closed(this) // first: a closing server is no longer handed out
        val h = handle.getAndSet(0)
        if (h != 0L) NativeBridge.destroy(h)
    }

    private fun remember(json: String): Download = Download.fromJson(json).also { keepNewest(state, cancelled, it) }

    private inline fun <T> call(body: (Long) -> T): T {
        val h = handle.get()
        if (h == 0L) throw EmbeddedServerException.Closed("the server is closed")
        return body(h)
    }

    /** Called on the native event thread: only updates the flow, never blocks. */
    private class Listener(
        private val state: MutableStateFlow<Map<String, Download>>,
        private val cancelled: Set<String>,
    ) : NativeBridge.Listener {
        override fun onDownload(json: String) = keepNewest(state, cancelled, Download.fromJson(json))
    }

    /** Called on a native thread attached for the call; the JSON crosses back to Rust. */
    private class ResolverAdapter(private val resolver: CredentialResolver) : NativeBridge.Resolver {
        override fun refresh(trackId: String?, url: String): String? = resolver.refresh(trackId, url)?.toJson()
    }
}

/**
 * Puts [download] into [state] unless it was cancelled or [state] already holds a newer snapshot
 * of it (a higher [Download.version]): updates from the native thread and values returned by calls
 * race, and the newest must win.
 */
internal fun keepNewest(state: MutableStateFlow<Map<String, Download>>, cancelled: Set<String>, download: Download) {
    state.update { current ->
        val known = current[download.id]
        when {
            download.id in cancelled -> current
            known != null && known.version >= download.version -> current
            else -> current + (download.id to download)
        }
    }
}
