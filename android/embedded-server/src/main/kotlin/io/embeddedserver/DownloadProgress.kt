package io.embeddedserver

import java.util.Locale

/**
 * What a download notification shows for a set of downloads: counts by state, bytes, and one
 * percentage. Plain data, so the Android notification (`DownloadNotifications`) only renders it.
 *
 * The percentage averages each download's own fraction, as Media3's download notification does,
 * so a small track and a large album weigh the same and an HLS download (whose byte total is
 * unknown until its playlists are read) counts by segments. Paused and failed downloads are left
 * out of bytes and percentage (they do not move), but counted.
 */
data class DownloadProgress(
    /** Downloads queued, running or waiting for the network. */
    val pending: Int,
    /** Whether the pending downloads wait for a network the server may use ([PendingWork.WAITING_FOR_NETWORK]). */
    val waitingForNetwork: Boolean,
    /** Downloads completed. */
    val completed: Int,
    /** Downloads failed (for good: the server's retries are spent). */
    val failed: Int,
    /** Downloads paused by the app or the user. */
    val paused: Int,
    /** Bytes fetched by the pending and completed downloads. */
    val bytesDone: Long,
    /** Their total in bytes, or null while the size of one of them is unknown. */
    val bytesTotal: Long?,
    /** 0 to 100, or null (an indeterminate bar) while the progress of a pending download is unknown. */
    val percent: Int?,
) {
    /** Downloads this progress is about, paused ones excepted: completed + failed + pending. */
    val total: Int get() = pending + completed + failed

    /**
     * A one-line summary for the notification's text, e.g. `2 of 5 · 12.3 MB / 40.0 MB · 1 failed`;
     * ends with `waiting for network` while the pending downloads wait for it; empty when there is
     * nothing to count (before the first downloads are known).
     */
    fun summary(): String {
        if (total == 0) return ""
        val parts = ArrayList<String>()
        parts += "$completed of $total"
        parts += bytesTotal?.let { "${formatBytes(bytesDone)} / ${formatBytes(it)}" } ?: formatBytes(bytesDone)
        if (failed > 0) parts += "$failed failed"
        if (waitingForNetwork) parts += "waiting for network"
        return parts.joinToString(" · ")
    }

    companion object {
        /** The progress of [downloads]. */
        @JvmStatic
        fun of(downloads: Collection<Download>): DownloadProgress {
            val moving = downloads.filter { PendingWork.isPending(it) || it.state == DownloadState.COMPLETED }
            val fractions = moving.map(::fraction)
            val totals = moving.map { it.bytesTotal ?: it.bytesDone.takeIf { _ -> it.state == DownloadState.COMPLETED } }
            return DownloadProgress(
                pending = downloads.count(PendingWork::isPending),
                waitingForNetwork = PendingWork.of(downloads) == PendingWork.WAITING_FOR_NETWORK,
                completed = downloads.count { it.state == DownloadState.COMPLETED },
                failed = downloads.count { it.state == DownloadState.FAILED },
                paused = downloads.count { it.state == DownloadState.PAUSED },
                bytesDone = moving.sumOf { it.bytesDone },
                bytesTotal = if (totals.any { it == null }) null else totals.sumOf { it!! },
                percent = if (fractions.isEmpty() || fractions.any { it == null }) {
                    null
                } else {
                    (fractions.sumOf { it!! } * 100 / fractions.size).toInt().coerceIn(0, 100)
                },
            )
        }

        /** 0.0 to 1.0 by bytes, else by HLS segments; null while neither total is known. */
        private fun fraction(d: Download): Double? = when {
            d.state == DownloadState.COMPLETED -> 1.0
            d.progress != null -> d.progress
            d.segmentsTotal != null && d.segmentsTotal > 0 -> (d.segmentsDone ?: 0).toDouble() / d.segmentsTotal
            else -> null
        }

        /** Decimal units, as Android's own file size formatter uses since Android 8. */
        internal fun formatBytes(bytes: Long): String {
            if (bytes < 1000) return "$bytes B"
            var value = bytes.toDouble()
            var unit = 0
            while (value >= 999.95 && unit < UNITS.size) {
                value /= 1000
                unit++
            }
            return String.format(Locale.ROOT, "%.1f %s", value, UNITS[unit - 1])
        }

        private val UNITS = listOf("kB", "MB", "GB", "TB")
    }
}

/**
 * The downloads one run of background work is about: every download seen pending since the
 * session began, including those that have completed or failed since, so the notification counts
 * "3 of 5" and its bar does not jump back as downloads finish. Downloads completed before the
 * session (possibly weeks ago) and cancelled ones are left out. Not thread-safe: one collector.
 */
class DownloadSession {
    private val ids = LinkedHashSet<String>()

    /** Adds the downloads now pending in [downloads] to the session; the session's progress. */
    fun update(downloads: Map<String, Download>): DownloadProgress {
        downloads.values.filter(PendingWork::isPending).forEach { ids += it.id }
        return DownloadProgress.of(ids.mapNotNull { downloads[it] })
    }
}
