package io.embeddedserver

import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.locks.ReentrantReadWriteLock
import kotlin.concurrent.read
import kotlin.concurrent.write
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
 * thread (e.g. `withContext(Dispatchers.IO)`). The URL getters only format strings. After
 * [close] every call throws [EmbeddedServerException].
 */
class EmbeddedServer private constructor(config: Config) : AutoCloseable {
    private val lock = ReentrantReadWriteLock()
    private val state = MutableStateFlow<Map<String, Download>>(emptyMap())

    /**
     * IDs of cancelled downloads (IDs are random, never reused): an update the native thread
     * delivers after [cancel] removed the download must not bring it back into [state].
     */
    private val cancelled: MutableSet<String> = ConcurrentHashMap.newKeySet()
    private var handle: Long = NativeBridge.start(config.toJson(), Listener(state, cancelled))

    init {
        try {
            val current = Download.listFromJson(call { NativeBridge.downloads(it) }).associateBy { it.id }
            // Updates that arrived meanwhile are newer than the snapshot: they win.
            state.update { updates -> current + updates }
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
         * main thread.
         */
        @JvmStatic
        fun start(config: Config): EmbeddedServer {
            LoopbackCleartext.requirePermitted()
            return EmbeddedServer(config)
        }
    }

    /** `http://127.0.0.1:PORT/TOKEN/`. */
    val baseUrl: String get() = call { NativeBridge.baseUrl(it) }

    /** The local URL of catalog track [id]. */
    fun trackUrl(id: String): String = call { NativeBridge.trackUrl(it, id) }

    /** The local URL that plays remote [url] (on an allowed origin) through the cache. */
    fun proxyUrl(url: String): String = call { NativeBridge.streamUrl(it, url) }

    /** Registers or updates catalog track [id] (register again to re-sign its URL). */
    fun registerTrack(id: String, url: String, sha256: String? = null, size: Long? = null, mime: String? = null): Track =
        Track.fromJson(call { NativeBridge.putTrack(it, id, url, sha256, size ?: -1, mime) })

    /** Catalog track [id] with its cache state. */
    fun track(id: String): Track = Track.fromJson(call { NativeBridge.track(it, id) })

    /**
     * Starts fetching the first [bytes] of each catalog track in [trackIds] into the ordinary
     * (evictable, unpinned) cache in the background, so that starting them later is instant;
     * null [bytes] uses [Config.prefetchBytes]. Returns at once: watch [track] or [stats] for
     * the bytes. Throws [EmbeddedServerException] if an ID is unknown or its origin not allowed.
     * Does nothing while [setNetwork] reports offline.
     */
    fun prefetch(trackIds: List<String>, bytes: Long? = null) {
        require(bytes == null || bytes >= 0) { "bytes must not be negative" }
        val json = trackIds.joinToString(",", "[", "]") { Json.quote(it) }
        call { NativeBridge.prefetch(it, json, bytes ?: -1) }
    }

    /** [prefetch] of one track. */
    fun prefetch(trackId: String, bytes: Long? = null) = prefetch(listOf(trackId), bytes)

    /** Queues an offline download of catalog track [trackId]; higher [priority] runs first. */
    fun download(trackId: String, priority: Long = 0): Download =
        remember(call { NativeBridge.download(it, trackId, false, priority, null) })

    /**
     * Queues an offline download of remote [url] (on an allowed origin). For an HLS playlist it
     * keeps one rendition: [variant], or by default [HlsVariant.Middle].
     */
    fun downloadUrl(url: String, priority: Long = 0, variant: HlsVariant? = null): Download =
        remember(call { NativeBridge.download(it, url, true, priority, variant?.wire) })

    /** Every download, updated as they progress (progress at most every 250 ms each). */
    fun downloads(): Flow<List<Download>> = downloadMap().map { it.values.toList() }

    /** Every download by ID, as a [StateFlow]. */
    fun downloadMap(): StateFlow<Map<String, Download>> = state.asStateFlow()

    /**
     * Download [id] as the library has it now (also refreshes its entry in [downloadMap]).
     * Throws [EmbeddedServerException] if there is no such download.
     */
    fun downloadInfo(id: String): Download = remember(call { NativeBridge.downloadInfo(it, id) })

    /** Pauses download [id]; it keeps its bytes and its place in the queue. */
    fun pause(id: String): Download = remember(call { NativeBridge.pauseDownload(it, id) })

    /** Resumes a paused download, or retries a failed one. */
    fun resume(id: String): Download = remember(call { NativeBridge.resumeDownload(it, id) })

    /** Cancels download [id], unpins it and frees its bytes. */
    fun cancel(id: String) {
        call { NativeBridge.cancelDownload(it, id) }
        cancelled.add(id)
        state.update { it - id }
    }

    /** Reports connectivity; downloads wait while offline (and on metered networks unless allowed). */
    fun setNetwork(online: Boolean, metered: Boolean) = call { NativeBridge.setNetwork(it, online, metered) }

    /** Sets an upstream header (e.g. a refreshed `Authorization`), or removes it with null. */
    fun setHeader(name: String, value: String?) = call { NativeBridge.setHeader(it, name, value) }

    /**
     * Installs [resolver] as the hook asked for fresh credentials when the backend answers
     * 401/403 (see [CredentialResolver] for its threading rules), replacing any previous one;
     * null removes it. The server holds it until it is replaced, removed, or the server closes.
     */
    fun setResolver(resolver: CredentialResolver?) =
        call { NativeBridge.setResolver(it, resolver?.let(::ResolverAdapter)) }

    /** A statistics snapshot (counters, cache and pinned bytes, latency histograms). */
    fun stats(): Stats = Stats.fromJson(call { NativeBridge.stats(it) })

    /** Whether [close] was called. */
    val isClosed: Boolean get() = lock.read { handle == 0L }

    /** Stops the server and frees it. Idempotent. */
    override fun close() {
        lock.write {
            val h = handle
            handle = 0
            if (h != 0L) NativeBridge.destroy(h)
        }
    }

    private fun remember(json: String): Download {
        val download = Download.fromJson(json)
        state.update { if (download.id in cancelled) it else it + (download.id to download) }
        return download
    }

    private inline fun <T> call(body: (Long) -> T): T = lock.read {
        val h = handle
        if (h == 0L) throw EmbeddedServerException("the server is closed")
        body(h)
    }

    /** Called on the native event thread: only updates the flow, never blocks. */
    private class Listener(
        private val state: MutableStateFlow<Map<String, Download>>,
        private val cancelled: Set<String>,
    ) : NativeBridge.Listener {
        override fun onDownload(json: String) {
            val download = Download.fromJson(json)
            state.update { if (download.id in cancelled) it else it + (download.id to download) }
        }
    }

    /** Called on a native thread attached for the call; the JSON crosses back to Rust. */
    private class ResolverAdapter(private val resolver: CredentialResolver) : NativeBridge.Resolver {
        override fun refresh(trackId: String?, url: String): String? = resolver.refresh(trackId, url)?.toJson()
    }
}
