package io.embeddedserver

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
 * Thread-safe. Every call may block briefly (it waits for the server's runtime), so call it off
 * the main thread where that matters. After [close] every call throws [EmbeddedServerException].
 */
class EmbeddedServer private constructor(config: Config) : AutoCloseable {
    private val lock = ReentrantReadWriteLock()
    private val state = MutableStateFlow<Map<String, Download>>(emptyMap())
    private var handle: Long = NativeBridge.start(config.toJson(), Listener(state))

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
        /** Starts a server; throws [EmbeddedServerException] if it cannot (bad config, directory in use...). */
        @JvmStatic
        fun start(config: Config): EmbeddedServer = EmbeddedServer(config)
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

    /** Queues an offline download of catalog track [trackId]; higher [priority] runs first. */
    fun download(trackId: String, priority: Long = 0): Download = remember(call { NativeBridge.download(it, trackId, false, priority) })

    /** Queues an offline download of remote [url] (on an allowed origin). */
    fun downloadUrl(url: String, priority: Long = 0): Download = remember(call { NativeBridge.download(it, url, true, priority) })

    /** Every download, updated as they progress (progress at most every 250 ms each). */
    fun downloads(): Flow<List<Download>> = downloadMap().map { it.values.toList() }

    /** Every download by ID, as a [StateFlow]. */
    fun downloadMap(): StateFlow<Map<String, Download>> = state.asStateFlow()

    fun pause(id: String): Download = remember(call { NativeBridge.pauseDownload(it, id) })

    fun resume(id: String): Download = remember(call { NativeBridge.resumeDownload(it, id) })

    /** Cancels download [id], unpins it and frees its bytes. */
    fun cancel(id: String) {
        call { NativeBridge.cancelDownload(it, id) }
        state.update { it - id }
    }

    /** Reports connectivity; downloads wait while offline (and on metered networks unless allowed). */
    fun setNetwork(online: Boolean, metered: Boolean) = call { NativeBridge.setNetwork(it, online, metered) }

    /** Sets an upstream header (e.g. a refreshed `Authorization`), or removes it with null. */
    fun setHeader(name: String, value: String?) = call { NativeBridge.setHeader(it, name, value) }

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
        state.update { it + (download.id to download) }
        return download
    }

    private inline fun <T> call(body: (Long) -> T): T = lock.read {
        val h = handle
        if (h == 0L) throw EmbeddedServerException("the server is closed")
        body(h)
    }

    /** Called on the native event thread: only updates the flow, never blocks. */
    private class Listener(private val state: MutableStateFlow<Map<String, Download>>) : NativeBridge.Listener {
        override fun onDownload(json: String) {
            val download = Download.fromJson(json)
            state.update { it + (download.id to download) }
        }
    }
}
