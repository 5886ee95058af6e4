package io.embeddedserver.sample

import android.app.Application
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import io.embeddedserver.AndroidConfig
import io.embeddedserver.DownloadState
import io.embeddedserver.EmbeddedServer
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.launch

/** Owns the process-wide server and feeds it the device's connectivity. */
class SampleApp : Application(), ServerHost {
    val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    /**
     * The server, started on [Dispatchers.IO]: starting opens (and may recover) the SQLite index
     * and creates directories, which must not run on the main thread. Await it before using it;
     * it completes exceptionally if the server cannot start.
     */
    lateinit var server: Deferred<EmbeddedServer>
        private set

    override suspend fun embeddedServer(): EmbeddedServer = server.await()

    override fun onCreate() {
        super.onCreate()
        server = scope.async(Dispatchers.IO) {
            EmbeddedServer.start(AndroidConfig.builder(this@SampleApp).origin(BuildConfig.BACKEND).build())
        }
        scope.launch {
            val server = try {
                server.await()
            } catch (e: Exception) {
                return@launch // MainActivity shows the error
            }
            watchNetwork(server)
            // The foreground service (and its Wi-Fi lock) runs only while some download moves
            // bytes: started here when one starts running, it stops itself when none is.
            server.downloads()
                .map { list -> list.any { it.state == DownloadState.RUNNING } }
                .distinctUntilChanged()
                .collect { running -> if (running) TransferService.start(this@SampleApp) }
        }
    }

    /** The callbacks run on ConnectivityManager's own thread; `setNetwork` only records the state. */
    private fun watchNetwork(server: EmbeddedServer) {
        // Needs android.permission.ACCESS_NETWORK_STATE (in the manifest).
        val connectivity = checkNotNull(getSystemService(ConnectivityManager::class.java))
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
