package io.embeddedserver

import android.content.Context
import androidx.work.Constraints
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequest
import androidx.work.WorkManager

/**
 * Enqueues the [DownloadWorker] as unique work ([WORK_NAME]) under constraints built from
 * [DownloadRequirements]. WorkManager keeps it across process death and reboots, so queued and
 * interrupted downloads resume without the user opening the app.
 *
 * Call [schedule] after queueing downloads and at every app start (a download queued while a
 * finishing worker was returning is then picked up too); it does nothing while the work is
 * already enqueued or running. Call [reschedule] when the requirements change.
 */
object DownloadScheduler {
    /** The unique work name. */
    const val WORK_NAME = "io.embeddedserver.downloads"

    /** Enqueues the download work unless it is already enqueued or running ([ExistingWorkPolicy.KEEP]). */
    @JvmStatic
    @JvmOverloads
    fun schedule(context: Context, requirements: DownloadRequirements = DownloadRequirements()) =
        enqueue(context, requirements, ExistingWorkPolicy.KEEP)

    /**
     * Enqueues the download work with new [requirements], replacing any enqueued or running
     * ([ExistingWorkPolicy.REPLACE]: a running worker is stopped; the downloads are not).
     */
    @JvmStatic
    fun reschedule(context: Context, requirements: DownloadRequirements) =
        enqueue(context, requirements, ExistingWorkPolicy.REPLACE)

    /** Cancels the download work (the downloads themselves stay queued in the server). */
    @JvmStatic
    fun cancel(context: Context) {
        WorkManager.getInstance(context).cancelUniqueWork(WORK_NAME)
    }

    /** WorkManager constraints for [requirements], as Media3's WorkManagerScheduler maps its Requirements. */
    @JvmStatic
    fun constraints(requirements: DownloadRequirements): Constraints = Constraints.Builder()
        .setRequiredNetworkType(
            when (requirements.network) {
                DownloadRequirements.Network.NOT_REQUIRED -> NetworkType.NOT_REQUIRED
                DownloadRequirements.Network.ANY -> NetworkType.CONNECTED
                DownloadRequirements.Network.UNMETERED -> NetworkType.UNMETERED
            },
        )
        .setRequiresCharging(requirements.charging)
        .setRequiresStorageNotLow(requirements.storageNotLow)
        .setRequiresDeviceIdle(requirements.idle)
        .build()

    private fun enqueue(context: Context, requirements: DownloadRequirements, policy: ExistingWorkPolicy) {
        val request = OneTimeWorkRequest.Builder(DownloadWorker::class.java)
            .setConstraints(constraints(requirements))
            .build()
        WorkManager.getInstance(context).enqueueUniqueWork(WORK_NAME, policy, request)
    }
}
