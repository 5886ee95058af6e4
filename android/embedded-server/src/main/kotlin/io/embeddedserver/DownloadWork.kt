package io.embeddedserver

import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.withTimeoutOrNull

/**
 * The download worker's loop in plain Kotlin, so that the host JVM runs it against a real server:
 * `DownloadWorker` (Android only) adds the host lookup, the notification and WorkManager's result.
 */
object DownloadWork {
    /** How long downloads may wait for a usable network before the work ends, to be retried. */
    const val NETWORK_GRACE_MS: Long = 60_000

    /** The shortest time between two progress updates (the system drops faster notification updates). */
    const val UPDATE_INTERVAL_MS: Long = 1_000

    /**
     * Follows [server]'s downloads until the work settles ([PendingWork.awaitSettled]) and returns
     * how: [PendingWork.NONE] or [PendingWork.WAITING_FOR_NETWORK], or null if the server was
     * closed meanwhile. Meanwhile calls [show] with the progress of the downloads seen pending
     * since the call ([DownloadSession]) whenever it changed, at most once per [updateIntervalMs],
     * and only while some are pending (nothing pending at the start: no call at all).
     */
    suspend fun follow(
        server: EmbeddedServer,
        networkGraceMs: Long = NETWORK_GRACE_MS,
        updateIntervalMs: Long = UPDATE_INTERVAL_MS,
        show: suspend (DownloadProgress) -> Unit,
    ): PendingWork? = coroutineScope {
        require(updateIntervalMs > 0) { "updateIntervalMs must be positive" }
        val session = DownloadSession()
        val settled = async { PendingWork.awaitSettled(server.downloadMap(), networkGraceMs) }
        var shown: DownloadProgress? = null
        // Ticks while the work runs: to rate-limit updates, and to notice a close(), after which
        // the download map no longer changes.
        while (settled.isActive && !server.isClosed) {
            val progress = session.update(server.downloadMap().value)
            if (progress != shown && progress.pending > 0) {
                show(progress)
                shown = progress
            }
            withTimeoutOrNull(updateIntervalMs) { settled.join() }
        }
        if (settled.isCompleted) settled.await() else null.also { settled.cancel() }
    }
}
