package io.embeddedserver.sample

import android.app.Application
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import io.embeddedserver.AndroidConfig
import io.embeddedserver.EmbeddedServer
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.launch

/** Owns the process-wide server and feeds it the device's connectivity. */
class SampleApp : Application() {
    lateinit var server: EmbeddedServer
        private set
    val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    override fun onCreate() {
        super.onCreate()
        server = EmbeddedServer.start(AndroidConfig.builder(this).origin(BuildConfig.BACKEND).build())
        watchNetwork()
        // The foreground service (and its Wi-Fi lock) runs only while some download moves bytes.
        scope.launch {
            server.downloads()
                .map { list -> list.any { it.state == io.embeddedserver.DownloadState.RUNNING } }
                .distinctUntilChanged()
                .collect { running -> TransferService.setActive(this@SampleApp, running) }
        }
    }

    private fun watchNetwork() {
        val connectivity = getSystemService(ConnectivityManager::class.java)
        connectivity.registerDefaultNetworkCallback(object : ConnectivityManager.NetworkCallback() {
            override fun onCapabilitiesChanged(network: Network, caps: NetworkCapabilities) {
                val online = caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET) &&
                    caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_VALIDATED)
                val metered = !caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED)
                server.setNetwork(online, metered)
            }

            override fun onLost(network: Network) {
                server.setNetwork(online = false, metered = false)
            }
        })
    }
}
