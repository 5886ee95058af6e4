package io.embeddedserver

import kotlin.coroutines.CoroutineContext
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/**
 * Main-safe versions of the [EmbeddedServer] calls that do disk, SQLite or JNI work: each runs the
 * blocking call on [context] ([Dispatchers.IO] by default), so a coroutine may call it from the
 * main thread. Get it from [EmbeddedServer.suspending]; start with [EmbeddedServer.startSuspending].
 * Same arguments, results and exceptions as the blocking calls, which stay for Java callers.
 */
class SuspendingCalls internal constructor(
    private val server: EmbeddedServer,
    private val context: CoroutineContext = Dispatchers.IO,
) {
    private suspend fun <T> io(block: EmbeddedServer.() -> T): T = withContext(context) { server.block() }

    /** [EmbeddedServer.registerTrack]. */
    suspend fun registerTrack(id: String, url: String, sha256: String? = null, size: Long? = null, mime: String? = null) =
        io { registerTrack(id, url, sha256, size, mime) }

    /** [EmbeddedServer.track]. */
    suspend fun track(id: String) = io { track(id) }

    /** [EmbeddedServer.prefetch]. */
    suspend fun prefetch(trackIds: List<String>, bytes: Long? = null) = io { prefetch(trackIds, bytes) }

    /** [EmbeddedServer.download]. */
    suspend fun download(trackId: String, priority: Long = 0, data: String? = null) =
        io { download(trackId, priority, data) }

    /** [EmbeddedServer.downloadUrl]. */
    suspend fun downloadUrl(url: String, priority: Long = 0, variant: HlsVariant? = null, data: String? = null) =
        io { downloadUrl(url, priority, variant, data) }

    /** [EmbeddedServer.setDownloadData]. */
    suspend fun setDownloadData(id: String, data: String?) = io { setDownloadData(id, data) }

    /** [EmbeddedServer.tracks]. */
    suspend fun tracks() = io { tracks() }

    /** [EmbeddedServer.removeTrack]. */
    suspend fun removeTrack(id: String) = io { removeTrack(id) }

    /** [EmbeddedServer.cached]. */
    suspend fun cached(url: String) = io { cached(url) }

    /** [EmbeddedServer.isCached]. */
    suspend fun isCached(url: String) = io { isCached(url) }

    /** [EmbeddedServer.clearCache]. */
    suspend fun clearCache() = io { clearCache() }

    /** [EmbeddedServer.setCacheLimit]. */
    suspend fun setCacheLimit(bytes: Long) = io { setCacheLimit(bytes) }

    /** [EmbeddedServer.downloadInfo]. */
    suspend fun downloadInfo(id: String) = io { downloadInfo(id) }

    /** [EmbeddedServer.pause]. */
    suspend fun pause(id: String) = io { pause(id) }

    /** [EmbeddedServer.resume]. */
    suspend fun resume(id: String) = io { resume(id) }

    /** [EmbeddedServer.cancel]. */
    suspend fun cancel(id: String) = io { cancel(id) }

    /** [EmbeddedServer.stats]. */
    suspend fun stats() = io { stats() }

    /** [EmbeddedServer.close]: bounded, see there. */
    suspend fun close() = io { close() }
}

/** [EmbeddedServer.start] off the calling thread: main-safe. */
suspend fun EmbeddedServer.Companion.startSuspending(config: Config): EmbeddedServer =
    withContext(Dispatchers.IO) { start(config) }
