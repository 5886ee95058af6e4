package io.embeddedserver

import android.app.Notification
import android.content.Context
import androidx.core.app.NotificationChannelCompat
import androidx.core.app.NotificationCompat
import androidx.core.app.NotificationManagerCompat

/**
 * The download notification, for [DownloadWorker] and for an app's own foreground service: a
 * low-importance channel (no sound), and an ongoing notification with a progress bar and a
 * [DownloadProgress.summary] line. Creating one creates the channel if it is missing (a no-op
 * before Android 8). The words are library resources (`embedded_server_download_channel`,
 * `embedded_server_downloading`) an app overrides or translates in its own `strings.xml`.
 *
 * Showing it needs the `POST_NOTIFICATIONS` runtime permission on Android 13+, which is the
 * app's to request; without it a foreground service still runs, its notification hidden.
 */
class DownloadNotifications @JvmOverloads constructor(
    private val context: Context,
    /** The channel's ID: the same for every process of the app. */
    val channelId: String = CHANNEL_ID,
) {
    init {
        NotificationManagerCompat.from(context).createNotificationChannel(
            NotificationChannelCompat.Builder(channelId, NotificationManagerCompat.IMPORTANCE_LOW)
                .setName(context.getString(R.string.embedded_server_download_channel))
                .build(),
        )
    }

    /**
     * A builder of the notification for [progress], for an app that adds to it (a content
     * intent that opens its downloads screen, a cancel action) before building it.
     */
    fun builder(progress: DownloadProgress): NotificationCompat.Builder {
        val builder = NotificationCompat.Builder(context, channelId)
            .setSmallIcon(android.R.drawable.stat_sys_download)
            .setContentTitle(context.getString(R.string.embedded_server_downloading))
            .setContentText(progress.summary())
            .setCategory(NotificationCompat.CATEGORY_PROGRESS)
            .setOngoing(true)
            .setOnlyAlertOnce(true)
            .setShowWhen(false)
        if (progress.pending > 0) builder.setProgress(100, progress.percent ?: 0, progress.percent == null)
        return builder
    }

    /** The notification for [progress]. */
    fun build(progress: DownloadProgress): Notification = builder(progress).build()

    companion object {
        /** The default channel ID. */
        const val CHANNEL_ID = "embedded_server_downloads"

        /** The notification ID [DownloadWorker] shows it under. */
        const val NOTIFICATION_ID = 0x65_73_64_6c // "esdl"
    }
}
