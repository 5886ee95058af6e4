package io.embeddedserver.sample

import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.net.wifi.WifiManager
import android.util.Log
import androidx.core.app.ServiceCompat
import androidx.core.content.ContextCompat
import androidx.lifecycle.LifecycleService
import androidx.lifecycle.lifecycleScope
import io.embeddedserver.DownloadNotifications
import io.embeddedserver.DownloadProgress
import io.embeddedserver.DownloadState
import io.embeddedserver.DownloadWork
import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.combine
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.launch

/**
 * A foreground service that exists only while downloads move bytes: it keeps the process alive
 * and holds a Wi-Fi lock so the radio does not sleep mid-transfer; both end when bytes stop. Its
 * notification is the library's download notification (DownloadNotifications), under the same ID
 * as the library's DownloadWorker, so the two share one notification when both run.
 *
 * The app only ever starts it ([start]); the service stops itself once no download is running.
 * Stopping it from outside with `stopService` could land before it has called `startForeground`,
 * which the system punishes by crashing the app ("Context.startForegroundService() did not then
 * call Service.startForeground()"), e.g. when a small download completes right after starting.
 */
class TransferService : LifecycleService() {
    private var wifiLock: WifiManager.WifiLock? = null
    private var watcher: Job? = null
    private lateinit var notifications: DownloadNotifications

    /** What the notification shows now (nothing is known before the first update). */
    private var shown = DownloadProgress.of(emptyList())

    /** The most recent start ID: `stopSelf(id)` stops only if no newer start has arrived. */
    private val latestStart = MutableStateFlow(0)

    companion object {
        private const val TAG = "TransferService"

        /**
         * Starts the service when bytes start flowing. Returns false if the system refused: from
         * Android 12 a foreground service cannot be started while the app is in the background
         * (ForegroundServiceStartNotAllowedException, an IllegalStateException); the download then
         * goes on without the service for as long as the process lives.
         */
        fun start(context: Context): Boolean = try {
            ContextCompat.startForegroundService(context, Intent(context, TransferService::class.java))
            true
        } catch (e: IllegalStateException) {
            Log.w(TAG, "cannot start the transfer service now", e)
            false
        }
    }

    override fun onCreate() {
        super.onCreate()
        notifications = DownloadNotifications(this)
    }

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        super.onStartCommand(intent, flags, startId)
        // First, on every start: each startForegroundService call must be answered by this.
        showForeground(shown)
        acquireWifiLock()
        latestStart.value = startId
        if (watcher == null) {
            watcher = lifecycleScope.launch {
                val server = try {
                    (application as SampleApp).server.await()
                } catch (e: Exception) {
                    stopSelf()
                    return@launch
                }
                // The notification follows the downloads seen pending, as the library's worker does.
                launch { DownloadWork.follow(server) { showForeground(it) } }
                // Re-evaluated on every new start too, so a start that raced a stop is not left running.
                server.downloadMap()
                    .map { downloads -> downloads.values.any { it.state == DownloadState.RUNNING } }
                    .combine(latestStart) { running, id -> if (running) null else id }
                    .collect { id -> if (id != null) stopSelf(id) }
            }
        }
        return START_NOT_STICKY
    }

    /** Android 15+: the time limit of dataSync foreground services was reached; stop now. */
    override fun onTimeout(startId: Int, fgsType: Int) {
        stopSelf()
    }

    override fun onDestroy() {
        wifiLock?.release()
        wifiLock = null
        super.onDestroy()
    }

    /** Calling startForeground again with the same ID updates the notification. */
    private fun showForeground(progress: DownloadProgress) {
        shown = progress
        ServiceCompat.startForeground(
            this,
            DownloadNotifications.NOTIFICATION_ID,
            notifications.build(progress),
            ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC,
        )
    }

    private fun acquireWifiLock() {
        if (wifiLock != null) return
        val wifi = checkNotNull(applicationContext.getSystemService(WifiManager::class.java))
        // FULL_HIGH_PERF on every API level, as ExoPlayer's own WAKE_MODE_NETWORK lock: it keeps the
        // radio out of power save with the screen off, which a background transfer needs.
        // FULL_LOW_LATENCY (API 29+) applies only while the app is in the foreground with the
        // screen on, so it does nothing here; FULL is a no-op from API 29. From API 34
        // FULL_HIGH_PERF is deprecated and treated as FULL_LOW_LATENCY: there no lock mode helps a
        // screen-off transfer, and the foreground service alone keeps it going.
        @Suppress("DEPRECATION")
        val mode = WifiManager.WIFI_MODE_FULL_HIGH_PERF
        // acquire() needs android.permission.WAKE_LOCK (in the manifest).
        wifiLock = wifi.createWifiLock(mode, "embedded-server:transfer").apply {
            setReferenceCounted(false)
            acquire()
        }
    }
}
