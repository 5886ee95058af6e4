package io.embeddedserver

import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.withTimeoutOrNull

/**
 * Whether background work is left, decided from the downloads alone: what the download worker
 * (`DownloadWorker`, Android only) waits on, kept in plain Kotlin so that the host JVM tests it
 * against a real server.
 */
enum class PendingWork {
    /** No download is queued, running or waiting for the network: the work is done. */
    NONE,

    /** A download is queued or running: bytes are moving, or about to. */
    ACTIVE,

    /**
     * Downloads are pending but the server's network gate is closed (offline, or metered): none
     * runs and at least one waits for the network. The others stay queued behind it (the
     * server's few workers all wait at the gate), so they wait for the network too.
     */
    WAITING_FOR_NETWORK,
    ;

    companion object {
        /**
         * Whether [download] still needs background work: queued, running and waiting for the
         * network do; paused (the user's choice), completed and failed do not.
         */
        @JvmStatic
        fun isPending(download: Download): Boolean = when (download.state) {
            DownloadState.QUEUED, DownloadState.RUNNING, DownloadState.WAITING_FOR_NETWORK -> true
            DownloadState.PAUSED, DownloadState.COMPLETED, DownloadState.FAILED -> false
        }

        /** The work left over [downloads]. */
        @JvmStatic
        fun of(downloads: Collection<Download>): PendingWork {
            val pending = downloads.filter(::isPending)
            return when {
                pending.isEmpty() -> NONE
                pending.none { it.state == DownloadState.RUNNING } &&
                    pending.any { it.state == DownloadState.WAITING_FOR_NETWORK } -> WAITING_FOR_NETWORK
                else -> ACTIVE
            }
        }

        /**
         * Suspends while downloads are [ACTIVE] and returns how the work ended: [NONE] once no
         * download is pending, or [WAITING_FOR_NETWORK] once the work has been that for
         * [networkGraceMs] without a change (a network that drops for a few seconds does not end
         * the work; one that stays away does, so the worker gives the device back instead of
         * holding a foreground service that moves no bytes).
         */
        suspend fun awaitSettled(downloads: StateFlow<Map<String, Download>>, networkGraceMs: Long): PendingWork {
            require(networkGraceMs >= 0) { "networkGraceMs must not be negative" }
            val work: Flow<PendingWork> = downloads.map { of(it.values) }
            while (true) {
                if (work.first { it != ACTIVE } == NONE) return NONE
                when (withTimeoutOrNull(networkGraceMs) { work.first { it != WAITING_FOR_NETWORK } }) {
                    null -> return WAITING_FOR_NETWORK
                    NONE -> return NONE
                    else -> {} // active again: keep waiting
                }
            }
        }
    }
}
