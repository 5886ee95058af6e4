package io.embeddedserver.sample

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.net.wifi.WifiManager
import android.os.Build
import androidx.core.app.NotificationCompat
import androidx.core.app.ServiceCompat
import androidx.core.content.ContextCompat
import androidx.lifecycle.LifecycleService

/**
 * A foreground service that exists only while downloads move bytes: it keeps the process alive
 * and holds a Wi-Fi lock so the radio does not sleep mid-transfer; both end when bytes stop.
 */
class TransferService : LifecycleService() {
    private var wifiLock: WifiManager.WifiLock? = null

    companion object {
        private const val CHANNEL = "transfers"
        private const val NOTIFICATION_ID = 1

        /** Starts the service when bytes start flowing, stops it when they stop. */
        fun setActive(context: Context, active: Boolean) {
            val intent = Intent(context, TransferService::class.java)
            if (active) ContextCompat.startForegroundService(context, intent) else context.stopService(intent)
        }
    }

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        super.onStartCommand(intent, flags, startId)
        ServiceCompat.startForeground(this, NOTIFICATION_ID, notification(), ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC)
        if (wifiLock == null) {
            val wifi = applicationContext.getSystemService(WifiManager::class.java)
            @Suppress("DEPRECATION") // FULL_HIGH_PERF is the pre-29 equivalent of LOW_LATENCY for transfers
            val mode = if (Build.VERSION.SDK_INT >= 29) WifiManager.WIFI_MODE_FULL_LOW_LATENCY else WifiManager.WIFI_MODE_FULL_HIGH_PERF
            wifiLock = wifi.createWifiLock(mode, "embedded-server:transfer").apply {
                setReferenceCounted(false)
                acquire()
            }
        }
        return START_NOT_STICKY
    }

    override fun onDestroy() {
        wifiLock?.release()
        wifiLock = null
        super.onDestroy()
    }

    private fun notification(): Notification {
        val manager = getSystemService(NotificationManager::class.java)
        if (Build.VERSION.SDK_INT >= 26) {
            manager.createNotificationChannel(
                NotificationChannel(CHANNEL, getString(R.string.transfer_channel), NotificationManager.IMPORTANCE_LOW),
            )
        }
        return NotificationCompat.Builder(this, CHANNEL)
            .setSmallIcon(android.R.drawable.stat_sys_download)
            .setContentTitle(getString(R.string.transfer_running))
            .setOngoing(true)
            .build()
    }
}
