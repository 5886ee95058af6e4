package io.embeddedserver

import android.app.Notification
import android.content.Context
import android.content.pm.ServiceInfo
import android.util.Log
import androidx.work.CoroutineWorker
import androidx.work.ForegroundInfo
import androidx.work.WorkerParameters
import kotlinx.coroutines.CancellationException

/**
 * Resumes queued and interrupted downloads without the app's UI: enqueued by [DownloadScheduler],
 * run by WorkManager when the [DownloadRequirements] hold, also after the process was killed (then
 * WorkManager starts the process, `Application.onCreate` runs, and this worker asks the app's
 * [EmbeddedServerHost] for its server, whose persistent queue resumes on start).
 *
 * It runs as foreground work (a `dataSync` foreground service, whose notification follows the
 * downloads, [DownloadWork.follow]) until no download is pending ([PendingWork.NONE]: success).
 * When the server is closed or cannot start, or the pending downloads wait for a network the
 * server may not use for [DownloadWork.NETWORK_GRACE_MS], it asks to be retried (WorkManager's
 * backoff, under the same constraints). When WorkManager stops it (a requirement no longer holds,
 * or the system's limits), the coroutine is cancelled and WorkManager runs it again later; the
 * downloads themselves go on as long as the process lives, under the server's own network gate.
 *
 * A [CoroutineWorker] rather than a blocking `Worker`: the server reports downloads as a
 * `StateFlow`, the wait on them is a suspending collection that a stop cancels at once (a
 * `Worker` would hold a thread and poll `isStopped`), and `setForeground` suspends.
 *
 * WorkManager creates it by class name through reflection with this constructor:
 * `consumer-rules.pro` keeps it.
 */
class DownloadWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result {
        val host = applicationContext as? EmbeddedServerHost ?: throw IllegalStateException(EmbeddedServerHost.MISSING)
        val server = try {
            host.embeddedServer()
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            Log.w(TAG, "the app's EmbeddedServer did not start; retrying later", e)
            return Result.retry()
        }
        // Created on the first update: with nothing pending there is neither channel nor notification.
        val notifications by lazy { DownloadNotifications(applicationContext) }
        val settled = DownloadWork.follow(server) { showForeground(notifications.build(it)) }
        return if (settled == PendingWork.NONE) Result.success() else Result.retry()
    }

    /**
     * Makes this work foreground work, or updates its notification. From Android 12 the system may
     * refuse while the app is in the background (an `IllegalStateException`): the work then goes
     * on as ordinary background work, which the system may stop sooner (WorkManager retries it).
     */
    private suspend fun showForeground(notification: Notification) {
        try {
            setForeground(ForegroundInfo(DownloadNotifications.NOTIFICATION_ID, notification, ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC))
        } catch (e: IllegalStateException) {
            Log.w(TAG, "not allowed to run as foreground work now; going on in the background", e)
        }
    }

    companion object {
        private const val TAG = "embedded-server"
    }
}
